//! The knowledge base from disk: the pattern folders a config names (a later folder's file
//! replaces an earlier one's of the same path), or the entries built into the binary
//! (`build.rs` embeds `patterns/`). Loading and proving the entries is the engine's
//! ([`crate::engine::kb`]); reading the files is here.

use crate::app::config::Config;
use crate::engine::error::{FileError, FileErrors};
use crate::engine::kb::{Kb, Source};
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_patterns.rs"));
}

/// The pattern files of the built-in knowledge base.
pub fn embedded_sources() -> Vec<Source> {
    embedded::EMBEDDED
        .iter()
        .map(|(rel, text)| Source {
            file: format!("patterns/{rel}"),
            rel: rel.to_string(),
            text: text.to_string(),
        })
        .collect()
}

/// Reads every `*.toml` below the folders; a later folder's file replaces an earlier one with
/// the same path (local additions override shipped entries).
pub fn read_pattern_dirs(dirs: &[PathBuf]) -> Result<Vec<Source>, FileErrors> {
    let mut by_rel: std::collections::BTreeMap<String, Source> = Default::default();
    let mut errors = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<FileError>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                errors.push(FileError::new(
                    dir.display().to_string(),
                    0,
                    format!("cannot read the folder: {e}"),
                ));
                return;
            }
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out, errors);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    for dir in dirs {
        let mut files = Vec::new();
        walk(dir, &mut files, &mut errors);
        for f in files {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            match std::fs::read_to_string(&f) {
                Ok(text) => {
                    by_rel.insert(
                        rel.clone(),
                        Source {
                            file: f.display().to_string(),
                            rel,
                            text,
                        },
                    );
                }
                Err(e) => errors.push(FileError::new(
                    f.display().to_string(),
                    0,
                    format!("cannot read the file: {e}"),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(by_rel.into_values().collect())
    } else {
        Err(FileErrors(errors))
    }
}

/// The knowledge base a config names: its pattern folders (a missing one reported at the
/// config's line), or the built-in one.
pub fn for_config(cfg: &Config) -> Result<Kb, FileErrors> {
    let errors = cfg.pattern_dir_errors();
    if !errors.is_empty() {
        return Err(FileErrors(errors));
    }
    load_kb(&cfg.pattern_dirs)
}

/// The knowledge base from folders, or the built-in one when none are given.
pub fn load_kb(dirs: &[PathBuf]) -> Result<Kb, FileErrors> {
    let sources = if dirs.is_empty() {
        embedded_sources()
    } else {
        read_pattern_dirs(dirs)?
    };
    Kb::load(&sources).map_err(FileErrors)
}

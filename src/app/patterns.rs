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
            text: std::borrow::Cow::Borrowed(*text),
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
                            text: text.into(),
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

/// Whether a pattern file is a draft (`draft = true`, written by `gatewatch patterns draft`):
/// proven by `check`, not used for matching until the line is removed.
pub fn is_draft(text: &str) -> bool {
    // Parsed only when a line could say so (reading every file twice costs start-up time).
    let may = memchr::memmem::find_iter(text.as_bytes(), "draft").any(|at| {
        let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
        text[line_start..at].trim_start().is_empty() && text[at..end].contains('=')
    });
    may && toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| t.get("draft")?.as_bool())
        == Some(true)
}

/// The knowledge base from folders, or the built-in one when none are given. Drafts are left
/// out (a draft still being written must not stop the daemon).
pub fn load_kb(dirs: &[PathBuf]) -> Result<Kb, FileErrors> {
    Ok(load_kb_with_drafts(dirs, false)?.0)
}

/// The knowledge base, with the drafts in it when `drafts` (for `check`, which proves them);
/// and the files of the drafts found.
pub fn load_kb_with_drafts(
    dirs: &[PathBuf],
    drafts: bool,
) -> Result<(Kb, Vec<String>), FileErrors> {
    let sources = if dirs.is_empty() {
        embedded_sources()
    } else {
        read_pattern_dirs(dirs)?
    };
    let (draft, used): (Vec<Source>, Vec<Source>) =
        sources.into_iter().partition(|s| is_draft(&s.text));
    let names: Vec<String> = draft.iter().map(|s| s.file.clone()).collect();
    if !drafts {
        for f in &names {
            crate::log!(
                Info,
                "a draft entry is not used until draft = true is removed",
                file = f
            );
        }
    }
    let all: Vec<Source> = if drafts {
        used.into_iter().chain(draft).collect()
    } else {
        used
    };
    // The built-in base is proven by the build's tests (`the_built_in_base_is_proven`); it is
    // proven again only for `check`.
    let kb = if dirs.is_empty() && !drafts {
        Kb::load_built(&all)
    } else {
        Kb::load(&all)
    };
    Ok((kb.map_err(FileErrors)?, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in base loads without its proofs at every start ([`Kb::load_built`]); this is
    /// where they run: every example and near miss classified, every regex compiled, and the
    /// base loaded either way matches the examples alike.
    #[test]
    fn the_built_in_base_is_proven() {
        let proven = Kb::load(&embedded_sources()).expect("the built-in base is proven");
        let built = load_kb(&[]).expect("the built-in base loads");
        assert_eq!(proven.entries().len(), built.entries().len());
        let mut signatures = 0;
        for (p, b) in proven.entries().zip(built.entries()) {
            assert_eq!(p.id, b.id);
            assert_eq!(p.signatures.len(), b.signatures.len(), "{}", p.id);
            for s in &b.signatures {
                assert!(s.regex().is_some(), "{}: {:?}", b.id, s.pattern());
                signatures += 1;
            }
            for ex in p.examples.iter().chain(&p.near_misses) {
                assert_eq!(
                    crate::engine::kb::classify_example(&proven, ex),
                    crate::engine::kb::classify_example(&built, ex),
                    "{}: {:?}",
                    p.id,
                    ex.line
                );
            }
        }
        assert!(signatures > 10, "{signatures} signatures");
    }
}

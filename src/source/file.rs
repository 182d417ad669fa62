//! A followed log file as a [`Source`]: a [`Tailer`] through rotation and truncation, the
//! format recognised from the first lines, lines parsed as they are read. A glob
//! ([`FilePlan`]) opens a source for every file it comes to name.

use super::tail::{self, Delivery, Notice, Start, Tailer};
use super::{Checkpoint, Context, Emit, Ledger, Plan, Round, Source, SourceConfig, SourceStatus};
use crate::engine::event::Format;
use crate::engine::parse::{Parser, ParserOptions};
use crate::log;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest line kept, in bytes; longer lines are counted and skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// How long a rotated-away log is kept open after it stops growing: the proxy writes to it
/// until it reopens its log (nginx: after `USR1` from logrotate's postrotate).
pub const ROTATE_WAIT: Duration = Duration::from_secs(30);

/// Over-long lines are logged at most this often per file.
const TOO_LONG_LOG_EVERY: Duration = Duration::from_secs(60);

/// The checkpoint kind of a followed file, and the version of its data.
pub const KIND: &str = "file";
const VERSION: u32 = 1;

/// Rotated or compressed names a glob must not pick up, or their lines would be read twice:
/// `access.log.1`, `access.log.2.gz`, `access.log-20240501`.
pub fn looks_rotated(name: &str) -> bool {
    let compressed = [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"];
    if compressed.iter().any(|c| name.ends_with(c)) {
        return true;
    }
    let last = name.rsplit(['.', '-']).next().unwrap_or("");
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

/// A configured path or glob, and the files it has opened.
pub struct FilePlan {
    pattern: PathBuf,
    format: Format,
    opts: ParserOptions,
    start: Start,
    opened: std::collections::HashSet<PathBuf>,
}

impl FilePlan {
    pub fn new(cfg: &SourceConfig, ctx: &Context) -> FilePlan {
        FilePlan {
            pattern: PathBuf::from(cfg.kind.input()),
            format: match &cfg.kind {
                super::SourceKind::Log { format, .. } => *format,
                super::SourceKind::Syslog { .. } => Format::Haproxy,
            },
            opts: ParserOptions {
                zone: cfg.timezone.clone(),
                year: chrono::Datelike::year(&chrono::Utc::now()),
                log_format: cfg.log_format.clone(),
            },
            start: match cfg.start_at {
                super::StartAt::End if ctx.first_run => Start::End,
                _ => Start::Beginning,
            },
            opened: Default::default(),
        }
    }

    /// The files the pattern names now.
    fn files(&self) -> Vec<PathBuf> {
        let name = self
            .pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?']) {
            return vec![self.pattern.clone()];
        }
        let dir = self.pattern.parent().unwrap_or(Path::new("."));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                crate::engine::glob::matches(name.as_bytes(), n.as_bytes()) && !looks_rotated(&n)
            })
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

impl Plan for FilePlan {
    fn open(
        &mut self,
        saved: &dyn Fn(&str) -> anyhow::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let mut out: Vec<Box<dyn Source>> = Vec::new();
        for path in self.files() {
            if self.opened.contains(&path) {
                continue;
            }
            let name = path.display().to_string();
            let mine = match saved(&name)? {
                Some(c) => decode(&path, &c)?,
                None => Vec::new(),
            };
            let mut notices = Vec::new();
            let tailer = Tailer::new(
                path.clone(),
                &mine,
                self.start,
                MAX_LINE,
                ROTATE_WAIT,
                &mut notices,
            );
            report_notices(&path, &notices);
            log!(
                Info,
                "following",
                file = path.display(),
                format = self.format,
                resumed = !mine.is_empty()
            );
            self.opened.insert(path);
            out.push(Box::new(FileSource {
                name,
                tailer,
                parser: None,
                format: self.format,
                opts: self.opts.clone(),
                lines: 0,
                unparsed: 0,
                too_long: 0,
                too_long_unlogged: 0,
                too_long_logged: None,
            }));
        }
        Ok(out)
    }

    fn folders(&self) -> Vec<PathBuf> {
        let dir = self.pattern.parent().unwrap_or(Path::new(""));
        vec![if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        }]
    }
}

/// One followed file.
pub struct FileSource {
    name: String,
    tailer: Tailer,
    /// Made from the first lines read.
    parser: Option<Parser>,
    format: Format,
    opts: ParserOptions,
    /// Lines read (their numbers: over-long ones count too).
    lines: u64,
    unparsed: u64,
    /// Lines skipped for being longer than the limit: in all, and since the last time that
    /// was logged (at most once a minute).
    too_long: u64,
    too_long_unlogged: u64,
    too_long_logged: Option<Instant>,
}

/// Parses one line; a line that parses goes to `emit`.
fn handle(
    line: &[u8],
    parser: &mut Parser,
    number: &mut u64,
    unparsed: &mut u64,
    emit: &mut Emit<'_>,
) {
    *number += 1;
    match parser.parse(line) {
        Ok(ev) => emit(*number, line, ev),
        Err(_) => *unparsed += 1,
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, _: &dyn Ledger, emit: &mut Emit<'_>) -> anyhow::Result<Round> {
        let mut notices = Vec::new();
        let mut pending: Vec<Option<Vec<u8>>> = Vec::new();
        let FileSource {
            tailer,
            parser,
            lines: number,
            unparsed,
            ..
        } = self;
        let mut lines = 0;
        let mut too_long = 0;
        let more = tailer.poll(&mut notices, &mut |d| {
            lines += 1;
            match (d, parser.as_mut()) {
                (Delivery::Line(line), Some(p)) => handle(line, p, number, unparsed, emit),
                // The format is recognised from the first lines of the file.
                (Delivery::Line(line), None) => pending.push(Some(line.to_vec())),
                (Delivery::TooLong, Some(_)) => {
                    too_long += 1;
                    *number += 1;
                }
                (Delivery::TooLong, None) => {
                    too_long += 1;
                    pending.push(None);
                }
            }
        });
        if pending.iter().any(Option::is_some) {
            let samples: Vec<&[u8]> = pending.iter().flatten().map(Vec::as_slice).collect();
            let p = parser.insert(Parser::new(self.format, &self.opts, &samples));
            log!(
                Info,
                "format",
                file = tailer.path().display(),
                layout = p.describe()
            );
            for line in &pending {
                match line {
                    Some(line) => handle(line, p, number, unparsed, emit),
                    None => *number += 1,
                }
            }
        } else {
            // Only over-long lines so far: numbered, the format still unknown.
            *number += pending.len() as u64;
        }
        self.unparsed += too_long;
        self.too_long += too_long;
        self.too_long_unlogged += too_long;
        if self.too_long_unlogged > 0
            && self
                .too_long_logged
                .is_none_or(|t| t.elapsed() >= TOO_LONG_LOG_EVERY)
        {
            log!(
                Warn,
                "lines longer than the limit skipped",
                file = self.tailer.path().display(),
                lines = self.too_long_unlogged,
                limit_bytes = MAX_LINE
            );
            self.too_long_unlogged = 0;
            self.too_long_logged = Some(Instant::now());
        }
        report_notices(self.tailer.path(), &notices);
        Ok(Round { lines, more })
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        Some(encode(&self.tailer.checkpoints()))
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            format: self
                .parser
                .as_ref()
                .map_or_else(|| self.format.to_string(), Parser::describe),
            lines: self.lines,
            unparsed: self.unparsed,
            too_long: self.too_long,
            lag_bytes: self.tailer.lag_bytes(),
        }
    }
}

/// A file's checkpoint as saved: one JSON object per open file (the one at the path, and
/// rotated-away ones still being read).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    role: String,
    dev: u64,
    ino: u64,
    fp_len: u32,
    fp_hash: u64,
    offset: u64,
    size: Option<u64>,
}

/// The checkpoint of a file's tailer.
pub fn encode(checkpoints: &[tail::Checkpoint]) -> Checkpoint {
    let saved: Vec<Saved> = checkpoints
        .iter()
        .map(|c| Saved {
            role: match c.role {
                tail::Role::Current => "current",
                tail::Role::Draining => "draining",
            }
            .to_string(),
            dev: c.id.dev,
            ino: c.id.ino,
            fp_len: c.fingerprint.len,
            fp_hash: c.fingerprint.hash,
            offset: c.offset,
            size: c.size,
        })
        .collect();
    Checkpoint {
        kind: KIND.to_string(),
        version: VERSION,
        data: serde_json::to_vec(&saved).unwrap_or_default(),
    }
}

/// The tailer's checkpoints from a saved one.
pub fn decode(path: &Path, c: &Checkpoint) -> anyhow::Result<Vec<tail::Checkpoint>> {
    anyhow::ensure!(
        c.kind == KIND && c.version <= VERSION,
        "the state holds a checkpoint for {} of kind {} version {}, which this gatewatch cannot read (written by a newer one, or for another kind of source); remove that source's checkpoint or use the newer gatewatch",
        path.display(),
        c.kind,
        c.version
    );
    let saved: Vec<Saved> = serde_json::from_slice(&c.data).map_err(|e| {
        anyhow::anyhow!(
            "the state's checkpoint for {} is damaged: {e}",
            path.display()
        )
    })?;
    Ok(saved
        .into_iter()
        .map(|s| tail::Checkpoint {
            path: path.to_path_buf(),
            role: if s.role == "current" {
                tail::Role::Current
            } else {
                tail::Role::Draining
            },
            id: tail::FileId {
                dev: s.dev,
                ino: s.ino,
            },
            fingerprint: tail::Fingerprint {
                len: s.fp_len,
                hash: s.fp_hash,
            },
            offset: s.offset,
            size: s.size,
        })
        .collect())
}

/// Logs what the tailer noticed.
fn report_notices(path: &Path, notices: &[Notice]) {
    for n in notices {
        match n {
            Notice::Opened { file, offset } => {
                log!(Info, "reading", file = file.display(), offset = offset)
            }
            Notice::Rotated { old } => {
                log!(Info, "rotated", file = path.display(), old_inode = old.ino)
            }
            Notice::Truncated { continued_in } => log!(
                Warn,
                "truncated",
                file = path.display(),
                continued_in = continued_in
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |p| p.display().to_string())
            ),
            Notice::Lost {
                id,
                offset,
                read_to_end: true,
            } => log!(
                Info,
                "a file read to its end before gatewatch stopped is gone (rotated and removed meanwhile); lines written to it after the stop, if any, were not read",
                file = path.display(),
                inode = id.ino,
                offset = offset
            ),
            Notice::Lost {
                id,
                offset,
                read_to_end: false,
            } => log!(
                Warn,
                "a file read before is gone; its unread lines cannot be read",
                file = path.display(),
                inode = id.ino,
                offset = offset
            ),
            Notice::Closed { id } => {
                log!(
                    Info,
                    "finished rotated file",
                    file = path.display(),
                    inode = id.ino
                )
            }
            Notice::Error(e) => log!(Error, "read error", file = path.display(), error = e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_and_skip_rotated_files() {
        assert!(crate::engine::glob::matches(b"*.log", b"access.log"));
        assert!(crate::engine::glob::matches(b"access?.log", b"access2.log"));
        assert!(!crate::engine::glob::matches(b"*.log", b"access.log.1"));
        assert!(crate::engine::glob::matches(
            b"*access*",
            b"my_access.log.1"
        ));
        for rotated in ["access.log.1", "access.log.2.gz", "access.log-20240501"] {
            assert!(looks_rotated(rotated), "{rotated}");
        }
        for live in ["access.log", "api.example.com.log", "error.log"] {
            assert!(!looks_rotated(live), "{live}");
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_saved_and_a_newer_one_is_refused() {
        let cps = vec![
            tail::Checkpoint {
                path: PathBuf::from("/var/log/nginx/access.log"),
                role: tail::Role::Current,
                id: tail::FileId { dev: 2049, ino: 77 },
                fingerprint: tail::Fingerprint {
                    len: 1024,
                    hash: u64::MAX - 3,
                },
                offset: 4096,
                size: Some(8192),
            },
            tail::Checkpoint {
                path: PathBuf::from("/var/log/nginx/access.log"),
                role: tail::Role::Draining,
                id: tail::FileId { dev: 2049, ino: 76 },
                fingerprint: tail::Fingerprint { len: 9, hash: 1 },
                offset: 9,
                size: None,
            },
        ];
        let c = encode(&cps);
        assert_eq!(
            decode(Path::new("/var/log/nginx/access.log"), &c).unwrap(),
            cps
        );
        let newer = Checkpoint {
            version: VERSION + 1,
            ..c.clone()
        };
        let e = decode(Path::new("/x"), &newer).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
        let damaged = Checkpoint {
            data: b"{".to_vec(),
            ..c
        };
        let e = decode(Path::new("/x"), &damaged).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}

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

/// Most paths a glob expands to (a glob over a huge tree is cut, not followed forever).
const MAX_EXPANDED: usize = 10_000;

/// The files a path or glob names now. `*` and `?` may stand in folder names too
/// (`/var/log/pods/*/*/*.log`); rotated and compressed names are left out of what a wildcard
/// in the file name matches (they would be read twice).
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let wild = |s: &std::ffi::OsStr| s.to_string_lossy().contains(['*', '?']);
    if !wild(pattern.as_os_str()) {
        return vec![pattern.to_path_buf()];
    }
    let parts: Vec<_> = pattern.components().collect();
    let mut current = vec![PathBuf::new()];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let name = part.as_os_str();
        if !wild(name) {
            for p in &mut current {
                p.push(name);
            }
            continue;
        }
        let glob = name.to_string_lossy().into_owned();
        let mut next = Vec::new();
        for dir in &current {
            let at = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(at) else {
                continue;
            };
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !crate::engine::glob::matches(glob.as_bytes(), n.as_bytes()) {
                    continue;
                }
                // Follows links (`/var/log/containers/*.log` are links to the pods' logs).
                let Ok(m) = std::fs::metadata(e.path()) else {
                    continue;
                };
                let keep = if last {
                    m.is_file() && !looks_rotated(&n)
                } else {
                    m.is_dir()
                };
                if keep && next.len() < MAX_EXPANDED {
                    next.push(dir.join(&n));
                }
            }
        }
        next.sort();
        current = next;
    }
    current.retain(|p| p.exists());
    current
}

/// The folders whose changes should wake the reader for a path or glob: its folder, if that is
/// not a glob itself (folders inside a glob are looked at every second).
pub fn folders(pattern: &Path) -> Vec<PathBuf> {
    let dir = pattern.parent().unwrap_or(Path::new(""));
    if dir.to_string_lossy().contains(['*', '?']) {
        return Vec::new();
    }
    vec![if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    }]
}

/// A tailer for a path, from the checkpoint the state holds for it (`kind`: the checkpoint's
/// kind for this source) or from `start`.
pub fn open_tailer(
    path: &Path,
    saved: &dyn Fn(&str) -> anyhow::Result<Option<Checkpoint>>,
    kind: &str,
    start: Start,
    what: &dyn std::fmt::Display,
) -> anyhow::Result<Tailer> {
    let name = path.display().to_string();
    let mine = match saved(&name)? {
        Some(c) => decode(path, kind, &c)?,
        None => Vec::new(),
    };
    let mut notices = Vec::new();
    let tailer = Tailer::new(
        path.to_path_buf(),
        &mine,
        start,
        MAX_LINE,
        ROTATE_WAIT,
        &mut notices,
    );
    report_notices(path, &notices);
    log!(
        Info,
        "following",
        file = path.display(),
        format = what,
        resumed = !mine.is_empty()
    );
    Ok(tailer)
}

/// Logs the over-long lines skipped since it was last said, at most once a minute.
pub fn say_too_long(path: &Path, unlogged: &mut u64, logged: &mut Option<Instant>) {
    if *unlogged > 0 && logged.is_none_or(|t| t.elapsed() >= TOO_LONG_LOG_EVERY) {
        log!(
            Warn,
            "lines longer than the limit skipped",
            file = path.display(),
            lines = *unlogged,
            limit_bytes = MAX_LINE
        );
        *unlogged = 0;
        *logged = Some(Instant::now());
    }
}

/// A configured path or glob, and the files of it already opened.
pub struct Pattern {
    path: PathBuf,
    opened: std::collections::HashSet<PathBuf>,
}

impl Pattern {
    pub fn new(cfg: &SourceConfig) -> Pattern {
        Pattern {
            path: PathBuf::from(cfg.kind.input()),
            opened: Default::default(),
        }
    }

    /// The files it names now that are not open yet; each is [`Pattern::opened`] once open.
    pub fn fresh(&self) -> Vec<PathBuf> {
        let mut v = expand(&self.path);
        v.retain(|p| !self.opened.contains(p));
        v
    }

    pub fn opened(&mut self, path: PathBuf) {
        self.opened.insert(path);
    }

    /// The folders to watch (see [`folders`]).
    pub fn folders(&self) -> Vec<PathBuf> {
        folders(&self.path)
    }
}

/// How the lines of a configured source are parsed.
pub fn parser_options(cfg: &SourceConfig) -> ParserOptions {
    ParserOptions {
        zone: cfg.timezone.clone(),
        year: chrono::Datelike::year(&chrono::Utc::now()),
        log_format: cfg.log_format.clone(),
    }
}

/// Where reading starts in a file seen for the first time: its end on the first run with
/// `start_at = "end"`, else its beginning.
pub fn start(cfg: &SourceConfig, ctx: &Context) -> Start {
    match cfg.start_at {
        super::StartAt::End if ctx.first_run => Start::End,
        _ => Start::Beginning,
    }
}

/// A configured path or glob, and the files it has opened.
pub struct FilePlan {
    pattern: Pattern,
    format: Format,
    opts: ParserOptions,
    start: Start,
}

impl FilePlan {
    pub fn new(cfg: &SourceConfig, ctx: &Context) -> FilePlan {
        FilePlan {
            pattern: Pattern::new(cfg),
            format: match &cfg.kind {
                super::SourceKind::Log { format, .. } => *format,
                _ => Format::NginxAccess,
            },
            opts: parser_options(cfg),
            start: start(cfg, ctx),
        }
    }
}

impl Plan for FilePlan {
    fn open(
        &mut self,
        saved: &dyn Fn(&str) -> anyhow::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let mut out: Vec<Box<dyn Source>> = Vec::new();
        for path in self.pattern.fresh() {
            let name = path.display().to_string();
            let tailer = open_tailer(&path, saved, KIND, self.start, &self.format)?;
            self.pattern.opened(path);
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
                recent: Default::default(),
            }));
        }
        Ok(out)
    }

    fn folders(&self) -> Vec<PathBuf> {
        self.pattern.folders()
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
    recent: super::Recent,
}

/// Parses one line; a line that parses goes to `emit`, one that does not is counted and kept
/// among the recent ones.
fn handle(
    line: &[u8],
    parser: &mut Parser,
    number: &mut u64,
    (unparsed, recent): (&mut u64, &mut super::Recent),
    emit: &mut Emit<'_>,
) {
    *number += 1;
    match parser.parse(line) {
        Ok(ev) => emit(0, *number, line, ev),
        Err(_) => {
            *unparsed += 1;
            recent.push(line);
        }
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
            recent,
            ..
        } = self;
        let mut lines = 0;
        let mut too_long = 0;
        let more = tailer.poll(&mut notices, &mut |d| {
            lines += 1;
            match (d, parser.as_mut()) {
                (Delivery::Line(line), Some(p)) => {
                    handle(line, p, number, (unparsed, recent), emit)
                }
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
            if p.describe().contains("ambiguous") {
                log!(
                    Error,
                    "the file's lines fit several known formats that read them differently; none is chosen and its lines are not read: set log_format in its [[source]] to the one nginx writes",
                    file = tailer.path().display(),
                    candidates = p.describe()
                );
            } else {
                log!(
                    Info,
                    "format",
                    file = tailer.path().display(),
                    layout = p.describe()
                );
            }
            for line in &pending {
                match line {
                    Some(line) => handle(line, p, number, (unparsed, recent), emit),
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
        say_too_long(
            self.tailer.path(),
            &mut self.too_long_unlogged,
            &mut self.too_long_logged,
        );
        report_notices(self.tailer.path(), &notices);
        Ok(Round { lines, more })
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        Some(encode(KIND, &self.tailer.checkpoints()))
    }

    fn counts(&self) -> (u64, u64) {
        (self.lines, self.unparsed)
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
            recent_unparsed: self.recent.list(),
            kafka: None,
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

/// The checkpoint of a tailer (`kind`: the source's kind of checkpoint, `file` or
/// `container`).
pub fn encode(kind: &str, checkpoints: &[tail::Checkpoint]) -> Checkpoint {
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
        kind: kind.to_string(),
        version: VERSION,
        data: serde_json::to_vec(&saved).unwrap_or_default(),
    }
}

/// The tailer's checkpoints from a saved one of the given kind.
pub fn decode(path: &Path, kind: &str, c: &Checkpoint) -> anyhow::Result<Vec<tail::Checkpoint>> {
    anyhow::ensure!(
        c.kind == kind && c.version <= VERSION,
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
pub fn report_notices(path: &Path, notices: &[Notice]) {
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
        let c = encode(KIND, &cps);
        assert_eq!(
            decode(Path::new("/var/log/nginx/access.log"), KIND, &c).unwrap(),
            cps
        );
        let newer = Checkpoint {
            version: VERSION + 1,
            ..c.clone()
        };
        let e = decode(Path::new("/x"), KIND, &newer)
            .unwrap_err()
            .to_string();
        assert!(e.contains("newer"), "{e}");
        let damaged = Checkpoint {
            data: b"{".to_vec(),
            ..c
        };
        let e = decode(Path::new("/x"), KIND, &damaged)
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}

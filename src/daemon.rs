//! `gatewatch run`: follows the configured logs live and feeds every line through the same
//! pipeline as `scan`.
//!
//! One thread (the reader) owns the files, the parsers, the pipeline and the state file. It
//! wakes when a watched folder changes (inotify, through `notify`) and at least once a second
//! (the re-check that is the correctness baseline: events only make it fast). After each round
//! of reading it commits, in one SQLite transaction, where reading stands and what the lines
//! added to the counters — so a crash or `kill -9` neither loses nor repeats a line.

use crate::alert::AlertKind;
use crate::config::{Config, SourceKind, StartAt};
use crate::detect::Change;
use crate::event::Format;
use crate::kb::{Kb, Lang};
use crate::log;
use crate::outbox::Alerting;
use crate::parse::{Parser, ParserOptions};
use crate::pipeline::{Pipeline, PipelineConfig, Settled, Sink};
use crate::state::{Counters, State};
use crate::tail::{Delivery, Notice, Start, Tailer};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often every file is checked even without a file-system event.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The longest line kept, in bytes; longer lines are counted and skipped.
const MAX_LINE: usize = 64 * 1024;
/// While the state cannot be written, the fault is logged again this often.
const FAULT_LOG_EVERY: Duration = Duration::from_secs(60);

/// How long a rotated-away log is kept open after it stops growing: the proxy writes to it
/// until it reopens its log (nginx: after `USR1` from logrotate's postrotate).
const ROTATE_WAIT: Duration = Duration::from_secs(30);

/// What the daemon is doing, for `/health`, `/metrics` and the status page; refreshed by the
/// reader after every round.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub files: Vec<FileStatus>,
    /// Lines per cause since start.
    pub causes: [u64; crate::event::Cause::COUNT],
    pub open_incidents: Vec<crate::detect::Incident>,
    pub incidents_opened: u64,
    pub incidents_closed: u64,
    /// Alerts per channel: sent, failed.
    pub alerts: std::collections::BTreeMap<String, (u64, u64)>,
    pub outbox_depth: u64,
    /// When the reader last finished a round, and last committed.
    pub round_at: Option<std::time::SystemTime>,
    pub commit_at: Option<std::time::SystemTime>,
    /// The last error, until a round succeeds again.
    pub error: Option<String>,
    pub upstreams_tracked: usize,
    pub upstreams_evicted: u64,
    /// Lines counted under `(other)`: their hour had too many distinct upstreams.
    pub upstreams_pooled_lines: u64,
    pub late_events: u64,
    pub started_at: Option<std::time::SystemTime>,
    /// For the status page: the knowledge base, this host's name, the state file.
    pub kb: Option<Arc<Kb>>,
    pub host: String,
    pub state_path: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FileStatus {
    pub path: String,
    pub format: String,
    pub lines: u64,
    pub unparsed: u64,
    /// Lines longer than the limit, skipped (counted in `unparsed` too).
    pub too_long: u64,
    /// Bytes written but not read yet.
    pub lag_bytes: u64,
}

/// Messages to the reader thread.
enum Wake {
    /// A watched folder changed.
    Fs,
    Reload(Box<Config>, Arc<Kb>),
    Stop,
    /// Lines received by a syslog listener.
    Datagrams {
        listen: Arc<str>,
        lines: Vec<Vec<u8>>,
    },
}

/// A syslog listener's lines, as the reader sees them.
struct SyslogSource {
    listen: Arc<str>,
    source: u16,
    parser: Parser,
    lines: u64,
    unparsed: u64,
    counts: Arc<crate::listen::Counts>,
}

/// One followed file.
struct Followed {
    tailer: Tailer,
    parser: Option<Parser>,
    format: Format,
    opts: ParserOptions,
    source: u16,
    lines: u64,
    unparsed: u64,
    /// Lines skipped for being longer than the limit: in all, and since the last time that
    /// was logged (at most once a minute per file).
    too_long: u64,
    too_long_unlogged: u64,
    too_long_logged: Option<Instant>,
}

/// A configured source and the files it currently names (a glob names several).
struct SourcePlan {
    pattern: PathBuf,
    format: Format,
    opts: ParserOptions,
    start: Start,
}

/// What the reader needs to record incident changes, and to tell observers.
struct Outputs {
    kb: Arc<Kb>,
    observers: Vec<Sender<Change>>,
    opened: u64,
    closed: u64,
    /// Changes not committed yet: written to the outbox with the next commit.
    notices: Vec<crate::outbox::Notice>,
    host: String,
    channels: Vec<(String, Lang)>,
    maintenance: Vec<crate::config::Maintenance>,
    renotify_ms: Option<i64>,
    /// Open incidents (upstream, entry) and when they were last announced (wall clock, Unix
    /// ms).
    announced: Vec<(String, crate::kb::EntryId, i64)>,
    /// Told after a commit that wrote messages.
    sender: Option<Arc<tokio::sync::watch::Sender<u64>>>,
    /// Messages handed to the sender while the state cannot be written.
    memory: crate::outbox::MemoryQueue,
    /// Incidents opened while the state could not be written (key → silenced), until their
    /// rows are written.
    silenced_in_memory: std::collections::HashMap<String, bool>,
}

impl Outputs {
    /// The notices are in the state: the sender may send them.
    fn committed(&mut self) {
        self.silenced_in_memory.clear();
        if !self.notices.is_empty() {
            self.notices.clear();
            if let Some(s) = &self.sender {
                s.send_modify(|n| *n += 1);
            }
        }
    }
}

/// What a commit needs to write the notices.
fn alerting<'a>(
    out: &'a Outputs,
    names: &'a [String],
    open: &'a [crate::detect::Incident],
) -> Alerting<'a> {
    Alerting {
        kb: &out.kb,
        host: &out.host,
        channels: &out.channels,
        sources: names,
        maintenance: &out.maintenance,
        open,
        now_ms: now_ms(),
    }
}

/// The wall clock, in Unix milliseconds.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where settled lines and incident changes go while reading.
struct ReaderSink<'a> {
    counters: &'a mut Counters,
    out: &'a mut Outputs,
    /// The latest event time seen, and when it was seen (the event clock).
    clock: &'a mut Option<(i64, Instant)>,
    /// Count lines as they settle (ALB objects, read whole); followed files count them as
    /// they are read, so the count is committed with the reading position.
    count_settled: bool,
}

impl Sink for ReaderSink<'_> {
    fn event(&mut self, s: &Settled<'_>) {
        let Some(t) = s.ev.time else { return };
        if self.count_settled {
            self.counters.add(t.ms, s.source, s.upstream, s.ev.cause);
            if self.clock.is_none_or(|(last, _)| t.ms > last) {
                *self.clock = Some((t.ms, Instant::now()));
            }
            return;
        }
        // Lines were counted as read; a join moves an access-log line to the cause (and
        // upstream) the error log gave it.
        if let Some(before) = s.joined_from {
            let own = s.ev.upstream(s.line);
            if before != s.ev.cause || own != s.upstream {
                self.counters.adjust(t.ms, s.source, own, before, -1);
                self.counters
                    .adjust(t.ms, s.source, s.upstream, s.ev.cause, 1);
            }
        }
    }

    fn change(&mut self, change: Change) {
        let out = &mut *self.out;
        match &change {
            Change::Opened(i) => {
                out.opened += 1;
                log!(
                    Warn,
                    "incident opened",
                    upstream = i.upstream,
                    cause = i.cause,
                    entry = out.kb.get(i.entry).id
                );
                out.announced.push((i.upstream.clone(), i.entry, now_ms()));
                out.notices
                    .push(crate::outbox::Notice::new(AlertKind::Opened, i.clone()));
            }
            Change::Closed(i) => {
                out.closed += 1;
                log!(
                    Info,
                    "incident resolved",
                    upstream = i.upstream,
                    cause = i.cause,
                    failures = i.failures
                );
                out.announced
                    .retain(|(u, e, _)| !(*u == i.upstream && *e == i.entry));
                out.notices
                    .push(crate::outbox::Notice::new(AlertKind::Resolved, i.clone()));
            }
        }
        for o in &out.observers {
            let _ = o.send(change.clone());
        }
    }
}

/// `*` and `?` in a file name (or an upstream, an entry id).
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Rotated or compressed names a glob must not pick up, or their lines would be read twice:
/// `access.log.1`, `access.log.2.gz`, `access.log-20240501`.
fn looks_rotated(name: &str) -> bool {
    let compressed = [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"];
    if compressed.iter().any(|c| name.ends_with(c)) {
        return true;
    }
    let last = name.rsplit(['.', '-']).next().unwrap_or("");
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

impl SourcePlan {
    /// The files the source names now.
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
                glob_match(name.as_bytes(), n.as_bytes()) && !looks_rotated(&n)
            })
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

/// How often a folder of ALB objects is listed.
const ALB_SCAN: Duration = Duration::from_secs(10);

/// How long without new ALB lines before ALB incidents may close on the wall clock.
const ALB_SILENCE: Duration = Duration::from_secs(15 * 60);

/// A folder of ALB access-log objects (`*.log.gz`, as `aws s3 sync` leaves them). Every object
/// is read once, whole, and recorded in the state with the counts its lines added.
struct AlbFolder {
    location: AlbLocation,
    source: u16,
    skip_existing: bool,
    /// ALB logs arrive about five minutes late: they have their own pipeline and event clock,
    /// which moves only with their lines.
    pipeline: Pipeline,
    clock: Option<(i64, Instant)>,
    last_scan: Option<Instant>,
    objects: u64,
    lines: u64,
    unparsed: u64,
}

/// Where ALB objects are.
enum AlbLocation {
    /// A folder, as `aws s3 sync` leaves it.
    Dir(PathBuf),
    /// A bucket and prefix, read directly.
    #[cfg(feature = "s3")]
    S3(Box<crate::s3::Bucket>),
}

impl AlbLocation {
    /// The finished `.log.gz` objects, by their end time: (path below the folder or prefix,
    /// size). For S3, listing starts after `offset`.
    fn list(&self, offset: Option<&str>) -> anyhow::Result<Vec<(String, u64)>> {
        let mut v: Vec<(String, u64)> = match self {
            AlbLocation::Dir(d) => alb_objects(d).into_iter().map(|(o, s, _)| (o, s)).collect(),
            #[cfg(feature = "s3")]
            AlbLocation::S3(b) => b.list(offset)?,
        };
        let _ = offset;
        v.sort_by(|a, b| (alb_end_time(&a.0), &a.0).cmp(&(alb_end_time(&b.0), &b.0)));
        Ok(v)
    }

    /// A local file with the object's content: the object itself in a folder, a download
    /// (deleted after reading) for S3.
    fn local(&self, object: &str, scratch: &Path, n: usize) -> anyhow::Result<(PathBuf, bool)> {
        let _ = (scratch, n);
        match self {
            AlbLocation::Dir(d) => Ok((d.join(object), false)),
            #[cfg(feature = "s3")]
            AlbLocation::S3(b) => {
                std::fs::create_dir_all(scratch)?;
                let to = scratch.join(format!("object-{n}.log.gz"));
                b.download(object, &to)?;
                Ok((to, true))
            }
        }
    }
}

/// The end of an ALB object's interval from its name (`…_20240501T1205Z_…`), for ordering.
fn alb_end_time(name: &str) -> Option<&str> {
    name.split('_').find(|p| {
        let b = p.as_bytes();
        b.len() == 14
            && b[8] == b'T'
            && b[13] == b'Z'
            && b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    })
}

/// The `.log.gz` objects below a folder, finished (unchanged for two seconds): (path below the
/// folder, size).
fn alb_objects(dir: &Path) -> Vec<(String, u64, PathBuf)> {
    fn walk(d: &Path, root: &Path, depth: u32, out: &mut Vec<(String, u64, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() && depth < 12 {
                walk(&p, root, depth + 1, out);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            // Connection logs share the prefix; AWS's test object is not a log.
            if !m.is_file()
                || !name.ends_with(".log.gz")
                || name.starts_with("conn_log_")
                || name.contains("ELBAccessLogTestFile")
            {
                continue;
            }
            let settled = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= Duration::from_secs(2));
            if settled {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, m.len(), p));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, 0, &mut out);
    out.sort_by(|a, b| {
        let ka = (alb_end_time(&a.0), &a.0);
        let kb = (alb_end_time(&b.0), &b.0);
        ka.cmp(&kb)
    });
    out
}

/// The reader thread's state.
struct Reader {
    state: State,
    first_run: bool,
    plans: Vec<SourcePlan>,
    files: Vec<Followed>,
    albs: Vec<AlbFolder>,
    syslogs: Vec<SyslogSource>,
    names: Vec<String>,
    pipeline: Pipeline,
    counters: Counters,
    clock: Option<(i64, Instant)>,
    out: Outputs,
    watched_dirs: Vec<PathBuf>,
    status: Arc<std::sync::Mutex<Status>>,
    error: Option<String>,
    /// When the state last failed to be written and when that was last logged.
    failing_since: Option<(Instant, Instant)>,
    /// The sender thread, restarted with the channels of a new configuration.
    sender: Option<crate::send::Sender>,
    /// How many sources have their format recorded in the state.
    registered: usize,
    /// The fallback state folder in use (the configured one could not be opened), and when
    /// that was last said.
    fallback: Option<(PathBuf, Instant)>,
}

/// Opens the state in the configured folder; when that fails (a read-only or full file system,
/// no permission), opens a fallback state in `$RUNTIME_DIRECTORY` or the temporary folder,
/// starting from a copy of the configured state when it can be read, and says so loudly.
/// `fallback` is the fallback already in use (a reload keeps it). Returns the state, whether it
/// is new, and the fallback folder if one is used.
fn open_state(
    dir: &Path,
    fallback: Option<&Path>,
) -> anyhow::Result<(State, bool, Option<PathBuf>)> {
    if let Some(f) = fallback {
        let (state, new) = State::open(f)?;
        return Ok((state, new, Some(f.to_path_buf())));
    }
    let e = match State::open(dir) {
        Ok((state, new)) => return Ok((state, new, None)),
        Err(e) => e,
    };
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let fb = base.join("gatewatch-fallback-state");
    std::fs::create_dir_all(&fb).with_context(|| {
        format!(
            "{e:#}; and the fallback folder {} cannot be made",
            fb.display()
        )
    })?;
    for ext in ["", "-wal", "-shm"] {
        let name = format!("{}{ext}", crate::state::FILE_NAME);
        let _ = std::fs::remove_file(fb.join(&name));
        let from = dir.join(&name);
        if ext != "-shm" && from.exists() {
            let _ = std::fs::copy(&from, fb.join(&name));
        }
    }
    let (state, new) = State::open(&fb).with_context(|| {
        format!(
            "{e:#}; and the fallback state in {} cannot be opened",
            fb.display()
        )
    })?;
    log!(
        Error,
        "the state folder cannot be used; running on a fallback state (a copy, if the state could be read) that a restart with a writable state folder leaves behind",
        state = dir.display(),
        fallback = fb.display(),
        error = format!("{e:#}")
    );
    Ok((state, new, Some(fb)))
}

impl Reader {
    fn new(
        cfg: &Config,
        kb: Arc<Kb>,
        observers: Vec<Sender<Change>>,
        fallback: Option<&Path>,
    ) -> anyhow::Result<Reader> {
        let (state, first_run, fallback) = open_state(&cfg.state_dir, fallback)?;
        let mut plans = Vec::new();
        let mut alb_dirs: Vec<(String, AlbLocation, bool)> = Vec::new();
        let mut syslog_listens: Vec<(String, crate::time::Zone)> = Vec::new();
        for s in &cfg.sources {
            match &s.kind {
                SourceKind::Log {
                    path,
                    format: Format::Alb,
                } => {
                    let location = if path.starts_with("s3://") {
                        #[cfg(feature = "s3")]
                        {
                            AlbLocation::S3(Box::new(crate::s3::Bucket::open(
                                path,
                                s.endpoint.as_deref(),
                                s.region.as_deref(),
                            )?))
                        }
                        #[cfg(not(feature = "s3"))]
                        anyhow::bail!(
                            "source {path}: this gatewatch was built without S3 support (cargo feature s3); sync the bucket to a folder and follow the folder"
                        )
                    } else {
                        AlbLocation::Dir(PathBuf::from(path))
                    };
                    alb_dirs.push((
                        path.clone(),
                        location,
                        s.start_at == StartAt::End && first_run,
                    ));
                }
                SourceKind::Log { path, format } => plans.push(SourcePlan {
                    pattern: PathBuf::from(path),
                    format: *format,
                    opts: ParserOptions {
                        zone: s.timezone.clone(),
                        year: chrono::Datelike::year(&chrono::Utc::now()),
                        log_format: s.log_format.clone(),
                    },
                    start: match s.start_at {
                        StartAt::End if first_run => Start::End,
                        _ => Start::Beginning,
                    },
                }),
                SourceKind::Syslog { listen } => {
                    syslog_listens.push((listen.clone(), s.timezone.clone()))
                }
            }
        }
        anyhow::ensure!(
            !plans.is_empty() || !alb_dirs.is_empty() || !syslog_listens.is_empty(),
            "no log to follow: the configuration names no [[source]]"
        );
        // Joining needs an access log and an error log of nginx.
        let has = |f: Format| plans.iter().any(|p| p.format == f);
        let year = chrono::Datelike::year(&chrono::Utc::now());
        let pipeline = Pipeline::new(
            kb.clone(),
            PipelineConfig {
                detect: cfg.detect.clone(),
                join: (has(Format::NginxAccess) && has(Format::NginxError)).then_some(cfg.join),
            },
        );
        let mut names = Vec::new();
        let albs = alb_dirs
            .into_iter()
            .map(|(name, location, skip_existing)| {
                names.push(name);
                AlbFolder {
                    source: (names.len() - 1) as u16,
                    location,
                    skip_existing,
                    pipeline: Pipeline::new(
                        kb.clone(),
                        PipelineConfig {
                            detect: cfg.detect.clone(),
                            join: None,
                        },
                    ),
                    clock: None,
                    last_scan: None,
                    objects: 0,
                    lines: 0,
                    unparsed: 0,
                }
            })
            .collect();
        let syslogs = syslog_listens
            .into_iter()
            .map(|(listen, zone)| {
                names.push(listen.clone());
                SyslogSource {
                    source: (names.len() - 1) as u16,
                    listen: Arc::from(listen.as_str()),
                    parser: Parser::new(
                        Format::Haproxy,
                        &ParserOptions {
                            zone,
                            year,
                            log_format: None,
                        },
                        &[],
                    ),
                    lines: 0,
                    unparsed: 0,
                    counts: Arc::default(),
                }
            })
            .collect();
        let mut r = Reader {
            state,
            first_run,
            plans,
            files: Vec::new(),
            albs,
            syslogs,
            names,
            pipeline,
            counters: Counters::new(cfg.detect.max_upstreams),
            clock: None,
            out: Outputs {
                kb,
                observers,
                opened: 0,
                closed: 0,
                notices: Vec::new(),
                host: crate::send::host_name(&cfg.alerts),
                channels: cfg
                    .alert_channels()
                    .into_iter()
                    .map(|c| (c.name, c.lang))
                    .collect(),
                maintenance: cfg.maintenance.clone(),
                renotify_ms: cfg.alerts.renotify.map(|d| d.as_millis() as i64),
                announced: Vec::new(),
                sender: None,
                memory: Default::default(),
                silenced_in_memory: Default::default(),
            },
            watched_dirs: Vec::new(),
            status: Arc::new(std::sync::Mutex::new(Status {
                started_at: Some(std::time::SystemTime::now()),
                ..Status::default()
            })),
            error: None,
            failing_since: None,
            sender: None,
            registered: 0,
            fallback: fallback.map(|f| (f, Instant::now())),
        };
        r.restore_incidents()?;
        r.discover()?;
        Ok(r)
    }

    /// Takes back the incidents that were open when the daemon stopped: each goes to the
    /// detector of its source (an ALB folder's own, or the main one).
    fn restore_incidents(&mut self) -> anyhow::Result<()> {
        let open = crate::outbox::open_incidents(self.state.conn(), &self.out.kb)?;
        for (inc, notified) in open {
            let alb = self
                .albs
                .iter_mut()
                .find(|a| inc.sources.contains(&a.source));
            // The event clock starts at the incident's last failure, so that without new
            // lines it still closes after the quiet period.
            let (detector, clock) = match alb {
                Some(a) => (a.pipeline.detector_mut(), &mut a.clock),
                None => (self.pipeline.detector_mut(), &mut self.clock),
            };
            detector.restore(&inc);
            if clock.is_none_or(|(t, _)| t < inc.end_ms) {
                *clock = Some((inc.end_ms, Instant::now()));
            }
            log!(
                Info,
                "incident still open from before the restart",
                upstream = inc.upstream,
                entry = self.out.kb.get(inc.entry).id
            );
            self.out
                .announced
                .push((inc.upstream.clone(), inc.entry, notified));
        }
        Ok(())
    }

    /// The open incidents of every pipeline.
    fn open_incidents(&self) -> Vec<crate::detect::Incident> {
        let mut v = self.pipeline.detector().open_incidents();
        for a in &self.albs {
            v.extend(a.pipeline.detector().open_incidents());
        }
        v
    }

    /// Starts following files the sources name that are not followed yet.
    fn discover(&mut self) -> anyhow::Result<()> {
        let checkpoints = self.state.checkpoints()?;
        for plan in &self.plans {
            for path in plan.files() {
                if self.files.iter().any(|f| f.tailer.path() == path) {
                    continue;
                }
                anyhow::ensure!(
                    self.names.len() < u16::MAX as usize,
                    "too many files to follow"
                );
                let mine: Vec<_> = checkpoints
                    .iter()
                    .filter(|c| c.path == path)
                    .cloned()
                    .collect();
                let mut notices = Vec::new();
                let tailer = Tailer::new(
                    path.clone(),
                    &mine,
                    plan.start,
                    MAX_LINE,
                    ROTATE_WAIT,
                    &mut notices,
                );
                report_notices(&path, &notices);
                log!(
                    Info,
                    "following",
                    file = path.display(),
                    format = plan.format,
                    resumed = !mine.is_empty()
                );
                let source = self.names.len() as u16;
                self.names.push(path.display().to_string());
                self.files.push(Followed {
                    tailer,
                    parser: None,
                    format: plan.format,
                    opts: plan.opts.clone(),
                    source,
                    lines: 0,
                    unparsed: 0,
                    too_long: 0,
                    too_long_unlogged: 0,
                    too_long_logged: None,
                });
            }
        }
        Ok(())
    }

    /// Reads everything new in every file (in rounds of about a megabyte per file), committing
    /// after each round. Returns the number of lines read.
    fn read_all(&mut self) -> anyhow::Result<u64> {
        self.read_albs()?;
        let mut total = 0;
        loop {
            let (lines, more) = self.read_round();
            total += lines;
            if lines > 0 || !self.counters.is_empty() {
                self.commit()?;
            }
            if !more {
                return Ok(total);
            }
        }
    }

    fn read_round(&mut self) -> (u64, bool) {
        let Reader {
            files,
            pipeline,
            counters,
            out,
            clock,
            ..
        } = self;
        let mut lines = 0;
        let mut more = false;
        for f in files.iter_mut() {
            let mut notices = Vec::new();
            let mut pending: Vec<Option<Vec<u8>>> = Vec::new();
            let Followed {
                tailer,
                parser,
                format,
                opts,
                source,
                lines: count,
                unparsed,
                too_long: too_long_total,
                too_long_unlogged,
                too_long_logged,
            } = f;
            let mut sink = ReaderSink {
                counters,
                out,
                clock,
                count_settled: false,
            };
            // Line numbers count every line, over-long ones too.
            let number = std::cell::Cell::new(*count);
            let mut handle = |line: &[u8], parser: &mut Parser, sink: &mut ReaderSink<'_>| {
                number.set(number.get() + 1);
                let line_no = number.get();
                match parser.parse(line) {
                    Ok(mut ev) => {
                        if ev.time.is_none() {
                            ev.time = sink.clock.map(|(t, _)| crate::event::Timestamp::new(t, 0));
                        }
                        if let Some(t) = ev.time {
                            sink.counters
                                .add(t.ms, *source, ev.upstream(line), ev.cause);
                            // The event clock moves with every line read, also with lines the
                            // joiner holds back.
                            if sink.clock.is_none_or(|(last, _)| t.ms > last) {
                                *sink.clock = Some((t.ms, Instant::now()));
                            }
                        }
                        pipeline.push(*source, line_no, line, ev, sink);
                    }
                    Err(_) => *unparsed += 1,
                }
            };
            let mut too_long = 0;
            more |= tailer.poll(&mut notices, &mut |d| {
                lines += 1;
                let Delivery::Line(line) = d else {
                    too_long += 1;
                    match parser {
                        Some(_) => number.set(number.get() + 1),
                        None => pending.push(None),
                    }
                    return;
                };
                match parser {
                    Some(p) => handle(line, p, &mut sink),
                    // The format is recognised from the first lines of the file.
                    None => pending.push(Some(line.to_vec())),
                }
            });
            if pending.iter().any(Option::is_some) {
                let samples: Vec<&[u8]> = pending.iter().flatten().map(Vec::as_slice).collect();
                let p = parser.insert(Parser::new(*format, opts, &samples));
                log!(
                    Info,
                    "format",
                    file = tailer.path().display(),
                    layout = p.describe()
                );
                for line in &pending {
                    match line {
                        Some(line) => handle(line, p, &mut sink),
                        None => number.set(number.get() + 1),
                    }
                }
            } else {
                // Only over-long lines so far: numbered, the format still unknown.
                number.set(number.get() + pending.len() as u64);
            }
            *count = number.get();
            *unparsed += too_long;
            *too_long_total += too_long;
            *too_long_unlogged += too_long;
            if *too_long_unlogged > 0
                && too_long_logged.is_none_or(|t| t.elapsed() >= FAULT_LOG_EVERY)
            {
                log!(
                    Warn,
                    "lines longer than the limit skipped",
                    file = tailer.path().display(),
                    lines = *too_long_unlogged,
                    limit_bytes = MAX_LINE
                );
                *too_long_unlogged = 0;
                *too_long_logged = Some(Instant::now());
            }
            report_notices(tailer.path(), &notices);
        }
        (lines, more)
    }

    /// Lists the ALB folders (every [`ALB_SCAN`]) and reads the objects not read yet, a slot
    /// of five minutes at a time, merged in time order; each slot is committed with its counts.
    fn read_albs(&mut self) -> anyhow::Result<()> {
        let scratch = self.state.path().with_file_name("alb-download");
        let Reader {
            albs,
            state,
            counters,
            out,
            names,
            ..
        } = self;
        for a in albs.iter_mut() {
            if a.last_scan.is_some_and(|t| t.elapsed() < ALB_SCAN) {
                continue;
            }
            a.last_scan = Some(Instant::now());
            let source = names[a.source as usize].clone();
            let mut new = Vec::new();
            let offset = state.alb_offset(&source)?;
            for obj in a.location.list(offset.as_deref())? {
                if !state.alb_seen(&source, &obj.0)? {
                    new.push(obj);
                }
            }
            if a.skip_existing {
                // The first run starts from now: objects already there are history.
                a.skip_existing = false;
                if !new.is_empty() {
                    let skipped: Vec<(String, u64, i64)> =
                        new.iter().map(|(o, size)| (o.clone(), *size, -1)).collect();
                    state.commit_alb(
                        &source,
                        &skipped,
                        counters,
                        names,
                        Some((&alerting(out, names, &[]), &out.notices)),
                    )?;
                    out.committed();
                    log!(
                        Info,
                        "ALB objects there before the first run are not read",
                        source = source,
                        objects = skipped.len()
                    );
                }
                continue;
            }
            // One slot (same end time) at a time: its objects come from the balancer's nodes
            // and cover the same five minutes.
            let mut i = 0;
            while i < new.len() {
                let slot = alb_end_time(&new[i].0);
                let mut j = i + 1;
                while j < new.len()
                    && alb_end_time(&new[j].0) == slot
                    && slot.is_some()
                    && j - i < 256
                {
                    j += 1;
                }
                let batch = &new[i..j];
                let mut files = Vec::with_capacity(batch.len());
                let mut downloads = Vec::new();
                for (n, (o, _)) in batch.iter().enumerate() {
                    let (path, temporary) = a.location.local(o, &scratch, n)?;
                    files.push(path.display().to_string());
                    if temporary {
                        downloads.push(path);
                    }
                }
                let sources = vec![a.source; files.len()];
                let opts = crate::scan::ScanOptions {
                    format: Some(Format::Alb),
                    max_line: MAX_LINE,
                    ..Default::default()
                };
                let mut sink = ReaderSink {
                    counters,
                    out,
                    clock: &mut a.clock,
                    count_settled: true,
                };
                let reports =
                    crate::scan::merge_into(&files, &sources, &opts, &mut a.pipeline, &mut sink);
                for d in &downloads {
                    let _ = std::fs::remove_file(d);
                }
                let reports = reports?;
                let done: Vec<(String, u64, i64)> = batch
                    .iter()
                    .zip(&reports)
                    .map(|((o, size), r)| (o.clone(), *size, r.lines as i64))
                    .collect();
                state.commit_alb(
                    &source,
                    &done,
                    counters,
                    names,
                    Some((&alerting(out, names, &[]), &out.notices)),
                )?;
                out.committed();
                for r in &reports {
                    a.lines += r.lines;
                    a.unparsed += r.unparsed;
                }
                a.objects += batch.len() as u64;
                log!(
                    Info,
                    "read ALB objects",
                    source = source,
                    objects = batch.len(),
                    slot = slot.unwrap_or("-")
                );
                i = j;
            }
        }
        Ok(())
    }

    /// Lines from a syslog listener: parsed, counted and fed to the pipeline like lines read
    /// from a file (there is no position to save: a datagram is received once).
    fn take_datagrams(&mut self, listen: &str, lines: Vec<Vec<u8>>) {
        let Reader {
            syslogs,
            pipeline,
            counters,
            out,
            clock,
            ..
        } = self;
        let Some(src) = syslogs.iter_mut().find(|s| &*s.listen == listen) else {
            return;
        };
        src.counts
            .queued
            .fetch_sub(lines.len(), std::sync::atomic::Ordering::Relaxed);
        let mut sink = ReaderSink {
            counters,
            out,
            clock,
            count_settled: false,
        };
        for line in lines {
            src.lines += 1;
            match src.parser.parse(&line) {
                Ok(ev) => {
                    if let Some(t) = ev.time {
                        sink.counters
                            .add(t.ms, src.source, ev.upstream(&line), ev.cause);
                        if sink.clock.is_none_or(|(last, _)| t.ms > last) {
                            *sink.clock = Some((t.ms, Instant::now()));
                        }
                    }
                    pipeline.push(src.source, src.lines, &line, ev, &mut sink);
                }
                Err(_) => src.unparsed += 1,
            }
        }
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        let paths: Vec<PathBuf> = self
            .files
            .iter()
            .map(|f| f.tailer.path().to_path_buf())
            .collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let checkpoints: Vec<_> = self
            .files
            .iter()
            .flat_map(|f| f.tailer.checkpoints())
            .collect();
        let open = if self.out.announced.is_empty() {
            Vec::new()
        } else {
            self.open_incidents()
        };
        if self.registered < self.names.len() {
            let mut formats: Vec<(String, Format)> = Vec::new();
            let mut add = |source: u16, format: Format| {
                if let Some(n) = self.names.get(source as usize) {
                    formats.push((n.clone(), format));
                }
            };
            for f in &self.files {
                add(f.source, f.format);
            }
            for a in &self.albs {
                add(a.source, Format::Alb);
            }
            for s in &self.syslogs {
                add(s.source, Format::Haproxy);
            }
            self.state.register_sources(&formats)?;
            self.registered = self.names.len();
        }
        let a = alerting(&self.out, &self.names, &open);
        self.state.commit(
            &refs,
            &checkpoints,
            &mut self.counters,
            &self.names,
            Some((&a, &self.out.notices)),
        )?;
        self.out.committed();
        Ok(())
    }

    /// Announces again the incidents open for longer than the renotify interval (wall clock:
    /// it is about people, not about log time).
    fn remind(&mut self, now: i64) {
        let Some(every) = self.out.renotify_ms else {
            return;
        };
        if !self.out.announced.iter().any(|(_, _, t)| now - t >= every) {
            return;
        }
        let open = self.open_incidents();
        for (upstream, entry, at) in &mut self.out.announced {
            if now - *at < every {
                continue;
            }
            if let Some(inc) = open
                .iter()
                .find(|i| i.upstream == *upstream && i.entry == *entry)
            {
                *at = now;
                self.out
                    .notices
                    .push(crate::outbox::Notice::new(AlertKind::Reminder, inc.clone()));
            }
        }
    }

    /// Moves event time on by the wall-clock time since the last event, so bursts close and
    /// held lines settle when the logs go quiet — without trusting that the proxy's clock (or
    /// the configured zone of its lines) agrees with ours.
    fn tick(&mut self) {
        let Reader {
            pipeline,
            albs,
            counters,
            out,
            clock,
            ..
        } = self;
        if let Some((last, at)) = *clock {
            let now = last + at.elapsed().as_millis() as i64;
            let mut sink = ReaderSink {
                counters,
                out,
                clock,
                count_settled: false,
            };
            pipeline.tick(now, &mut sink);
        }
        // ALB objects arrive every five minutes: their clock moves only with their lines,
        // unless none have come for a quarter of an hour (the balancer has no traffic, or
        // logging stopped), when incidents are allowed to close.
        for a in albs.iter_mut() {
            if let Some((last, at)) = a.clock
                && at.elapsed() > ALB_SILENCE
            {
                let now = last + (at.elapsed() - ALB_SILENCE).as_millis() as i64;
                let mut sink = ReaderSink {
                    counters,
                    out,
                    clock: &mut a.clock,
                    count_settled: true,
                };
                a.pipeline.tick(now, &mut sink);
            }
        }
    }

    /// Publishes what the daemon is doing.
    fn publish(&self, committed: bool) {
        let det = self.pipeline.detector();
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        st.files = self
            .files
            .iter()
            .map(|f| FileStatus {
                path: f.tailer.path().display().to_string(),
                format: f
                    .parser
                    .as_ref()
                    .map_or_else(|| f.format.to_string(), Parser::describe),
                lines: f.lines,
                unparsed: f.unparsed,
                too_long: f.too_long,
                lag_bytes: f.tailer.lag_bytes(),
            })
            .collect();
        for a in &self.albs {
            st.files.push(FileStatus {
                path: self.names[a.source as usize].clone(),
                format: format!("alb ({} objects)", a.objects),
                lines: a.lines,
                unparsed: a.unparsed,
                too_long: 0,
                lag_bytes: 0,
            });
        }
        for l in &self.syslogs {
            st.files.push(FileStatus {
                path: l.listen.to_string(),
                format: format!(
                    "syslog listener ({} dropped)",
                    l.counts.dropped.load(std::sync::atomic::Ordering::Relaxed)
                ),
                lines: l.lines,
                unparsed: l.unparsed,
                too_long: 0,
                lag_bytes: 0,
            });
        }
        st.causes = self.pipeline.counts().0;
        for a in &self.albs {
            for (total, n) in st.causes.iter_mut().zip(a.pipeline.counts().0) {
                *total += n;
            }
        }
        st.open_incidents = det.open_incidents();
        for a in &self.albs {
            st.open_incidents
                .extend(a.pipeline.detector().open_incidents());
        }
        st.incidents_opened = self.out.opened;
        st.incidents_closed = self.out.closed;
        st.upstreams_tracked = det.tracked();
        st.upstreams_evicted = det.stats.evicted;
        st.upstreams_pooled_lines = self.counters.pooled;
        st.late_events = det.stats.late;
        let now = std::time::SystemTime::now();
        st.round_at = Some(now);
        if committed {
            st.commit_at = Some(now);
        }
        st.error = self.error.clone();
        if st.kb.as_ref().is_none_or(|k| !Arc::ptr_eq(k, &self.out.kb)) {
            st.kb = Some(self.out.kb.clone());
        }
        if st.host != self.out.host {
            st.host = self.out.host.clone();
        }
        if st.state_path.is_none() {
            st.state_path = Some(self.state.path().to_path_buf());
        }
    }

    /// The folders to watch for file-system events.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = self
            .plans
            .iter()
            .filter_map(|p| p.pattern.parent().map(Path::to_path_buf))
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p
                }
            })
            .collect();
        d.sort();
        d.dedup();
        d
    }
}

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
            Notice::Lost { id, offset } => log!(
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

/// A running daemon.
pub struct Daemon {
    wake: Sender<Wake>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    status: Arc<std::sync::Mutex<Status>>,
    listeners: Vec<std::thread::JoinHandle<()>>,
    stop_listeners: Arc<std::sync::atomic::AtomicBool>,
}

impl Daemon {
    /// Starts following the configured logs. `observers` receive every incident change.
    /// Returns once the first read of every file is done (everything already in the logs has
    /// been read), which is when systemd is told the service is ready.
    pub fn start(
        cfg: &Config,
        kb: Arc<Kb>,
        observers: Vec<Sender<Change>>,
    ) -> anyhow::Result<Daemon> {
        let mut reader = Reader::new(cfg, kb, observers, None)?;
        let waker = Arc::new(tokio::sync::watch::channel(0u64).0);
        reader.out.sender = Some(waker.clone());
        let (wake, rx) = mpsc::channel();
        // Syslog listeners: bound now, so a taken port is an error at start.
        let stop_listeners = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut listeners = Vec::new();
        for src in &reader.syslogs {
            let socket = crate::listen::Socket::bind(&src.listen)?;
            log!(Info, "listening for syslog", listen = src.listen);
            let (wake, listen, stop, counts) = (
                wake.clone(),
                src.listen.clone(),
                stop_listeners.clone(),
                src.counts.clone(),
            );
            listeners.push(
                std::thread::Builder::new()
                    .name("gatewatch-syslog".into())
                    .spawn(move || {
                        crate::listen::serve(socket, stop, counts, |lines| {
                            wake.send(Wake::Datagrams {
                                listen: listen.clone(),
                                lines,
                            })
                            .is_ok()
                        })
                    })
                    .context("starting a syslog listener")?,
            );
        }
        let watcher = watch(&reader.dirs(), wake.clone());
        if let Err(e) = reader.read_all() {
            // Not fatal: the state cannot be written now (disk full, read-only); the reader
            // retries, and alerts go out from memory meanwhile.
            reader.state_failed(&e);
            reader.hand_over();
        }
        // The sender starts once what the logs already hold is read (and its alerts are in the
        // outbox): a summary due now covers the lines written while gatewatch was down.
        reader.sender = Some(crate::send::Sender::start(
            &reader.sender_config(cfg),
            reader.out.kb.clone(),
            reader.status.clone(),
            waker,
            reader.out.memory.clone(),
        )?);
        reader.publish(true);
        reader.watched_dirs = reader.dirs();
        let status = reader.status.clone();
        if reader.first_run {
            log!(
                Info,
                "first run: state created",
                state = reader.state.path().display()
            );
        }
        let thread = std::thread::Builder::new()
            .name("gatewatch-reader".into())
            .spawn(move || {
                let _watcher = watcher;
                reader.run(rx)
            })
            .context("starting the reader thread")?;
        Ok(Daemon {
            wake,
            thread: Some(thread),
            status,
            listeners,
            stop_listeners,
        })
    }

    /// The shared status the reader refreshes after every round.
    pub fn status(&self) -> Arc<std::sync::Mutex<Status>> {
        self.status.clone()
    }

    /// Replaces the configuration and knowledge base (already checked). Files still named are
    /// read on from where they are.
    pub fn reload(&self, cfg: Config, kb: Arc<Kb>) {
        let _ = self.wake.send(Wake::Reload(Box::new(cfg), kb));
    }

    /// Reads what is left, records where reading stands, and stops.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_listeners
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for l in self.listeners.drain(..) {
            let _ = l.join();
        }
        let _ = self.wake.send(Wake::Stop);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("the reader thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_listeners
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.wake.send(Wake::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches folders; events wake the reader. Without inotify (limits, NFS) the once-a-second
/// re-check still finds everything.
fn watch(dirs: &[PathBuf], wake: Sender<Wake>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let handler = move |res: notify::Result<notify::Event>| {
        let relevant = match res {
            // Our own reads produce access events: ignore them, or reading would wake reading.
            Ok(ev) => {
                matches!(
                    ev.kind,
                    EventKind::Create(_)
                        | EventKind::Modify(_)
                        | EventKind::Remove(_)
                        | EventKind::Other
                ) || ev.need_rescan()
            }
            Err(_) => true,
        };
        if relevant {
            let _ = wake.send(Wake::Fs);
        }
    };
    let mut w = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            log!(
                Warn,
                "no file-system events; checking files every second",
                error = e
            );
            return None;
        }
    };
    for d in dirs {
        if let Err(e) = w.watch(d, RecursiveMode::NonRecursive) {
            log!(
                Warn,
                "cannot watch folder; checking it every second",
                folder = d.display(),
                error = e
            );
        }
    }
    Some(w)
}

impl Reader {
    fn run(mut self, rx: Receiver<Wake>) -> anyhow::Result<()> {
        let watchdog = sd_notify::watchdog_enabled();
        let mut last_ping = Instant::now();
        loop {
            let mut stop = false;
            let mut reload = None;
            let mut msgs = Vec::new();
            match rx.recv_timeout(RECHECK) {
                Ok(m) => msgs.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            // Many events may have queued up during one read: one more read covers them all.
            msgs.extend(rx.try_iter());
            for m in msgs {
                match m {
                    Wake::Stop => stop = true,
                    Wake::Reload(c, k) => reload = Some((c, k)),
                    Wake::Fs => {}
                    Wake::Datagrams { listen, lines } => self.take_datagrams(&listen, lines),
                }
            }
            if let Some((cfg, kb)) = reload {
                self.reload(&cfg, kb)?;
            }
            if let Err(e) = self.discover() {
                log!(Error, "looking for new files", error = format!("{e:#}"));
            }
            // A failed round (the state file cannot be written: disk full, read-only, failing)
            // is retried in the next one; nothing read is lost meanwhile, it is held in memory,
            // and incident changes go to the sender from memory.
            let result = self.read_all().map(|_| ());
            self.tick();
            self.remind(now_ms());
            self.remind_fallback();
            // Incidents closed by the clock, and reminders, are written now, not with the next
            // lines (there may be none for a long time).
            let result = match result {
                Ok(()) if !self.out.notices.is_empty() => self.commit(),
                r => r,
            };
            let committed = match result {
                Ok(()) => {
                    if let Some((since, _)) = self.failing_since.take() {
                        log!(
                            Info,
                            "the state can be written again",
                            state = self.state.path().display(),
                            failed_for_s = since.elapsed().as_secs()
                        );
                    }
                    self.error = None;
                    true
                }
                Err(e) => {
                    self.state_failed(&e);
                    self.hand_over();
                    false
                }
            };
            self.publish(committed);
            if let Some(interval) = watchdog
                && last_ping.elapsed() >= interval / 2
            {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                last_ping = Instant::now();
            }
            if stop {
                self.commit()?;
                log!(
                    Info,
                    "stopped; reading positions saved",
                    state = self.state.path().display()
                );
                return Ok(());
            }
        }
    }

    /// The config the sender works with: the state folder actually in use.
    fn sender_config(&self, cfg: &Config) -> Config {
        let mut c = cfg.clone();
        if let Some((f, _)) = &self.fallback {
            c.state_dir = f.clone();
        }
        c
    }

    /// Says again, once a minute, that a fallback state is in use.
    fn remind_fallback(&mut self) {
        if let Some((f, said)) = &mut self.fallback
            && said.elapsed() >= FAULT_LOG_EVERY
        {
            log!(
                Error,
                "still running on a fallback state; restart gatewatch once the state folder is writable",
                fallback = f.display()
            );
            *said = Instant::now();
        }
    }

    /// Logs a failure to write the state: when it first happens, when the error changes, and
    /// once a minute while it lasts.
    fn state_failed(&mut self, e: &anyhow::Error) {
        let mut msg = format!("{e:#}");
        if crate::state::is_corrupt(e) {
            msg.push_str(" (the state file is damaged: restart gatewatch to move it aside and start a fresh one)");
        }
        let now = Instant::now();
        let (since, logged) = self.failing_since.get_or_insert((now, now));
        let first = *logged == now;
        if first
            || self.error.as_deref() != Some(msg.as_str())
            || logged.elapsed() >= FAULT_LOG_EVERY
        {
            log!(
                Error,
                "cannot save the state; retrying, alerts go out from memory meanwhile",
                state = self.state.path().display(),
                failing_for_s = since.elapsed().as_secs(),
                error = msg
            );
            *logged = now;
        }
        self.error = Some(msg);
    }

    /// The state cannot be written: hands the incident changes not yet handed over to the
    /// sender directly, deciding as the outbox would. They stay in `notices`, marked
    /// delivered, and are recorded as sent once the state can be written.
    fn hand_over(&mut self) {
        if self.out.notices.iter().all(|n| n.delivered.is_some()) {
            return;
        }
        let open = self.open_incidents();
        let now = now_ms();
        let mut messages: Vec<crate::outbox::MemoryMessage> = Vec::new();
        let mut opened: Vec<(String, bool)> = Vec::new();
        // Notices go out in messages grouped by kind (consecutive ones of the same kind share
        // one), the same groups on every channel. A group's time stamp, `now` plus its number,
        // makes its message id, which the notices keep for the outbox.
        let mut made: Vec<(usize, i64)> = Vec::new();
        let mut group: Option<(AlertKind, i64)> = None;
        {
            let mut a = alerting(&self.out, &self.names, &open);
            a.now_ms = now;
            for (i, n) in self.out.notices.iter().enumerate() {
                if n.delivered.is_some() {
                    continue;
                }
                let (send, silenced) =
                    crate::outbox::decide(self.state.conn(), &a, n, &self.out.silenced_in_memory);
                let key = crate::alert::incident_key(a.host, a.kb, &n.incident);
                if n.kind == AlertKind::Opened {
                    opened.push((key.clone(), silenced));
                }
                if !send {
                    made.push((i, now));
                    continue;
                }
                let stamp = match group {
                    Some((kind, stamp)) if kind == n.kind => stamp,
                    Some((_, stamp)) => stamp + 1,
                    None => now,
                };
                group = Some((n.kind, stamp));
                made.push((i, stamp));
                for (channel, lang) in a.channels {
                    let item = crate::alert::item(&n.incident, a.kb, *lang, a.host, a.sources);
                    match messages
                        .iter_mut()
                        .rev()
                        .find(|m| m.channel == *channel && m.created == stamp)
                    {
                        Some(m) => {
                            m.keys.push(key.clone());
                            m.items.push(item);
                        }
                        None => messages.push(crate::outbox::MemoryMessage {
                            channel: channel.clone(),
                            kind: n.kind,
                            keys: vec![key.clone()],
                            items: vec![item],
                            created: stamp,
                            attempts: 0,
                            next_try: now,
                        }),
                    }
                }
            }
        }
        self.out.silenced_in_memory.extend(opened);
        for (i, stamp) in made {
            self.out.notices[i].delivered = Some(stamp);
        }
        if messages.is_empty() {
            return;
        }
        log!(
            Warn,
            "alerts handed to the sender from memory (the state cannot be written)",
            messages = messages.len()
        );
        self.out
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(messages);
        if let Some(s) = &self.out.sender {
            s.send_modify(|n| *n += 1);
        }
    }

    fn reload(&mut self, cfg: &Config, kb: Arc<Kb>) -> anyhow::Result<()> {
        if let Err(e) = self.commit() {
            log!(
                Error,
                "reload postponed: the state cannot be saved; the old configuration keeps running",
                error = format!("{e:#}")
            );
            return Ok(());
        }
        let observers = std::mem::take(&mut self.out.observers);
        let fallback = self.fallback.as_ref().map(|(f, _)| f.clone());
        let fresh = Reader::new(cfg, kb, observers, fallback.as_deref());
        match fresh {
            Ok(mut r) => {
                r.first_run = false;
                r.status = self.status.clone();
                r.out.opened = self.out.opened;
                r.out.closed = self.out.closed;
                r.out.sender = self.out.sender.clone();
                r.out.memory = self.out.memory.clone();
                // The sender follows the new channels (after the commit above, nothing of the
                // old configuration is left unwritten).
                drop(self.sender.take());
                if let Some(waker) = &r.out.sender {
                    match crate::send::Sender::start(
                        &r.sender_config(cfg),
                        r.out.kb.clone(),
                        r.status.clone(),
                        waker.clone(),
                        r.out.memory.clone(),
                    ) {
                        Ok(s) => r.sender = Some(s),
                        Err(e) => log!(Error, "restarting the sender", error = format!("{e:#}")),
                    }
                }
                // The listeners stay as they were started: their counters carry on.
                for s in &mut r.syslogs {
                    if let Some(old) = self.syslogs.iter().find(|o| o.listen == s.listen) {
                        s.counts = old.counts.clone();
                    }
                }
                *self = r;
                log!(Info, "configuration reloaded", sources = self.plans.len());
            }
            Err(e) => {
                log!(
                    Error,
                    "reload refused; the old configuration keeps running",
                    error = format!("{e:#}")
                );
            }
        }
        Ok(())
    }
}

/// Runs the daemon until `shutdown` completes: the library form of `gatewatch run` (the
/// command adds signals and reloading). `observers` receive every incident change.
pub async fn run(
    cfg: Config,
    kb: Arc<Kb>,
    observers: Vec<Sender<Change>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let daemon = tokio::task::spawn_blocking(move || Daemon::start(&cfg, kb, observers))
        .await
        .context("starting the daemon")??;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    log!(Info, "ready");
    shutdown.await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .context("stopping the daemon")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_and_skip_rotated_files() {
        assert!(glob_match(b"*.log", b"access.log"));
        assert!(glob_match(b"access?.log", b"access2.log"));
        assert!(!glob_match(b"*.log", b"access.log.1"));
        assert!(glob_match(b"*access*", b"my_access.log.1"));
        for rotated in ["access.log.1", "access.log.2.gz", "access.log-20240501"] {
            assert!(looks_rotated(rotated), "{rotated}");
        }
        for live in ["access.log", "api.example.com.log", "error.log"] {
            assert!(!looks_rotated(live), "{live}");
        }
    }
}

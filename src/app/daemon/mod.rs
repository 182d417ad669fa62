//! `gatewatch run`: follows the configured logs live and feeds every line through the same
//! pipeline as `scan`.
//!
//! One thread (the reader) owns the files, the parsers, the pipeline and the state file. It
//! wakes when a watched folder changes (inotify, through `notify`) and at least once a second
//! (the re-check that is the correctness baseline: events only make it fast). After each round
//! of reading it commits, in one SQLite transaction, where reading stands and what the lines
//! added to the counters — so a crash or `kill -9` neither loses nor repeats a line.

use crate::render::alert::AlertKind;
mod alb;
mod files;
mod round;
pub mod status;
mod storage;
mod syslog;

use alb::*;
use files::*;
use storage::*;
use syslog::*;

use crate::app::config::{Config, SourceKind, StartAt};
use crate::engine::detect::Change;
use crate::engine::event::Format;
use crate::engine::kb::{Kb, Lang};
use crate::engine::parse::{Parser, ParserOptions};
use crate::engine::pipeline::{Pipeline, PipelineConfig, Settled, Sink};
use crate::log;
use crate::render::page::FileStatus;
use crate::source::tail::{Delivery, Notice, Start, Tailer};
use crate::store::outbox::Alerting;
use crate::store::{Counters, State};
use anyhow::Context;
pub use status::Status;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often every file is checked even without a file-system event.
pub const RECHECK: Duration = Duration::from_secs(1);

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

/// What the reader needs to record incident changes, and to tell observers.
struct Outputs {
    kb: Arc<Kb>,
    observers: Vec<Sender<Change>>,
    opened: u64,
    closed: u64,
    /// Changes not committed yet: written to the outbox with the next commit.
    notices: Vec<crate::store::outbox::Notice>,
    host: String,
    channels: Vec<(String, Lang)>,
    maintenance: Vec<crate::app::config::Maintenance>,
    renotify_ms: Option<i64>,
    /// Open incidents (upstream, entry) and when they were last announced (wall clock, Unix
    /// ms).
    announced: Vec<(String, crate::engine::kb::EntryId, i64)>,
    /// Told after a commit that wrote messages.
    sender: Option<Arc<tokio::sync::watch::Sender<u64>>>,
    /// Messages handed to the sender while the state cannot be written.
    memory: crate::store::outbox::MemoryQueue,
    /// Incidents opened while the state could not be written (key → silenced), until their
    /// rows are written.
    silenced_in_memory: std::collections::HashMap<String, bool>,
    /// What the delivery journal says was delivered (read at start).
    delivered: crate::store::journal::Delivered,
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
    open: &'a [crate::engine::detect::Incident],
) -> Alerting<'a> {
    Alerting {
        kb: &out.kb,
        host: &out.host,
        channels: &out.channels,
        sources: names,
        maintenance: &out.maintenance,
        open,
        now_ms: now_ms(),
        delivered: &out.delivered,
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
                out.notices.push(crate::store::outbox::Notice::new(
                    AlertKind::Opened,
                    i.clone(),
                ));
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
                out.notices.push(crate::store::outbox::Notice::new(
                    AlertKind::Resolved,
                    i.clone(),
                ));
            }
        }
        for o in &out.observers {
            let _ = o.send(change.clone());
        }
    }
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
    /// How often the state file is checked for damage; when it was last, and what was found
    /// (with when that was last logged).
    check_every: Duration,
    checked: Instant,
    damaged: Option<(String, Instant)>,
    /// The sender thread, restarted with the channels of a new configuration.
    sender: Option<crate::delivery::sender::Sender>,
    /// How many sources have their format recorded in the state.
    registered: usize,
    /// The fallback state folder in use (the configured one could not be opened), and when
    /// that was last said.
    fallback: Option<(PathBuf, Instant)>,
}

impl Reader {
    fn new(
        cfg: &Config,
        kb: Arc<Kb>,
        observers: Vec<Sender<Change>>,
        fallback: Option<&Path>,
    ) -> anyhow::Result<Reader> {
        let (state, first_run, fallback) = open_state(&cfg.state_dir, fallback)?;
        // The delivery journal: beside the state in use, the configured one, and in the
        // runtime folder.
        let delivered = crate::store::journal::load(
            &crate::store::journal::files(&cfg.state_dir, state.path().parent()),
            now_ms() - crate::store::outbox::KEEP_MS,
        );
        let mut plans = Vec::new();
        let mut alb_dirs: Vec<(String, AlbLocation, bool)> = Vec::new();
        let mut syslog_listens: Vec<(String, crate::engine::time::Zone)> = Vec::new();
        for s in &cfg.sources {
            match &s.kind {
                SourceKind::Log {
                    path,
                    format: Format::Alb,
                } => {
                    let location = if path.starts_with("s3://") {
                        #[cfg(feature = "s3")]
                        {
                            AlbLocation::S3(Box::new(crate::source::s3::Bucket::open(
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
                host: crate::delivery::channel::host_name(&cfg.alerts),
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
                delivered,
            },
            watched_dirs: Vec::new(),
            status: Arc::new(std::sync::Mutex::new(Status {
                started_at: Some(std::time::SystemTime::now()),
                ..Status::default()
            })),
            error: None,
            failing_since: None,
            check_every: cfg.state_check,
            checked: Instant::now(),
            damaged: None,
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
        let open = crate::store::outbox::open_incidents(self.state.conn(), &self.out.kb)?;
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
    fn open_incidents(&self) -> Vec<crate::engine::detect::Incident> {
        let mut v = self.pipeline.detector().open_incidents();
        for a in &self.albs {
            v.extend(a.pipeline.detector().open_incidents());
        }
        v
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
            let socket = crate::source::syslog::Socket::bind(&src.listen)?;
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
                        crate::source::syslog::serve(socket, stop, counts, |lines| {
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
        reader.sender = Some(crate::delivery::sender::Sender::start(
            &reader.sender_config(cfg),
            reader.out.kb.clone(),
            reader.delivery(),
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

impl Reader {}

/// A configuration and knowledge base to reload with, or why the new files were refused.
pub type Reload = anyhow::Result<(Config, Arc<Kb>)>;

/// Runs the daemon until `shutdown` completes: `gatewatch run` is this function with signals
/// (SIGTERM and SIGINT complete `shutdown`, SIGHUP sends a [`Reload`]); tests call it with
/// their own. It follows the configured logs, serves `[http] listen` if configured, and speaks
/// to systemd (ready, reloading, stopping). A refused reload is logged and the running
/// configuration goes on. `observers` receive every incident change.
pub async fn run(
    cfg: Config,
    kb: Arc<Kb>,
    observers: Vec<Sender<Change>>,
    mut reloads: tokio::sync::mpsc::Receiver<Reload>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // What the config names but this process cannot read: said once at start; the daemon
    // goes on (a log may become readable, a secret is read again at each send).
    for problem in cfg.check_access() {
        log!(Warn, "cannot use what the config names", problem = problem);
    }
    let daemon = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || Daemon::start(&cfg, kb, observers))
            .await
            .context("starting the daemon")??
    };
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match cfg.http_listen {
        Some(addr) => {
            let listener = crate::app::http::bind(addr).await?;
            log!(Info, "serving /health and /metrics", listen = addr);
            Some(tokio::spawn(crate::app::http::serve(
                listener,
                daemon.status(),
                async {
                    let _ = http_stopped.await;
                },
            )))
        }
        None => None,
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    log!(Info, "ready", state = cfg.state_dir.display());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            reload = reloads.recv() => {
                let Some(reload) = reload else {
                    // Nobody can ask for a reload any more: wait for the end.
                    (&mut shutdown).await;
                    break;
                };
                if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading, now]);
                }
                match reload {
                    Ok((cfg, kb)) => daemon.reload(cfg, kb),
                    Err(e) => log!(
                        Error,
                        "reload refused; the old configuration keeps running",
                        error = format!("{e:#}")
                    ),
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    log!(Info, "stopping");
    let _ = http_stop.send(());
    if let Some(h) = http {
        h.await??;
    }
    tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .context("stopping the daemon")?
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
}

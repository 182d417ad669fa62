//! `gatewatch run`: follows the configured logs live and feeds every line through the same
//! pipeline as `scan`.
//!
//! One thread (the reader) owns the files, the parsers, the pipeline and the state file. It
//! wakes when a watched folder changes (inotify, through `notify`) and at least once a second
//! (the re-check that is the correctness baseline: events only make it fast). After each round
//! of reading it commits, in one SQLite transaction, where reading stands and what the lines
//! added to the counters — so a crash or `kill -9` neither loses nor repeats a line.

use crate::render::alert::AlertKind;
mod drift;
mod read;
mod round;
pub mod status;
mod storage;

use read::*;
use storage::*;

use crate::app::config::Config;
use crate::clock::now_ms;
use crate::engine::detect::Change;
use crate::engine::event::Format;
use crate::engine::kb::{Kb, Lang};
use crate::engine::pipeline::{Pipeline, PipelineConfig, Settled, Sink};
use crate::log;
use crate::render::page::FileStatus;
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
    /// Something to read: a watched folder changed, a listener received lines.
    Input,
    Reload(Box<Config>, Arc<Kb>),
    Stop,
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
    /// Sources some of whose lines were read again after a Kafka takeover.
    replayed: std::collections::HashSet<u16>,
    /// Told after a commit that wrote messages.
    sender: Option<Arc<tokio::sync::watch::Sender<u64>>>,
    /// Messages handed to the sender while the state cannot be written.
    memory: crate::store::outbox::MemoryQueue,
    /// Incidents opened while the state could not be written (key → silenced), until their
    /// rows are written.
    silenced_in_memory: std::collections::HashMap<String, bool>,
    /// What the delivery journal says was delivered (read at start).
    delivered: crate::store::journal::Delivered,
    /// Signs the alerts' one-click links (`[http] public_url`).
    links: Option<crate::render::links::Signer>,
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
        links: out.links.as_ref(),
    }
}

/// Where settled lines and incident changes go while reading.
struct ReaderSink<'a> {
    counters: &'a mut Counters,
    out: &'a mut Outputs,
    /// The line being pushed was read again after a takeover ([`crate::source::REPLAYED`]):
    /// an incident it opens was announced by the instance that read it first.
    replaying: bool,
}

impl Sink for ReaderSink<'_> {
    fn event(&mut self, s: &Settled<'_>) {
        // The detector's changes follow the event of the line that caused them (a line the
        // joiner held settles with a later push, or a tick).
        self.replaying = s.line_no == crate::source::REPLAYED;
        if self.replaying {
            self.out.replayed.insert(s.source);
            return;
        }
        let Some(t) = s.ev.time else { return };
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
                // Announced elsewhere only if every failure in it came from lines read again:
                // failures of this instance's own streams make it an incident of its own.
                let elsewhere =
                    self.replaying && i.sources.iter().all(|s| out.replayed.contains(s));
                if elsewhere {
                    log!(
                        Info,
                        "incident recognised: opened by the lines read again after a takeover, announced by the instance that read them first",
                        upstream = i.upstream,
                        cause = i.cause,
                        entry = out.kb.id(i.entry)
                    );
                } else {
                    log!(
                        Warn,
                        "incident opened",
                        upstream = i.upstream,
                        cause = i.cause,
                        entry = out.kb.id(i.entry)
                    );
                }
                out.announced.push((i.upstream.clone(), i.entry, now_ms()));
                let mut n = crate::store::outbox::Notice::new(AlertKind::Opened, i.clone());
                n.elsewhere = elsewhere;
                out.notices.push(n);
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
    /// What every `[[source]]` became, and the sources they opened (a glob opens more as
    /// files appear).
    plans: Vec<Box<dyn crate::source::Plan>>,
    slots: Vec<Slot>,
    /// Lane 0 is shared (and joins nginx's access and error logs); sources whose lines come
    /// late have lanes of their own.
    lanes: Vec<Lane>,
    /// The sources' streams' names and formats, by their number.
    names: Vec<String>,
    formats: Vec<Format>,
    detect: crate::engine::detect::DetectConfig,
    counters: Counters,
    out: Outputs,
    /// Wakes this reader.
    wake: Sender<Wake>,
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
    /// Whether the error log's zone offset was said (see `read::say_offset`).
    offset_said: bool,
}

impl Reader {
    /// A reader for `cfg`. `kept` are the plans (and sources) of the reader this one replaces:
    /// those a source of `cfg` keeps (a listener as it was) are taken, the rest stay.
    fn new(
        cfg: &Config,
        kb: Arc<Kb>,
        observers: Vec<Sender<Change>>,
        fallback: Option<&Path>,
        wake: Sender<Wake>,
        kept: &mut Vec<Kept>,
    ) -> anyhow::Result<Reader> {
        let (state, first_run, fallback) = open_state(&cfg.state_dir, fallback)?;
        // The delivery journal: beside the state in use, the configured one, and in the
        // runtime folder.
        let delivered = crate::store::journal::load(
            &crate::store::journal::files(&cfg.state_dir, state.path().parent()),
            now_ms() - crate::store::outbox::KEEP_MS,
        );
        anyhow::ensure!(
            !cfg.sources.is_empty(),
            "no log to follow: the configuration names no [[source]]"
        );
        let ctx = crate::source::Context {
            first_run,
            scratch: state.path().with_file_name("alb-download"),
            instance: format!(
                "{}:{}@{}",
                // The machine's own name ([alerts] host is the fleet's in a fleet).
                crate::delivery::channel::host_name(&Default::default()),
                state.path().display(),
                crate::store::outbox::created_ms(state.conn())
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            ),
            wake: {
                let wake = std::sync::Mutex::new(wake.clone());
                Arc::new(move || {
                    let _ = wake
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .send(Wake::Input);
                })
            },
        };
        // Sources other than files first: they keep the first numbers, which incidents saved
        // before a restart refer to.
        let mut configs: Vec<&crate::source::SourceConfig> = cfg.sources.iter().collect();
        configs.sort_by_key(|s| crate::source::is_file(s));
        // A plan made new, or one of `kept` taken over.
        enum Made<'c> {
            /// A new plan, and the sources it opened (opened now, before anything is taken
            /// over, so a failure leaves the kept plans with the caller).
            New(
                Box<dyn crate::source::Plan>,
                Vec<Box<dyn crate::source::Source>>,
            ),
            Kept(usize, &'c crate::source::SourceConfig),
        }
        let mut made = Vec::with_capacity(configs.len());
        let mut used = vec![false; kept.len()];
        for s in &configs {
            match (0..kept.len()).find(|&i| !used[i] && kept[i].plan.keeps(s)) {
                Some(i) => {
                    used[i] = true;
                    made.push(Made::Kept(i, s));
                }
                None => {
                    let mut plan = crate::source::plan(s, &ctx)?;
                    let sources = plan.open(&|name| state.checkpoint(name))?;
                    made.push(Made::New(plan, sources));
                }
            }
        }
        // Joining needs an access log and an error log (an nginx container's output holds
        // both).
        let formats: Vec<Format> = cfg
            .sources
            .iter()
            .flat_map(|s| match &s.kind {
                crate::source::SourceKind::Log { format, .. } => vec![*format],
                crate::source::SourceKind::Container { proxy, .. } => {
                    vec![proxy.access_format(), proxy.error_format()]
                }
                crate::source::SourceKind::Syslog { .. } => vec![],
                // Both, when the envelopes name them.
                crate::source::SourceKind::Kafka(k) => match k.format {
                    Some(f) => vec![f],
                    None => vec![Format::NginxAccess, Format::NginxError],
                },
            })
            .collect();
        let shared = Lane {
            pipeline: Pipeline::new(
                kb.clone(),
                PipelineConfig {
                    detect: cfg.detect.clone(),
                    join: crate::engine::join::needed(&formats).then_some(cfg.join),
                },
            ),
            clock: None,
            quiet: None,
        };
        // The alerts' one-click links: signed with the configured key.
        let links = cfg.links.as_ref().and_then(|l| match l.signer() {
            Ok(s) => Some(s),
            Err(e) => {
                // Alerts matter more than their links: they go out without them.
                crate::log!(
                    Error,
                    "alerts go out without their one-click links: the link key cannot be used",
                    error = format!("{e:#}")
                );
                None
            }
        });
        let mut r = Reader {
            state,
            first_run,
            plans: Vec::new(),
            slots: Vec::new(),
            lanes: vec![shared],
            names: Vec::new(),
            formats: Vec::new(),
            detect: cfg.detect.clone(),
            counters: Counters::new(cfg.detect.max_upstreams),
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
                replayed: Default::default(),
                sender: None,
                memory: Default::default(),
                silenced_in_memory: Default::default(),
                delivered,
                links: links.clone(),
            },
            wake,
            status: Arc::new(std::sync::Mutex::new(Status {
                started_at: Some(std::time::SystemTime::now()),
                links,
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
            offset_said: false,
        };
        // Nothing can fail from here to the end of taking over: what is not taken stays with
        // the caller.
        let mut taken: Vec<Option<Kept>> = std::mem::take(kept).into_iter().map(Some).collect();
        for m in made {
            let p = r.plans.len();
            match m {
                // Sources are added in config order, kept or new: a reload numbers them as a
                // restart does (incidents refer to those numbers).
                Made::New(plan, sources) => {
                    r.plans.push(plan);
                    for src in sources {
                        r.add_new(src, p)?;
                    }
                }
                Made::Kept(i, cfg) => {
                    let k = taken[i].take().expect("each kept plan is taken once");
                    r.plans.push(k.plan);
                    for mut s in k.slots {
                        s.src.reconfigure(cfg);
                        r.add(s.src, p, s.saved)?;
                    }
                }
            }
        }
        kept.extend(taken.into_iter().flatten());
        r.discover()?;
        r.restore_incidents()?;
        Ok(r)
    }

    /// Takes back the incidents that were open when the daemon stopped: each goes to the
    /// lane of its source (an ALB folder's own, or the shared one).
    fn restore_incidents(&mut self) -> anyhow::Result<()> {
        let open = crate::store::outbox::open_incidents(self.state.conn(), &self.out.kb)?;
        for (inc, notified) in open {
            if self.out.kb.id(inc.entry) == drift::ENTRY {
                match self.slots.iter_mut().find(|s| s.src.name() == inc.upstream) {
                    Some(s) => {
                        self.out
                            .announced
                            .push((inc.upstream.clone(), inc.entry, notified));
                        s.drift.open = Some(inc);
                    }
                    // The source is no longer read: its alarm is over.
                    None => {
                        let mut inc = inc;
                        inc.closed_ms = Some(now_ms());
                        self.out
                            .notices
                            .push(crate::store::outbox::Notice::new(AlertKind::Resolved, inc));
                    }
                }
                continue;
            }
            let lane = self
                .slots
                .iter()
                .find(|s| s.lane != 0 && inc.sources.contains(&s.id))
                .map_or(0, |s| s.lane);
            let Lane {
                pipeline, clock, ..
            } = &mut self.lanes[lane];
            pipeline.detector_mut().restore(&inc);
            // The event clock starts at the incident's last failure, so that without new
            // lines it still closes after the quiet period.
            if clock.is_none_or(|(t, _)| t < inc.end_ms) {
                *clock = Some((inc.end_ms, Instant::now()));
            }
            log!(
                Info,
                "incident still open from before the restart",
                upstream = inc.upstream,
                entry = self.out.kb.id(inc.entry)
            );
            self.out
                .announced
                .push((inc.upstream.clone(), inc.entry, notified));
        }
        Ok(())
    }

    /// The open incidents of every lane, and the open format-drift alarms.
    fn open_incidents(&self) -> Vec<crate::engine::detect::Incident> {
        self.lanes
            .iter()
            .flat_map(|l| l.pipeline.detector().open_incidents())
            .chain(self.slots.iter().filter_map(|s| s.drift.open.clone()))
            .collect()
    }
}

/// A running daemon.
pub struct Daemon {
    wake: Sender<Wake>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    status: Arc<std::sync::Mutex<Status>>,
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
        let (wake, rx) = mpsc::channel();
        let mut reader = Reader::new(cfg, kb, observers, None, wake.clone(), &mut Vec::new())?;
        let waker = Arc::new(tokio::sync::watch::channel(0u64).0);
        reader.out.sender = Some(waker.clone());
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
            let _ = wake.send(Wake::Input);
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
            // The alerts' one-click links: checked with the signer the reader uses now (a
            // reload may change it).
            let actions = crate::app::actions::Actions {
                status: daemon.status(),
            };
            Some(tokio::spawn(crate::app::http::serve(
                listener,
                daemon.status(),
                Some(actions),
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

//! Where lines come from: followed files ([`tail`]), old files read whole ([`scan`]), ALB
//! objects in a folder or a bucket ([`s3`]), HAProxy's syslog datagrams ([`syslog`]), a Kafka
//! topic that log forwarders write to ([`kafka`], with the `kafka` feature; its messages read
//! by [`envelope`]), and the logs found on a machine without a config ([`discover`]). These modules own the file and
//! socket IO; what they read goes into the [`crate::engine`] unchanged.

pub mod alb;
pub mod container;
pub mod discover;
pub mod envelope;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "s3")]
pub mod s3;
pub mod scan;
pub mod syslog;
pub mod tail;

use crate::engine::event::Format;
use crate::engine::parse::LogFormat;
use crate::engine::time::Zone;

/// How a source is read.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// A log file or glob (for `alb`, a folder of `.log.gz` or `s3://bucket/prefix`).
    Log { path: String, format: Format },
    /// gatewatch's own syslog listener (`udp://127.0.0.1:5514`, `unix:///run/gatewatch/log`).
    Syslog { listen: String },
    /// A container's output as its runtime writes it (CRI or docker `json-file` framing): a file
    /// or glob (`/var/log/pods/*/*/*.log`).
    Container { path: String, proxy: Proxy },
    /// A Kafka topic read in a consumer group.
    Kafka(Box<KafkaConfig>),
}

/// A `[[source]] kind = "kafka"`: the topic a fleet's log forwarders write to, read by every
/// gatewatch of one consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port` of one broker or more, comma-separated.
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub payload: envelope::Payload,
    pub keys: envelope::Keys,
    /// The lines' format where the envelope does not name one.
    pub format: Option<Format>,
    /// librdkafka properties (`security.protocol`, `sasl.mechanism`, …), set after gatewatch's
    /// own.
    pub options: Vec<(String, String)>,
    /// How long the group waits for a silent member before it gives its partitions to the
    /// others.
    pub session_timeout: std::time::Duration,
    /// How far back a partition taken over from another instance is read again, uncounted, so
    /// the incidents open there are recognised here.
    pub replay: std::time::Duration,
    /// The source's name in the state and the status: `kafka:TOPIC@GROUP`.
    pub name: String,
}

impl KafkaConfig {
    /// The name a topic read by a group has in the state.
    pub fn name_of(topic: &str, group: &str) -> String {
        format!("kafka:{topic}@{group}")
    }
}

/// The proxy whose output a container log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// Access lines on stdout, error-log lines on stderr (the official image, ingress-nginx).
    Nginx,
    /// HTTP log lines (`log stdout format raw`) on either.
    Haproxy,
    /// Access lines on stdout, error-log lines on stderr (the official `httpd` image).
    Apache,
    /// Its JSON log, access and error entries, on either.
    Caddy,
    /// Its access log on stdout (Istio, Envoy Gateway), its component log on stderr.
    Envoy,
    /// Its access log and its own log, on either.
    Traefik,
}

impl Proxy {
    pub const ALL: [Proxy; 6] = [
        Proxy::Nginx,
        Proxy::Haproxy,
        Proxy::Apache,
        Proxy::Caddy,
        Proxy::Envoy,
        Proxy::Traefik,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "haproxy",
            Proxy::Apache => "apache",
            Proxy::Caddy => "caddy",
            Proxy::Envoy => "envoy",
            Proxy::Traefik => "traefik",
        }
    }

    pub fn from_name(name: &str) -> Option<Proxy> {
        Proxy::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The one format of both streams, for proxies whose every line is read by one parser.
    pub fn single(self) -> Option<Format> {
        match self {
            Proxy::Nginx | Proxy::Apache => None,
            Proxy::Haproxy => Some(Format::Haproxy),
            Proxy::Caddy => Some(Format::Caddy),
            Proxy::Envoy => Some(Format::Envoy),
            Proxy::Traefik => Some(Format::Traefik),
        }
    }

    /// The format of the standard output's lines.
    pub fn access_format(self) -> Format {
        match self {
            Proxy::Nginx => Format::NginxAccess,
            Proxy::Apache => Format::ApacheAccess,
            other => other.single().unwrap_or(Format::NginxAccess),
        }
    }

    /// The format of the standard error's lines.
    pub fn error_format(self) -> Format {
        match self {
            Proxy::Nginx => Format::NginxError,
            Proxy::Apache => Format::ApacheError,
            other => other.single().unwrap_or(Format::NginxError),
        }
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where reading starts in a file seen for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    End,
    Beginning,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub log_format: Option<LogFormat>,
    pub timezone: Zone,
    pub start_at: StartAt,
    /// For `s3://` ALB sources: an S3-compatible endpoint (`http://127.0.0.1:9000`) and region.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl SourceKind {
    /// What the source reads: its path, or its listener's address.
    pub fn input(&self) -> &str {
        match self {
            SourceKind::Log { path, .. } | SourceKind::Container { path, .. } => path,
            SourceKind::Syslog { listen } => listen,
            SourceKind::Kafka(k) => &k.name,
        }
    }

    /// Whether two sources read the same input (the same path, or the same listener).
    pub fn same_input(&self, other: &SourceKind) -> bool {
        match (self, other) {
            (
                SourceKind::Log { path: a, .. } | SourceKind::Container { path: a, .. },
                SourceKind::Log { path: b, .. } | SourceKind::Container { path: b, .. },
            ) => a == b,
            (SourceKind::Syslog { listen: a }, SourceKind::Syslog { listen: b }) => {
                a.strip_prefix("udp://").unwrap_or(a) == b.strip_prefix("udp://").unwrap_or(b)
            }
            (SourceKind::Kafka(a), SourceKind::Kafka(b)) => a.name == b.name,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The reader's view of a source.

/// Where a source stands, saved by the store in the transaction that saves the counts of the
/// lines read up to it, and handed back when the source is opened again. The store does not
/// look inside: `kind` and `version` say who wrote `data` and how, so a source can read what an
/// older gatewatch saved (and refuse, with a message, what a newer one did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub kind: String,
    pub version: u32,
    pub data: Vec<u8>,
}

/// An item a source read whole (an ALB object), recorded in the store's ledger with the commit
/// that saves the counts of its lines: read once, or (after a crash) not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub item: String,
    pub size: u64,
    /// Lines read; -1: there before the first run, not read.
    pub lines: i64,
}

/// What the store knows of the items a source finished (implemented by the store).
pub trait Ledger {
    fn is_done(&self, source: &str, item: &str) -> anyhow::Result<bool>;
    /// The last item finished more than an hour ago: a listing in key order may start after it
    /// (items can arrive late, so the last hour is listed again).
    fn resume_after(&self, source: &str) -> anyhow::Result<Option<String>>;
}

/// A ledger that knows nothing (tests, and sources read without a state).
pub struct NoLedger;

impl Ledger for NoLedger {
    fn is_done(&self, _: &str, _: &str) -> anyhow::Result<bool> {
        Ok(false)
    }
    fn resume_after(&self, _: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}

/// The line number of a line read again only to rebuild the detector's state (a Kafka partition
/// taken over from another instance, which counted it): the reader feeds it to the pipeline and
/// counts nothing of it. Real line numbers start at 1.
pub const REPLAYED: u64 = 0;

/// Takes each line that parsed, in order: the stream it belongs to (an index into
/// [`Source::streams`]), its number in its file, the line, its event.
pub type Emit<'a> = dyn FnMut(usize, u64, &[u8], crate::engine::event::Event) + 'a;

/// What one call of [`Source::read`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Lines read (parsed or not).
    pub lines: u64,
    /// More is already waiting: read again before sleeping.
    pub more: bool,
}

/// Which event clock a source's lines move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The shared one: lines arrive as they are written (files, datagrams), and an nginx access
    /// log joins its error log.
    Shared,
    /// A pipeline and clock of the source's own, which move only with its lines — unless none
    /// have come for `quiet`, when incidents may close on the wall clock (ALB objects arrive
    /// five minutes late).
    Own { quiet: std::time::Duration },
}

/// What the status page and `/metrics` show of a source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStatus {
    pub format: String,
    pub lines: u64,
    pub unparsed: u64,
    pub too_long: u64,
    pub lag_bytes: u64,
    /// The last lines that did not parse (for the format-drift alarm's samples).
    pub recent_unparsed: Vec<String>,
    /// A Kafka source's partitions.
    pub kafka: Option<KafkaStatus>,
}

/// What `/metrics` shows of a Kafka source.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KafkaStatus {
    /// The partitions assigned to this instance now.
    pub partitions: Vec<PartitionStatus>,
    /// Assignments received from the group since the start.
    pub rebalances: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The next offset to read (-1: not known yet).
    pub next: i64,
    /// Messages behind the partition's end, from the consumer's last statistics.
    pub lag: Option<u64>,
}

/// The last few lines that did not parse, kept in buffers that are reused (no allocation per
/// line once they have grown).
#[derive(Clone, Debug, Default)]
pub struct Recent {
    lines: [Vec<u8>; 3],
    next: usize,
    len: usize,
}

impl Recent {
    /// The most kept of a line.
    const KEEP: usize = 400;

    pub fn push(&mut self, line: &[u8]) {
        let slot = &mut self.lines[self.next];
        slot.clear();
        slot.extend_from_slice(&line[..line.len().min(Recent::KEEP)]);
        self.next = (self.next + 1) % self.lines.len();
        self.len = (self.len + 1).min(self.lines.len());
    }

    /// Oldest first.
    pub fn list(&self) -> Vec<String> {
        let n = self.lines.len();
        (0..self.len)
            .map(|i| {
                String::from_utf8_lossy(&self.lines[(self.next + n - self.len + i) % n])
                    .into_owned()
            })
            .collect()
    }
}

/// One input: a followed file, a folder or bucket of ALB objects, a syslog listener. It reads,
/// parses (it knows its format) and says where it stands; the reader counts the lines, feeds
/// them to the pipeline and commits what every source says in one transaction.
pub trait Source: Send {
    /// Its name in the state (its checkpoint) and the status: the path, the folder, the
    /// address.
    fn name(&self) -> &str;
    fn format(&self) -> Format;
    /// The streams its lines count for, by the names counters and alerts show, and their
    /// formats: one for most; a container's output has the proxy's access lines (stdout) and
    /// its error lines (stderr).
    fn streams(&self) -> Vec<(String, Format)> {
        vec![(self.name().to_string(), self.format())]
    }
    /// Streams first seen since the last call, numbered after the ones known: a Kafka topic's
    /// (host, file) pairs appear as their messages arrive. The reader asks before every read,
    /// and a read hands over lines only of streams it has told of (it stops at the first line
    /// of a new one and says `more`).
    fn new_streams(&mut self) -> Vec<(String, Format)> {
        Vec::new()
    }
    /// Reads what is new — about a megabyte, or one batch — handing every line that parsed to
    /// `emit` in order.
    fn read(&mut self, ledger: &dyn Ledger, emit: &mut Emit<'_>) -> anyhow::Result<Round>;
    /// Where reading stands now (`None`: nothing to save, e.g. datagrams are received once).
    fn checkpoint(&self) -> Option<Checkpoint> {
        None
    }
    /// Items finished since the last commit, for the ledger.
    fn done(&self) -> &[Done] {
        &[]
    }
    /// The state is about to save the checkpoint: a source whose position is also kept
    /// elsewhere (a Kafka group's offsets) records it there first, so that a crash between
    /// the two never has a line counted by two readers.
    fn before_commit(&mut self) {}
    /// The checkpoint and the finished items are in the state.
    fn committed(&mut self) {}
    fn clock(&self) -> Clock {
        Clock::Shared
    }
    fn status(&self) -> SourceStatus;
    /// Lines read and lines that did not parse, so far (what the format-drift alarm watches
    /// every round; cheaper than [`Source::status`], which looks at the files).
    fn counts(&self) -> (u64, u64) {
        let st = self.status();
        (st.lines, st.unparsed)
    }
    /// A reload kept the source (its plan [`Plan::keeps`] the new config): takes the new
    /// config's settings that need no reopening (a listener's time zone).
    fn reconfigure(&mut self, cfg: &SourceConfig) {
        let _ = cfg;
    }
}

/// What the sources of one `[[source]]` need to open.
#[derive(Clone)]
pub struct Context {
    /// The state was created by this run: `start_at = "end"` applies.
    pub first_run: bool,
    /// A folder for downloads (S3 objects), beside the state.
    pub scratch: std::path::PathBuf,
    /// Wakes the reader (a listener received lines).
    pub wake: std::sync::Arc<dyn Fn() + Send + Sync>,
    /// Who this gatewatch is in what it records outside its state (a Kafka group's commits):
    /// its host, its state file and the state's creation time, the same across restarts.
    pub instance: String,
}

/// What a `[[source]]` becomes: it opens the sources it names (a glob names more files as they
/// appear), and keeps its listeners across a reload that leaves it as it was.
pub trait Plan: Send {
    /// The sources it names that it has not opened yet. `saved` gives the checkpoint the state
    /// holds for a name.
    fn open(
        &mut self,
        saved: &dyn Fn(&str) -> anyhow::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn Source>>>;
    /// Folders whose changes should wake the reader.
    fn folders(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
    /// Whether a reload to `cfg` may keep this plan and its sources (a listener keeps its
    /// socket and counters; see [`Source::reconfigure`]).
    fn keeps(&self, cfg: &SourceConfig) -> bool {
        let _ = cfg;
        false
    }
}

/// The plan of a configured source: the one place that knows every kind of source.
pub fn plan(cfg: &SourceConfig, ctx: &Context) -> anyhow::Result<Box<dyn Plan>> {
    Ok(match &cfg.kind {
        SourceKind::Log {
            path,
            format: Format::Alb,
        } => Box::new(alb::AlbPlan::new(path, cfg, ctx)?),
        SourceKind::Log { .. } => Box::new(file::FilePlan::new(cfg, ctx)),
        SourceKind::Syslog { .. } => Box::new(syslog::SyslogPlan::new(cfg, ctx)?),
        SourceKind::Container { .. } => Box::new(container::ContainerPlan::new(cfg, ctx)),
        #[cfg(feature = "kafka")]
        SourceKind::Kafka(k) => Box::new(kafka::KafkaPlan::new(k, cfg, ctx)?),
        #[cfg(not(feature = "kafka"))]
        SourceKind::Kafka(_) => anyhow::bail!("{}", NO_KAFKA),
    })
}

/// Whether the sources of a config name streams that appear as it runs (followed files of a
/// glob, a Kafka topic's (host, file) pairs): read after the others, so the others keep the
/// first source numbers, which incidents saved before a restart refer to.
pub fn is_file(cfg: &SourceConfig) -> bool {
    match &cfg.kind {
        SourceKind::Log { format, .. } => *format != Format::Alb,
        SourceKind::Container { .. } | SourceKind::Kafka(_) => true,
        SourceKind::Syslog { .. } => false,
    }
}

/// Why a build without the `kafka` feature refuses a Kafka source.
pub const NO_KAFKA: &str = "this gatewatch was built without Kafka (cargo feature \"kafka\"): build it with `cargo build --release --features kafka` to read a Kafka topic";

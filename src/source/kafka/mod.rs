//! A Kafka topic as a [`Source`]: the topic a fleet's log forwarders (rsyslog `omkafka`,
//! Vector, Fluent Bit) write to, read by the gatewatch instances of one consumer group with
//! librdkafka. Each (host, file) pair in the messages is a stream of its own, so counters and
//! alerts name the proxy host and log a line came from.
//!
//! Where each partition stands is committed to the group (signed with this instance's name),
//! then saved in the state in the transaction that saves the counts of the lines read up to
//! it. On an assignment, a partition starts where this instance's state stopped — unless the
//! group is ahead by another instance's commit: that instance counted the lines between, so
//! counting starts at the group's offset, and the last `replay` minutes before it are read
//! again for the detector alone (an incident open there is recognised here, with the same
//! start). A crash between the two commits leaves lines counted by no one rather than by two:
//! if this instance gets the partition back, its own signature tells it to count them itself.
//! A partition new to both starts at `start_at`.

use super::{
    Checkpoint, Context, Emit, KafkaConfig, Ledger, Plan, Round, Source, SourceConfig,
    SourceStatus, StartAt,
};
use crate::engine::event::Format;
use crate::engine::parse::ParserOptions;
use crate::log;
use crate::source::Recent;
use crate::source::envelope::Fields;
use anyhow::Context as _;
use group::{Commit, Ctx, Partitions, commit_group};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streams::{Stream, Streams, Taken};

mod group;
mod streams;

pub use group::client_config;

/// The checkpoint kind of a Kafka source (its data: the next offset of every partition read).
pub const KIND: &str = "kafka";
const VERSION: u32 = 2;

/// Messages taken per read at most, and the longest a read goes on (the rest in the next).
/// Each read ends in a commit to the group and one to the state: a few milliseconds, so a
/// read takes many messages when many are waiting.
const TAKE: u64 = 65_536;
const TAKE_FOR: Duration = Duration::from_millis(200);

/// (host, file) pairs per source at most: beyond them, lines are counted as unparsed (a
/// forwarder that puts a request id in the host field would otherwise grow them without end).
pub const MAX_STREAMS: usize = 4096;

/// The deadline of a request the consumer makes to the brokers itself (the group's offsets on
/// an assignment, a commit when partitions are taken away).
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// While the group's commits fail, they are tried before a state commit at most this often.
const GROUP_RETRY: Duration = Duration::from_secs(30);

/// A problem that can repeat with every message is logged at most this often.
const SAY_EVERY: Duration = Duration::from_secs(60);

/// A configured Kafka source: its consumer is made when the source is opened, with the
/// checkpoint the state holds.
pub struct KafkaPlan {
    cfg: KafkaConfig,
    opts: ParserOptions,
    start: StartAt,
    wake: Arc<dyn Fn() + Send + Sync>,
    instance: String,
    opened: bool,
}

impl KafkaPlan {
    pub fn new(k: &KafkaConfig, cfg: &SourceConfig, ctx: &Context) -> anyhow::Result<KafkaPlan> {
        Ok(KafkaPlan {
            cfg: k.clone(),
            opts: super::file::parser_options(cfg),
            start: cfg.start_at,
            wake: ctx.wake.clone(),
            instance: ctx.instance.clone(),
            opened: false,
        })
    }
}

impl Plan for KafkaPlan {
    fn open(
        &mut self,
        saved: &dyn Fn(&str) -> anyhow::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn Source>>> {
        if self.opened {
            return Ok(Vec::new());
        }
        self.opened = true;
        let (next, streams) = match saved(&self.cfg.name)? {
            Some(c) => {
                decode(&c).with_context(|| format!("the saved position of {}", self.cfg.name))?
            }
            None => (BTreeMap::new(), Vec::new()),
        };
        let mut src = KafkaSource::new(
            &self.cfg,
            self.opts.clone(),
            self.start,
            next,
            self.wake.clone(),
            self.instance.clone(),
        )?;
        src.streams.restore(streams);
        Ok(vec![Box::new(src)])
    }

    fn keeps(&self, cfg: &SourceConfig) -> bool {
        matches!(&cfg.kind, super::SourceKind::Kafka(k) if **k == self.cfg)
    }
}

/// A topic read in a consumer group.
pub struct KafkaSource {
    name: String,
    topic: String,
    group: String,
    consumer: BaseConsumer<Ctx>,
    streams: Streams,
    /// A message of a stream the reader had not heard of yet.
    held: Option<OwnedMessage>,
    parts: Arc<Mutex<Partitions>>,
    failed: Option<Instant>,
    /// This gatewatch's name in the group's commits.
    instance: String,
    /// Since when the group's commits fail (then tried once every [`GROUP_RETRY`]).
    group_failing: Option<Instant>,
}

impl KafkaSource {
    fn new(
        k: &KafkaConfig,
        opts: ParserOptions,
        start: StartAt,
        next: BTreeMap<i32, i64>,
        wake: Arc<dyn Fn() + Send + Sync>,
        instance: String,
    ) -> anyhow::Result<KafkaSource> {
        let parts = Arc::new(Mutex::new(Partitions {
            next,
            ..Default::default()
        }));
        let ctx = Ctx {
            source: k.name.clone(),
            instance: instance.clone(),
            topic: k.topic.clone(),
            start,
            replay: k.replay,
            parts: parts.clone(),
        };
        let mut consumer: BaseConsumer<Ctx> = client_config(k)
            .create_with_context(ctx)
            .with_context(|| format!("the Kafka consumer of {}", k.name))?;
        consumer.set_nonempty_callback(move || wake());
        consumer
            .subscribe(&[&k.topic])
            .with_context(|| format!("subscribing to the topic {}", k.topic))?;
        log!(
            Info,
            "kafka: joining the consumer group",
            source = k.name,
            brokers = k.brokers,
            payload = k.payload.as_str()
        );
        Ok(KafkaSource {
            name: k.name.clone(),
            topic: k.topic.clone(),
            group: k.group.clone(),
            consumer,
            streams: Streams {
                source: k.name.clone(),
                payload: k.payload,
                keys: k.keys.clone(),
                format: k.format,
                opts,
                fields: Fields::default(),
                key: String::new(),
                index: FxHashMap::default(),
                list: Vec::new(),
                parsers: Vec::new(),
                told: 0,
                parts: parts.clone(),
                lines: 0,
                unparsed: 0,
                recent: Recent::default(),
                said: FxHashMap::default(),
            },
            held: None,
            parts,
            failed: None,
            instance,
            group_failing: None,
        })
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, Partitions> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits the assigned partitions' offsets to the group.
    fn commit(&self, how: Commit) -> Result<(), String> {
        let mut parts = self.parts();
        let assigned: Vec<i32> = parts.assigned.iter().copied().collect();
        commit_group(
            &self.consumer,
            &self.topic,
            &self.instance,
            &mut parts,
            &assigned,
            how,
        )
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        self.streams.format.unwrap_or(Format::NginxAccess)
    }

    fn streams(&self) -> Vec<(String, Format)> {
        // The topic's own stream first (the format-drift alarm's), then the pairs told.
        let mut all = vec![(self.name.clone(), self.format())];
        all.extend(self.streams.told());
        all
    }

    fn new_streams(&mut self) -> Vec<(String, Format)> {
        self.streams.tell()
    }

    fn read(&mut self, _: &dyn Ledger, emit: &mut Emit<'_>) -> anyhow::Result<Round> {
        let mut round = Round::default();
        if let Some(m) = self.held.take() {
            match self.streams.take(&m, emit) {
                Taken::Lines(n) => round.lines += n,
                Taken::New => {
                    // Not told yet (the reader could not number it): try again.
                    self.held = Some(m);
                    round.more = true;
                    return Ok(round);
                }
            }
        }
        let (mut taken, mut idle) = (0, 0);
        let started = Instant::now();
        while taken < TAKE && (taken % 1024 != 0 || started.elapsed() < TAKE_FOR) {
            // `None` also when the poll served an event (statistics, a rebalance) or one of
            // librdkafka's own operations rather than a message, with messages still queued
            // behind: the queue's wake-up comes only when it was empty, so look again, waiting a
            // little, before calling it empty.
            let wait = if idle == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(1)
            };
            match self.consumer.poll(wait) {
                None if idle < 3 => idle += 1,
                None => return Ok(round),
                Some(Err(e)) => {
                    if self.failed.is_none_or(|t| t.elapsed() >= SAY_EVERY) {
                        self.failed = Some(Instant::now());
                        log!(Error, "kafka: consuming", source = self.name, error = e);
                    }
                    return Ok(round);
                }
                Some(Ok(m)) => {
                    taken += 1;
                    idle = 0;
                    match self.streams.take(&m, emit) {
                        Taken::Lines(n) => round.lines += n,
                        Taken::New => {
                            self.held = Some(m.detach());
                            round.more = true;
                            return Ok(round);
                        }
                    }
                }
            }
        }
        round.more = true;
        Ok(round)
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        let parts = self.parts();
        (!parts.next.is_empty() || self.streams.told > 0)
            .then(|| encode(&parts.next, &self.streams.list[..self.streams.told]))
    }

    fn before_commit(&mut self) {
        // The group first, then the state (see [`Ctx::assign`]): a crash between the two
        // leaves lines counted by no one, never by two instances. While the group cannot be
        // reached, the state does not wait for it: the group hears afterwards, asynchronously.
        if self
            .group_failing
            .is_some_and(|t| t.elapsed() < GROUP_RETRY)
        {
            return;
        }
        match self.commit(Commit::Wait) {
            Ok(()) => self.group_failing = None,
            Err(e) => {
                if self.group_failing.is_none() {
                    log!(
                        Warn,
                        "kafka: the group's offsets cannot be committed; the state is saved first meanwhile (a takeover in that time may count some lines twice)",
                        source = self.name,
                        error = e
                    );
                }
                self.group_failing = Some(Instant::now());
            }
        }
    }

    fn committed(&mut self) {
        if self.group_failing.is_some() {
            let _ = self.commit(Commit::Send);
        }
    }

    fn status(&self) -> SourceStatus {
        let parts = self.parts();
        let partitions: Vec<super::PartitionStatus> = parts
            .assigned
            .iter()
            .map(|p| {
                let next = parts.next.get(p).copied().unwrap_or(-1);
                super::PartitionStatus {
                    partition: *p,
                    next,
                    lag: parts.high.get(p).map(|h| (h - next.max(0)).max(0) as u64),
                }
            })
            .collect();
        SourceStatus {
            format: format!(
                "kafka {}@{} ({} payload): {} partition(s) assigned, {} host/file streams",
                self.topic,
                self.group,
                self.streams.payload.as_str(),
                partitions.len(),
                self.streams.parsers.len()
            ),
            lines: self.streams.lines,
            unparsed: self.streams.unparsed,
            too_long: 0,
            lag_bytes: 0,
            recent_unparsed: self.streams.recent.list(),
            kafka: Some(super::KafkaStatus {
                partitions,
                rebalances: parts.rebalances,
            }),
        }
    }

    fn counts(&self) -> (u64, u64) {
        (self.streams.lines, self.streams.unparsed)
    }

    fn reconfigure(&mut self, cfg: &SourceConfig) {
        // Streams first seen from now on take the new time zone and log_format.
        self.streams.opts = super::file::parser_options(cfg);
    }
}

/// What `gatewatch check --connect` says of a Kafka source: the brokers it reaches, the topic's
/// partitions, and where the group stands in each (offset committed, messages behind). Every
/// request has the deadline `wait`.
pub fn probe(k: &KafkaConfig, wait: Duration) -> anyhow::Result<String> {
    let c: BaseConsumer = client_config(k)
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg)
        .create()
        .context("making a Kafka client")?;
    let md = c
        .fetch_metadata(Some(&k.topic), wait)
        .with_context(|| format!("asking {} for the topic's metadata", k.brokers))?;
    let brokers: Vec<String> = md
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == k.topic)
        .context("the brokers answered without the topic")?;
    if let Some(e) = t.error() {
        anyhow::bail!(
            "topic {}: {} (create it, or check the name)",
            k.topic,
            rdkafka::error::RDKafkaErrorCode::from(e)
        );
    }
    anyhow::ensure!(
        !t.partitions().is_empty(),
        "topic {} has no partitions",
        k.topic
    );
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in t.partitions() {
        tpl.add_partition(&k.topic, p.id());
    }
    let committed = c
        .committed_offsets(tpl, wait)
        .with_context(|| format!("asking for group {}'s offsets", k.group))?;
    let mut parts = Vec::new();
    for p in t.partitions() {
        let (_, high) = c
            .fetch_watermarks(&k.topic, p.id(), wait)
            .with_context(|| format!("asking for partition {}'s end", p.id()))?;
        let at = committed
            .find_partition(&k.topic, p.id())
            .and_then(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            });
        parts.push(match at {
            Some(o) => format!("{}: at {o}, {} behind", p.id(), (high - o).max(0)),
            None => format!("{}: nothing committed, {high} messages", p.id()),
        });
    }
    Ok(format!(
        "brokers {}; topic {}: {} partitions; group {}: {}",
        brokers.join(", "),
        k.topic,
        t.partitions().len(),
        k.group,
        parts.join("; ")
    ))
}

/// The checkpoint (version 2, JSON): the next offset of every partition read, and the streams
/// in the reader's order, `[host, file, format]`. Version 1 held `partition offset` lines.
fn encode(next: &BTreeMap<i32, i64>, streams: &[Stream]) -> Checkpoint {
    let offsets: serde_json::Map<String, serde_json::Value> = next
        .iter()
        .map(|(p, o)| (p.to_string(), (*o).into()))
        .collect();
    let streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| serde_json::json!([s.host, s.file, s.format.as_str()]))
        .collect();
    Checkpoint {
        kind: KIND.into(),
        version: VERSION,
        data: serde_json::json!({"offsets": offsets, "streams": streams})
            .to_string()
            .into_bytes(),
    }
}

fn decode(c: &Checkpoint) -> anyhow::Result<(BTreeMap<i32, i64>, Vec<Stream>)> {
    anyhow::ensure!(
        c.kind == KIND,
        "saved by a {} source, not a Kafka one (was the source's kind changed? remove the state's row for it to start afresh)",
        c.kind
    );
    anyhow::ensure!(
        c.version <= VERSION,
        "saved by a newer gatewatch (version {}); upgrade, or remove the state's row for it",
        c.version
    );
    if c.version == 1 {
        let text = std::str::from_utf8(&c.data).context("not text")?;
        let next = text
            .lines()
            .map(|l| {
                let (p, o) = l.split_once(' ').context("not `partition offset`")?;
                Ok((p.parse()?, o.parse()?))
            })
            .collect::<anyhow::Result<_>>()?;
        return Ok((next, Vec::new()));
    }
    #[derive(serde::Deserialize)]
    struct Saved {
        offsets: BTreeMap<i32, i64>,
        streams: Vec<(String, String, String)>,
    }
    let saved: Saved = serde_json::from_slice(&c.data).context("not the saved JSON")?;
    let streams = saved
        .streams
        .into_iter()
        .map(|(host, file, format)| {
            Ok(Stream {
                host,
                file,
                format: Format::from_name(&format)
                    .with_context(|| format!("{format:?} is not a format"))?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((saved.offsets, streams))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(host: &str, file: &str, format: Format) -> Stream {
        Stream {
            host: host.into(),
            file: file.into(),
            format,
        }
    }

    #[test]
    fn checkpoints_round_trip_and_foreign_ones_are_refused() {
        let next: BTreeMap<i32, i64> = [(0, 12), (3, 0), (7, 1 << 40)].into();
        let streams = vec![
            stream("edge-1", "/var/log/nginx/access.log", Format::NginxAccess),
            stream("edge \"2\"\n", "", Format::NginxError),
        ];
        assert_eq!(
            decode(&encode(&next, &streams)).unwrap(),
            (next.clone(), streams.clone())
        );
        // What version 1 saved is read too.
        let v1 = Checkpoint {
            kind: KIND.into(),
            version: 1,
            data: b"0 12\n3 0\n".to_vec(),
        };
        assert_eq!(decode(&v1).unwrap(), ([(0, 12), (3, 0)].into(), Vec::new()));
        let mut c = encode(&next, &streams);
        c.kind = "file".into();
        assert!(
            decode(&c)
                .unwrap_err()
                .to_string()
                .contains("not a Kafka one")
        );
        let mut c = encode(&next, &streams);
        c.version = VERSION + 1;
        assert!(decode(&c).unwrap_err().to_string().contains("newer"));
    }

    #[test]
    fn streams_are_named_by_host_and_file() {
        assert_eq!(
            stream("edge-1", "/var/log/nginx/error.log", Format::NginxError).name(),
            "edge-1:/var/log/nginx/error.log"
        );
        assert_eq!(stream("", "", Format::Haproxy).name(), "(no host)");
    }
}

//! A Kafka topic as a [`Source`]: the topic a fleet's log forwarders (rsyslog `omkafka`,
//! Vector, Fluent Bit) write to, read by the gatewatch instances of one consumer group with
//! librdkafka. Each (host, file) pair in the messages is a stream of its own, so counters and
//! alerts name the proxy host and log a line came from.
//!
//! Where each partition stands is saved in the state, in the transaction that saves the counts
//! of the lines read up to it, and then committed to the group (so lag tools see it). A
//! partition assigned to this instance starts where this instance's state stopped, unless the
//! group's offset is ahead (another instance read on meanwhile: its lines are counted there);
//! a partition new to both starts at `start_at`.

use super::envelope::{Fields, Payload};
use super::{
    Checkpoint, Context, Emit, KafkaConfig, Ledger, Plan, Recent, Round, Source, SourceConfig,
    SourceStatus, StartAt,
};
use crate::engine::event::Format;
use crate::engine::parse::{Parser, ParserOptions};
use crate::log;
use anyhow::Context as _;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The checkpoint kind of a Kafka source (its data: the next offset of every partition read).
pub const KIND: &str = "kafka";
const VERSION: u32 = 1;

/// Messages taken per read at most (the rest in the next).
const TAKE: u64 = 8192;

/// (host, file) pairs per source at most: beyond them, lines are counted as unparsed (a
/// forwarder that puts a request id in the host field would otherwise grow them without end).
pub const MAX_STREAMS: usize = 4096;

/// The deadline of a request the consumer makes to the brokers itself (the group's offsets on
/// an assignment, a commit when partitions are taken away).
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// A problem that can repeat with every message is logged at most this often.
const SAY_EVERY: Duration = Duration::from_secs(60);

/// Where the partitions stand, shared by the consumer's callbacks (rebalances, statistics) and
/// the source.
#[derive(Debug, Default)]
struct Partitions {
    /// The next offset to read, of every partition read since the state began.
    next: BTreeMap<i32, i64>,
    /// The offsets last committed to the group.
    group: BTreeMap<i32, i64>,
    /// The partitions assigned now.
    assigned: BTreeSet<i32>,
    /// The end of each partition (its high watermark) in the last statistics.
    high: BTreeMap<i32, i64>,
    rebalances: u64,
}

/// The consumer's context: librdkafka's logs into gatewatch's, the rebalances decided here.
struct Ctx {
    source: String,
    topic: String,
    start: StartAt,
    parts: Arc<Mutex<Partitions>>,
}

impl Ctx {
    fn parts(&self) -> std::sync::MutexGuard<'_, Partitions> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let what = format!("kafka: {fac}");
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                log!(Error, what, source = self.source, message = message)
            }
            RDKafkaLogLevel::Warning => log!(Warn, what, source = self.source, message = message),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                log!(Info, what, source = self.source, message = message)
            }
            RDKafkaLogLevel::Debug => log!(Debug, what, source = self.source, message = message),
        }
    }

    fn stats(&self, stats: Statistics) {
        let Some(t) = stats.topics.get(&self.topic) else {
            return;
        };
        let mut parts = self.parts();
        for (p, s) in &t.partitions {
            if *p >= 0 && s.hi_offset >= 0 {
                parts.high.insert(*p, s.hi_offset);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log!(
            Warn,
            "kafka",
            source = self.source,
            error = error,
            reason = reason
        );
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                log!(
                    Error,
                    "kafka: the group's rebalance failed; partitions are given up until the next",
                    source = self.source,
                    error = format!("{other:?}")
                );
                self.parts().assigned.clear();
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            log!(
                Error,
                "kafka: taking the group's assignment",
                source = self.source,
                error = e
            );
        }
    }
}

impl Ctx {
    /// Sets where each assigned partition starts (see the module's documentation).
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let group: BTreeMap<i32, i64> = match consumer.committed_offsets(tpl.clone(), BROKER_WAIT) {
            Ok(c) => c
                .elements_for_topic(&self.topic)
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                log!(
                    Warn,
                    "kafka: the group's offsets could not be read; assigned partitions start where this instance's state stopped",
                    source = self.source,
                    error = e
                );
                BTreeMap::new()
            }
        };
        let mut parts = self.parts();
        parts.rebalances += 1;
        let mut said = Vec::new();
        for p in tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect::<Vec<_>>()
        {
            let (offset, from) = match (parts.next.get(&p).copied(), group.get(&p).copied()) {
                (Some(mine), Some(g)) if g > mine => (Offset::Offset(g), "group"),
                (Some(mine), _) => (Offset::Offset(mine), "state"),
                (None, Some(g)) => (Offset::Offset(g), "group"),
                (None, None) => match self.start {
                    StartAt::End => (Offset::End, "end"),
                    StartAt::Beginning => (Offset::Beginning, "beginning"),
                },
            };
            if let Offset::Offset(o) = offset {
                parts.next.insert(p, o);
                parts.group.insert(p, group.get(&p).copied().unwrap_or(-1));
            }
            let _ = tpl.set_partition_offset(&self.topic, p, offset);
            parts.assigned.insert(p);
            said.push(match offset {
                Offset::Offset(o) => format!("{p}@{o} ({from})"),
                _ => format!("{p} ({from})"),
            });
        }
        log!(
            Info,
            "kafka: partitions assigned",
            source = self.source,
            partitions = said.join(", ")
        );
    }

    /// Commits, before they go, where the revoked partitions stand: their next owner starts
    /// there.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let mut parts = self.parts();
        let gone: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        if !consumer.assignment_lost()
            && let Err(e) = commit_group(consumer, &self.topic, &mut parts, &gone, CommitMode::Sync)
        {
            log!(
                Warn,
                "kafka: committing the offsets of partitions taken away",
                source = self.source,
                error = e
            );
        }
        for p in &gone {
            parts.assigned.remove(p);
        }
        log!(
            Info,
            "kafka: partitions taken away",
            source = self.source,
            partitions = format!("{gone:?}")
        );
    }
}

/// Commits to the group where the given partitions stand (those the group does not have yet).
fn commit_group<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    parts: &mut Partitions,
    which: &[i32],
    mode: CommitMode,
) -> rdkafka::error::KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    for p in which {
        if let Some(&n) = parts.next.get(p)
            && parts.group.get(p) != Some(&n)
        {
            tpl.add_partition_offset(topic, *p, Offset::Offset(n))?;
        }
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    consumer.commit(&tpl, mode)?;
    for e in tpl.elements() {
        if let Offset::Offset(o) = e.offset() {
            parts.group.insert(e.partition(), o);
        }
    }
    Ok(())
}

/// A configured Kafka source: its consumer is made when the source is opened, with the
/// checkpoint the state holds.
pub struct KafkaPlan {
    cfg: KafkaConfig,
    opts: ParserOptions,
    start: StartAt,
    wake: Arc<dyn Fn() + Send + Sync>,
    opened: bool,
}

impl KafkaPlan {
    pub fn new(k: &KafkaConfig, cfg: &SourceConfig, ctx: &Context) -> anyhow::Result<KafkaPlan> {
        Ok(KafkaPlan {
            cfg: k.clone(),
            opts: super::file::parser_options(cfg),
            start: cfg.start_at,
            wake: ctx.wake.clone(),
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
        let next = match saved(&self.cfg.name)? {
            Some(c) => {
                decode(&c).with_context(|| format!("the saved position of {}", self.cfg.name))?
            }
            None => BTreeMap::new(),
        };
        let src = KafkaSource::new(
            &self.cfg,
            self.opts.clone(),
            self.start,
            next,
            self.wake.clone(),
        )?;
        Ok(vec![Box::new(src)])
    }

    fn keeps(&self, cfg: &SourceConfig) -> bool {
        matches!(&cfg.kind, super::SourceKind::Kafka(k) if **k == self.cfg)
    }
}

/// The librdkafka properties gatewatch sets (the source's `options` come after and win).
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.group)
        .set("client.id", "gatewatch")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Where an offset no longer exists (retention removed it): the oldest one left.
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            k.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (k.session_timeout.as_millis() / 3)
                .clamp(100, 3000)
                .to_string(),
        )
        .set("socket.timeout.ms", BROKER_WAIT.as_millis().to_string())
        .set("statistics.interval.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in &k.options {
        c.set(key, value);
    }
    c
}

/// The streams' parsers and counts: everything but the consumer (which lends the messages).
struct Streams {
    source: String,
    payload: Payload,
    keys: super::envelope::Keys,
    format: Option<Format>,
    opts: ParserOptions,
    fields: Fields,
    key: String,
    /// Stream by `host \0 file \0 format`.
    index: FxHashMap<String, usize>,
    /// Each stream's parser and line count.
    parsers: Vec<(Parser, u64)>,
    fresh: Vec<(String, Format)>,
    parts: Arc<Mutex<Partitions>>,
    lines: u64,
    unparsed: u64,
    recent: Recent,
    said: FxHashMap<&'static str, Instant>,
}

/// What one message came to.
enum Taken {
    Lines(u64),
    /// Its stream is new: the reader must hear of it before its lines are handed over.
    New,
}

impl Streams {
    fn say(&mut self, what: &'static str, detail: &str) {
        if self.said.get(what).is_some_and(|t| t.elapsed() < SAY_EVERY) {
            return;
        }
        self.said.insert(what, Instant::now());
        log!(Warn, what, source = self.source, detail = detail);
    }

    fn take(&mut self, m: &impl Message, emit: &mut Emit<'_>) -> Taken {
        let n = self.lines_of(m, emit);
        if let Taken::Lines(_) = n {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            parts.next.insert(m.partition(), m.offset() + 1);
        }
        n
    }

    fn lines_of(&mut self, m: &impl Message, emit: &mut Emit<'_>) -> Taken {
        let value = m.payload().unwrap_or_default();
        match self.payload {
            Payload::Raw => self.fields.read_raw(m.key(), value),
            Payload::Json => {
                if let Err(e) = self.fields.read_json(&self.keys, value) {
                    self.lines += 1;
                    self.unparsed += 1;
                    self.recent.push(value);
                    self.say(
                        "kafka: a message is not the configured JSON envelope; counted as unparsed",
                        &e.to_string(),
                    );
                    return Taken::Lines(1);
                }
            }
        }
        let format = match self.fields.named_format() {
            Ok(f) => f.or(self.format),
            Err(name) => {
                let name = name.to_string();
                self.say(
                    "kafka: a message names a format gatewatch does not read; its lines are counted as unparsed",
                    &name,
                );
                None
            }
        };
        let Some(format) = format else {
            let n = self.fields.lines().count() as u64;
            self.lines += n;
            self.unparsed += n;
            self.say(
                "kafka: a message names no format and the source has none: set format = \"nginx_access\" (or another) on the [[source]], or have the forwarder add a format field",
                &self.fields.host.clone(),
            );
            return Taken::Lines(n);
        };
        self.key.clear();
        self.key.push_str(&self.fields.host);
        self.key.push('\0');
        self.key.push_str(&self.fields.file);
        self.key.push('\0');
        self.key.push_str(format.as_str());
        let Some(&s) = self.index.get(self.key.as_str()) else {
            if self.parsers.len() >= MAX_STREAMS {
                let n = self.fields.lines().count() as u64;
                self.lines += n;
                self.unparsed += n;
                self.say(
                    "kafka: more (host, file) pairs than a source keeps apart; the lines of new ones are counted as unparsed (does the forwarder put something else in the host or file field?)",
                    &format!("{MAX_STREAMS} pairs"),
                );
                return Taken::Lines(n);
            }
            let samples: Vec<&[u8]> = self.fields.lines().collect();
            let parser = Parser::new(format, &self.opts, &samples);
            self.index.insert(self.key.clone(), self.parsers.len());
            self.parsers.push((parser, 0));
            self.fresh.push((stream_name(&self.fields), format));
            return Taken::New;
        };
        let (parser, count) = &mut self.parsers[s];
        let mut n = 0;
        for line in self.fields.lines() {
            n += 1;
            *count += 1;
            match parser.parse(line) {
                // Stream 0 is the topic's own; the pairs come after it.
                Ok(ev) => emit(s + 1, *count, line, ev),
                Err(_) => {
                    self.unparsed += 1;
                    self.recent.push(line);
                }
            }
        }
        self.lines += n;
        Taken::Lines(n)
    }
}

/// What counters and alerts call a (host, file) pair: `edge-1:/var/log/nginx/access.log`.
fn stream_name(f: &Fields) -> String {
    match (f.host.is_empty(), f.file.is_empty()) {
        (false, false) => format!("{}:{}", f.host, f.file),
        (false, true) => f.host.clone(),
        (true, false) => f.file.clone(),
        (true, true) => "(no host)".into(),
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
}

impl KafkaSource {
    fn new(
        k: &KafkaConfig,
        opts: ParserOptions,
        start: StartAt,
        next: BTreeMap<i32, i64>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> anyhow::Result<KafkaSource> {
        let parts = Arc::new(Mutex::new(Partitions {
            next,
            ..Default::default()
        }));
        let ctx = Ctx {
            source: k.name.clone(),
            topic: k.topic.clone(),
            start,
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
                parsers: Vec::new(),
                fresh: Vec::new(),
                parts: parts.clone(),
                lines: 0,
                unparsed: 0,
                recent: Recent::default(),
                said: FxHashMap::default(),
            },
            held: None,
            parts,
            failed: None,
        })
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, Partitions> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        self.streams.format.unwrap_or(Format::NginxAccess)
    }

    fn new_streams(&mut self) -> Vec<(String, Format)> {
        std::mem::take(&mut self.streams.fresh)
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
        let mut taken = 0;
        while taken < TAKE {
            match self.consumer.poll(Duration::ZERO) {
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
        (!parts.next.is_empty()).then(|| encode(&parts.next))
    }

    fn committed(&mut self) {
        // The state holds where the partitions stand: the group hears it too, for lag tools and
        // for the partitions' next owner.
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let assigned: Vec<i32> = parts.assigned.iter().copied().collect();
        if let Err(e) = commit_group(
            &self.consumer,
            &self.topic,
            &mut parts,
            &assigned,
            CommitMode::Async,
        ) {
            log!(
                Warn,
                "kafka: committing offsets to the group",
                source = self.name,
                error = e
            );
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

/// The checkpoint of the partitions' next offsets: `partition offset` lines.
fn encode(next: &BTreeMap<i32, i64>) -> Checkpoint {
    let mut data = String::new();
    for (p, o) in next {
        data.push_str(&format!("{p} {o}\n"));
    }
    Checkpoint {
        kind: KIND.into(),
        version: VERSION,
        data: data.into_bytes(),
    }
}

fn decode(c: &Checkpoint) -> anyhow::Result<BTreeMap<i32, i64>> {
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
    let text = std::str::from_utf8(&c.data).context("not text")?;
    text.lines()
        .map(|l| {
            let (p, o) = l.split_once(' ').context("not `partition offset`")?;
            Ok((p.parse()?, o.parse()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_foreign_ones_are_refused() {
        let next: BTreeMap<i32, i64> = [(0, 12), (3, 0), (7, 1 << 40)].into();
        assert_eq!(decode(&encode(&next)).unwrap(), next);
        let mut c = encode(&next);
        c.kind = "file".into();
        assert!(
            decode(&c)
                .unwrap_err()
                .to_string()
                .contains("not a Kafka one")
        );
        let mut c = encode(&next);
        c.version = VERSION + 1;
        assert!(decode(&c).unwrap_err().to_string().contains("newer"));
    }

    #[test]
    fn streams_are_named_by_host_and_file() {
        let mut f = Fields::default();
        f.read_json(
            &Default::default(),
            br#"{"host":"edge-1","file":"/var/log/nginx/error.log","message":"x"}"#,
        )
        .unwrap();
        assert_eq!(stream_name(&f), "edge-1:/var/log/nginx/error.log");
        f.read_raw(None, b"x");
        assert_eq!(stream_name(&f), "(no host)");
    }
}

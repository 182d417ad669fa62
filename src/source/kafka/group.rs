//! The consumer's side of the group: where each partition stands, what an assignment starts
//! from (see the module above), the commits, and librdkafka's logs and statistics.

use super::{BROKER_WAIT, StartAt};
use crate::log;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the partitions stand, shared by the consumer's callbacks (rebalances, statistics) and
/// the source.
#[derive(Debug, Default)]
pub(super) struct Partitions {
    /// The next offset to read, of every partition read since the state began.
    pub(super) next: BTreeMap<i32, i64>,
    /// The offsets last committed to the group.
    pub(super) group: BTreeMap<i32, i64>,
    /// The partitions assigned now.
    pub(super) assigned: BTreeSet<i32>,
    /// The end of each partition (its high watermark) in the last statistics.
    pub(super) high: BTreeMap<i32, i64>,
    /// Partitions taken over from another instance: their offsets below this are read again
    /// to rebuild the detector's state, not counted (that instance counted them).
    pub(super) counting_from: BTreeMap<i32, i64>,
    pub(super) rebalances: u64,
}

/// The consumer's context: librdkafka's logs into gatewatch's, the rebalances decided here.
pub(super) struct Ctx {
    pub(super) source: String,
    /// This gatewatch's name in the group's commits ([`Context::instance`]).
    pub(super) instance: String,
    pub(super) topic: String,
    pub(super) start: StartAt,
    pub(super) replay: Duration,
    pub(super) parts: Arc<Mutex<Partitions>>,
}

impl Ctx {
    pub(super) fn parts(&self) -> std::sync::MutexGuard<'_, Partitions> {
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
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if r.is_ok() {
                    let mut parts = self.parts();
                    for e in tpl.elements_for_topic(&self.topic) {
                        parts.assigned.insert(e.partition());
                    }
                }
                r
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
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
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

/// Where an assigned partition starts, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum From {
    /// Where this instance's state stopped.
    State,
    /// Where the group stands: another instance read on (and counted those lines).
    Group,
    /// The group's offset could not be read: librdkafka asks for it itself.
    Librdkafka,
    /// Nothing read by anyone: `start_at`.
    Start,
}

impl From {
    fn as_str(self) -> &'static str {
        match self {
            From::State => "state",
            From::Group => "group",
            From::Librdkafka => "group, read by librdkafka",
            From::Start => "start_at",
        }
    }
}

/// Where an assigned partition starts: `mine`, this instance's state's offset; `group`, the
/// group's. The group hears of an offset before the state saves it, so a group ahead of the
/// state by this instance's own commit means it stopped between the two and no one counted
/// the lines between: it counts them. Ahead by another's commit (or one the broker kept no
/// signature of), they were counted there. Never this instance's state when the group's place
/// is not known: it may be behind lines another instance counted.
pub(super) fn start_of(mine: Option<i64>, group: Group, start: StartAt) -> (Offset, From) {
    match (mine, group) {
        (_, Group::Unknown) => (Offset::Stored, From::Librdkafka),
        (Some(mine), Group::At(g, false)) if g > mine => (Offset::Offset(g), From::Group),
        (Some(mine), _) => (Offset::Offset(mine), From::State),
        (None, Group::At(g, _)) => (Offset::Offset(g), From::Group),
        (None, Group::Nothing) => match start {
            StartAt::End => (Offset::End, From::Start),
            StartAt::Beginning => (Offset::Beginning, From::Start),
        },
    }
}

/// Where the group stands in a partition.
#[derive(Clone, Copy, Debug)]
pub(super) enum Group {
    /// At an offset, committed by this instance (`true`) or another.
    At(i64, bool),
    /// Nothing committed yet.
    Nothing,
    /// Not known: the request failed.
    Unknown,
}

impl Ctx {
    /// Whether this instance made a commit (its metadata is the instance's name). Metadata that
    /// is not text (another client's) is someone else's.
    fn signed_by_me(&self, e: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>) -> bool {
        // rdkafka panics on metadata that is not UTF-8 rather than say so.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            e.metadata() == self.instance
        }))
        .unwrap_or(false)
    }

    /// Sets where each assigned partition starts (see the module's documentation).
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        // Each partition's place in the group (see [`Group`]).
        let group: BTreeMap<i32, Group> = match consumer.committed_offsets(tpl.clone(), BROKER_WAIT)
        {
            Ok(c) => c
                .elements_for_topic(&self.topic)
                .iter()
                .map(|e| {
                    let g = match (e.error(), e.offset()) {
                        (Ok(()), Offset::Offset(o)) => Group::At(o, self.signed_by_me(e)),
                        (Ok(()), Offset::Invalid) => Group::Nothing,
                        _ => Group::Unknown,
                    };
                    (e.partition(), g)
                })
                .collect(),
            Err(e) => {
                log!(
                    Warn,
                    "kafka: the group's offsets could not be read; librdkafka asks for them itself",
                    source = self.source,
                    error = e
                );
                BTreeMap::new()
            }
        };
        let mut parts = self.parts();
        parts.rebalances += 1;
        let mut said = Vec::new();
        let mut taken: Vec<(i32, i64)> = Vec::new();
        for p in tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect::<Vec<_>>()
        {
            let mine = parts.next.get(&p).copied();
            let (offset, from) = start_of(
                mine,
                group.get(&p).copied().unwrap_or(Group::Unknown),
                self.start,
            );
            if from == From::Librdkafka {
                parts.next.remove(&p);
            }
            // A replay a rebalance cut short (counting had not begun): read again once more.
            let unfinished = parts.counting_from.remove(&p);
            if let Offset::Offset(o) = offset {
                parts.next.insert(p, o);
                let g = match group.get(&p) {
                    Some(Group::At(g, _)) => *g,
                    _ => -1,
                };
                parts.group.insert(p, g);
                if from == From::Group || (from == From::State && unfinished == Some(o)) {
                    taken.push((p, o));
                }
            }
            let from = from.as_str();
            let _ = tpl.set_partition_offset(&self.topic, p, offset);
            said.push(match offset {
                Offset::Offset(o) => format!("{p}@{o} ({from})"),
                _ => format!("{p} ({from})"),
            });
        }
        // Partitions another instance read: the last minutes again, uncounted, so an incident
        // open there is recognised here (and keeps its start, hence its key).
        for (p, from) in self.replay_starts(consumer, &taken) {
            let counting = taken.iter().find(|(q, _)| *q == p).map_or(from, |t| t.1);
            if from < counting {
                let _ = tpl.set_partition_offset(&self.topic, p, Offset::Offset(from));
                parts.counting_from.insert(p, counting);
                said.push(format!("{p} read again from {from}"));
            }
        }
        log!(
            Info,
            "kafka: partitions assigned",
            source = self.source,
            partitions = said.join(", ")
        );
    }

    /// Where reading again `replay` back begins in each partition taken over: the first
    /// message written since then, by the messages' own times.
    fn replay_starts(
        &self,
        consumer: &BaseConsumer<Self>,
        taken: &[(i32, i64)],
    ) -> Vec<(i32, i64)> {
        if taken.is_empty() || self.replay.is_zero() {
            return Vec::new();
        }
        let since = crate::clock::now_ms() - self.replay.as_millis() as i64;
        let mut q = TopicPartitionList::new();
        for (p, _) in taken {
            let _ = q.add_partition_offset(&self.topic, *p, Offset::Offset(since));
        }
        match consumer.offsets_for_times(q, BROKER_WAIT) {
            Ok(r) => r
                .elements_for_topic(&self.topic)
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some((e.partition(), o)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                log!(
                    Warn,
                    "kafka: the offsets of the replay period could not be read; partitions taken over start where the group stands, and an incident open on their last owner is announced anew",
                    source = self.source,
                    error = e
                );
                Vec::new()
            }
        }
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
            && let Err(e) = commit_group(
                consumer,
                &self.topic,
                &self.instance,
                &mut parts,
                &gone,
                Commit::Wait,
            )
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

/// How a commit to the group is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Commit {
    /// Waits for the coordinator's answer, at most [`BROKER_WAIT`].
    Wait,
    /// Sent; the answer is not waited for (the offsets are sent again with the next commit
    /// until one is answered).
    Send,
}

/// Commits to the group where the given partitions stand (those the group does not have yet),
/// signed with the instance's name (see [`Ctx::assign`]).
pub(super) fn commit_group<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    instance: &str,
    parts: &mut Partitions,
    which: &[i32],
    how: Commit,
) -> Result<(), String> {
    let mut tpl = TopicPartitionList::new();
    for p in which {
        if let Some(&n) = parts.next.get(p)
            && parts.group.get(p) != Some(&n)
        {
            let mut e = tpl.add_partition(topic, *p);
            e.set_offset(Offset::Offset(n)).map_err(|e| e.to_string())?;
            e.set_metadata(instance);
        }
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    match how {
        Commit::Send => consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| e.to_string()),
        Commit::Wait => {
            commit_within(consumer, &tpl, BROKER_WAIT)?;
            for e in tpl.elements() {
                if let Offset::Offset(o) = e.offset() {
                    parts.group.insert(e.partition(), o);
                }
            }
            Ok(())
        }
    }
}

/// Commits offsets and waits for the coordinator's answer at most `wait` (rdkafka's own
/// synchronous commit waits without a deadline while the coordinator is unknown).
fn commit_within<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    wait: Duration,
) -> Result<(), String> {
    use rdkafka::bindings as rd;
    let rk = consumer.client().native_ptr();
    let ok = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    // SAFETY: `rk` is the live client of `consumer`, borrowed for the whole call; `tpl` is a
    // valid list, which librdkafka copies. The queue is made, polled and destroyed here; the
    // commit's answer, if it comes after the deadline, goes to the destroyed queue, which
    // librdkafka keeps alive (reference-counted) until then. The event is destroyed once read.
    unsafe {
        let q = rd::rd_kafka_queue_new(rk);
        let err = rd::rd_kafka_commit_queue(rk, tpl.ptr(), q, None, std::ptr::null_mut());
        let result = if err != ok {
            Err(rdkafka::error::RDKafkaErrorCode::from(err).to_string())
        } else {
            let ev = rd::rd_kafka_queue_poll(q, wait.as_millis() as i32);
            if ev.is_null() {
                Err(format!(
                    "no answer from the group coordinator within {wait:?}"
                ))
            } else {
                let err = rd::rd_kafka_event_error(ev);
                rd::rd_kafka_event_destroy(ev);
                if err == ok {
                    Ok(())
                } else {
                    Err(rdkafka::error::RDKafkaErrorCode::from(err).to_string())
                }
            }
        };
        rd::rd_kafka_queue_destroy(q);
        result
    }
}

/// The librdkafka properties gatewatch sets (the source's `options` come after and win).
pub fn client_config(k: &crate::source::KafkaConfig) -> ClientConfig {
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
        // When its local queue is full, librdkafka waits this long before fetching again
        // (1 s by default): a second of nothing to read every few hundred thousand lines.
        .set("fetch.queue.backoff.ms", "10")
        // What librdkafka fetches ahead: 16 MiB rather than 64 (as fast on one core).
        .set("queued.max.messages.kbytes", "16384")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in &k.options {
        c.set(key, value);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_starts_where_no_line_is_counted_twice() {
        let s = StartAt::End;
        // Resuming: the state's offset (the group at it, or behind while it was unreachable).
        assert_eq!(start_of(Some(10), Group::At(10, true), s).1, From::State);
        assert_eq!(start_of(Some(10), Group::At(7, false), s).1, From::State);
        // This instance committed to the group, then stopped before its state saved: it counts
        // the lines between itself.
        let (o, f) = start_of(Some(10), Group::At(15, true), s);
        assert_eq!((o, f), (Offset::Offset(10), From::State));
        // Another instance read on: its offset.
        let (o, f) = start_of(Some(10), Group::At(15, false), s);
        assert_eq!((o, f), (Offset::Offset(15), From::Group));
        let (o, f) = start_of(None, Group::At(15, true), s);
        assert_eq!((o, f), (Offset::Offset(15), From::Group));
        // Not known: never the state.
        assert_eq!(
            start_of(Some(10), Group::Unknown, s),
            (Offset::Stored, From::Librdkafka)
        );
        // Read by no one: start_at.
        assert_eq!(
            start_of(None, Group::Nothing, s),
            (Offset::End, From::Start)
        );
        assert_eq!(
            start_of(None, Group::Nothing, StartAt::Beginning),
            (Offset::Beginning, From::Start)
        );
    }
}

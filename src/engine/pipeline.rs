//! The pure chain every line goes through after parsing: match the knowledge base, join access
//! lines with error lines, count, detect bursts. `scan` and the daemon both drive it.

use crate::engine::detect::{Change, DetectConfig, Detector, Observation};
use crate::engine::event::{Cause, Event, Kind};
use crate::engine::join::{Item, JoinConfig, Joiner};
use crate::engine::kb::{EntryId, Kb};
use crate::engine::parse::nginx_access::Answered;
use std::sync::Arc;

/// A line once everything about it is known.
#[derive(Clone, Copy, Debug)]
pub struct Settled<'a> {
    pub source: u16,
    /// 1-based line number in its source.
    pub line_no: u64,
    pub line: &'a [u8],
    pub ev: &'a Event,
    pub entry: Option<EntryId>,
    /// The upstream: the line's own, or the one of the error-log line it was joined with.
    pub upstream: Option<&'a [u8]>,
    /// An error-log line whose failure was counted through the access-log line it explains.
    pub consumed: bool,
    /// An access-log line that took its cause (and perhaps its upstream) from the error log:
    /// the cause it had on its own.
    pub joined_from: Option<Cause>,
}

/// Receives what the pipeline produces.
pub trait Sink {
    /// Every parsed line, in arrival order, once settled.
    fn event(&mut self, settled: &Settled<'_>);
    /// Every incident that opens or closes.
    fn change(&mut self, change: Change);
    /// Whether [`Sink::event`] does anything: without it, requests that did not fail can be
    /// counted without their events ([`Pipeline::push_answered`]).
    fn wants_events(&self) -> bool {
        true
    }
}

/// Counts per cause of the settled lines; an error-log line consumed by a join is not counted
/// (its failure is counted once, through the access-log line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CauseCounts(pub [u64; Cause::COUNT]);

impl CauseCounts {
    pub fn get(&self, c: Cause) -> u64 {
        self.0[c.index()]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Pipeline settings.
#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    pub detect: DetectConfig,
    /// `None` when no source can take part in a join (no nginx access and error log together).
    pub join: Option<JoinConfig>,
}

/// How many writers' (Apache worker threads') last named upstream are remembered.
const CARRIED: usize = 64;

/// The upstream each writer's last connection-level line named, for the report of the request
/// it writes next: Apache names the `host:port` it could not reach on one line (`AH00957`) and
/// the client on the next (`AH01114`, with the host only). Buffers are reused: no allocation
/// once warm.
#[derive(Clone, Debug, Default)]
struct Carry {
    /// (hash of the writer, its upstream), the newest at `next - 1`.
    slots: Vec<(u64, Vec<u8>)>,
    next: usize,
}

impl Carry {
    /// Remembers the upstream of a writer's line that reports no request, or gives a report
    /// the upstream its writer named last (once).
    fn pass(&mut self, source: u16, ev: &Event, line: &[u8]) -> Option<&[u8]> {
        let writer = ev.thread.get(line)?;
        // The writer within its source: two hosts' httpd have the same pids and tids.
        let key = source
            .to_le_bytes()
            .iter()
            .chain(writer)
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
            });
        match ev.kind {
            Kind::Other => {
                let upstream = ev.upstream(line)?;
                if self.slots.len() < CARRIED {
                    self.slots.push((key, upstream.to_vec()));
                } else {
                    let slot = &mut self.slots[self.next % CARRIED];
                    slot.0 = key;
                    slot.1.clear();
                    slot.1.extend_from_slice(upstream);
                }
                self.next = (self.next + 1) % CARRIED;
                None
            }
            Kind::UpstreamReport => {
                let n = self.slots.len();
                let i = (1..=n)
                    .map(|k| (self.next + CARRIED - k) % CARRIED)
                    .find(|&i| i < n && self.slots[i].0 == key)?;
                // Only for a report that names no upstream, or the host alone (`AH01114`): a
                // report with its own `host:port` keeps it (a left-over line of an earlier
                // request on the same thread must not rename it).
                let carried = &self.slots[i].1;
                if let Some(own) = ev.upstream(line) {
                    let host = carried
                        .iter()
                        .rposition(|&b| b == b':')
                        .map_or(&carried[..], |c| &carried[..c]);
                    if own != host {
                        return None;
                    }
                }
                // Taken once: the writer's next request names its own.
                self.slots[i].0 = 0;
                Some(&self.slots[i].1)
            }
            Kind::Request | Kind::Recovery(_) => None,
        }
    }
}

/// Knowledge-base matching, joining and detection for a set of sources.
pub struct Pipeline {
    kb: Arc<Kb>,
    joiner: Option<Joiner>,
    carry: Carry,
    state: State,
}

/// The knowledge base's safety net: the entry of 5xx bursts that no other entry explains.
pub const UNKNOWN_ENTRY: &str = "unknown/5xx-burst";

/// What a request is counted under when its line names no upstream and no virtual host.
pub const UNNAMED: &[u8] = b"(not named in the log)";

/// The part of the pipeline that settled lines flow into.
struct State {
    detector: Detector,
    /// [`UNKNOWN_ENTRY`], if the knowledge base has it.
    unknown: Option<crate::engine::kb::EntryId>,
    counts: CauseCounts,
    changes: Vec<Change>,
    now_ms: i64,
}

impl State {
    fn settle(&mut self, s: &Settled<'_>, sink: &mut impl Sink) {
        // A joined failure counts once: through the access-log line it explains.
        if !s.consumed {
            self.counts.0[s.ev.cause.index()] += 1;
        }
        sink.event(s);
        let Some(t) = s.ev.time else { return };
        if t.ms > self.now_ms {
            self.now_ms = t.ms;
            self.detector.advance(t.ms, &mut self.changes);
        }
        if let Kind::Recovery(signal) = s.ev.kind {
            self.detector.recovered(signal, t.ms, s.ev.upstream(s.line));
        }
        let is_request = s.ev.kind == Kind::Request;
        // A 5xx request that no entry explains is a failure of the safety net's entry: a
        // burst of them opens an incident of its own (events keep no entry: it explains
        // nothing).
        let entry = s.entry.or(self
            .unknown
            .filter(|_| is_request && s.ev.status.is_some_and(|st| st >= 500)));
        // A request whose line names no upstream counts under its virtual host, or under
        // "not named": the share of a burst there is taken over those requests.
        let upstream = match s.upstream {
            Some(u) => Some(u),
            None if is_request => Some(s.ev.vhost(s.line).unwrap_or(UNNAMED)),
            None => None,
        };
        let request = is_request && (s.ev.names_upstream || s.upstream.is_none());
        let failure = entry.is_some() && !s.consumed;
        if request || failure {
            self.detector.observe(
                &Observation {
                    time_ms: t.ms,
                    offset_secs: t.offset_secs,
                    upstream,
                    entry,
                    cause: s.ev.cause,
                    status: s.ev.status,
                    request,
                    failure,
                    line: s.line,
                    // Only failures are described by host and path.
                    vhost: if failure { s.ev.vhost(s.line) } else { None },
                    path: if failure { s.ev.path(s.line) } else { None },
                    source: s.source,
                },
                &mut self.changes,
            );
        }
        for c in self.changes.drain(..) {
            sink.change(c);
        }
    }
}

impl Pipeline {
    pub fn new(kb: Arc<Kb>, cfg: PipelineConfig) -> Pipeline {
        let unknown = kb.find(UNKNOWN_ENTRY);
        Pipeline {
            kb,
            joiner: cfg.join.map(Joiner::new),
            carry: Carry::default(),
            state: State {
                unknown,
                detector: Detector::new(cfg.detect),
                counts: CauseCounts::default(),
                changes: Vec::new(),
                now_ms: i64::MIN,
            },
        }
    }

    pub fn kb(&self) -> &Kb {
        &self.kb
    }

    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.state.detector
    }

    pub fn detector(&self) -> &Detector {
        &self.state.detector
    }

    pub fn counts(&self) -> CauseCounts {
        self.state.counts
    }

    pub fn joiner(&self) -> Option<&Joiner> {
        self.joiner.as_ref()
    }

    /// Corrects an error-log line's time by the zone offset the joiner found between the two
    /// logs (an error log read in the wrong zone would never join its access log). Call before
    /// counting and pushing the line; `scan`, which reads files merged by time, cannot be
    /// corrected this way and reports the offset instead.
    pub fn correct(&self, ev: &mut crate::engine::event::Event) {
        if ev
            .format
            .is_some_and(crate::engine::event::Format::is_zoneless_report)
            && let Some(off) = self.joiner.as_ref().and_then(|j| j.stats.error_offset_ms)
            && let Some(t) = &mut ev.time
        {
            t.ms -= off;
        }
    }

    /// Feeds one parsed line.
    pub fn push(
        &mut self,
        source: u16,
        line_no: u64,
        line: &[u8],
        ev: Event,
        sink: &mut impl Sink,
    ) {
        let entry = match ev.format {
            Some(format) if ev.cause.is_upstream_failure() => {
                self.kb.match_event(ev.cause, ev.status, format, line)
            }
            _ => None,
        };
        let carried = if ev.thread.is_none() {
            None
        } else {
            self.carry.pass(source, &ev, line)
        };
        let state = &mut self.state;
        match &mut self.joiner {
            Some(j) if j.wants(&ev) => {
                let item = Item {
                    source,
                    line_no,
                    line: line.to_vec(),
                    ev,
                    entry,
                    joined_upstream: carried.map(Box::from),
                    consumed: false,
                    joined_from: None,
                };
                j.push(item, &self.kb, &mut |it| state.settle(&settled(&it), sink));
            }
            _ => state.settle(
                &Settled {
                    source,
                    line_no,
                    line,
                    ev: &ev,
                    entry,
                    upstream: carried.or(ev.upstream(line)),
                    consumed: false,
                    joined_from: None,
                },
                sink,
            ),
        }
    }

    /// Whether [`Pipeline::push_answered`] may take requests that did not fail for `sink`.
    pub fn takes_answered(&self, sink: &impl Sink) -> bool {
        self.joiner.is_none() && !sink.wants_events()
    }

    /// Feeds a request that did not fail, read the short way ([`Parser::answered`]): what
    /// [`Pipeline::push`] does with its event, when [`Pipeline::takes_answered`].
    ///
    /// [`Parser::answered`]: crate::engine::parse::Parser::answered
    #[inline(always)]
    pub fn push_answered(&mut self, line: &[u8], a: &Answered, sink: &mut impl Sink) {
        debug_assert!(self.takes_answered(sink));
        let state = &mut self.state;
        state.counts.0[Cause::Ok.index()] += 1;
        let t = a.time;
        if t.ms > state.now_ms {
            state.now_ms = t.ms;
            state.detector.advance(t.ms, &mut state.changes);
        }
        let own = a.upstream.get(line);
        if a.names_upstream || own.is_none() {
            let upstream = own.unwrap_or_else(|| a.vhost.get(line).unwrap_or(UNNAMED));
            state.detector.count_request(upstream, t.ms);
        }
        if !state.changes.is_empty() {
            for c in state.changes.drain(..) {
                sink.change(c);
            }
        }
    }

    /// Moves event time forward without a line (the daemon calls this as the clock runs).
    pub fn tick(&mut self, now_ms: i64, sink: &mut impl Sink) {
        let state = &mut self.state;
        if let Some(j) = &mut self.joiner {
            j.advance(now_ms, &mut |it| state.settle(&settled(&it), sink));
        }
        if now_ms > state.now_ms {
            state.now_ms = now_ms;
        }
        state.detector.advance(now_ms, &mut state.changes);
        for c in state.changes.drain(..) {
            sink.change(c);
        }
    }

    /// End of input: settles held lines and closes every open incident.
    pub fn finish(&mut self, sink: &mut impl Sink) {
        let state = &mut self.state;
        if let Some(j) = &mut self.joiner {
            j.flush(&mut |it| state.settle(&settled(&it), sink));
        }
        state.detector.finish(&mut state.changes);
        for c in state.changes.drain(..) {
            sink.change(c);
        }
    }
}

fn settled(it: &Item) -> Settled<'_> {
    Settled {
        source: it.source,
        line_no: it.line_no,
        line: &it.line,
        ev: &it.ev,
        entry: it.entry,
        upstream: it.upstream(),
        consumed: it.consumed,
        joined_from: it.joined_from,
    }
}

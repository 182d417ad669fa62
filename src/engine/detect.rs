//! Burst detection over event time: sliding windows per (entry, upstream), incidents that open
//! on a burst and close after a quiet period.
//!
//! Time is the time written in the lines, passed in by the caller, so replaying old logs finds
//! the same incidents as following them live. Nothing here reads a clock or does IO.
//!
//! * An incident **opens** when, within `window`, an (entry, upstream) has at least
//!   `open_failures` failures and — where the upstream's request total is known — they are at
//!   least `open_share` of its requests.
//! * It **closes** once the window has held fewer than `close_failures` failures for `quiet`.
//!   The lower close threshold is the hysteresis that keeps a flapping upstream from opening
//!   and closing incidents on every other request.
//! * Memory is bounded: at most `max_upstreams` upstreams are tracked; idle ones are evicted
//!   first, and an upstream with an open incident is never evicted.

use crate::engine::event::Cause;
use crate::engine::kb::EntryId;
use rustc_hash::FxHashMap;

/// Buckets per window: the window slides in steps of `window / BUCKETS`.
const BUCKETS: usize = 60;

/// Upstreams remembered for lookups without hashing (a power of two).
const RECENT: usize = 16;

/// Detector settings (`[detect]` in the config).
#[derive(Clone, Debug, PartialEq)]
pub struct DetectConfig {
    pub window_ms: i64,
    pub open_failures: u32,
    pub open_share: f64,
    pub close_failures: u32,
    pub quiet_ms: i64,
    pub max_upstreams: usize,
    /// Sample lines kept per incident.
    pub samples: usize,
}

impl Default for DetectConfig {
    fn default() -> DetectConfig {
        DetectConfig {
            window_ms: 60_000,
            open_failures: 10,
            open_share: 0.2,
            close_failures: 3,
            quiet_ms: 60_000,
            max_upstreams: 10_000,
            samples: 3,
        }
    }
}

/// Counts per time bucket over one window, with a running total.
#[derive(Clone, Debug)]
struct Ring {
    counts: [u32; BUCKETS],
    /// The newest bucket (absolute bucket number); `None` before the first count.
    head: Option<i64>,
    /// Where the newest bucket's count is (`head` modulo [`BUCKETS`]): most counts land there.
    head_slot: usize,
    total: u32,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            counts: [0; BUCKETS],
            head: None,
            head_slot: 0,
            total: 0,
        }
    }

    /// Moves the window so that `bucket` is the newest, dropping buckets that fall out.
    fn advance(&mut self, bucket: i64) {
        let Some(head) = self.head else {
            self.head = Some(bucket);
            self.head_slot = slot(bucket);
            return;
        };
        if bucket <= head {
            return;
        }
        if bucket - head >= BUCKETS as i64 {
            self.counts = [0; BUCKETS];
            self.total = 0;
        } else {
            for b in head + 1..=bucket {
                let i = slot(b);
                self.total -= self.counts[i];
                self.counts[i] = 0;
            }
        }
        self.head = Some(bucket);
        self.head_slot = slot(bucket);
    }

    /// Counts one at `bucket`; false when the bucket has already left the window.
    #[inline]
    fn add(&mut self, bucket: i64) -> bool {
        if self.head == Some(bucket) {
            self.counts[self.head_slot] += 1;
            self.total += 1;
            return true;
        }
        self.advance(bucket);
        let head = self.head.expect("advanced");
        if bucket <= head - BUCKETS as i64 {
            return false;
        }
        self.counts[slot(bucket)] += 1;
        self.total += 1;
        true
    }
}

/// The slot of [`Detector::recent`] a name is remembered in: from its length and last bytes,
/// where addresses differ (`10.0.1.5:8080`, `10.0.1.6:8080`).
#[inline]
fn hint(name: &[u8]) -> usize {
    let n = name.len();
    let tail = if n >= 8 {
        u64::from_le_bytes(name[n - 8..].try_into().expect("8 bytes"))
    } else {
        name.iter().fold(0u64, |h, &b| h << 8 | b as u64)
    };
    let h = (tail ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - RECENT.trailing_zeros())) as usize
}

/// Where a bucket's count is kept in a [`Ring`].
fn slot(bucket: i64) -> usize {
    bucket.rem_euclid(BUCKETS as i64) as usize
}

/// Up to a few distinct values with their counts (virtual hosts, paths of an incident).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopValues {
    pub values: Vec<(String, u64)>,
    /// Occurrences of values beyond the ones kept.
    pub others: u64,
}

impl TopValues {
    const KEEP: usize = 8;

    fn add(&mut self, v: &[u8]) {
        if let Some(slot) = self.values.iter_mut().find(|(s, _)| s.as_bytes() == v) {
            slot.1 += 1;
        } else if self.values.len() < Self::KEEP {
            self.values
                .push((String::from_utf8_lossy(v).into_owned(), 1));
        } else {
            self.others += 1;
        }
    }

    /// The values, most frequent first.
    pub fn ranked(&self) -> Vec<(String, u64)> {
        let mut v = self.values.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// A burst of failures of one entry on one upstream.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    /// Sequence number within this detector, from 1.
    pub seq: u64,
    pub entry: EntryId,
    pub upstream: String,
    /// The cause most of its failures had.
    pub cause: Cause,
    /// The first failure of the burst.
    pub start_ms: i64,
    /// The UTC offset of the proxy's lines, for showing times as it wrote them.
    pub offset_secs: i32,
    /// When the burst crossed the thresholds.
    pub opened_ms: i64,
    /// The last failure seen.
    pub end_ms: i64,
    /// When the incident closed (`None` while open).
    pub closed_ms: Option<i64>,
    /// Failures since the burst began.
    pub failures: u64,
    /// Requests to the upstream since the burst began, where the logs name the upstream of
    /// every request; `None` where they do not (only failures are seen).
    pub requests: Option<u64>,
    /// Failures in the window, and requests in the seconds of that window that had failures,
    /// at the moment the incident opened (requests 0 when unknown).
    pub window_failures: u32,
    pub window_requests: u32,
    /// The most failures seen within one window.
    pub peak_window_failures: u32,
    pub causes: [u64; Cause::COUNT],
    /// Client statuses of the failures, most frequent first (at most a few).
    pub statuses: Vec<(u16, u64)>,
    pub vhosts: TopValues,
    pub paths: TopValues,
    /// The first lines of the burst, verbatim.
    pub samples: Vec<String>,
    /// Indexes of the sources (files) the failures came from.
    pub sources: Vec<u16>,
    /// What the proxy did shortly before it recovered (set when it closes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<crate::engine::recovery::Recovery>,
}

/// What changed: an incident opened or closed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Opened(Incident),
    Closed(Incident),
}

/// One event as the detector sees it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    pub time_ms: i64,
    /// The UTC offset the line was written in (for showing times as the proxy wrote them).
    pub offset_secs: i32,
    pub upstream: Option<&'a [u8]>,
    /// The entry the event matched; an event counts as a failure only with an entry.
    pub entry: Option<EntryId>,
    pub cause: Cause,
    /// The status the client got, where the line has one.
    pub status: Option<u16>,
    /// A request whose log names its upstream: it counts toward that upstream's total.
    pub request: bool,
    /// The event is a failure to count (it has an entry and was not already counted through
    /// another line, such as an error-log line joined to its access-log line).
    pub failure: bool,
    pub line: &'a [u8],
    pub vhost: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub source: u16,
}

#[derive(Clone, Debug)]
struct Burst {
    start_ms: i64,
    offset_secs: i32,
    last_ms: i64,
    failures: u64,
    /// The upstream's request total before the first failure, and at the last one: the
    /// requests of the burst are those in between.
    requests_at_start: u64,
    requests_at_last: u64,
    peak: u32,
    causes: [u64; Cause::COUNT],
    statuses: Vec<(u16, u64)>,
    vhosts: TopValues,
    paths: TopValues,
    samples: Vec<String>,
    sources: Vec<u16>,
}

/// What is fixed when an incident opens; the rest of it is the burst's running figures.
#[derive(Clone, Copy, Debug)]
struct Opened {
    seq: u64,
    opened_ms: i64,
    window_failures: u32,
    window_requests: u32,
}

#[derive(Clone, Debug)]
struct Failing {
    entry: EntryId,
    ring: Ring,
    burst: Option<Burst>,
    open: Option<Opened>,
    calm_since: Option<i64>,
}

#[derive(Clone, Debug)]
struct Upstream {
    name: Box<[u8]>,
    requests: Ring,
    requests_total: u64,
    /// Whether any request to this upstream was seen (so totals are known).
    requests_seen: bool,
    last_seen_ms: i64,
    failing: Vec<Failing>,
}

impl Upstream {
    /// Counts one request in `bucket`.
    #[inline]
    fn count_request(&mut self, bucket: i64, stats: &mut DetectStats) {
        self.requests_seen = true;
        self.requests_total += 1;
        if !self.requests.add(bucket) {
            stats.late += 1;
        }
    }

    fn has_open_incident(&self) -> bool {
        self.failing.iter().any(|f| f.open.is_some())
    }
}

/// Counters about the detector itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Events older than the window of their key when they arrived.
    pub late: u64,
    /// Upstreams evicted to stay within `max_upstreams`.
    pub evicted: u64,
    /// Events dropped because every tracked upstream had an open incident.
    pub dropped: u64,
}

/// The burst detector.
#[derive(Clone, Debug)]
pub struct Detector {
    cfg: DetectConfig,
    bucket_ms: i64,
    /// The last time turned into a bucket, and its bucket: lines of one second share it, and a
    /// division per line is not free.
    last_bucket: (i64, i64),
    /// Upstream name → index in `upstreams`.
    index: FxHashMap<Box<[u8]>, usize>,
    upstreams: Vec<Upstream>,
    /// The upstreams looked up last, each in the slot of its name's [`hint`] or the one beside
    /// it: a proxy has few, and comparing a name with one or two is cheaper than hashing it.
    recent: [usize; RECENT],
    /// Keys with an open incident.
    open: Vec<(Box<[u8]>, EntryId)>,
    now_ms: i64,
    seq: u64,
    pub stats: DetectStats,
    /// Reloads and servers back UP seen lately, for the incidents that close.
    recoveries: crate::engine::recovery::Recoveries,
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Detector {
        let bucket_ms = (cfg.window_ms / BUCKETS as i64).max(1);
        Detector {
            cfg,
            bucket_ms,
            last_bucket: (0, 0),
            index: FxHashMap::default(),
            upstreams: Vec::new(),
            recent: [usize::MAX; RECENT],
            open: Vec::new(),
            now_ms: i64::MIN,
            seq: 0,
            stats: DetectStats::default(),
            recoveries: Default::default(),
        }
    }

    /// Notes a reload or a server back UP (see [`crate::engine::recovery`]).
    pub fn recovered(
        &mut self,
        signal: crate::engine::event::Signal,
        at_ms: i64,
        server: Option<&[u8]>,
    ) {
        self.recoveries.note(signal, at_ms, server);
    }

    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// The number of upstreams tracked now.
    pub fn tracked(&self) -> usize {
        self.upstreams.len()
    }

    /// The incidents open now, as they stand.
    pub fn open_incidents(&self) -> Vec<Incident> {
        self.upstreams
            .iter()
            .flat_map(|u| u.failing.iter().filter_map(move |f| build(u, f)))
            .collect()
    }

    #[inline]
    fn bucket(&mut self, ms: i64) -> i64 {
        if ms != self.last_bucket.0 {
            self.last_bucket = (ms, ms.div_euclid(self.bucket_ms));
        }
        self.last_bucket.1
    }

    /// Counts one event. Incidents that open are pushed to `out`.
    pub fn observe(&mut self, obs: &Observation<'_>, out: &mut Vec<Change>) {
        let Some(name) = obs.upstream.map(crate::engine::parse::upstream::key) else {
            return;
        };
        if !(obs.request || obs.failure && obs.entry.is_some()) {
            return;
        }
        if obs.time_ms > self.now_ms {
            self.now_ms = obs.time_ms;
        }
        let bucket = self.bucket(obs.time_ms);
        let Some(i) = self.upstream_at(name, obs.time_ms) else {
            return;
        };
        let cfg = &self.cfg;
        let up = &mut self.upstreams[i];
        up.last_seen_ms = up.last_seen_ms.max(obs.time_ms);
        if obs.request {
            up.count_request(bucket, &mut self.stats);
        }
        let Some(entry) = obs.entry.filter(|_| obs.failure) else {
            return;
        };
        let f = match up.failing.iter().position(|f| f.entry == entry) {
            Some(i) => &mut up.failing[i],
            None => {
                up.failing.push(Failing {
                    entry,
                    ring: Ring::new(),
                    burst: None,
                    open: None,
                    calm_since: None,
                });
                up.failing.last_mut().expect("pushed")
            }
        };
        f.ring.advance(bucket);
        if f.ring.total == 0 && f.open.is_none() {
            // Nothing in the window: a new burst begins with this failure.
            f.burst = None;
        }
        if !f.ring.add(bucket) {
            self.stats.late += 1;
            return;
        }
        let requests_total = up.requests_total;
        let burst = f.burst.get_or_insert_with(|| Burst {
            start_ms: obs.time_ms,
            offset_secs: obs.offset_secs,
            last_ms: obs.time_ms,
            failures: 0,
            requests_at_start: requests_total - obs.request as u64,
            requests_at_last: requests_total,
            peak: 0,
            causes: [0; Cause::COUNT],
            statuses: Vec::new(),
            vhosts: TopValues::default(),
            paths: TopValues::default(),
            samples: Vec::new(),
            sources: Vec::new(),
        });
        burst.failures += 1;
        burst.requests_at_last = requests_total;
        burst.start_ms = burst.start_ms.min(obs.time_ms);
        burst.last_ms = burst.last_ms.max(obs.time_ms);
        burst.peak = burst.peak.max(f.ring.total);
        burst.causes[obs.cause.index()] += 1;
        if let Some(st) = obs.status {
            if let Some(slot) = burst.statuses.iter_mut().find(|(s, _)| *s == st) {
                slot.1 += 1;
            } else if burst.statuses.len() < 4 {
                burst.statuses.push((st, 1));
            }
        }
        if let Some(v) = obs.vhost {
            burst.vhosts.add(v);
        }
        if let Some(p) = obs.path {
            burst.paths.add(p);
        }
        if burst.samples.len() < cfg.samples {
            burst
                .samples
                .push(String::from_utf8_lossy(obs.line).into_owned());
        }
        if !burst.sources.contains(&obs.source) {
            burst.sources.push(obs.source);
        }
        f.calm_since = None;

        let failures = f.ring.total;
        if f.open.is_some() || failures < cfg.open_failures {
            return;
        }
        // The share is taken over the seconds that had failures, so the healthy minute before
        // an outage does not delay its detection, and a steady trickle of failures among many
        // requests stays below the share.
        let (failed, requests) = failing_buckets(&f.ring, &up.requests);
        let requests_known = up.requests_seen && requests >= failed;
        let share_ok = !requests_known || failed as f64 >= cfg.open_share * requests as f64;
        if share_ok {
            self.seq += 1;
            f.open = Some(Opened {
                seq: self.seq,
                opened_ms: obs.time_ms,
                window_failures: failures,
                window_requests: if requests_known { requests } else { 0 },
            });
            let up = &self.upstreams[i];
            let f = up
                .failing
                .iter()
                .find(|f| f.entry == entry)
                .expect("just opened");
            out.push(Change::Opened(build(up, f).expect("open incident")));
            self.open.push((Box::from(name), entry));
        }
    }

    /// Counts a request that did not fail to `upstream` at `time_ms`: what [`Detector::observe`]
    /// does with such a request's observation, without one (the short way of `scan`).
    #[inline(always)]
    pub fn count_request(&mut self, upstream: &[u8], time_ms: i64) {
        let name = crate::engine::parse::upstream::key(upstream);
        if time_ms > self.now_ms {
            self.now_ms = time_ms;
        }
        let bucket = self.bucket(time_ms);
        let Some(i) = self.upstream_at(name, time_ms) else {
            return;
        };
        let up = &mut self.upstreams[i];
        up.last_seen_ms = up.last_seen_ms.max(time_ms);
        up.count_request(bucket, &mut self.stats);
    }

    /// The index of the upstream `name`, tracked from now on if it was not (`None` when there
    /// is no room for it: counted as dropped).
    #[inline(always)]
    fn upstream_at(&mut self, name: &[u8], time_ms: i64) -> Option<usize> {
        if let Some(i) = self.lookup(name) {
            return Some(i);
        }
        self.track(name, time_ms)
    }

    /// Tracks a new upstream (see [`Detector::upstream_at`]).
    #[inline(never)]
    fn track(&mut self, name: &[u8], time_ms: i64) -> Option<usize> {
        if !self.make_room() {
            self.stats.dropped += 1;
            return None;
        }
        self.upstreams.push(Upstream {
            name: Box::from(name),
            requests: Ring::new(),
            requests_total: 0,
            requests_seen: false,
            last_seen_ms: time_ms,
            failing: Vec::new(),
        });
        self.index.insert(Box::from(name), self.upstreams.len() - 1);
        Some(self.upstreams.len() - 1)
    }

    /// The index of an upstream: one of the recent ones, else from the map (then remembered).
    #[inline(always)]
    fn lookup(&mut self, name: &[u8]) -> Option<usize> {
        // Two slots a name may be in, the one it was last put in first.
        let slot = hint(name);
        for s in [slot, slot ^ 1] {
            let i = self.recent[s];
            if let Some(u) = self.upstreams.get(i)
                && crate::engine::parse::bytes::eq(&u.name, name)
            {
                return Some(i);
            }
        }
        self.lookup_map(name, slot)
    }

    /// [`Detector::lookup`] of a name in neither of its slots.
    #[inline(never)]
    fn lookup_map(&mut self, name: &[u8], slot: usize) -> Option<usize> {
        let i = *self.index.get(name)?;
        self.recent[slot ^ 1] = self.recent[slot];
        self.recent[slot] = i;
        Some(i)
    }

    /// Moves event time to `now_ms` and closes the incidents that have been calm for the quiet
    /// period. Call it as time passes, also when no events arrive.
    pub fn advance(&mut self, now_ms: i64, out: &mut Vec<Change>) {
        if now_ms > self.now_ms {
            self.now_ms = now_ms;
        }
        let now = self.now_ms;
        let bucket = self.bucket(now);
        let cfg = &self.cfg;
        let upstreams = &mut self.upstreams;
        let index = &self.index;
        let recoveries = &self.recoveries;
        self.open.retain(|(name, entry)| {
            let Some(&i) = index.get(name) else {
                return false;
            };
            let up = &mut upstreams[i];
            let Some(k) = up.failing.iter().position(|f| f.entry == *entry) else {
                return false;
            };
            let f = &mut up.failing[k];
            f.ring.advance(bucket);
            if f.ring.total >= cfg.close_failures {
                f.calm_since = None;
                return true;
            }
            let since = *f.calm_since.get_or_insert(now);
            if now - since < cfg.quiet_ms {
                return true;
            }
            let mut inc = build(up, &up.failing[k]).expect("open incident");
            inc.closed_ms = Some(now);
            inc.recovery = recoveries.followed(&inc.upstream, inc.end_ms);
            let f = &mut up.failing[k];
            f.open = None;
            f.calm_since = None;
            if f.ring.total == 0 {
                f.burst = None;
            }
            out.push(Change::Closed(inc));
            false
        });
    }

    /// Closes every open incident (end of input). Their end is their last failure.
    pub fn finish(&mut self, out: &mut Vec<Change>) {
        let now = self.now_ms;
        for (name, entry) in std::mem::take(&mut self.open) {
            let Some(&i) = self.index.get(&name) else {
                continue;
            };
            let up = &mut self.upstreams[i];
            let Some(k) = up.failing.iter().position(|f| f.entry == entry) else {
                continue;
            };
            if let Some(mut inc) = build(up, &up.failing[k]) {
                inc.closed_ms = Some(now.max(inc.end_ms));
                inc.recovery = self.recoveries.followed(&inc.upstream, inc.end_ms);
                out.push(Change::Closed(inc));
            }
            up.failing[k].open = None;
        }
    }

    /// Takes back an incident that was open when the daemon stopped, so that it is neither
    /// opened (and alerted) again nor left without its resolved note. Its windows start
    /// empty: it closes after the quiet period unless failures go on.
    pub fn restore(&mut self, inc: &Incident) {
        let name = inc.upstream.as_bytes();
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                // Open incidents are never evicted; a restored one may exceed the cap.
                self.make_room();
                self.upstreams.push(Upstream {
                    name: Box::from(name),
                    requests: Ring::new(),
                    requests_total: 0,
                    requests_seen: false,
                    last_seen_ms: inc.end_ms,
                    failing: Vec::new(),
                });
                self.index.insert(Box::from(name), self.upstreams.len() - 1);
                self.upstreams.len() - 1
            }
        };
        let up = &mut self.upstreams[i];
        if up
            .failing
            .iter()
            .any(|f| f.entry == inc.entry && f.open.is_some())
        {
            return;
        }
        up.failing.retain(|f| f.entry != inc.entry);
        if let Some(r) = inc.requests {
            up.requests_seen = true;
            up.requests_total = up.requests_total.max(r);
        }
        let total = up.requests_total;
        up.failing.push(Failing {
            entry: inc.entry,
            ring: Ring::new(),
            burst: Some(Burst {
                start_ms: inc.start_ms,
                offset_secs: inc.offset_secs,
                last_ms: inc.end_ms,
                failures: inc.failures,
                requests_at_start: total - inc.requests.unwrap_or(0),
                requests_at_last: total,
                peak: inc.peak_window_failures,
                causes: inc.causes,
                statuses: inc.statuses.clone(),
                vhosts: inc.vhosts.clone(),
                paths: inc.paths.clone(),
                samples: inc.samples.clone(),
                sources: inc.sources.clone(),
            }),
            open: Some(Opened {
                seq: inc.seq,
                opened_ms: inc.opened_ms,
                window_failures: inc.window_failures,
                window_requests: inc.window_requests,
            }),
            calm_since: None,
        });
        self.seq = self.seq.max(inc.seq);
        self.now_ms = self.now_ms.max(inc.end_ms);
        self.open.push((Box::from(name), inc.entry));
    }

    /// Keeps the number of tracked upstreams under the cap: evicts the idlest tenth of the
    /// upstreams without an open incident. False when nothing can be evicted.
    fn make_room(&mut self) -> bool {
        if self.upstreams.len() < self.cfg.max_upstreams {
            return true;
        }
        let mut idle: Vec<i64> = self
            .upstreams
            .iter()
            .filter(|u| !u.has_open_incident())
            .map(|u| u.last_seen_ms)
            .collect();
        if idle.is_empty() {
            return false;
        }
        let n = (self.cfg.max_upstreams / 10).clamp(1, idle.len());
        let (_, cutoff, _) = idle.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let before = self.upstreams.len();
        let mut budget = n;
        self.upstreams.retain(|u| {
            if budget > 0 && !u.has_open_incident() && u.last_seen_ms <= cutoff {
                budget -= 1;
                false
            } else {
                true
            }
        });
        self.index.clear();
        self.recent = [usize::MAX; RECENT];
        for (i, u) in self.upstreams.iter().enumerate() {
            self.index.insert(u.name.clone(), i);
        }
        self.stats.evicted += (before - self.upstreams.len()) as u64;
        self.upstreams.len() < self.cfg.max_upstreams
    }
}

/// Failures and requests summed over the buckets of the failure window that hold failures.
fn failing_buckets(failures: &Ring, requests: &Ring) -> (u32, u32) {
    let (Some(fh), Some(rh)) = (failures.head, requests.head) else {
        return (failures.total, 0);
    };
    let n = BUCKETS as i64;
    let (mut f_sum, mut r_sum) = (0, 0);
    for b in fh - n + 1..=fh {
        let i = b.rem_euclid(n) as usize;
        let f = failures.counts[i];
        if f == 0 {
            continue;
        }
        f_sum += f;
        if b > rh - n && b <= rh {
            r_sum += requests.counts[i];
        }
    }
    (f_sum, r_sum)
}

/// The incident of an (entry, upstream) as it stands: `None` unless one is open.
fn build(up: &Upstream, f: &Failing) -> Option<Incident> {
    let (open, b) = (f.open?, f.burst.as_ref()?);
    let mut statuses = b.statuses.clone();
    statuses.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Some(Incident {
        seq: open.seq,
        entry: f.entry,
        upstream: String::from_utf8_lossy(&up.name).into_owned(),
        cause: dominant(&b.causes),
        start_ms: b.start_ms,
        offset_secs: b.offset_secs,
        opened_ms: open.opened_ms,
        end_ms: b.last_ms,
        closed_ms: None,
        failures: b.failures,
        requests: up
            .requests_seen
            .then(|| b.requests_at_last - b.requests_at_start),
        window_failures: open.window_failures,
        window_requests: open.window_requests,
        peak_window_failures: b.peak,
        causes: b.causes,
        statuses,
        vhosts: b.vhosts.clone(),
        paths: b.paths.clone(),
        samples: b.samples.clone(),
        sources: b.sources.clone(),
        recovery: Vec::new(),
    })
}

fn dominant(causes: &[u64; Cause::COUNT]) -> Cause {
    let mut best = 0;
    for i in 1..Cause::COUNT {
        if causes[i] > causes[best] {
            best = i;
        }
    }
    Cause::ALL[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: EntryId = EntryId(0);

    /// One line of a detector table: at `t` seconds, `n` events on `upstream`.
    #[derive(Clone, Copy)]
    struct Step {
        t: f64,
        upstream: &'static str,
        failures: u32,
        successes: u32,
    }

    fn step(t: f64, upstream: &'static str, failures: u32, successes: u32) -> Step {
        Step {
            t,
            upstream,
            failures,
            successes,
        }
    }

    /// Runs a table of steps through a detector and returns what happened, as
    /// `(opened|closed, upstream, seconds)` in order.
    fn run(cfg: DetectConfig, steps: &[Step]) -> Vec<(&'static str, String, f64)> {
        let mut d = Detector::new(cfg);
        let mut out = Vec::new();
        let mut log = Vec::new();
        for s in steps {
            let ms = (s.t * 1000.0) as i64;
            d.advance(ms, &mut out);
            for i in 0..s.failures + s.successes {
                let failure = i < s.failures;
                d.observe(
                    &Observation {
                        time_ms: ms,
                        offset_secs: 0,
                        upstream: Some(s.upstream.as_bytes()),
                        entry: failure.then_some(E),
                        cause: if failure {
                            Cause::UpstreamUnreachable
                        } else {
                            Cause::Ok
                        },
                        status: Some(if failure { 502 } else { 200 }),
                        request: true,
                        failure,
                        line: b"line",
                        vhost: Some(b"api.example.com"),
                        path: Some(b"/v1"),
                        source: 0,
                    },
                    &mut out,
                );
            }
            for c in out.drain(..) {
                log.push(match c {
                    Change::Opened(i) => ("opened", i.upstream, i.opened_ms as f64 / 1000.0),
                    Change::Closed(i) => {
                        ("closed", i.upstream, i.closed_ms.unwrap() as f64 / 1000.0)
                    }
                });
            }
        }
        log
    }

    fn opened(up: &str, t: f64) -> (&'static str, String, f64) {
        ("opened", up.into(), t)
    }
    fn closed(up: &str, t: f64) -> (&'static str, String, f64) {
        ("closed", up.into(), t)
    }

    #[test]
    fn a_burst_opens_then_closes_after_the_quiet_period() {
        let mut steps: Vec<Step> = (0..10).map(|i| step(i as f64, "a:80", 2, 2)).collect();
        steps.push(step(200.0, "a:80", 0, 1));
        let got = run(DetectConfig::default(), &steps);
        // 10 failures are reached at t=4 (2 per second); quiet: the window empties at t=69,
        // calm (below 3) from t=200's tick, closed 60 s after calm began → only at a later tick.
        assert_eq!(got, vec![opened("a:80", 4.0)]);
        let mut steps = steps.clone();
        steps.push(step(300.0, "a:80", 0, 1));
        let got = run(DetectConfig::default(), &steps);
        assert_eq!(got, vec![opened("a:80", 4.0), closed("a:80", 300.0)]);
    }

    fn feed(d: &mut Detector, t: f64, failures: u32, successes: u32, out: &mut Vec<Change>) {
        let ms = (t * 1000.0) as i64;
        d.advance(ms, out);
        for i in 0..failures + successes {
            let failure = i < failures;
            d.observe(
                &Observation {
                    time_ms: ms,
                    offset_secs: 0,
                    upstream: Some(b"a:80"),
                    entry: failure.then_some(E),
                    cause: Cause::UpstreamUnreachable,
                    status: Some(502),
                    request: true,
                    failure,
                    line: b"line",
                    vhost: None,
                    path: None,
                    source: 0,
                },
                out,
            );
        }
    }

    #[test]
    fn a_restored_incident_carries_on_instead_of_opening_again() {
        let mut d = Detector::new(DetectConfig::default());
        let mut out = Vec::new();
        for t in 0..10 {
            feed(&mut d, t as f64, 2, 2, &mut out);
        }
        let [Change::Opened(_)] = out.as_slice() else {
            panic!("{out:?}")
        };
        let before = d.open_incidents().remove(0);
        // The daemon restarts: a new detector takes the open incident back.
        let mut d = Detector::new(DetectConfig::default());
        d.restore(&before);
        assert_eq!(d.open_incidents(), vec![before.clone()]);
        out.clear();
        for t in 10..20 {
            feed(&mut d, t as f64, 2, 2, &mut out);
        }
        assert!(out.is_empty(), "not opened again: {out:?}");
        // Then it calms down and closes once, with the failures of both lives.
        feed(&mut d, 100.0, 0, 1, &mut out);
        feed(&mut d, 200.0, 0, 1, &mut out);
        let [Change::Closed(c)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(c.failures, 40);
        // Requests up to the last failure of each life: 38 before the restart (the two
        // successes after its last failure are not part of the burst yet), 38 after.
        assert_eq!(c.requests, Some(76));
        assert_eq!(
            (c.seq, c.start_ms, c.opened_ms),
            (before.seq, 0, before.opened_ms)
        );
    }

    #[test]
    fn normal_traffic_and_a_low_share_do_not_open() {
        // 1 failure per second among 20 requests: 60 failures per minute but only 5 %.
        let steps: Vec<Step> = (0..120).map(|i| step(i as f64, "a:80", 1, 19)).collect();
        assert_eq!(run(DetectConfig::default(), &steps), vec![]);
        // A handful of failures stays under the floor.
        let steps: Vec<Step> = (0..9).map(|i| step(i as f64 * 5.0, "a:80", 1, 0)).collect();
        assert_eq!(run(DetectConfig::default(), &steps), vec![]);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        // 9 failures, then 9 more 61 s later: never 10 within 60 s.
        let steps = [step(0.0, "a:80", 9, 0), step(61.0, "a:80", 9, 0)];
        assert_eq!(run(DetectConfig::default(), &steps), vec![]);
        let steps = [step(0.0, "a:80", 9, 0), step(59.0, "a:80", 1, 0)];
        assert_eq!(
            run(DetectConfig::default(), &steps),
            vec![opened("a:80", 59.0)]
        );
    }

    #[test]
    fn upstreams_are_separate_and_hysteresis_keeps_one_incident() {
        let mut steps = vec![step(0.0, "a:80", 10, 0), step(1.0, "b:80", 10, 0)];
        // a keeps failing slowly (3 per 20 s): above the close threshold, so it stays open;
        // b stops.
        for t in (20..200).step_by(20) {
            steps.push(step(t as f64, "a:80", 3, 0));
        }
        steps.push(step(400.0, "a:80", 0, 1));
        steps.push(step(500.0, "a:80", 0, 1));
        let got = run(DetectConfig::default(), &steps);
        assert_eq!(
            got,
            vec![
                opened("a:80", 0.0),
                opened("b:80", 1.0),
                // b's window is empty from t=61; the first tick after that is at t=80 and the
                // quiet period ends at the tick of t=140.
                closed("b:80", 140.0),
                closed("a:80", 500.0)
            ]
        );
    }

    #[test]
    fn memory_stays_bounded_by_evicting_idle_upstreams() {
        let cfg = DetectConfig {
            max_upstreams: 100,
            ..DetectConfig::default()
        };
        let mut d = Detector::new(cfg);
        let mut out = Vec::new();
        let names: Vec<String> = (0..1000)
            .map(|i| format!("10.0.{}.{}:80", i / 256, i % 256))
            .collect();
        for (i, n) in names.iter().enumerate() {
            d.observe(
                &Observation {
                    time_ms: i as i64,
                    offset_secs: 0,
                    upstream: Some(n.as_bytes()),
                    entry: None,
                    cause: Cause::Ok,
                    status: Some(200),
                    request: true,
                    failure: false,
                    line: b"",
                    vhost: None,
                    path: None,
                    source: 0,
                },
                &mut out,
            );
            assert!(d.tracked() <= 100);
        }
        assert!(d.stats.evicted >= 900);
    }

    #[test]
    fn incidents_carry_counts_shares_and_samples() {
        let mut d = Detector::new(DetectConfig::default());
        let mut out = Vec::new();
        for i in 0..30 {
            let failure = i % 3 == 0;
            d.observe(
                &Observation {
                    time_ms: 1_000 * i,
                    offset_secs: 0,
                    upstream: Some(b"10.0.1.5:8080"),
                    entry: failure.then_some(E),
                    cause: if failure {
                        Cause::UpstreamUnreachable
                    } else {
                        Cause::Ok
                    },
                    status: Some(if failure { 502 } else { 200 }),
                    request: true,
                    failure,
                    line: format!("line {i}").as_bytes(),
                    vhost: Some(b"api"),
                    path: Some(b"/x"),
                    source: 0,
                },
                &mut out,
            );
        }
        let Some(Change::Opened(inc)) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(inc.start_ms, 0);
        assert_eq!(inc.opened_ms, 27_000);
        // One request per second: the seconds with a failure hold only that request.
        assert_eq!((inc.window_failures, inc.window_requests), (10, 10));
        assert_eq!(inc.samples, ["line 0", "line 3", "line 6"]);
        assert_eq!(inc.vhosts.ranked(), [("api".to_string(), 10)]);
        assert_eq!(inc.cause, Cause::UpstreamUnreachable);
        d.finish(&mut out);
        let Some(Change::Closed(inc)) = out.last() else {
            panic!()
        };
        // Requests from the first failure to the last one.
        assert_eq!((inc.failures, inc.requests), (10, Some(28)));
        assert_eq!(inc.end_ms, 27_000);
    }
}

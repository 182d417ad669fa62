//! Joining access-log 5xx lines with the error-log lines that explain them (nginx, Apache httpd,
//! Caddy's access and error entries).
//!
//! nginx writes the cause of a 502 only to the error log (so do Apache and Caddy). An access-log 5xx without a cause of
//! its own takes the cause of the error-log line with the same client (and request line and
//! upstream, where both lines have them) written within a short time of it. The joined
//! error-log line is then *consumed*: it explains that request and is not counted again.
//!
//! The joiner works on event time and keeps arrival order: while a line waits for its partner,
//! the lines after it wait too. Held lines are copied; lines pass straight through when nothing
//! is waiting and they cannot take part in a join.

use crate::engine::event::{Cause, Event, Format, Kind};
use crate::engine::kb::{EntryId, Kb};
use crate::engine::parse::upstream::UpstreamList;
use std::collections::VecDeque;

/// A parsed line with what the pipeline added to it, owning its bytes.
#[derive(Clone, Debug)]
pub struct Item {
    pub source: u16,
    pub line_no: u64,
    pub line: Vec<u8>,
    pub ev: Event,
    pub entry: Option<EntryId>,
    /// The upstream taken from the error-log line this access-log line was joined with.
    pub joined_upstream: Option<Box<[u8]>>,
    /// An error-log line that explained an access-log line (not counted on its own).
    pub consumed: bool,
    /// For an access-log line joined with an error-log line: its cause before the join.
    pub joined_from: Option<Cause>,
}

impl Item {
    pub fn upstream(&self) -> Option<&[u8]> {
        self.joined_upstream
            .as_deref()
            .or_else(|| self.ev.upstream(&self.line))
    }
}

/// Joiner settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinConfig {
    /// How long before its access-log line an error-log line may be written.
    pub before_ms: i64,
    /// How long after.
    pub after_ms: i64,
    /// The most lines held at once; beyond it the oldest is released unjoined.
    pub max_held: usize,
    /// The most bytes of lines held at once (lines can be up to 64 KiB each).
    pub max_held_bytes: usize,
}

impl Default for JoinConfig {
    fn default() -> JoinConfig {
        JoinConfig {
            before_ms: 2_000,
            after_ms: 1_000,
            max_held: 100_000,
            max_held_bytes: 16 << 20,
        }
    }
}

#[derive(Clone, Debug)]
struct Held {
    item: Item,
    /// The event time until which the item may still be joined; `None` once settled.
    waiting_until: Option<i64>,
}

/// Counters about joining.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JoinStats {
    pub joined: u64,
    pub released_unjoined: u64,
    pub overflow: u64,
    /// How far the error log's times are ahead of the access log's, in milliseconds, once
    /// [`OFFSET_VOTES`] pairs of lines that missed each other agreed on it (a zone-less error
    /// log read in the wrong zone: its lines never join).
    pub error_offset_ms: Option<i64>,
}

/// How much later than an access line stamped with the request's start (Apache's `%t`) the
/// error line of that request may be: httpd's default `Timeout` (and so `ProxyTimeout`), 60 s,
/// and a little more. Only the matching widens: an access line is written after its error
/// lines, so it never waits longer for one.
pub const START_STAMP_SLACK_MS: i64 = 65_000;

/// Unjoined failures remembered, per log, to find pairs that missed each other by a zone.
const REMEMBERED: usize = 512;
/// Pairs that must agree on an offset before it is believed.
pub const OFFSET_VOTES: u32 = 3;
/// Zone offsets are whole quarter hours.
const QUARTER_HOUR_MS: i64 = 15 * 60 * 1000;

/// Failures released unjoined, to find access and error lines of the same request whose times
/// differ by a whole zone offset.
#[derive(Clone, Debug, Default)]
struct Missed {
    /// (hash of client and request line, time) of access-log and error-log failures.
    access: VecDeque<(u64, i64)>,
    error: VecDeque<(u64, i64)>,
    /// The offset the last pairs agreed on, and how many did.
    vote: Option<(i64, u32)>,
}

/// What [`Missed`] remembers of a line: its request key, time, and whether it is the access
/// log's.
fn seen_as(it: &Item) -> Option<(u64, i64, bool)> {
    let t = it.ev.time?.ms;
    Some((request_key(it)?, t, is_joinable_access(&it.ev)))
}

/// The client and request line of an event, hashed (FNV-1a), or `None` without a client.
fn request_key(it: &Item) -> Option<u64> {
    let client = it.ev.client(&it.line)?;
    let request = it.ev.request(&it.line).unwrap_or(b"");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in client.iter().chain(b"\n").chain(request) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Some(h)
}

impl Missed {
    /// A failure released unjoined: if a line of the other log with the same client and
    /// request was released a whole number of quarter hours away (up to 26 h, within the join
    /// window), that offset gets a vote. Returns the offset once it has enough.
    fn note(&mut self, (key, t, access): (u64, i64, bool), cfg: &JoinConfig) -> Option<i64> {
        let (mine, other) = if access {
            (&mut self.access, &self.error)
        } else {
            (&mut self.error, &self.access)
        };
        let found = other.iter().rev().find_map(|&(k, o)| {
            if k != key {
                return None;
            }
            // error time minus access time
            let delta = if access { o - t } else { t - o };
            let zone = (delta as f64 / QUARTER_HOUR_MS as f64).round() as i64 * QUARTER_HOUR_MS;
            let rest = delta - zone;
            (zone != 0
                && zone.abs() <= 26 * 3_600_000
                && rest >= -cfg.before_ms
                && rest <= cfg.after_ms)
                .then_some(zone)
        });
        if mine.len() == REMEMBERED {
            mine.pop_front();
        }
        mine.push_back((key, t));
        let zone = found?;
        let votes = match self.vote {
            Some((z, n)) if z == zone => n + 1,
            _ => 1,
        };
        self.vote = Some((zone, votes));
        (votes >= OFFSET_VOTES).then_some(zone)
    }
}

/// Pairs access-log 5xx lines with error-log upstream failures.
#[derive(Clone, Debug)]
pub struct Joiner {
    cfg: JoinConfig,
    queue: VecDeque<Held>,
    /// Bytes of the lines in `queue`.
    held_bytes: usize,
    now_ms: i64,
    missed: Missed,
    pub stats: JoinStats,
}

fn time_ms(ev: &Event) -> i64 {
    ev.time.map_or(i64::MIN, |t| t.ms)
}

/// An access-log line that may take its cause from the error log.
fn is_joinable_access(ev: &Event) -> bool {
    ev.format.is_some_and(Format::joins_as_request)
        && ev.kind == Kind::Request
        && ev.status.is_some_and(|s| s >= 500)
}

/// An error-log line that may explain an access-log line.
fn is_joinable_error(ev: &Event) -> bool {
    ev.format.is_some_and(Format::joins_as_report)
        && ev.kind == Kind::UpstreamReport
        && ev.cause.is_upstream_failure()
}

/// Whether lines of these formats, read together, can be joined: an access log and an error
/// log (of the same proxy or not: the client, time and request decide), or Caddy's log, which
/// holds both kinds of entries.
pub fn needed(formats: &[Format]) -> bool {
    formats.iter().any(|f| f.holds_requests_and_reports())
        || (formats.iter().any(|f| f.joins_as_request())
            && formats.iter().any(|f| f.joins_as_report()))
}

impl Joiner {
    pub fn new(cfg: JoinConfig) -> Joiner {
        Joiner {
            cfg,
            queue: VecDeque::new(),
            held_bytes: 0,
            now_ms: i64::MIN,
            missed: Missed::default(),
            stats: JoinStats::default(),
        }
    }

    /// Whether a line must go through [`Joiner::push`]: it can take part in a join, or lines
    /// before it are still waiting.
    pub fn wants(&self, ev: &Event) -> bool {
        !self.queue.is_empty() || is_joinable_access(ev) || is_joinable_error(ev)
    }

    fn pop(&mut self) -> Option<Held> {
        let h = self.queue.pop_front()?;
        self.held_bytes -= h.item.line.len();
        Some(h)
    }

    /// Adds a line; settled lines are passed to `emit` in arrival order.
    pub fn push(&mut self, item: Item, kb: &Kb, emit: &mut impl FnMut(Item)) {
        let t = time_ms(&item.ev);
        let mut held = Held {
            item,
            waiting_until: None,
        };
        if is_joinable_access(&held.item.ev) {
            match self.find_error_for(&held.item) {
                Some(i) => {
                    join_pair(&mut held.item, &mut self.queue[i].item, kb);
                    self.queue[i].waiting_until = None;
                    self.stats.joined += 1;
                }
                None => {
                    // A line stamped with its request's start was written when the request
                    // ended: its error line, if any, is as recent as the newest line seen.
                    let from = match held.item.ev.format {
                        Some(f) if f.stamps_request_start() => t.max(self.now_ms),
                        _ => t,
                    };
                    held.waiting_until = Some(from.saturating_add(self.cfg.after_ms));
                }
            }
        } else if is_joinable_error(&held.item.ev) {
            match self.find_access_for(&held.item) {
                Some(i) => {
                    join_pair(&mut self.queue[i].item, &mut held.item, kb);
                    self.queue[i].waiting_until = None;
                    self.stats.joined += 1;
                }
                None => held.waiting_until = Some(t.saturating_add(self.cfg.before_ms)),
            }
        }
        self.held_bytes += held.item.line.len();
        self.queue.push_back(held);
        while self.queue.len() > self.cfg.max_held || self.held_bytes > self.cfg.max_held_bytes {
            self.stats.overflow += 1;
            let mut h = self.pop().expect("non-empty");
            if h.waiting_until.is_some() {
                self.unjoined(seen_as(&h.item));
            }
            h.waiting_until = None;
            emit(h.item);
        }
        self.advance(t, emit);
    }

    /// Moves event time forward: lines whose join window has passed are settled unjoined.
    pub fn advance(&mut self, now_ms: i64, emit: &mut impl FnMut(Item)) {
        if now_ms > self.now_ms {
            self.now_ms = now_ms;
        }
        let now = self.now_ms;
        for i in 0..self.queue.len() {
            if self.queue[i].waiting_until.is_some_and(|until| until < now) {
                self.queue[i].waiting_until = None;
                let seen = seen_as(&self.queue[i].item);
                self.unjoined(seen);
            }
        }
        while self
            .queue
            .front()
            .is_some_and(|h| h.waiting_until.is_none())
        {
            emit(self.pop().expect("non-empty").item);
        }
    }

    /// Settles and emits everything (end of input).
    pub fn flush(&mut self, emit: &mut impl FnMut(Item)) {
        while let Some(h) = self.pop() {
            if h.waiting_until.is_some() {
                self.unjoined(seen_as(&h.item));
            }
            emit(h.item);
        }
    }

    /// A line released without a partner (see [`seen_as`]): counted, and remembered to find
    /// a zone offset.
    fn unjoined(&mut self, seen: Option<(u64, i64, bool)>) {
        self.stats.released_unjoined += 1;
        if self.stats.error_offset_ms.is_none()
            && let Some(seen) = seen
            && let Some(zone) = self.missed.note(seen, &self.cfg)
        {
            self.stats.error_offset_ms = Some(zone);
            // The error log's lines moved this clock ahead by the offset; its corrected lines
            // will not, and access-log lines must not be judged an hour late.
            if zone > 0 && self.now_ms != i64::MIN {
                self.now_ms -= zone;
            }
        }
    }

    /// The best waiting error-log line for an access-log line: the same upstream as the one
    /// that answered, else the latest.
    fn find_error_for(&self, access: &Item) -> Option<usize> {
        let mut best: Option<(bool, i64, usize)> = None;
        for (i, h) in self.queue.iter().enumerate() {
            if h.waiting_until.is_none() || !is_joinable_error(&h.item.ev) {
                continue;
            }
            if !self.matches(access, &h.item) {
                continue;
            }
            let same = access.ev.upstream(&access.line) == h.item.upstream();
            let rank = (same, time_ms(&h.item.ev), i);
            if best.is_none_or(|b| (rank.0, rank.1) > (b.0, b.1)) {
                best = Some(rank);
            }
        }
        best.map(|(_, _, i)| i)
    }

    /// The oldest waiting access-log line an error-log line explains.
    fn find_access_for(&self, error: &Item) -> Option<usize> {
        self.queue.iter().position(|h| {
            h.waiting_until.is_some()
                && is_joinable_access(&h.item.ev)
                && self.matches(&h.item, error)
        })
    }

    fn matches(&self, access: &Item, error: &Item) -> bool {
        let (ta, te) = (time_ms(&access.ev), time_ms(&error.ev));
        // Apache stamps an access line with the time the request arrived (nginx with the time
        // it ended): its error lines come as late as the proxy's timeout after it.
        let after = match access.ev.format {
            Some(f) if f.stamps_request_start() => self.cfg.after_ms + START_STAMP_SLACK_MS,
            _ => self.cfg.after_ms,
        };
        if te < ta.saturating_sub(self.cfg.before_ms) || te > ta.saturating_add(after) {
            return false;
        }
        // Apache's error lines name no request: the status must at least be the one httpd
        // answers that failure with.
        if error.ev.format == Some(Format::ApacheError)
            && !crate::engine::parse::apache_error::status_fits(error.ev.cause, access.ev.status)
        {
            return false;
        }
        // Lines of one proxy only (an nginx 503 is not explained by httpd's error log).
        if access.ev.format.map(Format::proxy) != error.ev.format.map(Format::proxy) {
            return false;
        }
        let (a, e) = (&access.line, &error.line);
        match (access.ev.client(a), error.ev.client(e)) {
            (Some(x), Some(y)) if x == y => {}
            // httpd writes a request refused for a worker out of service (AH00940), Traefik
            // every failure, without the client: time, upstream and status must do.
            (Some(_), None) if error.ev.format.is_some_and(Format::reports_without_client) => {}
            _ => return false,
        }
        if error.ev.format == Some(Format::Traefik)
            && error.ev.status.is_some()
            && access.ev.status != error.ev.status
        {
            return false;
        }
        if let (Some(x), Some(y)) = (access.ev.request(a), error.ev.request(e))
            && x != y
        {
            return false;
        }
        // An error line may name the host alone (a name that did not resolve) where the access
        // line has `host:port`.
        // Go's errors name the address dialled, the access line the upstream as configured
        // (`localhost:8080` for `127.0.0.1:8080`): for Caddy and Traefik the port must agree.
        let go = matches!(error.ev.format, Some(Format::Caddy | Format::Traefik));
        if let (Some(list), Some(up)) = (access.ev.upstreams.get(a), error.upstream())
            && !UpstreamList::new(list).any(|u| {
                u == up
                    || (u.len() > up.len() && u.starts_with(up) && u[up.len()] == b':')
                    || (go && port(u).is_some() && port(u) == port(up))
            })
        {
            return false;
        }
        true
    }
}

/// The port of `host:port` (`[v6]:port`), if it has one.
fn port(hp: &[u8]) -> Option<&[u8]> {
    let c = hp.iter().rposition(|&b| b == b':')?;
    let p = &hp[c + 1..];
    (!p.is_empty() && p.iter().all(u8::is_ascii_digit)).then_some(p)
}

/// Joins an access-log line with the error-log line that explains it.
fn join_pair(access: &mut Item, error: &mut Item, kb: &Kb) {
    error.consumed = true;
    access.joined_from = Some(access.ev.cause);
    // The error log says what happened; what the access line suggests on its own (a "-"
    // connect time) cannot tell a refused connection from a failed TLS handshake.
    {
        access.ev.cause = error.ev.cause;
        access.entry = kb.match_event(
            error.ev.cause,
            access.ev.status,
            error.ev.format.unwrap_or(Format::NginxError),
            &error.line,
        );
    }
    if access.ev.upstream.is_none()
        && let Some(u) = error.upstream()
    {
        access.joined_upstream = Some(Box::from(u));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Span, Timestamp};

    fn item(line: &str, ev: Event) -> Item {
        Item {
            source: 0,
            line_no: 1,
            line: line.as_bytes().to_vec(),
            ev,
            entry: None,
            joined_upstream: None,
            consumed: false,
            joined_from: None,
        }
    }

    /// An access line's 503 and httpd's client-less AH00940 at the same time: joined only when
    /// the access line is httpd's own.
    fn joined(access_format: Format) -> (u64, Cause) {
        let kb = Kb::default();
        let mut j = Joiner::new(JoinConfig::default());
        let t = Some(Timestamp::new(1_000, 0));
        let report = "AH00940: http: disabled connection for (app:8080)";
        let mut out = Vec::new();
        j.push(
            item(
                report,
                Event {
                    format: Some(Format::ApacheError),
                    kind: Kind::UpstreamReport,
                    time: t,
                    cause: Cause::NoLiveUpstreams,
                    upstream: Span::new(41, 49),
                    ..Event::default()
                },
            ),
            &kb,
            &mut |it| out.push(it),
        );
        let access = "10.0.0.1 GET / 503";
        j.push(
            item(
                access,
                Event {
                    format: Some(access_format),
                    kind: Kind::Request,
                    time: t,
                    status: Some(503),
                    cause: Cause::Other5xx,
                    client: Span::new(0, 8),
                    ..Event::default()
                },
            ),
            &kb,
            &mut |it| out.push(it),
        );
        j.flush(&mut |it| out.push(it));
        let cause = out
            .iter()
            .find(|it| it.ev.kind == Kind::Request)
            .unwrap()
            .ev
            .cause;
        (j.stats.joined, cause)
    }

    #[test]
    fn a_report_explains_requests_of_its_own_proxy_only() {
        assert_eq!(joined(Format::ApacheAccess), (1, Cause::NoLiveUpstreams));
        // nginx's own 503 (limit_req, say) is not httpd's worker out of service.
        assert_eq!(joined(Format::NginxAccess), (0, Cause::Other5xx));
    }
}

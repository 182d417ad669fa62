//! HAProxy logs: the default `option httplog` and `option tcplog` lines, with or without a
//! syslog header, and the event lines HAProxy writes when servers go down.
//!
//! ```text
//! haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 \
//!   200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1"
//! ```
//! The termination state (`SC--`) says who ended the session and in which phase; it, not the
//! status, names the cause: HAProxy answers 503 when it cannot connect to a server.

use super::bytes;
use super::syslog::{self, HeaderTime};
use crate::engine::event::{Cause, Event, Format, Kind, Signal, Span, Timestamp, Unparsed};
use crate::engine::time::{self, ZoneClock};

/// Parser for one HAProxy log. HAProxy's accept date carries no UTC offset; the syslog header's
/// offset is used when it has one, else `zone`.
#[derive(Clone, Debug)]
pub struct HaproxyParser {
    zone: ZoneClock,
    /// The year of the last complete date seen (RFC 3164 headers do not write it).
    year: i32,
    /// The day (days since the epoch) `year` was worked out for.
    year_day: i64,
    /// The last date's second (`06/Feb/2009:12:14:14`) and its time (Unix ms, local): lines
    /// of one second share it, and only their milliseconds are read.
    date_second: Option<([u8; 20], i64)>,
    /// The syslog header's last time stamp.
    stamps: syslog::Stamps,
    last_time: Option<Timestamp>,
    /// False after [`HaproxyParser::forget_year`] until a request line gives the year again
    /// (or [`HaproxyParser::carry`] does).
    year_known: bool,
    /// A line read since the last [`HaproxyParser::took_unknown_year`] took the year while it
    /// was not known.
    took_unknown: bool,
}

/// What a HAProxy parser carries from line to line besides caches: the year RFC 3164 headers
/// take (see [`HaproxyParser::carried`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Year {
    year: i32,
    day: i64,
}

impl HaproxyParser {
    /// `year` is used for RFC 3164 headers until a line with a complete date is seen.
    pub fn new(zone: ZoneClock, year: i32) -> HaproxyParser {
        HaproxyParser {
            zone,
            year,
            year_day: i64::MIN,
            date_second: None,
            stamps: syslog::Stamps::default(),
            last_time: None,
            year_known: true,
            took_unknown: false,
        }
    }

    /// The year later RFC 3164 headers take.
    pub fn carried(&self) -> Year {
        Year {
            year: self.year,
            day: self.year_day,
        }
    }

    /// Reads on as if the lines before had left `year`.
    pub fn carry(&mut self, year: Year) {
        self.year = year.year;
        self.year_day = year.day;
        self.year_known = true;
    }

    /// For a block of lines read out of order: forgets the year, so that the lines that take
    /// it before a request line gives it again are known ([`HaproxyParser::took_unknown_year`])
    /// and read again in order.
    pub fn forget_year(&mut self) {
        self.year_known = false;
        self.year_day = i64::MIN;
    }

    /// Whether the year is known (given by a request line since [`HaproxyParser::forget_year`]).
    pub fn knows_year(&self) -> bool {
        self.year_known
    }

    /// Whether a line read since the last call took the year while it was not known.
    pub fn took_unknown_year(&mut self) -> bool {
        std::mem::take(&mut self.took_unknown)
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let s = syslog::split_with(line, &mut self.stamps);
        let header_offset = match s.time {
            Some(HeaderTime::Zoned { offset_secs, .. }) => Some(offset_secs),
            _ => None,
        };
        let message = strip_stderr_prefix(s.message);
        // A request line starts with its client, `address:port` (also `[::1]:port`,
        // `unix:…`, a redacted `X.X.X.54:64539`, `-:-` for HAProxy's internal requests such
        // as OCSP updates) or `abns@…`; event lines start with words (`Server …`).
        let client = &message[..bytes::find_byte(b' ', message).unwrap_or(message.len())];
        if bytes::find_byte2(b':', b'@', client).is_some()
            && let Ok(ev) = self.request_line(line, message, header_offset)
        {
            return Ok(ev);
        }
        let time = self.header_time(s.time);
        if let Some(ev) = event_line(line, message, time) {
            return Ok(ev);
        }
        // Another message from HAProxy (start-up, health checks, …): understood, not a request.
        if s.app.is_some_and(|a| a.starts_with(b"haproxy")) || message != s.message {
            return Ok(Event {
                format: Some(Format::Haproxy),
                time,
                ..Event::default()
            });
        }
        Err(Unparsed::Shape)
    }

    /// [`time::parse_haproxy_date`], with the second of the line before remembered.
    fn date(&mut self, d: &[u8]) -> Option<(i64, usize)> {
        if let (Some((second, at)), Some(head)) = (&self.date_second, d.get(..20))
            && head == second
        {
            let (ms, len) = time::fraction(&d[20..]);
            return Some((at + i64::from(ms), 20 + len));
        }
        let (t, used) = time::parse_haproxy_date(d)?;
        let (ms, _) = time::fraction(&d[20..]);
        let mut second = [0u8; 20];
        second.copy_from_slice(&d[..20]);
        self.date_second = Some((second, t - i64::from(ms)));
        Some((t, used))
    }

    fn header_time(&mut self, t: Option<HeaderTime>) -> Option<Timestamp> {
        let t = match t? {
            HeaderTime::Zoned { ms, offset_secs } => Timestamp::new(ms, offset_secs),
            HeaderTime::MonthDay { month, day, day_ms } => {
                self.took_unknown |= !self.year_known;
                let naive = time::naive_from_parts(self.year, month, day, day_ms);
                self.zone.to_utc(naive)
            }
        };
        self.last_time = Some(t);
        Some(t)
    }

    /// An `httplog` or `tcplog` line.
    fn request_line(
        &mut self,
        line: &[u8],
        msg: &[u8],
        header_offset: Option<i32>,
    ) -> Result<Event, Unparsed> {
        let mut w = Words::new(msg);
        let client = w.next().ok_or(Unparsed::Shape)?;
        let date = w.next().ok_or(Unparsed::Shape)?;
        let date = date
            .strip_prefix(b"[")
            .and_then(|d| d.strip_suffix(b"]"))
            .ok_or(Unparsed::Shape)?;
        let (naive, used) = self.date(date).ok_or(Unparsed::Time)?;
        if used != date.len() {
            return Err(Unparsed::Time);
        }
        let time = match header_offset {
            Some(off) => Timestamp::new(naive - off as i64 * 1000, off),
            None => self.zone.to_utc(naive),
        };
        // The year for later RFC 3164 headers: worked out again only when the day changes.
        let day = naive.div_euclid(86_400_000);
        if day != self.year_day {
            self.year_day = day;
            self.year = time::year_of(naive);
        }
        self.year_known = true;
        self.last_time = Some(time);
        let frontend = w.next().ok_or(Unparsed::Shape)?;
        let backend_server = w.next().ok_or(Unparsed::Shape)?;
        let slash = bytes::find_byte(b'/', backend_server).ok_or(Unparsed::Shape)?;
        let timers = w.next().ok_or(Unparsed::Shape)?;
        let timer_count = timers.split(|&b| b == b'/').count();
        let (status, tsc, connect_ms) = match timer_count {
            // httplog: TR/Tw/Tc/Tr/Ta status bytes cookie cookie tsc …
            5 => {
                let status = w.next().ok_or(Unparsed::Shape)?;
                let _bytes = w.next().ok_or(Unparsed::Shape)?;
                let _req_cookie = w.next().ok_or(Unparsed::Shape)?;
                let _res_cookie = w.next().ok_or(Unparsed::Shape)?;
                let tsc = w.next().ok_or(Unparsed::Shape)?;
                (
                    parse_status(status)?,
                    tsc,
                    timers.split(|&b| b == b'/').nth(2),
                )
            }
            // tcplog: Tw/Tc/Tt bytes tsc …
            3 => {
                let _bytes = w.next().ok_or(Unparsed::Shape)?;
                let tsc = w.next().ok_or(Unparsed::Shape)?;
                (None, tsc, timers.split(|&b| b == b'/').nth(1))
            }
            _ => return Err(Unparsed::Shape),
        };
        if !(2..=4).contains(&tsc.len()) {
            return Err(Unparsed::Shape);
        }
        let _conns = w.next().ok_or(Unparsed::Shape)?;
        let _queues = w.next().ok_or(Unparsed::Shape)?;
        let request = w.quoted_after_captures();

        let backend = &backend_server[..slash];
        let server = &backend_server[slash + 1..];
        let nosrv = server == b"<NOSRV>";
        let cause = classify(status, tsc, connect_ms, nosrv, timer_count == 5);
        let mut ev = Event {
            format: Some(Format::Haproxy),
            kind: Kind::Request,
            time: Some(time),
            status,
            cause,
            names_upstream: true,
            vhost: Span::of(line, frontend.strip_suffix(b"~").unwrap_or(frontend)),
            ..Event::default()
        };
        // The pool is named by its backend when no server was chosen.
        let upstream = if nosrv { backend } else { backend_server };
        ev.upstream = Span::of(line, upstream);
        ev.upstreams = ev.upstream;
        if let Some(colon) = client.iter().rposition(|&b| b == b':') {
            ev.client = Span::of(line, &client[..colon]);
        }
        if let Some(r) = request {
            ev.request = Span::of(line, r);
        }
        Ok(ev)
    }
}

/// HAProxy's own stderr/stdout lines start with `[WARNING]  (1234) : `.
fn strip_stderr_prefix(msg: &[u8]) -> &[u8] {
    for level in [
        &b"[WARNING]"[..],
        b"[ALERT]",
        b"[NOTICE]",
        b"[EMERG]",
        b"[ERROR]",
    ] {
        if let Some(rest) = msg.strip_prefix(level)
            && let Some(i) = find!(rest, b") : ")
        {
            return &rest[i + 4..];
        }
    }
    msg
}

/// The cause of a request line: the status and the first two letters of the termination state
/// (HAProxy configuration manual, "Session state at disconnection").
fn classify(
    status: Option<u16>,
    tsc: &[u8],
    connect_ms: Option<&[u8]>,
    nosrv: bool,
    http: bool,
) -> Cause {
    if http && status.is_some_and(|s| s < 500) {
        return Cause::Ok;
    }
    if nosrv && (status == Some(503) || (!http && tsc[0] == b'S')) {
        // No server of the backend could take the request (a TCP session ended on the server
        // side without one; one the proxy itself refused, `PR`, is not about the servers).
        return Cause::NoLiveUpstreams;
    }
    let never_connected = connect_ms.is_none_or(|t| t == b"-1");
    match (tsc[0], tsc[1]) {
        // The server refused or reset the connection while HAProxy was connecting.
        (b'S', b'C') if never_connected => Cause::UpstreamUnreachable,
        (b'S', b'C') => Cause::UpstreamReset,
        // Server timeouts: while connecting, while waiting for headers, while queued, in data.
        (b's', b'C' | b'H' | b'Q' | b'D') => Cause::UpstreamTimeout,
        // The server aborted before (or while) sending its response.
        (b'S', b'H' | b'D') => Cause::UpstreamReset,
        // HAProxy refused the server's response as invalid.
        (b'P', b'H' | b'D') => Cause::UpstreamProtocolError,
        _ if http && status.is_some() => Cause::Other5xx,
        _ => Cause::Ok,
    }
}

fn parse_status(raw: &[u8]) -> Result<Option<u16>, Unparsed> {
    if raw == b"-1" || raw == b"-" {
        return Ok(None);
    }
    if raw.is_empty() || raw.len() > 3 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(Unparsed::Status);
    }
    Ok(Some(
        raw.iter().fold(0u16, |n, &b| n * 10 + (b - b'0') as u16),
    ))
}

/// `Server be/srv is DOWN, reason: Layer4 connection problem, …` and
/// `backend be has no server available!` (newer versions quote the name: `backend 'be' …`).
fn event_line(line: &[u8], msg: &[u8], time: Option<Timestamp>) -> Option<Event> {
    let mut ev = Event {
        format: Some(Format::Haproxy),
        time,
        ..Event::default()
    };
    let server_msg = msg
        .strip_prefix(b"Server ")
        .or_else(|| msg.strip_prefix(b"Backup Server "));
    if let Some(rest) = server_msg {
        let sp = memchr::memchr(b' ', rest)?;
        let name = &rest[..sp];
        memchr::memchr(b'/', name)?;
        let what = &rest[sp + 1..];
        if what.starts_with(b"is DOWN") {
            let reason = find!(what, b"reason: ").map(|i| &what[i + 8..]);
            ev.cause = match reason {
                Some(r) if r.starts_with(b"Layer4 connection problem") => {
                    Cause::UpstreamUnreachable
                }
                Some(r) if r.starts_with(b"Socket error") => Cause::UpstreamUnreachable,
                Some(r) if r.starts_with(b"Layer4 timeout") => Cause::UpstreamTimeout,
                Some(r) if r.starts_with(b"Layer6") => Cause::TlsFailure,
                _ => Cause::NotApplicable,
            };
        }
        if ev.cause.is_upstream_failure() {
            ev.kind = Kind::UpstreamReport;
            ev.upstream = Span::of(line, name);
            ev.upstreams = ev.upstream;
        } else if what.starts_with(b"is UP") {
            // Back in service: evidence of what ended an outage of it.
            ev.kind = Kind::Recovery(Signal::ServerUp);
            ev.upstream = Span::of(line, name);
        }
        return Some(ev);
    }
    let rest = msg
        .strip_prefix(b"backend ")
        .or_else(|| msg.strip_prefix(b"proxy "))?;
    let i = find!(rest, b" has no server available!")?;
    let name = &rest[..i];
    let name = name
        .strip_prefix(b"'")
        .and_then(|n| n.strip_suffix(b"'"))
        .unwrap_or(name);
    ev.cause = Cause::NoLiveUpstreams;
    ev.kind = Kind::UpstreamReport;
    ev.upstream = Span::of(line, name);
    ev.upstreams = ev.upstream;
    Some(ev)
}

/// Space-separated words, with `{…}` captures and the quoted request at the end.
struct Words<'a> {
    rest: &'a [u8],
}

impl<'a> Words<'a> {
    fn new(b: &'a [u8]) -> Words<'a> {
        Words { rest: b }
    }

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        // HAProxy separates words by one space; more are skipped.
        let mut r = self.rest;
        while let [b' ', tail @ ..] = r {
            r = tail;
        }
        if r.is_empty() {
            return None;
        }
        let end = bytes::find_byte(b' ', r).unwrap_or(r.len());
        self.rest = &r[end..];
        Some(&r[..end])
    }

    /// Skips optional `{captured headers}` and returns the quoted request (without quotes).
    fn quoted_after_captures(&mut self) -> Option<&'a [u8]> {
        loop {
            let r = self.rest.trim_ascii_start();
            if r.first() == Some(&b'{') {
                let close = bytes::find_byte(b'}', r)?;
                self.rest = &r[close + 1..];
                continue;
            }
            let r = r.strip_prefix(b"\"")?;
            let end = bytes::find_byte(b'"', r).unwrap_or(r.len());
            self.rest = &r[(end + 1).min(r.len())..];
            return Some(&r[..end]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Zone;

    fn parse(line: &str) -> (Option<u16>, Cause, Option<String>) {
        let ev = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024)
            .parse(line.as_bytes())
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        let up = ev
            .upstream(line.as_bytes())
            .map(|u| String::from_utf8_lossy(u).into_owned());
        (ev.status, ev.cause, up)
    }

    /// The example of the HAProxy configuration manual, with other timers/status/state.
    fn http(timers: &str, status: &str, server: &str, tsc: &str) -> String {
        format!(
            "Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in {server} {timers} {status} 2750 - - {tsc} 1/1/1/1/0 0/0 {{1wt.eu}} {{}} \"GET /index.html HTTP/1.1\""
        )
    }

    #[test]
    fn the_manual_example() {
        let line = http("10/0/30/69/109", "200", "static/srv1", "----");
        assert_eq!(
            parse(&line),
            (Some(200), Cause::Ok, Some("static/srv1".into()))
        );
        let ev = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024)
            .parse(line.as_bytes())
            .unwrap();
        let b = line.as_bytes();
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2009-02-06T12:14:14.655+00:00"
        );
        assert_eq!(ev.request(b), Some(&b"GET /index.html HTTP/1.1"[..]));
        assert_eq!(ev.client(b), Some(&b"10.0.1.2"[..]));
        assert_eq!(ev.vhost(b), Some(&b"http-in"[..]));
    }

    #[test]
    fn termination_states_name_the_cause() {
        use Cause::*;
        let cases = [
            (
                "0/0/-1/-1/3001",
                "503",
                "app/web1",
                "SC--",
                UpstreamUnreachable,
                "app/web1",
            ),
            (
                "0/0/-1/-1/0",
                "503",
                "app/<NOSRV>",
                "SC--",
                NoLiveUpstreams,
                "app",
            ),
            (
                "0/0/-1/-1/5000",
                "503",
                "app/web1",
                "sC--",
                UpstreamTimeout,
                "app/web1",
            ),
            (
                "0/0/1/-1/30001",
                "504",
                "app/web1",
                "sH--",
                UpstreamTimeout,
                "app/web1",
            ),
            (
                "0/0/1/-1/12",
                "502",
                "app/web1",
                "SH--",
                UpstreamReset,
                "app/web1",
            ),
            (
                "0/0/1/3/4",
                "502",
                "app/web1",
                "PH--",
                UpstreamProtocolError,
                "app/web1",
            ),
            ("0/0/1/3/4", "500", "app/web1", "----", Other5xx, "app/web1"),
            ("0/0/1/3/4", "200", "app/web1", "CD--", Ok, "app/web1"),
        ];
        for (timers, status, server, tsc, cause, up) in cases {
            let line = http(timers, status, server, tsc);
            let got = parse(&line);
            assert_eq!((got.1, got.2.as_deref()), (cause, Some(up)), "{line}");
        }
    }

    #[test]
    fn headers_rfc5424_and_raw() {
        let msg = r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in app/web1 0/0/-1/-1/3001 503 217 - - SC-- 1/1/0/0/3 0/0 "GET / HTTP/1.1""#;
        assert_eq!(parse(msg).1, Cause::UpstreamUnreachable);
        let line = format!("<134>1 2009-02-06T12:14:14.655+01:00 lb1 haproxy 14389 - - {msg}");
        let ev = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024)
            .parse(line.as_bytes())
            .unwrap();
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2009-02-06T12:14:14.655+01:00"
        );
        assert_eq!(ev.cause, Cause::UpstreamUnreachable);
        let line = format!("<134>Feb  6 12:14:14 haproxy[14389]: {msg}");
        assert_eq!(parse(&line).1, Cause::UpstreamUnreachable);
    }

    #[test]
    fn tcplog_lines() {
        let line = "Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/-1/5007 0 SC 1/1/1/1/3 0/0";
        assert_eq!(
            parse(line),
            (None, Cause::UpstreamUnreachable, Some("bck/srv1".into()))
        );
        let line = "Feb  6 12:12:56 localhost haproxy[14387]: 10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 1/1/1/1/0 0/0";
        assert_eq!(parse(line).1, Cause::Ok);
    }

    #[test]
    fn server_and_backend_events() {
        let down = r#"Feb  6 12:14:14 lb1 haproxy[14389]: Server app/web1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."#;
        assert_eq!(
            parse(down),
            (None, Cause::UpstreamUnreachable, Some("app/web1".into()))
        );
        let timeout = down.replace("Layer4 connection problem", "Layer4 timeout");
        assert_eq!(parse(&timeout).1, Cause::UpstreamTimeout);
        let l7 = down.replace("Layer4 connection problem", "Layer7 wrong status");
        assert_eq!(parse(&l7), (None, Cause::NotApplicable, None));
        for none in [
            "Feb  6 12:14:14 lb1 haproxy[14389]: backend app has no server available!",
            "Feb  6 12:14:14 lb1 haproxy[14389]: backend 'app' has no server available!",
            "[ALERT]    (14389) : backend 'app' has no server available!",
        ] {
            assert_eq!(
                parse(none),
                (None, Cause::NoLiveUpstreams, Some("app".into()))
            );
        }
        let up = "Feb  6 12:14:14 lb1 haproxy[14389]: Server app/web1 is UP, reason: Layer4 check passed, check duration: 0ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.";
        assert_eq!(
            parse(up),
            (None, Cause::NotApplicable, Some("app/web1".into()))
        );
        // Back in service: a recovery signal (leaving maintenance too), not a failure.
        for up in [
            up.to_string(),
            up.replace(
                "is UP, reason: Layer4 check passed",
                "is UP/READY (leaving forced maintenance)",
            ),
        ] {
            let ev = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024)
                .parse(up.as_bytes())
                .unwrap();
            assert_eq!(ev.kind, Kind::Recovery(Signal::ServerUp), "{up}");
            assert_eq!(ev.counted_upstream(up.as_bytes()), None);
        }
        let started = "Feb  6 12:14:14 lb1 haproxy[14389]: Proxy http-in started.";
        assert_eq!(parse(started).1, Cause::NotApplicable);
        let ev = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024)
            .parse(started.as_bytes())
            .unwrap();
        assert_eq!(ev.time.unwrap().to_rfc3339(), "2024-02-06T12:14:14+00:00");
    }

    #[test]
    fn a_remembered_second_gives_the_times_a_full_parse_gives() {
        let line = |date: &str| {
            format!(
                "Feb  6 12:14:14 lb1 haproxy[1]: 10.0.0.1:5 [{date}] fe be/s1 0/0/1/2/3 200 1 - - ---- 1/1/1/1/0 0/0 \"GET / HTTP/1.1\""
            )
        };
        let mut warm = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024);
        for date in [
            "06/Feb/2009:12:14:14.655",
            "06/Feb/2009:12:14:14.001",
            "06/Feb/2009:12:14:14",
            "06/Feb/2009:12:14:15.000",
            "06/Feb/2009:12:14:14.999",
            "07/Mar/2010:00:00:00.5",
        ] {
            let l = line(date);
            let cold = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024)
                .parse(l.as_bytes())
                .unwrap();
            assert_eq!(warm.parse(l.as_bytes()).unwrap().time, cold.time, "{date}");
        }
        assert_eq!(warm.year, 2010);
    }

    #[test]
    fn other_text_is_not_haproxy() {
        let mut p = HaproxyParser::new(ZoneClock::new(Zone::Utc), 2024);
        assert!(p.parse(b"hello world").is_err());
        assert!(
            p.parse(b"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] fe")
                .is_err()
        );
    }

    /// Parser gaps found on real lines (tests/data/corpus): clients that are not addresses,
    /// structured data that is not bracketed, a TCP session the proxy refused without a server.
    #[test]
    fn clients_that_are_not_addresses_and_custom_structured_data() {
        // HAProxy's own HTTP client (OCSP update), from HAProxy 2.8's manual.
        let ocsp = r#"<134>Mar  6 11:18:55 haproxy[14872]: -:- [06/Mar/2023:11:18:52.200] <OCSP-UPDATE> -/- 2/0/-1/-1/3009 503 217 - - SC-- 0/0/0/0/3 0/0 {} "GET http://127.0.0.1:12345/MEMwQTA HTTP/1.1""#;
        assert_eq!(
            parse(ocsp),
            (Some(503), Cause::UpstreamUnreachable, Some("-/-".into()))
        );
        // A redacted client address, in a tcplog line ended by the server (`SD`).
        let redacted = "Jul 12 10:13:31 localhost haproxy[30046]: X.X.X.63:57618 [12/Jul/2018:10:13:30.616] fe be/web2 1/1/1116 5939 SD 375/375/375/132/0 0/0";
        assert_eq!(
            parse(redacted),
            (None, Cause::UpstreamReset, Some("be/web2".into()))
        );
        // A log profile's custom structured data (HAProxy 3.1's manual).
        let sd = r#"<134>1 2024-06-12T10:09:11.823428+02:00 - custom-tag 224482 - custom-sd 127.0.0.1:53594 [12/Jun/2024:10:09:11.814] myproxy myproxy/<NOSRV> 0/-1/-1/-1/0 200 49 - - LR-- 1/1/0/0/0 0/0 "GET / HTTP/1.1""#;
        assert_eq!(parse(sd), (Some(200), Cause::Ok, Some("myproxy".into())));
        // A TCP session the proxy refused (`PR`) before choosing a server is not about the
        // servers; one ended on the server side without a server is.
        let refused = "<30>Apr 19 11:07:09 haproxy[25274]: 10.0.2.32:42174 [19/Apr/2020:11:07:09.283] fe_tls be_tls/<NOSRV> -1/-1/140 187 PR 3/1/0/0/3 0/0";
        assert_eq!(parse(refused), (None, Cause::Ok, Some("be_tls".into())));
        let none = "Sep 20 15:44:23 127.0.0.1 haproxy[25457]: 127.0.0.1:40962 [20/Sep/2018:15:44:23.285] main app/<NOSRV> -1/-1/1 212 SC 1/1/0/0/0 0/0";
        assert_eq!(
            parse(none),
            (None, Cause::NoLiveUpstreams, Some("app".into()))
        );
    }
}

//! Apache httpd error log, as `mod_proxy` writes it (httpd 2.4's default `ErrorLogFormat`, and
//! 2.2's shorter header):
//!
//! ```text
//! [Sun Dec 06 08:22:30.591823 2026] [proxy:error] [pid 23874:tid 23881] (111)Connection refused: AH00957: http: attempt to connect to 127.0.0.1:18081 (127.0.0.1:18081) failed
//! [Sun Dec 06 08:22:30.591879 2026] [proxy_http:error] [pid 23874:tid 23881] [client 127.0.0.1:59524] AH01114: HTTP: failed to make connection to backend: 127.0.0.1
//! [Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] (111)Connection refused: proxy: HTTP: attempt to connect to 127.0.0.1:8080 (localhost) failed
//! ```
//!
//! A failed request is written in two lines of the same worker thread: the connection-level
//! line (`AH00957`, with the errno and the worker's `host:port`, but no client) and the request
//! line (`AH01114`, with the client, naming the backend's host only). The request line is the
//! report that counts and joins the access log; it takes its cause from the connection-level
//! line the same thread wrote just before it (refused, timed out, or the worker still disabled
//! after a failure), which is itself not counted, and the pipeline gives it that line's
//! `host:port` as its upstream (both lines carry the thread in [`Event::thread`]). Errors are matched by errno *number* (Linux
//! numbers, and APR's 70000+ codes), with the text as a fallback for other systems.
//!
//! Times carry no zone: they are the host's local time, read in the configured zone.

use super::bytes::has_prefix;
use crate::engine::event::{Cause, Event, Format, Kind, Span, Unparsed};
use crate::engine::time::{self, ZoneClock};
use memchr::memmem;

/// How many worker threads' last connection-level cause are remembered.
const THREADS: usize = 64;

/// Parser for one Apache httpd error log.
#[derive(Clone, Debug)]
pub struct ApacheErrorParser {
    zone: ZoneClock,
    /// (hash of `pid N:tid M`, cause) of the connection-level lines last seen, newest last.
    pending: Box<[(u64, Cause); THREADS]>,
    next: usize,
}

impl ApacheErrorParser {
    pub fn new(zone: ZoneClock) -> ApacheErrorParser {
        ApacheErrorParser {
            zone,
            pending: Box::new([(0, Cause::NotApplicable); THREADS]),
            next: 0,
        }
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let rest = line.strip_prefix(b"[").ok_or(Unparsed::Shape)?;
        let (naive, used) = time::parse_apache_error_time(rest).ok_or(Unparsed::Shape)?;
        let mut rest = rest[used..].strip_prefix(b"] [").ok_or(Unparsed::Shape)?;
        // `[module:level]` (2.4) or `[level]` (2.2).
        let close = memchr::memchr(b']', rest).ok_or(Unparsed::Shape)?;
        let tag = &rest[..close];
        let (module, level) = match memchr::memchr(b':', tag) {
            Some(i) => (&tag[..i], &tag[i + 1..]),
            None => (&b""[..], tag),
        };
        if level.is_empty()
            || !level.iter().all(u8::is_ascii_alphanumeric)
            || !module
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Err(Unparsed::Shape);
        }
        let v24 = !module.is_empty();
        rest = &rest[close + 1..];
        let mut ev = Event {
            format: Some(Format::ApacheError),
            kind: Kind::Other,
            time: Some(self.zone.to_utc(naive)),
            ..Event::default()
        };
        // ` [pid 123:tid 456]` (2.4; prefork has no tid).
        let mut thread: &[u8] = b"";
        if let Some(r) = rest.strip_prefix(b" [pid ") {
            let close = memchr::memchr(b']', r).ok_or(Unparsed::Shape)?;
            thread = &r[..close];
            rest = &r[close + 1..];
        }
        if !thread.is_empty() {
            ev.thread = Span::of(line, thread);
        }
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        // `file.c(123): ` at debug levels.
        let rest = skip_source_position(rest);
        // `(111)Connection refused: ` — the status of the failed call.
        let (errno, rest) = errno(rest);
        let mut message = rest;
        let mut errno = errno;
        if let Some(r) = rest.strip_prefix(b"[client ") {
            let close = memchr::memchr(b']', r).ok_or(Unparsed::Shape)?;
            let client = strip_port(&r[..close], v24);
            ev.client = Span::of(line, client);
            message = r[close + 1..].strip_prefix(b" ").unwrap_or(&r[close + 1..]);
            // httpd 2.2 writes the client before the errno.
            if errno == Errno::None {
                (errno, message) = self::errno(message);
            }
        }
        let severe = matches!(level, b"error" | b"crit" | b"alert" | b"emerg");
        let proxy = module.starts_with(b"proxy") || (!v24 && find!(message, b"proxy").is_some());
        if !severe || !proxy {
            return Ok(ev);
        }
        self.classify(line, thread, errno, message, &mut ev);
        Ok(ev)
    }

    fn classify(&mut self, line: &[u8], thread: &[u8], errno: Errno, msg: &[u8], ev: &mut Event) {
        let key = fnv(thread);
        if let Some(i) = find!(msg, b"attempt to connect to ") {
            // Connection-level: remembered for the request line that follows.
            let cause = errno.cause().unwrap_or(Cause::UpstreamUnreachable);
            self.remember(key, cause);
            // `IP:PORT (NAME:PORT)`: the worker as configured (the name AH01114 repeats) when
            // httpd 2.4 writes it with its port, else the address dialled.
            let after = &msg[i + 22..];
            let end = memchr::memchr(b' ', after).unwrap_or(after.len());
            let configured = after[end..]
                .strip_prefix(b" (")
                .and_then(|r| r.get(..memchr::memchr(b')', r)?))
                .filter(|w| {
                    memchr::memrchr(b':', w).is_some_and(|c| {
                        c + 1 < w.len() && w[c + 1..].iter().all(u8::is_ascii_digit)
                    })
                });
            ev.upstream = Span::of(line, configured.unwrap_or(&after[..end]));
            return;
        }
        if let Some(i) = find!(msg, b"pass request body failed to ") {
            // AH01084: the backend the request was being sent to (before a failed TLS
            // handshake's AH00898, which names none): carried to the thread's next report.
            let after = &msg[i + 28..];
            let end = memchr::memchr(b' ', after).unwrap_or(after.len());
            ev.upstream = Span::of(line, &after[..end]);
            return;
        }
        if let Some(i) = find!(msg, b"failed to enable ssl support for ") {
            // AH00961: an https:// backend without `SSLProxyEngine on`: httpd answers 500.
            let after = &msg[i + 33..];
            let end = memchr::memchr(b' ', after).unwrap_or(after.len());
            ev.upstream = Span::of(line, &after[..end]);
            ev.kind = Kind::UpstreamReport;
            ev.cause = Cause::TlsFailure;
            return;
        }
        if let Some(i) = find!(msg, b"disabled connection for (") {
            // The worker is still in its retry period after a failure: httpd answers 503 at
            // once, and this line (without the client) is all it writes about the request.
            let after = &msg[i + 25..];
            if let Some(end) = memchr::memchr(b')', after) {
                ev.upstream = Span::of(line, &after[..end]);
            }
            ev.kind = Kind::UpstreamReport;
            ev.cause = Cause::NoLiveUpstreams;
            return;
        }
        if let Some(i) = find!(msg, b"failed to make connection to backend: ") {
            let backend = &msg[i + 38..];
            let end = memchr::memchr2(b' ', b',', backend).unwrap_or(backend.len());
            ev.upstream = Span::of(line, &backend[..end]);
            ev.kind = Kind::UpstreamReport;
            ev.cause = self.take(key).unwrap_or(Cause::UpstreamUnreachable);
            return;
        }
        if let Some(i) = find!(msg, b"error reading status line from remote server ") {
            let server = &msg[i + 45..];
            let end = memchr::memchr2(b' ', b',', server).unwrap_or(server.len());
            ev.upstream = Span::of(line, &server[..end]);
            ev.kind = Kind::UpstreamReport;
            ev.cause = match errno.cause() {
                Some(Cause::UpstreamTimeout) => Cause::UpstreamTimeout,
                _ => Cause::UpstreamReset,
            };
            return;
        }
        if let Some(i) = find!(msg, b"DNS lookup failure for: ") {
            let host = &msg[i + 24..];
            let end = memchr::memchr(b' ', host).unwrap_or(host.len());
            ev.upstream = Span::of(line, &host[..end]);
            ev.kind = Kind::UpstreamReport;
            ev.cause = Cause::DnsFailure;
            return;
        }
        if find!(msg, b"All workers are in error state").is_some()
            || find!(msg, b"No workers in balancer").is_some()
        {
            if let Some(i) = find!(msg, b"balancer://") {
                let name = &msg[i..];
                let end = name[11..]
                    .iter()
                    .position(|b| matches!(b, b')' | b' ' | b',' | b':'))
                    .map_or(name.len(), |e| e + 11);
                ev.upstream = Span::of(line, &name[..end]);
            }
            ev.kind = Kind::UpstreamReport;
            ev.cause = Cause::NoLiveUpstreams;
            return;
        }
        if find!(msg, b"Error during SSL Handshake with remote server").is_some() {
            ev.kind = Kind::UpstreamReport;
            ev.cause = Cause::TlsFailure;
        }
        // Anything else (the "Error reading from remote server" that follows AH01102, a worker
        // being disabled, configuration complaints) explains no request of its own.
    }

    fn remember(&mut self, key: u64, cause: Cause) {
        self.pending[self.next] = (key, cause);
        self.next = (self.next + 1) % THREADS;
    }

    /// The cause the thread's last connection-level line gave, once.
    fn take(&mut self, key: u64) -> Option<Cause> {
        for k in 1..=THREADS {
            let i = (self.next + THREADS - k) % THREADS;
            if self.pending[i].0 == key && self.pending[i].1 != Cause::NotApplicable {
                return Some(std::mem::replace(
                    &mut self.pending[i].1,
                    Cause::NotApplicable,
                ));
            }
        }
        None
    }
}

/// Whether a client's status can be the answer to a failure of this cause (httpd 2.4:
/// a connection that could not be made (refused or timed out), or a worker out of service, is
/// 503; a backend that timed out, reset or sent garbage is 502, or 504 when the client's side
/// timed out first; a name that does not resolve is 502 up to 2.4.58, 500 since). The join uses it to keep a request's line from
/// taking the cause of another request of the same client.
pub fn status_fits(cause: Cause, status: Option<u16>) -> bool {
    let Some(s) = status else { return true };
    match cause {
        Cause::UpstreamUnreachable | Cause::NoLiveUpstreams => s == 503,
        // A connection that timed out is 503; a read that timed out, 502 or 504.
        Cause::UpstreamTimeout => matches!(s, 502..=504),
        Cause::UpstreamReset | Cause::UpstreamProtocolError => matches!(s, 502 | 504),
        Cause::DnsFailure => matches!(s, 500 | 502),
        // "Error during SSL Handshake with remote server" and AH00961: 500 in every 2.4.
        Cause::TlsFailure => s == 500,
        _ => true,
    }
}

/// The `(N)text: ` that `%E` writes: an errno (or APR status) number, or `(EAI n)` for a
/// resolver error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Errno<'a> {
    None,
    Number(u32, &'a [u8]),
    Resolver,
}

impl Errno<'_> {
    /// The cause an errno names, by number on Linux and APR, else by its text.
    fn cause(self) -> Option<Cause> {
        match self {
            Errno::None => None,
            Errno::Resolver => Some(Cause::DnsFailure),
            // ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ENOENT (a unix socket), EACCES,
            // EADDRNOTAVAIL.
            Errno::Number(111 | 113 | 101 | 2 | 13 | 99, _) => Some(Cause::UpstreamUnreachable),
            // ETIMEDOUT, APR_TIMEUP.
            Errno::Number(110 | 70007, _) => Some(Cause::UpstreamTimeout),
            // ECONNRESET, EPIPE, APR_EOF.
            Errno::Number(104 | 32 | 70014, _) => Some(Cause::UpstreamReset),
            Errno::Number(_, text) => {
                let has = |s: &[u8]| memmem::find(text, s).is_some();
                if has(b"refused") || has(b"unreachable") || has(b"No route") {
                    Some(Cause::UpstreamUnreachable)
                } else if has(b"timed out") || has(b"timeout") {
                    Some(Cause::UpstreamTimeout)
                } else if has(b"reset") || has(b"Broken pipe") {
                    Some(Cause::UpstreamReset)
                } else {
                    None
                }
            }
        }
    }
}

/// Splits `(111)Connection refused: ` off the front of a message.
fn errno(b: &[u8]) -> (Errno<'_>, &[u8]) {
    let Some(inner) = b.strip_prefix(b"(") else {
        return (Errno::None, b);
    };
    let Some(close) = memchr::memchr(b')', inner) else {
        return (Errno::None, b);
    };
    let code = &inner[..close];
    let after = &inner[close + 1..];
    let Some(colon) = find!(after, b": ") else {
        return (Errno::None, b);
    };
    let text = &after[..colon];
    let rest = &after[colon + 2..];
    if has_prefix(code, b"EAI ") {
        return (Errno::Resolver, rest);
    }
    if code.is_empty() || code.len() > 9 || !code.iter().all(u8::is_ascii_digit) {
        return (Errno::None, b);
    }
    let n = code.iter().fold(0u32, |n, &d| n * 10 + (d - b'0') as u32);
    (Errno::Number(n, text), rest)
}

/// Skips `mod_proxy.c(1234): ` (the `%F` of debug-level lines).
fn skip_source_position(b: &[u8]) -> &[u8] {
    let Some(i) = find!(b, b"): ") else {
        return b;
    };
    let head = &b[..i];
    match memchr::memrchr(b'(', head) {
        Some(open)
            if open > 0
                && head[open + 1..].iter().all(u8::is_ascii_digit)
                && !head[..open].contains(&b' ') =>
        {
            &b[i + 3..]
        }
        _ => b,
    }
}

/// `127.0.0.1:59524` → `127.0.0.1` (httpd 2.4 writes the client's port; the access log's `%h`
/// has none). 2.2 wrote the address alone, which for IPv6 has colons of its own.
fn strip_port(client: &[u8], with_port: bool) -> &[u8] {
    if !with_port {
        return client;
    }
    match memchr::memrchr(b':', client) {
        Some(i) if i + 1 < client.len() && client[i + 1..].iter().all(u8::is_ascii_digit) => {
            let host = &client[..i];
            host.strip_prefix(b"[")
                .and_then(|h| h.strip_suffix(b"]"))
                .unwrap_or(host)
        }
        _ => client,
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h ^= c as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Zone;

    fn parse_all(lines: &[&str]) -> Vec<(Kind, Cause, String, String)> {
        let mut p = ApacheErrorParser::new(ZoneClock::new(Zone::Utc));
        lines
            .iter()
            .map(|l| {
                let b = l.as_bytes();
                let ev = p.parse(b).unwrap_or_else(|e| panic!("{e}: {l}"));
                let s = |x: Option<&[u8]>| String::from_utf8_lossy(x.unwrap_or(b"")).into_owned();
                (ev.kind, ev.cause, s(ev.upstream(b)), s(ev.client(b)))
            })
            .collect()
    }

    // Lines of a real httpd 2.4.71 (Debian 12) in front of a closed port, a name that does not
    // resolve, a backend that never answers (ProxyTimeout 1) and a two-member balancer.
    const REFUSED: [&str; 2] = [
        "[Sun Dec 06 08:22:30.591823 2026] [proxy:error] [pid 23874:tid 23881] (111)Connection refused: AH00957: http: attempt to connect to 127.0.0.1:18081 (127.0.0.1:18081) failed",
        "[Sun Dec 06 08:22:30.591879 2026] [proxy_http:error] [pid 23874:tid 23881] [client 127.0.0.1:59524] AH01114: HTTP: failed to make connection to backend: 127.0.0.1",
    ];

    #[test]
    fn a_refused_connection_is_counted_once_through_the_request_line() {
        let got = parse_all(&REFUSED);
        assert_eq!(got[0].0, Kind::Other);
        assert_eq!(got[0].1, Cause::NotApplicable);
        assert_eq!(got[0].2, "127.0.0.1:18081");
        assert_eq!(
            got[1],
            (
                Kind::UpstreamReport,
                Cause::UpstreamUnreachable,
                "127.0.0.1".into(),
                "127.0.0.1".into()
            )
        );
    }

    #[test]
    fn the_request_line_takes_the_cause_of_its_own_thread() {
        // Two threads interleaved: one timed out connecting, the other was refused.
        let got = parse_all(&[
            "[Sun Dec 06 08:22:30.000001 2026] [proxy:error] [pid 1:tid 10] (110)Connection timed out: AH00957: http: attempt to connect to 10.0.0.5:8080 (app) failed",
            "[Sun Dec 06 08:22:30.000002 2026] [proxy:error] [pid 1:tid 11] (111)Connection refused: AH00957: http: attempt to connect to 10.0.0.6:8080 (api) failed",
            "[Sun Dec 06 08:22:30.000003 2026] [proxy_http:error] [pid 1:tid 11] [client 10.1.1.1:5000] AH01114: HTTP: failed to make connection to backend: api",
            "[Sun Dec 06 08:22:30.000004 2026] [proxy_http:error] [pid 1:tid 10] [client 10.1.1.2:5001] AH01114: HTTP: failed to make connection to backend: app",
            // The worker in its retry period: nothing was tried, httpd answered 503 at once and
            // wrote this line alone (no AH01114 follows).
            "[Sun Dec 06 08:22:31.000000 2026] [proxy:error] [pid 1:tid 10] AH00940: http: disabled connection for (app:8080)",
            "[Sun Dec 06 08:22:31.000001 2026] [proxy_balancer:error] [pid 1:tid 2] [client 10.0.0.1:5000] AH01171: balancer://pool: No workers in balancer",
        ]);
        assert_eq!(got[2].1, Cause::UpstreamUnreachable);
        assert_eq!(got[2].2, "api");
        assert_eq!(got[3].1, Cause::UpstreamTimeout);
        assert_eq!(got[3].3, "10.1.1.2");
        assert_eq!(
            (got[4].0, got[4].1, got[4].2.as_str(), got[4].3.as_str()),
            (Kind::UpstreamReport, Cause::NoLiveUpstreams, "app:8080", "")
        );
        assert_eq!(
            (got[5].1, got[5].2.as_str()),
            (Cause::NoLiveUpstreams, "balancer://pool")
        );
    }

    #[test]
    fn read_timeouts_resets_dns_and_balancers() {
        let got = parse_all(&[
            "[Sun Dec 06 08:22:31.620072 2026] [proxy_http:error] [pid 23874:tid 23878] (70007)The timeout specified has expired: [client 127.0.0.1:59536] AH01102: error reading status line from remote server 127.0.0.1:18082",
            "[Sun Dec 06 08:22:31.620106 2026] [proxy:error] [pid 23874:tid 23878] [client 127.0.0.1:59536] AH00898: Error reading from remote server returned by /slow",
            "[Sun Dec 06 08:22:31.620072 2026] [proxy_http:error] [pid 23874:tid 23878] (104)Connection reset by peer: [client 127.0.0.1:59537] AH01102: error reading status line from remote server 127.0.0.1:18082",
            "[Sun Dec 06 08:22:30.610527 2026] [proxy:error] [pid 23875:tid 23911] (EAI 2)Name or service not known: [client 127.0.0.1:59528] AH00898: DNS lookup failure for: no-such-host.invalid returned by /dns",
            "[Sun Dec 06 08:22:32.000000 2026] [proxy_balancer:error] [pid 1:tid 2] [client 10.1.1.1:5000] AH01167: balancer://pool: All workers are in error state for route (node1)",
            "[Sun Dec 06 08:22:31.627972 2026] [proxy:error] [pid 23875:tid 23909] AH00959: ap_proxy_connect_backend disabling worker for (127.0.0.1:18083) for 60s",
        ]);
        assert_eq!(got[0].1, Cause::UpstreamTimeout);
        assert_eq!(got[0].2, "127.0.0.1:18082");
        // The generic line that follows explains nothing more.
        assert_eq!((got[1].0, got[1].1), (Kind::Other, Cause::NotApplicable));
        assert_eq!(got[2].1, Cause::UpstreamReset);
        assert_eq!(
            (got[3].1, got[3].2.as_str()),
            (Cause::DnsFailure, "no-such-host.invalid")
        );
        assert_eq!(
            (got[4].1, got[4].2.as_str()),
            (Cause::NoLiveUpstreams, "balancer://pool")
        );
        assert_eq!(got[5].1, Cause::NotApplicable);
    }

    #[test]
    fn a_backend_configured_by_name_is_named_as_configured() {
        let got = parse_all(&[
            "[Mon May 04 09:15:02.118204 2026] [proxy:error] [pid 41210:tid 41237] (111)Connection refused: AH00957: http: attempt to connect to 10.0.0.5:8080 (app.internal:8080) failed",
            "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] (111)Connection refused: proxy: HTTP: attempt to connect to 127.0.0.1:8080 (localhost) failed",
        ]);
        assert_eq!(got[0].2, "app.internal:8080");
        assert_eq!(got[1].2, "127.0.0.1:8080");
    }

    #[test]
    fn tls_handshakes_and_https_backends_without_the_ssl_engine() {
        // httpd 2.4.71 in front of a backend whose certificate does not verify: AH01084 names
        // the backend, AH00898 reports the request (the pipeline carries the first's upstream
        // to the second by thread); without SSLProxyEngine, AH00961 names it itself.
        let got = parse_all(&[
            "[Sun Dec 06 09:10:00.100000 2026] [proxy_http:error] [pid 5:tid 9] (20014)Internal error (specific information not available): [client 127.0.0.1:40000] AH01084: pass request body failed to 127.0.0.1:28441 (localhost)",
            "[Sun Dec 06 09:10:00.100100 2026] [proxy:error] [pid 5:tid 9] [client 127.0.0.1:40000] AH00898: Error during SSL Handshake with remote server returned by /tls",
            "[Sun Dec 06 09:10:01.000000 2026] [proxy:error] [pid 5:tid 8] AH00961: https: failed to enable ssl support for 127.0.0.1:28444 (localhost)",
        ]);
        assert_eq!(
            (got[0].0, got[0].1, got[0].2.as_str()),
            (Kind::Other, Cause::NotApplicable, "127.0.0.1:28441")
        );
        assert_eq!(
            (got[1].0, got[1].1),
            (Kind::UpstreamReport, Cause::TlsFailure)
        );
        assert_eq!(
            (got[2].0, got[2].1, got[2].2.as_str()),
            (Kind::UpstreamReport, Cause::TlsFailure, "127.0.0.1:28444")
        );
        assert!(
            status_fits(Cause::TlsFailure, Some(500)) && !status_fits(Cause::TlsFailure, Some(503))
        );
    }

    #[test]
    fn httpd_2_2_lines_and_other_modules() {
        let got = parse_all(&[
            "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] (111)Connection refused: proxy: HTTP: attempt to connect to 127.0.0.1:8080 (localhost) failed",
            "[Wed Oct 11 14:32:52 2000] [error] [client 2001:db8::1] proxy: HTTP: failed to make connection to backend: localhost",
            "[Sun Dec 06 08:22:29.584222 2026] [mpm_event:notice] [pid 23871:tid 23871] AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations",
            "[Sun Dec 06 08:22:29.584222 2026] [php:error] [pid 23871] [client 10.0.0.1:1234] PHP Fatal error:  Uncaught Error: connection refused",
            "[Thu Mar 13 19:04:13 2014] [core:error] [pid 6780] [client 10.0.0.1:33402] File does not exist: /var/www/favicon.ico",
        ]);
        assert_eq!(got[1].1, Cause::UpstreamUnreachable);
        assert_eq!(
            (got[1].2.as_str(), got[1].3.as_str()),
            ("localhost", "2001:db8::1")
        );
        // 2.2 writes the errno after the client.
        let late = parse_all(&[
            "[Wed Oct 11 14:32:52 2000] [error] [client 10.0.0.1] (70007)The timeout specified has expired: proxy: error reading status line from remote server app",
        ]);
        assert_eq!(late[0].1, Cause::UpstreamTimeout);
        for g in &got[2..] {
            assert_eq!((g.0, g.1), (Kind::Other, Cause::NotApplicable), "{g:?}");
        }
        assert_eq!(got[3].3, "10.0.0.1");
    }

    #[test]
    fn lines_of_other_shapes_are_refused() {
        let mut p = ApacheErrorParser::new(ZoneClock::new(Zone::Utc));
        for bad in [
            "2024/05/01 12:00:00 [error] 1#1: *1 connect() failed (111: Connection refused)",
            "[Sun Dec 06 08:22:30 2026 [proxy:error] x",
            "[01/May/2024:12:00:00 +0000] [error] x",
            "[Sun Dec 06 08:22:30.5 2026] [pro xy:error] x",
            "",
        ] {
            assert!(p.parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

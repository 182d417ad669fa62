//! nginx error logs: `2024/05/01 12:00:00 [error] 1234#1234: *5 MESSAGE, client: …, server: …,
//! request: "…", upstream: "…", host: "…"`.
//!
//! The message says what went wrong; the errno in it (`(111: Connection refused)`) is matched by
//! number, because musl-based systems print other words than glibc.

use super::upstream;
use crate::engine::event::{Cause, Event, Format, Kind, Signal, Span, Unparsed};
use crate::engine::time::{self, ZoneClock};

/// Parser for one nginx error log. Its lines carry no UTC offset: `zone` says which applies.
#[derive(Clone, Debug)]
pub struct ErrorParser {
    zone: ZoneClock,
}

/// The context nginx appends to messages about a request (`ngx_http_log_error`).
const CONTEXT_KEYS: [&[u8]; 9] = [
    b"client: ",
    b"server: ",
    b"request: ",
    b"subrequest: ",
    b"upstream: ",
    b"host: ",
    b"referrer: ",
    // The stream module's context after the upstream.
    b"bytes from/to client:",
    b"bytes from/to upstream:",
];

/// ingress-nginx's placeholder peer: its balancer sends a request there when a service has no
/// endpoints, so a failure to reach it means no live upstream.
pub const PLACEHOLDER_PEER: &[u8] = b"0.0.0.1";

impl ErrorParser {
    pub fn new(zone: ZoneClock) -> ErrorParser {
        ErrorParser { zone }
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let naive = time::parse_nginx_error_time(line).ok_or(Unparsed::Shape)?;
        // ` [error] 1234#1234: *5 message`
        let rest = line.get(19..).ok_or(Unparsed::Shape)?;
        let rest = rest.strip_prefix(b" [").ok_or(Unparsed::Shape)?;
        let close = memchr::memchr(b']', rest).ok_or(Unparsed::Shape)?;
        if close == 0 || close > 6 || !rest[..close].iter().all(u8::is_ascii_lowercase) {
            return Err(Unparsed::Shape);
        }
        // Only errors report failures: `[warn]` lines such as "upstream sent duplicate header
        // line … ignored" or "upstream server temporarily disabled" accompany requests that
        // may well succeed.
        let mut severe = matches!(&rest[..close], b"error" | b"crit" | b"alert" | b"emerg");
        let rest = rest[close + 1..]
            .strip_prefix(b" ")
            .ok_or(Unparsed::Shape)?;
        // `pid#tid: ` is followed by `*connection ` when the message is about a connection.
        let colon = find!(rest, b": ").ok_or(Unparsed::Shape)?;
        let pid = &rest[..colon];
        if pid.is_empty() || !pid.iter().all(|b| b.is_ascii_digit() || *b == b'#') {
            return Err(Unparsed::Shape);
        }
        let mut message = &rest[colon + 2..];
        if let Some(after_star) = message.strip_prefix(b"*") {
            let digits = after_star.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 {
                message = after_star[digits..]
                    .strip_prefix(b" ")
                    .unwrap_or(&after_star[digits..]);
            }
        }
        let mut ev = Event {
            format: Some(Format::NginxError),
            kind: Kind::Other,
            time: Some(self.zone.to_utc(naive)),
            ..Event::default()
        };
        if let Some(ctx) = find!(message, b", client: ") {
            read_context(line, &message[ctx + 2..], &mut ev);
            message = &message[..ctx];
        }
        // nginx 1.21.1 to 1.21.3 logged invalid upstream headers at [info] by mistake (fixed in
        // 1.21.4); the request failed all the same.
        severe = severe || find!(message, b"upstream sent invalid header").is_some();
        let (cause, named) = if severe {
            classify(message)
        } else {
            (Cause::NotApplicable, None)
        };
        // Lines longer than nginx's 2 KiB limit lose their context; `connect() to PEER failed`
        // still names the upstream.
        let named = named.or_else(|| peer_in_connect(message));
        let placeholder = |u: &[u8]| u.split(|&b| b == b':').next() == Some(PLACEHOLDER_PEER);
        let cause = match cause {
            Cause::UpstreamUnreachable
                if ev.upstream.get(line).or(named).is_some_and(placeholder) =>
            {
                Cause::NoLiveUpstreams
            }
            c => c,
        };
        ev.cause = cause;
        if cause.is_upstream_failure() {
            ev.kind = Kind::UpstreamReport;
            if ev.upstream.is_none()
                && let Some(name) = named
            {
                ev.upstream = Span::of(line, name);
            }
            ev.upstreams = ev.upstream;
        } else {
            ev.upstream = Span::NONE;
            if !severe && is_reload(message) {
                ev.kind = Kind::Recovery(Signal::NginxReload);
            }
        }
        Ok(ev)
    }
}

/// A reload, as the master logs it: `signal 1 (SIGHUP) received from 5678, reconfiguring`,
/// then `reconfiguring`. (`signal process started` is written by every `nginx -s` command,
/// stop and reopen too: not a reload.)
fn is_reload(message: &[u8]) -> bool {
    message.starts_with(b"signal 1 (SIGHUP) received") || message == b"reconfiguring"
}

/// Reads `client: X, server: Y, request: "R", upstream: "U", host: "H"` into the event.
///
/// nginx escapes nothing here, so a client can put `", upstream: "…` into its request line or
/// Referer. Keys are therefore accepted only once each and only in the order nginx writes them.
fn read_context(line: &[u8], mut ctx: &[u8], ev: &mut Event) {
    let mut next_key = 0;
    while !ctx.is_empty() {
        let Some(k) = (next_key..CONTEXT_KEYS.len()).find(|&i| ctx.starts_with(CONTEXT_KEYS[i]))
        else {
            return;
        };
        next_key = k + 1;
        let key = &CONTEXT_KEYS[k];
        let value_and_rest = &ctx[key.len()..];
        let (value, rest) = if let Some(quoted) = value_and_rest.strip_prefix(b"\"") {
            let end = quoted_end(quoted);
            (&quoted[..end], &quoted[(end + 1).min(quoted.len())..])
        } else {
            let end = find!(value_and_rest, b", ").unwrap_or(value_and_rest.len());
            (&value_and_rest[..end], &value_and_rest[end..])
        };
        match *key {
            b"client: " => ev.client = Span::of(line, value),
            b"request: " => ev.request = Span::of(line, value),
            b"upstream: " => {
                let name = upstream::from_url(value);
                if !name.is_empty() {
                    ev.upstream = Span::of(line, name);
                }
            }
            b"host: " => ev.vhost = Span::of(line, value),
            b"server: " if ev.vhost.is_none() && !value.is_empty() => {
                ev.vhost = Span::of(line, value)
            }
            _ => {}
        }
        ctx = rest.strip_prefix(b", ").unwrap_or(b"");
    }
}

/// The end of a quoted context value: the `"` followed by `, key: ` or by the end of the line
/// (request lines are logged raw and may contain quotes).
fn quoted_end(q: &[u8]) -> usize {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'"', &q[from..]) {
        let p = from + i;
        let after = &q[p + 1..];
        if after.iter().all(|b| b.is_ascii_whitespace())
            || after
                .strip_prefix(b", ")
                .is_some_and(|a| CONTEXT_KEYS.iter().any(|k| a.starts_with(k)))
        {
            return p;
        }
        from = p + 1;
    }
    q.len()
}

/// `10.0.1.5:8080` of `connect() to 10.0.1.5:8080 failed (111: …)`.
fn peer_in_connect(message: &[u8]) -> Option<&[u8]> {
    let rest = message.strip_prefix(b"connect() to ")?;
    let end = find!(rest, b" failed")?;
    (end > 0).then(|| &rest[..end])
}

/// The errno in `(111: Connection refused)`, found by number.
fn errno(message: &[u8]) -> Option<u32> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'(', &message[from..]) {
        let p = from + i + 1;
        let digits = message[p..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 && digits < 5 && message[p + digits..].starts_with(b": ") {
            let mut n = 0;
            for &b in &message[p..p + digits] {
                n = n * 10 + (b - b'0') as u32;
            }
            return Some(n);
        }
        from = p;
    }
    None
}

/// The cause an errno names when a connection to an upstream fails (Linux numbering).
fn errno_cause(n: u32, connecting: bool) -> Cause {
    match n {
        // ETIMEDOUT
        110 => Cause::UpstreamTimeout,
        // ECONNRESET, EPIPE, ECONNABORTED once a connection existed
        104 | 32 | 103 if !connecting => Cause::UpstreamReset,
        // ENOENT (unix socket missing), EACCES (socket permissions), EAGAIN (unix socket backlog
        // full), ENETUNREACH, EADDRNOTAVAIL, ECONNREFUSED, EHOSTDOWN, EHOSTUNREACH, and any
        // other failure to open the connection.
        _ if connecting => Cause::UpstreamUnreachable,
        111 | 113 | 101 | 112 => Cause::UpstreamUnreachable,
        _ => Cause::UpstreamReset,
    }
}

/// The cause of an error-log message, and an upstream name the message itself carries (for
/// messages without an `upstream:` context, such as resolver failures).
fn classify(message: &[u8]) -> (Cause, Option<&[u8]>) {
    let phase = find!(message, b" while ").map(|i| &message[i + 7..]);
    // The phase says it, or the message does: "upstream prematurely closed connection while
    // sending to client" (the body was under way: the client got a truncated answer).
    let about_upstream = phase.is_some_and(|p| find!(p, b"upstream").is_some())
        || message.starts_with(b"upstream prematurely closed");

    if let Some(rest) = message.strip_prefix(b"host not found in upstream \"") {
        let end = memchr::memchr(b'"', rest).unwrap_or(rest.len());
        return (Cause::DnsFailure, Some(&rest[..end]));
    }
    // The mail proxy resolving its client's address is not about an upstream.
    if let Some(i) = find!(message, b" could not be resolved (")
        && find!(message, b"resolving client address").is_none()
    {
        return (Cause::DnsFailure, Some(&message[..i]));
    }
    // ingress-nginx's Lua balancer: no endpoint could be chosen, or set.
    if let Some(i) = find!(message, b"error while setting current upstream peer ") {
        let rest = &message[i + 42..];
        let peer = find!(rest, b": ").map(|e| &rest[..e]);
        return (Cause::NoLiveUpstreams, peer.filter(|p| !p.is_empty()));
    }
    if find!(message, b"no peer was returned, balancer").is_some() {
        return (Cause::NoLiveUpstreams, None);
    }
    if let Some(name) = message.strip_prefix(b"no resolver defined to resolve ") {
        let end = memchr::memchr(b',', name).unwrap_or(name.len());
        return (Cause::DnsFailure, Some(&name[..end]));
    }
    // The application's own stderr relayed by nginx (PHP warnings…): chatter, whatever it says.
    if !about_upstream || message.starts_with(b"FastCGI sent in stderr") {
        return (Cause::NotApplicable, None);
    }
    let phase = phase.unwrap_or(b"");
    let connecting = phase.starts_with(b"connecting to upstream");
    let cause = if message.starts_with(b"no live upstreams") {
        Cause::NoLiveUpstreams
    } else if phase.starts_with(b"SSL handshaking to upstream")
        || message.starts_with(b"SSL_do_handshake() failed")
        || message.starts_with(b"upstream SSL certificate")
    {
        Cause::TlsFailure
    } else if message.starts_with(b"upstream timed out") {
        Cause::UpstreamTimeout
    } else if message.starts_with(b"SSL_read() failed")
        || message.starts_with(b"SSL_write() failed")
    {
        // The handshake had succeeded; the TLS stream broke while the response was under way.
        Cause::UpstreamReset
    } else if message.starts_with(b"upstream prematurely closed") {
        // `connection`, or `FastCGI stdout` / `FastCGI request` for FastCGI upstreams.
        Cause::UpstreamReset
    } else if message.starts_with(b"upstream sent ") {
        Cause::UpstreamProtocolError
    } else if message.starts_with(b"connect() ") {
        errno_cause(errno(message).unwrap_or(0), true)
    } else if let Some(n) = errno(message) {
        // recv(), readv(), send(), writev(), … failed while talking to the upstream.
        errno_cause(n, connecting)
    } else {
        Cause::NotApplicable
    };
    (cause, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Zone;

    /// (message, expected cause, expected upstream)
    fn check(message: &str, cause: Cause, up: Option<&str>) {
        let line = format!("2024/05/01 12:00:00 [error] 1234#1234: *5 {message}");
        let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
            .parse(line.as_bytes())
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        let got = ev
            .upstream(line.as_bytes())
            .map(|u| String::from_utf8_lossy(u).into_owned());
        assert_eq!((ev.cause, got.as_deref()), (cause, up), "{line}");
    }

    const CTX: &str = r#", client: 10.0.0.1, server: api.example.com, request: "GET /v1/x HTTP/1.1", upstream: "http://10.0.1.5:8080/v1/x", host: "api.example.com""#;

    #[test]
    fn every_upstream_signature() {
        let up = Some("10.0.1.5:8080");
        use Cause::*;
        let cases = [
            (
                "connect() failed (111: Connection refused) while connecting to upstream",
                UpstreamUnreachable,
            ),
            (
                "connect() failed (113: No route to host) while connecting to upstream",
                UpstreamUnreachable,
            ),
            // grok_exporter's issue #33 (real): the body was being sent to the client.
            (
                "upstream prematurely closed connection while sending to client",
                UpstreamReset,
            ),
            (
                "connect() failed (113: Host is unreachable) while connecting to upstream",
                UpstreamUnreachable,
            ),
            (
                "connect() failed (101: Network unreachable) while connecting to upstream",
                UpstreamUnreachable,
            ),
            (
                "connect() to 10.0.1.5:8080 failed (111: Connection refused) while connecting to upstream",
                UpstreamUnreachable,
            ),
            (
                "connect() failed (110: Operation timed out) while connecting to upstream",
                UpstreamTimeout,
            ),
            (
                "upstream timed out (110: Connection timed out) while connecting to upstream",
                UpstreamTimeout,
            ),
            (
                "upstream timed out (110: Connection timed out) while reading response header from upstream",
                UpstreamTimeout,
            ),
            (
                "upstream prematurely closed connection while reading response header from upstream",
                UpstreamReset,
            ),
            (
                "recv() failed (104: Connection reset by peer) while reading response header from upstream",
                UpstreamReset,
            ),
            (
                "writev() failed (32: Broken pipe) while sending request to upstream",
                UpstreamReset,
            ),
            (
                "recv() failed (111: Connection refused) while reading response header from upstream",
                UpstreamUnreachable,
            ),
            (
                "upstream sent invalid header while reading response header from upstream",
                UpstreamProtocolError,
            ),
            (
                r#"upstream sent invalid header: "X-Bad\x00..." while reading response header from upstream"#,
                UpstreamProtocolError,
            ),
            (
                "upstream sent too big header while reading response header from upstream",
                UpstreamProtocolError,
            ),
            (
                "upstream sent no valid HTTP/1.0 header while reading response header from upstream",
                UpstreamProtocolError,
            ),
            (
                "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream",
                TlsFailure,
            ),
            (
                "upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream",
                TlsFailure,
            ),
            (
                "peer closed connection in SSL handshake (104: Connection reset by peer) while SSL handshaking to upstream",
                TlsFailure,
            ),
        ];
        for (message, cause) in cases {
            check(&format!("{message}{CTX}"), cause, up);
        }
    }

    #[test]
    fn pools_sockets_and_names() {
        check(
            r#"no live upstreams while connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://backend/", host: "x""#,
            Cause::NoLiveUpstreams,
            Some("backend"),
        );
        check(
            r#"connect() to unix:/run/app.sock failed (2: No such file or directory) while connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://unix:/run/app.sock:/", host: "x""#,
            Cause::UpstreamUnreachable,
            Some("unix:/run/app.sock"),
        );
        check(
            r#"connect() to [::1]:8080 failed (111: Connection refused) while connecting to upstream, client: ::1, server: _, request: "GET / HTTP/1.1", upstream: "http://[::1]:8080/", host: "x""#,
            Cause::UpstreamUnreachable,
            Some("[::1]:8080"),
        );
        check(
            r#"backend.internal could not be resolved (3: Host not found), client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", host: "x""#,
            Cause::DnsFailure,
            Some("backend.internal"),
        );
        check(
            r#"host not found in upstream "backend.internal:8080" in /etc/nginx/conf.d/app.conf:3"#,
            Cause::DnsFailure,
            Some("backend.internal:8080"),
        );
    }

    #[test]
    fn near_misses_are_not_upstream_failures() {
        // The same message at [warn] is not a failure.
        let line = "2024/05/01 12:00:00 [warn] 1#1: *5 upstream sent more data than specified in \"Content-Length\" header while reading upstream, client: 10.0.0.1, server: _";
        let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
            .parse(line.as_bytes())
            .unwrap();
        assert_eq!(ev.cause, Cause::NotApplicable);
        for message in [
            r#"open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 10.0.0.1, server: _, request: "GET /favicon.ico HTTP/1.1", host: "x""#,
            r#"recv() failed (104: Connection reset by peer) while reading client request line, client: 10.0.0.1, server: 0.0.0.0:80"#,
            "signal process started",
            r#"an upstream response is buffered to a temporary file /var/cache/nginx/1/00/0000000001 while reading upstream, client: 10.0.0.1"#,
            r#"client intended to send too large body: 10485761 bytes, client: 10.0.0.1, server: _, request: "POST /upload HTTP/1.1", host: "x""#,
        ] {
            check(message, Cause::NotApplicable, None);
        }
    }

    #[test]
    fn a_reload_is_a_recovery_signal_in_every_wording() {
        let reload = Kind::Recovery(Signal::NginxReload);
        for (message, kind) in [
            (
                "signal 1 (SIGHUP) received from 4321, reconfiguring",
                reload,
            ),
            ("signal 1 (SIGHUP) received, reconfiguring", reload),
            ("reconfiguring", reload),
            ("signal process started", Kind::Other),
            ("signal 15 (SIGTERM) received from 1, exiting", Kind::Other),
            ("signal 17 (SIGCHLD) received from 77", Kind::Other),
        ] {
            let line = format!("2024/05/01 12:00:00 [notice] 1#1: {message}");
            let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
                .parse(line.as_bytes())
                .unwrap();
            assert_eq!(ev.kind, kind, "{message}");
            assert_eq!(ev.cause, Cause::NotApplicable);
        }
    }

    #[test]
    fn injected_context_does_not_change_the_upstream() {
        let line = r#"2024/05/01 12:00:00 [error] 1#1: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://10.0.1.5:8080/", host: "x", referrer: "http://a/", upstream: "http://evil:1/""#;
        let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
            .parse(line.as_bytes())
            .unwrap();
        assert_eq!(ev.upstream(line.as_bytes()), Some(&b"10.0.1.5:8080"[..]));
        // A line cut at nginx's length limit has no context; the peer comes from the message.
        let line = "2024/05/01 12:00:00 [crit] 1#1: *5 connect() to unix:/run/app.sock failed (2: No such file or directory) while connecting to upstream";
        let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
            .parse(line.as_bytes())
            .unwrap();
        assert_eq!(
            ev.upstream(line.as_bytes()),
            Some(&b"unix:/run/app.sock"[..])
        );
        assert_eq!(ev.cause, Cause::UpstreamUnreachable);
    }

    #[test]
    fn context_is_read() {
        let line = format!(
            "2024/05/01 12:00:00 [crit] 7#7: *9 connect() failed (111: Connection refused) while connecting to upstream{CTX}"
        );
        let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
            .parse(line.as_bytes())
            .unwrap();
        let b = line.as_bytes();
        assert_eq!(ev.client(b), Some(&b"10.0.0.1"[..]));
        assert_eq!(ev.request(b), Some(&b"GET /v1/x HTTP/1.1"[..]));
        assert_eq!(ev.vhost(b), Some(&b"api.example.com"[..]));
        assert_eq!(ev.kind, Kind::UpstreamReport);
        assert_eq!(ev.status, None);
        assert_eq!(ev.time.unwrap().to_rfc3339(), "2024-05-01T12:00:00+00:00");
        let mut p = ErrorParser::new(ZoneClock::new(Zone::Utc));
        assert!(p.parse(b"2024/05/01 12:00:00 error").is_err());
        assert!(p.parse(b"hello").is_err());
    }

    /// Classes of lines found misread on real logs (issue 15).
    #[test]
    fn stream_module_mail_proxy_and_ingress_nginx_lines() {
        let parse = |line: &str| {
            let ev = ErrorParser::new(ZoneClock::new(Zone::Utc))
                .parse(line.as_bytes())
                .unwrap();
            let up = ev
                .upstream(line.as_bytes())
                .map(|u| String::from_utf8_lossy(u).into_owned());
            (ev.cause, up)
        };
        // The stream module writes its byte counts after the upstream: not part of it.
        assert_eq!(
            parse(
                r#"2024/05/01 12:00:00 [error] 31#31: *7 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: 0.0.0.0:3306, upstream: "10.0.1.5:3306", bytes from/to client:0/0, bytes from/to upstream:0/0"#
            ),
            (Cause::UpstreamUnreachable, Some("10.0.1.5:3306".into()))
        );
        // The mail proxy resolving its client's address is not an upstream's DNS failure.
        assert_eq!(
            parse("2024/05/01 12:00:00 [error] 31#31: *9 mail.example.com could not be resolved (3: Host not found) while in resolving client address, client: 10.0.0.1, server: 0.0.0.0:25").0,
            Cause::NotApplicable
        );
        // ingress-nginx's Lua balancer (the message of its balancer.lua) and its placeholder
        // peer 0.0.0.1 for a service without endpoints.
        assert_eq!(
            parse(
                r#"2024/05/01 12:00:00 [error] 31#31: *5 [lua] balancer.lua:348: balance(): error while setting current upstream peer 10.244.0.5:8080: no host allowed while connecting to upstream, client: 10.0.0.1, server: a.example, request: "GET / HTTP/1.1", host: "a.example""#
            ),
            (Cause::NoLiveUpstreams, Some("10.244.0.5:8080".into()))
        );
        assert_eq!(
            parse(
                r#"2024/05/01 12:00:00 [error] 31#31: *6 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: a.example, request: "GET / HTTP/1.1", upstream: "http://0.0.0.1:80/", host: "a.example""#
            ),
            (Cause::NoLiveUpstreams, Some("0.0.0.1:80".into()))
        );
    }
}

//! The error strings of Go's `net` and `net/http` packages, as proxies written in Go (Caddy,
//! Traefik) log them when a request to an upstream fails: `dial tcp 10.0.0.5:8080: connect:
//! connection refused`, `dial tcp: lookup app on 127.0.0.53:53: no such host`, `read tcp
//! 10.0.0.1:5000->10.0.0.5:8080: read: connection reset by peer`, `net/http: timeout awaiting
//! response headers`. Go writes these texts itself (its own syscall table), so they read the same
//! on every system.

use crate::engine::event::Cause;
use memchr::memmem;

/// The cause a Go error names, and the upstream it names (`host:port`, a unix socket's path, or
/// the name that did not resolve), if any. `None` when the text names no upstream failure.
pub fn cause(msg: &[u8]) -> Option<(Cause, Option<&[u8]>)> {
    let has = |s: &[u8]| memmem::find(msg, s).is_some();
    // `dial tcp: lookup NAME[ on RESOLVER]: no such host` — checked first: a lookup that timed
    // out is a DNS failure, not an upstream timeout.
    if let Some(i) = find!(msg, b"lookup ") {
        let name = &msg[i + 7..];
        let end = name
            .iter()
            .position(|&b| b == b' ' || b == b':')
            .unwrap_or(name.len());
        if end > 0 && (has(b"dial ") || has(b"no such host")) {
            return Some((Cause::DnsFailure, Some(&name[..end])));
        }
    }
    let dialed = dial_target(msg);
    if dialed.is_some() {
        let cause = if has(b"i/o timeout") || has(b"connection timed out") {
            Cause::UpstreamTimeout
        } else if has(b"tls:") || has(b"x509:") {
            Cause::TlsFailure
        } else {
            // refused, no route to host, network is unreachable, a missing socket, permission
            // denied, an address that cannot be assigned: nothing took the connection.
            Cause::UpstreamUnreachable
        };
        return Some((cause, dialed));
    }
    if has(b"no upstreams available") || has(b"no available server") {
        return Some((Cause::NoLiveUpstreams, None));
    }
    if has(b"tls: ") || has(b"x509: ") || has(b"TLS handshake timeout") {
        return Some((Cause::TlsFailure, None));
    }
    if has(b"timeout awaiting response headers") || has(b"context deadline exceeded") {
        return Some((Cause::UpstreamTimeout, None));
    }
    if has(b"malformed HTTP") {
        return Some((Cause::UpstreamProtocolError, None));
    }
    let peer = read_peer(msg);
    if has(b"connection reset by peer")
        || has(b"broken pipe")
        || has(b"server closed idle connection")
        || msg == b"EOF"
        || msg == b"unexpected EOF"
        || msg.ends_with(b": EOF")
        || msg.ends_with(b": unexpected EOF")
    {
        return Some((Cause::UpstreamReset, peer));
    }
    if has(b"i/o timeout") {
        return Some((Cause::UpstreamTimeout, peer));
    }
    None
}

/// Makes `ev` the report of a request that failed with this Go error: its cause (`other_5xx`
/// when the text names none) and the upstream it names.
pub fn report(line: &[u8], err: &[u8], ev: &mut crate::engine::event::Event) {
    ev.kind = crate::engine::event::Kind::UpstreamReport;
    match cause(err) {
        Some((c, upstream)) => {
            ev.cause = c;
            if let Some(u) = upstream {
                ev.upstream = crate::engine::event::Span::of(line, u);
            }
        }
        None => ev.cause = Cause::Other5xx,
    }
}

/// The address of `dial tcp ADDR: …` / `dial unix PATH: …`.
fn dial_target(msg: &[u8]) -> Option<&[u8]> {
    let i = find!(msg, b"dial ")?;
    let after = &msg[i + 5..];
    let sp = memchr::memchr(b' ', after)?;
    let network = &after[..sp];
    if !matches!(network, b"tcp" | b"tcp4" | b"tcp6" | b"unix" | b"udp") {
        return None;
    }
    let target = &after[sp + 1..];
    let end = find!(target, b": ")?;
    (end > 0).then(|| &target[..end])
}

/// The far end of `read tcp LOCAL->REMOTE: …` / `write tcp …`.
fn read_peer(msg: &[u8]) -> Option<&[u8]> {
    let i = find!(msg, b"->")?;
    let after = &msg[i + 2..];
    let end = find!(after, b": ").unwrap_or(after.len());
    (end > 0).then(|| &after[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(msg: &str) -> Option<(Cause, String)> {
        cause(msg.as_bytes())
            .map(|(c, u)| (c, String::from_utf8_lossy(u.unwrap_or(b"")).into_owned()))
    }

    #[test]
    fn go_errors_name_their_cause_and_upstream() {
        let cases = [
            (
                "dial tcp 127.0.0.1:18081: connect: connection refused",
                Cause::UpstreamUnreachable,
                "127.0.0.1:18081",
            ),
            (
                "dial tcp 10.0.0.5:80: connect: no route to host",
                Cause::UpstreamUnreachable,
                "10.0.0.5:80",
            ),
            (
                "dial unix /run/app.sock: connect: no such file or directory",
                Cause::UpstreamUnreachable,
                "/run/app.sock",
            ),
            (
                "dial tcp [2001:db8::5]:443: i/o timeout",
                Cause::UpstreamTimeout,
                "[2001:db8::5]:443",
            ),
            (
                "dial tcp: lookup no-such-host.invalid on 10.255.255.53:53: no such host",
                Cause::DnsFailure,
                "no-such-host.invalid",
            ),
            (
                "dial tcp: lookup app: i/o timeout",
                Cause::DnsFailure,
                "app",
            ),
            (
                "read tcp 127.0.0.1:37564->127.0.0.1:18082: read: connection reset by peer",
                Cause::UpstreamReset,
                "127.0.0.1:18082",
            ),
            (
                "net/http: timeout awaiting response headers",
                Cause::UpstreamTimeout,
                "",
            ),
            ("no upstreams available", Cause::NoLiveUpstreams, ""),
            (
                "tls: failed to verify certificate: x509: certificate signed by unknown authority",
                Cause::TlsFailure,
                "",
            ),
            ("EOF", Cause::UpstreamReset, ""),
            ("net/http: TLS handshake timeout", Cause::TlsFailure, ""),
            (
                "net/http: HTTP/1.x transport connection broken: malformed HTTP response \"garbage\"",
                Cause::UpstreamProtocolError,
                "",
            ),
        ];
        for (msg, c, u) in cases {
            assert_eq!(read(msg), Some((c, u.to_string())), "{msg}");
        }
        for msg in [
            "context canceled",
            "handled request",
            "file does not exist",
            "lookup table",
        ] {
            assert_eq!(read(msg), None, "{msg}");
        }
    }
}

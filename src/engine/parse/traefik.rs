//! Traefik (v1 to v3): its access log, in the Common Log Format it writes by default or in JSON,
//! and its own log, whose debug lines name the cause of each failed request.
//!
//! ```text
//! 192.168.33.1 - - [02/Oct/2017:20:22:07 +0000] "GET /ui/x.png HTTP/1.1" 304 0 "http://example.com/login" "Mozilla/5.0" 262 "Host-host-1" "http://172.19.0.3:5601" 2ms
//! {"ClientHost":"10.0.0.7","DownstreamStatus":502,"OriginStatus":0,"RequestMethod":"GET","RequestPath":"/api","RouterName":"api@docker","ServiceAddr":"172.18.0.5:8080","StartUTC":"2024-05-01T12:00:00.123456789Z",…}
//! time="2024-05-01T12:00:00Z" level=debug msg="'502 Bad Gateway' caused by: dial tcp 172.18.0.5:8080: connect: connection refused"
//! 2024-05-01T12:00:00Z DBG github.com/traefik/traefik/v3/pkg/proxy/httputil/proxy.go:113 > 502 Bad Gateway error="dial tcp 172.18.0.5:8080: connect: connection refused"
//! ```
//!
//! An access line is a request; its upstream is the service's address (`ServiceAddr`, the host
//! and port of `ServiceURL`, v1's `BackendAddr`). Traefik logs the cause of a 502 or 504 only
//! at debug level (its default level is ERROR), in Go's words (`dial tcp …: connect: connection
//! refused`); such a line names the upstream but not the client, and is joined with the access
//! line of the same upstream, status and time (an access line is stamped with the request's
//! start, so a slow failure's debug line comes up to its timeout later). zerolog's console
//! lines must be written without colours (`log.noColor`, or a `log.filePath`): coloured ones
//! are counted as unparsed. Without it a 5xx has no cause of its own (`other_5xx`):
//! Traefik writes the same line for a refused connection, a reset and an answer that was 502.

use super::go_net;
use super::json::{self, Value};
use crate::engine::event::{Cause, Event, Format, Kind, Span, Unparsed};
use crate::engine::time;
use memchr::memmem;

/// Parser for Traefik's access log and its own log.
#[derive(Clone, Debug, Default)]
pub struct TraefikParser {
    /// Refuses access lines without Traefik's tail (the router, the service URL, the
    /// duration): recognising a file, where the generic CLF is nginx's `combined`.
    strict: bool,
}

impl TraefikParser {
    /// For a log named as Traefik's: its generic CLF (`accessLog.format = "genericCLF"`, no
    /// tail) is read too.
    pub fn new() -> TraefikParser {
        TraefikParser { strict: false }
    }

    /// For recognising a file's format.
    pub fn strict() -> TraefikParser {
        TraefikParser { strict: true }
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        match line.first() {
            Some(b'{') => parse_json(line),
            Some(b't') if line.starts_with(b"time=\"") => parse_logfmt(line),
            Some(c) if c.is_ascii_digit() && line.get(4) == Some(&b'-') => parse_console(line),
            Some(_) => parse_clf(line, self.strict),
            None => Err(Unparsed::Empty),
        }
    }
}

/// `CLIENT - USER [TIME] "METHOD PATH PROTO" STATUS SIZE "REFERER" "AGENT" COUNT "ROUTER"
/// "URL" DURATIONms` — the tail read from the end, leniently (quotes inside values are not
/// escaped).
fn parse_clf(line: &[u8], strict: bool) -> Result<Event, Unparsed> {
    let sp = memchr::memchr(b' ', line).ok_or(Unparsed::Shape)?;
    let client = &line[..sp];
    let open = memchr::memchr(b'[', line).ok_or(Unparsed::Shape)?;
    let close = open + memchr::memchr(b']', &line[open..]).ok_or(Unparsed::Shape)?;
    let time = time::parse_clf(&line[open + 1..close]).ok_or(Unparsed::Time)?;
    let rest = line[close + 1..]
        .strip_prefix(b" \"")
        .ok_or(Unparsed::Shape)?;
    let req_end = memchr::memchr(b'"', rest).ok_or(Unparsed::Shape)?;
    let request = &rest[..req_end];
    let rest = rest[req_end + 1..]
        .strip_prefix(b" ")
        .ok_or(Unparsed::Shape)?;
    let code_end = memchr::memchr(b' ', rest).ok_or(Unparsed::Shape)?;
    let status = super::status_digits(&rest[..code_end]).ok_or(Unparsed::Status)?;
    // The tail: ` "URL" 12ms`; the generic CLF has none.
    let before = match line.strip_suffix(b"ms") {
        Some(ms) => {
            let digits = ms.iter().rev().take_while(|b| b.is_ascii_digit()).count();
            (digits > 0 && ms.len() > digits && ms[ms.len() - digits - 1] == b' ')
                .then(|| &ms[..ms.len() - digits - 1])
        }
        None => None,
    };
    if before.is_none() {
        // `… STATUS SIZE "REFERER" "AGENT"`.
        let size = rest[code_end + 1..]
            .split(|&b| b == b' ')
            .next()
            .unwrap_or(b"");
        if strict || !(size == b"-" || (!size.is_empty() && size.iter().all(u8::is_ascii_digit))) {
            return Err(Unparsed::Shape);
        }
    }
    let mut ev = Event {
        format: Some(Format::Traefik),
        kind: Kind::Request,
        time: Some(time),
        status: Some(status),
        client: Span::of(line, client),
        request: Span::of(line, request),
        names_upstream: true,
        ..Event::default()
    };
    ev.names_upstream = before.is_some();
    if let Some(url) = before.and_then(|b| b.strip_suffix(b"\""))
        && let Some(q) = memchr::memrchr(b'"', url)
    {
        ev.upstream = host_port(line, &url[q + 1..]);
        ev.upstreams = ev.upstream;
    }
    ev.cause = if status < 500 {
        Cause::Ok
    } else {
        Cause::Other5xx
    };
    Ok(ev)
}

/// A JSON line: an access-log entry (`DownstreamStatus`), or Traefik's own log (zerolog:
/// `message` and `error`; logrus: `msg`).
fn parse_json(line: &[u8]) -> Result<Event, Unparsed> {
    let (mut status, mut start, mut addr, mut url) =
        (Span::NONE, Span::NONE, Span::NONE, Span::NONE);
    let (mut client, mut path, mut host) = (Span::NONE, Span::NONE, Span::NONE);
    let (mut level, mut at, mut message, mut error) =
        (Span::NONE, Span::NONE, Span::NONE, Span::NONE);
    let mut access = false;
    json::walk(line, 0, |key, v| {
        let text = v.text();
        match key {
            b"DownstreamStatus" => {
                access = true;
                status = text;
            }
            b"StartUTC" | b"StartLocal" if start.is_none() => start = text,
            b"ServiceAddr" | b"BackendAddr" => addr = text,
            b"ServiceURL" | b"BackendURL" => {
                if let Value::Str(s) = v {
                    url = s;
                }
            }
            b"ClientHost" => client = text,
            b"RequestPath" => path = text,
            b"RequestHost" => host = text,
            b"level" => level = text,
            b"time" => at = text,
            b"message" | b"msg" => message = text,
            b"error" => error = text,
            _ => {}
        }
    })?;
    if access {
        let time = match start.get(line).or(at.get(line)) {
            Some(t) => Some(time::parse_rfc3339(t).ok_or(Unparsed::Time)?),
            None => None,
        };
        let status =
            super::status_digits(status.get(line).unwrap_or(b"")).ok_or(Unparsed::Status)?;
        let mut ev = Event {
            format: Some(Format::Traefik),
            kind: Kind::Request,
            time,
            status: Some(status),
            client,
            request: path,
            vhost: host,
            names_upstream: true,
            ..Event::default()
        };
        ev.upstream = match addr.get(line) {
            Some(a) if !a.is_empty() && a != b"-" => addr,
            _ => url.get(line).map_or(Span::NONE, |u| host_port(line, u)),
        };
        ev.upstreams = ev.upstream;
        ev.cause = if status < 500 {
            Cause::Ok
        } else {
            Cause::Other5xx
        };
        return Ok(ev);
    }
    // Traefik's own log: zerolog and logrus both write `level` and `time`.
    let (Some(_), Some(t)) = (level.get(line), at.get(line)) else {
        return Err(Unparsed::Shape);
    };
    if message.is_none() {
        return Err(Unparsed::Shape);
    }
    let time = time::parse_rfc3339(t).ok_or(Unparsed::Time)?;
    let mut ev = Event {
        format: Some(Format::Traefik),
        time: Some(time),
        ..Event::default()
    };
    report(
        line,
        message.get(line).unwrap_or(b""),
        error.get(line),
        &mut ev,
    );
    Ok(ev)
}

/// logrus's text: `time="…" level=debug msg="'502 Bad Gateway' caused by: …"`.
fn parse_logfmt(line: &[u8]) -> Result<Event, Unparsed> {
    let t = quoted_value(line, b"time=\"").ok_or(Unparsed::Shape)?;
    if find!(line, b" level=").is_none() {
        return Err(Unparsed::Shape);
    }
    let time = time::parse_rfc3339(t).ok_or(Unparsed::Time)?;
    let msg = quoted_value(line, b" msg=\"").unwrap_or(b"");
    let mut ev = Event {
        format: Some(Format::Traefik),
        time: Some(time),
        ..Event::default()
    };
    report(line, msg, None, &mut ev);
    Ok(ev)
}

/// zerolog's console: `2024-05-01T12:00:00Z DBG file.go:113 > 502 Bad Gateway error="…"`.
fn parse_console(line: &[u8]) -> Result<Event, Unparsed> {
    let sp = memchr::memchr(b' ', line).ok_or(Unparsed::Shape)?;
    let time = time::parse_rfc3339(&line[..sp]).ok_or(Unparsed::Time)?;
    let rest = &line[sp + 1..];
    let level = rest.get(..3).ok_or(Unparsed::Shape)?;
    if !matches!(
        level,
        b"TRC" | b"DBG" | b"INF" | b"WRN" | b"ERR" | b"FTL" | b"PNC"
    ) {
        return Err(Unparsed::Shape);
    }
    let msg = match find!(rest, b" > ") {
        Some(i) => &rest[i + 3..],
        None => &rest[3..],
    };
    // zerolog quotes a value only when it holds a space or a quote: `error=EOF`.
    let error = quoted_value(msg, b"error=\"").or_else(|| {
        let i = find!(msg, b" error=")? + 7;
        let v = &msg[i..];
        Some(&v[..memchr::memchr(b' ', v).unwrap_or(v.len())])
    });
    let mut ev = Event {
        format: Some(Format::Traefik),
        time: Some(time),
        ..Event::default()
    };
    report(line, msg, error, &mut ev);
    Ok(ev)
}

/// Makes a log line that reports a failed request (`502 Bad Gateway` with its error) a report:
/// the status from the message, the cause and the upstream from the Go error.
fn report(line: &[u8], msg: &[u8], error: Option<&[u8]>, ev: &mut Event) {
    let msg_status = msg
        .strip_prefix(b"'")
        .unwrap_or(msg)
        .get(..3)
        .and_then(super::status_digits)
        .filter(|s| (500..600).contains(s) && msg.len() > 4);
    let Some(status) = msg_status else {
        return;
    };
    // v2 and early v3: `'502 Bad Gateway' caused by: ERROR`; v3: the error in its own field.
    let err = error.or_else(|| find!(msg, b"caused by: ").map(|i| &msg[i + 11..]));
    let Some(err) = err else { return };
    ev.status = Some(status);
    go_net::report(line, err, ev);
}

/// The value of `key"…"` up to its closing quote (`\"` inside is kept).
fn quoted_value<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let i = memmem::find(line, key)? + key.len();
    let mut j = i;
    while j < line.len() {
        match line[j] {
            b'\\' => j += 2,
            b'"' => return Some(&line[i..j]),
            _ => j += 1,
        }
    }
    None
}

/// `http://172.19.0.3:5601/` → `172.19.0.3:5601`.
fn host_port(line: &[u8], url: &[u8]) -> Span {
    let rest = match find!(url, b"://") {
        Some(i) => &url[i + 3..],
        None => url,
    };
    let end = memchr::memchr(b'/', rest).unwrap_or(rest.len());
    let hp = &rest[..end];
    if hp.is_empty() || hp == b"-" || !hp.iter().all(|b| b.is_ascii_graphic() && *b != b'"') {
        return Span::NONE;
    }
    Span::of(line, hp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> (Kind, Option<u16>, Cause, String) {
        let b = line.as_bytes();
        let ev = TraefikParser::new()
            .parse(b)
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        let up = String::from_utf8_lossy(ev.upstream(b).unwrap_or(b"")).into_owned();
        (ev.kind, ev.status, ev.cause, up)
    }

    #[test]
    fn common_log_format_lines() {
        // elastic/beats filebeat/module/traefik/access/test/test.log (Apache-2.0).
        let t1 = r#"192.168.33.1 - - [02/Oct/2017:20:22:07 +0000] "GET /ui/favicons/favicon-16x16.png HTTP/1.1" 304 0 "http://example.com/login" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/61.0.3163.100 Safari/537.36" 262 "Host-host-1" "http://172.19.0.3:5601" 2ms"#;
        assert_eq!(
            read(t1),
            (
                Kind::Request,
                Some(304),
                Cause::Ok,
                "172.19.0.3:5601".into()
            )
        );
        // The same with an unbalanced quote in the router's name.
        let t2 = r#"85.181.35.98 - - [02/Oct/2017:20:22:08 +0000] "GET /ui/favicons/favicon.ico HTTP/1.1" 304 0 "http://example.com/login" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/61.0.3163.100 Safari/537.36" 271 "Host-host1 "http://172.19.0.3:5601" 3ms"#;
        assert_eq!(read(t2).3, "172.19.0.3:5601");
        // DataDog's sample, whose last quote is U+201C: no upstream, still a request.
        let t3 = "10.32.0.1 - - [07/Dec/2018:06:07:03 +0000] \"GET / HTTP/1.1\" 302 5 \"-\" \"Mozilla/5.0\" 132170 \"entrypoint redirect for http\" \"/\u{201c} 0ms";
        assert_eq!(read(t3), (Kind::Request, Some(302), Cause::Ok, "".into()));
        let failed = r#"10.0.0.7 - - [01/May/2024:12:00:00 +0000] "GET /api HTTP/1.1" 502 11 "-" "curl/8.5.0" 17 "api@docker" "http://172.18.0.5:8080" 0ms"#;
        assert_eq!(
            read(failed),
            (
                Kind::Request,
                Some(502),
                Cause::Other5xx,
                "172.18.0.5:8080".into()
            )
        );
        // Traefik's generic CLF is nginx's combined: read when the log is named as Traefik's,
        // never taken for Traefik's when recognising a file.
        let generic = r#"203.0.113.7 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.0""#;
        assert_eq!(
            read(generic),
            (Kind::Request, Some(502), Cause::Other5xx, "".into())
        );
        assert!(TraefikParser::strict().parse(generic.as_bytes()).is_err());
        assert!(TraefikParser::new().parse(b"not a log line").is_err());
    }

    #[test]
    fn json_access_lines() {
        let line = r#"{"ClientAddr":"10.0.0.7:51544","ClientHost":"10.0.0.7","DownstreamContentSize":11,"DownstreamStatus":502,"Duration":1203451,"OriginStatus":0,"RequestHost":"shop.example.com","RequestMethod":"GET","RequestPath":"/api/orders","RetryAttempts":0,"RouterName":"api@docker","ServiceAddr":"172.18.0.5:8080","ServiceName":"api@docker","ServiceURL":"http://172.18.0.5:8080","StartUTC":"2024-05-01T12:00:00.123456789Z","level":"info","msg":"","time":"2024-05-01T12:00:00Z"}"#;
        assert_eq!(
            read(line),
            (
                Kind::Request,
                Some(502),
                Cause::Other5xx,
                "172.18.0.5:8080".into()
            )
        );
        let b = line.as_bytes();
        let ev = TraefikParser::new().parse(b).unwrap();
        assert_eq!(ev.client(b), Some(&b"10.0.0.7"[..]));
        assert_eq!(ev.path(b), Some(&b"/api/orders"[..]));
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2024-05-01T12:00:00.123+00:00"
        );
    }

    #[test]
    fn debug_lines_of_every_generation_name_the_cause() {
        let refused = "dial tcp 172.18.0.5:8080: connect: connection refused";
        for line in [
            format!(
                r#"time="2024-05-01T12:00:00Z" level=debug msg="'502 Bad Gateway' caused by: {refused}""#
            ),
            format!(
                r#"{{"level":"debug","error":"{refused}","time":"2024-05-01T12:00:00Z","message":"502 Bad Gateway"}}"#
            ),
            format!(
                r#"{{"level":"debug","msg":"'502 Bad Gateway' caused by: {refused}","time":"2024-05-01T12:00:00Z"}}"#
            ),
            format!(
                r#"2024-05-01T12:00:00Z DBG github.com/traefik/traefik/v3/pkg/proxy/httputil/proxy.go:113 > 502 Bad Gateway error="{refused}""#
            ),
        ] {
            assert_eq!(
                read(&line),
                (
                    Kind::UpstreamReport,
                    Some(502),
                    Cause::UpstreamUnreachable,
                    "172.18.0.5:8080".into()
                ),
                "{line}"
            );
        }
        let eof = r#"2024-05-01T12:00:00Z DBG github.com/traefik/traefik/v3/pkg/proxy/httputil/proxy.go:113 > 502 Bad Gateway error=EOF"#;
        assert_eq!(
            read(eof),
            (
                Kind::UpstreamReport,
                Some(502),
                Cause::UpstreamReset,
                "".into()
            )
        );
        let timeout = r#"2024-05-01T12:00:00Z DBG github.com/traefik/traefik/v3/pkg/proxy/httputil/proxy.go:113 > 504 Gateway Timeout error="net/http: timeout awaiting response headers""#;
        assert_eq!(read(timeout).2, Cause::UpstreamTimeout);
        // beats' logrus info line (Apache-2.0): read, explains nothing.
        let info = r#"time="2019-04-05T11:57:47Z" level=info msg="Skipping same configuration for provider consul_catalog""#;
        assert_eq!(
            read(info),
            (Kind::Other, None, Cause::NotApplicable, "".into())
        );
        let canceled = r#"2024-05-01T12:00:00Z DBG x.go:1 > 499 Client Closed Request error="context canceled""#;
        assert_eq!(read(canceled).0, Kind::Other);
    }
}

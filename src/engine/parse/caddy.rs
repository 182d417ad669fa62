//! Caddy v2's JSON log (zap): its access entries and its `reverse_proxy` errors, which Caddy
//! writes to the same output unless told otherwise.
//!
//! ```text
//! {"level":"error","ts":1796545415.8897493,"logger":"http.log.error.log0","msg":"dial tcp 127.0.0.1:18081: connect: connection refused","request":{"remote_ip":"127.0.0.1","remote_port":"47462","proto":"HTTP/1.1","method":"GET","host":"127.0.0.1:18090","uri":"/down",…},"duration":0.000346736,"status":502,"err_id":"w4jurh383",…}
//! {"level":"error","ts":1796545415.8897855,"logger":"http.log.access.log0","msg":"handled request","request":{…},"user_id":"","duration":0.000346736,"size":0,"status":502,…}
//! ```
//!
//! An access entry (`http.log.access…`, "handled request") is one request; it names no upstream
//! unless the site appends one (`log_append upstream {http.reverse_proxy.upstream.hostport}`,
//! read from `upstream`, `upstream_host`, `upstream_hostport` or `upstream_addr`). An error entry
//! (`http.log.error…`) of a 5xx is a report of the failed request, with its cause in the Go
//! error text; the two are joined on the client and the URI. Every other entry (start-up, TLS,
//! admin) is read and explains nothing. Times are `ts`: seconds since the epoch (the default) or
//! an ISO 8601 text (`time_format iso8601` / `rfc3339`).

use super::go_net;
use super::json::{self, Value};
use crate::engine::event::{Cause, Event, Format, Kind, Span, Timestamp, Unparsed};
use crate::engine::time;

/// Parser for Caddy's JSON log.
#[derive(Clone, Debug, Default)]
pub struct CaddyParser;

#[derive(Default)]
struct Fields {
    level: Span,
    ts: Span,
    ts_text: bool,
    logger: Span,
    msg: Span,
    status: Span,
    upstream: Span,
    client: Span,
    uri: Span,
    host: Span,
}

impl CaddyParser {
    pub fn new() -> CaddyParser {
        CaddyParser
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        if line.first() != Some(&b'{') {
            return Err(Unparsed::NotJson);
        }
        let mut f = Fields::default();
        let mut request = None;
        json::walk(line, 0, |key, v| match key {
            b"level" => f.level = v.text(),
            b"ts" => {
                f.ts = v.text();
                f.ts_text = matches!(v, Value::Str(_));
            }
            b"logger" => f.logger = v.text(),
            b"msg" => f.msg = v.text(),
            b"status" => f.status = v.text(),
            b"upstream" | b"upstream_host" | b"upstream_hostport" | b"upstream_addr" => {
                f.upstream = v.text()
            }
            b"request" => {
                if let Value::Object(at) = v {
                    request = Some(at);
                }
            }
            _ => {}
        })?;
        // zap's entries always have these three; other JSON logs (nginx, Traefik, docker) do
        // not have them all.
        if f.level.is_none() || f.ts.is_none() || f.msg.is_none() {
            return Err(Unparsed::Shape);
        }
        if let Some(at) = request {
            json::walk(line, at, |key, v| match key {
                b"remote_ip" => f.client = v.text(),
                b"uri" => f.uri = v.text(),
                b"host" => f.host = v.text(),
                _ => {}
            })?;
        }
        let time = read_time(f.ts.get(line).unwrap_or(b""), f.ts_text).ok_or(Unparsed::Time)?;
        let mut ev = Event {
            format: Some(Format::Caddy),
            kind: Kind::Other,
            time: Some(time),
            ..Event::default()
        };
        let logger = f.logger.get(line).unwrap_or(b"");
        let is_access = logger.starts_with(b"http.log.access");
        let is_error = logger.starts_with(b"http.log.error");
        if !(is_access || is_error) || request.is_none() {
            return Ok(ev);
        }
        let status = match f.status.get(line) {
            Some(s) => Some(super::status_digits(s).ok_or(Unparsed::Status)?),
            None => None,
        };
        ev.status = status;
        ev.client = f.client;
        ev.request = f.uri;
        ev.vhost = f.host;
        let failed = status.is_some_and(|s| s >= 500);
        if is_access {
            ev.kind = Kind::Request;
            ev.cause = if failed { Cause::Other5xx } else { Cause::Ok };
            if f.upstream.get(line).is_some_and(|u| u != b"-") {
                ev.upstream = f.upstream;
                ev.upstreams = f.upstream;
                ev.names_upstream = true;
            }
            return Ok(ev);
        }
        // An error entry: the report of one failed request.
        if !failed {
            ev.cause = Cause::Ok;
            return Ok(ev);
        }
        go_net::report(line, f.msg.get(line).unwrap_or(b""), &mut ev);
        Ok(ev)
    }
}

/// `1796545415.8897493` (seconds, zap's default) or an ISO 8601 / RFC 3339 text.
fn read_time(ts: &[u8], text: bool) -> Option<Timestamp> {
    if text {
        return time::parse_rfc3339(ts);
    }
    time::parse_msec(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Entries of a real Caddy 2.6.2 (Debian 12) in front of a closed port, a name that does not
    // resolve, a backend that resets the connection and a pool whose members are all down.
    const ERROR: &str = r#"{"level":"error","ts":1796545415.8897493,"logger":"http.log.error.log0","msg":"dial tcp 127.0.0.1:18081: connect: connection refused","request":{"remote_ip":"127.0.0.1","remote_port":"47462","proto":"HTTP/1.1","method":"GET","host":"127.0.0.1:18090","uri":"/down","headers":{"User-Agent":["curl/7.88.1"],"Accept":["*/*"]}},"duration":0.000346736,"status":502,"err_id":"w4jurh383","err_trace":"reverseproxy.statusError (reverseproxy.go:1272)"}"#;
    const ACCESS: &str = r#"{"level":"error","ts":1796545415.8897855,"logger":"http.log.access.log0","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"47462","proto":"HTTP/1.1","method":"GET","host":"127.0.0.1:18090","uri":"/down","headers":{"User-Agent":["curl/7.88.1"],"Accept":["*/*"]}},"user_id":"","duration":0.000346736,"size":0,"status":502,"resp_headers":{"Server":["Caddy"]}}"#;

    fn s(line: &str, span: Span) -> String {
        String::from_utf8_lossy(span.get(line.as_bytes()).unwrap_or(b"")).into_owned()
    }

    #[test]
    fn an_error_entry_names_the_cause_and_the_upstream() {
        let ev = CaddyParser::new().parse(ERROR.as_bytes()).unwrap();
        assert_eq!(ev.kind, Kind::UpstreamReport);
        assert_eq!(ev.cause, Cause::UpstreamUnreachable);
        assert_eq!(ev.status, Some(502));
        assert_eq!(s(ERROR, ev.upstream), "127.0.0.1:18081");
        assert_eq!(s(ERROR, ev.client), "127.0.0.1");
        assert_eq!(s(ERROR, ev.request), "/down");
        assert_eq!(s(ERROR, ev.vhost), "127.0.0.1:18090");
        assert_eq!(ev.time.unwrap().ms, 1_796_545_415_889);
    }

    #[test]
    fn an_access_entry_is_a_request_without_a_cause_of_its_own() {
        let ev = CaddyParser::new().parse(ACCESS.as_bytes()).unwrap();
        assert_eq!(
            (ev.kind, ev.cause, ev.status),
            (Kind::Request, Cause::Other5xx, Some(502))
        );
        assert!(ev.upstream.is_none() && !ev.names_upstream);
        // With the upstream appended by the site's log directive.
        let with = ACCESS.replace(r#""user_id":"""#, r#""upstream":"10.0.0.5:8080""#);
        let ev = CaddyParser::new().parse(with.as_bytes()).unwrap();
        assert_eq!(s(&with, ev.upstream), "10.0.0.5:8080");
        assert!(ev.names_upstream);
    }

    #[test]
    fn other_entries_and_other_json_logs() {
        let mut p = CaddyParser::new();
        let start = r#"{"level":"info","ts":1796545413.899072,"logger":"http.log","msg":"server running","name":"srv0","protocols":["h1","h2","h3"]}"#;
        let ev = p.parse(start.as_bytes()).unwrap();
        assert_eq!((ev.kind, ev.cause), (Kind::Other, Cause::NotApplicable));
        let iso = r#"{"level":"error","ts":"2024-05-01T12:00:00.123Z","logger":"http.log.error","msg":"no upstreams available","request":{"remote_ip":"10.0.0.1","uri":"/a"},"status":503}"#;
        let ev = p.parse(iso.as_bytes()).unwrap();
        assert_eq!(ev.cause, Cause::NoLiveUpstreams);
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2024-05-01T12:00:00.123+00:00"
        );
        // A client that went away is not the upstream's failure.
        let gone = r#"{"level":"debug","ts":1.5,"logger":"http.log.error","msg":"context canceled","request":{"remote_ip":"10.0.0.1","uri":"/a"},"status":499}"#;
        assert_eq!(p.parse(gone.as_bytes()).unwrap().cause, Cause::Ok);
        for other in [
            r#"{"time_iso8601":"2024-05-01T12:00:00+00:00","status":"502","upstream_addr":"10.0.0.1:80"}"#,
            r#"{"level":"info","msg":"x","time":"2024-05-01T12:00:00Z"}"#,
            r#"{"log":"x\n","stream":"stdout","time":"2024-05-01T12:00:00Z"}"#,
        ] {
            assert!(p.parse(other.as_bytes()).is_err(), "{other}");
        }
        // Caddy's console encoding is refused with what to change.
        let console = "2024/05/01 12:00:00.000\tERROR\thttp.log.error\tdial tcp 10.0.0.5:80: connect: connection refused";
        assert_eq!(p.parse(console.as_bytes()), Err(Unparsed::NotJson));
        let bad_status = ERROR.replace(r#""status":502"#, r#""status":"5o2""#);
        assert_eq!(p.parse(bad_status.as_bytes()), Err(Unparsed::Status));
    }
}

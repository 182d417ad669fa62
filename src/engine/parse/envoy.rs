//! Envoy's access log (standalone Envoy, Istio, Envoy Gateway, Contour): the default text format,
//! the variants that add `%RESPONSE_CODE_DETAILS%` and Istio's fields, and the JSON of Istio and
//! Envoy Gateway. Envoy has no error log per request: the access line carries the cause, in
//! `%RESPONSE_FLAGS%` (`UF` connection failure, `UH` no healthy upstream, `UT` timeout, …), the
//! details (`upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}`)
//! and `%UPSTREAM_TRANSPORT_FAILURE_REASON%` (`TLS error: …`).
//!
//! ```text
//! [2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80"
//! [2024-07-20T07:09:48.470Z] "GET /x HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} 0 145 0 - "-" "curl/8.4.0" "44898dba-…" "localhost:8000" "172.28.0.2:801"
//! ```
//!
//! The fields after the flags move between variants, so they are found by shape: the run of five
//! quoted fields (`X-FORWARDED-FOR`, `USER-AGENT`, `X-REQUEST-ID`, `:AUTHORITY`,
//! `UPSTREAM_HOST`) after the byte counts and the duration, the details before them, Istio's
//! `%UPSTREAM_CLUSTER%` and addresses after them. The upstream is `UPSTREAM_HOST`, or the
//! cluster when no host was chosen (`UH`). Envoy's own component log (`[2021-03-12
//! 15:31:30.492][1][warning][runtime] …`) is read and explains nothing.

use super::json::{self, Value};
use crate::engine::event::{Cause, Event, Format, Kind, Span, Unparsed};
use crate::engine::time;

/// Parser for Envoy's access log.
#[derive(Clone, Debug, Default)]
pub struct EnvoyParser;

/// The most fields after the flags a line may have (Istio's text format has 17).
const MAX_TOKENS: usize = 32;

#[derive(Clone, Copy, Default)]
struct Token {
    span: Span,
    quoted: bool,
}

/// What decides the cause, taken from either encoding.
#[derive(Default)]
struct Fields {
    status: Option<u16>,
    /// A TCP proxy session (`"- - -"` for the request): no HTTP status.
    tcp: bool,
    flags: Span,
    details: Span,
    transport: Span,
    host: Span,
    cluster: Span,
}

impl EnvoyParser {
    pub fn new() -> EnvoyParser {
        EnvoyParser
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        match line.first() {
            Some(b'{') => self.parse_json(line),
            Some(b'[') => self.parse_text(line),
            _ => Err(Unparsed::Shape),
        }
    }

    fn parse_text(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let close = memchr::memchr(b']', line).ok_or(Unparsed::Shape)?;
        let stamp = &line[1..close];
        let rest = &line[close + 1..];
        // Envoy's component log: `[2021-03-12 15:31:30.492][1][warning][runtime] …`.
        if rest.first() == Some(&b'[') {
            time::parse_iso8601(stamp).ok_or(Unparsed::Shape)?;
            return Ok(Event {
                format: Some(Format::Envoy),
                ..Event::default()
            });
        }
        let time = time::parse_rfc3339(stamp).ok_or(Unparsed::Time)?;
        let rest = rest.strip_prefix(b" \"").ok_or(Unparsed::Shape)?;
        let req_end = memchr::memchr(b'"', rest).ok_or(Unparsed::Shape)?;
        let request = &rest[..req_end];
        let rest = rest[req_end + 1..]
            .strip_prefix(b" ")
            .ok_or(Unparsed::Shape)?;
        let (code, rest) = split_word(rest);
        let status = super::status_digits(code).ok_or(Unparsed::Status)?;
        let (flags, rest) = split_word(rest);
        if flags.is_empty()
            || !flags
                .iter()
                .all(|b| b.is_ascii_uppercase() || *b == b',' || *b == b'-')
        {
            return Err(Unparsed::Shape);
        }
        let base = line.len() - rest.len();
        let mut tokens = [Token::default(); MAX_TOKENS];
        let n = tokenize(line, base, &mut tokens)?;
        let tokens = &tokens[..n];
        // The five quoted fields that end Envoy's default format.
        let run = (0..n.saturating_sub(4))
            .find(|&i| tokens[i..i + 5].iter().all(|t| t.quoted))
            .ok_or(Unparsed::Shape)?;
        // Before them: the details, perhaps Istio's termination details and transport failure
        // reason, then bytes received, bytes sent, duration and the upstream service time.
        let before = &tokens[..run];
        let numbers = before
            .iter()
            .rev()
            .take_while(|t| !t.quoted && is_number_or_dash(t.span.get(line).unwrap_or(b"-")))
            .count();
        if numbers < 3 {
            return Err(Unparsed::Shape);
        }
        let tcp = request == b"- - -";
        let mut f = Fields {
            status: Some(status),
            tcp,
            flags: Span::of(line, flags),
            ..Fields::default()
        };
        for t in &before[..run - numbers] {
            let text = t.span.get(line).unwrap_or(b"-");
            if text == b"-" {
                continue;
            }
            if t.quoted {
                f.transport = t.span;
            } else if f.details.is_none() {
                f.details = t.span;
            }
        }
        let quoted = &tokens[run..run + 5];
        f.host = quoted[4].span;
        // Istio: cluster, upstream local, downstream local, downstream remote, SNI, route.
        let after = &tokens[run + 5..];
        if let Some(c) = after.first().filter(|t| !t.quoted) {
            f.cluster = c.span;
        }
        let client = match after.get(3).filter(|t| !t.quoted) {
            Some(t) => strip_port(line, t.span),
            None => first_forwarded(line, quoted[0].span),
        };
        let mut ev = Event {
            format: Some(Format::Envoy),
            kind: Kind::Request,
            time: Some(time),
            client,
            request: if tcp {
                Span::NONE
            } else {
                Span::of(line, request)
            },
            vhost: dash_none(line, quoted[3].span),
            ..Event::default()
        };
        decide(line, &f, &mut ev);
        Ok(ev)
    }

    fn parse_json(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let mut f = Fields::default();
        let (mut code, mut start) = (Span::NONE, Span::NONE);
        let (mut path, mut authority, mut remote, mut forwarded) =
            (Span::NONE, Span::NONE, Span::NONE, Span::NONE);
        let mut typed_code = None;
        json::walk(line, 0, |key, v| {
            let text = v.text();
            match key {
                b"response_code" => {
                    code = text;
                    typed_code = Some(matches!(v, Value::Bare(_)));
                }
                b"start_time" => start = text,
                b"response_flags" => f.flags = text,
                b"response_code_details" => f.details = text,
                b"upstream_transport_failure_reason" => f.transport = text,
                b"upstream_host" => f.host = text,
                b"upstream_cluster" => f.cluster = text,
                b"path" | b"x-envoy-origin-path" => path = text,
                b"authority" | b":authority" => authority = text,
                b"downstream_remote_address" => remote = text,
                b"x_forwarded_for" | b"x-forwarded-for" => forwarded = text,
                _ => {}
            }
        })?;
        // Istio's and Envoy Gateway's keys; other JSON logs (nginx, Caddy, Traefik) lack them.
        let (Some(_), Some(stamp)) = (typed_code, start.get(line)) else {
            return Err(Unparsed::Shape);
        };
        let time = time::parse_rfc3339(stamp).ok_or(Unparsed::Time)?;
        f.status =
            Some(super::status_digits(code.get(line).unwrap_or(b"")).ok_or(Unparsed::Status)?);
        f.tcp = f.status == Some(0) && dash_none(line, path).is_none();
        let mut ev = Event {
            format: Some(Format::Envoy),
            kind: Kind::Request,
            time: Some(time),
            client: match remote.get(line) {
                Some(r) if r != b"-" && r != b"null" => strip_port(line, remote),
                _ => first_forwarded(line, forwarded),
            },
            request: dash_none(line, path),
            vhost: dash_none(line, authority),
            ..Event::default()
        };
        decide(line, &f, &mut ev);
        Ok(ev)
    }
}

/// The status, the upstream and the cause of a request from its fields.
fn decide(line: &[u8], f: &Fields, ev: &mut Event) {
    ev.status = f.status;
    let host = dash_none(line, f.host);
    let cluster = dash_none(line, f.cluster);
    ev.names_upstream = true;
    ev.upstream = if host.is_none() { cluster } else { host };
    if let Some(u) = ev.upstream.get(line)
        && let Some(rest) = u.strip_prefix(b"tcp://")
    {
        ev.upstream = Span::of(line, rest);
    }
    ev.upstreams = ev.upstream;
    let flags = f.flags.get(line).unwrap_or(b"");
    let details = f.details.get(line).unwrap_or(b"");
    let transport = f.transport.get(line).unwrap_or(b"");
    let has = |flag: &[u8]| flags.split(|&b| b == b',').any(|x| x == flag);
    // The flags of a request that failed before any answer came from an upstream.
    let failed_before = ["DF", "UF", "UH", "UT", "UMSDR"]
        .iter()
        .any(|f| has(f.as_bytes()))
        || ((has(b"UC") || has(b"UR") || has(b"LR"))
            && find!(details, b"before_response_started").is_some());
    if f.tcp {
        // A TCP proxy session (`"- - -"`): no HTTP status, the flags say how it ended.
        ev.status = None;
        if !failed_before {
            ev.cause = Cause::Ok;
            return;
        }
    } else if f.status.unwrap_or(0) < 500 {
        // A failed gRPC call is answered 200 (`grpc-status` 14 in the trailers): with a flag
        // of a failure before any upstream answered, the 200 is Envoy's, not the upstream's.
        // Otherwise the client got its answer (`200 UPE` after the response started).
        if !(f.status == Some(200) && failed_before) {
            ev.cause = Cause::Ok;
            return;
        }
    }
    let tls = |s: &[u8]| find!(s, b"TLS error").is_some() || find!(s, b"TLS_error").is_some();
    ev.cause = if has(b"DF") {
        Cause::DnsFailure
    } else if has(b"UF") {
        if tls(transport) || tls(details) {
            Cause::TlsFailure
        } else {
            // Envoy's own `connect_timeout` (`{connection_timeout}`), or the kernel's
            // ETIMEDOUT by number or, in recent releases, by name.
            let timed_out = connect_errno(details) == Some(110)
                || find!(details, b"connection_timeout").is_some()
                || find!(details, b"Connection_timed_out").is_some();
            if timed_out {
                Cause::UpstreamTimeout
            } else {
                Cause::UpstreamUnreachable
            }
        }
    } else if has(b"UH") {
        Cause::NoLiveUpstreams
    } else if has(b"UT") || has(b"UMSDR") {
        Cause::UpstreamTimeout
    } else if has(b"UPE") {
        Cause::UpstreamProtocolError
    } else if has(b"UC") || has(b"UR") || has(b"LR") {
        Cause::UpstreamReset
    } else {
        // URX alone, UO (circuit breaking), NC, UAEX, LH, or the upstream's own 5xx.
        Cause::Other5xx
    };
}

/// The errno of `delayed_connect_error:_111` in the details.
fn connect_errno(details: &[u8]) -> Option<u32> {
    let i = find!(details, b"delayed_connect_error:_")?;
    let digits = &details[i + 23..];
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 6 {
        return None;
    }
    Some(
        digits[..n]
            .iter()
            .fold(0u32, |v, &d| v * 10 + (d - b'0') as u32),
    )
}

/// Splits the fields after the flags into tokens: quoted (`"…"`, the quotes left out) or bare.
fn tokenize(line: &[u8], mut p: usize, out: &mut [Token; MAX_TOKENS]) -> Result<usize, Unparsed> {
    let mut n = 0;
    while p < line.len() {
        if line[p] == b' ' {
            p += 1;
            continue;
        }
        if n == MAX_TOKENS {
            return Err(Unparsed::Shape);
        }
        if line[p] == b'"' {
            let end = memchr::memchr(b'"', &line[p + 1..]).ok_or(Unparsed::Shape)? + p + 1;
            out[n] = Token {
                span: Span::new(p + 1, end),
                quoted: true,
            };
            p = end + 1;
        } else {
            let end = memchr::memchr(b' ', &line[p..]).map_or(line.len(), |i| p + i);
            out[n] = Token {
                span: Span::new(p, end),
                quoted: false,
            };
            p = end;
        }
        n += 1;
    }
    Ok(n)
}

fn split_word(b: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', b) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[b.len()..]),
    }
}

fn is_number_or_dash(b: &[u8]) -> bool {
    b == b"-" || (!b.is_empty() && b.iter().all(u8::is_ascii_digit))
}

/// The span, or none for Envoy's `-` and JSON's `null`.
fn dash_none(line: &[u8], s: Span) -> Span {
    match s.get(line) {
        Some(b"-") | Some(b"null") | None => Span::NONE,
        Some(_) => s,
    }
}

/// `10.0.0.1:5000` → `10.0.0.1` (`[::1]:5000` → `::1`).
fn strip_port(line: &[u8], s: Span) -> Span {
    let Some(v) = s.get(line) else {
        return Span::NONE;
    };
    let host = match memchr::memrchr(b':', v) {
        Some(i) if v[i + 1..].iter().all(u8::is_ascii_digit) && i + 1 < v.len() => &v[..i],
        _ => v,
    };
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    Span::of(line, host)
}

/// The first address of `X-Forwarded-For` (the client), or none.
fn first_forwarded(line: &[u8], s: Span) -> Span {
    let s = dash_none(line, s);
    let Some(v) = s.get(line) else {
        return Span::NONE;
    };
    let end = memchr::memchr(b',', v).unwrap_or(v.len());
    Span::of(line, v[..end].trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> (Option<u16>, Cause, String) {
        let b = line.as_bytes();
        let ev = EnvoyParser::new()
            .parse(b)
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        let up = String::from_utf8_lossy(ev.upstream(b).unwrap_or(b"")).into_owned();
        (ev.status, ev.cause, up)
    }

    #[test]
    fn the_default_format_and_its_variants() {
        // Envoy's documentation (usage.rst), the default format.
        let doc = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;
        assert_eq!(read(doc), (Some(204), Cause::Ok, "10.0.2.1:80".into()));
        let ev = EnvoyParser::new().parse(doc.as_bytes()).unwrap();
        assert_eq!(ev.client(doc.as_bytes()), Some(&b"10.0.35.28"[..]));
        assert_eq!(ev.path(doc.as_bytes()), Some(&b"/api/v1/locations"[..]));
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2016-04-15T20:17:00.310+00:00"
        );
        // With %RESPONSE_CODE_DETAILS% after the flags (renuka-fernando/examples, MIT).
        let refused = r#"[2024-07-20T07:09:48.470Z] "GET /upstream-connection-failure HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} 0 145 0 - "-" "curl/8.4.0" "44898dba-8d8e-48f4-93f7-23e4b4c592c0" "localhost:8000" "172.28.0.2:801""#;
        assert_eq!(
            read(refused),
            (
                Some(503),
                Cause::UpstreamUnreachable,
                "172.28.0.2:801".into()
            )
        );
        let timeout = r#"[2024-07-20T07:05:54.173Z] "GET /gateway-timeout?delayMs=5000 HTTP/1.1" 504 UT response_timeout 0 24 4497 - "-" "curl/8.4.0" "6d67d674-2122-4a2d-b172-0be70c674371" "localhost:8000" "172.27.0.2:8080""#;
        assert_eq!(read(timeout).1, Cause::UpstreamTimeout);
        let none = r#"[2024-07-20T07:06:24.729Z] "GET /no-healthy-upstream HTTP/1.1" 503 UH no_healthy_upstream 0 19 0 - "-" "curl/8.4.0" "2f22e5c6-2387-49b8-96c4-7b3a1678dbb0" "localhost:8000" "-""#;
        assert_eq!(read(none), (Some(503), Cause::NoLiveUpstreams, "".into()));
        let overflow = r#"[2024-07-20T07:32:21.519Z] "GET /upstream-service-overflow?delayMs=5000 HTTP/1.1" 503 UO upstream_reset_before_response_started{overflow} 0 81 0 - "-" "curl/8.4.0" "c414b70a-7c85-4f78-9c35-2ce2b9131aa3" "localhost:8000" "172.31.0.3:8080""#;
        assert_eq!(read(overflow).1, Cause::Other5xx);
        let after_start = r#"[2024-07-20T07:23:58.586Z] "GET /after-response HTTP/1.1" 200 UPE upstream_reset_after_response_started{protocol_error} 0 19 1006 0 "-" "curl/8.4.0" "84ef2354-e85c-4e90-bc6e-bb81d5dc70e8" "localhost:8000" "192.168.5.2:8080""#;
        assert_eq!(read(after_start).1, Cause::Ok);
    }

    #[test]
    fn grpc_failures_answered_200_and_tcp_sessions() {
        // A gRPC call to a cluster without a healthy host: Envoy answers 200 with grpc-status 14.
        let grpc = r#"[2025-09-10T03:25:30.208Z] "POST /io.cloudevents.v1.CloudEventService/Subscribe HTTP/2" 200 UH no_healthy_upstream - "-" 0 0 0 - "-" "grpc-go/1.71.0" "0b7a0c8e-1c55-4d2e-9c4f-1d2e3f4a5b6c" "maestro-grpc:8090" "-" outbound|8090||maestro-grpc.maestro.svc.cluster.local - 10.96.0.12:8090 10.244.0.7:51234 - default"#;
        assert_eq!(
            read(grpc),
            (
                Some(200),
                Cause::NoLiveUpstreams,
                "outbound|8090||maestro-grpc.maestro.svc.cluster.local".into()
            )
        );
        // Istio's TCP proxy: no HTTP status; a refused connection.
        let tcp = r#"[2024-05-01T12:00:00.000Z] "- - -" 0 UF,URX - - "delayed_connect_error:_Connection_refused" 0 0 1 - "-" "-" "-" "-" "10.244.0.6:5432" outbound|5432||postgres.db.svc.cluster.local - 10.96.3.3:5432 10.244.0.9:40122 - -"#;
        assert_eq!(
            read(tcp),
            (None, Cause::UpstreamUnreachable, "10.244.0.6:5432".into())
        );
        let closed = r#"[2024-05-01T12:00:00.000Z] "- - -" 0 - - - "-" 1024 2048 60001 - "-" "-" "-" "-" "10.244.0.6:5432" outbound|5432||postgres.db.svc.cluster.local 10.244.0.9:40200 10.96.3.3:5432 10.244.0.9:40122 - -"#;
        assert_eq!(read(closed).1, Cause::Ok);
        // Envoy's own connect timeout.
        let slow = r#"[2024-05-01T12:00:00.000Z] "GET / HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure|connection_timeout} 0 91 10001 - "-" "curl/8.5.0" "r" "a" "10.0.0.5:80""#;
        assert_eq!(read(slow).1, Cause::UpstreamTimeout);
    }

    #[test]
    fn istio_text_names_the_cluster_and_tls_failures() {
        // Istio's text format: details, termination details, the transport failure reason,
        // then after the quoted fields the cluster and the addresses.
        let tls = r#"[2024-05-01T12:00:00.000Z] "GET /productpage HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,TLS_error:_268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED} - "TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED" 0 91 2 - "-" "curl/8.5.0" "5e4b1c6a-0c1d-4b5e-9a1f-2d3c4b5a6f70" "productpage:9080" "10.44.1.7:9080" outbound|9080||productpage.default.svc.cluster.local - 10.48.5.23:9080 10.44.1.8:41234 - default"#;
        let b = tls.as_bytes();
        let ev = EnvoyParser::new().parse(b).unwrap();
        assert_eq!(ev.cause, Cause::TlsFailure);
        assert_eq!(ev.upstream(b), Some(&b"10.44.1.7:9080"[..]));
        assert_eq!(ev.client(b), Some(&b"10.44.1.8"[..]));
        assert_eq!(ev.vhost(b), Some(&b"productpage:9080"[..]));
        let uh = tls
            .replace("503 UF upstream_reset_before_response_started{connection_failure,TLS_error:_268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED} - \"TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED\"", "503 UH no_healthy_upstream - \"-\"")
            .replace("\"10.44.1.7:9080\"", "\"-\"");
        assert_eq!(
            read(&uh),
            (
                Some(503),
                Cause::NoLiveUpstreams,
                "outbound|9080||productpage.default.svc.cluster.local".into()
            )
        );
    }

    #[test]
    fn istio_and_envoy_gateway_json() {
        let typed = r#"{":authority":"www.example.com","bytes_received":0,"bytes_sent":91,"downstream_remote_address":"10.0.0.7:53422","duration":1,"method":"GET","protocol":"HTTP/1.1","response_code":503,"response_code_details":"upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}","response_flags":"UF","start_time":"2024-05-01T12:00:00.123Z","upstream_cluster":"httproute/default/backend/rule/0","upstream_host":"10.244.0.12:3000","upstream_transport_failure_reason":null,"x-envoy-origin-path":"/api/orders"}"#;
        let b = typed.as_bytes();
        let ev = EnvoyParser::new().parse(b).unwrap();
        assert_eq!(
            (ev.status, ev.cause),
            (Some(503), Cause::UpstreamUnreachable)
        );
        assert_eq!(ev.upstream(b), Some(&b"10.244.0.12:3000"[..]));
        assert_eq!(ev.client(b), Some(&b"10.0.0.7"[..]));
        assert_eq!(ev.path(b), Some(&b"/api/orders"[..]));
        let quoted = r#"{"start_time":"2024-05-01T12:00:00.123Z","method":"GET","path":"/","response_code":"504","response_flags":"UT","upstream_host":"10.1.2.3:8080","upstream_cluster":"outbound|80||web.default.svc.cluster.local"}"#;
        assert_eq!(
            read(quoted),
            (Some(504), Cause::UpstreamTimeout, "10.1.2.3:8080".into())
        );
        // Other JSON logs are not Envoy's.
        for other in [
            r#"{"time_iso8601":"2024-05-01T12:00:00+00:00","status":"502"}"#,
            r#"{"level":"error","ts":1.5,"logger":"http.log.error","msg":"x","status":502}"#,
            r#"{"start_time":"2024-05-01T12:00:00Z","status":502}"#,
        ] {
            assert!(
                EnvoyParser::new().parse(other.as_bytes()).is_err(),
                "{other}"
            );
        }
    }

    #[test]
    fn component_logs_and_other_lines() {
        let mut p = EnvoyParser::new();
        let component = "[2021-03-12 15:31:30.492][1][warning][runtime] [source/common/runtime/runtime_features.cc:31] Unable to use runtime singleton for feature envoy.reloadable_features.header_map_correctly_coalesce_cookies";
        let ev = p.parse(component.as_bytes()).unwrap();
        assert_eq!((ev.kind, ev.cause), (Kind::Other, Cause::NotApplicable));
        for bad in [
            r#"203.0.113.7 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.0""#,
            r#"[2024-07-20T07:09:48.470Z] "GET / HTTP/1.1" 503 UF 0 145"#,
            r#"[2024-07-20T07:09:48.470Z] "GET / HTTP/1.1" 5x3 UF 0 145 0 - "-" "c" "r" "a" "h""#,
            "[Sun Dec 06 08:22:30.591823 2026] [proxy:error] [pid 1:tid 2] AH00957: x",
        ] {
            assert!(p.parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

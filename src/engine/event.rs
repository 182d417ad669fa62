//! The vocabulary every stage shares: log formats, causes, and the parsed event.
//!
//! An [`Event`] is what a parser makes of one log line. It does not own any bytes: text fields are
//! [`Span`]s into the line they came from, so parsing allocates nothing and an event can be kept
//! next to the buffer that holds its line.

use std::fmt;

/// The log formats gatewatch reads. The names are part of the contract (`--format`, config,
/// `scan --events` output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    NginxAccess,
    NginxError,
    Haproxy,
    Alb,
    ApacheAccess,
    ApacheError,
    Caddy,
    Envoy,
    Traefik,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::NginxAccess,
        Format::NginxError,
        Format::Haproxy,
        Format::Alb,
        Format::ApacheAccess,
        Format::ApacheError,
        Format::Caddy,
        Format::Envoy,
        Format::Traefik,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::NginxAccess => "nginx_access",
            Format::NginxError => "nginx_error",
            Format::Haproxy => "haproxy",
            Format::Alb => "alb",
            Format::ApacheAccess => "apache_access",
            Format::ApacheError => "apache_error",
            Format::Caddy => "caddy",
            Format::Envoy => "envoy",
            Format::Traefik => "traefik",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether its 5xx request lines may take their cause from an error log's report (nginx's
    /// and Apache's access logs, Caddy's and Traefik's access entries).
    pub fn joins_as_request(self) -> bool {
        matches!(
            self,
            Format::NginxAccess | Format::ApacheAccess | Format::Caddy | Format::Traefik
        )
    }

    /// Whether its reports may explain an access log's request lines (nginx's and Apache's
    /// error logs, Caddy's error entries, Traefik's debug lines).
    pub fn joins_as_report(self) -> bool {
        matches!(
            self,
            Format::NginxError | Format::ApacheError | Format::Caddy | Format::Traefik
        )
    }

    /// The proxy that writes it: only lines of one proxy are joined.
    pub fn proxy(self) -> &'static str {
        match self {
            Format::NginxAccess | Format::NginxError => "nginx",
            Format::ApacheAccess | Format::ApacheError => "apache",
            Format::Haproxy => "haproxy",
            Format::Alb => "alb",
            Format::Caddy => "caddy",
            Format::Envoy => "envoy",
            Format::Traefik => "traefik",
        }
    }

    /// Whether a proxy writes both kinds in one log (so one source of it can be joined).
    pub fn holds_requests_and_reports(self) -> bool {
        matches!(self, Format::Caddy | Format::Traefik)
    }

    /// Whether its reports may lack the client (httpd's AH00940, Traefik's debug lines): they
    /// are joined by time, upstream and status.
    pub fn reports_without_client(self) -> bool {
        matches!(self, Format::ApacheError | Format::Traefik)
    }

    /// Whether a request line's time is when the request arrived, not when it ended (Apache's
    /// `%t`, Traefik's start time), so the error lines of a slow failure are written well after
    /// it.
    pub fn stamps_request_start(self) -> bool {
        matches!(self, Format::ApacheAccess | Format::Traefik)
    }

    /// Whether its times are written without a zone, in the host's local time (so a joined
    /// access log's times can reveal the wrong zone).
    pub fn is_zoneless_report(self) -> bool {
        matches!(self, Format::NginxError | Format::ApacheError)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request failed (or did not). Every parsed line gets exactly one cause; the names are
/// fixed by the product contract (DESIGN §2).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    UpstreamUnreachable,
    NoLiveUpstreams,
    UpstreamTimeout,
    UpstreamReset,
    UpstreamProtocolError,
    DnsFailure,
    TlsFailure,
    Other5xx,
    Ok,
    #[default]
    NotApplicable,
}

impl Cause {
    pub const COUNT: usize = 10;
    pub const ALL: [Cause; Cause::COUNT] = [
        Cause::UpstreamUnreachable,
        Cause::NoLiveUpstreams,
        Cause::UpstreamTimeout,
        Cause::UpstreamReset,
        Cause::UpstreamProtocolError,
        Cause::DnsFailure,
        Cause::TlsFailure,
        Cause::Other5xx,
        Cause::Ok,
        Cause::NotApplicable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::UpstreamUnreachable => "upstream_unreachable",
            Cause::NoLiveUpstreams => "no_live_upstreams",
            Cause::UpstreamTimeout => "upstream_timeout",
            Cause::UpstreamReset => "upstream_reset",
            Cause::UpstreamProtocolError => "upstream_protocol_error",
            Cause::DnsFailure => "dns_failure",
            Cause::TlsFailure => "tls_failure",
            Cause::Other5xx => "other_5xx",
            Cause::Ok => "ok",
            Cause::NotApplicable => "not_applicable",
        }
    }

    pub fn from_name(name: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Position in [`Cause::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for the causes that name something wrong between the proxy and its upstream.
    pub fn is_upstream_failure(self) -> bool {
        !matches!(self, Cause::Other5xx | Cause::Ok | Cause::NotApplicable)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the proxy did that can end an outage, seen in its log: evidence (weak: never a
/// fix on its own) of what fixed an incident that recovered shortly after (issue 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// nginx re-read its configuration (`nginx -s reload`, `systemctl reload nginx`: SIGHUP).
    NginxReload,
    /// A server came back into service (HAProxy: `Server be/srv is UP`).
    ServerUp,
}

impl Signal {
    pub const ALL: [Signal; 2] = [Signal::NginxReload, Signal::ServerUp];

    /// Its name in pattern files (`seen_as`) and the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::NginxReload => "nginx_reload",
            Signal::ServerUp => "server_up",
        }
    }

    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// In words, for a message (`an nginx reload`).
    pub fn describe(self) -> &'static str {
        match self {
            Signal::NginxReload => "an nginx reload",
            Signal::ServerUp => "the server back UP",
        }
    }
}

/// What a line is about, which decides how the detector counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// One client request (an access-log line, an HAProxy request line, an ALB entry).
    Request,
    /// A proxy-side report about an upstream (an nginx error-log line, an HAProxy server event).
    /// One request can produce several of these (one per upstream tried).
    UpstreamReport,
    /// The proxy did something that can end an outage (the server it names, if any, in
    /// `upstream`).
    Recovery(Signal),
    /// Anything else the parser understood.
    #[default]
    Other,
}

/// A byte range inside the line an event was parsed from. `Span::NONE` means "absent".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub const NONE: Span = Span { start: 0, end: 0 };

    pub fn new(start: usize, end: usize) -> Span {
        debug_assert!(start <= end);
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The span of `sub` inside `line`; `sub` must be a sub-slice of `line`.
    pub fn of(line: &[u8], sub: &[u8]) -> Span {
        let start = sub.as_ptr() as usize - line.as_ptr() as usize;
        debug_assert!(start + sub.len() <= line.len());
        Span::new(start, start + sub.len())
    }

    pub fn is_none(self) -> bool {
        self.start == self.end
    }

    /// The bytes of this span, or `None` when the span is empty.
    pub fn get(self, line: &[u8]) -> Option<&[u8]> {
        if self.is_none() {
            None
        } else {
            line.get(self.start as usize..self.end as usize)
        }
    }
}

/// A point in time: milliseconds since the Unix epoch (UTC), and the UTC offset the line was
/// written in, so output can show the time as the proxy wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub ms: i64,
    pub offset_secs: i32,
}

impl Timestamp {
    pub fn new(ms: i64, offset_secs: i32) -> Timestamp {
        Timestamp { ms, offset_secs }
    }

    /// RFC 3339 text in the line's own offset, with milliseconds only when they are not zero.
    pub fn to_rfc3339(self) -> String {
        use chrono::{DateTime, FixedOffset, SecondsFormat};
        let offset = FixedOffset::east_opt(self.offset_secs)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
        match DateTime::from_timestamp_millis(self.ms) {
            Some(t) => t
                .with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false),
            None => format!("@{}ms", self.ms),
        }
    }
}

/// One parsed log line. Text fields are spans into that line.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Event {
    pub format: Option<Format>,
    pub kind: Kind,
    pub time: Option<Timestamp>,
    /// The status the client got; `None` where the line has none (error-log lines, events).
    pub status: Option<u16>,
    pub cause: Cause,
    /// The upstream the client's answer came from (the last one tried): `host:port`,
    /// `unix:/path`, an nginx pool name, or HAProxy `backend/server`.
    pub upstream: Span,
    /// Every upstream tried, as the proxy wrote the list (`a:80, b:80 : c:80`); iterate it with
    /// [`crate::engine::parse::upstream::UpstreamList`].
    pub upstreams: Span,
    /// True when the format itself names the upstream of every request, so request totals per
    /// upstream are known (the detector uses them for the share of failed requests).
    pub names_upstream: bool,
    pub client: Span,
    /// The request line (`GET /path HTTP/1.1`).
    pub request: Span,
    /// The virtual host (`$host`, nginx `host:`, ALB `domain_name`, HAProxy frontend).
    pub vhost: Span,
    /// The writer of the line (Apache's `pid N:tid M`), for formats that write one failure over
    /// two lines of the same writer: a line naming the upstream it could not reach, then the
    /// report of the request, which takes that upstream (see [`crate::engine::pipeline`]).
    pub thread: Span,
}

impl Event {
    pub fn upstream<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        self.upstream.get(line)
    }

    /// The upstream the line's counts go under: none for a recovery (a server back UP is
    /// not traffic of that server).
    pub fn counted_upstream<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Recovery(_) => None,
            _ => self.upstream.get(line),
        }
    }
    pub fn client<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        self.client.get(line)
    }
    pub fn request<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        self.request.get(line)
    }
    pub fn vhost<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        self.vhost.get(line)
    }

    /// The path of the request line (`/v1/x` of `GET /v1/x?y HTTP/1.1`), without the query.
    pub fn path<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        let req = self.request(line)?;
        let mut parts = req.splitn(3, |&b| b == b' ');
        let first = parts.next()?;
        // Formats that log the target alone (Caddy's `request.uri`) have no method.
        let mut target = match parts.next() {
            Some(t) => t,
            None if first.starts_with(b"/") => first,
            None => return None,
        };
        // Absolute form (`http://host:80/path`, as ALB logs write it): keep the path. Only a
        // target that starts with a scheme is absolute; `://` later in a path is part of it.
        let scheme_end = target
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .filter(|&i| i > 0 && target[0].is_ascii_alphabetic());
        if let Some(i) = scheme_end.filter(|&i| target[i..].starts_with(b"://")) {
            let after = &target[i + 3..];
            target = match memchr::memchr(b'/', after) {
                Some(j) => &after[j..],
                None => b"/",
            };
        }
        let end = memchr::memchr(b'?', target).unwrap_or(target.len());
        Some(&target[..end])
    }
}

/// Why a line could not be parsed. Unparsed lines are counted and skipped, never fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unparsed {
    #[error("the line is empty")]
    Empty,
    #[error("the line does not have the shape of the format")]
    Shape,
    #[error("the time field is not a valid time")]
    Time,
    #[error("the status field is not a number")]
    Status,
    #[error("the line is longer than the line limit")]
    TooLong,
    #[error("the line is not in the container framing (CRI or docker json-file)")]
    Framing,
    #[error(
        "the lines fit several known formats that read them differently; name the log_format (log_format in the [[source]], or scan --log-format)"
    )]
    Ambiguous,
    #[error(
        "the line holds terminal colour codes; have the proxy write its log without colours (Traefik: log.noColor = true, or a log.filePath)"
    )]
    Colour,
    #[error(
        "the line is not JSON, and this format is read as JSON (Caddy: format json in the log directive; its console encoding is not read)"
    )]
    NotJson,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(request: &str) -> String {
        let ev = Event {
            request: Span::new(0, request.len()),
            ..Event::default()
        };
        String::from_utf8_lossy(ev.path(request.as_bytes()).unwrap_or(b"")).into_owned()
    }

    #[test]
    fn the_path_of_a_request_line() {
        assert_eq!(path_of("GET /v1/x?y=1 HTTP/1.1"), "/v1/x");
        // Absolute form, as ALB writes it.
        assert_eq!(
            path_of("GET https://shop.example.com:443/cart HTTP/1.1"),
            "/cart"
        );
        assert_eq!(path_of("GET http://shop.example.com HTTP/1.1"), "/");
        // `://` inside a path is part of the path, not a scheme (regression: the path was cut
        // to `/p)`).
        assert_eq!(
            path_of("GET /x](http://evil.example/p) HTTP/1.1"),
            "/x](http://evil.example/p)"
        );
        assert_eq!(path_of("GET /r?u=http://a/b HTTP/1.1"), "/r");
        // A target alone (Caddy's `uri`).
        assert_eq!(path_of("/v1/x?y=1"), "/v1/x");
        assert_eq!(path_of("GET"), "");
    }
}

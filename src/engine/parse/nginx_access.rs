//! nginx access logs: any `log_format`, compiled once into a field parser, and JSON lines.
//!
//! A `log_format` is a sequence of literal text and variables. Compiling it yields, for every
//! variable, the literal that follows it; parsing a line walks those literals with `memchr`.
//! Multi-valued `$upstream_*` fields (`10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80`) are measured
//! with their own grammar, because their values contain the spaces that usually end a field.

pub use super::answered::Answered;
use super::bytes::{self, has_prefix};
use super::json;
use super::nginx_time::TimeCache;
use super::upstream;
use crate::engine::event::{Cause, Event, Format, Kind, Span, Unparsed};
use crate::engine::time::ZoneClock;

use super::mask::{Bytes, Cpu, Find, Masks};
pub use super::nginx_formats::*;

/// How string values are escaped (`log_format ... escape=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// `"` and control bytes as `\xHH`: a `"` always ends a quoted field.
    Default,
    /// JSON escaping: `\"` inside a quoted field does not end it.
    Json,
    None,
}

/// The variables gatewatch reads; every other variable is skipped over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Var {
    RemoteAddr,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    Status,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamConnectTime,
    /// `$upstream_header_time`, `$upstream_response_time`, `$upstream_queue_time`: numbers.
    UpstreamTime,
    /// The host a request is forwarded to, without the tries of `$upstream_addr`: Nginx Proxy
    /// Manager's `$server` (not a variable of nginx's own).
    UpstreamHost,
    /// ingress-nginx's `$proxy_upstream_name` (`namespace-service-port`): the service, whose
    /// pods come and go; it names the upstream, the pod addresses are the detail.
    ProxyUpstreamName,
    /// Another `$upstream_*` variable: a list, measured like the others, not read.
    UpstreamOther,
    Host,
    Other,
}

impl Var {
    fn from_name(name: &str) -> Var {
        match name {
            "remote_addr" | "realip_remote_addr" | "the_real_ip" => Var::RemoteAddr,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "request" => Var::Request,
            "status" => Var::Status,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_connect_time" => Var::UpstreamConnectTime,
            "upstream_header_time" | "upstream_response_time" | "upstream_queue_time" => {
                Var::UpstreamTime
            }
            "server" => Var::UpstreamHost,
            "proxy_upstream_name" => Var::ProxyUpstreamName,
            "host" | "http_host" | "server_name" => Var::Host,
            n if n.starts_with("upstream_") && n != "upstream_cache_status" => Var::UpstreamOther,
            _ => Var::Other,
        }
    }

    pub(super) fn is_list(self) -> bool {
        matches!(
            self,
            Var::UpstreamAddr
                | Var::UpstreamStatus
                | Var::UpstreamConnectTime
                | Var::UpstreamTime
                | Var::UpstreamOther
        )
    }

    /// Whether a value can be what nginx writes for this variable. A field of another
    /// format's line read in its place fails here, so that format is not taken for this one
    /// (ingress-nginx's `$request_time` where `$upstream_addr` would be, a `[name]` where
    /// `$upstream_status` would be).
    #[inline]
    fn plausible(self, v: &[u8]) -> bool {
        // Cheap checks, on the fields read for every line (`$status` is checked when it is
        // read as a number).
        let numbers = |v: &[u8], dot: bool| {
            v.iter().all(|&b| {
                b.is_ascii_digit() || matches!(b, b' ' | b',' | b':' | b'-') || (dot && b == b'.')
            })
        };
        match self {
            Var::RemoteAddr => memchr::memchr(b' ', v).is_none(),
            Var::UpstreamStatus => numbers(v, false),
            Var::UpstreamConnectTime | Var::UpstreamTime => numbers(v, true),
            // A number with one dot is a time, never an address (`10.0.1.5:8080`, `unix:…`, an
            // upstream group's name); an address with a port is decided by its colon.
            Var::UpstreamAddr => {
                memchr::memchr(b':', v).is_some()
                    || !(v.iter().filter(|&&b| b == b'.').count() == 1
                        && v.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
            }
            _ => true,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Field {
    pub(super) var: Var,
    name: String,
    /// The literal text between this variable and the next one (empty at the end).
    pub(super) after: Box<[u8]>,
}

/// A compiled nginx `log_format`.
#[derive(Clone, Debug)]
pub struct LogFormat {
    name: String,
    /// The format string as compiled (unquoted), to write it out again.
    text: String,
    escape: Escape,
    lead: Box<[u8]>,
    fields: Vec<Field>,
    /// For a request that did not fail (status below 500), nothing after this field is
    /// needed: the time, the status and the upstream are read by then.
    ok_last: usize,
    /// The last field followed by a literal with a `"`, and how many bytes of that literal
    /// follow its last `"`. With the default escaping a `"` in a value is written `\x22`, so
    /// the line's last `"` belongs to that literal: a request that did not fail can jump there
    /// and skip the long quoted fields (referer, user agent) it does not need.
    jump: Option<(usize, usize)>,
    /// The short walk of lines whose request did not fail (none for `escape=json`).
    walk: Option<super::nginx_walk::Walk>,
}

/// A `log_format` that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log_format: {0}")]
pub struct FormatError(pub String);

impl LogFormat {
    /// Compiles a `log_format` given exactly as written in nginx.conf: the bare format
    /// (`$remote_addr - ...`), one or more quoted strings (`'$remote_addr ' '"$request"'`), or
    /// the whole directive (`log_format main escape=json '{...}';`).
    pub fn from_directive(text: &str) -> Result<LogFormat, FormatError> {
        let t = text.trim();
        // A known format by its name (`npm`, `upstreaminfo`, `main`, …).
        if !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return match KNOWN.iter().find(|(n, _)| *n == t) {
                Some((name, format)) => LogFormat::compile(name, Escape::Default, format),
                None => Err(FormatError(format!(
                    "{t:?} is not a known format; the known ones are {}, or give the log_format as written in nginx.conf",
                    KNOWN.map(|(n, _)| n).join(", ")
                ))),
            };
        }
        let (name, escape, format) = split_directive(text)?;
        LogFormat::compile(&name, escape, &format)
    }

    /// Compiles a format string (already unquoted).
    pub fn compile(name: &str, escape: Escape, format: &str) -> Result<LogFormat, FormatError> {
        let bytes = format.as_bytes();
        let mut lead: Vec<u8> = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        let mut literal: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                literal.push(bytes[i]);
                i += 1;
                continue;
            }
            let (var_name, next) = if bytes.get(i + 1) == Some(&b'{') {
                let close = bytes[i..].iter().position(|&b| b == b'}').ok_or_else(|| {
                    FormatError(format!("unclosed ${{ at byte {i} of {format:?}"))
                })?;
                (&format[i + 2..i + close], i + close + 1)
            } else {
                let len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                (&format[i + 1..i + 1 + len], i + 1 + len)
            };
            if var_name.is_empty() {
                literal.push(b'$');
                i += 1;
                continue;
            }
            match fields.last_mut() {
                None => lead = std::mem::take(&mut literal),
                Some(prev) => {
                    if literal.is_empty() {
                        return Err(FormatError(format!(
                            "${} and ${var_name} are not separated by any text, so gatewatch cannot tell where one ends",
                            prev.name
                        )));
                    }
                    prev.after = std::mem::take(&mut literal).into_boxed_slice();
                }
            }
            fields.push(Field {
                var: Var::from_name(var_name),
                name: var_name.to_string(),
                after: Box::new([]),
            });
            i = next;
        }
        match fields.last_mut() {
            Some(last) => last.after = literal.into_boxed_slice(),
            None => {
                return Err(FormatError(format!(
                    "{format:?} contains no variables, so there is nothing to read"
                )));
            }
        }
        let has = |v: Var| fields.iter().any(|f| f.var == v);
        if !has(Var::Status) {
            return Err(FormatError(
                "the format has no $status, so gatewatch cannot tell failed requests".into(),
            ));
        }
        if !(has(Var::TimeLocal) || has(Var::TimeIso8601) || has(Var::Msec)) {
            return Err(FormatError(
                "the format has no time ($time_local, $time_iso8601 or $msec), so bursts cannot be placed in time".into(),
            ));
        }
        let ok_last = fields
            .iter()
            .rposition(|f| {
                matches!(
                    f.var,
                    Var::Status | Var::UpstreamAddr | Var::TimeLocal | Var::TimeIso8601 | Var::Msec
                )
            })
            .unwrap_or(fields.len());
        let status_at = fields.iter().position(|f| f.var == Var::Status);
        let needed_for_ok = |f: &Field| {
            matches!(
                f.var,
                Var::UpstreamAddr | Var::TimeLocal | Var::TimeIso8601 | Var::Msec
            )
        };
        let jump = fields
            .iter()
            .rposition(|f| f.after.contains(&b'"'))
            .filter(|_| escape == Escape::Default)
            // Only fields an answered request does not need may be skipped.
            .filter(|&j| {
                status_at.is_some_and(|s| s < j && !fields[s + 1..=j].iter().any(needed_for_ok))
            })
            .map(|j| {
                let after = &fields[j].after;
                let q = after.iter().rposition(|&b| b == b'"').expect("has a quote");
                (j, after.len() - q - 1)
            });
        let walk = super::nginx_walk::Walk::compile(&lead, &fields, escape, ok_last, jump);
        Ok(LogFormat {
            name: name.to_string(),
            text: format.to_string(),
            escape,
            lead: lead.into_boxed_slice(),
            fields,
            ok_last,
            jump,
            walk,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format as `from_directive` reads it back: the bare string, or the directive with
    /// its escaping.
    pub fn directive(&self) -> String {
        let esc = match self.escape {
            Escape::Default => return self.text.clone(),
            Escape::Json => "json",
            Escape::None => "none",
        };
        let quote = if self.text.contains('\'') { '"' } else { '\'' };
        format!(
            "log_format {} escape={esc} {quote}{}{quote};",
            self.name, self.text
        )
    }

    fn has(&self, v: Var) -> bool {
        self.fields.iter().any(|f| f.var == v)
    }

    /// Reads the fields of one line; returns the position where reading ended. With `whole`
    /// false, a request that did not fail is read only up to the fields it needs.
    fn extract(&self, line: &[u8], out: &mut Fields, whole: bool) -> Result<usize, Unparsed> {
        if !has_prefix(line, &self.lead) {
            return Err(Unparsed::Shape);
        }
        let mut pos = self.lead.len();
        let mut stop = usize::MAX;
        // Values are checked (see `Var::plausible`) when recognising a format and, once the
        // status says the line is a failure, on the fields its cause and upstream come from: a
        // request that did not fail is read as fast as before.
        let mut strict = whole;
        let mut i = 0;
        while i < self.fields.len() && i <= stop {
            let f = &self.fields[i];
            let rest = &line[pos..];
            let len = if f.var == Var::TimeLocal {
                if rest.len() < 26 {
                    return Err(Unparsed::Shape);
                }
                26
            } else if f.var.is_list() {
                upstream::list_len(rest, f.after.first().copied().unwrap_or(b'\n'))
            } else if f.after.is_empty() {
                rest.len()
            } else {
                find_literal(rest, &f.after, self.escape).ok_or(Unparsed::Shape)?
            };
            if !has_prefix(&rest[len..], &f.after) {
                return Err(Unparsed::Shape);
            }
            let span = Span::new(pos, pos + len);
            // A value nginx cannot have written for the variable: the line is another format
            // (a container runtime's framing before it, another layout), never half-read.
            if strict && !f.var.plausible(&rest[..len]) {
                return Err(Unparsed::Shape);
            }
            match f.var {
                Var::RemoteAddr => out.client = span,
                Var::TimeLocal | Var::TimeIso8601 | Var::Msec => out.time = span,
                Var::Request => out.request = span,
                Var::Status => {
                    out.status = span;
                    let v = &line[pos..pos + len];
                    let failed = v.first() == Some(&b'5') || v == b"009";
                    if failed && !strict {
                        strict = true;
                        if out
                            .client
                            .get(line)
                            .is_some_and(|c| !Var::RemoteAddr.plausible(c))
                        {
                            return Err(Unparsed::Shape);
                        }
                    }
                    if !(whole || failed) {
                        stop = self.ok_last;
                        if let Some((j, tail)) = self.jump
                            && j > i
                            && j < stop
                            && let Some(q) = memchr::memrchr(b'"', line)
                            && q > pos + len
                            && has_prefix(
                                &line[q + 1..],
                                &self.fields[j].after[self.fields[j].after.len() - tail..],
                            )
                        {
                            pos = q + 1 + tail;
                            i = j + 1;
                            continue;
                        }
                    }
                }
                Var::UpstreamAddr => out.upstream_addr = span,
                Var::UpstreamHost => out.upstream_host = span,
                Var::ProxyUpstreamName => out.service = span,
                Var::UpstreamStatus => out.upstream_status = span,
                Var::UpstreamConnectTime => out.connect_time = span,
                Var::Host => {
                    if out.host.is_none() {
                        out.host = span
                    }
                }
                Var::UpstreamTime | Var::UpstreamOther | Var::Other => {}
            }
            pos += len + f.after.len();
            i += 1;
        }
        Ok(pos)
    }
}

/// Finds `lit` in `hay`. With JSON escaping, a `"` preceded by an odd number of backslashes is
/// part of the value, not its end.
pub(super) fn find_literal(hay: &[u8], lit: &[u8], escape: Escape) -> Option<usize> {
    let first = lit[0];
    let mut from = 0;
    while let Some(i) = bytes::find_byte(first, &hay[from..]) {
        let p = from + i;
        if has_prefix(&hay[p..], lit) {
            let escaped = escape == Escape::Json
                && first == b'"'
                && hay[..p].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1;
            if !escaped {
                return Some(p);
            }
        }
        from = p + 1;
    }
    None
}

/// Splits a `log_format` directive into (name, escape, format text). Text that does not read as
/// a directive (quoted strings, optionally after `log_format NAME escape=...`) is a bare format.
fn split_directive(text: &str) -> Result<(String, Escape, String), FormatError> {
    let t = text.trim();
    let t = t.strip_suffix(';').unwrap_or(t).trim_end();
    let directive_like =
        t.starts_with(['\'', '"']) || t.starts_with("log_format") || t.starts_with("escape=");
    if !directive_like {
        return Ok(("custom".into(), Escape::Default, t.to_string()));
    }
    match split_quoted(t) {
        Ok(parts) => Ok(parts),
        Err(e) if t.starts_with("log_format") || t.starts_with("escape=") => Err(e),
        Err(_) => Ok(("custom".into(), Escape::Default, t.to_string())),
    }
}

fn split_quoted(t: &str) -> Result<(String, Escape, String), FormatError> {
    let mut name = String::from("custom");
    let mut escape = Escape::Default;
    let mut format = String::new();
    let mut quoted_parts = 0;
    let b = t.as_bytes();
    let mut i = 0;
    let mut words = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            q @ (b'\'' | b'"') => {
                let mut j = i + 1;
                let mut part = Vec::new();
                loop {
                    match b.get(j) {
                        None => {
                            return Err(FormatError(format!(
                                "the string starting at byte {i} is not closed with {}",
                                q as char
                            )));
                        }
                        Some(&c) if c == q => break,
                        Some(b'\\') if j + 1 < b.len() => {
                            part.push(match b[j + 1] {
                                b'n' => b'\n',
                                b't' => b'\t',
                                b'r' => b'\r',
                                other => other,
                            });
                            j += 2;
                        }
                        Some(&c) => {
                            part.push(c);
                            j += 1;
                        }
                    }
                }
                format.push_str(&String::from_utf8_lossy(&part));
                quoted_parts += 1;
                i = j + 1;
            }
            _ => {
                let end = b[i..]
                    .iter()
                    .position(|c| c.is_ascii_whitespace())
                    .map_or(b.len(), |p| i + p);
                let word = &t[i..end];
                if quoted_parts > 0 {
                    return Err(FormatError(format!(
                        "unexpected {word:?} after the format strings"
                    )));
                }
                match (words, word) {
                    (0, "log_format") => {}
                    (_, w) if w.starts_with("escape=") => {
                        escape = match &w[7..] {
                            "default" => Escape::Default,
                            "json" => Escape::Json,
                            "none" => Escape::None,
                            other => {
                                return Err(FormatError(format!(
                                    "escape={other} is not one of default, json, none"
                                )));
                            }
                        }
                    }
                    (_, w) => name = w.to_string(),
                }
                words += 1;
                i = end;
            }
        }
    }
    if quoted_parts == 0 {
        return Err(FormatError("the directive has no format string".into()));
    }
    Ok((name, escape, format))
}

/// Spans of the fields gatewatch reads from one access-log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Fields {
    pub(super) time: Span,
    pub(super) status: Span,
    pub(super) client: Span,
    pub(super) request: Span,
    pub(super) host: Span,
    pub(super) upstream_addr: Span,
    pub(super) upstream_host: Span,
    pub(super) service: Span,
    pub(super) upstream_status: Span,
    pub(super) connect_time: Span,
    /// Set by the short walk when it found `$upstream_addr` to be one item with neither a
    /// comma nor a space in it.
    pub(super) single_upstream: bool,
}

/// How lines are split into fields.
// One per parser, read on every line: the compiled format stays inline rather than boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Layout {
    Format(LogFormat),
    /// One JSON object per line, fields found by their usual names.
    Json,
    /// Several known formats read the sample lines alike but give them different meanings:
    /// none is chosen (their names), and every line is refused until the format is named.
    Ambiguous(String),
}

/// Parser for one nginx access log.
#[derive(Clone, Debug)]
pub struct AccessParser {
    layout: Layout,
    names_upstream: bool,
    time: TimeCache,
    zone: ZoneClock,
    /// AVX2 and BMI1, when the CPU has them (found once): for the quick walk called from code
    /// compiled for every CPU ([`AccessParser::answered_quickly`]).
    cpu: Option<Cpu<true>>,
}

impl AccessParser {
    /// The `log_format` it reads with (`None` for JSON lines read by their keys).
    pub fn log_format(&self) -> Option<&LogFormat> {
        match &self.layout {
            Layout::Format(f) => Some(f),
            _ => None,
        }
    }

    pub fn new(format: LogFormat, zone: ZoneClock) -> AccessParser {
        AccessParser {
            names_upstream: format.has(Var::UpstreamAddr) || format.has(Var::UpstreamHost),
            layout: Layout::Format(format),
            time: TimeCache::new(),
            zone,
            cpu: Cpu::detect(),
        }
    }

    /// A parser for JSON lines whose keys use nginx's variable names (or common aliases).
    pub fn json(zone: ZoneClock) -> AccessParser {
        AccessParser {
            layout: Layout::Json,
            names_upstream: true,
            time: TimeCache::new(),
            zone,
            cpu: Cpu::detect(),
        }
    }

    /// A parser that refuses every line: several known layouts read the samples alike but
    /// differently (`names` says which).
    pub(super) fn ambiguous(names: String, zone: ZoneClock) -> AccessParser {
        AccessParser {
            layout: Layout::Ambiguous(names),
            names_upstream: false,
            time: TimeCache::new(),
            zone,
            cpu: Cpu::detect(),
        }
    }

    /// The zone its times without an offset are read in.
    pub(super) fn zone(&self) -> &ZoneClock {
        &self.zone
    }

    /// A short description of the layout (`combined`, `json`, the log_format's name).
    pub fn layout_name(&self) -> &str {
        match &self.layout {
            Layout::Format(f) => f.name(),
            Layout::Json => "json",
            Layout::Ambiguous(names) => names,
        }
    }

    /// Parses one line. Returns the event and whether the whole line was consumed by the format
    /// (format recognition prefers formats that explain the whole line).
    pub fn parse_exact(&mut self, line: &[u8]) -> Result<(Event, bool), Unparsed> {
        self.parse_fields(line, true)
    }

    fn parse_fields(&mut self, line: &[u8], whole: bool) -> Result<(Event, bool), Unparsed> {
        let mut f = Fields::default();
        let end = match &self.layout {
            Layout::Format(format) => format.extract(line, &mut f, whole)?,
            Layout::Json => extract_json(line, &mut f)?,
            Layout::Ambiguous(_) => return Err(Unparsed::Ambiguous),
        };
        let time_raw = f.time.get(line).ok_or(Unparsed::Time)?;
        let time = self
            .time
            .get(time_raw, &mut self.zone)
            .ok_or(Unparsed::Time)?;
        let status = parse_status(f.status.get(line))?;
        let names_upstream =
            self.names_upstream && !(f.upstream_addr.is_none() && f.upstream_host.is_none());
        let up = upstream::of_fields(line, &f);
        let mut ev = Event {
            format: Some(Format::NginxAccess),
            kind: Kind::Request,
            time: Some(time),
            status,
            cause: Cause::NotApplicable,
            names_upstream,
            client: f.client,
            request: f.request,
            vhost: f.host,
            upstream: up.upstream,
            upstreams: up.upstreams,
            ..Event::default()
        };
        ev.cause = classify(
            status,
            up.last,
            f.upstream_status.get(line),
            f.connect_time.get(line),
        );
        if !up.service.is_none() {
            ev.upstream = up.service;
        }
        let exact = !whole || line[end..].iter().all(|b| b.is_ascii_whitespace());
        Ok((ev, exact))
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        self.parse_fields(line, false).map(|(ev, _)| ev)
    }

    /// The bytes besides newlines whose masks [`AccessParser::answered_in`] reads; `None`
    /// when it reads none (JSON lines, `escape=json`).
    pub fn mask_set(&self) -> Option<[u8; 3]> {
        match &self.layout {
            Layout::Format(f) => f.walk.as_ref().map(super::nginx_walk::Walk::set),
            _ => None,
        }
    }

    /// Whether the format's straight walk has the quick shape ([`AccessParser::answered_quickly`]).
    pub fn reads_windows(&self) -> bool {
        matches!(&self.layout, Layout::Format(f) if f.walk.as_ref().is_some_and(super::nginx_walk::Walk::has_quick))
    }

    /// Whether the short way of this parser's format is the straight walk.
    #[cfg(test)]
    pub(super) fn walks_straight(&self) -> bool {
        matches!(&self.layout, Layout::Format(f) if f.walk.as_ref().is_some_and(super::nginx_walk::Walk::is_straight))
    }

    /// Whether the quick shape of the straight walk reads `line` (alone in its buffer).
    #[cfg(test)]
    pub(super) fn reads_quickly(&self, line: &[u8]) -> bool {
        let Layout::Format(f) = &self.layout else {
            return false;
        };
        let set = self.mask_set().unwrap_or([b' ', b'"', b']']);
        // In a buffer with a window's room after the line, as the scan's buffers have.
        let mut buf = line.to_vec();
        buf.resize(line.len() + super::mask::BLOCK, b'\n');
        let m = super::mask::Bytes::new(&buf, 0, set);
        f.walk.as_ref().and_then(|w| w.quick(line, &m)).is_some()
    }

    /// [`AccessParser::answered_in`] for the lines the quick shape of the straight walk reads
    /// ([`super::nginx_walk::Walk::quick`]), at `start` of `buf`; `None` for every other line.
    /// Inlined into the line loops: with `Cpu<true>`, a loop compiled for AVX2
    /// ([`super::mask::on_cpu`]), the walk and its windows too; with [`Cpu::ANY`], a call to the
    /// walk compiled for AVX2 when the CPU has it. (The blocks' loop takes the call: the walk
    /// inlined into it measured worse there, its registers spilled — ingress-nginx +46
    /// instructions a line.)
    #[inline(always)]
    pub(super) fn answered_quickly<const AVX2: bool>(
        &mut self,
        cpu: Cpu<AVX2>,
        line: &[u8],
        buf: &[u8],
        start: usize,
    ) -> Option<Answered> {
        if AVX2 {
            return self.quickly(line, |set| cpu.bytes(buf, start, set));
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = self.cpu {
            // SAFETY: the CPU has AVX2 and BMI1 (`cpu` says it has).
            return unsafe { self.answered_quickly_avx2(cpu, line, buf, start) };
        }
        self.answered_quickly_plain(line, buf, start)
    }

    /// [`AccessParser::answered_quickly`] compiled for AVX2 and BMI1, whose windows then use
    /// AVX2.
    ///
    /// # Safety
    /// The CPU must have them (`cpu` says it has).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1")]
    #[inline(never)]
    unsafe fn answered_quickly_avx2(
        &mut self,
        cpu: Cpu<true>,
        line: &[u8],
        buf: &[u8],
        start: usize,
    ) -> Option<Answered> {
        self.quickly(line, |set| cpu.bytes(buf, start, set))
    }

    /// [`AccessParser::answered_quickly`] for every CPU (the tests compare the two).
    #[inline(never)]
    pub(super) fn answered_quickly_plain(
        &mut self,
        line: &[u8],
        buf: &[u8],
        start: usize,
    ) -> Option<Answered> {
        self.quickly(line, |set| Bytes::new(buf, start, set))
    }

    #[inline(always)]
    fn quickly<'a, const AVX2: bool>(
        &mut self,
        line: &[u8],
        bytes: impl FnOnce([u8; 3]) -> Bytes<'a, AVX2>,
    ) -> Option<Answered> {
        let Layout::Format(format) = &self.layout else {
            return None;
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Lines `parse` refuses before reading them (blank, coloured) start with these.
        let &first = line.first()?;
        if first.is_ascii_whitespace() || first == 0x1b {
            return None;
        }
        let walk = format.walk.as_ref()?;
        // (A constant: the masks of its bytes are made without loading them a line.)
        let q = walk.quick(line, &bytes(super::nginx_walk::STRAIGHT_SET))?;
        Some(Answered {
            time: self
                .time
                .get_fixed::<26>(line.get(q.time..q.time + 26)?, &mut self.zone)?,
            status: q.status,
            upstream: q.upstream,
            vhost: q.host,
            names_upstream: self.names_upstream && q.named,
        })
    }

    /// A request that did not fail, read the short way: what [`AccessParser::parse`] makes of
    /// `line` when it is one, `None` for every other line (which `parse` then reads).
    #[inline]
    pub fn answered(&mut self, line: &[u8]) -> Option<Answered> {
        let set = self.mask_set().unwrap_or([b' ', b'"', b']']);
        self.answered_in(line, &mut Masks::new(line, set))
    }

    /// [`AccessParser::answered`], through masks of [`AccessParser::mask_set`] computed with
    /// the line's buffer.
    #[inline]
    pub fn answered_in(&mut self, line: &[u8], masks: &mut impl Find) -> Option<Answered> {
        let Layout::Format(format) = &self.layout else {
            return None;
        };
        let mut f = Fields::default();
        match &format.walk {
            Some(walk) => walk.answered(line, masks, &mut f)?,
            None => {
                format.extract(line, &mut f, false).ok()?;
            }
        }
        let status = match f.status.get(line)? {
            // Three digits, as nearly always.
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => {
                (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16
            }
            other => parse_status(Some(other)).ok()??,
        };
        if status >= 500 || status == 9 {
            return None;
        }
        let time = self.time.get(f.time.get(line)?, &mut self.zone)?;
        let upstream = match f.upstream_addr.get(line) {
            // One upstream and no ingress-nginx service, as nearly always: `upstream::of_fields`'s
            // answer without its walk.
            Some(a)
                if f.service.is_none()
                    && a != b"-"
                    && (f.single_upstream || bytes::find_byte2(b',', b' ', a).is_none()) =>
            {
                f.upstream_addr
            }
            _ => {
                let up = upstream::of_fields(line, &f);
                if up.service.is_none() {
                    up.upstream
                } else {
                    up.service
                }
            }
        };
        Some(Answered {
            time,
            status,
            upstream,
            vhost: f.host,
            names_upstream: self.names_upstream
                && !(f.upstream_addr.is_none() && f.upstream_host.is_none()),
        })
    }
}

/// `$status`: digits (nginx logs `009` for an HTTP/0.9 answer and `000`/`499` for clients that
/// went away), or `-`.
fn parse_status(raw: Option<&[u8]>) -> Result<Option<u16>, Unparsed> {
    let Some(raw) = raw else { return Ok(None) };
    if raw == b"-" {
        return Ok(None);
    }
    if raw.is_empty() || raw.len() > 4 {
        return Err(Unparsed::Status);
    }
    let mut n: u16 = 0;
    for &b in raw {
        if !b.is_ascii_digit() {
            return Err(Unparsed::Status);
        }
        n = n * 10 + (b - b'0') as u16;
    }
    Ok(Some(n))
}

/// The cause an access-log line names by itself (DESIGN §2). A 5xx that names none is
/// `other_5xx`; joined with the error log it may get a cause later.
fn classify(
    status: Option<u16>,
    last_addr: Option<&[u8]>,
    upstream_status: Option<&[u8]>,
    connect_time: Option<&[u8]>,
) -> Cause {
    let Some(status) = status else {
        return Cause::NotApplicable;
    };
    if status == 9 {
        // nginx answers an upstream's HTTP/0.9-looking reply ("upstream sent no valid HTTP/1.0
        // header") and logs status 009.
        return Cause::UpstreamProtocolError;
    }
    if status < 500 {
        return Cause::Ok;
    }
    let Some(addr) = last_addr else {
        return Cause::Other5xx;
    };
    if addr == b"-" {
        return Cause::Other5xx;
    }
    let never_connected = connect_time.is_some_and(upstream::all_dash);
    let last_status = upstream_status.map(upstream::last_item);
    let placeholder = addr.split(|&b| b == b':').next()
        == Some(crate::engine::parse::nginx_error::PLACEHOLDER_PEER);
    if (upstream::is_pool_name(addr) || placeholder) && matches!(status, 502 | 503) {
        // `$upstream_addr` holds the pool's name only when no server of it was live;
        // ingress-nginx's placeholder peer when a service has no endpoints.
        return Cause::NoLiveUpstreams;
    }
    match status {
        504 if last_status == Some(b"504") || never_connected => Cause::UpstreamTimeout,
        502 | 503 if never_connected && last_status != Some(b"504") => Cause::UpstreamUnreachable,
        502 | 503 if never_connected => Cause::UpstreamTimeout,
        _ => Cause::Other5xx,
    }
}

/// Reads the usual fields of a JSON access-log line. The scan is tolerant: nginx writes numbers
/// such as `"status":009` that strict JSON refuses, and values are taken as raw spans.
fn extract_json(line: &[u8], out: &mut Fields) -> Result<usize, Unparsed> {
    json::walk(line, 0, |key, value| {
        let slot = match key {
            b"remote_addr" | b"client" | b"client_ip" | b"clientip" | b"remote_ip" => {
                &mut out.client
            }
            b"time_local" | b"time_iso8601" | b"msec" | b"time" | b"timestamp" | b"@timestamp" => {
                &mut out.time
            }
            b"status" | b"status_code" => &mut out.status,
            b"request" => &mut out.request,
            b"host" | b"http_host" | b"server_name" | b"vhost" => &mut out.host,
            b"upstream_addr" | b"upstream" => &mut out.upstream_addr,
            b"upstream_status" => &mut out.upstream_status,
            b"upstream_connect_time" => &mut out.connect_time,
            _ => return,
        };
        if slot.is_none() {
            *slot = value.text();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Zone;

    fn parser(format: &str) -> AccessParser {
        AccessParser::new(
            LogFormat::from_directive(format).unwrap(),
            ZoneClock::new(Zone::Utc),
        )
    }

    fn check(p: &mut AccessParser, line: &str) -> (Option<u16>, Cause, Option<String>) {
        let ev = p.parse(line.as_bytes()).unwrap();
        let up = ev
            .upstream(line.as_bytes())
            .map(|u| String::from_utf8_lossy(u).into_owned());
        (ev.status, ev.cause, up)
    }

    #[test]
    fn combined_lines_have_no_upstream() {
        let mut p = parser(COMBINED);
        let line = r#"203.0.113.7 - - [01/May/2024:12:00:00 +0000] "GET /v1/x HTTP/1.1" 502 157 "-" "curl/8.0""#;
        assert_eq!(check(&mut p, line), (Some(502), Cause::Other5xx, None));
        let ev = p.parse(line.as_bytes()).unwrap();
        assert_eq!(ev.client(line.as_bytes()), Some(&b"203.0.113.7"[..]));
        assert_eq!(ev.path(line.as_bytes()), Some(&b"/v1/x"[..]));
        assert_eq!(ev.time.unwrap().to_rfc3339(), "2024-05-01T12:00:00+00:00");
    }

    #[test]
    fn upstream_fields_name_the_cause() {
        let mut p = parser(GATEWATCH);
        let head = r#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1""#;
        let cases = [
            // (status and upstream fields, expected)
            (
                r#"502 157 "-" "ua" api 10.0.1.5:8080 502 - - 0.000 0.001"#,
                (Some(502), Cause::UpstreamUnreachable, Some("10.0.1.5:8080")),
            ),
            (
                r#"502 157 "-" "ua" api 10.0.1.5:8080, 10.0.1.6:8080 502, 502 -, - -, - 0.000, 0.000 0.001"#,
                (Some(502), Cause::UpstreamUnreachable, Some("10.0.1.6:8080")),
            ),
            (
                r#"502 157 "-" "ua" api backend 502 - - 0.000 0.000"#,
                (Some(502), Cause::NoLiveUpstreams, Some("backend")),
            ),
            (
                r#"504 157 "-" "ua" api 10.0.1.5:8080 504 - - 60.001 60.001"#,
                (Some(504), Cause::UpstreamTimeout, Some("10.0.1.5:8080")),
            ),
            (
                r#"504 157 "-" "ua" api 10.0.1.5:8080 504 0.001 - 60.001 60.001"#,
                (Some(504), Cause::UpstreamTimeout, Some("10.0.1.5:8080")),
            ),
            (
                r#"502 157 "-" "ua" api 10.0.1.5:8080 502 0.001 - 0.002 0.002"#,
                (Some(502), Cause::Other5xx, Some("10.0.1.5:8080")),
            ),
            (
                r#"200 157 "-" "ua" api 10.0.1.5:8080, 10.0.1.6:8080 502, 200 -, 0.001 -, 0.010 0.000, 0.010 0.011"#,
                (Some(200), Cause::Ok, Some("10.0.1.6:8080")),
            ),
            (
                r#"009 0 "-" "ua" api 10.0.1.5:8080 009 0.001 - 0.002 0.002"#,
                (Some(9), Cause::UpstreamProtocolError, Some("10.0.1.5:8080")),
            ),
            (
                r#"500 10 "-" "ua" api 10.0.1.5:8080 500 0.001 0.004 0.004 0.005"#,
                (Some(500), Cause::Other5xx, Some("10.0.1.5:8080")),
            ),
            (
                r#"503 10 "-" "ua" api - - - - - 0.000"#,
                (Some(503), Cause::Other5xx, None),
            ),
        ];
        for (tail, (status, cause, up)) in cases {
            let line = format!("{head} {tail}");
            assert_eq!(
                check(&mut p, &line),
                (status, cause, up.map(String::from)),
                "{line}"
            );
        }
    }

    #[test]
    fn directives_are_accepted_as_written_in_nginx_conf() {
        let conf = r#"log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';"#;
        let f = LogFormat::from_directive(conf).unwrap();
        assert_eq!(f.name(), "main");
        let mut p = AccessParser::new(f, ZoneClock::new(Zone::Utc));
        let line =
            r#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" "-""#;
        assert_eq!(check(&mut p, line).1, Cause::Ok);
        assert!(LogFormat::from_directive("$status$request_time").is_err());
        assert!(LogFormat::from_directive("'$remote_addr [$time_local]'").is_err());
        assert!(LogFormat::from_directive("log_format x escape=yaml '$status'").is_err());
    }

    #[test]
    fn escape_json_formats_and_invalid_json_numbers() {
        let conf = r#"log_format j escape=json '{"time":"$time_iso8601","client":"$remote_addr","request":"$request","status":$status,"upstream":"$upstream_addr","ustatus":"$upstream_status","uct":"$upstream_connect_time"}';"#;
        let mut p = parser(conf);
        let line = r#"{"time":"2024-05-01T12:00:00+02:00","client":"10.0.0.1","request":"GET /a\"b HTTP/1.1","status":009,"upstream":"10.0.1.5:8080","ustatus":"009","uct":"0.001"}"#;
        assert_eq!(
            check(&mut p, line),
            (
                Some(9),
                Cause::UpstreamProtocolError,
                Some("10.0.1.5:8080".into())
            )
        );
        let line = r#"{"time":"2024-05-01T12:00:00+02:00","client":"10.0.0.1","request":"GET / HTTP/1.1","status":502,"upstream":"10.0.1.5:8080, 10.0.1.6:8080","ustatus":"502, 502","uct":"-, -"}"#;
        assert_eq!(
            check(&mut p, line),
            (
                Some(502),
                Cause::UpstreamUnreachable,
                Some("10.0.1.6:8080".into())
            )
        );
    }

    #[test]
    fn json_lines_are_read_without_a_format() {
        let mut p = AccessParser::json(ZoneClock::new(Zone::Utc));
        let line = r#"{"time_local":"01/May/2024:12:00:00 +0000","remote_addr":"10.0.0.1","request":"GET / HTTP/1.1","status": 502,"upstream_addr":"unix:/run/app.sock","upstream_status":"502","upstream_connect_time":"-","extra":{"a":[1,2]}}"#;
        assert_eq!(
            check(&mut p, line),
            (
                Some(502),
                Cause::UpstreamUnreachable,
                Some("unix:/run/app.sock".into())
            )
        );
        assert!(p.parse(b"{\"status\":200}").is_err());
        assert!(p.parse(b"not json").is_err());
    }

    #[test]
    fn recognition_prefers_the_format_that_explains_whole_lines() {
        let zone = ZoneClock::new(Zone::Utc);
        let line = br#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "ua" api 10.0.1.5:8080 502 - - 0.000 0.001"#;
        assert_eq!(
            recognise(&[line], &zone).unwrap().layout_name(),
            "gatewatch"
        );
        let line = br#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#;
        assert_eq!(recognise(&[line], &zone).unwrap().layout_name(), "combined");
        assert!(recognise(&[b"garbage"], &zone).is_none());
    }

    /// Every generation of ingress-nginx's `upstreaminfo` is recognised as itself, never as
    /// gatewatch's format (whose fields its values fill wrongly: `$request_time` where
    /// `$upstream_addr` is), and its upstream is read. The first line is elastic/beats'
    /// `filebeat/module/nginx/ingress_controller/test/test.log`; the older ones are it in the
    /// older layouts.
    #[test]
    fn every_generation_of_ingress_nginx_upstreaminfo_is_recognised() {
        let zone = ZoneClock::new(Zone::Utc);
        let head = r#"2a02:cf40::4e36 - - [24/Aug/2022:18:05:41 +0000] "GET /favicon.ico HTTP/2.0" 502 552 "https://localhost:8080/" "Mozilla/5.0" 27 0.000"#;
        let cases = [
            (
                format!(
                    "{head} [localhost-8080] [] [2a02:cf40::7]:5000, [2a02:cf40::4e36]:5000 0, 0 0.000, 0.000 502, 502 3db73c6c673c4256ade033a6ce08c2ab"
                ),
                "upstreaminfo",
            ),
            (
                "10.0.0.7 - [10.0.0.7] - - [24/Aug/2022:18:05:41 +0000] \"GET / HTTP/1.1\" 504 160 \"-\" \"curl/7.54.0\" 77 60.001 [default-web-8080] 172.17.0.5:8080 0 60.000 504 0be411044cb1cb67580e115413b2da60".to_string(),
                "upstreaminfo-0.20",
            ),
            (
                "10.0.0.7 - [10.0.0.7] - - [24/Aug/2022:18:05:41 +0000] \"GET / HTTP/1.1\" 504 160 \"-\" \"curl/7.54.0\" 77 60.001 [default-web-8080] 172.17.0.5:8080 0 60.000 504".to_string(),
                "upstreaminfo-0.10",
            ),
            (
                "[10.0.0.7] - - [24/Aug/2022:18:05:41 +0000] \"GET / HTTP/1.1\" 504 160 \"-\" \"curl/7.54.0\" 77 60.001 [default-web-8080] 172.17.0.5:8080 0 60.000 504".to_string(),
                "upstreaminfo-0.9",
            ),
        ];
        for (line, want) in &cases {
            let mut p = recognise(&[line.as_bytes()], &zone).unwrap();
            assert_eq!(p.layout_name(), *want, "{line}");
            let ev = p.parse(line.as_bytes()).unwrap();
            let up = ev
                .upstream(line.as_bytes())
                .map(|u| String::from_utf8_lossy(u).into_owned());
            // The service is the upstream; the pods tried are the detail.
            assert!(
                matches!(up.as_deref(), Some("localhost-8080" | "default-web-8080")),
                "{want}: {up:?}"
            );
            let pods = ev
                .upstreams
                .get(line.as_bytes())
                .map(|u| String::from_utf8_lossy(u).into_owned());
            assert!(
                pods.is_some_and(|p| p.contains(":5000") || p.contains(":8080")),
                "{want}"
            );
            assert!(ev.client(line.as_bytes()).is_some(), "{want}");
        }
        // A service without endpoints: ingress-nginx's placeholder peer.
        let none = format!(
            "{head} [default-web-8080] [] 0.0.0.1:80 0 0.000 503 3db73c6c673c4256ade033a6ce08c2ab"
        )
        .replacen(" 502 552 ", " 503 190 ", 1);
        let mut p = recognise(&[none.as_bytes()], &zone).unwrap();
        assert_eq!(
            p.parse(none.as_bytes()).unwrap().cause,
            Cause::NoLiveUpstreams
        );
        // gatewatch's own format does not read an upstreaminfo line.
        let mut g = parser(GATEWATCH);
        assert!(g.parse_exact(cases[0].0.as_bytes()).is_err());
    }

    /// Two layouts that fit the same lines equally well but read them differently: neither is
    /// chosen, every line is refused with the reason, and the names say which to choose from.
    #[test]
    fn an_ambiguous_choice_is_refused_with_the_candidates() {
        let zone = ZoneClock::new(Zone::Utc);
        let a = LogFormat::compile(
            "a",
            Escape::Default,
            "$remote_addr [$time_local] $status $body_bytes_sent",
        )
        .unwrap();
        let b = LogFormat::compile(
            "b",
            Escape::Default,
            "$remote_addr [$time_local] $body_bytes_sent $status",
        )
        .unwrap();
        let line: &[u8] = b"10.0.0.1 [01/May/2024:12:00:00 +0000] 200 502";
        let mut p = recognise_among(
            &[line],
            vec![
                AccessParser::new(a.clone(), zone.clone()),
                AccessParser::new(b, zone.clone()),
            ],
        )
        .unwrap();
        assert_eq!(p.layout_name(), "ambiguous: a or b");
        assert_eq!(p.parse(line).unwrap_err(), Unparsed::Ambiguous);
        // Alike in meaning (the same layout twice): no ambiguity.
        let p = recognise_among(
            &[line],
            vec![
                AccessParser::new(a.clone(), zone.clone()),
                AccessParser::new(a, zone),
            ],
        )
        .unwrap();
        assert_eq!(p.layout_name(), "a");
    }

    /// Nginx Proxy Manager's formats are recognised, and every known format can be named in
    /// place of its text; `$server` (NPM's forward host) is the upstream.
    #[test]
    fn named_formats_and_nginx_proxy_manager() {
        let zone = ZoneClock::new(Zone::Utc);
        let npm = br#"[24/Apr/2026:10:05:35 +0800] - 502 502 - GET https app.example.com "/api/orders" [Client 203.0.113.10] [Length 166] [Gzip -] [Sent-to 10.0.0.2] "curl/8.5.0" "-""#;
        let mut p = recognise(&[npm], &zone).unwrap();
        assert_eq!(p.layout_name(), "npm");
        let ev = p.parse(npm).unwrap();
        assert_eq!(ev.status, Some(502));
        assert_eq!(ev.upstream(npm), Some(&b"10.0.0.2"[..]));
        assert_eq!(ev.client(npm), Some(&b"203.0.113.10"[..]));
        assert_eq!(ev.time.unwrap().to_rfc3339(), "2026-04-24T10:05:35+08:00");
        let standard = br#"[24/Apr/2026:10:05:35 +0800] 404 - GET https app.example.com "/x" [Client 203.0.113.10] [Length 0] [Gzip -] "curl/8.5.0" "-""#;
        assert_eq!(
            recognise(&[standard], &zone).unwrap().layout_name(),
            "npm-standard"
        );
        for (name, _) in KNOWN {
            assert_eq!(LogFormat::from_directive(name).unwrap().name(), name);
        }
        let e = LogFormat::from_directive("apache").unwrap_err().to_string();
        assert!(e.contains("not a known format") && e.contains("npm"), "{e}");
    }
}

//! AWS Application Load Balancer access logs.
//!
//! Fields are separated by spaces; some are quoted. AWS appends new fields at the end ("You should
//! ignore any fields at the end of the log entry that you were not expecting"), and parsers that
//! insisted on an exact count broke each time (Vector's `parse_aws_alb_log` on `conn_trace_id` in
//! 2024 and on the three transform fields in 2025), so anything after the fields read here is
//! accepted and ignored.

use super::mask::{self, Find, Masks, Scan};
use super::nginx_access::Answered;

const SPACE: [u64; 3] = mask::select(mask::FIRST);
const QUOTE_OR_ESCAPE: [u64; 3] = mask::select(mask::SECOND | mask::THIRD);
use crate::engine::event::{Cause, Event, Format, Kind, Span, Timestamp, Unparsed};
use crate::engine::time;

/// Field positions (0-based) in an ALB access-log entry.
mod field {
    pub const TYPE: usize = 0;
    pub const TIME: usize = 1;
    pub const CLIENT: usize = 3;
    pub const TARGET: usize = 4;
    pub const TARGET_PROCESSING: usize = 6;
    pub const RESPONSE_PROCESSING: usize = 7;
    pub const ELB_STATUS: usize = 8;
    pub const TARGET_STATUS: usize = 9;
    pub const REQUEST: usize = 12;
    pub const TARGET_GROUP: usize = 16;
    pub const DOMAIN: usize = 18;
    pub const ERROR_REASON: usize = 24;
    /// The fields up to `trace_id` are required: the first generation (2016) ended there or
    /// with `domain_name` and `chosen_cert_arn`, and AWS appended `matched_rule_priority`,
    /// `request_creation_time`, `actions_executed`, `redirect_url`, `error_reason` (2018) and
    /// more since; fields a line does not have are read as empty.
    pub const REQUIRED: usize = 18;
    /// The fields read (up to `error_reason`); later ones (`target:port_list`,
    /// `classification`, `conn_trace_id`, transforms, …) are ignored.
    pub const READ: usize = 25;
}

const TYPES: [&[u8]; 6] = [b"http", b"https", b"h2", b"grpcs", b"ws", b"wss"];

/// Parser for ALB access logs.
#[derive(Clone, Debug, Default)]
pub struct AlbParser {
    seconds: time::Iso8601Seconds,
}

impl AlbParser {
    pub fn new() -> AlbParser {
        AlbParser::default()
    }

    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let e = self.read(line, &mut Masks::new(line, MASK_SET))?;
        let get = |i: usize| -> &[u8] { e.spans[i].get(line).unwrap_or(b"") };
        let target = get(field::TARGET);
        let mut ev = Event {
            format: Some(Format::Alb),
            kind: Kind::Request,
            time: Some(e.time),
            status: e.status,
            names_upstream: true,
            ..Event::default()
        };
        let client = get(field::CLIENT);
        if let Some(colon) = client.iter().rposition(|&b| b == b':') {
            ev.client = Span::of(line, &client[..colon]);
        }
        ev.request = e.spans[field::REQUEST];
        ev.vhost = e.vhost(line);
        ev.upstream = e.upstream(line);
        ev.upstreams = ev.upstream;
        ev.cause = classify(
            e.status,
            target != b"-",
            get(field::TARGET_STATUS),
            get(field::TARGET_PROCESSING),
            get(field::RESPONSE_PROCESSING),
            get(field::ERROR_REASON),
        );
        Ok(ev)
    }

    /// A request that did not fail (its status below 500), read the short way: what `parse`
    /// makes of it, without an event; `None` for any other line.
    #[inline]
    pub fn answered_in(&mut self, line: &[u8], masks: &mut impl Find) -> Option<Answered> {
        let e = self.read(line, masks).ok()?;
        let status = e.status.filter(|&s| s < 500)?;
        Some(Answered {
            time: e.time,
            status,
            upstream: e.upstream(line),
            vhost: e.vhost(line),
            names_upstream: true,
        })
    }

    /// The fields of an entry, its time and its status.
    #[inline(always)]
    fn read(&mut self, line: &[u8], masks: &mut impl Find) -> Result<Entry, Unparsed> {
        let mut spans = [Span::NONE; field::READ];
        let count = split(line, masks, &mut spans)?;
        if count < field::REQUIRED {
            return Err(Unparsed::Shape);
        }
        let get = |i: usize| -> &[u8] { spans[i].get(line).unwrap_or(b"") };
        if !TYPES.contains(&get(field::TYPE)) {
            return Err(Unparsed::Shape);
        }
        let time = self.time(get(field::TIME)).ok_or(Unparsed::Time)?;
        let status = status(get(field::ELB_STATUS))?;
        Ok(Entry {
            spans,
            time,
            status,
        })
    }

    fn time(&mut self, raw: &[u8]) -> Option<Timestamp> {
        let (naive, off, used) = self.seconds.parse(raw)?;
        if used != raw.len() {
            return None;
        }
        let off = off.unwrap_or(0);
        Some(Timestamp::new(naive - off as i64 * 1000, off))
    }
}

/// The bytes the tokenizer's masks find: a field ends at a space, a quoted one at a quote not
/// escaped by a backslash.
pub const MASK_SET: [u8; 3] = [b' ', b'"', b'\\'];

/// An entry's fields as read, its time and the load balancer's status.
struct Entry {
    spans: [Span; field::READ],
    time: Timestamp,
    status: Option<u16>,
}

impl Entry {
    fn get<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        self.spans[i].get(line).unwrap_or(b"")
    }

    /// The virtual host: `domain_name`, or the host of the request's URL.
    fn vhost(&self, line: &[u8]) -> Span {
        let domain = self.get(line, field::DOMAIN);
        if !domain.is_empty() && domain != b"-" {
            self.spans[field::DOMAIN]
        } else if let Some(host) = url_host(self.get(line, field::REQUEST)) {
            Span::of(line, host)
        } else {
            Span::NONE
        }
    }

    /// The upstream: the target, or the target group's name when no target was chosen.
    fn upstream(&self, line: &[u8]) -> Span {
        let target = self.get(line, field::TARGET);
        if target != b"-" && !target.is_empty() {
            self.spans[field::TARGET]
        } else if let Some(tg) = target_group_name(self.get(line, field::TARGET_GROUP)) {
            Span::of(line, tg)
        } else {
            Span::NONE
        }
    }
}

fn status(raw: &[u8]) -> Result<Option<u16>, Unparsed> {
    if raw == b"-" {
        return Ok(None);
    }
    if raw.is_empty() || raw.len() > 3 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(Unparsed::Status);
    }
    Ok(Some(
        raw.iter().fold(0u16, |n, &b| n * 10 + (b - b'0') as u16),
    ))
}

/// The cause of an ALB entry (AWS "Troubleshoot your Application Load Balancers").
fn classify(
    elb_status: Option<u16>,
    has_target: bool,
    target_status: &[u8],
    target_processing: &[u8],
    response_processing: &[u8],
    error_reason: &[u8],
) -> Cause {
    let Some(status) = elb_status else {
        return Cause::NotApplicable;
    };
    if status < 500 {
        return Cause::Ok;
    }
    let target_answered = target_status != b"-";
    if let Some(lambda) = error_reason.strip_prefix(b"Lambda") {
        return match lambda {
            b"ConnectionTimeout" => Cause::UpstreamTimeout,
            b"InvalidResponse" | b"ResponseTooLarge" => Cause::UpstreamProtocolError,
            _ => Cause::Other5xx,
        };
    }
    match status {
        // "The target groups for the load balancer have no registered targets."
        503 if !has_target && !target_answered => Cause::NoLiveUpstreams,
        // Connection timeout (10 s), idle timeout, or TLS handshake timeout to the target.
        504 if !target_answered => Cause::UpstreamTimeout,
        // A TCP RST or an ICMP unreachable when connecting: the target never answered and no
        // time was spent waiting for it.
        502 if has_target
            && !target_answered
            && target_processing == b"-1"
            && response_processing == b"-1" =>
        {
            Cause::UpstreamUnreachable
        }
        _ => Cause::Other5xx,
    }
}

/// `my-targets` of `arn:aws:elasticloadbalancing:…:targetgroup/my-targets/73e2d6bc24d8a067`.
fn target_group_name(arn: &[u8]) -> Option<&[u8]> {
    let i = find!(arn, b"targetgroup/")?;
    let rest = &arn[i + 12..];
    let end = memchr::memchr(b'/', rest).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// `www.example.com` of `GET http://www.example.com:80/ HTTP/1.1`.
fn url_host(request: &[u8]) -> Option<&[u8]> {
    let i = find!(request, b"://")?;
    let rest = &request[i + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b':' || b == b'/' || b == b' ')
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Splits `line` into its first `out.len()` fields (fewer if it has fewer): space-separated,
/// a field starting with `"` running to the next unescaped `"` (its span without the quotes).
/// The number of fields, or the error of the first that breaks those rules. The line's spaces,
/// quotes and backslashes are found 64 bytes at a time ([`mask`]): an unquoted field costs a
/// count of trailing zeros, not a search. `masks` are those of `line` (of [`MASK_SET`]); the
/// trailing white space it ignores does not matter to them.
///
/// Most lines are read by [`split_stretches`] (the quoted stretches of 64 bytes at a time,
/// from bit masks); a line it cannot vouch for by the walk of [`split_walk`].
#[inline(always)]
fn split(line: &[u8], masks: &mut impl Find, out: &mut [Span]) -> Result<usize, Unparsed> {
    match split_stretches(line, masks, out) {
        Some(n) => Ok(n),
        None => split_walk(line, masks, out),
    }
}

/// The fields of [`split`] through bit masks of 64 bytes at a time, simdjson's way: the bytes
/// a backslash escapes ([`mask::escaped`]), the quoted stretches (a prefix XOR of the quotes
/// not escaped, [`mask::prefix_xor`]), and the spaces outside them, which end the fields — a
/// field costs a count of trailing zeros, quoted or not. This agrees with the walk when the
/// line keeps the rules the walk reads it by, which are checked a block at a time: a quote
/// that opens a stretch starts a field (the line's start or a space before it), a quote that
/// closes one ends a field (a space or the line's end after it), no backslash outside a
/// stretch, no stretch open at the end. `None` when one is broken: the walk then reads the
/// line and says what is wrong with it.
#[inline(always)]
fn split_stretches(line: &[u8], masks: &mut impl Find, out: &mut [Span]) -> Option<usize> {
    let b = line.trim_ascii_end();
    if b.is_empty() || out.is_empty() {
        return Some(0);
    }
    let (start, _) = masks.bounds();
    let stop = start + b.len();
    let (mut n, mut field) = (0, 0);
    // Carried from block to block: an escape, an open stretch, a space or the line's start
    // before the block (bit 0), a closing quote at the end of the block before.
    let (mut escape, mut open, mut closed) = (0u64, 0u64, 0u64);
    let mut space_before = 1 << (start % mask::BLOCK);
    // The line's bits of the block: from its start in the first, to its end in the last.
    let mut from = !0 << (start % mask::BLOCK);
    let mut w = start / mask::BLOCK;
    let last = (stop - 1) / mask::BLOCK;
    loop {
        let base = w * mask::BLOCK;
        let within = match w == last {
            true => !0 >> (mask::BLOCK - 1 - (stop - 1) % mask::BLOCK),
            false => !0,
        };
        let [spaces, quotes, backslashes] = masks.blocks(w).map(|m| m & within & from);
        let quotes = quotes & !mask::escaped(backslashes, &mut escape);
        let inside = mask::prefix_xor(quotes) ^ open;
        open = ((inside as i64) >> 63) as u64;
        let (opening, closing) = (quotes & inside, quotes & !inside);
        // Bit `i`: the byte before `i` is a closing quote.
        let after_closing = closing << 1 | closed;
        if backslashes & !inside != 0
            || opening & !(spaces << 1 | space_before) != 0
            || after_closing & !(spaces | !within) != 0
        {
            return None;
        }
        let mut ends = spaces & !inside;
        while ends != 0 {
            let i = ends.trailing_zeros() as usize;
            ends &= ends - 1;
            let end = base + i - start;
            // A field that ends with a closing quote began with the quote that opened it.
            let q = (after_closing >> i) as usize & 1;
            *out.get_mut(n)? = Span::new(field + q, end - q);
            n += 1;
            if n == out.len() {
                return Some(n);
            }
            field = end + 1;
        }
        if w == last {
            break;
        }
        (space_before, closed, from) = (spaces >> 63, closing >> 63, !0);
        w += 1;
    }
    if open != 0 {
        return None;
    }
    let q = usize::from(b[field] == b'"');
    out[n] = Span::new(field + q, b.len() - q);
    Some(n + 1)
}

/// [`split`] one field after the other: a quoted field's end searched for, quote or escape.
#[inline(always)]
fn split_walk(line: &[u8], masks: &mut impl Find, out: &mut [Span]) -> Result<usize, Unparsed> {
    let b = line.trim_ascii_end();
    let mut spaces = Scan::new(masks, &SPACE, 0);
    let mut pos = 0;
    let mut n = 0;
    while pos < b.len() && n < out.len() {
        if b[pos] == b'"' {
            let start = pos + 1;
            let mut p = start;
            let end = loop {
                match masks.find_in(&QUOTE_OR_ESCAPE, p) {
                    Some(i) if b[i] == b'\\' => p = i + 2,
                    Some(end) => break end,
                    None => return Err(Unparsed::Shape),
                }
                if p > b.len() {
                    return Err(Unparsed::Shape);
                }
            };
            pos = end + 1;
            if pos < b.len() {
                if b[pos] != b' ' {
                    return Err(Unparsed::Shape);
                }
                pos += 1;
            }
            out[n] = Span::new(start, end);
            n += 1;
            spaces.seek(masks, &SPACE, pos);
            continue;
        }
        // (The masks may be of the line with its trailing white space: a space found there
        // is past the last field's end.)
        let end = match spaces.next(masks, &SPACE) {
            Some(e) if e < b.len() => e,
            _ => b.len(),
        };
        out[n] = Span::new(pos, end);
        n += 1;
        pos = end + 1;
    }
    Ok(n)
}

/// Whether [`split`] splits `line` as a plain byte-by-byte walk does (the differential check
/// of the fuzz target and the tests): every field, and the first [`field::READ`] as the parser
/// reads them.
#[doc(hidden)]
pub fn tokens_agree(line: &[u8]) -> bool {
    let plain = plain_tokens(line);
    let first_error = plain.iter().position(Result::is_err);
    let split_all = |out: &mut [Span]| split(line, &mut Masks::new(line, MASK_SET), out);
    let mut all = vec![Span::NONE; plain.len() + 1];
    let whole = match (split_all(&mut all), first_error) {
        (Ok(n), None) => n == plain.len() && plain.iter().zip(&all).all(|(p, s)| p == &Ok(*s)),
        (Err(e), Some(i)) => {
            plain[i] == Err(e) && plain[..i].iter().zip(&all).all(|(p, s)| p == &Ok(*s))
        }
        _ => false,
    };
    let mut first = [Span::NONE; field::READ];
    let read = split_all(&mut first);
    let want = match first_error {
        Some(i) if i < field::READ => Err(plain[i].expect_err("an error")),
        _ => Ok(plain.len().min(field::READ)),
    };
    whole && read == want
}

/// The reference for [`split`]: the same rules, one byte at a time.
fn plain_tokens(line: &[u8]) -> Vec<Result<Span, Unparsed>> {
    let b = line.trim_ascii_end();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        if b[pos] == b'"' {
            let start = pos + 1;
            let mut p = start;
            let end = loop {
                match b.get(p) {
                    None => break None,
                    Some(b'\\') => p += 2,
                    Some(b'"') => break Some(p),
                    Some(_) => p += 1,
                }
            };
            let Some(end) = end else {
                out.push(Err(Unparsed::Shape));
                return out;
            };
            pos = end + 1;
            if pos < b.len() {
                if b[pos] != b' ' {
                    out.push(Err(Unparsed::Shape));
                    return out;
                }
                pos += 1;
            }
            out.push(Ok(Span::new(start, end)));
            continue;
        }
        let end = (pos..b.len()).find(|&i| b[i] == b' ').unwrap_or(b.len());
        out.push(Ok(Span::new(pos, end)));
        pos = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_masked_tokenizer_splits_as_a_plain_walk() {
        // Mutations of real-shaped lines: quotes, backslashes and spaces moved, added, removed,
        // lines cut anywhere (across the 64-byte blocks of the masks).
        let base = OK.as_bytes();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let parser = crate::engine::parse::Parser::Alb(AlbParser::new());
        let (mut short, mut stretches) = (0, 0);
        for cut in 0..base.len() {
            assert!(tokens_agree(&base[..cut]), "cut at {cut}");
            assert!(parser.answered_agrees(&base[..cut]), "cut at {cut}");
        }
        // Trailing white space, which the tokenizer ignores and the buffer's masks do not,
        // after an entry of an older generation whose last field is read and unquoted
        // (`matched_rule_priority`).
        let spans = plain_tokens(OK.as_bytes());
        let end = spans[20].as_ref().unwrap().end as usize;
        let first_generation = &OK[..end];
        assert!(first_generation.ends_with(" 0"), "{first_generation}");
        for tail in ["", " ", "\t", " \t ", "\t ", "\r\t  ", " x\t "] {
            let line = format!("{first_generation}{tail}");
            assert!(tokens_agree(line.as_bytes()), "{line:?}");
            assert!(
                parser.clone().answered(line.as_bytes()).is_some(),
                "{line:?}"
            );
            assert!(parser.answered_agrees(line.as_bytes()), "{line:?}");
        }
        for _ in 0..20_000 {
            let mut line = base.to_vec();
            for _ in 0..1 + rand() % 4 {
                let at = rand() as usize % line.len();
                let b = [b'"', b'\\', b' ', b'x'][rand() as usize % 4];
                match rand() % 3 {
                    0 => line[at] = b,
                    1 => line.insert(at, b),
                    _ => {
                        line.remove(at);
                    }
                }
            }
            assert!(tokens_agree(&line), "{}", String::from_utf8_lossy(&line));
            // The short way of answered requests reads it as `parse` does.
            assert!(
                parser.answered_agrees(&line),
                "{}",
                String::from_utf8_lossy(&line)
            );
            short += usize::from(parser.clone().answered(&line).is_some());
            stretches += usize::from(stretches_agree(&line).unwrap());
        }
        assert!(short > 1_000, "{short}");
        // Most of the mutated lines still keep the rules of the stretches' way.
        assert!(stretches > 5_000, "{stretches}");
        // Every entry of the test data (the documented examples of every generation) does.
        let data = include_str!("../../../tests/data/alb.log");
        for line in data.lines().chain([OK]) {
            assert_eq!(stretches_agree(line.as_bytes()), Some(true), "{line}");
        }
    }

    /// Whether [`split_stretches`] read `line` (`None`: it refused a line the walk reads without
    /// error, or read one differently).
    fn stretches_agree(line: &[u8]) -> Option<bool> {
        let (mut a, mut b) = ([Span::NONE; field::READ], [Span::NONE; field::READ]);
        let fast = split_stretches(line, &mut Masks::new(line, MASK_SET), &mut a);
        let walk = split_walk(line, &mut Masks::new(line, MASK_SET), &mut b);
        match (fast, walk) {
            (Some(n), Ok(m)) if n == m && a == b => Some(true),
            (None, _) => Some(false),
            _ => None,
        }
    }

    use super::*;

    /// AWS's documented HTTP example, with the newer trailing fields real logs carry.
    const OK: &str = r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_37acbe0641d1c34287fee137ef3a5286 "-" "-" "-""#;

    fn parse(line: &str) -> (Option<u16>, Cause, Option<String>) {
        let ev = AlbParser::new().parse(line.as_bytes()).unwrap();
        let up = ev
            .upstream(line.as_bytes())
            .map(|u| String::from_utf8_lossy(u).into_owned());
        (ev.status, ev.cause, up)
    }

    #[test]
    fn documented_entries_parse_with_any_number_of_trailing_fields() {
        assert_eq!(
            parse(OK),
            (Some(200), Cause::Ok, Some("10.0.0.1:80".into()))
        );
        let ev = AlbParser::new().parse(OK.as_bytes()).unwrap();
        let b = OK.as_bytes();
        assert_eq!(
            ev.time.unwrap().to_rfc3339(),
            "2018-07-02T22:23:00.186+00:00"
        );
        assert_eq!(ev.vhost(b), Some(&b"www.example.com"[..]));
        assert_eq!(ev.client(b), Some(&b"192.168.131.39"[..]));
        assert_eq!(ev.path(b), Some(&b"/"[..]));
        // The 2023 documentation's 29 fields, and a future field.
        let short = OK.split(" TID_").next().unwrap();
        assert_eq!(parse(short).1, Cause::Ok);
        assert_eq!(parse(&format!("{OK} \"future\" 42")).1, Cause::Ok);
        // Every older generation: 2016's (up to trace_id, then with domain_name and
        // chosen_cert_arn), 2017's with matched_rule_priority.
        let trace =
            OK.find(" \"Root=").unwrap() + " \"Root=1-58337364-23a8c76965a2ef7629b185e3\"".len();
        for old in [
            OK[..trace].to_string(),
            format!("{} - -", &OK[..trace]),
            format!("{} \"-\" \"-\" 3", &OK[..trace]),
        ] {
            assert_eq!(
                parse(&old),
                (Some(200), Cause::Ok, Some("10.0.0.1:80".into())),
                "{old}"
            );
        }
    }

    #[test]
    fn failures_name_their_cause() {
        let with = |times: &str, elb: &str, target: &str, tstatus: &str, reason: &str| {
            OK.replacen(
                "10.0.0.1:80 0.000 0.001 0.000 200 200",
                &format!("{target} {times} {elb} {tstatus}"),
                1,
            )
            .replacen(
                r#""forward" "-" "-""#,
                &format!(r#""forward" "-" "{reason}""#),
                1,
            )
        };
        let unreachable = with("0.000 -1 -1", "502", "10.0.0.1:80", "-", "-");
        assert_eq!(
            parse(&unreachable),
            (
                Some(502),
                Cause::UpstreamUnreachable,
                Some("10.0.0.1:80".into())
            )
        );
        let no_targets = with("-1 -1 -1", "503", "-", "-", "-");
        assert_eq!(
            parse(&no_targets),
            (Some(503), Cause::NoLiveUpstreams, Some("my-targets".into()))
        );
        let timeout = with("0.000 -1 -1", "504", "10.0.0.1:80", "-", "-");
        assert_eq!(parse(&timeout).1, Cause::UpstreamTimeout);
        let app_502 = with("0.000 0.010 0.000", "502", "10.0.0.1:80", "502", "-");
        assert_eq!(parse(&app_502).1, Cause::Other5xx);
        let lambda = with(
            "0.000 0.001 0.000",
            "502",
            "-",
            "-",
            "LambdaInvalidResponse",
        );
        assert_eq!(parse(&lambda).1, Cause::UpstreamProtocolError);
        let client_gone = with("0.000 -1 -1", "460", "10.0.0.1:80", "-", "-");
        assert_eq!(parse(&client_gone).1, Cause::Ok);
    }

    #[test]
    fn malformed_entries_are_refused() {
        let mut p = AlbParser::new();
        assert!(p.parse(b"").is_err());
        assert!(
            p.parse(b"http 2018-07-02T22:23:00Z only a few fields")
                .is_err()
        );
        assert!(p.parse(OK.replacen("http", "ftp", 1).as_bytes()).is_err());
        assert!(
            p.parse(OK.replacen(" 200 200 ", " 2x0 200 ", 1).as_bytes())
                .is_err()
        );
        let unclosed = &OK[..OK.find("curl").unwrap()];
        assert!(p.parse(unclosed.as_bytes()).is_err());
    }
}

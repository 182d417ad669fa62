//! Parsers, one per format: bytes of one line in, an [`Event`] out. Pure: no IO, no clock.

/// `memchr::memmem::find(hay, NEEDLE)` with the searcher built once, not on every call
/// (building one costs more than searching a log line).
/// A two-byte needle (`": "`, `", "`) usually ends a short field: it is looked for byte by byte.
macro_rules! find {
    ($hay:expr, $needle:literal) => {{
        const NEEDLE: &[u8] = $needle;
        if let [a, b] = *NEEDLE {
            $crate::engine::parse::bytes::find_pair($hay, a, b)
        } else {
            static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
                std::sync::LazyLock::new(|| memchr::memmem::Finder::new(NEEDLE));
            FINDER.find($hay)
        }
    }};
}

pub mod alb;
pub mod answered;
pub mod apache_access;
pub mod apache_error;
pub mod bytes;
pub mod caddy;
pub mod container;
pub mod envoy;
pub mod go_net;
pub mod haproxy;
pub mod json;
pub mod mask;
pub mod nginx_access;
pub mod nginx_error;
pub mod nginx_formats;
mod nginx_time;
mod nginx_walk;
pub mod syslog;
pub mod traefik;
pub mod upstream;

use crate::engine::event::{Event, Format, Unparsed};
use crate::engine::time::{Zone, ZoneClock};
pub use nginx_access::{FormatError, LogFormat};

/// A status of one to three digits (`502`; Envoy's `0` for no answer), or `None`.
pub(crate) fn status_digits(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u16, |n, &d| n * 10 + (d - b'0') as u16))
}

/// What a parser needs besides the line.
#[derive(Clone, Debug)]
pub struct ParserOptions {
    /// The zone of sources whose lines carry no UTC offset (nginx error log, HAProxy, syslog).
    pub zone: Zone,
    /// The year for RFC 3164 syslog headers, until a line with a complete date is seen.
    pub year: i32,
    /// The nginx `log_format` of an access log; `None` recognises the format from the lines.
    pub log_format: Option<LogFormat>,
}

impl Default for ParserOptions {
    fn default() -> ParserOptions {
        ParserOptions {
            zone: Zone::Utc,
            year: 1970,
            log_format: None,
        }
    }
}

/// A parser for one source.
#[derive(Clone, Debug)]
pub enum Parser {
    NginxAccess(nginx_access::AccessParser),
    NginxError(nginx_error::ErrorParser),
    Haproxy(haproxy::HaproxyParser),
    Alb(alb::AlbParser),
    /// Apache's access log: the nginx access-log reader over Apache's own `LogFormat`s.
    ApacheAccess(nginx_access::AccessParser),
    ApacheError(apache_error::ApacheErrorParser),
    Caddy(caddy::CaddyParser),
    Envoy(envoy::EnvoyParser),
    Traefik(traefik::TraefikParser),
}

impl Parser {
    /// The parser for a known format. An nginx access log without a `log_format` uses the one
    /// recognised from `samples`, or `combined` when none fits.
    pub fn new(format: Format, opts: &ParserOptions, samples: &[&[u8]]) -> Parser {
        let clock = ZoneClock::new(opts.zone.clone());
        match format {
            Format::NginxAccess => Parser::NginxAccess(match &opts.log_format {
                Some(f) => nginx_access::AccessParser::new(f.clone(), clock),
                None => nginx_access::recognise(samples, &clock).unwrap_or_else(|| {
                    let combined = LogFormat::compile(
                        "combined",
                        nginx_access::Escape::Default,
                        nginx_access::COMBINED,
                    )
                    .expect("combined compiles");
                    nginx_access::AccessParser::new(combined, clock)
                }),
            }),
            Format::NginxError => Parser::NginxError(nginx_error::ErrorParser::new(clock)),
            Format::Haproxy => Parser::Haproxy(haproxy::HaproxyParser::new(clock, opts.year)),
            Format::Alb => Parser::Alb(alb::AlbParser::new()),
            Format::ApacheAccess => Parser::ApacheAccess(match &opts.log_format {
                Some(f) => nginx_access::AccessParser::new(f.clone(), clock),
                None => nginx_access::recognise_apache(samples, &clock),
            }),
            Format::ApacheError => Parser::ApacheError(apache_error::ApacheErrorParser::new(clock)),
            Format::Caddy => Parser::Caddy(caddy::CaddyParser::new()),
            Format::Envoy => Parser::Envoy(envoy::EnvoyParser::new()),
            Format::Traefik => Parser::Traefik(traefik::TraefikParser::new()),
        }
    }

    /// The `log_format` of an access-log parser (nginx's, or Apache's translated).
    pub fn log_format(&self) -> Option<&LogFormat> {
        match self {
            Parser::NginxAccess(p) | Parser::ApacheAccess(p) => p.log_format(),
            _ => None,
        }
    }

    /// Whether each line parses the same whatever lines came before, so lines can be parsed
    /// out of order.
    pub fn is_stateless(&self) -> bool {
        !matches!(self, Parser::Haproxy(_) | Parser::ApacheError(_))
    }

    /// Whether blocks of lines can be parsed out of order, the lines whose reading depends on
    /// lines of earlier blocks read again in order ([`Parser::begin_block`]): every stateless
    /// format, and HAProxy (its RFC 3164 headers take the year of the request lines before).
    pub fn parses_in_blocks(&self) -> bool {
        self.is_stateless() || matches!(self, Parser::Haproxy(_))
    }

    /// What the lines read so far leave for the next (HAProxy's year), to carry into a block
    /// parsed apart; `None` in formats that carry nothing.
    pub fn carried(&self) -> Option<haproxy::Year> {
        match self {
            Parser::Haproxy(p) => Some(p.carried()),
            _ => None,
        }
    }

    /// Reads on as if the lines before had left `carried` ([`Parser::carried`]).
    pub fn carry(&mut self, carried: Option<haproxy::Year>) {
        if let (Parser::Haproxy(p), Some(y)) = (self, carried) {
            p.carry(y);
        }
    }

    /// Before parsing a block apart from the lines before it: forgets what they left, so
    /// that a line that needs it is known ([`Parser::needed_carried`]) and read again in order.
    pub fn begin_block(&mut self) {
        if let Parser::Haproxy(p) = self {
            p.forget_year();
        }
    }

    /// Whether the line just parsed needed what earlier blocks left (see
    /// [`Parser::begin_block`]): its reading is to be done again, in order.
    pub fn needed_carried(&mut self) -> bool {
        match self {
            Parser::Haproxy(p) => p.took_unknown_year(),
            _ => false,
        }
    }

    /// After a block parsed apart: what it leaves for the next, when its own lines gave it
    /// (else what came before it carries on).
    pub fn block_leaves(&self) -> Option<haproxy::Year> {
        match self {
            Parser::Haproxy(p) if p.knows_year() => Some(p.carried()),
            _ => None,
        }
    }

    pub fn format(&self) -> Format {
        match self {
            Parser::NginxAccess(_) => Format::NginxAccess,
            Parser::NginxError(_) => Format::NginxError,
            Parser::Haproxy(_) => Format::Haproxy,
            Parser::Alb(_) => Format::Alb,
            Parser::ApacheAccess(_) => Format::ApacheAccess,
            Parser::ApacheError(_) => Format::ApacheError,
            Parser::Caddy(_) => Format::Caddy,
            Parser::Envoy(_) => Format::Envoy,
            Parser::Traefik(_) => Format::Traefik,
        }
    }

    /// The format, and for nginx access logs the layout in use (`nginx_access (combined)`).
    pub fn describe(&self) -> String {
        match self {
            Parser::NginxAccess(p) => format!("nginx_access ({})", p.layout_name()),
            Parser::ApacheAccess(p) => format!("apache_access ({})", p.layout_name()),
            other => other.format().to_string(),
        }
    }

    /// An access log recognised as nginx's `combined` beside an Apache error log is Apache's:
    /// the two write `combined` alike, and Apache stamps it with the request's start.
    pub fn as_apache_access(self) -> Parser {
        match self {
            Parser::NginxAccess(p) if p.layout_name() == "combined" => Parser::ApacheAccess(p),
            other => other,
        }
    }

    /// Parses one line (without its line terminator).
    pub fn parse(&mut self, line: &[u8]) -> Result<Event, Unparsed> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(Unparsed::Empty);
        }
        if line.first() == Some(&0x1b) {
            return Err(Unparsed::Colour);
        }
        match self {
            Parser::NginxAccess(p) => p.parse(line),
            Parser::NginxError(p) => p.parse(line),
            Parser::Haproxy(p) => p.parse(line),
            Parser::Alb(p) => p.parse(line),
            Parser::ApacheAccess(p) => p.parse(line).map(|mut ev| {
                ev.format = Some(Format::ApacheAccess);
                ev
            }),
            Parser::ApacheError(p) => p.parse(line),
            Parser::Caddy(p) => p.parse(line),
            Parser::Envoy(p) => p.parse(line),
            Parser::Traefik(p) => p.parse(line),
        }
    }

    /// A request that did not fail, read the short way (what the pipeline counts it by): the
    /// same as [`Parser::parse`] gives for such a line, `None` for any other line and in
    /// formats without a short way — `parse` then reads it.
    #[inline]
    pub fn answered(&mut self, line: &[u8]) -> Option<nginx_access::Answered> {
        self.answered_at(mask::Cpu::ANY, line, None)
    }

    /// The bytes besides newlines whose masks the short way reads, for a reader that computes
    /// them with its buffer ([`Parser::answered_at`]); `None` for formats without one.
    pub fn mask_set(&self) -> Option<[u8; 3]> {
        match self {
            Parser::NginxAccess(p) | Parser::ApacheAccess(p) => p.mask_set(),
            Parser::Alb(_) => Some(alb::MASK_SET),
            _ => None,
        }
    }

    /// What the masks of a reader's buffer must hold for the short way: the newlines alone
    /// where its walk reads windows of the bytes (nginx's quick shape), else the newlines and
    /// [`Parser::mask_set`]; `None` for formats without a short way.
    pub fn classes(&self) -> Option<mask::Classes> {
        match self {
            Parser::NginxAccess(p) | Parser::ApacheAccess(p) if p.reads_windows() => {
                Some(mask::Classes::Newlines)
            }
            _ => self.mask_set().map(mask::Classes::With),
        }
    }

    /// Whether the short way reads `line` as [`Parser::parse`] does (the differential check of
    /// the tests and fuzz targets): when it reads the line at all, `parse` makes of it a request
    /// that did not fail, with the same time, status, upstream and virtual host; and masks
    /// computed for the line alone and for the line inside a buffer (at several alignments,
    /// before bytes the walk must not take for the line's) read it alike or refuse it alike.
    #[doc(hidden)]
    pub fn answered_agrees(&self, line: &[u8]) -> bool {
        let a = self.clone().answered(line);
        let set = self.mask_set().unwrap_or([b' ', b'"', b']']);
        // Read from the buffer's masks, and from its bytes with only its newlines' masks (the
        // quick shape's windows; the rest through the line's own masks).
        let buffered = [0usize, 1, 17, 63, 64].iter().all(|&at| {
            let mut buf = vec![b'\n'; at];
            buf.extend_from_slice(line);
            buf.extend_from_slice(b"\n1.2.3.4 - - [ \" \", ");
            // (Past the next 64 bytes, a window's room after the line, as the scan's buffers
            // have: separators the walks must not take for the line's.)
            let mut words = vec![[0u64; 4]; buf.len().div_ceil(64) + 1];
            let pad = words.len() * 64 - buf.len();
            buf.extend(b" \",\n".iter().cycle().take(pad));
            mask::classify_lines(&buf, set, &mut words);
            // The quick shape's windows by the CPU's instructions and by those of every CPU.
            let plain = match (self.clone(), mask::Cpu::detect()) {
                (Parser::NginxAccess(mut p) | Parser::ApacheAccess(mut p), Some(cpu)) => {
                    let mut q = p.clone();
                    p.answered_quickly_plain(line, &buf, at)
                        == q.answered_quickly(cpu, line, &buf, at)
                }
                _ => true,
            };
            plain
                && [Some(&words[..]), None].into_iter().all(|words| {
                    let place = mask::InBuffer {
                        buf: &buf,
                        start: at,
                        words,
                    };
                    self.clone().answered_at(mask::Cpu::ANY, line, Some(place)) == a
                        && mask::Cpu::detect()
                            .is_none_or(|cpu| self.clone().answered_at(cpu, line, Some(place)) == a)
                })
        });
        let Some(a) = a else {
            // Refused through either kind of masks alike.
            return buffered;
        };
        let Ok(ev) = self.clone().parse(line) else {
            return false;
        };
        let same = ev.kind == crate::engine::event::Kind::Request
            && ev.cause == crate::engine::event::Cause::Ok
            && ev.time == Some(a.time)
            && ev.status == Some(a.status)
            && ev.upstream == a.upstream
            && ev.vhost == a.vhost
            && ev.names_upstream == a.names_upstream
            && ev.thread.is_none();
        same && buffered
    }

    /// [`Parser::answered`] for a line inside a buffer (`at`: see [`mask::InBuffer`]), the
    /// windows of nginx's quick walk classified with `cpu`'s instructions.
    #[inline(always)]
    pub fn answered_at<const AVX2: bool>(
        &mut self,
        cpu: mask::Cpu<AVX2>,
        line: &[u8],
        at: Option<mask::InBuffer<'_>>,
    ) -> Option<nginx_access::Answered> {
        debug_assert!(at.is_none_or(|b| b.buf.get(b.start..b.start + line.len()) == Some(line)));
        if let (Parser::NginxAccess(p) | Parser::ApacheAccess(p), Some(b)) = (&mut *self, at)
            && let Some(a) = p.answered_quickly(cpu, line, b.buf, b.start)
        {
            return Some(a);
        }
        let masks = at.and_then(|b| Some((b.words?, b.start)));
        self.answered_otherwise(line, masks)
    }

    /// [`Parser::answered_at`] for the lines the quick way does not read.
    #[inline(never)]
    fn answered_otherwise(
        &mut self,
        line: &[u8],
        masks: Option<(&[[u64; 4]], usize)>,
    ) -> Option<nginx_access::Answered> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Lines `parse` refuses before reading them (blank, coloured) start with these.
        if line
            .first()
            .is_none_or(|&b| b.is_ascii_whitespace() || b == 0x1b)
        {
            return None;
        }
        let view = masks.map(|(words, start)| mask::LineMasks::new(words, start, line.len()));
        match (self, view) {
            (Parser::NginxAccess(p) | Parser::ApacheAccess(p), Some(mut m)) => {
                p.answered_in(line, &mut m)
            }
            (Parser::NginxAccess(p) | Parser::ApacheAccess(p), None) => p.answered(line),
            (Parser::Alb(p), Some(mut m)) => p.answered_in(line, &mut m),
            (Parser::Alb(p), None) => {
                p.answered_in(line, &mut mask::Masks::new(line, alb::MASK_SET))
            }
            _ => None,
        }
    }
}

/// Recognises the format of a file from its first lines: the format whose parser understands
/// the most of them (ties go to the more specific format). `None` when no parser understands any.
///
/// Apache's access log is not among them: its `combined` lines are nginx's, byte for byte, and
/// read the same; it is named (`format = "apache_access"`) or found by its path.
pub fn detect(samples: &[&[u8]], opts: &ParserOptions) -> Option<Parser> {
    let mut best: Option<(usize, Parser)> = None;
    for format in [
        Format::Alb,
        Format::NginxError,
        Format::ApacheError,
        Format::Haproxy,
        Format::Caddy,
        Format::Envoy,
        Format::Traefik,
        Format::NginxAccess,
    ] {
        // Recognition asks more of Traefik's lines than a named format does: the tail that
        // tells them from nginx's `combined` (Traefik's generic CLF is `combined`).
        let mut p = match format {
            Format::Traefik => Parser::Traefik(traefik::TraefikParser::strict()),
            _ => Parser::new(format, opts, samples),
        };
        let parsed = samples.iter().filter(|l| p.parse(l).is_ok()).count();
        if parsed > 0 && best.as_ref().is_none_or(|(n, _)| parsed > *n) {
            best = Some((parsed, Parser::new(format, opts, samples)));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_from_their_lines() {
        let opts = ParserOptions::default();
        let cases: [(&str, &str); 5] = [
            (
                r#"203.0.113.7 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.0""#,
                "nginx_access (combined)",
            ),
            (
                r#"{"time_iso8601":"2024-05-01T12:00:00+00:00","status":"200","upstream_addr":"10.0.0.1:80"}"#,
                "nginx_access (json)",
            ),
            (
                "2024/05/01 12:00:00 [error] 1#1: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _",
                "nginx_error",
            ),
            (
                r#"Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1""#,
                "haproxy",
            ),
            (
                r#"http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" 10.0.0.1:80 200 "-" "-""#,
                "alb",
            ),
        ];
        for (line, expected) in cases {
            let p = detect(&[line.as_bytes()], &opts).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(p.describe(), expected, "{line}");
        }
        assert!(detect(&[b"\x00\x01binary"], &opts).is_none());
    }
}

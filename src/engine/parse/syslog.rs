//! Syslog framing around a message: RFC 5424, RFC 3164 (with or without `<PRI>`), the
//! RFC 3339 time stamps rsyslog writes into files, HAProxy's own `iso`/`timed`/`short` formats,
//! or no header at all.

use crate::engine::time;

/// The time written in a syslog header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderTime {
    /// A complete time with its UTC offset (RFC 5424, RFC 3339): UTC milliseconds and offset.
    Zoned { ms: i64, offset_secs: i32 },
    /// RFC 3164: month, day and time of day, without year or zone.
    MonthDay { month: u32, day: u32, day_ms: i64 },
}

/// A syslog line split into header and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syslog<'a> {
    pub time: Option<HeaderTime>,
    pub host: Option<&'a [u8]>,
    /// The program name (`haproxy` of `haproxy[1234]:`).
    pub app: Option<&'a [u8]>,
    pub message: &'a [u8],
}

/// The last RFC 3164 time stamp read and its value: a log's consecutive lines share it, and
/// comparing 15 bytes costs less than reading them again.
#[derive(Clone, Debug, Default)]
pub struct Stamps {
    last: Option<([u8; RFC3164_LEN], (u32, u32, i64))>,
}

/// `Feb  6 12:14:14`
const RFC3164_LEN: usize = 15;

impl Stamps {
    fn rfc3164(&mut self, b: &[u8]) -> Option<(u32, u32, i64, usize)> {
        let head = b.get(..RFC3164_LEN)?;
        if let Some((raw, (month, day, ms))) = &self.last
            && super::bytes::eq(raw, head)
        {
            return Some((*month, *day, *ms, RFC3164_LEN));
        }
        let (month, day, ms, used) = time::parse_rfc3164_time(b)?;
        if used == RFC3164_LEN {
            let mut raw = [0u8; RFC3164_LEN];
            raw.copy_from_slice(head);
            self.last = Some((raw, (month, day, ms)));
        }
        Some((month, day, ms, used))
    }
}

/// Splits a line into its syslog header and message. A line without a recognisable header is
/// returned whole as the message.
#[cfg(test)]
pub fn split(line: &[u8]) -> Syslog<'_> {
    split_with(line, &mut Stamps::default())
}

/// Splits a line into its syslog header and message (a line without a recognisable header is
/// returned whole as the message), with the last RFC 3164 time stamp remembered in `stamps`.
pub fn split_with<'a>(line: &'a [u8], stamps: &mut Stamps) -> Syslog<'a> {
    let mut rest = line;
    let mut had_pri = false;
    if rest.first() == Some(&b'<') {
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if (1..=3).contains(&digits) && rest.get(1 + digits) == Some(&b'>') {
            rest = &rest[2 + digits..];
            had_pri = true;
        }
    }
    let whole = Syslog {
        time: None,
        host: None,
        app: None,
        message: rest,
    };
    // RFC 5424: `1 TIMESTAMP HOST APP PROCID MSGID SD MSG`
    if had_pri && let Some(after) = rest.strip_prefix(b"1 ") {
        return rfc5424(after).unwrap_or(whole);
    }
    // RFC 3339 time first (rsyslog's high-precision file format, HAProxy's `iso` format).
    if let Some((naive, Some(off), used)) = time::parse_iso8601(rest)
        && rest.get(used) == Some(&b' ')
    {
        let t = HeaderTime::Zoned {
            ms: naive - off as i64 * 1000,
            offset_secs: off,
        };
        return host_tag(&rest[used + 1..], Some(t)).unwrap_or(Syslog {
            time: Some(t),
            message: &rest[used + 1..],
            ..whole
        });
    }
    // RFC 3164: `Feb  6 12:14:14 host tag[pid]: msg`
    if let Some((month, day, day_ms, used)) = stamps.rfc3164(rest)
        && rest.get(used) == Some(&b' ')
    {
        let t = HeaderTime::MonthDay { month, day, day_ms };
        return host_tag(&rest[used + 1..], Some(t)).unwrap_or(Syslog {
            time: Some(t),
            message: &rest[used + 1..],
            ..whole
        });
    }
    // `haproxy[123]: msg` without a time, as in HAProxy's manual, or after a bare `<PRI>`.
    if let Some(s) = tag(rest, None, None) {
        return s;
    }
    whole
}

/// `host tag[pid]: msg` or `tag[pid]: msg`.
fn host_tag(b: &[u8], t: Option<HeaderTime>) -> Option<Syslog<'_>> {
    let sp = super::bytes::find_byte(b' ', b)?;
    let first = &b[..sp];
    if first.ends_with(b":") {
        // No host: the first word is already the tag.
        return tag(b, None, t);
    }
    tag(&b[sp + 1..], Some(first), t)
}

/// The longest tag (`haproxy[12345]`) read.
const TAG_MAX: usize = 64;

/// `tag[pid]: msg` or `tag: msg`.
fn tag<'a>(b: &'a [u8], host: Option<&'a [u8]>, t: Option<HeaderTime>) -> Option<Syslog<'a>> {
    // The first `: ` within a tag's length (64 bytes): a tag has no space, so one beyond that,
    // or after a space, is not a tag's end.
    let head = &b[..b.len().min(TAG_MAX + 2)];
    let mut from = 0;
    let colon = loop {
        let i = from + super::bytes::find_byte2(b':', b' ', &head[from..])?;
        if head[i] == b' ' {
            return None;
        }
        if head.get(i + 1) == Some(&b' ') {
            break i;
        }
        from = i + 1;
    };
    let t_raw = &b[..colon];
    if t_raw.is_empty() || t_raw.len() > TAG_MAX {
        return None;
    }
    let app = match super::bytes::find_byte(b'[', t_raw) {
        Some(i) if t_raw.ends_with(b"]") => &t_raw[..i],
        Some(_) => return None,
        None => t_raw,
    };
    Some(Syslog {
        time: t,
        host,
        app: Some(app),
        message: &b[colon + 2..],
    })
}

fn rfc5424(b: &[u8]) -> Option<Syslog<'_>> {
    let mut fields = b.splitn(6, |&c| c == b' ');
    let ts = fields.next()?;
    let host = fields.next()?;
    let app = fields.next()?;
    let _procid = fields.next()?;
    let _msgid = fields.next()?;
    let rest = fields.next().unwrap_or(b"");
    let time = if ts == b"-" {
        None
    } else {
        let (naive, off, used) = time::parse_iso8601(ts)?;
        if used != ts.len() {
            return None;
        }
        let off = off.unwrap_or(0);
        Some(HeaderTime::Zoned {
            ms: naive - off as i64 * 1000,
            offset_secs: off,
        })
    };
    // Structured data: `-` or one or more `[id k="v" ...]` elements.
    let message = if let Some(m) = rest.strip_prefix(b"-") {
        m.strip_prefix(b" ").unwrap_or(m)
    } else if rest.first() == Some(&b'[') {
        let end = structured_data_end(rest)?;
        let m = &rest[end..];
        m.strip_prefix(b" ").unwrap_or(m)
    } else {
        // HAProxy's log profiles may write any text as the structured data (`sd custom-sd`):
        // it is one token before the message.
        match memchr::memchr(b' ', rest) {
            Some(sp) => &rest[sp + 1..],
            None => rest,
        }
    };
    // A UTF-8 byte-order mark may start the message.
    let message = message.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(message);
    fn nil(f: &[u8]) -> Option<&[u8]> {
        if f == b"-" { None } else { Some(f) }
    }
    Some(Syslog {
        time,
        host: nil(host),
        app: nil(app),
        message,
    })
}

/// The end of the structured-data elements at the start of `b`.
fn structured_data_end(b: &[u8]) -> Option<usize> {
    let mut p = 0;
    while b.get(p) == Some(&b'[') {
        let mut in_quotes = false;
        p += 1;
        loop {
            match *b.get(p)? {
                b'\\' if in_quotes => p += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            p += 1;
        }
        p += 1;
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_ends_at_the_first_colon_and_space_within_its_length() {
        fn t(b: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
            tag(b, None, None).map(|s| (s.app, s.message))
        }
        assert_eq!(
            t(b"haproxy[1]: a: b"),
            Some((Some(&b"haproxy"[..]), &b"a: b"[..]))
        );
        // A colon without a space does not end it.
        assert_eq!(t(b"app:x: m"), Some((Some(&b"app:x"[..]), &b"m"[..])));
        // A space first: not a tag.
        assert_eq!(t(b"two words: m"), None);
        assert_eq!(t(b"nocolon"), None);
        assert_eq!(t(b": m"), None);
        // At most 64 bytes.
        let long = format!("{}: m", "a".repeat(64));
        assert!(t(long.as_bytes()).is_some());
        let longer = format!("{}: m", "a".repeat(65));
        assert_eq!(t(longer.as_bytes()), None);
    }

    #[test]
    fn rfc3164_with_and_without_priority() {
        for line in [
            &b"Feb  6 12:14:14 localhost haproxy[14389]: hello world"[..],
            b"<134>Feb  6 12:14:14 localhost haproxy[14389]: hello world",
        ] {
            let s = split(line);
            assert_eq!(s.message, b"hello world");
            assert_eq!(s.app, Some(&b"haproxy"[..]));
            assert_eq!(s.host, Some(&b"localhost"[..]));
            assert_eq!(
                s.time,
                Some(HeaderTime::MonthDay {
                    month: 2,
                    day: 6,
                    day_ms: 44_054_000
                })
            );
        }
        // HAProxy's own rfc3164 output has no host.
        let s = split(b"<134>Feb  6 12:14:14 haproxy[14389]: hello");
        // A remembered stamp reads as a fresh one, and a changed one is read again.
        let mut stamps = Stamps::default();
        for l in [
            &b"Feb  6 12:14:14 lb haproxy[1]: a"[..],
            b"Feb  6 12:14:14 lb haproxy[1]: b",
            b"Feb  6 12:14:15 lb haproxy[1]: c",
            b"Feb 16 12:14:15 lb haproxy[1]: d",
            b"Feb 16 12:14:1x lb haproxy[1]: e",
            b"Feb 16 12:14:15 lb haproxy[1]: f",
        ] {
            assert_eq!(split_with(l, &mut stamps), split(l));
        }
        assert_eq!(
            (s.app, s.host, s.message),
            (Some(&b"haproxy"[..]), None, &b"hello"[..])
        );
    }

    #[test]
    fn rfc5424_and_rfc3339() {
        let s = split(b"<134>1 2024-05-01T12:00:00.123+02:00 lb1 haproxy 1234 - - hello");
        assert_eq!(s.message, b"hello");
        assert_eq!(
            s.time,
            Some(HeaderTime::Zoned {
                ms: 1_714_557_600_123,
                offset_secs: 7200
            })
        );
        let s = split(br#"<134>1 2024-05-01T12:00:00Z lb1 haproxy 1234 - [x@1 a="b]c"] hi"#);
        assert_eq!(s.message, b"hi");
        let s = split(b"2024-05-01T12:00:00.123456+00:00 lb1 haproxy[7]: msg");
        assert_eq!((s.host, s.message), (Some(&b"lb1"[..]), &b"msg"[..]));
    }

    #[test]
    fn no_header_is_the_whole_message() {
        let s = split(b"10.0.0.1:5000 [06/Feb/2009:12:14:14.655] fe be/srv");
        assert_eq!(s.time, None);
        assert_eq!(
            s.message,
            b"10.0.0.1:5000 [06/Feb/2009:12:14:14.655] fe be/srv"
        );
        assert_eq!(split(b"<999999>x").message, b"<999999>x");
    }
}

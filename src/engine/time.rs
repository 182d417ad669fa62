//! Fast, allocation-free parsing of the time stamps proxies write, and the time zone of sources
//! whose lines carry none (nginx error log, HAProxy, classic syslog).
//!
//! The hot path parses digits by hand; chrono is used only to look up a zone's offset, once per
//! hour of log time.

use crate::engine::event::Timestamp;
use chrono::{NaiveDateTime, Offset, TimeZone};
use std::str::FromStr;

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digit(b: u8) -> Option<u32> {
    if b.is_ascii_digit() {
        Some((b - b'0') as u32)
    } else {
        None
    }
}

fn num2(b: &[u8]) -> Option<u32> {
    Some(digit(*b.first()?)? * 10 + digit(*b.get(1)?)?)
}

fn num4(b: &[u8]) -> Option<u32> {
    Some(num2(b)? * 100 + num2(b.get(2..)?)?)
}

/// `Jan`..`Dec` to 1..=12.
pub fn month_from_abbr(b: &[u8]) -> Option<u32> {
    let m = match b.get(..3)? {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    Some(m)
}

/// Milliseconds since the epoch of a civil date and time, taken as UTC ("naive" time).
fn naive_ms(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    Some(days * MS_PER_DAY + ((h * 3600 + mi * 60 + s) as i64) * 1000 + ms as i64)
}

/// Parses `.123` / `.123456` after a seconds field; returns (milliseconds, bytes consumed).
pub(crate) fn fraction(b: &[u8]) -> (u32, usize) {
    if b.first() != Some(&b'.') && b.first() != Some(&b',') {
        return (0, 0);
    }
    let mut ms = 0;
    let mut n = 1;
    while let Some(d) = b.get(n).copied().and_then(digit) {
        if n <= 3 {
            ms = ms * 10 + d;
        }
        n += 1;
    }
    let digits = n - 1;
    if digits == 0 {
        return (0, 0);
    }
    for _ in digits..3 {
        ms *= 10;
    }
    (ms, n)
}

/// Parses a numeric UTC offset: `+0000`, `+02:00`, `-05:30`, or `Z`; returns (seconds, bytes).
fn offset(b: &[u8]) -> Option<(i32, usize)> {
    match b.first()? {
        b'Z' | b'z' => Some((0, 1)),
        sign @ (b'+' | b'-') => {
            let h = num2(b.get(1..)?)?;
            let (m, len) = if b.get(3) == Some(&b':') {
                (num2(b.get(4..)?)?, 6)
            } else {
                (num2(b.get(3..)?)?, 5)
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i32;
            Some((if *sign == b'-' { -secs } else { secs }, len))
        }
        _ => None,
    }
}

/// nginx `$time_local` and the Common Log Format: `01/May/2024:12:00:00 +0000`.
pub fn parse_clf(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let d = num2(b)?;
    let mo = month_from_abbr(&b[3..6])?;
    let y = num4(&b[7..])?;
    let h = num2(&b[12..])?;
    let mi = num2(&b[15..])?;
    let s = num2(&b[18..])?;
    let (off, _) = offset(&b[21..])?;
    let naive = naive_ms(y, mo, d, h, mi, s, 0)?;
    Some(Timestamp::new(naive - off as i64 * 1000, off))
}

/// ISO 8601 / RFC 3339: `2024-05-01T12:00:00`, optional fraction, optional `Z` or offset.
/// Returns the naive milliseconds, the offset if written, and the bytes consumed.
pub fn parse_iso8601(b: &[u8]) -> Option<(i64, Option<i32>, usize)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = num4(b)?;
    let mo = num2(&b[5..])?;
    let d = num2(&b[8..])?;
    let h = num2(&b[11..])?;
    let mi = num2(&b[14..])?;
    let s = num2(&b[17..])?;
    let (ms, flen) = fraction(&b[19..]);
    let mut used = 19 + flen;
    let off = match offset(&b[used..]) {
        Some((o, len)) => {
            used += len;
            Some(o)
        }
        None => None,
    };
    Some((naive_ms(y, mo, d, h, mi, s, ms)?, off, used))
}

/// [`parse_iso8601`] for logs whose consecutive lines share the second: the date and the
/// time of day are read once per second, the fraction and the offset on every line (ALB writes
/// microseconds, so whole time stamps rarely repeat).
#[derive(Clone, Debug, Default)]
pub struct Iso8601Seconds {
    /// The last `2024-05-01T12:00:00` read and its naive milliseconds.
    second: Option<([u8; 19], i64)>,
}

impl Iso8601Seconds {
    /// What [`parse_iso8601`] returns for `b`.
    pub fn parse(&mut self, b: &[u8]) -> Option<(i64, Option<i32>, usize)> {
        let head = b.first_chunk::<19>()?;
        let second = match &self.second {
            Some((raw, ms)) if crate::engine::parse::bytes::eq(raw, head) => *ms,
            _ => {
                let (ms, _, _) = parse_iso8601(head)?;
                self.second = Some((*head, ms));
                ms
            }
        };
        let (ms, flen) = fraction(&b[19..]);
        let mut used = 19 + flen;
        let off = offset(&b[used..]).map(|(o, len)| {
            used += len;
            o
        });
        Some((second + i64::from(ms), off, used))
    }
}

/// An ISO 8601 / RFC 3339 time that carries its offset (`2024-05-01T12:00:00.123Z`), as
/// the Go and C++ proxies write it; `None` without an offset, or with more after it.
pub fn parse_rfc3339(b: &[u8]) -> Option<Timestamp> {
    let (naive, offset, used) = parse_iso8601(b)?;
    let off = offset?;
    (used == b.len()).then(|| Timestamp::new(naive - off as i64 * 1000, off))
}

/// nginx error log: `2024/05/01 12:00:00` (local time of the proxy host, no zone).
pub fn parse_nginx_error_time(b: &[u8]) -> Option<i64> {
    if b.len() < 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    naive_ms(
        num4(b)?,
        num2(&b[5..])?,
        num2(&b[8..])?,
        num2(&b[11..])?,
        num2(&b[14..])?,
        num2(&b[17..])?,
        0,
    )
}

/// Apache httpd error log (`%{u}t` and `%t` of `ErrorLogFormat`): `Sun Dec 06 08:22:30.591823
/// 2026` or without the fraction (local time of the host, no zone; the day may be
/// space-padded). Returns naive milliseconds and bytes consumed.
pub fn parse_apache_error_time(b: &[u8]) -> Option<(i64, usize)> {
    // `Www Mmm dd hh:mm:ss`
    if b.len() < 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || !b[..3].iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let day = match (b[8], b[9]) {
        (b' ', d) => digit(d)?,
        (a, d) => digit(a)? * 10 + digit(d)?,
    };
    let (ms, flen) = fraction(&b[19..]);
    let at = 19 + flen;
    if b.get(at) != Some(&b' ') {
        return None;
    }
    let year = num4(b.get(at + 1..)?)?;
    if b.get(at + 5).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let t = naive_ms(
        year,
        month_from_abbr(&b[4..7])?,
        day,
        num2(&b[11..])?,
        num2(&b[14..])?,
        num2(&b[17..])?,
        ms,
    )?;
    Some((t, at + 5))
}

/// HAProxy accept date `%tr` / `%t`: `06/Feb/2009:12:14:14.655` (local time, no zone).
/// Returns naive milliseconds and bytes consumed.
pub fn parse_haproxy_date(b: &[u8]) -> Option<(i64, usize)> {
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' {
        return None;
    }
    if b[17] != b':' {
        return None;
    }
    let (ms, flen) = fraction(&b[20..]);
    let t = naive_ms(
        num4(&b[7..])?,
        month_from_abbr(&b[3..6])?,
        num2(b)?,
        num2(&b[12..])?,
        num2(&b[15..])?,
        num2(&b[18..])?,
        ms,
    )?;
    Some((t, 20 + flen))
}

/// nginx `$msec`: seconds since the epoch with a millisecond fraction, `1714564800.123`.
pub fn parse_msec(b: &[u8]) -> Option<Timestamp> {
    let dot = memchr::memchr(b'.', b).unwrap_or(b.len());
    if dot == 0 || dot > 12 {
        return None;
    }
    let mut secs: i64 = 0;
    for &c in &b[..dot] {
        secs = secs * 10 + digit(c)? as i64;
    }
    let (ms, _) = fraction(&b[dot..]);
    Some(Timestamp::new(secs * 1000 + ms as i64, 0))
}

/// Classic syslog (RFC 3164) time: `Feb  6 12:14:14` — month, day, time; the year is not
/// written. Returns (month, day, naive milliseconds within the day) and bytes consumed.
pub fn parse_rfc3164_time(b: &[u8]) -> Option<(u32, u32, i64, usize)> {
    if b.len() < 15 || b[3] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let mo = month_from_abbr(b)?;
    let d = match (b[4], b[5]) {
        (b' ', d) => digit(d)?,
        (a, d) => digit(a)? * 10 + digit(d)?,
    };
    let h = num2(&b[7..])?;
    let mi = num2(&b[10..])?;
    let s = num2(&b[13..])?;
    if h > 23 || mi > 59 || s > 60 || !(1..=31).contains(&d) {
        return None;
    }
    Some((mo, d, ((h * 3600 + mi * 60 + s) as i64) * 1000, 15))
}

/// Naive milliseconds for a month/day/time-of-day in a given year.
pub fn naive_from_parts(year: i32, month: u32, day: u32, day_ms: i64) -> i64 {
    days_from_civil(year as i64, month, day) * MS_PER_DAY + day_ms
}

/// The year of a timestamp (for sources that do not write the year).
pub fn year_of(ms: i64) -> i32 {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| chrono::Datelike::year(&t))
        .unwrap_or(1970)
}

/// The time zone of a source whose lines carry no UTC offset.
#[derive(Clone, Debug, PartialEq)]
pub enum Zone {
    Utc,
    Fixed(i32),
    Named(chrono_tz::Tz),
    /// The zone of the machine gatewatch runs on (`TZ`, `/etc/localtime`).
    Local,
}

impl Zone {
    /// The wall-clock time of this zone at an instant.
    pub fn local(&self, t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
        match self {
            Zone::Utc => t.naive_utc(),
            Zone::Fixed(secs) => t.naive_utc() + chrono::Duration::seconds(*secs as i64),
            Zone::Named(tz) => t.with_timezone(tz).naive_local(),
            Zone::Local => t.with_timezone(&chrono::Local).naive_local(),
        }
    }
}

impl FromStr for Zone {
    type Err = String;

    /// `UTC`, `local`, `+02:00` / `-0530`, or an IANA name such as `Europe/Berlin`.
    fn from_str(s: &str) -> Result<Zone, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(Zone::Utc);
        }
        if t.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if let Some((secs, len)) = offset(t.as_bytes())
            && len == t.len()
        {
            return Ok(Zone::Fixed(secs));
        }
        t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "unknown time zone {t:?}: use UTC, local, an offset such as +02:00, or an IANA name such as Europe/Berlin"
            )
        })
    }
}

/// Converts naive local times of one zone to UTC, remembering the offset per hour so the
/// zone database is consulted once per hour of log time, not once per line.
#[derive(Clone, Debug)]
pub struct ZoneClock {
    zone: Zone,
    cached_hour: i64,
    cached_offset: i32,
}

impl ZoneClock {
    pub fn new(zone: Zone) -> ZoneClock {
        ZoneClock {
            zone,
            cached_hour: i64::MIN,
            cached_offset: 0,
        }
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The UTC time of a naive local time in this zone.
    pub fn to_utc(&mut self, naive: i64) -> Timestamp {
        let off = match self.zone {
            Zone::Utc => 0,
            Zone::Fixed(o) => o,
            _ => {
                let hour = naive.div_euclid(3_600_000);
                if hour != self.cached_hour {
                    self.cached_offset = self.lookup(naive);
                    self.cached_hour = hour;
                }
                self.cached_offset
            }
        };
        Timestamp::new(naive - off as i64 * 1000, off)
    }

    fn lookup(&self, naive: i64) -> i32 {
        let Some(dt) = chrono::DateTime::from_timestamp_millis(naive) else {
            return 0;
        };
        let local: NaiveDateTime = dt.naive_utc();
        match &self.zone {
            Zone::Utc => 0,
            Zone::Fixed(o) => *o,
            // In a fold the earlier offset wins; in a gap the offset before the gap.
            Zone::Named(tz) => match tz.offset_from_local_datetime(&local).earliest() {
                Some(o) => o.fix().local_minus_utc(),
                None => tz.offset_from_utc_datetime(&local).fix().local_minus_utc(),
            },
            Zone::Local => match chrono::Local.offset_from_local_datetime(&local).earliest() {
                Some(o) => o.local_minus_utc(),
                None => chrono::Local
                    .offset_from_utc_datetime(&local)
                    .local_minus_utc(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(t: Timestamp) -> String {
        t.to_rfc3339()
    }

    #[test]
    fn clf_times_keep_their_offset() {
        let t = parse_clf(b"01/May/2024:12:00:00 +0200").unwrap();
        assert_eq!(rfc(t), "2024-05-01T12:00:00+02:00");
        assert_eq!(t.ms, 1_714_557_600_000);
        assert!(parse_clf(b"01/Maj/2024:12:00:00 +0200").is_none());
        assert!(parse_clf(b"01/May/2024:25:00:00 +0200").is_none());
    }

    #[test]
    fn a_remembered_second_reads_as_a_full_parse() {
        let mut seconds = Iso8601Seconds::default();
        for t in [
            &b"2024-05-01T12:00:00.186641Z"[..],
            b"2024-05-01T12:00:00.9Z",
            b"2024-05-01T12:00:00Z",
            b"2024-05-01T12:00:00",
            b"2024-05-01T12:00:00.5+02:00 x",
            b"2024-05-01T12:00:00.",
            b"2024-05-01T12:00:01.000001Z",
            b"2024-05-01T12:00:61.1Z",
            b"2024-05-01T12:00:01.1Z",
            b"2024-05-01T12:00:0",
            b"2024-13-01T12:00:01.1Z",
            b"2024-05-01 12:00:01.1-0530",
        ] {
            assert_eq!(
                seconds.parse(t),
                parse_iso8601(t),
                "{}",
                String::from_utf8_lossy(t)
            );
        }
    }

    #[test]
    fn iso_times_with_fraction_and_zone() {
        let (n, off, used) = parse_iso8601(b"2024-05-01T12:00:00.123456Z rest").unwrap();
        assert_eq!(off, Some(0));
        assert_eq!(used, 27);
        assert_eq!(rfc(Timestamp::new(n, 0)), "2024-05-01T12:00:00.123+00:00");
        let (_, off, _) = parse_iso8601(b"2024-05-01T12:00:00+05:30").unwrap();
        assert_eq!(off, Some(19800));
        let (_, off, used) = parse_iso8601(b"2024-05-01T12:00:00").unwrap();
        assert_eq!((off, used), (None, 19));
    }

    #[test]
    fn haproxy_and_error_log_dates() {
        let (n, used) = parse_haproxy_date(b"06/Feb/2009:12:14:14.655]").unwrap();
        assert_eq!(used, 24);
        assert_eq!(rfc(Timestamp::new(n, 0)), "2009-02-06T12:14:14.655+00:00");
        let n = parse_nginx_error_time(b"2024/05/01 12:00:00 [error]").unwrap();
        assert_eq!(rfc(Timestamp::new(n, 0)), "2024-05-01T12:00:00+00:00");
        let (mo, d, ms, _) = parse_rfc3164_time(b"Feb  6 12:14:14 host").unwrap();
        assert_eq!((mo, d, ms), (2, 6, 44_054_000));
    }

    #[test]
    fn msec_is_epoch_seconds() {
        let t = parse_msec(b"1714564800.123").unwrap();
        assert_eq!(t.ms, 1_714_564_800_123);
        assert!(parse_msec(b"abc").is_none());
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        let mut berlin = ZoneClock::new("Europe/Berlin".parse().unwrap());
        let winter = parse_nginx_error_time(b"2024/01/15 12:00:00").unwrap();
        let summer = parse_nginx_error_time(b"2024/07/15 12:00:00").unwrap();
        assert_eq!(rfc(berlin.to_utc(winter)), "2024-01-15T12:00:00+01:00");
        assert_eq!(rfc(berlin.to_utc(summer)), "2024-07-15T12:00:00+02:00");
        assert_eq!(
            "+05:30".parse::<Zone>().unwrap(),
            Zone::Fixed(5 * 3600 + 1800)
        );
        assert!("Mars/Olympus".parse::<Zone>().is_err());
    }
}

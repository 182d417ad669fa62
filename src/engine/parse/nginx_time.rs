//! nginx's time fields — `$time_local`, `$time_iso8601`, `$msec` — recognised by their shape,
//! and the cache of the last one read (consecutive lines usually share the second).

use super::bytes;
use crate::engine::event::Timestamp;
use crate::engine::time::{self, ZoneClock};

/// Remembers the last time field and its value: consecutive lines usually share the second.
#[derive(Clone, Debug)]
pub(super) struct TimeCache {
    raw: [u8; 40],
    len: usize,
    value: Option<Timestamp>,
}

impl TimeCache {
    pub(super) fn new() -> TimeCache {
        TimeCache {
            raw: [0; 40],
            len: usize::MAX,
            value: None,
        }
    }

    #[inline(always)]
    pub(super) fn get(&mut self, raw: &[u8], zone: &mut ZoneClock) -> Option<Timestamp> {
        if raw.len() == self.len && bytes::eq(&self.raw[..raw.len()], raw) {
            return self.value;
        }
        self.parse(raw, zone)
    }

    /// [`TimeCache::get`] for a time of `N` bytes (`$time_local`'s 26): compared as an array.
    #[inline(always)]
    pub(super) fn get_fixed<const N: usize>(
        &mut self,
        raw: &[u8],
        zone: &mut ZoneClock,
    ) -> Option<Timestamp> {
        let (Some(raw), Some(last)) = (raw.first_chunk::<N>(), self.raw.first_chunk::<N>()) else {
            return self.get(raw, zone);
        };
        if self.len == N && raw == last {
            return self.value;
        }
        self.parse(raw, zone)
    }

    #[inline(never)]
    fn parse(&mut self, raw: &[u8], zone: &mut ZoneClock) -> Option<Timestamp> {
        let value = parse_any_time(raw, zone);
        if raw.len() <= self.raw.len() {
            self.raw[..raw.len()].copy_from_slice(raw);
            self.len = raw.len();
            self.value = value;
        }
        value
    }
}

/// `$time_local`, `$time_iso8601` or `$msec`, recognised by shape.
fn parse_any_time(raw: &[u8], zone: &mut ZoneClock) -> Option<Timestamp> {
    if raw.get(2) == Some(&b'/') {
        return time::parse_clf(raw);
    }
    if raw.get(4) == Some(&b'-') {
        let (naive, off, used) = time::parse_iso8601(raw)?;
        if used != raw.len() {
            return None;
        }
        return Some(match off {
            Some(o) => Timestamp::new(naive - o as i64 * 1000, o),
            None => zone.to_utc(naive),
        });
    }
    time::parse_msec(raw)
}

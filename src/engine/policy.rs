//! The alert policy: whether an incident change becomes a message. One table ([`decide`]),
//! pure, used by the outbox when it records the reader's changes and by the memory path while
//! the state cannot be written; and the maintenance windows that quiet alerts (silences are
//! data in the state, matched with the same glob).

use crate::engine::glob;
use crate::engine::time::Zone;

/// The change the detector (or the reminder clock) made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Opened,
    Reminder,
    Resolved,
}

/// What the state already holds of the incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// It was silenced (by a silence or a maintenance window) when it opened.
    pub silenced: bool,
    pub closed: bool,
    /// Someone acknowledged it: no more reminders (the resolved note still goes out).
    pub acked: bool,
}

/// What to do with a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new incident: record it, silenced or not; a message unless silenced.
    Open { silenced: bool },
    /// Announce an open incident again (and record when); a message unless it was silenced
    /// when it opened, was acknowledged, or a silence (or a snooze of it) covers it now.
    Remind { send: bool },
    /// Close the incident; the resolved note goes where the alert went (none if silenced).
    Resolve { send: bool },
    /// Nothing: an incident opened twice (lines read again after a crash), a reminder or a
    /// resolution of an incident not open.
    Ignore,
}

impl Verdict {
    /// Whether a message goes out.
    pub fn sends(self) -> bool {
        match self {
            Verdict::Open { silenced } => !silenced,
            Verdict::Remind { send } | Verdict::Resolve { send } => send,
            Verdict::Ignore => false,
        }
    }
}

/// The policy: `recorded` is what the state holds of the incident (`None`: nothing yet);
/// `silenced_now` says whether a silence or a maintenance window covers it now (asked only
/// when it matters).
pub fn decide(
    change: Change,
    recorded: Option<Recorded>,
    silenced_now: impl FnOnce() -> bool,
) -> Verdict {
    match (change, recorded) {
        (Change::Opened, None) => Verdict::Open {
            silenced: silenced_now(),
        },
        (Change::Opened, Some(_)) => Verdict::Ignore,
        (Change::Reminder, Some(r)) if !r.closed => Verdict::Remind {
            send: !r.silenced && !r.acked && !silenced_now(),
        },
        (Change::Resolved, Some(r)) if !r.closed => Verdict::Resolve { send: !r.silenced },
        (Change::Reminder | Change::Resolved, _) => Verdict::Ignore,
    }
}

/// A maintenance window: incidents that open inside it are recorded but not alerted.
#[derive(Clone, Debug, PartialEq)]
pub struct Maintenance {
    /// Globs (`*`, `?`) over the upstream and the entry id.
    pub upstream: String,
    pub entry: Option<String>,
    pub when: MaintenanceTime,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MaintenanceTime {
    /// Every week on these days (0 = Monday), from `start` to `end` (minutes after
    /// midnight; `end` before `start` runs past midnight), in a time zone.
    Weekly {
        days: Vec<u32>,
        start: u32,
        end: u32,
        zone: Zone,
    },
    /// Once, from one instant until another (Unix ms).
    Once { from_ms: i64, until_ms: i64 },
}

impl Maintenance {
    /// Whether the window covers an incident of `upstream` and `entry` at `now_ms` (Unix ms).
    pub fn covers(&self, upstream: &str, entry: &str, now_ms: i64) -> bool {
        if !glob::matches(self.upstream.as_bytes(), upstream.as_bytes())
            || self
                .entry
                .as_ref()
                .is_some_and(|e| !glob::matches(e.as_bytes(), entry.as_bytes()))
        {
            return false;
        }
        match &self.when {
            MaintenanceTime::Once { from_ms, until_ms } => (*from_ms..*until_ms).contains(&now_ms),
            MaintenanceTime::Weekly {
                days,
                start,
                end,
                zone,
            } => {
                use chrono::{Datelike, Timelike};
                let Some(utc) = chrono::DateTime::from_timestamp_millis(now_ms) else {
                    return false;
                };
                let local = zone.local(utc);
                let minute = local.hour() * 60 + local.minute();
                let today = local.weekday().num_days_from_monday();
                let yesterday = (today + 6) % 7;
                if start <= end {
                    days.contains(&today) && (*start..*end).contains(&minute)
                } else {
                    // Past midnight: the evening of a listed day, or the morning after it.
                    (days.contains(&today) && minute >= *start)
                        || (days.contains(&yesterday) && minute < *end)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change × what the state holds × whether a silence or maintenance window covers
    /// the incident now.
    #[test]
    fn the_alert_policy_as_a_table() {
        let open = |silenced| {
            Some(Recorded {
                silenced,
                closed: false,
                acked: false,
            })
        };
        let acked = Some(Recorded {
            silenced: false,
            closed: false,
            acked: true,
        });
        let closed = |silenced| {
            Some(Recorded {
                silenced,
                closed: true,
                acked: false,
            })
        };
        use Verdict::*;
        for (change, recorded, now, expected) in [
            (Change::Opened, None, false, Open { silenced: false }),
            (Change::Opened, None, true, Open { silenced: true }),
            (Change::Opened, open(false), false, Ignore),
            (Change::Opened, open(true), true, Ignore),
            (Change::Opened, closed(false), false, Ignore),
            (Change::Reminder, open(false), false, Remind { send: true }),
            (Change::Reminder, open(false), true, Remind { send: false }),
            (Change::Reminder, open(true), false, Remind { send: false }),
            // Acknowledged: no more reminders, but the resolved note still goes out.
            (Change::Reminder, acked, false, Remind { send: false }),
            (Change::Resolved, acked, false, Resolve { send: true }),
            (Change::Reminder, None, false, Ignore),
            (Change::Reminder, closed(false), false, Ignore),
            (Change::Resolved, open(false), false, Resolve { send: true }),
            // A silence added after the alert does not swallow the resolved note.
            (Change::Resolved, open(false), true, Resolve { send: true }),
            (Change::Resolved, open(true), false, Resolve { send: false }),
            (Change::Resolved, None, false, Ignore),
            (Change::Resolved, closed(false), false, Ignore),
        ] {
            let v = decide(change, recorded, || now);
            assert_eq!(v, expected, "{change:?} {recorded:?} silenced now: {now}");
            assert_eq!(
                v.sends(),
                matches!(
                    v,
                    Open { silenced: false } | Remind { send: true } | Resolve { send: true }
                )
            );
        }
    }

    #[test]
    fn silences_are_only_asked_when_they_matter() {
        let asked = std::cell::Cell::new(false);
        let ask = || {
            asked.set(true);
            true
        };
        decide(
            Change::Resolved,
            Some(Recorded {
                silenced: false,
                closed: false,
                acked: false,
            }),
            ask,
        );
        assert!(!asked.get(), "a resolution does not ask");
        decide(
            Change::Reminder,
            Some(Recorded {
                silenced: true,
                closed: false,
                acked: false,
            }),
            ask,
        );
        assert!(!asked.get(), "a silenced incident's reminder does not ask");
    }
}

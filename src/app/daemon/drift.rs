//! Format drift, gatewatch's own alarm: a source whose latest lines stopped parsing (a proxy
//! upgrade, a changed `log_format`, a new container image) would hide its failures. When a
//! fifth or more of the last lines read from a source did not parse, an incident of the
//! knowledge base's `gatewatch/format-drift` entry opens for the source and goes out through
//! the channels like any other; it resolves when nearly every line parses again.

use super::*;
use std::collections::VecDeque;

/// The lines looked at: about the last this many read from a source.
const WINDOW_LINES: u64 = 200;
/// Judged only with at least this many lines in the window.
const MIN_LINES: u64 = 100;
/// Opens at this share of unparsed lines, closes below the second.
const OPEN_SHARE: f64 = 0.2;
const CLOSE_SHARE: f64 = 0.05;

/// The entry of the alarm.
pub(super) const ENTRY: &str = "gatewatch/format-drift";

/// One source's recent parsing, and its alarm.
#[derive(Default)]
pub(super) struct Drift {
    /// Lines and unparsed lines read per round, newest last, covering about
    /// [`WINDOW_LINES`] lines.
    rounds: VecDeque<(u64, u64)>,
    /// The source's totals when last looked at.
    seen: (u64, u64),
    /// The alarm while it is open.
    pub(super) open: Option<crate::engine::detect::Incident>,
}

impl Drift {
    /// Takes a source's totals; returns the window's lines and unparsed lines.
    fn observe(&mut self, lines: u64, unparsed: u64) -> (u64, u64) {
        let delta = (
            lines.saturating_sub(self.seen.0),
            unparsed.saturating_sub(self.seen.1),
        );
        self.seen = (lines, unparsed);
        if delta.0 > 0 {
            self.rounds.push_back(delta);
        }
        let mut total: u64 = self.rounds.iter().map(|r| r.0).sum();
        while self.rounds.len() > 1 && total - self.rounds[0].0 >= WINDOW_LINES {
            total -= self.rounds[0].0;
            self.rounds.pop_front();
        }
        (total, self.rounds.iter().map(|r| r.1).sum())
    }
}

impl Reader {
    /// Looks at every source's latest lines; opens and resolves format-drift alarms.
    pub(super) fn check_drift(&mut self) {
        let Some(entry) = self.out.kb.find(ENTRY) else {
            return;
        };
        let now = now_ms();
        let Reader { slots, out, .. } = self;
        for slot in slots.iter_mut() {
            let (all, bad) = slot.src.counts();
            let (lines, unparsed) = slot.drift.observe(all, bad);
            if lines < MIN_LINES {
                continue;
            }
            let share = unparsed as f64 / lines as f64;
            let name = slot.src.name().to_string();
            match slot.drift.open.take() {
                None if share >= OPEN_SHARE => {
                    log!(
                        Error,
                        "format drift: the latest lines of a source do not parse; its failures go unseen until its format is set right",
                        source = name,
                        unparsed = unparsed,
                        of_lines = lines
                    );
                    let inc = crate::engine::detect::Incident {
                        seq: 0,
                        entry,
                        upstream: name.clone(),
                        cause: crate::engine::event::Cause::NotApplicable,
                        start_ms: now,
                        offset_secs: 0,
                        opened_ms: now,
                        end_ms: now,
                        closed_ms: None,
                        failures: unparsed,
                        requests: Some(lines),
                        window_failures: unparsed as u32,
                        window_requests: lines as u32,
                        peak_window_failures: unparsed as u32,
                        causes: Default::default(),
                        statuses: Vec::new(),
                        vhosts: Default::default(),
                        paths: Default::default(),
                        samples: slot.src.status().recent_unparsed,
                        sources: vec![slot.id],
                        recovery: Vec::new(),
                    };
                    out.announced.push((name, entry, now));
                    out.notices.push(crate::store::outbox::Notice::new(
                        AlertKind::Opened,
                        inc.clone(),
                    ));
                    slot.drift.open = Some(inc);
                }
                Some(mut inc) if share < CLOSE_SHARE => {
                    log!(Info, "format drift over", source = name);
                    inc.end_ms = now;
                    inc.closed_ms = Some(now);
                    out.announced
                        .retain(|(u, e, _)| !(*u == inc.upstream && *e == inc.entry));
                    out.notices
                        .push(crate::store::outbox::Notice::new(AlertKind::Resolved, inc));
                }
                Some(mut inc) => {
                    inc.end_ms = now;
                    inc.failures = inc.failures.max(unparsed);
                    slot.drift.open = Some(inc);
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_about_the_last_lines() {
        let mut d = Drift::default();
        assert_eq!(d.observe(50, 0), (50, 0));
        assert_eq!(d.observe(150, 100), (150, 100));
        // 300 more, all parsed: the window drops the rounds it no longer needs.
        assert_eq!(d.observe(450, 100), (300, 0));
        assert_eq!(d.observe(450, 100), (300, 0));
    }
}

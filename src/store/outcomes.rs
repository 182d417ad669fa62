//! What fixed each incident (issue 17): verdicts on an entry's workarounds and dead ends, given
//! from the command line (and later from the alert's links), kept with who gave them, when and
//! how; and the local record they make for each item of an entry.

use super::State;
use crate::engine::kb::evidence::Local;
use crate::render::summary::Inc;
use anyhow::Context;
use rusqlite::params;
use std::collections::BTreeMap;

/// What a workaround (or dead end) did in one incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It fixed the failure.
    Fixed,
    /// It was tried and changed nothing.
    NoEffect,
    /// It was not tried (takes back an earlier verdict).
    NotTried,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fixed => "fixed",
            Verdict::NoEffect => "no_effect",
            Verdict::NotTried => "not_tried",
        }
    }

    pub fn from_name(s: &str) -> Option<Verdict> {
        [Verdict::Fixed, Verdict::NoEffect, Verdict::NotTried]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// An item of an entry's advice, by its place in the entry (1-based, as alerts number them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    Workaround(usize),
    DeadEnd(usize),
}

impl Item {
    pub fn name(self) -> String {
        match self {
            Item::Workaround(n) => format!("workaround:{n}"),
            Item::DeadEnd(n) => format!("dead_end:{n}"),
        }
    }

    pub fn parse(s: &str) -> Option<Item> {
        let (kind, n) = s.split_once(':')?;
        let n: usize = n.parse().ok().filter(|&n| n > 0)?;
        match kind {
            "workaround" => Some(Item::Workaround(n)),
            "dead_end" => Some(Item::DeadEnd(n)),
            _ => None,
        }
    }
}

/// One verdict as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub incident: String,
    pub entry: String,
    pub item: Item,
    pub verdict: Verdict,
    pub who: String,
    /// `cli`, `link` or `automatic`.
    pub via: String,
    pub note: Option<String>,
    pub at_ms: i64,
}

impl State {
    /// Records verdicts, all or none.
    pub fn record_outcomes(&mut self, outcomes: &[Outcome]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for o in outcomes {
            tx.execute(
                "INSERT INTO outcomes (incident, entry, item, verdict, who, via, note, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    o.incident,
                    o.entry,
                    o.item.name(),
                    o.verdict.as_str(),
                    o.who,
                    o.via,
                    o.note,
                    o.at_ms
                ],
            )?;
        }
        tx.commit().context("recording the outcomes")
    }

    /// Every verdict given on an incident, oldest first.
    pub fn outcomes(&self, incident: &str) -> anyhow::Result<Vec<Outcome>> {
        // A state of schema 5 opened read-only (before the daemon upgraded it) has none.
        if !super::has_table(&self.conn, "outcomes")? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT incident, entry, item, verdict, who, via, note, at_ms FROM outcomes
             WHERE incident = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![incident], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (incident, entry, item, verdict, who, via, note, at_ms) = row?;
            // A row this build cannot read (written by a newer one) is left out, not an error.
            if let (Some(item), Some(verdict)) = (Item::parse(&item), Verdict::from_name(&verdict))
            {
                out.push(Outcome {
                    incident,
                    entry,
                    item,
                    verdict,
                    who,
                    via,
                    note,
                    at_ms,
                });
            }
        }
        Ok(out)
    }

    /// The local record of an entry's items: for each, in how many incidents it was tried and
    /// in how many it fixed the failure, counting each incident's last verdict on it.
    pub fn local_record(&self, entry: &str) -> anyhow::Result<BTreeMap<Item, Local>> {
        if !super::has_table(&self.conn, "outcomes")? {
            return Ok(BTreeMap::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.item, o.verdict FROM outcomes o
             WHERE o.entry = ?1 AND o.id = (
                 SELECT MAX(id) FROM outcomes
                 WHERE incident = o.incident AND entry = o.entry AND item = o.item
             )",
        )?;
        let rows = stmt.query_map(params![entry], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out: BTreeMap<Item, Local> = BTreeMap::new();
        for row in rows {
            let (item, verdict) = row?;
            let (Some(item), Some(verdict)) = (Item::parse(&item), Verdict::from_name(&verdict))
            else {
                continue;
            };
            let l = out.entry(item).or_default();
            match verdict {
                Verdict::Fixed => {
                    l.tried += 1;
                    l.fixed += 1;
                }
                Verdict::NoEffect => l.tried += 1,
                Verdict::NotTried => {}
            }
        }
        Ok(out)
    }

    /// One recorded incident, by its key.
    pub fn incident(&self, key: &str) -> anyhow::Result<Option<Inc>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, entry, upstream, cause, start_ms, end_ms, closed_ms, failures, requests, peak, silenced
             FROM incidents WHERE key = ?1",
        )?;
        let mut rows = stmt.query_map(params![key], super::history::incident)?;
        Ok(rows.next().transpose()?)
    }

    /// The open incidents and those that ended since `since_ms`, the newest first.
    pub fn recent_incidents(&self, since_ms: i64, limit: usize) -> anyhow::Result<Vec<Inc>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, entry, upstream, cause, start_ms, end_ms, closed_ms, failures, requests, peak, silenced
             FROM incidents WHERE closed_ms IS NULL OR end_ms >= ?1
             ORDER BY closed_ms IS NOT NULL, end_ms DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since_ms, limit as i64], super::history::incident)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(incident: &str, item: Item, verdict: Verdict, at_ms: i64) -> Outcome {
        Outcome {
            incident: incident.into(),
            entry: "api/x".into(),
            item,
            verdict,
            who: "alice".into(),
            via: "cli".into(),
            note: None,
            at_ms,
        }
    }

    #[test]
    fn the_last_verdict_per_incident_and_item_counts_and_the_history_is_kept() {
        let mut st = State::in_memory().unwrap();
        st.record_outcomes(&[
            outcome("gw-1", Item::Workaround(1), Verdict::NoEffect, 1),
            outcome("gw-1", Item::Workaround(2), Verdict::Fixed, 2),
            outcome("gw-2", Item::Workaround(2), Verdict::Fixed, 3),
            outcome("gw-2", Item::DeadEnd(1), Verdict::NoEffect, 4),
        ])
        .unwrap();
        // gw-2's #2 was taken back: not tried after all.
        st.record_outcomes(&[outcome("gw-2", Item::Workaround(2), Verdict::NotTried, 5)])
            .unwrap();
        let record = st.local_record("api/x").unwrap();
        assert_eq!(record[&Item::Workaround(1)], Local { tried: 1, fixed: 0 });
        assert_eq!(record[&Item::Workaround(2)], Local { tried: 1, fixed: 1 });
        assert_eq!(record[&Item::DeadEnd(1)], Local { tried: 1, fixed: 0 });
        assert_eq!(st.outcomes("gw-2").unwrap().len(), 3);
        assert!(st.local_record("api/other").unwrap().is_empty());
    }

    #[test]
    fn items_are_named_by_their_place() {
        assert_eq!(Item::parse("workaround:3"), Some(Item::Workaround(3)));
        assert_eq!(
            Item::parse(&Item::DeadEnd(2).name()),
            Some(Item::DeadEnd(2))
        );
        for bad in ["workaround:0", "workaround:x", "fix:1", "workaround"] {
            assert_eq!(Item::parse(bad), None, "{bad}");
        }
    }
}

//! What fixed each incident (issue 17): verdicts on an entry's workarounds and dead ends, given
//! from the command line (and later from the alert's links), kept with who gave them, when and
//! how; and the local record they make for each item of an entry.

use super::State;
pub use crate::engine::kb::evidence::{Item, Local, Verdict};
use crate::render::links::Action;
use crate::render::summary::Inc;
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

/// The local record of an entry's items: for each, in how many incidents it was tried and
/// in how many it fixed the failure, counting each incident's last verdict on it. A verdict
/// seen in the logs (`followed`) never replaces one a person gave, whatever their order.
pub fn local_record(conn: &Connection, entry: &str) -> rusqlite::Result<BTreeMap<Item, Local>> {
    if !super::has_table(conn, "outcomes")? {
        return Ok(BTreeMap::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT incident, item, verdict FROM outcomes WHERE entry = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![entry], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut last: std::collections::HashMap<(String, Item), Verdict> = Default::default();
    for row in rows {
        let (incident, item, verdict) = row?;
        let (Some(item), Some(verdict)) = (Item::parse(&item), Verdict::from_name(&verdict)) else {
            continue;
        };
        let slot = last.entry((incident, item)).or_insert(verdict);
        if verdict != Verdict::Followed || *slot == Verdict::Followed {
            *slot = verdict;
        }
    }
    let mut out: BTreeMap<Item, Local> = BTreeMap::new();
    for ((_, item), verdict) in last {
        let l = out.entry(item).or_default();
        match verdict {
            Verdict::Fixed => {
                l.tried += 1;
                l.fixed += 1;
            }
            Verdict::NoEffect => l.tried += 1,
            Verdict::Followed => l.followed += 1,
            Verdict::NotTried => {}
        }
    }
    Ok(out)
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

/// What an action on an incident (a link followed, `incident ack`/`snooze`) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acted {
    /// Done; what it did, in words.
    Done(String),
    /// The link was followed before (each works once).
    Used,
    /// The state has no such incident.
    NoIncident,
    /// The incident has ended: there is nothing to acknowledge or snooze.
    Ended,
}

impl State {
    /// Acts on an incident, in one transaction: acknowledges it, snoozes it (a silence of it
    /// alone), or records a verdict on one of its entry's items. `once`: the signature of the
    /// link that asked, which works only once.
    pub fn act(
        &mut self,
        key: &str,
        action: &Action,
        who: &str,
        via: &str,
        once: Option<&str>,
        now_ms: i64,
    ) -> anyhow::Result<Acted> {
        // Immediate: the read and the writes after it in one write transaction, so a commit
        // of the daemon in between cannot fail it.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, Option<i64>, Option<i64>)> = tx
            .prepare_cached("SELECT entry, closed_ms, acked_ms FROM incidents WHERE key = ?1")?
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((entry, closed, acked)) = row else {
            return Ok(Acted::NoIncident);
        };
        if closed.is_some() && matches!(action, Action::Ack | Action::Snooze { .. }) {
            return Ok(Acted::Ended);
        }
        if let Some(sig) = once {
            let fresh = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO link_uses (sig, incident, action, used_ms) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![sig, key, action.code(), now_ms])?;
            if fresh == 0 {
                return Ok(Acted::Used);
            }
        }
        let done = match action {
            Action::Ack => {
                if acked.is_none() {
                    tx.prepare_cached(
                        "UPDATE incidents SET acked_ms = ?2, acked_by = ?3 WHERE key = ?1",
                    )?
                    .execute(params![key, now_ms, who])?;
                }
                format!("{key} acknowledged: no more reminders until it ends")
            }
            Action::Snooze { secs } => {
                let until = now_ms + i64::from(*secs) * 1000;
                super::outbox::add_silence(
                    &tx,
                    &super::outbox::Silence {
                        id: 0,
                        upstream: "*".into(),
                        entry: None,
                        starts_ms: now_ms,
                        ends_ms: until,
                        reason: format!("snooze of {key}"),
                        created_by: Some(format!("{who} via {via}")),
                        incident: Some(key.to_string()),
                    },
                )?;
                format!(
                    "{key} snoozed for {}: no reminders until then",
                    humantime::format_duration(std::time::Duration::from_secs(u64::from(*secs)))
                )
            }
            Action::Verdict { item, verdict } => {
                tx.prepare_cached(
                    "INSERT INTO outcomes (incident, entry, item, verdict, who, via, note, at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
                )?
                .execute(params![
                    key,
                    entry,
                    item.name(),
                    verdict.as_str(),
                    who,
                    via,
                    now_ms
                ])?;
                format!("{key}: {} {}", item.name(), verdict.as_str())
            }
        };
        tx.commit().context("recording the action")?;
        Ok(Acted::Done(done))
    }

    /// When a link (by its signature) was followed, if it was.
    pub fn link_used(&self, sig: &str) -> anyhow::Result<Option<i64>> {
        if !super::has_table(&self.conn, "link_uses")? {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT used_ms FROM link_uses WHERE sig = ?1")?
            .query_row(params![sig], |r| r.get(0))
            .optional()?)
    }

    /// When and by whom an incident was acknowledged, if it was.
    pub fn acked(&self, key: &str) -> anyhow::Result<Option<(i64, String)>> {
        if !super::has_column(&self.conn, "incidents", "acked_ms")? {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT acked_ms, acked_by FROM incidents WHERE key = ?1")?
            .query_row(params![key], |r| {
                Ok(r.get::<_, Option<i64>>(0)?
                    .map(|at| (at, r.get::<_, Option<String>>(1).ok().flatten())))
            })
            .optional()?
            .flatten()
            .map(|(at, by)| (at, by.unwrap_or_default())))
    }

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

    /// The local record of an entry's items (see [`local_record`]).
    pub fn local_record(&self, entry: &str) -> anyhow::Result<BTreeMap<Item, Local>> {
        Ok(local_record(&self.conn, entry)?)
    }

    /// An incident as the detector saw it (its sample lines, statuses, causes), by its key.
    pub fn incident_data(
        &self,
        key: &str,
    ) -> anyhow::Result<Option<crate::engine::detect::Incident>> {
        let data: Option<String> = self
            .conn
            .prepare_cached("SELECT data FROM incidents WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?;
        data.map(|d| serde_json::from_str(&d).context("reading the incident's data"))
            .transpose()
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
        assert_eq!(record[&Item::Workaround(1)], Local::new(1, 0));
        assert_eq!(record[&Item::Workaround(2)], Local::new(1, 1));
        assert_eq!(record[&Item::DeadEnd(1)], Local::new(1, 0));
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

//! What the daily summary and the status page read from the state: counters by hour and the
//! incidents recorded ([`History`], implemented for the state's connection).

use crate::engine::event::{Cause, Format};
use crate::render::summary::{History, Inc, Row};
use anyhow::Context;
use chrono::NaiveDate;
use rusqlite::{Connection, params};

impl History for Connection {
    fn counter_rows(&self, start: i64, end: i64) -> anyhow::Result<Vec<Row>> {
        counter_rows(self, start, end)
    }

    fn error_sources(&self) -> anyhow::Result<Vec<String>> {
        error_sources(self)
    }

    fn incidents_between(&self, start: i64, end: i64) -> anyhow::Result<Vec<Inc>> {
        incidents_between(self, start, end)
    }

    fn ended_since(&self, since: i64, limit: usize) -> anyhow::Result<Vec<Inc>> {
        let mut stmt = self.prepare_cached(
            "SELECT key, entry, upstream, cause, start_ms, end_ms, closed_ms, failures, requests, peak, silenced
             FROM incidents WHERE closed_ms IS NOT NULL AND end_ms >= ?1 ORDER BY end_ms DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![since, limit as i64], incident)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn has_feedback(&self, key: &str) -> anyhow::Result<bool> {
        if !super::has_table(self, "outcomes")? {
            return Ok(false);
        }
        Ok(self
            .prepare_cached(
                "SELECT 1 FROM outcomes WHERE incident = ?1 AND via != 'automatic' AND verdict != 'not_tried'",
            )?
            .exists(params![key])?)
    }

    fn local_record(
        &self,
        entry: &str,
    ) -> anyhow::Result<
        std::collections::BTreeMap<
            crate::engine::kb::evidence::Item,
            crate::engine::kb::evidence::Local,
        >,
    > {
        Ok(super::outcomes::local_record(self, entry)?)
    }
}

/// An `incidents` row of the columns the queries here select, in that order.
pub(super) fn incident(r: &rusqlite::Row<'_>) -> rusqlite::Result<Inc> {
    Ok(Inc {
        key: r.get(0)?,
        entry: r.get(1)?,
        upstream: r.get(2)?,
        cause: Cause::from_name(&r.get::<_, String>(3)?).unwrap_or(Cause::Other5xx),
        start_ms: r.get(4)?,
        end_ms: r.get(5)?,
        closed_ms: r.get(6)?,
        failures: r.get::<_, i64>(7)? as u64,
        requests: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
        peak: r.get::<_, i64>(9)? as u64,
        silenced: r.get::<_, i64>(10)? != 0,
    })
}

fn counter_rows(conn: &Connection, start: i64, end: i64) -> anyhow::Result<Vec<Row>> {
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut days = vec![day(start)];
    let mut t = start;
    while t < end {
        t += 86_400_000;
        let d = day(t.min(end - 1));
        if !days.contains(&d) {
            days.push(d);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT day, hour, source, upstream, cause, count FROM counters WHERE day = ?1",
    )?;
    let mut out = Vec::new();
    for d in &days {
        let base = NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .context("a counters day")?
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis();
        let it = stmt.query_map(params![d], |r| {
            Ok((
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        for row in it {
            let (hour, source, upstream, cause, count) = row?;
            let utc_ms = base + hour * 3_600_000;
            if (start..end).contains(&utc_ms) && count > 0 {
                out.push(Row {
                    utc_ms,
                    source,
                    upstream,
                    cause: Cause::from_name(&cause).unwrap_or(Cause::NotApplicable),
                    count: count as u64,
                });
            }
        }
    }
    Ok(out)
}

fn error_sources(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT source, format FROM source_formats")?;
    let errors: Vec<String> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .filter_map(Result::ok)
        .filter(|(_, f)| f == Format::NginxError.as_str())
        .map(|(s, _)| s)
        .collect();
    Ok(errors)
}

fn incidents_between(conn: &Connection, start: i64, end: i64) -> anyhow::Result<Vec<Inc>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, entry, upstream, cause, start_ms, end_ms, closed_ms, failures, requests, peak, silenced
         FROM incidents WHERE start_ms < ?2 AND end_ms >= ?1 ORDER BY start_ms, key",
    )?;
    let rows = stmt.query_map(params![start, end], incident)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

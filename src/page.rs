//! The status page (`/` on the HTTP endpoint) and its JSON (`/api/incidents`): the open
//! incidents with their entry and what to do, the incidents of the last 24 hours, failures per
//! hour as a chart, and the sources being followed with their lag. Server-rendered HTML, no
//! JavaScript, readable on a phone; it reloads itself every 30 seconds.

use crate::alert::{self, Item};
use crate::daemon::{FileStatus, Status};
use crate::kb::Lang;
use crate::summary::{self, CauseCount, Hour};
use crate::time::Zone;
use serde::Serialize;
use std::time::SystemTime;

/// An incident of the last 24 hours that has ended.
#[derive(Clone, Debug, Serialize)]
pub struct Ended {
    pub upstream: String,
    pub entry: String,
    pub title: String,
    pub cause: String,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub failures: u64,
    pub silenced: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Channel {
    pub name: String,
    pub sent: u64,
    pub failed: u64,
}

/// Everything the page shows.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub version: u32,
    pub host: String,
    pub generated: String,
    pub healthy: bool,
    pub problem: Option<String>,
    /// Open incidents: the alert's content (entry, workarounds, dead ends) as it stands.
    pub open: Vec<Item>,
    pub ended: Vec<Ended>,
    pub hours: Vec<Hour>,
    pub causes: Vec<CauseCount>,
    pub sources: Vec<FileStatus>,
    pub channels: Vec<Channel>,
    pub outbox_depth: u64,
}

fn local(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Zone::Local.local(t).format("%m-%d %H:%M:%S").to_string()
}

/// Incidents that ended in the last 24 hours, newest first.
fn ended(st: &Status, now_ms: i64) -> anyhow::Result<(Vec<Ended>, Vec<Hour>, Vec<CauseCount>)> {
    let Some(path) = &st.state_path else {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    let mut stmt = conn.prepare(
        "SELECT upstream, entry, cause, start_ms, end_ms, failures, silenced FROM incidents
         WHERE closed_ms IS NOT NULL AND end_ms >= ?1 ORDER BY end_ms DESC LIMIT 50",
    )?;
    let kb = st.kb.clone();
    let rows = stmt.query_map([now_ms - 24 * 3_600_000], |r| {
        let entry: String = r.get(1)?;
        let (start, end): (i64, i64) = (r.get(3)?, r.get(4)?);
        Ok(Ended {
            upstream: r.get(0)?,
            title: kb
                .as_ref()
                .and_then(|k| {
                    k.find(&entry)
                        .map(|e| k.get(e).title.get(Lang::En).to_string())
                })
                .unwrap_or_else(|| entry.clone()),
            entry,
            cause: r.get(2)?,
            start: local(start),
            end: local(end),
            duration: crate::report::human_duration(end - start),
            failures: r.get::<_, i64>(5)? as u64,
            silenced: r.get::<_, i64>(6)? != 0,
        })
    })?;
    let ended = rows.collect::<Result<_, _>>()?;
    let (hours, causes) = summary::recent_hours(&conn, &Zone::Local, now_ms, 24)?;
    Ok((ended, hours, causes))
}

/// The page as it stands.
pub fn build(st: &Status, now: SystemTime) -> Page {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let open = match &st.kb {
        Some(kb) => st
            .open_incidents
            .iter()
            .map(|i| {
                let names: Vec<String> = st.files.iter().map(|f| f.path.clone()).collect();
                alert::item(i, kb, Lang::En, &st.host, &names)
            })
            .collect(),
        None => Vec::new(),
    };
    let (ended, hours, causes, problem) = match ended(st, now_ms) {
        Ok((e, h, c)) => (e, h, c, crate::http::problem(st, now)),
        Err(e) => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Some(format!("reading the state: {e:#}")),
        ),
    };
    Page {
        version: 1,
        host: st.host.clone(),
        generated: chrono::DateTime::from_timestamp_millis(now_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        healthy: problem.is_none(),
        problem,
        open,
        ended,
        hours,
        causes,
        sources: st.files.clone(),
        channels: st
            .alerts
            .iter()
            .map(|(name, (sent, failed))| Channel {
                name: name.clone(),
                sent: *sent,
                failed: *failed,
            })
            .collect(),
        outbox_depth: st.outbox_depth,
    }
}

/// Failures per hour, stacked by cause, as an inline SVG (numbers and colours only).
pub fn svg(p: &Page) -> String {
    let (w, h, left, bottom, top) = (720.0, 200.0, 44.0, 180.0, 8.0);
    let max = p.hours.iter().map(|h| h.failures).max().unwrap_or(0).max(1) as f64;
    let slot = (w - left - 4.0) / p.hours.len().max(1) as f64;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="5xx per hour">"##
    );
    for (v, y) in [(max as u64, top), (0, bottom)] {
        s.push_str(&format!(
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{v}</text>"##,
            w - 4.0,
            left - 6.0,
            y + 4.0
        ));
    }
    for (i, hr) in p.hours.iter().enumerate() {
        let x = left + i as f64 * slot + 2.0;
        let mut y = bottom;
        for (k, n) in hr.by_cause.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let bh = (*n as f64 / max * (bottom - top)).max(1.0);
            let color = p
                .causes
                .get(k)
                .map_or("#5f6368".to_string(), |c| c.color.clone());
            s.push_str(&format!(
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{} {n}</title></rect>"##,
                y - bh,
                slot - 4.0,
                hr.label
            ));
            y -= bh;
        }
        if i % 3 == 0 {
            s.push_str(&format!(
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
                x + (slot - 4.0) / 2.0,
                h - 4.0,
                hr.label
            ));
        }
    }
    s.push_str("</svg>");
    s
}

/// The page as HTML.
pub fn html(p: &Page) -> anyhow::Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| anyhow::anyhow!("template syntax: {e}"))?,
    );
    env.add_filter("num", |n: u64| summary::thousands(n));
    env.add_filter("code_spans", |s: String| alert::html_code_spans(&s));
    env.add_template(
        "status.html.j2",
        include_str!("../templates/status.html.j2"),
    )
    .map_err(|e| anyhow::anyhow!("status.html.j2: {e:#}"))?;
    #[derive(Serialize)]
    struct Ctx<'a> {
        p: &'a Page,
        chart: String,
    }
    env.get_template("status.html.j2")?
        .render(minijinja::value::Serde(&Ctx { p, chart: svg(p) }))
        .map_err(|e| anyhow::anyhow!("rendering the status page: {e:#}"))
}

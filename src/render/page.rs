//! The status page (`/` on the HTTP endpoint) and its JSON (`/api/incidents`): the open
//! incidents with their entry and what to do, the incidents of the last 24 hours, failures per
//! hour as a chart, and the sources being followed with their lag. Server-rendered HTML, no
//! JavaScript, readable on a phone; it reloads itself every 30 seconds.

use crate::engine::detect::Incident;
use crate::engine::kb::{Kb, Lang};
use crate::engine::time::Zone;
use crate::render::alert::{self, Item};
use crate::render::summary::{self, CauseCount, History, Hour, IncidentRow};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FileStatus {
    pub path: String,
    pub format: String,
    pub lines: u64,
    pub unparsed: u64,
    /// Lines longer than the limit, skipped (counted in `unparsed` too).
    pub too_long: u64,
    /// Bytes written but not read yet.
    pub lag_bytes: u64,
    /// Its latest lines do not parse (the format-drift alarm is open).
    pub drift: bool,
    /// A Kafka source's partitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<crate::source::KafkaStatus>,
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
    /// Incidents of the last 24 hours that have ended.
    pub ended: Vec<IncidentRow>,
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

/// What the page is built from: the daemon's state of affairs, handed in by the HTTP endpoint.
pub struct Input<'a> {
    pub host: &'a str,
    /// Why the daemon is not healthy, if it is not.
    pub problem: Option<String>,
    pub kb: Option<&'a Kb>,
    pub open: &'a [Incident],
    pub sources: &'a [FileStatus],
    /// Messages per channel: sent, failed.
    pub channels: &'a BTreeMap<String, (u64, u64)>,
    pub outbox_depth: u64,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// Incidents that ended in the last 24 hours, newest first; the last 24 hours' chart.
fn ended(
    history: &impl History,
    kb: Option<&Kb>,
    now_ms: i64,
) -> anyhow::Result<(Vec<IncidentRow>, Vec<Hour>, Vec<CauseCount>)> {
    let ended = history
        .ended_since(now_ms - 24 * 3_600_000, 50)?
        .into_iter()
        .map(|i| {
            let title = kb
                .and_then(|k| {
                    k.find(&i.entry)
                        .map(|e| k.get(e).title.get(Lang::En).to_string())
                })
                .unwrap_or_else(|| i.entry.clone());
            IncidentRow::new(&i, title, &local, &crate::render::report::human_duration)
        })
        .collect();
    let (hours, causes) = summary::recent_hours(history, &Zone::Local, now_ms, 24)?;
    Ok((ended, hours, causes))
}

/// The page as it stands; `history` is the state, when there is one to read.
pub fn build<H: History>(input: &Input<'_>, history: anyhow::Result<Option<&H>>) -> Page {
    let names: Vec<String> = input.sources.iter().map(|f| f.path.clone()).collect();
    let open = match input.kb {
        Some(kb) => input
            .open
            .iter()
            .map(|i| {
                // What happened here to the entry's advice, when the state can tell.
                let entry = kb.id(i.entry);
                let local = match &history {
                    Ok(Some(h)) => h.local_record(entry).ok(),
                    _ => None,
                };
                let extra = alert::Extra {
                    local: local.as_ref(),
                    links: None,
                };
                alert::item(i, kb, Lang::En, input.host, &names, extra)
            })
            .collect(),
        None => Vec::new(),
    };
    let read = history.and_then(|h| match h {
        Some(h) => ended(h, input.kb, input.now_ms),
        None => Ok((Vec::new(), Vec::new(), Vec::new())),
    });
    let (ended, hours, causes, problem) = match read {
        Ok((e, h, c)) => (e, h, c, input.problem.clone()),
        Err(e) => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Some(format!("reading the state: {e:#}")),
        ),
    };
    Page {
        version: 1,
        host: input.host.to_string(),
        generated: chrono::DateTime::from_timestamp_millis(input.now_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        healthy: problem.is_none(),
        problem,
        open,
        ended,
        hours,
        causes,
        sources: input.sources.to_vec(),
        channels: input
            .channels
            .iter()
            .map(|(name, (sent, failed))| Channel {
                name: name.clone(),
                sent: *sent,
                failed: *failed,
            })
            .collect(),
        outbox_depth: input.outbox_depth,
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
        include_str!("../../templates/status.html.j2"),
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

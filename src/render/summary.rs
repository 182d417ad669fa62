//! The daily summary: one day of the state file (counters and incidents) as a report, in the
//! configured time zone, with the day before and the week before for comparison; rendered as
//! text (with a sparkline), HTML or JSON.
//!
//! Counters are kept per UTC hour; a local day is the UTC hours that start within it (exact
//! for zones on whole hours, which is nearly all of them; in a zone such as +05:30 an hour is
//! counted in the local day its first half falls in). Days with a daylight-saving change have
//! 23 or 25 hours.

use crate::engine::event::Cause;
use crate::engine::kb::evidence::{self, Item, Local};
use crate::engine::kb::{Kb, Lang, Placeholders};
use crate::engine::time::Zone;
use anyhow::Context;
use chrono::{NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Causes that mean a failed request.
fn is_failure(c: Cause) -> bool {
    !matches!(c, Cause::Ok | Cause::NotApplicable)
}

/// The instant (Unix ms) a local day starts in a zone.
pub fn day_start(zone: &Zone, date: NaiveDate) -> i64 {
    local_instant(zone, date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The instant (Unix ms) of a local time in a zone: the first one when clocks go back and the
/// time happens twice; an hour later when clocks go forward and it does not happen at all.
pub fn local_instant(zone: &Zone, midnight: chrono::NaiveDateTime) -> i64 {
    let utc = match zone {
        Zone::Utc => chrono::Utc.from_utc_datetime(&midnight),
        Zone::Fixed(secs) => {
            chrono::Utc.from_utc_datetime(&(midnight - chrono::Duration::seconds(*secs as i64)))
        }
        // A day that starts in a gap (a zone that springs forward at midnight) starts at the
        // first instant after it.
        Zone::Named(tz) => tz
            .from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|| chrono::Utc.from_utc_datetime(&midnight)),
        Zone::Local => chrono::Local
            .from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                chrono::Local
                    .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|| chrono::Utc.from_utc_datetime(&midnight)),
    };
    utc.timestamp_millis()
}

/// The instant (Unix ms) the summary is sent on a date: local time `at` (minutes after
/// midnight).
pub fn send_time(zone: &Zone, date: NaiveDate, at: u32) -> i64 {
    let t = date
        .and_hms_opt(at / 60, at % 60, 0)
        .unwrap_or_else(|| date.and_hms_opt(0, 0, 0).expect("midnight"));
    local_instant(zone, t)
}

/// The day whose summary is due at `now_ms`: the day before the newest send time that has
/// passed — so after downtime only the latest missed summary is sent, once — unless it was
/// queued already, or the day ended before gatewatch's state existed.
pub fn due(
    now_ms: i64,
    at: u32,
    zone: &Zone,
    last_queued: Option<NaiveDate>,
    created_ms: i64,
) -> Option<NaiveDate> {
    let today = local_date(zone, now_ms);
    let day = if send_time(zone, today, at) <= now_ms {
        today.pred_opt()?
    } else {
        today.pred_opt()?.pred_opt()?
    };
    if last_queued.is_some_and(|l| l >= day) {
        return None;
    }
    if day_start(zone, day.succ_opt()?) <= created_ms {
        return None;
    }
    Some(day)
}

/// The next send time after `now_ms`.
pub fn next_send(now_ms: i64, at: u32, zone: &Zone) -> i64 {
    let today = local_date(zone, now_ms);
    let t = send_time(zone, today, at);
    if t > now_ms {
        return t;
    }
    let mut d = today;
    loop {
        d = d.succ_opt().unwrap_or(d);
        let t = send_time(zone, d, at);
        if t > now_ms {
            return t;
        }
    }
}

/// The local date of an instant.
pub fn local_date(zone: &Zone, ms: i64) -> NaiveDate {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    zone.local(t).date()
}

fn zone_name(zone: &Zone) -> String {
    match zone {
        Zone::Utc => "UTC".into(),
        Zone::Fixed(s) => {
            let sign = if *s < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", s.abs() / 3600, s.abs() % 3600 / 60)
        }
        Zone::Named(tz) => tz.name().to_string(),
        Zone::Local => "local".into(),
    }
}

/// The colour of a cause, in the chart and its legend.
pub fn color(cause: &str) -> [u8; 3] {
    match cause {
        "upstream_unreachable" => [0xb3, 0x26, 0x1e],
        "no_live_upstreams" => [0xe8, 0x71, 0x0a],
        "upstream_timeout" => [0xf9, 0xab, 0x00],
        "upstream_reset" => [0x93, 0x34, 0xe6],
        "upstream_protocol_error" => [0x1a, 0x73, 0xe8],
        "dns_failure" => [0x12, 0xb5, 0xcb],
        "tls_failure" => [0x18, 0x80, 0x38],
        _ => [0x5f, 0x63, 0x68],
    }
}

/// `#rrggbb`.
pub fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// One counters row: an hour, a source, an upstream, a cause.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The hour's start (UTC, Unix ms).
    pub utc_ms: i64,
    pub source: String,
    pub upstream: String,
    pub cause: Cause,
    pub count: u64,
}

/// What a summary and the status page read: the counters and incidents the daemon recorded
/// (the state file implements it; rendering itself reads nothing).
pub trait History {
    /// Counters of the UTC hours that start within `[start, end)` (Unix ms).
    fn counter_rows(&self, start: i64, end: i64) -> anyhow::Result<Vec<Row>>;
    /// Sources that are error logs: they explain failures but are not requests of their own.
    fn error_sources(&self) -> anyhow::Result<Vec<String>>;
    /// Incidents overlapping `[start, end)`, by start.
    fn incidents_between(&self, start: i64, end: i64) -> anyhow::Result<Vec<Inc>>;
    /// Incidents that ended at or after `since` (Unix ms), the latest first, at most `limit`.
    fn ended_since(&self, since: i64, limit: usize) -> anyhow::Result<Vec<Inc>>;
    /// Whether anyone said what was done about an incident (a verdict, from the command line
    /// or a link).
    fn has_feedback(&self, key: &str) -> anyhow::Result<bool>;
    /// What happened here to an entry's workarounds and dead ends (issue 17).
    fn local_record(&self, entry: &str) -> anyhow::Result<BTreeMap<Item, Local>>;
}

/// The last `n` hours up to `now_ms` (hour by hour, labelled in `zone`), and the causes of
/// their failures in the order of `Hour::by_cause`: the status page's chart.
pub fn recent_hours(
    history: &impl History,
    zone: &Zone,
    now_ms: i64,
    n: usize,
) -> anyhow::Result<(Vec<Hour>, Vec<CauseCount>)> {
    let errors = history.error_sources()?;
    let end = (now_ms.div_euclid(3_600_000) + 1) * 3_600_000;
    let start = end - n as i64 * 3_600_000;
    let mut by_cause: BTreeMap<Cause, Vec<u64>> = BTreeMap::new();
    let mut hours = vec![(0u64, 0u64); n];
    for r in history.counter_rows(start, end)? {
        if errors.contains(&r.source) || r.cause == Cause::NotApplicable {
            continue;
        }
        let h = (((r.utc_ms - start) / 3_600_000) as usize).min(n - 1);
        hours[h].0 += r.count;
        if is_failure(r.cause) {
            hours[h].1 += r.count;
            by_cause.entry(r.cause).or_insert_with(|| vec![0; n])[h] += r.count;
        }
    }
    let causes = cause_counts(&by_cause);
    let out = hours
        .iter()
        .enumerate()
        .map(|(i, &(requests, failures))| Hour {
            label: zone
                .local(
                    chrono::DateTime::from_timestamp_millis(start + i as i64 * 3_600_000)
                        .unwrap_or_default(),
                )
                .format("%H")
                .to_string(),
            requests,
            failures,
            by_cause: by_cause.values().map(|v| v[i]).collect(),
        })
        .collect();
    Ok((out, causes))
}

/// A day's totals, also for the days it is compared with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub failures: u64,
    pub incidents: u64,
    /// Seconds during which an upstream was unreachable (incidents of the unreachable causes,
    /// overlapping ones counted once).
    pub unreachable_secs: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CauseCount {
    pub cause: String,
    pub count: u64,
    /// Its colour in the chart, `#rrggbb`.
    pub color: String,
    /// One character per hour of the day.
    pub sparkline: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hour {
    /// The local hour, `00` … `23` (a repeated hour on the day clocks go back).
    pub label: String,
    pub requests: u64,
    pub failures: u64,
    /// Failures per cause, in the order of the report's `causes`.
    pub by_cause: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpstreamRow {
    pub upstream: String,
    pub failures: u64,
    pub requests: u64,
    pub incidents: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRow {
    pub key: String,
    pub upstream: String,
    pub entry: String,
    pub title: String,
    pub cause: String,
    /// Local times of the first and last failure.
    pub start: String,
    pub end: String,
    pub duration: String,
    pub failures: u64,
    pub requests: Option<u64>,
    /// The most failures within one detection window.
    pub peak: u64,
    pub silenced: bool,
    /// `resolved`, or `open` (still failing when the report was made).
    pub ended: String,
    /// Whether anyone said what fixed it (or what was tried).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feedback: bool,
}

impl IncidentRow {
    /// The one view of a recorded incident (the summary's table, the status page's list):
    /// its title, and times and duration as `time` and `duration` write them.
    pub fn new(
        i: &Inc,
        title: String,
        time: &dyn Fn(i64) -> String,
        duration: &dyn Fn(i64) -> String,
    ) -> IncidentRow {
        IncidentRow {
            key: i.key.clone(),
            upstream: i.upstream.clone(),
            entry: i.entry.clone(),
            title,
            cause: i.cause.as_str().to_string(),
            start: time(i.start_ms),
            end: time(i.end_ms),
            duration: duration(i.end_ms - i.start_ms),
            failures: i.failures,
            requests: i.requests,
            peak: i.peak,
            silenced: i.silenced,
            ended: if i.closed_ms.is_some() {
                "resolved"
            } else {
                "open"
            }
            .to_string(),
            feedback: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryRow {
    pub id: String,
    pub title: String,
    pub incidents: u64,
    pub failures: u64,
    /// The entry's most successful workaround (here, once local evidence says so), filled in
    /// for its first upstream.
    pub first_step: String,
    pub first_step_pct: u32,
    /// What happened to it here (`3 of 4 here`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_step_here: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Change against the day before, in percent (`None` when the day before had none).
    pub vs_day_before_pct: Option<i64>,
    pub vs_week_pct: Option<i64>,
}

/// The report of one day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub date: String,
    pub timezone: String,
    pub host: String,
    pub lang: String,
    pub day: Totals,
    pub day_before: Totals,
    /// Averages of the seven days before.
    pub week_avg: Totals,
    pub requests_cmp: Comparison,
    pub failures_cmp: Comparison,
    /// Failures per 10,000 requests.
    pub failure_rate_bp: u64,
    pub unreachable: String,
    pub causes: Vec<CauseCount>,
    pub hours: Vec<Hour>,
    /// Failures per hour, one character each.
    pub sparkline: String,
    pub upstreams: Vec<UpstreamRow>,
    pub incidents: Vec<IncidentRow>,
    pub entries: Vec<EntryRow>,
    /// The day's incidents that ended without anyone saying what fixed them (reports from the
    /// daemon's state only: nobody is asked about logs read offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without_feedback: Vec<IncidentRow>,
}

/// What the report is about.
#[derive(Clone, Debug)]
pub struct Options {
    pub date: NaiveDate,
    pub zone: Zone,
    pub host: String,
    pub lang: Lang,
    /// Now (Unix ms): incidents still open end here.
    pub now_ms: i64,
    /// List the incidents nobody gave feedback on (the daemon's state; not `scan`).
    pub feedback: bool,
}

/// Failures per cause over some hours: totals, colours and sparklines.
fn cause_counts(by_cause: &BTreeMap<Cause, Vec<u64>>) -> Vec<CauseCount> {
    by_cause
        .iter()
        .map(|(c, v)| CauseCount {
            cause: c.as_str().to_string(),
            count: v.iter().sum(),
            color: hex(color(c.as_str())),
            sparkline: sparkline(v),
        })
        .collect()
}

fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if max == 0 || v == 0 {
                ' '
            } else {
                BARS[(v * 7 / max).min(7) as usize]
            }
        })
        .collect()
}

fn pct_change(now: u64, before: f64) -> Option<i64> {
    (before > 0.0).then(|| ((now as f64 - before) / before * 100.0).round() as i64)
}

/// An incident as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Inc {
    pub key: String,
    pub entry: String,
    pub upstream: String,
    pub cause: Cause,
    pub start_ms: i64,
    pub end_ms: i64,
    pub closed_ms: Option<i64>,
    pub failures: u64,
    pub requests: Option<u64>,
    pub peak: u64,
    pub silenced: bool,
}

/// Seconds of `[start, end)` covered by the incidents of the unreachable causes.
fn unreachable_secs(incs: &[Inc], start: i64, end: i64) -> i64 {
    let mut spans: Vec<(i64, i64)> = incs
        .iter()
        .filter(|i| matches!(i.cause, Cause::UpstreamUnreachable | Cause::NoLiveUpstreams))
        .map(|i| {
            (
                i.start_ms.max(start),
                (i.end_ms.max(i.start_ms + 1000)).min(end),
            )
        })
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort();
    let (mut total, mut cur): (i64, Option<(i64, i64)>) = (0, None);
    for (a, b) in spans {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((a, b)) = cur {
        total += b - a;
    }
    total / 1000
}

fn totals(
    history: &impl History,
    zone: &Zone,
    date: NaiveDate,
    errors: &[String],
) -> anyhow::Result<Totals> {
    let (start, end) = (
        day_start(zone, date),
        day_start(zone, date.succ_opt().unwrap_or(date)),
    );
    let mut t = Totals::default();
    for r in history.counter_rows(start, end)? {
        if errors.contains(&r.source) || r.cause == Cause::NotApplicable {
            continue;
        }
        t.requests += r.count;
        if is_failure(r.cause) {
            t.failures += r.count;
        }
    }
    let incs = history.incidents_between(start, end)?;
    t.incidents = incs.iter().filter(|i| i.start_ms >= start).count() as u64;
    t.unreachable_secs = unreachable_secs(&incs, start, end);
    Ok(t)
}

/// Builds the report of a day from the state.
pub fn build(history: &impl History, kb: &Kb, o: &Options) -> anyhow::Result<Report> {
    let errors = history.error_sources()?;
    let next = o.date.succ_opt().context("a date")?;
    let (start, end) = (day_start(&o.zone, o.date), day_start(&o.zone, next));
    let n_hours = ((end - start + 3_599_999) / 3_600_000).max(1) as usize;

    let mut day = Totals::default();
    let mut by_cause: BTreeMap<Cause, Vec<u64>> = BTreeMap::new();
    let mut hours: Vec<(u64, u64)> = vec![(0, 0); n_hours];
    let mut per_upstream: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in history.counter_rows(start, end)? {
        if errors.contains(&r.source) || r.cause == Cause::NotApplicable {
            continue;
        }
        let h = (((r.utc_ms - start) / 3_600_000) as usize).min(n_hours - 1);
        day.requests += r.count;
        hours[h].0 += r.count;
        let up = per_upstream.entry(r.upstream.clone()).or_default();
        up.1 += r.count;
        if is_failure(r.cause) {
            day.failures += r.count;
            hours[h].1 += r.count;
            up.0 += r.count;
            by_cause.entry(r.cause).or_insert_with(|| vec![0; n_hours])[h] += r.count;
        }
    }
    let incs = history.incidents_between(start, end)?;
    day.incidents = incs.iter().filter(|i| i.start_ms >= start).count() as u64;
    day.unreachable_secs = unreachable_secs(&incs, start, end);

    let day_before = totals(
        history,
        &o.zone,
        o.date.pred_opt().context("a date")?,
        &errors,
    )?;
    let mut week = Totals::default();
    let mut d = o.date;
    for _ in 0..7 {
        d = d.pred_opt().context("a date")?;
        let t = totals(history, &o.zone, d, &errors)?;
        week.requests += t.requests;
        week.failures += t.failures;
        week.incidents += t.incidents;
        week.unreachable_secs += t.unreachable_secs;
    }
    let week_avg = Totals {
        requests: (week.requests + 3) / 7,
        failures: (week.failures + 3) / 7,
        incidents: (week.incidents + 3) / 7,
        unreachable_secs: week.unreachable_secs / 7,
    };

    let label = |i: usize| {
        let t = chrono::DateTime::from_timestamp_millis(start + i as i64 * 3_600_000)
            .unwrap_or_default();
        o.zone.local(t).format("%H").to_string()
    };
    let causes = cause_counts(&by_cause);
    let hours_out: Vec<Hour> = hours
        .iter()
        .enumerate()
        .map(|(i, &(requests, failures))| Hour {
            label: label(i),
            requests,
            failures,
            by_cause: by_cause.values().map(|v| v[i]).collect(),
        })
        .collect();
    let failures_per_hour: Vec<u64> = hours.iter().map(|h| h.1).collect();

    let mut upstreams: Vec<UpstreamRow> = per_upstream
        .into_iter()
        .filter(|(u, (f, _))| !u.is_empty() && *f > 0)
        .map(|(u, (failures, requests))| UpstreamRow {
            incidents: incs.iter().filter(|i| i.upstream == u).count() as u64,
            upstream: u,
            failures,
            requests,
        })
        .collect();
    upstreams.sort_by(|a, b| {
        b.failures
            .cmp(&a.failures)
            .then(a.upstream.cmp(&b.upstream))
    });
    upstreams.truncate(10);

    let time = |ms: i64| {
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let local = o.zone.local(t);
        if local.date() == o.date {
            local.format("%H:%M:%S").to_string()
        } else {
            local.format("%m-%d %H:%M:%S").to_string()
        }
    };
    let duration = |ms: i64| match o.lang {
        Lang::En => crate::render::report::human_duration(ms),
        Lang::Zh => crate::render::report::human_duration_zh(ms),
    };
    let title = |id: &str| {
        kb.find(id)
            .map(|e| kb.get(e).title.get(o.lang).to_string())
            .unwrap_or_else(|| id.to_string())
    };
    let mut incidents_out: Vec<IncidentRow> = Vec::with_capacity(incs.len());
    for i in &incs {
        let mut row = IncidentRow::new(i, title(&i.entry), &time, &duration);
        row.feedback = history.has_feedback(&i.key)?;
        incidents_out.push(row);
    }
    let without_feedback: Vec<IncidentRow> = incidents_out
        .iter()
        .filter(|r| o.feedback && !r.feedback && r.ended == "resolved" && !r.silenced)
        .cloned()
        .collect();

    let mut entries: Vec<EntryRow> = Vec::new();
    for i in &incs {
        match entries.iter_mut().find(|e| e.id == i.entry) {
            Some(e) => {
                e.incidents += 1;
                e.failures += i.failures;
            }
            None => {
                // The first step in the order the alerts give it: the knowledge base's, moved
                // by what happened here once there is enough of it.
                let record = history.local_record(&i.entry)?;
                let (first_step, first_step_pct, first_step_here) = kb
                    .find(&i.entry)
                    .map(|id| kb.get(id))
                    .and_then(|e| {
                        let (n, est) =
                            evidence::ranked_here(e, Some(&record)).into_iter().next()?;
                        let w = &e.workarounds[n];
                        Some((
                            w.render(o.lang, Some(&Placeholders::for_upstream(&i.upstream))),
                            (w.success_rate * 100.0).round() as u32,
                            evidence::here(&est.local, o.lang),
                        ))
                    })
                    .unwrap_or_default();
                entries.push(EntryRow {
                    id: i.entry.clone(),
                    title: title(&i.entry),
                    incidents: 1,
                    failures: i.failures,
                    first_step,
                    first_step_pct,
                    first_step_here,
                });
            }
        }
    }
    entries.sort_by(|a, b| {
        b.incidents
            .cmp(&a.incidents)
            .then(b.failures.cmp(&a.failures))
    });
    entries.truncate(5);

    Ok(Report {
        version: 1,
        date: o.date.format("%Y-%m-%d").to_string(),
        timezone: zone_name(&o.zone),
        host: o.host.clone(),
        lang: match o.lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
        .to_string(),
        failure_rate_bp: (day.failures * 10_000)
            .checked_div(day.requests)
            .unwrap_or(0),
        unreachable: duration(day.unreachable_secs * 1000),
        requests_cmp: Comparison {
            vs_day_before_pct: pct_change(day.requests, day_before.requests as f64),
            vs_week_pct: pct_change(day.requests, week.requests as f64 / 7.0),
        },
        failures_cmp: Comparison {
            vs_day_before_pct: pct_change(day.failures, day_before.failures as f64),
            vs_week_pct: pct_change(day.failures, week.failures as f64 / 7.0),
        },
        day,
        day_before,
        week_avg,
        causes,
        hours: hours_out,
        sparkline: sparkline(&failures_per_hour),
        upstreams,
        incidents: incidents_out,
        entries,
        without_feedback,
    })
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The built-in summary templates.
pub const TEMPLATES: [(&str, &str); 3] = [
    (
        "summary.txt.j2",
        include_str!("../../templates/summary.txt.j2"),
    ),
    (
        "summary.html.j2",
        include_str!("../../templates/summary.html.j2"),
    ),
    (
        "summary.slack.json.j2",
        include_str!("../../templates/summary.slack.json.j2"),
    ),
];

/// The subject of the summary's mail (and the first line of its chat message).
pub fn subject(r: &Report) -> String {
    let mut s = if r.lang == "zh" {
        format!(
            "[每日摘要] {}: {} — {} 次故障, {} 个请求中 {} 个 5xx",
            r.host,
            r.date,
            r.day.incidents,
            thousands(r.day.requests),
            thousands(r.day.failures)
        )
    } else {
        format!(
            "[Summary] {}: {} — {} incident(s), {} 5xx of {} requests",
            r.host,
            r.date,
            r.day.incidents,
            thousands(r.day.failures),
            thousands(r.day.requests)
        )
    };
    s.retain(|c| !c.is_control());
    s
}

/// The fixed words of the summary, per language.
#[derive(Clone, Debug, Serialize)]
pub struct Words {
    pub title: &'static str,
    pub requests: &'static str,
    pub failures: &'static str,
    pub incidents: &'static str,
    pub unreachable: &'static str,
    pub day_before: &'static str,
    pub week_avg: &'static str,
    pub by_cause: &'static str,
    pub per_hour: &'static str,
    pub worst: &'static str,
    pub list: &'static str,
    pub entries: &'static str,
    pub first_step: &'static str,
    pub silenced: &'static str,
    pub open: &'static str,
    pub none: &'static str,
    pub peak: &'static str,
    pub of: &'static str,
    /// After a number: `3 incident(s)`.
    pub n_incidents: &'static str,
    pub n_failures: &'static str,
    pub n_requests: &'static str,
    /// The incidents nobody said anything about, and how to.
    pub without_feedback: &'static str,
    pub feedback_hint: &'static str,
}

pub fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            title: "Daily summary",
            requests: "Requests",
            failures: "5xx",
            incidents: "Incidents",
            unreachable: "Upstream unreachable for",
            day_before: "day before",
            week_avg: "7-day average",
            by_cause: "5xx by cause",
            per_hour: "5xx per hour",
            worst: "Worst upstreams",
            list: "Incidents",
            entries: "What to do",
            first_step: "first step",
            silenced: "silenced",
            open: "still open",
            none: "none",
            peak: "peak",
            of: "of",
            n_incidents: "incident(s)",
            n_failures: "failures",
            n_requests: "requests",
            without_feedback: "Still without feedback (what fixed them?)",
            feedback_hint: "Use the links of the resolved note, or: gatewatch incident resolve KEY --fixed-by N",
        },
        Lang::Zh => Words {
            title: "每日摘要",
            requests: "请求",
            failures: "5xx",
            incidents: "故障",
            unreachable: "上游不可达时长",
            day_before: "前一天",
            week_avg: "7 天平均",
            by_cause: "按原因统计的 5xx",
            per_hour: "每小时 5xx",
            worst: "最差的上游",
            list: "故障列表",
            entries: "处理建议",
            first_step: "第一步",
            silenced: "已静默",
            open: "仍在进行",
            none: "无",
            peak: "峰值",
            of: "/",
            n_incidents: "次故障",
            n_failures: "次失败",
            n_requests: "个请求",
            without_feedback: "尚无反馈的故障(是什么解决了问题?)",
            feedback_hint: "使用恢复通知中的链接,或运行:gatewatch incident resolve KEY --fixed-by N",
        },
    }
}

/// Renders the report with a template (`summary.txt.j2`, `summary.html.j2`), built in or from
/// `dir`. `chart_cid`: the Content-ID of the chart image attached to the mail, if any.
pub fn render(
    r: &Report,
    name: &str,
    dir: Option<&std::path::Path>,
    chart_cid: Option<&str>,
) -> anyhow::Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| anyhow::anyhow!("template syntax: {e}"))?,
    );
    env.add_filter("num", |n: u64| thousands(n));
    env.add_filter("slack", |s: String| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    });
    env.add_filter("truncate_chars", |s: String, n: usize| {
        if s.chars().count() <= n {
            s
        } else {
            s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
        }
    });
    env.add_filter("signed", |n: i64| {
        if n > 0 {
            format!("+{n}")
        } else {
            n.to_string()
        }
    });
    for (n, builtin) in TEMPLATES {
        let text = match dir.map(|d| d.join(n)) {
            Some(p) if p.exists() => {
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?
            }
            _ => builtin.to_string(),
        };
        env.add_template_owned(n.to_string(), text)
            .map_err(|e| anyhow::anyhow!("template {n}: {e:#}"))?;
    }
    let lang = if r.lang == "zh" { Lang::Zh } else { Lang::En };
    #[derive(Serialize)]
    struct Ctx<'a> {
        r: &'a Report,
        w: Words,
        chart_cid: Option<&'a str>,
        subject: String,
    }
    let ctx = Ctx {
        r,
        w: words(lang),
        chart_cid,
        subject: subject(r),
    };
    env.get_template(name)
        .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?
        .render(minijinja::value::Serde(&ctx))
        .map_err(|e| anyhow::anyhow!("rendering {name}: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_day_starts_at_local_midnight_and_dst_days_have_23_or_25_hours() {
        let berlin: Zone = "Europe/Berlin".parse().unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let ms = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(
            day_start(&berlin, d("2024-05-01")),
            ms("2024-04-30T22:00:00Z")
        );
        let hours = |z: &Zone, s: &str| {
            let a = day_start(z, d(s));
            (day_start(z, d(s).succ_opt().unwrap()) - a) / 3_600_000
        };
        assert_eq!(hours(&berlin, "2024-03-31"), 23, "spring forward");
        assert_eq!(hours(&berlin, "2024-10-27"), 25, "fall back");
        assert_eq!(hours(&berlin, "2024-05-01"), 24);
        assert_eq!(hours(&Zone::Utc, "2024-03-31"), 24);
        assert_eq!(
            day_start(&Zone::Fixed(-5 * 3600), d("2024-05-01")),
            ms("2024-05-01T05:00:00Z")
        );
        assert_eq!(
            local_date(&berlin, ms("2024-04-30T22:30:00Z")),
            d("2024-05-01")
        );
    }

    #[test]
    fn the_summary_is_due_once_a_day_at_local_time_across_dst_and_after_downtime() {
        let berlin: Zone = "Europe/Berlin".parse().unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let ms = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        let at = 8 * 60;
        let created = ms("2024-03-01T00:00:00Z");
        // A fake clock walks through the night clocks go forward (31 March 2024).
        let before = ms("2024-03-31T07:59:59+02:00");
        assert_eq!(
            due(before, at, &berlin, Some(d("2024-03-29")), created),
            None
        );
        assert_eq!(next_send(before, at, &berlin), ms("2024-03-31T06:00:00Z"));
        let after = ms("2024-03-31T08:00:00+02:00");
        assert_eq!(
            due(after, at, &berlin, Some(d("2024-03-29")), created),
            Some(d("2024-03-30"))
        );
        assert_eq!(
            due(after, at, &berlin, Some(d("2024-03-30")), created),
            None,
            "once"
        );
        assert_eq!(next_send(after, at, &berlin), ms("2024-04-01T06:00:00Z"));
        // And the night they go back: still 08:00 local, now an hour later in UTC.
        let oct = ms("2024-10-27T08:00:00+01:00");
        assert_eq!(oct, ms("2024-10-27T07:00:00Z"));
        assert_eq!(next_send(oct - 1, at, &berlin), oct);
        assert_eq!(
            due(oct, at, &berlin, Some(d("2024-10-25")), created),
            Some(d("2024-10-26"))
        );
        // A send time inside the skipped hour moves past it.
        assert_eq!(
            send_time(&berlin, d("2024-03-31"), 2 * 60 + 30),
            ms("2024-03-31T03:30:00+02:00")
        );
        // Down from Friday to Monday noon: only Sunday's summary, once.
        let monday = ms("2024-04-08T12:00:00+02:00");
        assert_eq!(
            due(monday, at, &berlin, Some(d("2024-04-04")), created),
            Some(d("2024-04-07"))
        );
        // Installed today at noon: yesterday ended before gatewatch ran; nothing is due.
        assert_eq!(due(monday, at, &berlin, None, monday - 1000), None);
        assert_eq!(
            due(monday, at, &berlin, None, ms("2024-04-07T20:00:00+02:00")),
            Some(d("2024-04-07"))
        );
    }

    #[test]
    fn sparklines_and_thousands() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(pct_change(150, 100.0), Some(50));
        assert_eq!(pct_change(1, 0.0), None);
    }
}

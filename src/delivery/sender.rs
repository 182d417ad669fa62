//! Sending: the outbox's messages go out through the channels (console, email, webhooks),
//! from a thread of their own, so a slow receiver never holds up reading the logs.
//!
//! Each channel sends its messages in outbox order, one at a time: a message about an
//! incident never overtakes an earlier one about the same incident. A message is marked sent
//! only after the receiver accepted it, so after a crash between the two it is sent again;
//! receivers can recognise the repeat by its id (the email `Message-ID`, the webhook's
//! `X-Gatewatch-Delivery` header, PagerDuty's and Alertmanager's own deduplication keys).
//! Failures are retried with exponential backoff and jitter; a failure that retrying cannot
//! fix (a 4xx other than 408 and 429, a refused address) is recorded and not retried.

use crate::clock::now_ms;
use crate::delivery::channel::{Channel, ChannelConfig, SendError, Thread, host_name};
use crate::delivery::queue::{self, Content, Queue, Take};
pub use crate::delivery::settings::{AlertsConfig, SummaryConfig};
use crate::engine::kb::{Kb, Lang};
use crate::log;
use crate::render::alert::{self, AlertKind};
use crate::render::summary::{self, Report};
use crate::store::State;
use crate::store::journal;
use crate::store::outbox;
use anyhow::Context;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How often a channel looks at the outbox without being woken (other processes, such as
/// `gatewatch test-alert`, do not wake it; and it is the correctness baseline).
const RECHECK: Duration = Duration::from_secs(30);

/// How often open incidents are posted again to Alertmanager, which resolves alerts that are
/// not refreshed within its `resolve_timeout` (5 minutes by default).
const ALERTMANAGER_REFRESH: Duration = Duration::from_secs(60);

/// What the sender is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the state (and so the outbox) is.
    pub state_dir: PathBuf,
    /// The delivery journal's files (see [`crate::store::journal::files`]).
    pub journal: Vec<PathBuf>,
    /// The channels alerts go to (the console where none is configured).
    pub channels: Vec<ChannelConfig>,
    pub alerts: AlertsConfig,
    pub summary: SummaryConfig,
}

/// The delay before attempt `attempts + 1`: doubling from `min` (five seconds by default) up to
/// `max` (five minutes), spread by ±20 % so many hosts do not retry in step; at least what the
/// receiver asked for.
pub fn backoff(
    attempts: u32,
    (min, max): (Duration, Duration),
    retry_after: Option<Duration>,
    seed: u64,
) -> Duration {
    let base = min.saturating_mul(1 << attempts.min(16)).min(max);
    let spread = (seed % 401) as f64 / 1000.0 + 0.8; // 0.8 ..= 1.2
    let d = base.mul_f64(spread);
    match retry_after {
        Some(r) => d.max(r.min(Duration::from_secs(3600))),
        None => d,
    }
}

fn random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// What the sender has done, for `/metrics` and the status page (shared with the daemon).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Messages per channel: sent, failed.
    pub alerts: std::collections::BTreeMap<String, (u64, u64)>,
    /// Messages in the outbox not sent yet.
    pub outbox_depth: u64,
}

/// The sender thread.
pub struct Sender {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sender {
    /// Starts sending what the outbox in `cfg.state_dir` holds for the configured channels.
    /// `wake` is bumped by whoever writes to the outbox.
    pub fn start(
        cfg: &Settings,
        kb: Arc<Kb>,
        tally: Arc<Mutex<Tally>>,
        wake: Arc<watch::Sender<u64>>,
        memory: outbox::MemoryQueue,
    ) -> anyhow::Result<Sender> {
        let full = cfg.clone();
        let wake_summary = wake.clone();
        let (stop, stop_rx) = watch::channel(false);
        let state_dir = cfg.state_dir.clone();
        let journal_files = cfg.journal.clone();
        let channels = cfg.channels.clone();
        let alerts = cfg.alerts.clone();
        let wake_rx = wake.subscribe();
        let thread = std::thread::Builder::new()
            .name("gatewatch-sender".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        log!(Error, "the sender cannot start", error = e);
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let db = match State::connect(&state_dir) {
                        Ok(s) => Rc::new(s),
                        Err(e) => {
                            log!(
                                Error,
                                "the sender cannot open the state",
                                error = format!("{e:#}")
                            );
                            return;
                        }
                    };
                    let names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
                    match outbox::fail_unknown_channels(db.conn(), &names, now_ms()) {
                        Ok(0) => {}
                        Ok(n) => log!(
                            Warn,
                            "messages for channels no longer configured will not be sent",
                            messages = n
                        ),
                        Err(e) => log!(Error, "reading the outbox", error = e),
                    }
                    let mut tasks = Vec::new();
                    {
                        let (db, mut stop) = (db.clone(), stop_rx.clone());
                        tasks.push(tokio::task::spawn_local(async move {
                            loop {
                                match outbox::prune(db.conn(), now_ms()) {
                                    Ok(0) => {}
                                    Ok(n) => {
                                        log!(Info, "old messages and silences deleted", rows = n)
                                    }
                                    Err(e) => log!(Error, "pruning the outbox", error = e),
                                }
                                tokio::select! {
                                    _ = stop.changed() => return,
                                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                                }
                            }
                        }));
                    }
                    tasks.push(tokio::task::spawn_local(summary_loop(
                        full,
                        kb,
                        db.clone(),
                        wake_summary,
                        stop_rx.clone(),
                    )));
                    for ch in channels {
                        tasks.push(tokio::task::spawn_local(channel_loop(
                            ch,
                            alerts.clone(),
                            db.clone(),
                            memory.clone(),
                            wake_rx.clone(),
                            stop_rx.clone(),
                            tally.clone(),
                            journal_files.clone(),
                        )));
                    }
                    for t in tasks {
                        let _ = t.await;
                    }
                });
            })
            .context("starting the sender thread")?;
        Ok(Sender {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops after the messages being sent now (each bounded by its channel's timeout);
    /// what is pending stays in the outbox for the next start.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Waits until woken, stopped, or `until` (Unix ms). True when stopped.
async fn wait(
    wake: &mut watch::Receiver<u64>,
    stop: &mut watch::Receiver<bool>,
    until_ms: i64,
) -> bool {
    if *stop.borrow() {
        return true;
    }
    let d =
        Duration::from_millis((until_ms - now_ms()).clamp(0, RECHECK.as_millis() as i64) as u64);
    tokio::select! {
        _ = wake.changed() => false,
        _ = stop.changed() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

fn bump(tally: &Mutex<Tally>, channel: &str, sent: u64, failed: u64, depth: Option<u64>) {
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    let e = t.alerts.entry(channel.to_string()).or_default();
    e.0 += sent;
    e.1 += failed;
    if let Some(d) = depth {
        t.outbox_depth = d;
    }
}

/// Sends one channel's messages: from the outbox, and while the state cannot be written from
/// the memory queue, one at a time in order; retries with backoff, gives up after
/// `give_up_after` or on a permanent failure. Stopping never waits for a receiver: an unsent
/// message stays where it was, composed, and goes out under the same id later.
#[allow(clippy::too_many_arguments)]
async fn channel_loop(
    cfg: ChannelConfig,
    alerts: AlertsConfig,
    db: Rc<State>,
    memory: outbox::MemoryQueue,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    tally: Arc<Mutex<Tally>>,
    journal_dirs: Vec<PathBuf>,
) {
    let name = cfg.name.clone();
    bump(&tally, &name, 0, 0, outbox::depth(db.conn()).ok());
    let mut channel: Option<Channel> = None;
    let mut build_error: Option<String> = None;
    let group_wait = alerts.group_wait.as_millis() as i64;
    let mut refreshed = std::time::Instant::now();
    // The outbox first; what the reader handed over in memory when the outbox has nothing due.
    let mut queues: [Box<dyn Queue>; 2] = [
        Box::new(queue::Outbox::new(db.clone(), &name, group_wait)),
        Box::new(queue::Memory::new(memory, &name)),
    ];
    loop {
        if *stop.borrow() {
            return;
        }
        let now = now_ms();
        let mut until = now + RECHECK.as_millis() as i64;
        let mut taken = None;
        for (i, q) in queues.iter_mut().enumerate() {
            match q.take(now) {
                Take::Send(m) => {
                    taken = Some((i, m));
                    break;
                }
                Take::Wait(Some(t)) => until = until.min(t),
                Take::Wait(None) => {}
            }
        }
        let Some((q, m)) = taken else {
            if let Some(ch) = &channel
                && ch.is_alertmanager()
                && refreshed.elapsed() >= ALERTMANAGER_REFRESH
            {
                refreshed = std::time::Instant::now();
                refresh_alertmanager(ch, &db).await;
            }
            if wait(&mut wake, &mut stop, until).await {
                return;
            }
            continue;
        };
        let queue = &mut queues[q];
        if !build(&mut channel, &mut build_error, &cfg, &alerts) {
            queue.give_back(m);
            if wait(&mut wake, &mut stop, now + 60_000).await {
                return;
            }
            continue;
        }
        let ch = channel.as_ref().expect("built above");
        let thread = Thread {
            message_id: m.id.clone(),
            references: m.references.clone(),
        };
        let result = match &m.content {
            Content::Unreadable(e) => Err(SendError::Permanent(e.clone())),
            Content::Summary(r) => tokio::select! {
                r = ch.send_summary(r, &thread) => r,
                _ = stop.changed() => return,
            },
            Content::Items(items) => {
                let v = alert::compose(m.kind, &ch.host, cfg.lang, &m.id, items.clone());
                tokio::select! {
                    r = ch.send(&v, &thread) => r,
                    _ = stop.changed() => return,
                }
            }
        };
        let now = now_ms();
        let from_memory = queue.in_memory();
        let (kind, incidents, attempt) = (m.kind, m.keys.len(), m.attempts + 1);
        let retrying = matches!(&result, Err(SendError::Transient { .. }))
            && now - m.oldest < alerts.give_up_after.as_millis() as i64;
        let write = match &result {
            Ok(()) => {
                log!(
                    Info,
                    if from_memory {
                        "alert sent from memory"
                    } else {
                        "alert sent"
                    },
                    channel = name,
                    kind = kind.as_str(),
                    incidents = incidents,
                    attempt = attempt
                );
                if kind != AlertKind::Summary
                    && !journal::append(&journal_dirs, now, &name, kind.as_str(), &m.id, &m.keys)
                {
                    log!(
                        Warn,
                        "the delivery journal cannot be written",
                        channel = name
                    );
                }
                queue.sent(m, now)
            }
            Err(SendError::Transient { error, retry_after }) if retrying => {
                let delay = backoff(
                    m.attempts,
                    (alerts.retry_min, alerts.retry_max),
                    *retry_after,
                    random(),
                );
                log!(
                    Warn,
                    if from_memory {
                        "alert from memory not delivered; retrying"
                    } else {
                        "alert not delivered; retrying"
                    },
                    channel = name,
                    error = error,
                    attempt = attempt,
                    retry_in_s = delay.as_secs()
                );
                queue.retry(m, now + delay.as_millis() as i64, error)
            }
            Err(e) => {
                log!(
                    Error,
                    if from_memory {
                        "alert from memory failed; not retried"
                    } else {
                        "alert failed; not retried"
                    },
                    channel = name,
                    kind = kind.as_str(),
                    incidents = incidents,
                    error = e
                );
                queue.failed(m, &e.to_string(), now)
            }
        };
        if let Err(e) = write {
            // The outbox could not be updated (disk full). A delivered message is remembered
            // by the outbox and recorded later, never sent again; a retry or failure is simply
            // tried again.
            log!(
                Error,
                "recording a delivery",
                channel = name,
                error = format!("{e:#}")
            );
            if wait(&mut wake, &mut stop, now + 5_000).await {
                return;
            }
        }
        // The counters and the depth change together, once the queue has recorded the result:
        // `/metrics` never shows a message as both sent and still waiting.
        let (sent, failed) = match &result {
            Ok(()) => (1, 0),
            Err(_) if retrying => (0, 0),
            Err(_) => (0, 1),
        };
        bump(&tally, &name, sent, failed, queue.depth());
    }
}

/// Builds the channel on first use; false (logged when the reason changes) when it cannot be
/// built yet (a secret file missing, say).
fn build(
    channel: &mut Option<Channel>,
    build_error: &mut Option<String>,
    cfg: &ChannelConfig,
    alerts: &AlertsConfig,
) -> bool {
    if channel.is_some() {
        return true;
    }
    match Channel::new(cfg, alerts) {
        Ok(c) => {
            *channel = Some(c);
            *build_error = None;
            true
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if build_error.as_deref() != Some(msg.as_str()) {
                log!(
                    Error,
                    "channel cannot send; retrying every minute",
                    channel = cfg.name,
                    error = msg
                );
            }
            *build_error = Some(msg);
            false
        }
    }
}

/// Posts the open incidents alerted through this channel again, so Alertmanager keeps them
/// firing. Best effort: the next refresh is a minute away.
async fn refresh_alertmanager(ch: &Channel, db: &State) {
    let Ok(rows) = outbox::still_open(db.conn(), &ch.cfg.name) else {
        return;
    };
    if rows.is_empty() {
        return;
    }
    let Ok(items) = outbox::items(&rows) else {
        return;
    };
    let id = outbox::message_id(rows[0].id, rows[0].created, &ch.cfg.name);
    let v = alert::compose(AlertKind::Opened, &ch.host, ch.cfg.lang, &id, items);
    if let Err(e) = ch.send(&v, &Thread::default()).await {
        log!(
            Debug,
            "refreshing Alertmanager",
            channel = ch.cfg.name,
            error = e
        );
    }
}

/// The channels the daily summary goes to.
pub fn summary_channels(cfg: &Settings) -> Vec<ChannelConfig> {
    cfg.channels
        .clone()
        .into_iter()
        .filter(|c| {
            (cfg.summary.channels.is_empty() || cfg.summary.channels.contains(&c.name))
                && Channel::takes_summaries(c)
        })
        .collect()
}

/// Builds a day's report once per language the channels speak; returns (channel, report).
fn summary_reports(
    conn: &rusqlite::Connection,
    kb: &Kb,
    cfg: &Settings,
    channels: &[ChannelConfig],
    date: chrono::NaiveDate,
    zone: &crate::engine::time::Zone,
) -> anyhow::Result<Vec<(String, Report)>> {
    let mut by_lang: Vec<(Lang, Report)> = Vec::new();
    let mut out = Vec::new();
    for c in channels {
        if !by_lang.iter().any(|(l, _)| *l == c.lang) {
            let r = summary::build(
                conn,
                kb,
                &summary::Options {
                    date,
                    zone: zone.clone(),
                    host: host_name(&cfg.alerts),
                    lang: c.lang,
                    now_ms: now_ms(),
                    feedback: true,
                },
            )?;
            by_lang.push((c.lang, r));
        }
        let r = by_lang
            .iter()
            .find(|(l, _)| *l == c.lang)
            .map(|(_, r)| r.clone())
            .expect("built above");
        out.push((c.name.clone(), r));
    }
    Ok(out)
}

/// Queues the daily summary when its time has come (and catches up, once, after downtime).
async fn summary_loop(
    cfg: Settings,
    kb: Arc<Kb>,
    db: Rc<State>,
    wake: Arc<watch::Sender<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(at) = cfg.summary.at else {
        return;
    };
    let channels = summary_channels(&cfg);
    if channels.is_empty() {
        log!(Warn, "no channel takes the daily summary; it is not sent");
        return;
    }
    let zone = cfg.summary.zone.clone();
    loop {
        let now = now_ms();
        let last = outbox::last_summary(db.conn())
            .ok()
            .flatten()
            .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        let created = outbox::created_ms(db.conn()).ok().flatten().unwrap_or(now);
        if let Some(day) = summary::due(now, at, &zone, last, created) {
            let queued =
                summary_reports(db.conn(), &kb, &cfg, &channels, day, &zone).and_then(|reports| {
                    let rows: Vec<(String, String)> = reports
                        .iter()
                        .map(|(c, r)| Ok((c.clone(), serde_json::to_string(r)?)))
                        .collect::<anyhow::Result<_>>()?;
                    Ok(outbox::queue_summary(
                        db.conn(),
                        &day.format("%Y-%m-%d").to_string(),
                        &rows,
                        now,
                    )?)
                });
            match queued {
                Ok(true) => {
                    log!(
                        Info,
                        "daily summary queued",
                        day = day,
                        channels = channels.len()
                    );
                    wake.send_modify(|n| *n += 1);
                }
                Ok(false) => {}
                Err(e) => log!(Error, "making the daily summary", error = format!("{e:#}")),
            }
        }
        // Looked at again at least every minute: the wall clock may jump, the zone's rules
        // change the next time.
        let next = summary::next_send(now, at, &zone);
        let d = Duration::from_millis((next - now_ms()).clamp(1000, 60_000) as u64);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(d) => {}
        }
    }
}

/// `gatewatch summary --send`: sends a day's summary through its channels now.
pub async fn send_summary_now(
    cfg: &Settings,
    kb: &Kb,
    conn: &rusqlite::Connection,
    date: chrono::NaiveDate,
    zone: &crate::engine::time::Zone,
) -> anyhow::Result<Vec<(String, Result<(), String>)>> {
    let channels = summary_channels(cfg);
    anyhow::ensure!(!channels.is_empty(), "no channel takes the daily summary");
    let reports = summary_reports(conn, kb, cfg, &channels, date, zone)?;
    let mut out = Vec::new();
    for (c, (name, r)) in channels.iter().zip(reports) {
        let result = match Channel::new(c, &cfg.alerts) {
            Err(e) => Err(format!("{e:#}")),
            Ok(ch) => {
                let thread = Thread {
                    message_id: format!("gw-summary-{}-{}", r.date, now_ms()),
                    references: Vec::new(),
                };
                ch.send_summary(&r, &thread)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        out.push((name, result));
    }
    Ok(out)
}

/// `gatewatch test-alert`: sends a realistic sample alert through channels, now, without the
/// outbox. Returns each channel's result.
pub async fn test_alert(
    cfg: &Settings,
    kb: &crate::engine::kb::Kb,
    only: Option<&str>,
) -> anyhow::Result<Vec<(String, Result<(), String>)>> {
    let channels: Vec<ChannelConfig> = cfg
        .channels
        .iter()
        .filter(|c| only.is_none_or(|n| c.name == n))
        .cloned()
        .collect();
    if let Some(n) = only
        && channels.is_empty()
    {
        anyhow::bail!("no channel is named {n:?}");
    }
    let inc = alert::sample(kb).context("the knowledge base has no sample entry")?;
    let mut out = Vec::new();
    for c in channels {
        let result = match Channel::new(&c, &cfg.alerts) {
            Err(e) => Err(format!("{e:#}")),
            Ok(ch) => {
                let id = format!("gw-test-{}", now_ms());
                let item = alert::item(
                    &inc,
                    kb,
                    c.lang,
                    &ch.host,
                    &["/var/log/nginx/access.log".into()],
                    alert::Extra::default(),
                );
                let mut v = alert::compose(AlertKind::Opened, &ch.host, c.lang, &id, vec![item]);
                v.subject = format!("[test] {}", v.subject);
                ch.send(
                    &v,
                    &Thread {
                        message_id: id,
                        references: Vec::new(),
                    },
                )
                .await
                .map_err(|e| e.to_string())
            }
        };
        out.push((c.name, result));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_and_honours_retry_after() {
        let d = AlertsConfig::default();
        let range = (d.retry_min, d.retry_max);
        let secs = |a, seed| backoff(a, range, None, seed).as_secs_f64();
        assert!((4.0..=6.0).contains(&secs(0, 7)));
        assert!((8.0..=12.0).contains(&secs(1, 7)));
        assert!(
            (240.0..=360.0).contains(&secs(20, 7)),
            "capped at 5 minutes ± 20 %"
        );
        assert_ne!(
            backoff(3, range, None, 1),
            backoff(3, range, None, 300),
            "jitter spreads retries"
        );
        assert_eq!(
            backoff(0, range, Some(Duration::from_secs(120)), 0),
            Duration::from_secs(120)
        );
    }
}

//! The outbox: incident changes become messages in the state file, in the same transaction
//! that records how far the logs were read, and are sent from there. An alert is written
//! before it is sent; it is marked sent only after the receiver took it; a restart sends what
//! is still pending, in order.
//!
//! Tables (in the state file, see `state.rs` for the schema): `incidents` (every incident,
//! open or closed, silenced or not: what the daily summary reads and what a restart takes
//! back), `outbox` (one row per incident change and channel), `silences`.

use crate::engine::detect::Incident;
use crate::engine::glob;
use crate::engine::kb::{Kb, Lang};
use crate::engine::policy::{self, Maintenance, Recorded, Verdict};
use crate::render::alert::{self, AlertKind, Item};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// An incident change waiting to be written.
#[derive(Clone, Debug)]
pub struct Notice {
    pub kind: AlertKind,
    pub incident: Incident,
    /// Already handed to the sender from memory (the state could not be written when it
    /// happened), in the message made at this time (Unix ms): recorded as sent, with that
    /// message's id, never sent again.
    pub delivered: Option<i64>,
    /// An incident opened from lines another gatewatch read and announced first (a Kafka
    /// partition taken over): recorded as open, its opening not sent again; its end is.
    pub elsewhere: bool,
}

impl Notice {
    pub fn new(kind: AlertKind, incident: Incident) -> Notice {
        Notice {
            kind,
            incident,
            delivered: None,
            elsewhere: false,
        }
    }

    /// Whether the notice is for people: not the opening of an incident announced elsewhere.
    fn for_people(&self) -> bool {
        !(self.elsewhere && self.kind == AlertKind::Opened)
    }
}

/// A message sent from memory while the state file cannot be written (disk full, read-only,
/// failing): the reader hands it to the sender directly; the outbox records it as sent once
/// the state can be written again.
#[derive(Clone, Debug)]
pub struct MemoryMessage {
    pub channel: String,
    pub kind: AlertKind,
    /// The incidents' keys, for the message id.
    pub keys: Vec<String>,
    pub items: Vec<Item>,
    pub created: i64,
    pub attempts: u32,
    pub next_try: i64,
}

/// A channel's name as it goes into an id.
fn id_part(channel: &str) -> String {
    channel
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A message's id: from its first row (the row's id and when it was written), so a retry
/// carries the same one; the time keeps ids apart across state files (a fallback state, a
/// fresh one after damage), whose row numbers start over.
pub fn message_id(first_row: i64, created_ms: i64, channel: &str) -> String {
    format!("gw-{created_ms}-{first_row}-{}", id_part(channel))
}

/// The id of a message sent from memory: made at `made` (Unix ms) for `channel`.
pub fn memory_message_id(made: i64, channel: &str) -> String {
    format!("gw-{made}-mem-{}", id_part(channel))
}

/// The policy's name for a change.
fn change_of(kind: AlertKind) -> Option<policy::Change> {
    match kind {
        AlertKind::Opened => Some(policy::Change::Opened),
        AlertKind::Reminder => Some(policy::Change::Reminder),
        AlertKind::Resolved => Some(policy::Change::Resolved),
        AlertKind::Summary => None,
    }
}

/// What the state holds of an incident, by key.
fn recorded(conn: &Connection, key: &str) -> rusqlite::Result<Option<Recorded>> {
    conn.prepare_cached("SELECT silenced, closed_ms, acked_ms FROM incidents WHERE key = ?1")?
        .query_row(params![key], |r| {
            Ok(Recorded {
                silenced: r.get::<_, i64>(0)? != 0,
                closed: r.get::<_, Option<i64>>(1)?.is_some(),
                acked: r.get::<_, Option<i64>>(2)?.is_some(),
            })
        })
        .optional()
}

/// Messages waiting in memory, shared by the reader (which adds) and the sender (which takes).
pub type MemoryQueue = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<MemoryMessage>>>;

/// Whether a change goes out, decided as `record` decides it but without writing: from the
/// incident's row if the state has one (read-only access still works on a full disk), else
/// from what was decided in memory before (`silenced_in_memory`: key → silenced), else by the
/// silences and maintenance windows now. Returns (send, silenced) for an `Opened`.
pub fn decide(
    conn: &Connection,
    a: &Alerting<'_>,
    n: &Notice,
    silenced_in_memory: &std::collections::HashMap<String, bool>,
) -> (bool, bool) {
    let inc = &n.incident;
    let key = alert::incident_key(a.host, a.kb, inc);
    let entry = a.kb.id(inc.entry);
    let Some(change) = change_of(n.kind) else {
        return (false, false);
    };
    let row = recorded(conn, &key).unwrap_or(None).or_else(|| {
        silenced_in_memory.get(&key).map(|s| Recorded {
            silenced: *s,
            closed: false,
            acked: false,
        })
    });
    let verdict = policy::decide(change, row, || {
        silenced_by(conn, a.maintenance, &key, &inc.upstream, entry, a.now_ms)
            .unwrap_or(None)
            .is_some()
    });
    let silenced = match verdict {
        Verdict::Open { silenced } => silenced,
        _ => row.is_some_and(|r| r.silenced),
    };
    (verdict.sends() && n.for_people(), silenced)
}

/// What a commit needs to turn notices into outbox rows.
pub struct Alerting<'a> {
    pub kb: &'a Kb,
    pub host: &'a str,
    /// The channels, by name, with their language.
    pub channels: &'a [(String, Lang)],
    pub sources: &'a [String],
    pub maintenance: &'a [Maintenance],
    /// The open incidents as they stand, to keep their rows current.
    pub open: &'a [Incident],
    /// Wall-clock time (Unix ms): when messages are created, and what silences are checked
    /// against.
    pub now_ms: i64,
    /// What the delivery journal says was delivered already (a state lost since).
    pub delivered: &'a super::journal::Delivered,
    /// Signs the alerts' one-click links (`[http] public_url`); `None`: no links.
    pub links: Option<&'a crate::render::links::Signer>,
}

/// The silence or maintenance window covering an incident now, if any (`key`: the incident's,
/// for the silences scoped to one incident, its snoozes).
pub fn silenced_by(
    conn: &Connection,
    maintenance: &[Maintenance],
    key: &str,
    upstream: &str,
    entry: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<String>> {
    if let Some(m) = maintenance
        .iter()
        .find(|m| m.covers(upstream, entry, now_ms))
    {
        return Ok(Some(format!("maintenance: {}", m.reason)));
    }
    // The silences in force now, matched with the same glob as maintenance windows.
    let mut stmt = conn.prepare_cached(
        "SELECT id, reason, upstream, entry FROM silences
         WHERE starts <= ?1 AND ends > ?1 AND (incident IS NULL OR incident = ?2) ORDER BY id",
    )?;
    let mut rows = stmt.query(params![now_ms, key])?;
    while let Some(r) = rows.next()? {
        let (id, reason, up, en): (i64, String, String, Option<String>) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let covers = glob::matches(up.as_bytes(), upstream.as_bytes())
            && en.is_none_or(|e| glob::matches(e.as_bytes(), entry.as_bytes()));
        if covers {
            return Ok(Some(format!("silence {id}: {reason}")));
        }
    }
    Ok(None)
}

/// Writes incident changes: the incident rows, and one outbox row per channel unless the
/// incident is silenced. A change already recorded (the same incident opened, or closed,
/// twice) is not written again.
pub fn record(tx: &Transaction<'_>, a: &Alerting<'_>, notices: &[Notice]) -> anyhow::Result<()> {
    for inc in a.open {
        let key = alert::incident_key(a.host, a.kb, inc);
        tx.prepare_cached(
            "UPDATE incidents SET end_ms = ?2, failures = ?3, requests = ?4, peak = ?5, data = ?6
             WHERE key = ?1 AND closed_ms IS NULL",
        )?
        .execute(params![
            key,
            inc.end_ms,
            inc.failures as i64,
            inc.requests.map(|r| r as i64),
            inc.peak_window_failures,
            serde_json::to_string(inc)?,
        ])?;
    }
    for n in notices {
        let inc = &n.incident;
        let key = alert::incident_key(a.host, a.kb, inc);
        let entry = a.kb.id(inc.entry);
        let Some(change) = change_of(n.kind) else {
            continue;
        };
        // Asked at most once, by the policy; kept for the incident's row.
        let mut silence: rusqlite::Result<Option<String>> = Ok(None);
        let verdict = policy::decide(change, recorded(tx, &key)?, || {
            silence = silenced_by(tx, a.maintenance, &key, &inc.upstream, entry, a.now_ms);
            silence.as_ref().is_ok_and(Option::is_some)
        });
        let silence = silence?;
        match verdict {
            Verdict::Open { .. } => {
                if let Some(s) = &silence {
                    crate::log!(Info, "incident silenced", upstream = inc.upstream, by = s);
                }
                tx.prepare_cached(
                    "INSERT INTO incidents (key, entry, upstream, cause, start_ms, opened_ms, end_ms, closed_ms,
                        offset, failures, requests, peak, silenced, silenced_by, notified_ms, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?14)",
                )?
                .execute(params![
                    key,
                    entry,
                    inc.upstream,
                    inc.cause.as_str(),
                    inc.start_ms,
                    inc.opened_ms,
                    inc.end_ms,
                    inc.offset_secs,
                    inc.failures as i64,
                    inc.requests.map(|r| r as i64),
                    inc.peak_window_failures,
                    silence.is_some(),
                    silence,
                    serde_json::to_string(inc)?,
                    a.now_ms,
                ])?;
            }
            Verdict::Remind { .. } => {
                tx.prepare_cached("UPDATE incidents SET notified_ms = ?2 WHERE key = ?1")?
                    .execute(params![key, a.now_ms])?;
            }
            Verdict::Resolve { .. } => {
                followed(tx, a.kb, &key, inc)?;
                tx.prepare_cached(
                    "UPDATE incidents SET closed_ms = ?2, end_ms = ?3, failures = ?4, requests = ?5,
                        peak = ?6, data = ?7 WHERE key = ?1",
                )?
                .execute(params![
                    key,
                    inc.closed_ms.unwrap_or(inc.end_ms),
                    inc.end_ms,
                    inc.failures as i64,
                    inc.requests.map(|r| r as i64),
                    inc.peak_window_failures,
                    serde_json::to_string(inc)?,
                ])?;
            }
            Verdict::Ignore => {}
        }
        let send = verdict.sends() && n.for_people();
        if !send {
            continue;
        }
        // What happened here to the entry's advice, shown beside the knowledge base's rates.
        let local = super::outcomes::local_record(tx, entry)?;
        let extra = alert::Extra {
            local: Some(&local),
            links: a.links.map(|s| (s, n.kind, a.now_ms)),
        };
        for (channel, lang) in a.channels {
            let item = alert::item(inc, a.kb, *lang, a.host, a.sources, extra);
            let item = serde_json::to_string(&item)?;
            let journaled =
                a.delivered
                    .get(&(channel.clone(), n.kind.as_str().to_string(), key.clone()));
            if let Some(id) = journaled.filter(|_| n.delivered.is_none()) {
                // Delivered before this state knew of it (the state was damaged or replaced):
                // history under the id it went out with, not a message to send again.
                tx.prepare_cached(
                    "INSERT INTO outbox (channel, incident, kind, item, created, state, attempts, next_try, last_error, message_id, done)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'sent', 1, ?5, 'delivered before the state was lost (delivery journal)', ?6, ?5)",
                )?
                .execute(params![channel, key, n.kind.as_str(), item, a.now_ms, id])?;
            } else if let Some(made) = n.delivered {
                // Sent from memory while the state could not be written: history, not a
                // message to send (its id lets a later message refer to it).
                tx.prepare_cached(
                    "INSERT INTO outbox (channel, incident, kind, item, created, state, attempts, next_try, last_error, message_id, done)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'sent', 1, ?5, 'sent from memory: the state could not be written', ?6, ?5)",
                )?
                .execute(params![
                    channel,
                    key,
                    n.kind.as_str(),
                    item,
                    a.now_ms,
                    memory_message_id(made, channel),
                ])?;
            } else {
                tx.prepare_cached(
                    "INSERT INTO outbox (channel, incident, kind, item, created, state, attempts, next_try)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?5)",
                )?
                .execute(params![channel, key, n.kind.as_str(), item, a.now_ms])?;
            }
        }
    }
    Ok(())
}

/// Records, for a closed incident, what its recovery followed (an nginx reload, its server
/// back UP) against the entry's items that the logs show that way (`seen_as`): weak evidence,
/// given by gatewatch itself.
fn followed(tx: &Transaction<'_>, kb: &Kb, key: &str, inc: &Incident) -> anyhow::Result<()> {
    let e = kb.get(inc.entry);
    for r in &inc.recovery {
        let items = e
            .workarounds
            .iter()
            .enumerate()
            .filter(|(_, w)| w.seen_as.contains(&r.signal))
            .map(|(i, _)| super::outcomes::Item::Workaround(i + 1))
            .chain(
                e.dead_ends
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.seen_as.contains(&r.signal))
                    .map(|(i, _)| super::outcomes::Item::DeadEnd(i + 1)),
            );
        let at = crate::engine::event::Timestamp::new(r.at_ms, inc.offset_secs).to_rfc3339();
        let note = format!(
            "recovery followed {}{} at {at}",
            r.signal.describe(),
            r.server
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
        for item in items {
            tx.prepare_cached(
                "INSERT INTO outcomes (incident, entry, item, verdict, who, via, note, at_ms)
                 VALUES (?1, ?2, ?3, 'followed', 'gatewatch', 'automatic', ?4, ?5)",
            )?
            .execute(params![key, e.id, item.name(), note, r.at_ms])?;
        }
    }
    Ok(())
}

/// The incidents that were open when the daemon stopped, with when they were last announced
/// (wall clock, Unix ms), for the detector to take back.
pub fn open_incidents(conn: &Connection, kb: &Kb) -> anyhow::Result<Vec<(Incident, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT key, entry, data, notified_ms FROM incidents WHERE closed_ms IS NULL ORDER BY opened_ms",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, entry, data, notified) = row?;
        let Some(id) = kb.find(&entry) else {
            crate::log!(
                Warn,
                "an open incident's entry is no longer in the knowledge base; it is closed without a note",
                incident = key,
                entry = entry
            );
            conn.execute(
                "UPDATE incidents SET closed_ms = end_ms WHERE key = ?1",
                params![key],
            )?;
            continue;
        };
        let mut inc: Incident = serde_json::from_str(&data)?;
        inc.entry = id;
        out.push((inc, notified));
    }
    Ok(out)
}

/// One pending row.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: i64,
    pub incident: String,
    pub kind: AlertKind,
    pub item: String,
    pub created: i64,
    pub attempts: u32,
    pub next_try: i64,
    /// The message the row was first tried in: once set, the row goes out in that message,
    /// with those rows and no others (one delivery id, one content).
    pub message_id: Option<String>,
}

/// What a channel should do next.
#[derive(Debug)]
pub enum Next {
    /// Nothing pending.
    Idle,
    /// Something is pending, but not due before this time (Unix ms).
    Wait(i64),
    /// Send these rows as one message.
    Send(Vec<Pending>),
}

fn kind_of(s: &str) -> AlertKind {
    match s {
        "reminder" => AlertKind::Reminder,
        "resolved" => AlertKind::Resolved,
        "summary" => AlertKind::Summary,
        _ => AlertKind::Opened,
    }
}

/// The next message of a channel: the oldest pending row and the rows of the same kind that
/// may join it (none of their incident's earlier changes still pending), once the oldest has
/// waited `group_wait_ms` for company and its retry time has come.
pub fn next(
    conn: &Connection,
    channel: &str,
    now_ms: i64,
    group_wait_ms: i64,
    max: usize,
) -> rusqlite::Result<Next> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, incident, kind, item, created, attempts, next_try, message_id FROM outbox
         WHERE channel = ?1 AND state = 'pending' ORDER BY id LIMIT 1000",
    )?;
    let rows: Vec<Pending> = stmt
        .query_map(params![channel], |r| {
            Ok(Pending {
                id: r.get(0)?,
                incident: r.get(1)?,
                kind: kind_of(&r.get::<_, String>(2)?),
                item: r.get(3)?,
                created: r.get(4)?,
                attempts: r.get::<_, i64>(5)? as u32,
                next_try: r.get(6)?,
                message_id: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let Some(head) = rows.first() else {
        return Ok(Next::Idle);
    };
    let due = (head.created + group_wait_ms).max(head.next_try);
    if due > now_ms {
        return Ok(Next::Wait(due));
    }
    // A message already tried goes out again as it was: the same rows, none added.
    if let Some(m) = &head.message_id {
        let same: Vec<Pending> = rows
            .iter()
            .filter(|r| r.message_id.as_ref() == Some(m))
            .cloned()
            .collect();
        return Ok(Next::Send(same));
    }
    let kind = head.kind;
    if kind == AlertKind::Summary {
        // A summary is a message of its own.
        return Ok(Next::Send(vec![head.clone()]));
    }
    let mut blocked: Vec<&str> = Vec::new();
    let mut batch = Vec::new();
    for r in &rows {
        // Rows of another message already tried are that message's.
        if r.message_id.is_some() {
            blocked.push(&r.incident);
            continue;
        }
        if r.kind == kind && !blocked.contains(&r.incident.as_str()) {
            if batch.len() < max {
                batch.push(r.clone());
            }
        } else {
            blocked.push(&r.incident);
        }
    }
    Ok(Next::Send(batch))
}

/// Marks rows sent as one message.
/// Fixes a message's rows before its first try: from now on they go out together under `id`,
/// and rows added later go into other messages.
pub fn compose(conn: &Connection, ids: &[i64], id: &str) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE outbox SET message_id = ?2 WHERE id = ?1 AND state = 'pending' AND message_id IS NULL",
        )?;
        for row in ids {
            stmt.execute(params![row, id])?;
        }
    }
    tx.commit()
}

pub fn sent(conn: &Connection, ids: &[i64], message_id: &str, now_ms: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET state = 'sent', message_id = ?2, done = ?3, attempts = attempts + 1, last_error = NULL
         WHERE id = ?1",
    )?;
    for id in ids {
        stmt.execute(params![id, message_id, now_ms])?;
    }
    Ok(())
}

/// Records a failed attempt: tried again at `next_try`.
pub fn retry(conn: &Connection, ids: &[i64], next_try: i64, error: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, next_try = ?2, last_error = ?3 WHERE id = ?1",
    )?;
    for id in ids {
        stmt.execute(params![id, next_try, error])?;
    }
    Ok(())
}

/// Records rows that will not be sent.
pub fn failed(conn: &Connection, ids: &[i64], error: &str, now_ms: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2, done = ?3 WHERE id = ?1",
    )?;
    for id in ids {
        stmt.execute(params![id, error, now_ms])?;
    }
    Ok(())
}

/// Pending rows of channels that are no longer configured are recorded as failed.
pub fn fail_unknown_channels(
    conn: &Connection,
    channels: &[String],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let names: Vec<String> = conn
        .prepare("SELECT DISTINCT channel FROM outbox WHERE state = 'pending'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for name in names.iter().filter(|n| !channels.contains(n)) {
        n += conn.execute(
            "UPDATE outbox SET state = 'failed', last_error = 'the channel is no longer configured', done = ?2
             WHERE channel = ?1 AND state = 'pending'",
            params![name, now_ms],
        )?;
    }
    Ok(n)
}

/// Messages waiting to be sent (rows, over all channels).
pub fn depth(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

/// The message ids under which a channel sent the alerts of some incidents (for mail
/// threads: the resolved note refers to its alert).
pub fn opened_message_ids(
    conn: &Connection,
    channel: &str,
    incidents: &[&str],
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT message_id FROM outbox WHERE channel = ?1 AND incident = ?2 AND kind = 'opened'
         AND state = 'sent' AND message_id IS NOT NULL ORDER BY id LIMIT 1",
    )?;
    let mut out: Vec<String> = Vec::new();
    for i in incidents {
        if let Some(m) = stmt
            .query_row(params![channel, i], |r| r.get::<_, String>(0))
            .optional()?
            && !out.contains(&m)
        {
            out.push(m);
        }
    }
    Ok(out)
}

/// The alerts a channel sent for incidents that are still open (Alertmanager wants them
/// posted again while they fire).
pub fn still_open(conn: &Connection, channel: &str) -> rusqlite::Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.incident, o.item, o.created FROM outbox o JOIN incidents i ON i.key = o.incident
         WHERE o.channel = ?1 AND o.kind = 'opened' AND o.state = 'sent' AND i.closed_ms IS NULL
         ORDER BY o.id LIMIT 1000",
    )?;
    stmt.query_map(params![channel], |r| {
        Ok(Pending {
            id: r.get(0)?,
            incident: r.get(1)?,
            kind: AlertKind::Opened,
            item: r.get(2)?,
            created: r.get(3)?,
            attempts: 0,
            next_try: 0,
            message_id: None,
        })
    })?
    .collect()
}

/// The rows' items, parsed.
pub fn items(rows: &[Pending]) -> serde_json::Result<Vec<Item>> {
    rows.iter().map(|r| serde_json::from_str(&r.item)).collect()
}

/// Queues a day's summary for channels (each with the report in its language), once: false
/// when that day's summary was queued before.
pub fn queue_summary(
    conn: &Connection,
    date: &str,
    reports: &[(String, String)],
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let tx = conn.unchecked_transaction()?;
    if tx.execute(
        "INSERT OR IGNORE INTO summaries (day, queued_ms) VALUES (?1, ?2)",
        params![date, now_ms],
    )? == 0
    {
        return Ok(false);
    }
    for (channel, report) in reports {
        tx.execute(
            "INSERT INTO outbox (channel, incident, kind, item, created, state, attempts, next_try)
             VALUES (?1, ?2, 'summary', ?3, ?4, 'pending', 0, ?4)",
            params![channel, format!("summary-{date}"), report, now_ms],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

/// The newest day whose summary was queued.
pub fn last_summary(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT MAX(day) FROM summaries", [], |r| r.get(0))
}

/// When the state was created (Unix ms).
pub fn created_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT value FROM meta WHERE key = 'created_ms'", [], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map(|v| v.and_then(|v| v.parse().ok()))
}

/// How long delivered and failed messages, and ended silences, are kept.
pub const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// Deletes messages delivered or given up, and silences ended, more than [`KEEP_MS`] ago
/// (incidents stay: they are the history the daily summary reads). Returns the rows deleted.
pub fn prune(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    let before = now_ms - KEEP_MS;
    Ok(conn.execute(
        "DELETE FROM outbox WHERE state IN ('sent', 'failed') AND done < ?1",
        params![before],
    )? + conn.execute("DELETE FROM silences WHERE ends < ?1", params![before])?
        + conn.execute("DELETE FROM link_uses WHERE used_ms < ?1", params![before])?)
}

/// A silence as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Silence {
    pub id: i64,
    pub upstream: String,
    pub entry: Option<String>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub reason: String,
    pub created_by: Option<String>,
    /// The one incident it covers (a snooze); `None`: every incident it matches.
    pub incident: Option<String>,
}

pub fn add_silence(conn: &Connection, s: &Silence) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO silences (upstream, entry, starts, ends, reason, created_by, incident) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![s.upstream, s.entry, s.starts_ms, s.ends_ms, s.reason, s.created_by, s.incident],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Silences that have not ended (or all, with `all`).
pub fn silences(conn: &Connection, now_ms: i64, all: bool) -> rusqlite::Result<Vec<Silence>> {
    // A state of schema 6 read before the daemon upgraded it has no snoozes.
    let incident = if super::has_column(conn, "silences", "incident")? {
        "incident"
    } else {
        "NULL"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT id, upstream, entry, starts, ends, reason, created_by, {incident} FROM silences
         WHERE ?1 OR ends > ?2 ORDER BY id"
    ))?;
    stmt.query_map(params![all, now_ms], |r| {
        Ok(Silence {
            id: r.get(0)?,
            upstream: r.get(1)?,
            entry: r.get(2)?,
            starts_ms: r.get(3)?,
            ends_ms: r.get(4)?,
            reason: r.get(5)?,
            created_by: r.get(6)?,
            incident: r.get(7)?,
        })
    })?
    .collect()
}

/// Ends a silence now. False when there is no such silence.
pub fn remove_silence(conn: &Connection, id: i64, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE silences SET ends = MIN(ends, ?2) WHERE id = ?1",
        params![id, now_ms],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(conn: &Connection, channel: &str, incident: &str, kind: &str, created: i64) -> i64 {
        conn.execute(
            "INSERT INTO outbox (channel, incident, kind, item, created, state, attempts, next_try)
             VALUES (?1, ?2, ?3, '{}', ?4, 'pending', 0, ?4)",
            params![channel, incident, kind, created],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    fn ids(n: Next) -> Vec<i64> {
        match n {
            Next::Send(rows) => rows.iter().map(|r| r.id).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_message_groups_one_kind_and_never_overtakes_an_incidents_earlier_change() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = crate::store::State::open(dir.path()).unwrap();
        let c = state.conn();
        let a1 = insert(c, "hook", "A", "opened", 1000);
        let b1 = insert(c, "hook", "B", "opened", 1100);
        let a2 = insert(c, "hook", "A", "resolved", 1200);
        let c1 = insert(c, "hook", "C", "opened", 1300);
        let other = insert(c, "mail", "A", "opened", 1000);
        // The oldest waits for company first.
        assert!(matches!(
            next(c, "hook", 1500, 1000, 100).unwrap(),
            Next::Wait(2000)
        ));
        // Then every opened that may go: A, B and C (A's resolved stays behind A's alert).
        assert_eq!(
            ids(next(c, "hook", 2000, 1000, 100).unwrap()),
            vec![a1, b1, c1]
        );
        sent(c, &[a1, b1, c1], "m1", 2000).unwrap();
        assert_eq!(ids(next(c, "hook", 2300, 1000, 100).unwrap()), vec![a2]);
        // A failed attempt holds the channel until its retry time.
        retry(c, &[a2], 5000, "down").unwrap();
        assert!(matches!(
            next(c, "hook", 3000, 1000, 100).unwrap(),
            Next::Wait(5000)
        ));
        failed(c, &[a2], "gone", 5000).unwrap();
        assert!(matches!(
            next(c, "hook", 6000, 1000, 100).unwrap(),
            Next::Idle
        ));
        // Channels are independent.
        assert_eq!(ids(next(c, "mail", 3000, 1000, 100).unwrap()), vec![other]);
        assert_eq!(depth(c).unwrap(), 1);
        assert_eq!(
            opened_message_ids(c, "hook", &["A", "C", "Z"]).unwrap(),
            vec!["m1"]
        );
        // Removed channels give up their messages; old history is pruned.
        assert_eq!(fail_unknown_channels(c, &["hook".into()], 7000).unwrap(), 1);
        assert_eq!(prune(c, 2000 + KEEP_MS).unwrap(), 0, "recent rows stay");
        assert_eq!(prune(c, 7001 + KEEP_MS).unwrap(), 5);
    }
}

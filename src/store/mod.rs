//! The daemon's state: one SQLite file (`gatewatch.db` in the state directory) that a user can
//! open with `sqlite3`. It holds where reading stands in every source (an opaque, versioned
//! checkpoint each, and the ledger of items read whole) and the counters the lines added; they
//! are written in one transaction, so after a crash or `kill -9` every line counts exactly
//! once: lines read after the last commit are read again, and their counts were never
//! committed.

pub mod history;
pub mod journal;
pub mod outbox;
pub mod outcomes;

use crate::engine::event::Cause;
use crate::source::{Checkpoint, Done};
use anyhow::Context;
use outbox::{Alerting, Notice};
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

/// SQLite's quick check found the state file damaged.
#[derive(Debug, thiserror::Error)]
#[error("the quick check of the state file failed: {0}")]
pub struct Corrupt(String);

/// Whether an error means the state file is damaged (not a database, corrupt pages) rather
/// than unwritable for now.
pub fn is_corrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Corrupt>()
            || matches!(
                c.downcast_ref::<rusqlite::Error>(),
                Some(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            )
    })
}

/// The state file's name inside the state directory.
pub const FILE_NAME: &str = "gatewatch.db";

/// Columns added to tables since schema 1 (`CREATE TABLE IF NOT EXISTS` leaves an existing
/// table as it was): (table, column, its declaration).
const ADDED_COLUMNS: [(&str, &str, &str); 4] = [
    ("checkpoints", "size", "INTEGER"),
    // Schema 7: an incident acknowledged (no more reminders), a silence scoped to one incident.
    ("incidents", "acked_ms", "INTEGER"),
    ("incidents", "acked_by", "TEXT"),
    ("silences", "incident", "TEXT"),
];

pub(crate) fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists(params![table])
}

pub(crate) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare(&format!(
        "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
    ))?
    .exists(params![column])
}

/// Brings the tables of an older state file up to this schema, in one transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (table, column, decl) in ADDED_COLUMNS {
        if !has_table(&tx, table)? {
            continue;
        }
        if !has_column(&tx, table, column)? {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    // Schema 4 and before: a row per followed file in `checkpoints` becomes the file source's
    // checkpoint; `alb_objects` becomes the ledger.
    if has_table(&tx, "checkpoints")? {
        let mut files: std::collections::BTreeMap<String, Vec<crate::source::tail::Checkpoint>> =
            Default::default();
        {
            use crate::source::tail::{Checkpoint as Tail, FileId, Fingerprint, Role};
            let mut stmt = tx.prepare(
                "SELECT path, role, dev, ino, fp_len, fp_hash, offset, size FROM checkpoints ORDER BY path, role",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Tail {
                    path: PathBuf::from(r.get::<_, String>(0)?),
                    role: if r.get::<_, String>(1)? == "current" {
                        Role::Current
                    } else {
                        Role::Draining
                    },
                    id: FileId {
                        dev: r.get::<_, i64>(2)? as u64,
                        ino: r.get::<_, i64>(3)? as u64,
                    },
                    fingerprint: Fingerprint {
                        len: r.get::<_, i64>(4)? as u32,
                        hash: r.get::<_, i64>(5)? as u64,
                    },
                    offset: r.get::<_, i64>(6)? as u64,
                    size: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
                })
            })?;
            for c in rows {
                let c = c?;
                files
                    .entry(c.path.to_string_lossy().into_owned())
                    .or_default()
                    .push(c);
            }
        }
        let now = chrono::Utc::now().to_rfc3339();
        for (path, cps) in files {
            let c = crate::source::file::encode(crate::source::file::KIND, &cps);
            tx.execute(
                "INSERT OR IGNORE INTO source_checkpoints (source, kind, version, data, updated) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![path, c.kind, c.version, c.data, now],
            )?;
        }
        tx.execute_batch("DROP TABLE checkpoints")?;
    }
    if has_table(&tx, "alb_objects")? {
        tx.execute_batch(
            "INSERT OR IGNORE INTO source_items (source, item, size, lines, processed)
                 SELECT source, object, size, lines, processed FROM alb_objects;
             DROP TABLE alb_objects;",
        )?;
    }
    tx.commit()
}

/// Pages the write-ahead log may hold before SQLite copies it back into the database
/// (about 1 MiB of 4 KiB pages).
const WAL_PAGES: i64 = 256;
/// The size the write-ahead log is cut back to after it was copied back, and past which a
/// commit copies it back and empties it at once.
const WAL_LIMIT: u64 = 1 << 20;

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 7;

const SCHEMA: &str = "
-- Where reading stands in every source, as the source wrote it (a followed file: JSON, one
-- object per open file with its inode, fingerprint and offset).
CREATE TABLE IF NOT EXISTS source_checkpoints (
    source    TEXT    PRIMARY KEY, -- the path, folder or address
    kind      TEXT    NOT NULL,    -- who wrote data: file, ...
    version   INTEGER NOT NULL,    -- and how
    data      BLOB    NOT NULL,
    updated   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    day       TEXT    NOT NULL,   -- YYYY-MM-DD of the line's own time (UTC)
    hour      INTEGER NOT NULL,
    source    TEXT    NOT NULL,
    upstream  TEXT    NOT NULL,   -- '' when the line names none
    cause     TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (day, hour, source, upstream, cause)
);
-- Items sources read whole (ALB objects), each once.
CREATE TABLE IF NOT EXISTS source_items (
    source    TEXT    NOT NULL,   -- the configured folder (or bucket)
    item      TEXT    NOT NULL,   -- the object's path below it
    size      INTEGER NOT NULL,
    lines     INTEGER NOT NULL,   -- -1: there before the first run, not read
    processed TEXT    NOT NULL,
    PRIMARY KEY (source, item)
);
-- Every incident, open or closed, alerted or silenced. Times are the logs' own (Unix ms).
CREATE TABLE IF NOT EXISTS incidents (
    key         TEXT    PRIMARY KEY,  -- gw-…, the same in every message about the incident
    entry       TEXT    NOT NULL,
    upstream    TEXT    NOT NULL,
    cause       TEXT    NOT NULL,
    start_ms    INTEGER NOT NULL,     -- its first failure
    opened_ms   INTEGER NOT NULL,     -- when the burst crossed the thresholds
    end_ms      INTEGER NOT NULL,     -- its last failure
    closed_ms   INTEGER,              -- NULL while open
    offset      INTEGER NOT NULL,     -- the UTC offset of the proxy's lines, seconds
    failures    INTEGER NOT NULL,
    requests    INTEGER,
    peak        INTEGER NOT NULL,     -- most failures within one window
    silenced    INTEGER NOT NULL,     -- 1: a silence or maintenance window covered it
    silenced_by TEXT,
    notified_ms INTEGER NOT NULL,     -- when it was last announced (renotify), Unix ms
    data        TEXT    NOT NULL,     -- the incident as JSON, to take it back after a restart
    acked_ms    INTEGER,              -- acknowledged (Unix ms): no more reminders
    acked_by    TEXT
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (closed_ms);
-- Messages: one row per incident change and channel; sent in id order per channel.
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY,
    channel     TEXT    NOT NULL,
    incident    TEXT    NOT NULL,     -- incidents.key
    kind        TEXT    NOT NULL,     -- opened | reminder | resolved
    item        TEXT    NOT NULL,     -- what the message says (JSON, the channel's language)
    created     INTEGER NOT NULL,     -- Unix ms
    state       TEXT    NOT NULL,     -- pending | sent | failed
    attempts    INTEGER NOT NULL,
    next_try    INTEGER NOT NULL,     -- Unix ms
    last_error  TEXT,
    message_id  TEXT,                 -- the message it went out in
    done        INTEGER               -- Unix ms, when sent or given up
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, channel, id);
-- What was done about each incident, per workaround or dead end (issue 17): every verdict
-- given is kept; the last one per (incident, item) counts.
CREATE TABLE IF NOT EXISTS outcomes (
    id          INTEGER PRIMARY KEY,
    incident    TEXT    NOT NULL,     -- incidents.key
    entry       TEXT    NOT NULL,     -- the knowledge-base entry the item belongs to
    item        TEXT    NOT NULL,     -- workaround:N | dead_end:N (1-based, the entry's order)
    verdict     TEXT    NOT NULL,     -- fixed | no_effect | not_tried
    who         TEXT    NOT NULL,
    via         TEXT    NOT NULL,     -- cli | link | automatic
    note        TEXT,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_incident ON outcomes (incident, item, id);
CREATE INDEX IF NOT EXISTS outcomes_entry ON outcomes (entry);
-- Daily summaries queued, one per local day.
CREATE TABLE IF NOT EXISTS summaries (
    day         TEXT    PRIMARY KEY,  -- YYYY-MM-DD in the summary's time zone
    queued_ms   INTEGER NOT NULL
);
-- Facts about the state itself (created_ms: when it was made).
CREATE TABLE IF NOT EXISTS meta (
    key         TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL
);
-- The format of every source, so reports tell requests from error-log lines.
CREATE TABLE IF NOT EXISTS source_formats (
    source      TEXT    PRIMARY KEY,
    format      TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id          INTEGER PRIMARY KEY,
    upstream    TEXT    NOT NULL,     -- a glob: * and ?
    entry       TEXT,                 -- a glob over entry ids; NULL: any
    starts      INTEGER NOT NULL,     -- Unix ms
    ends        INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_by  TEXT,
    incident    TEXT                  -- incidents.key: a snooze of that incident alone
);
-- The signed links of alerts that were followed (each works once), by their signature.
CREATE TABLE IF NOT EXISTS link_uses (
    sig         TEXT    PRIMARY KEY,
    incident    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    used_ms     INTEGER NOT NULL
);
";

/// The key of a counter, as kept in memory between commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CounterKey {
    day: i64,
    hour: u8,
    source: u16,
    cause: Cause,
}

/// What upstreams beyond a source's hourly cap are counted as (see [`Counters::new`]).
pub const OTHER_UPSTREAMS: &[u8] = b"(other)";

/// Counts of lines since the last commit, per day, hour, source, upstream and cause.
#[derive(Debug)]
pub struct Counters {
    counts: FxHashMap<CounterKey, FxHashMap<Box<[u8]>, i64>>,
    /// Upstreams counted per (hour since the epoch, source), for the last hours.
    seen: FxHashMap<(i64, u16), rustc_hash::FxHashSet<Box<[u8]>>>,
    /// Distinct upstreams counted per source and hour.
    cap: usize,
    /// Lines counted under `(other)` because their hour had too many upstreams.
    pub pooled: u64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters::new(crate::engine::detect::DetectConfig::default().max_upstreams)
    }
}

impl Counters {
    /// Counters that keep at most `cap` distinct upstreams per source and hour (the detector's
    /// `max_upstreams`); beyond, lines count under `(other)`, so a flood of made-up upstream
    /// names (a proxy passing to `$host`, say) cannot grow the state without bound.
    pub fn new(cap: usize) -> Counters {
        Counters {
            counts: FxHashMap::default(),
            seen: FxHashMap::default(),
            cap,
            pooled: 0,
        }
    }

    /// Counts one line. Allocates only for an upstream not yet counted since the last commit.
    pub fn add(&mut self, time_ms: i64, source: u16, upstream: Option<&[u8]>, cause: Cause) {
        self.adjust(time_ms, source, upstream, cause, 1);
    }

    /// Adds `delta` (negative to move a line counted under one cause to another).
    pub fn adjust(
        &mut self,
        time_ms: i64,
        source: u16,
        upstream: Option<&[u8]>,
        cause: Cause,
        delta: i64,
    ) {
        let key = CounterKey {
            day: time_ms.div_euclid(86_400_000),
            hour: (time_ms.rem_euclid(86_400_000) / 3_600_000) as u8,
            source,
            cause,
        };
        let mut up = crate::engine::parse::upstream::key(upstream.unwrap_or(b""));
        let hour = time_ms.div_euclid(3_600_000);
        if !self.seen.contains_key(&(hour, source)) {
            // A new hour: forget hours long gone (lines arrive nearly in order).
            self.seen.retain(|(h, _), _| *h >= hour - 2);
        }
        let seen = self.seen.entry((hour, source)).or_default();
        if !up.is_empty() && !seen.contains(up) {
            if seen.len() < self.cap {
                seen.insert(Box::from(up));
            } else {
                up = OTHER_UPSTREAMS;
                self.pooled += 1;
            }
        }
        let per = self.counts.entry(key).or_default();
        match per.get_mut(up) {
            Some(n) => *n += delta,
            None => {
                per.insert(Box::from(up), delta);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Adds the counts kept in memory to the counters table.
fn write_counters(
    tx: &rusqlite::Transaction<'_>,
    counters: &Counters,
    sources: &[String],
) -> anyhow::Result<()> {
    let mut up = tx.prepare_cached(
        "INSERT INTO counters (day, hour, source, upstream, cause, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (day, hour, source, upstream, cause) DO UPDATE SET count = count + excluded.count",
    )?;
    for (k, per) in &counters.counts {
        let day = day_name(k.day);
        let source = sources.get(k.source as usize).map_or("", String::as_str);
        for (upstream, &n) in per {
            if n == 0 {
                continue;
            }
            up.execute(params![
                day,
                k.hour,
                source,
                String::from_utf8_lossy(upstream),
                k.cause.as_str(),
                n
            ])?;
        }
    }
    Ok(())
}

/// Adds the counts and the incident changes to a transaction, and commits it. Only once it is
/// committed are the counts cleared: if the commit fails, they stay for the next one.
fn finish(
    tx: rusqlite::Transaction<'_>,
    path: &Path,
    counters: &mut Counters,
    sources: &[String],
    alerts: Option<(&Alerting<'_>, &[Notice])>,
) -> anyhow::Result<()> {
    write_counters(&tx, counters, sources)?;
    if let Some((a, notices)) = alerts {
        crate::store::outbox::record(&tx, a, notices)?;
    }
    tx.commit()
        .with_context(|| format!("writing {}", path.display()))?;
    counters.counts.clear();
    Ok(())
}

/// Copies a write-ahead log past [`WAL_LIMIT`] back into the database and empties it (a
/// reader in the middle of a query can hold that off: then the next commit tries again).
fn keep_wal_small(conn: &Connection, path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT);
    if big {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

/// The open state file.
pub struct State {
    conn: Connection,
    path: PathBuf,
}

fn day_name(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day-{day}"))
}

impl State {
    /// Opens (or creates) the state file in `dir`. Returns the state and whether it was new
    /// (gatewatch's first run with this state).
    ///
    /// A state file that is not a database or fails SQLite's quick check is moved aside
    /// (`gatewatch.db.corrupt-<time>`, kept for a post-mortem) and a fresh one is started:
    /// better to read the logs again from the configured start than to fail at every start.
    pub fn open(dir: &Path) -> anyhow::Result<(State, bool)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        match State::open_file(&path) {
            Err(e) if is_corrupt(&e) => {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let aside = dir.join(format!("{FILE_NAME}.corrupt-{stamp}"));
                std::fs::rename(&path, &aside).with_context(|| {
                    format!(
                        "{} is corrupt ({e:#}) and cannot be moved aside",
                        path.display()
                    )
                })?;
                for ext in ["-wal", "-shm"] {
                    let side = dir.join(format!("{FILE_NAME}{ext}"));
                    if side.exists() {
                        let _ =
                            std::fs::rename(&side, dir.join(format!("{}{ext}", aside.display())));
                    }
                }
                crate::log!(
                    Error,
                    "the state file is corrupt: moved aside, starting a fresh one (the logs are read again from the configured start)",
                    moved_to = aside.display(),
                    error = format!("{e:#}")
                );
                State::open_file(&path)
            }
            r => r,
        }
    }

    fn open_file(path: &Path) -> anyhow::Result<(State, bool)> {
        let path = path.to_path_buf();
        let existed = path.exists();
        let mut conn = Connection::open(&path)
            .with_context(|| format!("opening the state file {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Every commit reaches the disk: a checkpoint must never claim lines whose counts were
        // lost.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The write-ahead log is kept small (SQLite's default lets it grow to 4 MB before it is
        // copied back, and keeps the file at its largest): a small state disk must not fill
        // with it. See also `commit`.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_LIMIT as i64)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if existed {
            let check: String = conn.pragma_query_value(None, "quick_check", |r| r.get(0))?;
            if check != "ok" {
                return Err(anyhow::Error::new(Corrupt(check)));
            }
        }
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "{} was written by a newer gatewatch (schema {version}, this one knows {SCHEMA_VERSION}); upgrade gatewatch or move the file away",
                path.display()
            );
        }
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating the tables in {}", path.display()))?;
        migrate(&mut conn)
            .with_context(|| format!("upgrading the tables in {}", path.display()))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_ms', ?1)",
            params![crate::clock::now_ms().to_string()],
        )?;
        // New: nothing was ever recorded (a first run killed before its first commit counts
        // as new too).
        let mut new = !existed;
        if existed {
            new = true;
            for table in ["source_checkpoints", "counters", "source_items"] {
                let any = conn
                    .query_row(&format!("SELECT 1 FROM {table} LIMIT 1"), [], |_| Ok(()))
                    .optional()?
                    .is_some();
                new &= !any;
            }
        }
        Ok((State { conn, path }, new))
    }

    /// Opens the state file another connection created (the sender's, after the reader's
    /// `open`), writing nothing: it works on a full disk.
    pub fn connect(dir: &Path) -> anyhow::Result<State> {
        let path = dir.join(FILE_NAME);
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the state file {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(State { conn, path })
    }

    /// Opens the state file for reading only (`silence list`, `summary`): `None` when there is
    /// none yet. Never creates, migrates or writes anything.
    pub fn open_read_only(dir: &Path) -> anyhow::Result<Option<State>> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the state file {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Some(State { conn, path }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file on disk for damage with a connection of its own (this one's page cache
    /// would hide damage done under it): `None` when whole, else what SQLite found.
    pub fn damage(&self) -> Option<String> {
        let conn = match Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(c) => c,
            Err(e) => return Some(e.to_string()),
        };
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        match conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
            Ok(s) if s == "ok" => None,
            Ok(s) => Some(s),
            Err(e) => Some(e.to_string()),
        }
    }

    /// A state that lives in memory only (`scan --summary`).
    pub fn in_memory() -> anyhow::Result<State> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(State {
            conn,
            path: PathBuf::from(":memory:"),
        })
    }

    /// Records the format of sources (reports count requests from request logs only).
    pub fn register_sources(
        &self,
        sources: &[(String, crate::engine::event::Format)],
    ) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO source_formats (source, format) VALUES (?1, ?2)",
        )?;
        for (name, format) in sources {
            stmt.execute(params![name, format.as_str()])?;
        }
        Ok(())
    }

    /// The database, for the outbox and silences.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Every saved checkpoint, by source.
    pub fn checkpoints(&self) -> anyhow::Result<std::collections::HashMap<String, Checkpoint>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, kind, version, data FROM source_checkpoints")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Checkpoint {
                    kind: r.get(1)?,
                    version: r.get(2)?,
                    data: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The checkpoint saved for a source.
    pub fn checkpoint(&self, source: &str) -> anyhow::Result<Option<Checkpoint>> {
        Ok(self
            .conn
            .prepare_cached("SELECT kind, version, data FROM source_checkpoints WHERE source = ?1")?
            .query_row(params![source], |r| {
                Ok(Checkpoint {
                    kind: r.get(0)?,
                    version: r.get(1)?,
                    data: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Records, in one transaction, where reading stands in the given sources (replacing what
    /// was saved for them), the items they finished, the counts of the lines read since the
    /// last commit, and the incident changes.
    pub fn commit(
        &mut self,
        checkpoints: &[(&str, Checkpoint)],
        done: &[(&str, &[Done])],
        counters: &mut Counters,
        sources: &[String],
        alerts: Option<(&Alerting<'_>, &[Notice])>,
    ) -> anyhow::Result<()> {
        let now = chrono::Utc::now().to_rfc3339();
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO source_checkpoints (source, kind, version, data, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (source, c) in checkpoints {
                ins.execute(params![source, c.kind, c.version, c.data, now])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO source_items (source, item, size, lines, processed) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (source, items) in done {
                for d in *items {
                    ins.execute(params![source, d.item, d.size as i64, d.lines, now])?;
                }
            }
        }
        finish(tx, &self.path, counters, sources, alerts)?;
        keep_wal_small(&self.conn, &self.path);
        Ok(())
    }

    /// Lines counted for a source, per cause (for status and tests).
    pub fn counts_by_cause(&self, source: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT cause, SUM(count) FROM counters WHERE source = ?1 GROUP BY cause ORDER BY cause",
        )?;
        let rows = stmt.query_map(params![source], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl crate::source::Ledger for State {
    fn is_done(&self, source: &str, item: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM source_items WHERE source = ?1 AND item = ?2")?
            .exists(params![source, item])?)
    }

    fn resume_after(&self, source: &str) -> anyhow::Result<Option<String>> {
        let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MAX(item) FROM source_items WHERE source = ?1 AND processed < ?2",
            )?
            .query_row(params![source, hour_ago], |r| r.get::<_, Option<String>>(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_checkpoint() -> crate::source::tail::Checkpoint {
        use crate::source::tail::{Checkpoint as Tail, FileId, Fingerprint, Role};
        Tail {
            path: PathBuf::from("/var/log/nginx/access.log"),
            role: Role::Current,
            id: FileId {
                dev: 1,
                ino: u64::MAX - 3,
            },
            fingerprint: Fingerprint {
                len: 1024,
                hash: u64::MAX,
            },
            offset: 12_345,
            size: Some(20_000),
        }
    }

    #[test]
    fn checkpoints_items_and_counters_survive_a_reopen() {
        use crate::source::Ledger;
        let dir = tempfile::tempdir().unwrap();
        let (mut s, new) = State::open(dir.path()).unwrap();
        assert!(new);
        let cp = crate::source::file::encode(crate::source::file::KIND, &[file_checkpoint()]);
        let path = "/var/log/nginx/access.log";
        let mut counters = Counters::default();
        for _ in 0..3 {
            counters.add(
                1_714_564_800_000,
                0,
                Some(b"10.0.1.5:8080"),
                Cause::UpstreamUnreachable,
            );
        }
        counters.add(1_714_564_800_000, 0, None, Cause::Ok);
        let sources = vec!["access".to_string()];
        let items = [Done {
            item: "x_20240501T1205Z_y.log.gz".into(),
            size: 10,
            lines: 3,
        }];
        s.commit(
            &[(path, cp.clone())],
            &[("alb", &items)],
            &mut counters,
            &sources,
            None,
        )
        .unwrap();
        assert!(counters.is_empty());
        counters.add(
            1_714_564_801_000,
            0,
            Some(b"10.0.1.5:8080"),
            Cause::UpstreamUnreachable,
        );
        s.commit(&[(path, cp.clone())], &[], &mut counters, &sources, None)
            .unwrap();
        drop(s);
        let (s, new) = State::open(dir.path()).unwrap();
        assert!(!new);
        assert_eq!(s.checkpoints().unwrap().get(path), Some(&cp));
        assert!(s.is_done("alb", "x_20240501T1205Z_y.log.gz").unwrap());
        assert!(!s.is_done("alb", "other.log.gz").unwrap());
        assert!(!s.is_done("other", "x_20240501T1205Z_y.log.gz").unwrap());
        assert_eq!(
            s.counts_by_cause("access").unwrap(),
            [
                ("ok".to_string(), 1),
                ("upstream_unreachable".to_string(), 4)
            ]
        );
    }

    /// A state written by gatewatch 0.x with schema 1 (no `size`) or 4: its file checkpoints
    /// become file sources' checkpoints, its ALB objects the ledger; nothing is read again.
    #[test]
    fn an_older_state_is_upgraded_without_losing_positions() {
        use crate::source::Ledger;
        for with_size in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let c = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            c.execute_batch(&format!(
                "CREATE TABLE checkpoints (path TEXT NOT NULL, role TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
                     fp_len INTEGER NOT NULL, fp_hash INTEGER NOT NULL, offset INTEGER NOT NULL, updated TEXT NOT NULL{},
                     PRIMARY KEY (path, dev, ino));
                 CREATE TABLE alb_objects (source TEXT NOT NULL, object TEXT NOT NULL, size INTEGER NOT NULL,
                     lines INTEGER NOT NULL, processed TEXT NOT NULL, PRIMARY KEY (source, object));
                 INSERT INTO alb_objects VALUES ('/alb', 'a_20240501T1205Z_b.log.gz', 5, 7, '2024-05-01T12:10:00Z');
                 PRAGMA user_version = {};",
                if with_size { ", size INTEGER" } else { "" },
                if with_size { 4 } else { 1 }
            ))
            .unwrap();
            let cp = file_checkpoint();
            c.execute(
                "INSERT INTO checkpoints (path, role, dev, ino, fp_len, fp_hash, offset, updated) VALUES (?1, 'current', ?2, ?3, ?4, ?5, ?6, 'then')",
                params![
                    cp.path.to_string_lossy(),
                    cp.id.dev as i64,
                    cp.id.ino as i64,
                    cp.fingerprint.len as i64,
                    cp.fingerprint.hash as i64,
                    cp.offset as i64
                ],
            )
            .unwrap();
            drop(c);
            let (s, new) = State::open(dir.path()).unwrap();
            assert!(!new, "an upgraded state is not a first run");
            let saved = s.checkpoints().unwrap();
            let back = crate::source::file::decode(
                &cp.path,
                crate::source::file::KIND,
                &saved[&*cp.path.to_string_lossy()],
            )
            .unwrap();
            assert_eq!(
                back,
                vec![crate::source::tail::Checkpoint { size: None, ..cp }]
            );
            assert!(s.is_done("/alb", "a_20240501T1205Z_b.log.gz").unwrap());
            assert!(!has_table(s.conn(), "checkpoints").unwrap());
            assert!(!has_table(s.conn(), "alb_objects").unwrap());
            let v: i64 = s
                .conn()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let err = State::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("newer gatewatch"), "{err}");
    }
}

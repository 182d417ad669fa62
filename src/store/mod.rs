//! The daemon's state: one SQLite file (`gatewatch.db` in the state directory) that a user can
//! open with `sqlite3`. It holds where reading stopped in every file and the counters the lines
//! added; both are written in one transaction, so after a crash or `kill -9` every line counts
//! exactly once: lines read after the last commit are read again, and their counts were never
//! committed.

pub mod history;
pub mod journal;
pub mod outbox;

use crate::engine::event::Cause;
use crate::source::tail::{Checkpoint, FileId, Fingerprint, Role};
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
const ADDED_COLUMNS: [(&str, &str, &str); 1] = [("checkpoints", "size", "INTEGER")];

/// Brings the tables of an older state file up to this schema.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, decl) in ADDED_COLUMNS {
        let has = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists(params![column])?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// Pages the write-ahead log may hold before SQLite copies it back into the database
/// (about 1 MiB of 4 KiB pages).
const WAL_PAGES: i64 = 256;
/// The size the write-ahead log is cut back to after it was copied back, and past which a
/// commit copies it back and empties it at once.
const WAL_LIMIT: u64 = 1 << 20;

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    path      TEXT    NOT NULL,   -- the configured path being followed
    role      TEXT    NOT NULL,   -- 'current', or 'draining' for a rotated-away file
    dev       INTEGER NOT NULL,
    ino       INTEGER NOT NULL,
    fp_len    INTEGER NOT NULL,   -- bytes of the file's start that identify it
    fp_hash   INTEGER NOT NULL,   -- FNV-1a of those bytes
    offset    INTEGER NOT NULL,   -- just after the last line read
    updated   TEXT    NOT NULL,
    size      INTEGER,            -- the file's length then (NULL: unknown)
    PRIMARY KEY (path, dev, ino)
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
CREATE TABLE IF NOT EXISTS alb_objects (
    source    TEXT    NOT NULL,   -- the configured folder (or bucket)
    object    TEXT    NOT NULL,   -- the object's path below it
    size      INTEGER NOT NULL,
    lines     INTEGER NOT NULL,   -- -1: there before the first run, not read
    processed TEXT    NOT NULL,
    PRIMARY KEY (source, object)
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
    data        TEXT    NOT NULL      -- the incident as JSON, to take it back after a restart
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
    created_by  TEXT
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

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Current => "current",
        Role::Draining => "draining",
    }
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
        let conn = Connection::open(&path)
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
        migrate(&conn).with_context(|| format!("upgrading the tables in {}", path.display()))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_ms', ?1)",
            params![chrono::Utc::now().timestamp_millis().to_string()],
        )?;
        // New: nothing was ever recorded (a first run killed before its first commit counts
        // as new too).
        let mut new = !existed;
        if existed {
            new = true;
            for table in ["checkpoints", "counters", "alb_objects"] {
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

    /// Every saved checkpoint.
    pub fn checkpoints(&self) -> anyhow::Result<Vec<Checkpoint>> {
        let mut stmt = self.conn.prepare(
            "SELECT path, role, dev, ino, fp_len, fp_hash, offset, size FROM checkpoints ORDER BY path, role",
        )?;
        let rows = stmt.query_map([], |r| {
            let role: String = r.get(1)?;
            Ok(Checkpoint {
                path: PathBuf::from(r.get::<_, String>(0)?),
                role: if role == "current" {
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
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records, in one transaction, where reading stands for the given paths (replacing what
    /// was saved for them) and the counts of the lines read since the last commit.
    pub fn commit(
        &mut self,
        paths: &[&Path],
        checkpoints: &[Checkpoint],
        counters: &mut Counters,
        sources: &[String],
        alerts: Option<(&Alerting<'_>, &[Notice])>,
    ) -> anyhow::Result<()> {
        let now = chrono::Utc::now().to_rfc3339();
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM checkpoints WHERE path = ?1")?;
            for p in paths {
                del.execute(params![p.to_string_lossy()])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO checkpoints (path, role, dev, ino, fp_len, fp_hash, offset, updated, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for c in checkpoints {
                ins.execute(params![
                    c.path.to_string_lossy(),
                    role_name(c.role),
                    c.id.dev as i64,
                    c.id.ino as i64,
                    c.fingerprint.len as i64,
                    c.fingerprint.hash as i64,
                    c.offset as i64,
                    now,
                    c.size.map(|n| n as i64),
                ])?;
            }
        }
        finish(tx, &self.path, counters, sources, alerts)?;
        keep_wal_small(&self.conn, &self.path);
        Ok(())
    }

    /// Whether an ALB object was processed (or skipped on the first run).
    pub fn alb_seen(&self, source: &str, object: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM alb_objects WHERE source = ?1 AND object = ?2")?
            .query_row(params![source, object], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Where listing a bucket may start: the last object processed more than an hour ago (S3
    /// lists in key order; objects can arrive late, so the last hour is listed again).
    pub fn alb_offset(&self, source: &str) -> anyhow::Result<Option<String>> {
        let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MAX(object) FROM alb_objects WHERE source = ?1 AND processed < ?2",
            )?
            .query_row(params![source, hour_ago], |r| r.get::<_, Option<String>>(0))?)
    }

    /// Records ALB objects as processed together with the counts their lines added, in one
    /// transaction: an object is counted once, or (after a crash) not yet.
    pub fn commit_alb(
        &mut self,
        source: &str,
        objects: &[(String, u64, i64)],
        counters: &mut Counters,
        sources: &[String],
        alerts: Option<(&Alerting<'_>, &[Notice])>,
    ) -> anyhow::Result<()> {
        let now = chrono::Utc::now().to_rfc3339();
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO alb_objects (source, object, size, lines, processed) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (object, size, lines) in objects {
                ins.execute(params![source, object, *size as i64, lines, now])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_and_counters_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, new) = State::open(dir.path()).unwrap();
        assert!(new);
        let cp = Checkpoint {
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
        };
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
        s.commit(
            &[&cp.path],
            std::slice::from_ref(&cp),
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
        s.commit(
            &[&cp.path],
            std::slice::from_ref(&cp),
            &mut counters,
            &sources,
            None,
        )
        .unwrap();
        drop(s);
        let (s, new) = State::open(dir.path()).unwrap();
        assert!(!new);
        assert_eq!(s.checkpoints().unwrap(), vec![cp]);
        assert_eq!(
            s.counts_by_cause("access").unwrap(),
            [
                ("ok".to_string(), 1),
                ("upstream_unreachable".to_string(), 4)
            ]
        );
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

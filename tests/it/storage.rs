//! The state file in trouble: damaged, or on a disk that fills up. The daemon never crash-loops
//! and never goes quiet: a damaged file is moved aside and a fresh one started; while the disk
//! is full, alerts go out from memory, and once there is room again they are recorded as sent
//! (not sent twice).

use super::daemon::wait_for;
use super::delivery::{burst, daemon_config, db, hook_channel, start_seen, write};
use super::receiver::Receiver;
use super::*;
use std::time::Duration;

fn hook_config(dir: &Path, hook: &Receiver) -> PathBuf {
    write(
        dir,
        "gatewatch.toml",
        &daemon_config(dir, &hook_channel(hook)),
    )
}

/// Files in the state folder whose name starts with `gatewatch.db.corrupt-`.
fn moved_aside(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("gatewatch.db.corrupt-")
                && !p.to_string_lossy().ends_with("-wal")
                && !p.to_string_lossy().ends_with("-shm")
        })
        .collect()
}

#[test]
fn a_state_file_that_is_no_database_is_moved_aside_and_alerts_still_go() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let garbage = b"this was a disk sector of something else entirely\n".repeat(200);
    std::fs::write(dir.path().join("state/gatewatch.db"), &garbage).unwrap();
    let (_d, rx, seen) = start_seen(&cfg, &[]);
    assert!(
        seen.iter()
            .any(|l| l.contains("the state file is corrupt: moved aside")),
        "{seen:#?}"
    );
    let aside = moved_aside(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "kept as it was");
    burst(dir.path(), "10.0.9.9:9000", 25);
    wait_for(&rx, "incident opened", Duration::from_secs(10));
    let got = hook.wait_for_ok(1, Duration::from_secs(10));
    assert_eq!(got[0].json()["kind"], "opened");
}

#[test]
fn a_state_file_with_damaged_pages_is_moved_aside_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    // A first run writes a real state; its tables are then damaged on disk.
    {
        let (mut d, rx, _) = start_seen(&cfg, &[]);
        burst(dir.path(), "10.0.9.9:9000", 25);
        wait_for(&rx, "incident opened", Duration::from_secs(10));
        hook.wait_for_ok(1, Duration::from_secs(10));
        let kill = Command::new("kill")
            .args(["-TERM", &d.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        d.0.wait().unwrap();
    }
    let path = dir.path().join("state/gatewatch.db");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() >= 4 * 4096, "{} bytes", bytes.len());
    // Every page but the first (the schema) overwritten with noise.
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1];
    }
    std::fs::write(&path, &bytes).unwrap();
    let (_d, rx, seen) = start_seen(&cfg, &[]);
    assert!(
        seen.iter()
            .any(|l| l.contains("the state file is corrupt: moved aside")),
        "{seen:#?}"
    );
    assert_eq!(moved_aside(dir.path()).len(), 1);
    // The fresh state reads the log again from the beginning (start_at = "beginning") and
    // finds the incident again; the delivery journal beside the state says its alert went out,
    // so it is recorded as sent under that id, not announced again (regression: it was). The
    // resolved note, never sent, follows.
    let _still_reading = rx;
    let got = hook.wait_for_ok(2, Duration::from_secs(15));
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["opened", "resolved"], "{got:#?}");
    let first_id = got[0].header("x-gatewatch-delivery").unwrap().to_string();
    let (state, id, why): (String, String, String) = db(dir.path())
        .query_row(
            "SELECT state, message_id, last_error FROM outbox WHERE kind = 'opened'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), id.as_str()), ("sent", first_id.as_str()));
    assert!(why.contains("delivery journal"), "{why}");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(hook.requests().len(), 2, "{:#?}", hook.requests());
    // The fresh state is whole.
    let check: String = db(dir.path())
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// A small tmpfs mounted for the test, unmounted however the test ends.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at` for `test`; `None` (after saying exactly what is
    /// missing: root, or a `mount` that may mount, and failing in CI) when it cannot.
    pub fn mount(at: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !root {
            skip_or_fail(&format!(
                "the {test} mounts a small tmpfs, which needs root (run the tests as root)"
            ));
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                skip_or_fail(&format!(
                    "the {test} mounts a small tmpfs, and `mount -t tmpfs` failed: {} (a container without CAP_SYS_ADMIN?)",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                None
            }
            Err(e) => {
                skip_or_fail(&format!(
                    "the {test} mounts a small tmpfs, and the mount command could not run: {e}"
                ));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills a file system: writes until it is full.
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x55u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.flush();
}

#[test]
fn with_the_disk_full_alerts_go_from_memory_and_are_recorded_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(&dir.path().join("state"), "4m", "full-disk test") else {
        return;
    };
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    let (_d, rx, _) = start_seen(&cfg, &[]);
    // The state's file system fills up (another program's log, say).
    let filler = dir.path().join("state/filler");
    fill(&filler);
    burst(dir.path(), "10.0.9.9:9000", 25);
    let log = wait_for(
        &rx,
        "alerts handed to the sender from memory",
        Duration::from_secs(15),
    );
    assert!(
        log.iter()
            .any(|l| l.contains("cannot save the state") && l.contains("full")),
        "{log:#?}"
    );
    // The alert arrives although nothing can be written; the incident ends (the burst is
    // over) and its resolved note arrives too, still from memory.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut log = log;
    while hook.requests().iter().filter(|r| r.status < 300).count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the alert and the resolved note did not arrive; daemon log:\n{}",
            log.join("\n")
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push(l);
        }
    }
    let got = hook.requests();
    assert_eq!(got[0].json()["kind"], "opened");
    assert_eq!(got[1].json()["kind"], "resolved");
    assert_eq!(got[0].json()["incidents"][0]["upstream"], "10.0.9.9:9000");
    // Room again: the state catches up and records both as sent from memory.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        &rx,
        "the state can be written again",
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        hook.requests().len(),
        2,
        "nothing is sent twice: {:#?}",
        hook.requests()
    );
    let rows: Vec<(String, String, Option<String>)> = db(dir.path())
        .prepare("SELECT kind, state, message_id FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let kinds: Vec<(&str, &str)> = rows
        .iter()
        .map(|(k, s, _)| (k.as_str(), s.as_str()))
        .collect();
    assert_eq!(kinds, [("opened", "sent"), ("resolved", "sent")]);
    // Recorded with the ids the messages went out with (a later mail refers to them).
    let ids: Vec<String> = rows.iter().map(|r| r.2.clone().unwrap()).collect();
    assert!(
        ids.iter()
            .all(|id| id.starts_with("gw-") && id.ends_with("-mem-hook")),
        "{ids:?}"
    );
    assert_ne!(ids[0], ids[1]);
    for (id, req) in ids.iter().zip(hook.requests().iter()) {
        assert_eq!(req.header("x-gatewatch-delivery"), Some(id.as_str()));
    }
    let (closed, failures): (Option<i64>, i64) = db(dir.path())
        .query_row(
            "SELECT closed_ms, failures FROM incidents WHERE upstream = '10.0.9.9:9000'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(closed.is_some());
    assert_eq!(failures, 25);
}

#[test]
fn a_state_folder_gone_read_only_runs_on_a_fallback_copy_and_keeps_alerting() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(_fs) = Tmpfs::mount(&state, "4m", "read-only test") else {
        return;
    };
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    let http = super::upstreams::free_port();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[http]\nlisten = \"{http}\"\n"));
    std::fs::write(&cfg, text).unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let env = [("RUNTIME_DIRECTORY", run.to_str().unwrap())];
    // A first run alerts on one upstream and stops with the incident open.
    {
        let (mut d, rx, _) = start_seen(&cfg, &env);
        burst(dir.path(), "10.0.9.1:9000", 25);
        wait_for(&rx, "incident opened", Duration::from_secs(10));
        hook.wait_for_ok(1, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(500));
        let kill = Command::new("kill")
            .args(["-TERM", &d.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        d.0.wait().unwrap();
    }
    // The state's file system goes read-only; gatewatch starts anyway, on a copy.
    let ro = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(ro.success());
    let (_d, rx, seen) = start_seen(&cfg, &env);
    assert!(
        seen.iter()
            .any(|l| l.contains("running on a fallback state")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("incident still open")),
        "the copy knows the open incident: {seen:#?}"
    );
    assert!(run.join("gatewatch-fallback-state/gatewatch.db").exists());
    // /health says so (regression: it said 200 "ok" on a fallback state).
    let (code, body) = super::daemon::http_get(http, "/health");
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("degraded: "), "{body}");
    // A new burst alerts; the old incident ends with its resolved note; nothing twice.
    burst(dir.path(), "10.0.9.2:9000", 25);
    let _still_reading = rx;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let kinds = loop {
        let got = delivered_kinds(&hook.requests());
        if got.len() >= 4 || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let count = |k: &str, u: &str| kinds.iter().filter(|(a, b)| a == k && b == u).count();
    assert_eq!(count("opened", "10.0.9.1:9000"), 1, "{kinds:?}");
    assert_eq!(count("resolved", "10.0.9.1:9000"), 1, "{kinds:?}");
    assert_eq!(count("opened", "10.0.9.2:9000"), 1, "{kinds:?}");
    assert_eq!(count("resolved", "10.0.9.2:9000"), 1, "{kinds:?}");

    // The folder is writable again: the next start takes the fallback back, so nothing it
    // read is read again and nothing it sent is sent again (regression: 7 POSTs for 4
    // notifications, under ids reused for other messages).
    let mut d = _d;
    let _ = Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status();
    d.0.wait().unwrap();
    let rw = Command::new("mount")
        .args(["-o", "remount,rw"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(rw.success());
    let (_d, rx, seen) = start_seen(&cfg, &env);
    assert!(
        seen.iter()
            .any(|l| l.contains("took back the fallback state")),
        "{seen:#?}"
    );
    assert!(!run.join("gatewatch-fallback-state").exists());
    assert_eq!(super::daemon::http_get(http, "/health").0, 200);
    burst(dir.path(), "10.0.9.3:9000", 25);
    let _still_reading = rx;
    hook.wait_for_ok(6, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let reqs: Vec<_> = hook
        .requests()
        .into_iter()
        .filter(|r| r.status < 300)
        .collect();
    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in &reqs {
        by_id
            .entry(r.header("x-gatewatch-delivery").unwrap().to_string())
            .or_default()
            .push(r.body.clone());
    }
    for (id, bodies) in &by_id {
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{id}: {bodies:#?}");
    }
    let kinds = delivered_kinds(&reqs);
    for u in ["10.0.9.1:9000", "10.0.9.2:9000", "10.0.9.3:9000"] {
        assert_eq!(count_of(&kinds, "opened", u), 1, "{kinds:?}");
    }
    assert_eq!(reqs.len(), 6, "{kinds:?}");
}

/// (kind, first upstream) of every accepted request.
fn delivered_kinds(reqs: &[super::receiver::Request]) -> Vec<(String, String)> {
    reqs.iter()
        .filter(|r| r.status < 300)
        .map(|r| {
            let j = r.json();
            (
                j["kind"].as_str().unwrap_or("").to_string(),
                j["incidents"][0]["upstream"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn count_of(kinds: &[(String, String)], k: &str, u: &str) -> usize {
    kinds.iter().filter(|(a, b)| a == k && b == u).count()
}

/// A small state disk (2 MB) and many commits: the write-ahead log stays small (regression:
/// it grew to SQLite's 4 MB default before being copied back, filled the disk, and filled it
/// again within seconds of room being made).
#[test]
fn a_small_state_disk_does_not_fill_with_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(_fs) = Tmpfs::mount(&state, "2m", "small-disk test") else {
        return;
    };
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    let (mut d, rx, _) = start_seen(&cfg, &[]);
    let wal = state.join("gatewatch.db-wal");
    let mut largest = 0;
    // About 600 rounds of reading, each committed: lines of 50 upstreams, 20 at a time.
    for round in 0..600u32 {
        let text: String = (0..20)
            .map(|i| {
                super::daemon::access_line(
                    i,
                    200,
                    &format!("10.0.{}.{}:8080", round % 50, i),
                    "0.001",
                )
            })
            .collect();
        super::daemon::append(&dir.path().join("logs/access.log"), &text);
        std::thread::sleep(Duration::from_millis(15));
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let log: Vec<String> = rx.try_iter().collect();
    assert!(
        !log.iter().any(|l| l.contains("cannot save the state")),
        "{log:#?}"
    );
    assert!(
        largest <= 3 << 19,
        "the write-ahead log reached {largest} bytes"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(d.0.wait().unwrap().success());
    let lines: i64 = db(dir.path())
        .query_row("SELECT SUM(count) FROM counters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(lines, 12_000, "every line counted once");
}

/// Killed while the disk is full, right after an alert went out from memory: after the restart
/// the lines are read again and the incident found again, but its alert is not sent a second
/// time — the delivery journal (in the runtime folder, the state's disk being full) says it
/// went out, under which id (regression: it was sent again under a new id).
#[test]
fn killed_with_the_disk_full_an_alert_sent_from_memory_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(&dir.path().join("state"), "4m", "full-disk kill test") else {
        return;
    };
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let env = [("RUNTIME_DIRECTORY", run.to_str().unwrap())];
    let (mut d, rx, _) = start_seen(&cfg, &env);
    let filler = dir.path().join("state/filler");
    fill(&filler);
    burst(dir.path(), "10.0.9.8:9000", 25);
    wait_for(&rx, "alert sent from memory", Duration::from_secs(15));
    let first = hook.wait_for_ok(1, Duration::from_secs(5));
    assert_eq!(first[0].json()["kind"], "opened");
    let _ = Command::new("kill")
        .args(["-KILL", &d.0.id().to_string()])
        .status();
    d.0.wait().unwrap();
    std::fs::remove_file(&filler).unwrap();
    let (_d, rx, _) = start_seen(&cfg, &env);
    let _still_reading = rx;
    hook.wait_for_ok(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1000));
    let got: Vec<String> = hook
        .requests()
        .iter()
        .filter(|r| r.status < 300)
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ["opened", "resolved"], "{got:?}");
    let id = first[0].header("x-gatewatch-delivery").unwrap().to_string();
    let (state, recorded): (String, String) = db(dir.path())
        .query_row(
            "SELECT state, message_id FROM outbox WHERE kind = 'opened'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), recorded.as_str()), ("sent", id.as_str()));
}

/// The state file damaged while gatewatch runs: found within `[state] check_every` and said on
/// `/health` (regression: unnoticed until the next start).
#[test]
fn damage_to_the_state_while_running_is_said_on_health() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    let http = super::upstreams::free_port();
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[state]\n",
        "[state]\ncheck_every = \"1s\"\n",
        1,
    );
    assert!(text.contains("check_every"), "{text}");
    std::fs::write(&cfg, format!("{text}\n[http]\nlisten = \"{http}\"\n")).unwrap();
    let (mut d, rx, _) = start_seen(&cfg, &[]);
    burst(dir.path(), "10.0.9.7:9000", 25);
    wait_for(&rx, "incident opened", Duration::from_secs(10));
    hook.wait_for_ok(1, Duration::from_secs(10));
    assert_eq!(super::daemon::http_get(http, "/health").0, 200);
    // Enough lines that the write-ahead log is copied back into the file (past 1 MiB).
    let path = dir.path().join("state/gatewatch.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut round = 0u32;
    while std::fs::metadata(&path).unwrap().len() < 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the state file stays small"
        );
        let text: String = (0..500)
            .map(|i| {
                super::daemon::access_line(
                    i,
                    200,
                    &format!("10.{}.{}.{}:80", round % 200, i / 250, i % 250),
                    "0.001",
                )
            })
            .collect();
        super::daemon::append(&dir.path().join("logs/access.log"), &text);
        round += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every line read and the incident over (its resolved note sent): nothing left to commit.
    hook.wait_for_ok(2, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(2000));
    // Something writes into the file: every page but the first.
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(len >= 4 * 4096, "{len} bytes");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        let noise: Vec<u8> = (0..len - 4096)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
            .collect();
        f.write_all(&noise).unwrap();
        f.sync_all().unwrap();
    }
    // Nothing is written any more, so no commit finds the damage: the check must.
    let seen = wait_for(
        &rx,
        "the state file is damaged; restart gatewatch",
        Duration::from_secs(10),
    );
    assert!(
        !seen.iter().any(|l| l.contains("cannot save the state")),
        "{seen:#?}"
    );
    // `/health` takes the damage with the round's status, just after the log line.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (code, body) = loop {
        let (code, body) = super::daemon::http_get(http, "/health");
        if code == 503 || std::time::Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 503, "{body} {seen:#?}");
    assert!(body.contains("the state file is damaged"), "{body}");
    let _ = Command::new("kill")
        .args(["-KILL", &d.0.id().to_string()])
        .status();
    d.0.wait().unwrap();
}

/// SIGTERM while the state's disk is full: gatewatch stops at once and cleanly, saying that
/// the lines since the last save will be read again (regression: it exited with "database or
/// disk is full").
#[test]
fn stopped_with_the_disk_full_it_exits_cleanly_and_says_what_happens_next() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(&dir.path().join("state"), "4m", "full-disk stop test") else {
        return;
    };
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = hook_config(dir.path(), &hook);
    let (mut d, rx, _) = start_seen(&cfg, &[]);
    fill(&dir.path().join("state/filler"));
    burst(dir.path(), "10.0.9.6:9000", 25);
    wait_for(&rx, "cannot save the state", Duration::from_secs(15));
    let kill = Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = d.0.wait().unwrap();
    let log: Vec<String> = rx.iter().collect();
    assert!(status.success(), "{status:?} {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("stopped without saving")),
        "{log:#?}"
    );
}

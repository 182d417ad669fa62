//! gatewatch as a systemd service: the notify protocol spoken over a real `NOTIFY_SOCKET`, a
//! reload that keeps the old configuration when the new one is invalid, and the shipped unit's
//! hardening.

use super::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Collects the datagrams gatewatch sends to `NOTIFY_SOCKET` until `want` arrives.
fn until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within {timeout:?}: {seen:?}");
}

#[test]
fn ready_watchdog_reload_and_stop_are_announced() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("logs/access.log"), "").unwrap();
    let cfg = dir.path().join("gatewatch.toml");
    let good = format!(
        "[[source]]\npath = \"{d}/logs/access.log\"\nformat = \"nginx_access\"\n\n[state]\ndir = \"{d}/state\"\n",
        d = dir.path().display()
    );
    std::fs::write(&cfg, &good).unwrap();
    let child = gatewatch()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("JOURNAL_STREAM", "8:1234")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut proc = Running(child);
    let pid = proc.0.id();
    until(&sock, "READY=1", Duration::from_secs(10));
    until(&sock, "WATCHDOG=1", Duration::from_secs(5));

    // An invalid configuration is refused: the daemon keeps running with the old one.
    std::fs::write(&cfg, "[[source]]\npath = 1\n").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let seen = until(&sock, "READY=1", Duration::from_secs(5));
    assert!(
        seen.iter()
            .any(|m| m.contains("RELOADING=1") && m.contains("MONOTONIC_USEC=")),
        "{seen:?}"
    );
    until(&sock, "WATCHDOG=1", Duration::from_secs(5));

    std::fs::write(&cfg, &good).unwrap();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    until(&sock, "STOPPING=1", Duration::from_secs(5));
    let status = proc.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    use std::io::Read;
    proc.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // Under journald: priority prefixes, no time stamps.
    assert!(err.lines().all(|l| l.starts_with('<')), "{err}");
    assert!(
        err.contains("<3>reload refused; the old configuration keeps running"),
        "{err}"
    );
    assert!(
        err.contains("gatewatch.toml:2: source.path: invalid type"),
        "the refusal names the line: {err}"
    );
}

#[test]
fn the_shipped_unit_is_hardened() {
    let Some(analyze) = require("systemd-analyze") else {
        return;
    };
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/gatewatch.service");
    let o = Command::new(analyze)
        .args(["security", "--offline=true", unit])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("exposure level for gatewatch.service: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {out}"));
    assert!(score <= 2.0, "exposure {score}");
}

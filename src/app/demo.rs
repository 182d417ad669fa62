//! `gatewatch demo`: the real daemon at work, in a temporary folder. It follows an nginx
//! access log and error log there, a writer plays about twenty seconds of traffic into them in real time —
//! healthy, then an upstream that refuses connections, then healthy again — and the console
//! shows the alert gatewatch raises and the resolved note that follows.

use crate::app::config::{Config, SourceConfig, SourceKind, StartAt};
use crate::app::daemon::Daemon;
use crate::engine::detect::Change;
use crate::engine::event::Format;
use crate::engine::kb::Kb;
use crate::engine::synth::{Burst, Synth, SynthConfig};
use crate::engine::time::Zone;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RATE: u32 = 40;
const HEALTHY_SECS: u32 = 4;
const BURST_SECS: u32 = 6;

fn config(dir: &Path) -> Config {
    let source = |name: &str, format| SourceConfig {
        kind: SourceKind::Log {
            path: dir.join(name).display().to_string(),
            format,
        },
        log_format: (format == Format::NginxAccess).then(|| {
            crate::engine::parse::LogFormat::from_directive(crate::engine::synth::LOG_FORMAT)
                .expect("compiles")
        }),
        timezone: Zone::Utc,
        start_at: StartAt::Beginning,
        endpoint: None,
        region: None,
    };
    let mut cfg = Config {
        sources: vec![
            source("access.log", Format::NginxAccess),
            source("error.log", Format::NginxError),
        ],
        state_dir: dir.join("state"),
        ..Config::default()
    };
    // Short windows, so the demo resolves within seconds instead of minutes.
    cfg.detect.window_ms = 10_000;
    cfg.detect.quiet_ms = 3_000;
    cfg.detect.close_failures = 1;
    cfg.alerts.group_wait = Duration::from_millis(500);
    cfg
}

/// Runs the demo; `dir` defaults to a new folder under the system's temporary folder.
pub fn run(kb: Arc<Kb>, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("gatewatch-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let access = dir.join("access.log");
    let error = dir.join("error.log");
    std::fs::write(&access, "")?;
    std::fs::write(&error, "")?;
    crate::log::set_max_level(crate::log::Level::Error);
    eprintln!(
        "gatewatch demo: the daemon follows {} and {}",
        access.display(),
        error.display()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let daemon = Daemon::start(&config(&dir), kb, vec![tx])?;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let (access, error) = (access.clone(), error.clone());
        std::thread::spawn(move || write_traffic(&access, &error, &stop))
    };
    let started = Instant::now();
    let mut opened = false;
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Change::Opened(_)) => opened = true,
            Ok(Change::Closed(_)) if opened => break Ok(()),
            Ok(Change::Closed(_)) => {}
            Err(_) if started.elapsed() > Duration::from_secs(90) => {
                break Err(anyhow::anyhow!(
                    "no alert and resolved note within 90 s; the logs are in {}",
                    dir.display()
                ));
            }
            Err(_) => {}
        }
    };
    stop.store(true, Ordering::SeqCst);
    let _ = writer.join();
    // The console channel prints from the outbox: wait for the alert and the resolved note.
    let status = daemon.status();
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(15) {
        let st = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if st
            .tally()
            .alerts
            .get("console")
            .is_some_and(|(sent, _)| *sent >= 2)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.stop()?;
    if result.is_ok() {
        eprintln!(
            "gatewatch demo: done in {} s. The logs and the state (SQLite) stay in {}",
            started.elapsed().as_secs(),
            dir.display()
        );
    }
    result
}

/// Writes traffic in real time: healthy, a burst of refused connections on one upstream, then
/// healthy until stopped.
fn write_traffic(access: &Path, error: &Path, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut synth = Synth::new(SynthConfig {
        start_ms: crate::clock::now_ms(),
        requests_per_sec: RATE,
        burst: Some(Burst {
            start_secs: HEALTHY_SECS,
            duration_secs: BURST_SECS,
            upstream: 0,
            share: 0.9,
        }),
        ..SynthConfig::default()
    });
    let mut a = std::fs::OpenOptions::new().append(true).open(access)?;
    let mut e = std::fs::OpenOptions::new().append(true).open(error)?;
    let start = Instant::now();
    let mut announced = 0;
    for n in 0u64.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Keep pace with the clock: request n belongs at n / RATE seconds.
        let due = Duration::from_millis(n * 1000 / RATE as u64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let secs = (n / RATE as u64) as u32;
        if secs == HEALTHY_SECS && announced == 0 {
            eprintln!("gatewatch demo: upstream 10.0.1.5:8080 stops accepting connections now");
            announced = 1;
        } else if secs == HEALTHY_SECS + BURST_SECS && announced == 1 {
            eprintln!("gatewatch demo: upstream 10.0.1.5:8080 is back");
            announced = 2;
        }
        let g = synth.next_request();
        // nginx writes the error-log line when the connection fails, the access-log line when
        // it answers the client.
        if let Some(line) = &g.error {
            writeln!(e, "{line}")?;
        }
        writeln!(a, "{}", g.access)?;
    }
    Ok(())
}

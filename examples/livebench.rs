//! Live benchmark of the daemon (`gatewatch run` as a real process):
//!
//! * latency from writing the line that completes a burst to the alert on the console (through
//!   the outbox and the sender, with `group_wait = "0s"`: the default 1 s wait for company is a
//!   choice, not a cost), over many bursts, while 20 files take 100,000 lines per second in
//!   total (`LIVEBENCH_RATE` changes it): p50 and p99;
//! * the daemon's CPU while following those 20 files at that rate, and its resident memory;
//! * CPU used while nothing is written (idle).
//!
//! ```text
//! cargo build --release && cargo run --release --example livebench
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::proc_stats;

const FILES: usize = 20;
/// Lines per second over all files, unless `LIVEBENCH_RATE` says otherwise.
const LINES_PER_SEC: u64 = 100_000;
const BURSTS: usize = 60;

fn clf_now() -> String {
    chrono::Utc::now()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string()
}

fn line(i: u64, status: u16, upstream: &str, connect: &str) -> String {
    format!(
        "203.0.{}.{} - - [{}] \"GET /api/v1/orders/{i} HTTP/1.1\" {status} 157 \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\" api.example.com {upstream} {status} {connect} 0.010 0.011 0.012\n",
        i / 256 % 256,
        i % 256,
        clf_now()
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let bin = std::env::var("GATEWATCH_BIN").unwrap_or_else(|_| "target/release/gatewatch".into());
    let dir = std::env::temp_dir().join(format!("gatewatch-livebench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let files: Vec<PathBuf> = (0..FILES)
        .map(|i| dir.join(format!("logs/site{i:02}.access.log")))
        .collect();
    for f in &files {
        std::fs::write(f, "").unwrap();
    }
    let cfg = dir.join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\npath = \"{}/logs/*.access.log\"\nformat = \"nginx_access\"\nlog_format = '{}'\n\n[state]\ndir = \"{}/state\"\n\n[alerts]\ngroup_wait = \"0s\"\n",
            dir.display(),
            gatewatch::engine::parse::nginx_access::GATEWATCH,
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(&bin)
        .args(["run", "--allow-root", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (build it: cargo build --release)"));
    let pid = child.id();
    // Alerts, as (upstream, time seen).
    let (tx, rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains(" ready") {
                let _ = ready_tx.send(());
            }
            if let Some(rest) = l.split("burst: upstream ").nth(1) {
                let up = rest.split(' ').next().unwrap_or("").to_string();
                let _ = tx.send((up, Instant::now()));
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon starts");

    // Idle: nothing written for 10 s.
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, _, _) = proc_stats(pid);
    let idle = Duration::from_secs(10);
    std::thread::sleep(idle);
    let (cpu1, idle_rss, _) = proc_stats(pid);
    let idle_cpu = (cpu1 - cpu0) / idle.as_secs_f64() * 100.0;

    // Background load: LINES_PER_SEC (or LIVEBENCH_RATE) lines per second over 20 files,
    // healthy upstreams.
    let per_sec: u64 = std::env::var("LIVEBENCH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(LINES_PER_SEC);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let loader = {
        let (stop, files, written) = (stop.clone(), files.clone(), written.clone());
        std::thread::spawn(move || {
            let mut outs: Vec<_> = files
                .iter()
                .map(|f| std::fs::OpenOptions::new().append(true).open(f).unwrap())
                .collect();
            let start = Instant::now();
            let mut n: u64 = 0;
            let mut buf = vec![String::new(); FILES];
            while !stop.load(Ordering::Relaxed) {
                // Write in 10 ms slices.
                let due = (start.elapsed().as_secs_f64() * per_sec as f64) as u64;
                while n < due {
                    let f = (n as usize) % FILES;
                    buf[f].push_str(&line(n, 200, &format!("10.1.{f}.{}:8080", n % 4), "0.001"));
                    n += 1;
                }
                for (f, out) in outs.iter_mut().enumerate() {
                    if !buf[f].is_empty() {
                        out.write_all(buf[f].as_bytes()).unwrap();
                        buf[f].clear();
                    }
                }
                written.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    // The daemon's CPU from here to the end of the bursts: following the files at that rate.
    let (load_cpu0, _, _) = proc_stats(pid);
    let load_t0 = Instant::now();

    // Bursts: on a new upstream each time, 9 failures (under the floor of 10), then the line
    // that completes the burst; the latency runs from that write to the alert.
    let mut lat = Vec::new();
    let mut burst_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0])
        .unwrap();
    for b in 0..BURSTS {
        let up = format!("10.9.{}.{}:9000", b / 250, b % 250);
        let mut nine = String::new();
        for i in 0..9 {
            nine.push_str(&line(i, 502, &up, "-"));
        }
        burst_file.write_all(nine.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        burst_file
            .write_all(line(9, 502, &up, "-").as_bytes())
            .unwrap();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok((u, at)) if u == up => {
                    lat.push(at - t0);
                    break;
                }
                Ok(_) => {}
                Err(_) => panic!("no alert for {up}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (load_cpu1, load_rss, peak) = proc_stats(pid);
    let load_secs = load_t0.elapsed().as_secs_f64();
    let written_then = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    let rate = written.load(Ordering::Relaxed);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    lat.sort();
    println!(
        "files followed: {FILES}; background load: {per_sec} lines/s in total ({rate} lines written)"
    );
    let load_cpu = (load_cpu1 - load_cpu0) / load_secs * 100.0;
    println!(
        "daemon CPU while following them ({load_secs:.0} s, {written_then} lines written by then): {load_cpu:.1} % of one core, {:.1} % per 100,000 lines/s",
        load_cpu * 100_000.0 / per_sec as f64
    );
    println!(
        "latency from the completing line to the alert, {BURSTS} bursts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().unwrap().as_secs_f64() * 1000.0
    );
    println!(
        "idle CPU (nothing written for {} s): {idle_cpu:.2} %, RSS {idle_rss} kB",
        idle.as_secs()
    );
    println!("RSS under load: {load_rss} kB (peak {peak} kB)");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

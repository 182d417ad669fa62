//! Hostile input against the daemon (`gatewatch run` as a real process, one per scenario):
//! peak resident memory, and what it counted and dropped, for
//!
//! * 2,000,000 failed requests, each to an upstream, host and path never seen before;
//! * one 100 MB line;
//! * 100 MB of NUL bytes without a newline;
//! * 1,000,000 lines of bytes that are not UTF-8;
//! * a log growing at 200 MB/s for 10 s (2 GB).
//!
//! Every scenario ends with 1,000 ordinary lines, which must all be counted: the daemon kept
//! working.
//!
//! ```text
//! cargo build --release && cargo run --release --example stressbench
//! ```

#[path = "common/mod.rs"]
mod common;
use common::{http_get, metric, proc_stats};

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn clf_now() -> String {
    chrono::Utc::now()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string()
}

/// A line of gatewatch's log_format: a refused upstream (502, never connected) or a healthy one.
fn line(i: u64, failed: bool, upstream: &str, host: &str, path: &str) -> String {
    let (status, connect) = if failed { (502, "-") } else { (200, "0.001") };
    format!(
        "203.0.{}.{} - - [{}] \"GET {path} HTTP/1.1\" {status} 157 \"-\" \"curl/8.5.0\" {host} {upstream} {status} {connect} 0.010 0.011 0.012\n",
        i / 256 % 256,
        i % 256,
        clf_now()
    )
}

fn ordinary(n: u64) -> String {
    (0..n)
        .map(|i| line(i, false, "10.1.0.1:8080", "api.example.com", "/health"))
        .collect()
}

struct Outcome {
    written_lines: u64,
    seconds: f64,
    peak_kib: u64,
    metrics: String,
}

/// Starts a daemon on an empty log, lets `feed` write to it, waits until every line is read
/// (the line counter reaches `lines`), and returns what it used.
fn scenario(
    bin: &str,
    name: &str,
    lines: u64,
    feed: impl FnOnce(&Path, SocketAddr) + Send + 'static,
) -> Outcome {
    let dir = std::env::temp_dir().join(format!("gatewatch-stress-{}-{name}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let log = dir.join("logs/access.log");
    std::fs::write(&log, "").unwrap();
    let http: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = dir.join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\npath = \"{}\"\nformat = \"nginx_access\"\nlog_format = '{}'\n\n[state]\ndir = \"{}/state\"\n\n[http]\nlisten = \"{http}\"\n",
            log.display(),
            gatewatch::engine::parse::nginx_access::GATEWATCH,
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin)
        .args(["run", "--allow-root", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (build it: cargo build --release)"));
    let pid = child.id();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let err = child.stderr.take().unwrap();
    let logged = std::thread::spawn(move || {
        let mut warnings = Vec::new();
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains(" ready") {
                let _ = ready_tx.send(());
            }
            if l.contains("WARN") || l.contains("ERROR") {
                warnings.push(l);
            }
        }
        warnings
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon starts");
    let start = Instant::now();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || feed(&log, http))
    };
    writer.join().unwrap();
    let key = format!("gatewatch_lines_total{{file=\"{}\"}}", log.display());
    let deadline = Instant::now() + Duration::from_secs(600);
    let metrics = loop {
        let m = http_get(http, "/metrics");
        if metric(&m, &key) >= lines || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seconds = start.elapsed().as_secs_f64();
    let (_, _, peak_kib) = proc_stats(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let warnings = logged.join().unwrap_or_default();
    for w in warnings.iter().take(3) {
        eprintln!("  {name}: {w}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        written_lines: lines,
        seconds,
        peak_kib,
        metrics,
    }
}

fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn main() {
    let bin = std::env::var("GATEWATCH_BIN").unwrap_or_else(|_| "target/release/gatewatch".into());
    let mut rows = Vec::new();

    let distinct: u64 = 2_000_000;
    let o = scenario(&bin, "distinct", distinct + 1000, move |log, _| {
        let mut buf = String::with_capacity(8 << 20);
        for i in 0..distinct {
            let up = format!(
                "10.{}.{}.{}:{}",
                i >> 24,
                (i >> 16) & 255,
                (i >> 8) & 255,
                1 + (i & 255)
            );
            buf.push_str(&line(
                i,
                true,
                &up,
                &format!("h{i}.example.com"),
                &format!("/p/{i}"),
            ));
            if buf.len() > 4 << 20 {
                append(log, buf.as_bytes());
                buf.clear();
            }
        }
        buf.push_str(&ordinary(1000));
        append(log, buf.as_bytes());
    });
    rows.push(("2,000,000 failures, each a new upstream, host and path", o));

    let o = scenario(&bin, "longline", 1 + 1000, |log, _| {
        let mut big = vec![b'x'; 100 << 20];
        big.push(b'\n');
        append(log, &big);
        append(log, ordinary(1000).as_bytes());
    });
    rows.push(("one 100 MB line", o));

    let o = scenario(&bin, "nul", 1 + 1000, |log, _| {
        append(log, &vec![0u8; 100 << 20]);
        append(log, b"\n");
        append(log, ordinary(1000).as_bytes());
    });
    rows.push(("100 MB of NUL bytes, no newline", o));

    let junk_lines: u64 = 1_000_000;
    let o = scenario(&bin, "utf8", junk_lines + 1000, move |log, _| {
        let mut buf = Vec::with_capacity(8 << 20);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..junk_lines {
            for _ in 0..120 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = (x as u8) | 0x80; // never a newline, never ASCII
                buf.push(b);
            }
            buf.push(b'\n');
            if buf.len() > 4 << 20 {
                append(log, &buf);
                buf.clear();
            }
        }
        append(log, &buf);
        append(log, ordinary(1000).as_bytes());
    });
    rows.push(("1,000,000 lines that are not UTF-8", o));

    // 200 MB/s for 10 s: 1 MB of ordinary lines every 5 ms.
    let chunk = ordinary(4000);
    let per_chunk = 4000u64;
    let chunks = (2000u64 << 20) / chunk.len() as u64;
    let o = scenario(&bin, "rate", chunks * per_chunk + 1000, move |log, _| {
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        let start = Instant::now();
        let bytes_per_sec = 200u64 << 20;
        for k in 0..chunks {
            let due =
                Duration::from_secs_f64((k * chunk.len() as u64) as f64 / bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            f.write_all(chunk.as_bytes()).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "  rate: wrote {:.0} MB in {secs:.1} s ({:.0} MB/s)",
            (chunks * chunk.len() as u64) as f64 / 1e6,
            (chunks * chunk.len() as u64) as f64 / 1e6 / secs
        );
        f.write_all(ordinary(1000).as_bytes()).unwrap();
    });
    rows.push(("a log growing at 200 MB/s for 10 s", o));

    println!(
        "| scenario | lines counted / written | read in | peak RSS | over-long | unparsed | upstreams tracked / evicted | pooled in (other) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, o) in &rows {
        let m = &o.metrics;
        let counted = m
            .lines()
            .find(|l| l.starts_with("gatewatch_lines_total{"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("?");
        let of = |prefix: &str| {
            m.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("?")
                .to_string()
        };
        println!(
            "| {name} | {counted} / {} | {:.1} s | {:.1} MiB | {} | {} | {} / {} | {} |",
            o.written_lines,
            o.seconds,
            o.peak_kib as f64 / 1024.0,
            of("gatewatch_overlong_lines_total{"),
            of("gatewatch_unparsed_lines_total{"),
            of("gatewatch_upstreams_tracked "),
            of("gatewatch_upstreams_evicted_total "),
            of("gatewatch_upstreams_pooled_lines_total "),
        );
    }
}

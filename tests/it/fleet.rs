//! Issue 16's fleet, end to end, with real parts only: a real nginx in front of an upstream
//! that dies; rsyslog (`imfile` + `omkafka`, Debian's rsyslog-kafka) ships nginx's access and
//! error logs to a Kafka topic keyed by host; two `gatewatch run` instances read the topic in
//! one consumer group and alert through a real Alertmanager (Debian's
//! prometheus-alertmanager), whose webhook notifications a receiver records. The instance that
//! reads the host's partition is SIGKILLed in the middle of the incident.
//!
//! rsyslog runs with the librdkafka of PyPI's confluent-kafka wheel (2.16, in scripts/test.sh's
//! virtual environment) instead of Debian's 2.0.2, which cannot read the broker's ApiVersions
//! answer; omkafka is unchanged.

use super::daemon::{http_get, unsafe_kill, wait_for};
use super::delivery::{db, start_seen, write};
use super::kafka::{Broker, counted};
use super::receiver::Receiver;
use super::upstreams::{Killable, free_port, get, wait_for_port};
use super::*;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A folder holding `librdkafka.so.1` from the confluent-kafka wheel, for rsyslog.
fn wheel_librdkafka(dir: &Path) -> Option<PathBuf> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/lib");
    let so = std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .filter_map(|d| std::fs::read_dir(d.path().join("site-packages/confluent_kafka.libs")).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("librdkafka-"))
        })?;
    let out = dir.join("rdkafka-lib");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(so, out.join("librdkafka.so.1")).unwrap();
    Some(out)
}

struct Alertmanager {
    addr: SocketAddr,
    _proc: Running,
}

impl Alertmanager {
    /// Groups by upstream and entry, as the README's fleet route does; notifies the hook at
    /// once (1 s), resolved notes too.
    fn start(bin: &Path, dir: &Path, hook: SocketAddr) -> Alertmanager {
        let conf = write(
            dir,
            "alertmanager.yml",
            &format!(
                "route:\n  receiver: hook\n  group_by: [alertname, upstream, entry]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{hook}/am\n        send_resolved: true\n"
            ),
        );
        let addr = free_port();
        let proc = Command::new(bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("alertmanager starts");
        let proc = Running(proc);
        assert!(wait_for_port(addr), "alertmanager did not listen");
        Alertmanager { addr, _proc: proc }
    }
}

/// nginx in front of one upstream, its logs in `dir`.
fn nginx(bin: &Path, dir: &Path, upstream: SocketAddr) -> (SocketAddr, Running) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let listen = free_port();
    let d = dir.display();
    let conf = write(
        dir,
        "nginx.conf",
        &format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log error;\nevents {{ worker_connections 256; }}\nhttp {{\n{temp}\n    log_format gatewatch '{format}';\n    access_log {d}/access.log gatewatch;\n    proxy_connect_timeout 2s;\n    server {{\n        listen {listen};\n        server_name api.example.com;\n        location / {{ proxy_pass http://{upstream}; }}\n    }}\n}}\n",
            temp = super::real_nginx::temp_paths(dir),
            format = gatewatch::engine::parse::nginx_access::GATEWATCH,
        ),
    );
    let child = Command::new(bin)
        .args(["-p", &format!("{d}/"), "-c", conf.to_str().unwrap()])
        .args(["-e", &format!("{d}/error.log")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let child = Running(child);
    assert!(wait_for_port(listen), "nginx did not listen");
    (listen, child)
}

/// rsyslog following nginx's two logs and producing them to the topic, keyed by the host.
fn rsyslog(bin: &Path, dir: &Path, lib: &Path, broker: SocketAddr, logs: &Path) -> Running {
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let l = logs.display();
    let action = format!(
        "action(type=\"omkafka\" broker=[\"{broker}\"] topic=\"fleet\" key=\"edge-1\" template=\"envelope\" confParam=[\"queue.buffering.max.ms=5\", \"socket.timeout.ms=10000\"])"
    );
    let conf = write(
        dir,
        "rsyslog.conf",
        &format!(
            r#"global(workDirectory="{w}")
module(load="imfile")
module(load="omkafka")
template(name="envelope" type="list" option.jsonf="on") {{
  property(outname="host" name="$!host" format="jsonf")
  property(outname="file" name="$!metadata!filename" format="jsonf")
  property(outname="format" name="$!format" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}}
input(type="imfile" File="{l}/access.log" Tag="nginx-access" addMetadata="on" ruleset="access")
input(type="imfile" File="{l}/error.log" Tag="nginx-error" addMetadata="on" ruleset="error")
ruleset(name="access") {{
  set $!host = "edge-1";
  set $!format = "nginx_access";
  {action}
}}
ruleset(name="error") {{
  set $!host = "edge-1";
  set $!format = "nginx_error";
  {action}
}}
"#,
            w = work.display(),
        ),
    );
    let child = Command::new(bin)
        .args(["-n", "-f", conf.to_str().unwrap()])
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .env("LD_LIBRARY_PATH", lib)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd starts");
    Running(child)
}

fn instance_config(dir: &Path, broker: SocketAddr, am: SocketAddr, http: SocketAddr) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    write(
        dir,
        "gatewatch.toml",
        &format!(
            r#"[[source]]
kind = "kafka"
brokers = "{broker}"
topic = "fleet"
group = "edge-fleet"
payload = "json"
log_format = '{lf}'
timezone = "UTC"
start_at = "beginning"
session_timeout = "6s"

[state]
dir = "{d}/state"

[http]
listen = "{http}"

[detect]
window = "5s"
quiet = "2s"
close_failures = 1

[alerts]
group_wait = "300ms"
retry_min = "200ms"
retry_max = "1s"
renotify = "off"

[[channel]]
name = "am"
kind = "webhook"
format = "alertmanager"
url = "http://{am}/api/v2/alerts"
"#,
            d = dir.display(),
            lf = gatewatch::engine::parse::nginx_access::GATEWATCH,
        ),
    )
}

/// Partitions the instance says it holds on `/metrics` (None while it does not answer).
fn assigned(http: SocketAddr) -> Option<u32> {
    let (code, m) = http_get(http, "/metrics");
    (code == 200).then(|| {
        m.lines()
            .find(|l| l.starts_with("gatewatch_kafka_assigned_partitions{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    })
}

fn lines_in(path: &Path) -> i64 {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count() as i64)
        .unwrap_or(0)
}

/// `n` requests through nginx, `pause` apart (a bounded loop).
fn traffic(nginx: SocketAddr, n: u32, pause: Duration) {
    for _ in 0..n {
        get(nginx, "/api/v1/orders");
        std::thread::sleep(pause);
    }
}

/// Alertmanager's notifications for the upstream: (firing, resolved).
fn notifications(hook: &Receiver, upstream: &str) -> (usize, usize) {
    let mut out = (0, 0);
    for r in hook.requests() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) else {
            continue;
        };
        if v["groupLabels"]["upstream"] != upstream {
            continue;
        }
        match v["status"].as_str() {
            Some("firing") => out.0 += 1,
            Some("resolved") => out.1 += 1,
            _ => {}
        }
    }
    out
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_fleet_survives_an_instance_killed_mid_incident_with_one_alert_and_one_resolve() {
    let (Some(nginx_bin), Some(rsyslogd), Some(am_bin)) = (
        require("nginx"),
        require("rsyslogd"),
        require("prometheus-alertmanager"),
    ) else {
        return;
    };
    let omkafka = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so");
    if !available("rsyslog's omkafka (rsyslog-kafka)", omkafka.exists()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(lib) = wheel_librdkafka(dir.path()) else {
        available("librdkafka from the confluent-kafka wheel", false);
        return;
    };
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.topic("fleet", 4);
    let hook = Receiver::start(free_port());
    let am = Alertmanager::start(&am_bin, dir.path(), hook.addr);
    let mut upstream = Killable::start();
    let logs = dir.path().join("nginx");
    std::fs::create_dir_all(&logs).unwrap();
    let (proxy, _nginx) = nginx(&nginx_bin, &logs, upstream.addr);
    let _rsyslog = rsyslog(&rsyslogd, dir.path(), &lib, broker.addr, &logs);

    let dirs = [dir.path().join("a"), dir.path().join("b")];
    let https = [free_port(), free_port()];
    let cfgs: Vec<PathBuf> = (0..2)
        .map(|i| instance_config(&dirs[i], broker.addr, am.addr, https[i]))
        .collect();
    let mut procs: Vec<Option<Running>> = Vec::new();
    let mut logs_rx = Vec::new();
    for cfg in &cfgs {
        let (d, rx, _) = start_seen(cfg, &[]);
        procs.push(Some(d));
        logs_rx.push(rx);
    }
    // The group shares the four partitions.
    wait_until("a shared assignment", Duration::from_secs(60), || {
        assigned(https[0]).unwrap_or(0) + assigned(https[1]).unwrap_or(0) == 4
            && assigned(https[0]) != Some(4)
            && assigned(https[1]) != Some(4)
    });

    // Healthy traffic: only the instance holding edge-1's partition counts it.
    traffic(proxy, 40, Duration::from_millis(20));
    wait_until("the healthy lines counted", Duration::from_secs(30), || {
        counted(&dirs[0]) + counted(&dirs[1]) == lines_in(&logs.join("access.log"))
    });
    let owner = if counted(&dirs[0]) > 0 { 0 } else { 1 };
    let other = 1 - owner;
    assert_eq!(counted(&dirs[other]), 0, "one instance reads edge-1");

    // The upstream dies: the owner alerts, Alertmanager notifies.
    upstream.kill();
    let up = upstream.addr.to_string();
    traffic(proxy, 40, Duration::from_millis(25));
    wait_for(&logs_rx[owner], "incident opened", Duration::from_secs(20));
    wait_until(
        "Alertmanager's firing notification",
        Duration::from_secs(20),
        || notifications(&hook, &up).0 >= 1,
    );

    // The owner is killed while failures go on; the other takes its partitions over.
    let mut killed = procs[owner].take().unwrap();
    unsafe_kill(killed.0.id(), "KILL");
    let _ = killed.0.wait();
    let t0 = Instant::now();
    let failing = std::thread::spawn(move || traffic(proxy, 400, Duration::from_millis(25)));
    wait_until("the takeover", Duration::from_secs(60), || {
        assigned(https[other]) == Some(4)
    });
    let takeover = t0.elapsed();
    // It starts counting where the group stands (the killed instance counted the rest), reads
    // the partition's last minutes again (uncounted), and recognises the incident as the one
    // already announced.
    let seen = wait_for(&logs_rx[other], "read again from", Duration::from_secs(10));
    let said = seen.last().unwrap().clone();
    let (partition, group_at) = said
        .split(['"', ',', '='])
        .map(str::trim)
        .find_map(|w| {
            let (p, rest) = w.split_once('@')?;
            let o = rest.strip_suffix(" (group)")?;
            Some((p.parse::<i32>().ok()?, o.parse::<i64>().ok()?))
        })
        .unwrap_or_else(|| panic!("no partition taken at the group's offset in {said}"));
    let mut survivor = seen.clone();
    survivor.extend(wait_for(
        &logs_rx[other],
        "incident recognised",
        Duration::from_secs(20),
    ));
    failing.join().unwrap();
    eprintln!(
        "fleet: takeover {:.1} s after SIGKILL",
        takeover.as_secs_f64()
    );

    // The upstream comes back: the survivor resolves; Alertmanager sends one resolved note.
    upstream.restart();
    traffic(proxy, 40, Duration::from_millis(25));
    survivor.extend(wait_for(
        &logs_rx[other],
        "incident resolved",
        Duration::from_secs(30),
    ));
    wait_until(
        "Alertmanager's resolved notification",
        Duration::from_secs(20),
        || notifications(&hook, &up).1 >= 1,
    );
    // Whatever is still on its way arrives; then one of each, and no line counted twice.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        notifications(&hook, &up),
        (1, 1),
        "Alertmanager notified once firing and once resolved: {:#?}",
        hook.requests()
            .iter()
            .map(|r| r.body.chars().take(300).collect::<String>())
            .collect::<Vec<_>>()
    );
    // Counting: the group hears of an offset before the state saves it, so a SIGKILL between
    // the two leaves that read's lines uncounted — exactly the messages between the killed
    // instance's saved offset and the group's — and none is ever counted twice.
    let written = lines_in(&logs.join("access.log")) + lines_in(&logs.join("error.log"));
    let saved: serde_json::Value = serde_json::from_slice(
        &db(&dirs[owner])
            .query_row(
                "SELECT data FROM source_checkpoints WHERE source = 'kafka:fleet@edge-fleet'",
                [],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .unwrap(),
    )
    .unwrap();
    let state_at = saved["offsets"][partition.to_string()].as_i64().unwrap();
    let lost = group_at - state_at;
    let total = || counted(&dirs[0]) + counted(&dirs[1]);
    wait_until("every line counted", Duration::from_secs(60), || {
        total() >= written - lost
    });
    std::thread::sleep(Duration::from_secs(2));
    eprintln!(
        "fleet: {written} lines written, {} counted ({lost} left by the kill between the two commits)",
        total()
    );
    assert_eq!(
        total(),
        written - lost,
        "every line nginx wrote counted once across both states, but those of the killed read"
    );
    // The survivor's /metrics: the partition it took over, read to its end.
    let lag = format!(
        "gatewatch_kafka_consumer_lag{{source=\"kafka:fleet@edge-fleet\",partition=\"{partition}\"}} 0"
    );
    wait_until("the lag at 0 on /metrics", Duration::from_secs(20), || {
        http_get(https[other], "/metrics").1.contains(&lag)
    });
    // Nothing was announced anew by the survivor: the incident was the killed instance's.
    survivor.extend(logs_rx[other].try_iter());
    assert!(
        !survivor.iter().any(|l| l.contains("incident opened")),
        "{survivor:#?}"
    );
    assert!(
        takeover < Duration::from_secs(30),
        "takeover took {takeover:?}"
    );
}

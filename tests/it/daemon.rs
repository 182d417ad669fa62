//! The daemon following live files: in-process and as a real process, detecting a burst
//! appended to a live log; and killed with SIGKILL again and again while lines are written,
//! after which every line has been counted once and none twice.

use super::*;
use gatewatch::engine::detect::Change;
use rusqlite::Connection;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The time format of nginx's `$time_local`, for now.
fn now_clf() -> String {
    chrono::Utc::now()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string()
}

pub fn access_line(client: u32, status: u16, upstream: &str, connect: &str) -> String {
    format!(
        "203.0.{}.{} - - [{}] \"GET /api/v1/orders HTTP/1.1\" {status} 157 \"-\" \"curl/8.5.0\" api.example.com {upstream} {status} {connect} - 0.000 0.001\n",
        client / 256 % 256,
        client % 256,
        now_clf()
    )
}

pub fn config(dir: &Path, start_at: &str) -> String {
    format!(
        r#"
[[source]]
path = "{d}/logs/access.log"
format = "nginx_access"
log_format = '{lf}'
start_at = "{start_at}"

[state]
dir = "{d}/state"
"#,
        d = dir.display(),
        lf = gatewatch::engine::parse::nginx_access::GATEWATCH,
    )
}

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn in_process_the_daemon_detects_a_burst_in_a_live_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/access.log");
    // Old lines: on the first run an existing file is read from its end, so these are skipped.
    append(&log, &access_line(1, 502, "10.0.1.5:8080", "-").repeat(50));
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &config(dir.path(), "end")).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    super::quiet_in_process_logs();
    let (_reload, reloads) = tokio::sync::mpsc::channel(1);
    let daemon = rt.spawn(gatewatch::app::daemon::run(
        cfg,
        kb,
        vec![tx],
        reloads,
        async {
            let _ = stop_rx.await;
        },
    ));
    std::thread::sleep(Duration::from_millis(300));
    // Healthy traffic, then the upstream refuses connections.
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&access_line(i, 200, "10.0.1.5:8080", "0.001"));
    }
    append(&log, &text);
    std::thread::sleep(Duration::from_millis(300));
    let written = Instant::now();
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&access_line(i, 502, "10.0.1.5:8080", "-"));
    }
    append(&log, &text);
    let change = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an incident opens");
    let latency = written.elapsed();
    let Change::Opened(inc) = change else {
        panic!("{change:?}")
    };
    assert_eq!(inc.upstream, "10.0.1.5:8080");
    assert_eq!(
        inc.cause,
        gatewatch::engine::event::Cause::UpstreamUnreachable
    );
    // Only the new burst counts: the 50 old failures were before the first run.
    assert!(inc.failures <= 30, "{}", inc.failures);
    assert!(latency < Duration::from_secs(3), "{latency:?}");
    stop_tx.send(()).unwrap();
    rt.block_on(daemon).unwrap().unwrap();
    let db = Connection::open(dir.path().join("state/gatewatch.db")).unwrap();
    let counted: i64 = db
        .query_row("SELECT SUM(count) FROM counters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        counted, 70,
        "40 answered and 30 failed requests, the old 50 not at all"
    );
}

/// Starts `gatewatch run`; its standard error is forwarded line by line.
pub fn spawn(cfg: &Path) -> (Running, mpsc::Receiver<String>) {
    let mut child = gatewatch()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Running(child), rx)
}

pub fn wait_for(rx: &mpsc::Receiver<String>, what: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains(what);
                seen.push(l);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {what:?} within {timeout:?}; saw:\n{}", seen.join("\n"));
}

/// `GET path` on the daemon's endpoint: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, None)
}

/// One HTTP/1.1 request on loopback, with a form body for a POST: (status code, body).
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    form: Option<&str>,
) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = form.unwrap_or("");
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

#[test]
fn the_daemon_process_alerts_on_the_console_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/access.log");
    let cfg_path = dir.path().join("gatewatch.toml");
    let http = super::upstreams::free_port();
    std::fs::write(
        &cfg_path,
        format!(
            "{}\n[http]\nlisten = \"{http}\"\n",
            config(dir.path(), "beginning")
        ),
    )
    .unwrap();
    let (mut proc, rx) = spawn(&cfg_path);
    wait_for(&rx, "ready", Duration::from_secs(10));
    // A line over the 64 KiB limit first: skipped, and counted as read, unparsed and too long.
    let mut text = "x".repeat(70 * 1024) + "\n";
    for i in 0..25 {
        text.push_str(&access_line(i, 502, "10.0.7.7:9000", "-"));
    }
    append(&log, &text);
    let seen = wait_for(&rx, "=== ALERT ===", Duration::from_secs(10));
    let rest = wait_for(&rx, "Not worth trying", Duration::from_secs(5));
    let all = [seen, rest].concat().join("\n");
    assert!(
        all.contains("502 burst: upstream 10.0.7.7:9000 unreachable"),
        "{all}"
    );
    assert!(all.contains("curl -I http://10.0.7.7:9000/health"), "{all}");
    // The HTTP endpoint: healthy, and the metrics count what was read.
    assert_eq!(http_get(http, "/health"), (200, "ok\n".to_string()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (code, body) = http_get(http, "/metrics");
        assert_eq!(code, 200);
        // The console printed the alert just before the outbox recorded it as sent (the
        // count and the depth change together, after that record).
        let recorded = body.contains("gatewatch_alerts_sent_total{channel=\"console\"} 1")
            && body.contains("gatewatch_outbox_depth 0");
        if body.contains("gatewatch_incidents_open 1") && recorded || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let file = log.display().to_string();
    for want in [
        format!("gatewatch_lines_total{{file=\"{file}\"}} 26"),
        format!("gatewatch_unparsed_lines_total{{file=\"{file}\"}} 1"),
        format!("gatewatch_overlong_lines_total{{file=\"{file}\"}} 1"),
        "gatewatch_events_total{cause=\"upstream_unreachable\"} 25".to_string(),
        "gatewatch_incidents_open 1".to_string(),
        "gatewatch_alerts_sent_total{channel=\"console\"} 1".to_string(),
        "gatewatch_outbox_depth 0".to_string(),
        "gatewatch_up 1".to_string(),
    ] {
        assert!(metrics.contains(&want), "{want} missing from\n{metrics}");
    }
    assert_eq!(http_get(http, "/nothing").0, 404);
    // SIGTERM: positions are saved, exit status 0.
    unsafe_kill(proc.0.id(), "TERM");
    let status = proc.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    wait_for(&rx, "stopped", Duration::from_secs(5));
}

pub fn unsafe_kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

#[test]
fn after_repeated_kill_9_every_line_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/access.log");
    let cfg_path = dir.path().join("gatewatch.toml");
    // Every line names its own upstream: more upstreams than are counted per hour by default.
    std::fs::write(
        &cfg_path,
        config(dir.path(), "beginning") + "\n[detect]\nmax_upstreams = 20000\n",
    )
    .unwrap();
    const LINES: u32 = 12_000;
    // The writer: every line names its own upstream, so the counters show each line's count;
    // the log is rotated (renamed away) every 2,500 lines, as logrotate does.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..LINES {
                if i > 0 && i % 2_500 == 0 {
                    std::fs::rename(&log, log.with_extension(format!("log.{}", i / 2_500)))
                        .unwrap();
                }
                let up = format!("10.{}.{}.{}:80", i / 65_536, i / 256 % 256, i % 256);
                append(&log, &access_line(i, 200, &up, "0.001"));
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(40));
                }
            }
        })
    };
    let mut kills = 0;
    let mut rng = 0x9e37_79b9_u64;
    while !writer.is_finished() && kills < 12 {
        let (mut proc, _rx) = spawn(&cfg_path);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(100 + rng % 400));
        proc.0.kill().unwrap(); // SIGKILL
        proc.0.wait().unwrap();
        kills += 1;
    }
    writer.join().unwrap();
    // The last run reads everything left and stops cleanly.
    let (mut proc, rx) = spawn(&cfg_path);
    wait_for(&rx, "ready", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    unsafe_kill(proc.0.id(), "TERM");
    assert!(proc.0.wait().unwrap().success());
    assert!(kills >= 3, "the daemon was killed only {kills} times");

    let db = Connection::open(dir.path().join("state/gatewatch.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT upstream, SUM(count) FROM counters GROUP BY upstream")
        .unwrap();
    let counts: std::collections::BTreeMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "counted other than once: {:?}",
        &twice[..twice.len().min(10)]
    );
    assert_eq!(counts.len(), LINES as usize, "lines never counted");
}

/// The README's first command: the daemon at work on a minute of generated traffic.
#[test]
fn the_demo_shows_an_alert_then_the_resolved_note() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["demo", "--dir", dir.path().to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let alert = err.find("=== ALERT ===").expect("an alert");
    let resolved = err.find("=== RESOLVED ===").expect("a resolved note");
    assert!(alert < resolved, "{err}");
    assert!(
        err.contains("502 burst: upstream 10.0.1.5:8080 unreachable"),
        "{err}"
    );
    assert!(err.contains("curl -I http://10.0.1.5:8080/health"), "{err}");
    assert!(
        err.contains("Not worth trying (90 % fail): Restart the gateway"),
        "{err}"
    );
}

/// One ALB entry: a 502 the target never answered (`-1` times), or an answered 200.
fn alb_line(t: &str, target: &str, fail: bool) -> String {
    let (times, codes) = if fail {
        ("-1 -1 -1", "502 -")
    } else {
        ("0.000 0.004 0.000", "200 200")
    };
    format!(
        "https {t} app/my-alb/50dc6c495c0c9188 198.51.100.7:4711 {target} {times} {codes} 120 340 \"GET https://shop.example.com:443/cart HTTP/1.1\" \"curl/8.5.0\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop/73e2d6bc24d8a067 \"Root=1-1\" \"shop.example.com\" \"-\" 0 {t} \"forward\" \"-\" \"-\" \"{target}\" \"-\" \"-\" \"-\" TID_0\n"
    )
}

fn write_gz(path: &Path, text: &str) {
    use flate2::write::GzEncoder;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
    // Finished objects: older than the two seconds a download may still be under way.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn alb_objects_in_a_folder_are_read_once_each_merged_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let day = dir
        .path()
        .join("alb/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/05/01");
    let name = |end: &str, node: &str| {
        day.join(format!("123456789012_elasticloadbalancing_us-east-1_app.my-alb.50dc6c495c0c9188_{end}_{node}_abc.log.gz"))
    };
    // There before the first run: not read.
    let mut old = String::new();
    for s in 0..60 {
        old.push_str(&alb_line(
            &format!("2024-05-01T11:59:{s:02}.000000Z"),
            "10.0.0.9:80",
            true,
        ));
    }
    write_gz(&name("20240501T1200Z", "10.0.0.1"), &old);
    let cfg_text = format!(
        "[[source]]\npath = \"{d}/alb\"\nformat = \"alb\"\nstart_at = \"end\"\n\n[state]\ndir = \"{d}/state\"\n",
        d = dir.path().display()
    );
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &cfg_text).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    super::quiet_in_process_logs();
    let d = gatewatch::app::daemon::Daemon::start(&cfg, kb.clone(), vec![]).unwrap();
    d.stop().unwrap();

    // The next slot, from two balancer nodes whose lines interleave in time: the target stops
    // answering at 12:02:00.
    let (mut a, mut b) = (String::new(), String::new());
    for s in 0..240 {
        let t = format!("2024-05-01T12:{:02}:{:02}.000000Z", s / 60, s % 60);
        let line = alb_line(&t, "10.0.0.9:80", s >= 120);
        if s % 2 == 0 {
            a.push_str(&line)
        } else {
            b.push_str(&line)
        }
    }
    write_gz(&name("20240501T1205Z", "10.0.0.1"), &a);
    write_gz(&name("20240501T1205Z", "10.0.0.2"), &b);
    let (tx, rx) = mpsc::channel();
    super::quiet_in_process_logs();
    let d = gatewatch::app::daemon::Daemon::start(&cfg, kb.clone(), vec![tx]).unwrap();
    let Ok(Change::Opened(inc)) = rx.recv_timeout(Duration::from_secs(5)) else {
        panic!("no incident")
    };
    assert_eq!(inc.upstream, "10.0.0.9:80");
    assert_eq!(
        inc.cause,
        gatewatch::engine::event::Cause::UpstreamUnreachable
    );
    // 2024-05-01T12:02:00Z: the first failure, although the two objects were read together.
    assert_eq!(inc.start_ms, 1_714_564_920_000);
    d.stop().unwrap();

    // A restart reads nothing again.
    super::quiet_in_process_logs();
    let d = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![]).unwrap();
    d.stop().unwrap();
    let db = Connection::open(dir.path().join("state/gatewatch.db")).unwrap();
    let counted: i64 = db
        .query_row("SELECT SUM(count) FROM counters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        counted, 240,
        "each line of the new slot once; the old object not at all"
    );
    let objects: Vec<(String, i64)> = db
        .prepare("SELECT item, lines FROM source_items ORDER BY item")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        objects.iter().map(|o| o.1).collect::<Vec<_>>(),
        [-1, 120, 120]
    );
}

/// A reload keeps a syslog listener that the new configuration still names (its socket stays
/// bound, its count carries on, its new time zone applies) and starts the listener it adds; a
/// reload that is refused (a port taken by another program) leaves the old listener working.
#[test]
fn a_reload_keeps_a_syslog_listener_and_starts_the_one_it_adds() {
    let dir = tempfile::tempdir().unwrap();
    let kept = super::upstreams::free_port();
    let added = super::upstreams::free_port();
    let cfg = |listeners: &[(std::net::SocketAddr, &str)]| {
        let mut text = String::new();
        for (addr, zone) in listeners {
            text.push_str(&format!(
                "[[source]]\nformat = \"syslog\"\nlisten = \"udp://{addr}\"\ntimezone = \"{zone}\"\n\n"
            ));
        }
        text.push_str(&format!(
            "[state]\ndir = \"{}/state\"\n",
            dir.path().display()
        ));
        gatewatch::app::config::Config::parse("gw.toml", &text).unwrap()
    };
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    super::quiet_in_process_logs();
    let daemon =
        gatewatch::app::daemon::Daemon::start(&cfg(&[(kept, "UTC")]), kb.clone(), vec![]).unwrap();
    let status = daemon.status();
    let send = |to: std::net::SocketAddr, n: usize| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..n {
            let line = format!(
                "<134>Feb  6 12:14:33 haproxy[14389]: 10.0.0.8:{} [06/Feb/2009:12:14:33.200] fe be/web1 0/0/1/2/3 200 217 - - ---- 1/1/0/0/0 0/0 \"GET /r{i} HTTP/1.1\"",
                30000 + i
            );
            s.send_to(line.as_bytes(), to).unwrap();
        }
    };
    // Lines counted per listener, as the status shows them.
    let lines = |addr: std::net::SocketAddr| {
        status
            .lock()
            .unwrap()
            .files
            .iter()
            .find(|f| f.path == format!("udp://{addr}"))
            .map(|f| (f.lines, f.unparsed))
    };
    let wait_for = |addr, want: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(addr).is_none_or(|(n, _)| n < want) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(lines(addr), Some((want, 0)), "listener {addr}");
    };
    send(kept, 5);
    wait_for(kept, 5);

    daemon.reload(cfg(&[(kept, "Europe/Paris"), (added, "UTC")]), kb.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(added).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    send(kept, 3);
    send(added, 2);
    wait_for(kept, 8);
    wait_for(added, 2);

    // A port another program holds: the reload is refused, the listeners go on.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    daemon.reload(
        cfg(&[(kept, "UTC"), (added, "UTC"), (taken_addr, "UTC")]),
        kb.clone(),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(lines(taken_addr).is_none());
    send(kept, 1);
    send(added, 1);
    wait_for(kept, 9);
    wait_for(added, 3);
    daemon.stop().unwrap();

    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    for (addr, want) in [(kept, 9), (added, 3)] {
        let counted: u64 = state
            .counts_by_cause(&format!("udp://{addr}"))
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, want, "lines of {addr} in the state");
    }
}

/// Waits for the daemon's first incident, which must be `upstream` unreachable, stops the
/// daemon, and gives what its status says of `log`: lines read, unparsed, format.
fn unreachable_then_status(
    rx: &mpsc::Receiver<Change>,
    daemon: gatewatch::app::daemon::Daemon,
    log: &Path,
    upstream: &str,
) -> (u64, u64, String) {
    let change = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an incident");
    let Change::Opened(inc) = change else {
        panic!("{change:?}")
    };
    assert_eq!(inc.upstream, upstream);
    assert_eq!(
        inc.cause,
        gatewatch::engine::event::Cause::UpstreamUnreachable
    );
    let status = daemon.status();
    daemon.stop().unwrap();
    let st = status.lock().unwrap();
    let f = st
        .files
        .iter()
        .find(|f| f.path == log.display().to_string())
        .unwrap();
    (f.lines, f.unparsed, f.format.clone())
}

/// Issue 15: an nginx container's docker json-file log (the link kubelet keeps in
/// `/var/log/containers`): access lines on stdout in the official image's `main` format, which
/// names no upstream, errors on stderr (with a line of ingress-nginx's controller), a long line
/// split in parts. The daemon joins them: the incident names the upstream from the error line
/// and the pod; every line counts once, none is unparsed.
#[test]
fn a_docker_json_file_container_log_is_unwrapped_joined_and_named_by_its_pod() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("containers");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join(format!("web-5f7c9_shop_nginx-{}.log", "0a".repeat(32)));
    std::fs::write(&log, "").unwrap();
    let text = format!(
        "[[source]]\npath = \"{}/*.log\"\nformat = \"container\"\ntimezone = \"UTC\"\n\n[state]\ndir = \"{}/state\"\n",
        logs.display(),
        dir.path().display()
    );
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &text).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = mpsc::channel();
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![tx]).unwrap();
    let docker = |stream: &str, text: &str| {
        serde_json::json!({"log": text, "stream": stream, "time": "2026-12-06T05:00:00.1Z"})
            .to_string()
            + "\n"
    };
    let now = chrono::Utc::now();
    // The official image's entrypoint writes its own lines to stdout first: they fit no
    // access-log layout and must not decide the format.
    let mut out = docker(
        "stdout",
        "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration\n",
    ) + &docker(
        "stdout",
        "/docker-entrypoint.sh: Configuration complete; ready for start up\n",
    );
    let mut physical = 2;
    for i in 0..20 {
        if i == 3 {
            // ingress-nginx's controller writes its own (klog) lines to the same stderr; it
            // takes the time of the lines before it.
            out += &docker(
                "stderr",
                "I1206 05:00:00.123456       7 controller.go:190] \"Configuration changes detected, backend reload required\"\n",
            );
            physical += 1;
        }
        let client = format!("10.0.0.{i}");
        let error = format!(
            "{} [error] 31#31: *{i} connect() failed (111: Connection refused) while connecting to upstream, client: {client}, server: _, request: \"GET /api/orders HTTP/1.1\", upstream: \"http://10.0.1.5:8080/api/orders\", host: \"shop.example\"\n",
            now.format("%Y/%m/%d %H:%M:%S")
        );
        let access = format!(
            "{client} - - [{}] \"GET /api/orders HTTP/1.1\" 502 157 \"-\" \"curl/8.5.0\" \"-\"\n",
            now.format("%d/%b/%Y:%H:%M:%S +0000")
        );
        out += &docker("stderr", &error);
        physical += 1;
        if i == 7 {
            // A long line comes in parts: no newline but in the last.
            out += &docker("stdout", &access[..15]);
            out += &docker("stdout", &access[15..]);
            physical += 2;
        } else {
            out += &docker("stdout", &access);
            physical += 1;
        }
    }
    append(&log, &out);
    let (lines, unparsed, format) = unreachable_then_status(&rx, daemon, &log, "10.0.1.5:8080");
    assert_eq!((lines, unparsed), (physical, 2), "the entrypoint's lines");
    assert!(
        format.starts_with("container docker: nginx_access (main)"),
        "{format}"
    );
    // Counted once each, under the pod's name: the access lines (joined to their causes) and
    // the error lines (consumed by the join) on their own stream.
    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let counts = state.counts_by_cause("pod shop/web-5f7c9/nginx").unwrap();
    assert_eq!(counts, [("upstream_unreachable".to_string(), 20)]);
    let errors: u64 = state
        .counts_by_cause("pod shop/web-5f7c9/nginx (stderr)")
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(errors, 21, "20 error lines and the controller's line");
}

/// Issue 18: an Istio sidecar's container log (CRI framing, kubelet's `/var/log/pods` layout):
/// Envoy's access lines on stdout (Istio's text format), its component log on stderr. Followed
/// as `proxy = "envoy"`, the connection failures to one pod open an incident naming its address
/// with the cause from the flags; the component lines are read, not unparsed.
#[test]
fn an_envoy_sidecar_container_log_alerts_with_the_cause_from_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pods/shop_web-7d9f_0a1b2c3d/istio-proxy");
    std::fs::create_dir_all(&pod).unwrap();
    let log = pod.join("0.log");
    std::fs::write(&log, "").unwrap();
    let text = format!(
        "[[source]]\npath = \"{}/pods/*/*/*.log\"\nformat = \"container\"\nproxy = \"envoy\"\n\n[state]\ndir = \"{}/state\"\n",
        dir.path().display(),
        dir.path().display()
    );
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &text).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = mpsc::channel();
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![tx]).unwrap();
    let now = chrono::Utc::now();
    let cri = |stream: &str, line: &str| {
        format!(
            "{} {stream} F {line}\n",
            now.format("%Y-%m-%dT%H:%M:%S%.9fZ")
        )
    };
    let mut out = String::new();
    for i in 0..20 {
        out += &cri(
            "stdout",
            &format!(
                "[{}] \"GET /api/orders HTTP/1.1\" 503 UF upstream_reset_before_response_started{{connection_failure,delayed_connect_error:_111}} - \"-\" 0 91 1 - \"-\" \"curl/8.5.0\" \"5e4b1c6a-0c1d-4b5e-9a1f-{i:012}\" \"orders:8080\" \"10.44.1.9:8080\" outbound|8080||orders.shop.svc.cluster.local - 10.96.12.4:8080 10.44.0.5:4{i:04} - default",
                now.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            ),
        );
    }
    // Envoy's component log, on stderr (a line without a zone: it takes the event clock's).
    out += &cri(
        "stderr",
        &format!(
            "[{}][21][warning][config] [source/extensions/config_subscription/grpc/grpc_stream.h:190] StreamAggregatedResources gRPC config stream to xds-grpc closed",
            now.format("%Y-%m-%d %H:%M:%S%.3f")
        ),
    );
    append(&log, &out);
    let (lines, unparsed, format) = unreachable_then_status(&rx, daemon, &log, "10.44.1.9:8080");
    assert_eq!((lines, unparsed), (21, 0));
    assert_eq!(format, "container cri: envoy");
    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let counts = state
        .counts_by_cause("pod shop/web-7d9f/istio-proxy")
        .unwrap();
    assert_eq!(
        counts,
        [
            ("not_applicable".to_string(), 1),
            ("upstream_unreachable".to_string(), 20)
        ]
    );
}

/// A log that is not a container's, followed as `format = "container"`: its lines are
/// unparsed, never read as something else, and the status says why.
#[test]
fn a_plain_log_followed_as_a_container_log_is_refused_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/access.log");
    let mut text = String::new();
    for i in 0..30 {
        text += &access_line(i, 502, "10.0.1.5:8080", "-");
    }
    std::fs::write(&log, &text).unwrap();
    let cfg = format!(
        "[[source]]\npath = \"{}\"\nformat = \"container\"\nstart_at = \"beginning\"\n\n[state]\ndir = \"{}/state\"\n",
        log.display(),
        dir.path().display()
    );
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &cfg).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = mpsc::channel();
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![tx]).unwrap();
    let status = daemon.status();
    daemon.stop().unwrap();
    assert!(rx.try_recv().is_err(), "no incident from lines not read");
    let st = status.lock().unwrap();
    let f = &st.files[0];
    assert_eq!((f.lines, f.unparsed), (30, 30), "{f:?}");
    assert!(f.format.starts_with("container no framing"), "{f:?}");
}

/// A glob and a path it also names, as two sources: the file is followed once, its lines
/// counted once (not once per source).
#[test]
fn a_file_named_by_two_sources_is_followed_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/access.log");
    let text: String = (0..30)
        .map(|i| access_line(i, 200, "10.0.1.5:8080", "0.001"))
        .collect();
    std::fs::write(&log, &text).unwrap();
    let lf = gatewatch::engine::parse::nginx_access::GATEWATCH;
    let cfg = format!(
        "[[source]]\npath = \"{d}/logs/*.log\"\nformat = \"nginx_access\"\nlog_format = '{lf}'\nstart_at = \"beginning\"\n\n[[source]]\npath = \"{d}/logs/access.log\"\nformat = \"nginx_access\"\nlog_format = '{lf}'\nstart_at = \"beginning\"\n\n[state]\ndir = \"{d}/state\"\n",
        d = dir.path().display()
    );
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &cfg).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![]).unwrap();
    let status = daemon.status();
    daemon.stop().unwrap();
    assert_eq!(status.lock().unwrap().files.len(), 1);
    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let counted: u64 = state
        .counts_by_cause(&log.display().to_string())
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(counted, 30);
}

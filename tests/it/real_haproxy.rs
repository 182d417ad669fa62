//! A real HAProxy on loopback in front of faulty upstreams logs to its standard output and to
//! two syslog sockets (RFC 5424 and RFC 3164); `scan` must name the cause of every failure in
//! each framing and find the burst.

use super::upstreams::{self, get};
use super::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::UdpSocket;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Receives syslog datagrams into a file, one per line, until stopped.
fn syslog_sink(
    path: PathBuf,
    stop: Arc<AtomicBool>,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut out = std::fs::File::create(path).unwrap();
        let mut buf = [0u8; 8192];
        while !stop.load(Ordering::SeqCst) {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]);
                out.write_all(msg).unwrap();
                out.write_all(b"\n").unwrap();
            }
        }
    });
    (addr, handle)
}

/// The `defaults` section of the tests' HAProxy configurations: HTTP logs, short timeouts, no
/// retries (every failed request is logged as it failed).
pub const DEFAULTS: &str = "defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 10s
    timeout server 1s
    retries 0
";

fn config(
    listen: std::net::SocketAddr,
    u: &upstreams::Upstreams,
    s5424: std::net::SocketAddr,
    s3164: std::net::SocketAddr,
) -> String {
    format!(
        r#"
global
    log stdout format raw local0
    log {s5424} format rfc5424 local0
    log {s3164} format rfc3164 local0

{DEFAULTS}
frontend fe
    bind {listen}
    use_backend refused if {{ path_beg /refused }}
    use_backend down if {{ path_beg /down }}
    use_backend hang if {{ path_beg /hang }}
    use_backend close if {{ path_beg /close }}
    use_backend garbage if {{ path_beg /garbage }}
    default_backend ok

backend ok
    server ok1 {ok}
backend refused
    server web1 {r0}
backend down
    server d1 {r1} check inter 200ms fall 1 rise 1
backend hang
    server h1 {hang}
backend close
    server c1 {close}
backend garbage
    server g1 {garbage}
"#,
        ok = u.ok,
        r0 = u.refused[0],
        r1 = u.refused[1],
        hang = u.hang,
        close = u.close,
        garbage = u.garbage,
    )
}

#[test]
fn haproxy_logs_of_real_failures_get_their_causes_in_every_framing() {
    let Some(haproxy) = require("haproxy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let u = upstreams::start();
    let listen = upstreams::free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let (s5424, h1) = syslog_sink(dir.path().join("rfc5424.log"), stop.clone());
    let (s3164, h2) = syslog_sink(dir.path().join("rfc3164.log"), stop.clone());
    let conf = dir.path().join("haproxy.cfg");
    std::fs::write(&conf, config(listen, &u, s5424, s3164)).unwrap();
    let raw_log = dir.path().join("stdout.log");
    let child = Command::new(&haproxy)
        .args(["-db", "-f", conf.to_str().unwrap()])
        .stdout(std::fs::File::create(&raw_log).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("haproxy starts");
    let guard = Running(child);
    assert!(
        upstreams::wait_for_port(listen),
        "haproxy did not start listening on {listen}"
    );
    // Let the health check mark the `down` backend's only server DOWN.
    std::thread::sleep(Duration::from_millis(800));

    let plan: [(&str, usize, u16); 6] = [
        ("/ok", 3, 200),
        ("/refused", 2, 503),
        ("/down", 2, 503),
        ("/hang", 2, 504),
        ("/close", 2, 502),
        ("/garbage", 2, 502),
    ];
    for (path, n, status) in plan {
        for _ in 0..n {
            assert_eq!(get(listen, path), status, "{path}");
        }
    }
    for _ in 0..30 {
        assert_eq!(get(listen, "/refused/burst"), 503);
    }
    // Logs are written as each session ends; give the last datagrams a moment.
    std::thread::sleep(Duration::from_millis(300));
    drop(guard);
    stop.store(true, Ordering::SeqCst);
    h1.join().unwrap();
    h2.join().unwrap();

    for file in ["stdout.log", "rfc5424.log", "rfc3164.log"] {
        let path = dir.path().join(file);
        let ev = events(&[&path], &["--format", "haproxy"]);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut by_path: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut events_seen = Vec::new();
        for e in &ev {
            let line = lines[e["line"].as_u64().unwrap() as usize - 1];
            match line.split('"').nth(1).and_then(|r| r.split(' ').nth(1)) {
                Some(p) if line.contains(" HTTP/1.1\"") => by_path
                    .entry(p.to_string())
                    .or_default()
                    .push(e["cause"].as_str().unwrap().to_string()),
                _ => events_seen.push((
                    e["cause"].as_str().unwrap().to_string(),
                    e["upstream"].clone(),
                )),
            }
        }
        let causes = |p: &str| {
            by_path
                .get(p)
                .cloned()
                .unwrap_or_else(|| panic!("{file}: no lines for {p}: {text}"))
        };
        assert_eq!(causes("/ok"), ["ok"; 3], "{file}");
        assert_eq!(causes("/refused"), ["upstream_unreachable"; 2], "{file}");
        assert_eq!(causes("/down"), ["no_live_upstreams"; 2], "{file}");
        assert_eq!(causes("/hang"), ["upstream_timeout"; 2], "{file}");
        assert_eq!(causes("/close"), ["upstream_reset"; 2], "{file}");
        assert_eq!(causes("/garbage"), ["upstream_protocol_error"; 2], "{file}");
        // The health check's verdict and the empty backend are logged as events.
        assert!(
            events_seen.contains(&("upstream_unreachable".into(), "down/d1".into())),
            "{file}: {events_seen:?}\n{text}"
        );
        assert!(
            events_seen.contains(&("no_live_upstreams".into(), "down".into())),
            "{file}: {events_seen:?}\n{text}"
        );

        let found = incidents(&["--format", "haproxy", path.to_str().unwrap()]);
        let burst: Vec<_> = found
            .iter()
            .filter(|i| i["upstream"] == "refused/web1")
            .collect();
        assert_eq!(burst.len(), 1, "{file}: {found:#?}");
        assert_eq!(
            burst[0]["entry"],
            "api/http-502-bad-gateway-upstream-unreachable"
        );
        assert!(
            burst[0]["headline"]
                .as_str()
                .unwrap()
                .starts_with("503 burst"),
            "{}",
            burst[0]["headline"]
        );
    }
}

/// HAProxy logging straight to gatewatch's own syslog listener (no rsyslog): the daemon gets
/// the lines and raises the incident.
fn haproxy_to_the_listener(listen: &str, haproxy_target: &str, format: &str) {
    let Some(haproxy) = require("haproxy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let u = upstreams::start();
    let front = upstreams::free_port();
    let cfg_text = format!(
        "[[source]]\nformat = \"syslog\"\nlisten = \"{listen}\"\ntimezone = \"UTC\"\n\n[state]\ndir = \"{}/state\"\n",
        dir.path().display()
    );
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &cfg_text).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![tx]).unwrap();
    let conf = dir.path().join("haproxy.cfg");
    std::fs::write(
        &conf,
        format!(
            "global\n    log {haproxy_target} format {format} local0\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 1s\n    retries 0\nfrontend fe\n    bind {front}\n    default_backend app\nbackend app\n    server web1 {}\n",
            u.refused[0]
        ),
    )
    .unwrap();
    let child = Command::new(&haproxy)
        .args(["-db", "-f", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Running(child);
    assert!(upstreams::wait_for_port(front));
    for _ in 0..20 {
        assert_eq!(get(front, "/api/orders"), 503);
    }
    let change = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an incident");
    let gatewatch::engine::detect::Change::Opened(inc) = change else {
        panic!("{change:?}")
    };
    assert_eq!(inc.upstream, "app/web1");
    assert_eq!(
        inc.entry,
        gatewatch::app::patterns::load_kb(&[])
            .unwrap()
            .find("api/http-502-bad-gateway-upstream-unreachable")
            .unwrap()
    );
    let status = daemon.status();
    daemon.stop().unwrap();
    let st = status.lock().unwrap();
    let src = st.files.iter().find(|f| f.path == listen).unwrap();
    assert!(src.lines >= 10 && src.unparsed == 0, "{src:?}");
}

#[test]
fn haproxy_logs_to_the_udp_listener_in_rfc5424() {
    let port = upstreams::free_port();
    haproxy_to_the_listener(&format!("udp://{port}"), &port.to_string(), "rfc5424");
}

#[test]
fn haproxy_logs_to_the_unix_socket_listener_in_rfc3164() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("haproxy-log.sock");
    haproxy_to_the_listener(
        &format!("unix://{}", sock.display()),
        &sock.display().to_string(),
        "rfc3164",
    );
}

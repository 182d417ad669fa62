//! ALB logs read straight from an S3 bucket: a real S3-compatible server (moto's, from PyPI) on
//! loopback, objects uploaded to it, `gatewatch run` reading each object once.

use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A raw, unsigned S3 request (moto accepts them): returns the status code.
fn s3_request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn gz(text: &str) -> Vec<u8> {
    use flate2::write::GzEncoder;
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn alb_line(t: &str, fail: bool) -> String {
    let (times, codes) = if fail {
        ("-1 -1 -1", "502 -")
    } else {
        ("0.000 0.004 0.000", "200 200")
    };
    format!(
        "https {t} app/my-alb/50dc6c495c0c9188 198.51.100.7:4711 10.0.0.9:80 {times} {codes} 120 340 \"GET https://shop.example.com:443/cart HTTP/1.1\" \"curl/8.5.0\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop/73e2d6bc24d8a067 \"Root=1-1\" \"shop.example.com\" \"-\" 0 {t} \"forward\" \"-\" \"-\" \"10.0.0.9:80\" \"-\" \"-\" \"-\" TID_0\n"
    )
}

/// The Python with moto installed: scripts/test.sh's virtual environment (named by
/// GATEWATCH_TEST_MOTO_PYTHON, or found under target/), else the python3 on PATH.
fn moto_python() -> String {
    if let Ok(p) = std::env::var("GATEWATCH_TEST_MOTO_PYTHON") {
        return p;
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

#[test]
fn alb_objects_are_read_from_a_bucket_once_each() {
    let python = moto_python();
    let has_moto = Command::new(&python)
        .args(["-c", "import moto.server"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_moto {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("moto is not installed, and CI=true (scripts/test.sh installs it)");
        }
        eprintln!(
            "\n!!!!!!!!!! SKIPPED: moto is missing for {python}; the S3 test did not run. scripts/test.sh installs it into target/test-venv. !!!!!!!!!!\n"
        );
        return;
    }
    let addr = super::upstreams::free_port();
    let server = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Running(server);
    assert!(super::upstreams::wait_for_port(addr), "moto did not start");
    assert_eq!(s3_request(addr, "PUT", "/alb-logs", b""), 200);
    let key = |end: &str, node: &str| {
        format!(
            "/alb-logs/prod/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/05/01/123456789012_elasticloadbalancing_us-east-1_app.my-alb.50dc6c495c0c9188_{end}_{node}_abc.log.gz"
        )
    };
    let (mut a, mut b) = (String::new(), String::new());
    for s in 0..200 {
        let t = format!("2024-05-01T12:{:02}:{:02}.000000Z", s / 60, s % 60);
        let line = alb_line(&t, s >= 100);
        if s % 2 == 0 {
            a.push_str(&line)
        } else {
            b.push_str(&line)
        }
    }
    assert_eq!(
        s3_request(addr, "PUT", &key("20240501T1205Z", "10.0.0.1"), &gz(&a)),
        200
    );
    assert_eq!(
        s3_request(addr, "PUT", &key("20240501T1205Z", "10.0.0.2"), &gz(&b)),
        200
    );
    // Not ALB access logs: skipped.
    assert_eq!(
        s3_request(
            addr,
            "PUT",
            "/alb-logs/prod/AWSLogs/123456789012/ELBAccessLogTestFile",
            b"x"
        ),
        200
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\npath = \"s3://alb-logs/prod\"\nformat = \"alb\"\nstart_at = \"beginning\"\nendpoint = \"http://{addr}\"\nregion = \"us-east-1\"\n\n[state]\ndir = \"{}/state\"\n\n[alerts]\ngroup_wait = \"100ms\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run_once = || {
        let mut child = gatewatch()
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        assert!(child.wait().unwrap().success());
        reader.join().unwrap()
    };
    let first = run_once();
    assert!(first.contains("=== ALERT ==="), "{first}");
    assert!(
        first.contains("502 burst: upstream 10.0.0.9:80 unreachable"),
        "{first}"
    );
    let second = run_once();
    assert!(!second.contains("read ALB objects"), "read again: {second}");

    let db = rusqlite::Connection::open(dir.path().join("state/gatewatch.db")).unwrap();
    let lines: Vec<i64> = db
        .prepare("SELECT lines FROM source_items ORDER BY item")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, [100, 100]);
    let counted: i64 = db
        .query_row("SELECT SUM(count) FROM counters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(counted, 200);
}

//! The status page in a real headless Chromium (Debian's `chromium`): it loads without
//! console errors, shows an incident the test creates in a live log, and its screenshot is
//! kept as a test artifact (`target/test-artifacts/status-page.png`).

use super::daemon::{access_line, append, config, http_get, spawn, wait_for};
use super::*;
use std::time::{Duration, Instant};

/// Loads a page in headless Chromium through the DevTools protocol
/// (`tests/servers/browse.py`): console messages, uncaught errors, the browser's own error log
/// (failed loads), and the DOM.
fn browse(bin: &Path, url: &str, screenshot: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new(super::smtp::PYTHON);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/browse.py"))
        .arg(bin)
        .arg(url);
    if let Some(s) = screenshot {
        cmd.arg("--screenshot").arg(s);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "browse.py: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Everything the page got wrong, as the browser saw it.
fn problems(v: &serde_json::Value) -> Vec<String> {
    ["console", "exceptions", "log"]
        .iter()
        .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

fn have_browser() -> Option<PathBuf> {
    let bin = require("chromium")?;
    let ws = Command::new(super::smtp::PYTHON)
        .args(["-c", "import websocket"])
        .output()
        .is_ok_and(|o| o.status.success());
    available("python3-websocket (for /usr/bin/python3)", ws).then_some(bin)
}

#[test]
fn the_status_page_shows_an_open_incident_in_a_real_browser_without_console_errors() {
    let Some(bin) = have_browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The check can fail: a page that logs an error and fails a load is caught.
    let planted = browse(
        &bin,
        "data:text/html,<script>console.error('planted-error')</script><img src='http://127.0.0.1:9/x.png'>",
        None,
    );
    let p = problems(&planted);
    assert!(p.iter().any(|l| l.contains("planted-error")), "{p:?}");
    assert!(
        p.iter().any(|l| l.contains("Failed to load resource")),
        "{p:?}"
    );

    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let http = super::upstreams::free_port();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[http]\nlisten = \"{http}\"\n\n[alerts]\nhost = \"proxy-1\"\n",
            config(dir.path(), "beginning")
        ),
    )
    .unwrap();
    let (_d, rx) = spawn(&cfg);
    wait_for(&rx, "ready", Duration::from_secs(15));
    let log = dir.path().join("logs/access.log");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&access_line(i, 200, "10.0.7.7:9000", "0.001"));
    }
    for i in 0..25 {
        text.push_str(&access_line(i, 502, "10.0.7.7:9000", "-"));
    }
    append(&log, &text);
    // The incident is open (the default quiet period keeps it open for a minute).
    let deadline = Instant::now() + Duration::from_secs(10);
    let api = loop {
        let (code, body) = http_get(http, "/api/incidents");
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["open"].as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline, "no open incident: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(api["host"], "proxy-1");
    assert_eq!(api["open"][0]["incident"]["upstream"], "10.0.7.7:9000");
    assert_eq!(
        api["open"][0]["entry"]["id"],
        "api/http-502-bad-gateway-upstream-unreachable"
    );
    assert_eq!(api["sources"][0]["lines"], 45);
    let failures: u64 = api["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["failures"].as_u64().unwrap())
        .sum();
    assert_eq!(failures, 25, "the last 24 hours");

    let url = format!("http://{http}/");
    // On a phone's screen.
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let page = browse(&bin, &url, Some(&shot));
    assert!(problems(&page).is_empty(), "{:?}", problems(&page));
    let dom = page["dom"].as_str().unwrap();
    assert!(
        dom.contains("502 burst: upstream 10.0.7.7:9000 unreachable"),
        "{dom}"
    );
    // The entry's code spans as code, not as Markdown backticks.
    assert!(
        dom.contains("<code>curl -I http://10.0.7.7:9000/health</code>"),
        "{dom}"
    );
    assert!(!dom.contains('`'), "raw Markdown backticks: {dom}");
    // Times to the second, not to the nanosecond.
    let stamp = regex::Regex::new(r"\d{2}:\d{2}:\d{2}\.\d").unwrap();
    assert!(!stamp.is_match(dom), "a fractional time stamp: {dom}");
    assert!(dom.contains("Open incidents (1)"), "{dom}");
    assert!(dom.contains("<svg"), "the chart: {dom}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        412,
        "as wide as the phone"
    );
}

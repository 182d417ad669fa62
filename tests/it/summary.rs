//! The daily summary: the report of a fixed day of logs pinned as snapshots (text, HTML,
//! JSON; English and Chinese), and the same report read from the daemon's state.

use super::alerts::snapshot;
use super::*;

fn scan_summary(format: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, "[alerts]\nhost = \"proxy-1\"\n").unwrap();
    let access = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/access.log.gz");
    let error = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/error.log");
    let mut args = vec![
        "scan".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        format!("--summary={format}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(access.display().to_string());
    args.push(error.display().to_string());
    let o = gatewatch().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn the_summary_of_a_day_of_logs_matches_its_snapshots() {
    let utc = ["--timezone", "UTC"];
    snapshot("summary.txt", &scan_summary("text", &utc));
    snapshot("summary.html", &scan_summary("html", &utc));
    snapshot("summary.json", &scan_summary("json", &utc));
    snapshot(
        "summary.zh.txt",
        &scan_summary("text", &["--timezone", "UTC", "--lang", "zh"]),
    );
}

#[test]
fn the_summary_counts_requests_failures_and_incidents_of_its_day_only() {
    let r: serde_json::Value =
        serde_json::from_str(&scan_summary("json", &["--timezone", "UTC"])).unwrap();
    assert_eq!(r["date"], "2024-05-01");
    assert_eq!(r["host"], "proxy-1");
    // Requests are access-log lines; the error log's 446 lines explain failures, they are not
    // requests of their own.
    assert_eq!(r["day"]["requests"], 9600);
    assert_eq!(r["day"]["failures"], 458);
    assert_eq!(r["day"]["incidents"], 1);
    assert_eq!(r["causes"][0]["cause"], "upstream_unreachable");
    assert_eq!(r["causes"][0]["count"], 446);
    assert_eq!(r["hours"].as_array().unwrap().len(), 24);
    assert_eq!(r["hours"][12]["failures"], 458, "all at noon UTC");
    assert_eq!(r["upstreams"][0]["upstream"], "10.0.1.5:8080");
    assert_eq!(r["incidents"][0]["ended"], "resolved");
    let step = r["entries"][0]["first_step"].as_str().unwrap();
    assert!(
        step.contains("curl -I http://10.0.1.5:8080/health"),
        "{step}"
    );
    // In Tokyo (+09:00) noon UTC is 21:00 of the same day.
    let r: serde_json::Value =
        serde_json::from_str(&scan_summary("json", &["--timezone", "Asia/Tokyo"])).unwrap();
    assert_eq!(r["hours"][21]["failures"], 458);
    // Another day has the traffic as its day before.
    let r: serde_json::Value = serde_json::from_str(&scan_summary(
        "json",
        &["--timezone", "UTC", "--date", "2024-05-02"],
    ))
    .unwrap();
    assert_eq!(r["day"]["requests"], 0);
    assert_eq!(r["day_before"]["requests"], 9600);
    assert_eq!(r["week_avg"]["requests"], 1371, "9,600 over 7 days");
    assert!(r["incidents"].as_array().unwrap().is_empty());
}

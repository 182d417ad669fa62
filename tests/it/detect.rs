//! Incidents found by `scan` in generated traffic: a burst is found, normal traffic and bursts
//! of another cause are not taken for an unreachable upstream.

use super::*;
use gatewatch::engine::synth::{Burst, Synth, SynthConfig};
use std::io::Write;

const UNREACHABLE: &str = "api/http-502-bad-gateway-upstream-unreachable";

/// Writes `n` generated requests (and the error log) into `dir`; returns the two paths.
fn generate(dir: &Path, n: usize, burst: Option<Burst>) -> (PathBuf, PathBuf) {
    let mut s = Synth::new(SynthConfig {
        requests_per_sec: 200,
        burst,
        ..SynthConfig::default()
    });
    let access = dir.join("access.log");
    let error = dir.join("error.log");
    let mut a = std::io::BufWriter::new(std::fs::File::create(&access).unwrap());
    let mut e = std::io::BufWriter::new(std::fs::File::create(&error).unwrap());
    for _ in 0..n {
        let g = s.next_request();
        writeln!(a, "{}", g.access).unwrap();
        if let Some(line) = g.error {
            writeln!(e, "{line}").unwrap();
        }
    }
    (access, error)
}

fn incidents_in(files: &[&Path]) -> Vec<serde_json::Value> {
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    incidents(&names.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_burst_of_unreachable_502s_is_one_incident_with_the_right_entry() {
    let dir = tempfile::tempdir().unwrap();
    // 10 minutes at 200 requests/s; upstream 0 fails 90 % of its requests from minute 3 to 5.
    let (access, _) = generate(
        dir.path(),
        120_000,
        Some(Burst {
            start_secs: 180,
            duration_secs: 120,
            upstream: 0,
            share: 0.9,
        }),
    );
    let found = incidents_in(&[&access]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let inc = &found[0];
    assert_eq!(inc["entry"], UNREACHABLE);
    assert_eq!(inc["cause"], "upstream_unreachable");
    assert_eq!(inc["upstream"], "10.0.1.5:8080");
    assert_eq!(inc["start"], "2024-05-01T12:03:00+00:00");
    assert_eq!(inc["end"], "2024-05-01T12:04:59+00:00");
    // It opened within seconds of the first failure.
    assert_eq!(inc["opened"], "2024-05-01T12:03:00+00:00");
    let count = inc["count"].as_u64().unwrap();
    let requests = inc["requests"].as_u64().unwrap();
    // ~50 requests/s to this upstream for 120 s, 90 % failing.
    assert!((4_500..=6_000).contains(&count), "{count}");
    assert!(
        count as f64 / requests as f64 > 0.85,
        "{count} of {requests}"
    );
    assert!(
        inc["headline"]
            .as_str()
            .unwrap()
            .starts_with("502 burst: upstream 10.0.1.5:8080 unreachable")
    );
    assert_eq!(inc["samples"].as_array().unwrap().len(), 3);
}

#[test]
fn normal_traffic_has_no_incident() {
    let dir = tempfile::tempdir().unwrap();
    let (access, error) = generate(dir.path(), 60_000, None);
    assert_eq!(
        incidents_in(&[&access, &error]),
        Vec::<serde_json::Value>::new()
    );
}

#[test]
fn a_timeout_burst_is_not_an_unreachable_incident() {
    let dir = tempfile::tempdir().unwrap();
    let (access, _) = generate(
        dir.path(),
        60_000,
        Some(Burst {
            start_secs: 60,
            duration_secs: 60,
            upstream: 1,
            share: 0.9,
        }),
    );
    // Turn the generated refusals into timeouts: 504, connected, no header.
    let text = std::fs::read_to_string(&access)
        .unwrap()
        .replace("502 157 ", "504 167 ")
        .replace(" 502 - - 0.000 0.001", " 504 0.001 - 60.001 60.002");
    std::fs::write(&access, text).unwrap();
    let found = incidents_in(&[&access]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["cause"], "upstream_timeout");
    assert_eq!(found[0]["entry"], "nginx/upstream-timed-out");
    assert!(found.iter().all(|i| i["entry"] != UNREACHABLE));
}

#[test]
fn the_error_log_alone_finds_the_burst_and_both_logs_count_each_failure_once() {
    let dir = tempfile::tempdir().unwrap();
    let burst = Burst {
        start_secs: 30,
        duration_secs: 30,
        upstream: 2,
        share: 1.0,
    };
    let (access, error) = generate(dir.path(), 24_000, Some(burst));
    let alone = incidents_in(&[&error]);
    assert_eq!(alone.len(), 1, "{alone:#?}");
    assert_eq!(alone[0]["upstream"], "10.0.1.7:8080");
    let both = incidents_in(&[&access, &error]);
    assert_eq!(both.len(), 1, "{both:#?}");
    // The same failures, counted once although each is in both logs.
    assert_eq!(both[0]["count"], alone[0]["count"]);
    assert_eq!(both[0]["start"], alone[0]["start"]);
}

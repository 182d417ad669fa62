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

/// Issue 15, join across zones: nginx's error log carries no zone; read in the wrong one (UTC
/// for a proxy writing +01:00), its lines are an hour away from their access-log lines and
/// never join. The joiner notices that pairs of the same client and request missed each other
/// by a whole zone offset, and once three agree the pipeline corrects the error log's times:
/// from then on its lines join again.
#[test]
fn an_error_log_read_in_the_wrong_zone_is_found_and_its_lines_join_again() {
    use gatewatch::engine::event::Format;
    use gatewatch::engine::parse::{LogFormat, Parser, ParserOptions};
    use gatewatch::engine::pipeline::{Pipeline, PipelineConfig};
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let mut pipeline = Pipeline::new(
        kb,
        PipelineConfig {
            detect: Default::default(),
            join: Some(Default::default()),
        },
    );
    let opts = ParserOptions {
        log_format: Some(LogFormat::from_directive("gatewatch").unwrap()),
        year: 2024,
        ..ParserOptions::default()
    };
    let mut access = Parser::new(Format::NginxAccess, &opts, &[]);
    let mut error = Parser::new(Format::NginxError, &ParserOptions::default(), &[]);
    struct Count(u64);
    impl gatewatch::engine::pipeline::Sink for Count {
        fn event(&mut self, s: &gatewatch::engine::pipeline::Settled<'_>) {
            if s.joined_from.is_some() {
                self.0 += 1;
            }
        }
        fn change(&mut self, _: gatewatch::engine::detect::Change) {}
    }
    let mut sink = Count(0);
    for i in 0..10u32 {
        let (m, sec) = (i / 6, (i % 6) * 10);
        // A TLS handshake that failed: the access line alone says unreachable (`-` connect
        // time), the error line says why.
        let a = format!(
            "10.0.0.{i} - - [01/May/2024:12:0{m}:{sec:02} +0000] \"GET /v1/x{i} HTTP/1.1\" 502 157 \"-\" \"curl\" api.example.com 10.0.1.5:8443 502 - - 0.001 0.001"
        );
        // Written at 13:0m local (+01:00), read as UTC.
        let e = format!(
            "2024/05/01 13:0{m}:{sec:02} [error] 7#7: *{i} SSL_do_handshake() failed (SSL: error:0A000410) while SSL handshaking to upstream, client: 10.0.0.{i}, server: api.example.com, request: \"GET /v1/x{i} HTTP/1.1\", upstream: \"https://10.0.1.5:8443/v1/x{i}\", host: \"api.example.com\""
        );
        for (parser, line, n) in [
            (&mut access, a, 2 * i as u64),
            (&mut error, e, 2 * i as u64 + 1),
        ] {
            let mut ev = parser.parse(line.as_bytes()).unwrap();
            pipeline.correct(&mut ev);
            pipeline.push(0, n, line.as_bytes(), ev, &mut sink);
        }
    }
    pipeline.finish(&mut sink);
    let stats = pipeline.joiner().unwrap().stats;
    assert_eq!(stats.error_offset_ms, Some(3_600_000));
    assert!(
        sink.0 >= 5,
        "after the offset was found, the lines join again: {} joined ({stats:?})",
        sink.0
    );
}

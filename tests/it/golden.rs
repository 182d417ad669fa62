//! `scan --events --json` over real-format lines of every format: the right cause, status,
//! upstream and entry for every line. The expected files were checked line by line against
//! DESIGN §2; the nginx ones are the logs of a real nginx 1.22.1 run (loopback addresses).

use super::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;

/// Compares the events of `files` with an expected JSON-lines file, line by line, so a
/// difference names the log line.
fn check(files: &[&Path], extra: &[&str], expected: &str) {
    let got = events(files, extra);
    let want: Vec<serde_json::Value> = std::fs::read_to_string(data(expected))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "number of events");
    for (g, w) in got.iter().zip(&want) {
        // File names differ (absolute here, relative in the expected file, another name for
        // the gzip copy); the format and line number say which file a line came from.
        let strip = |v: &serde_json::Value| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("file");
            v
        };
        assert_eq!(strip(g), strip(w));
    }
}

#[test]
fn nginx_error_log_every_signature() {
    check(
        &[&data("nginx_error.log")],
        &[],
        "nginx_error.expected.jsonl",
    );
}

#[test]
fn haproxy_httplog_tcplog_events_and_syslog_framings() {
    check(&[&data("haproxy.log")], &[], "haproxy.expected.jsonl");
}

#[test]
fn alb_entries_of_every_generation() {
    check(&[&data("alb.log")], &[], "alb.expected.jsonl");
}

/// ALB logs arrive as `.log.gz`; gzip files with several members (concatenated) are read to
/// the end.
#[test]
fn alb_gzip_with_several_members() {
    let text = std::fs::read(data("alb.log")).unwrap();
    let half = text
        .iter()
        .take(text.len() / 2)
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("123456789012_elasticloadbalancing_us-east-1_app.my-alb.abc_20250819T2135Z_10.0.0.1_x.log.gz");
    let mut out = Vec::new();
    for part in [&text[..half], &text[half..]] {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(part).unwrap();
        out.extend(gz.finish().unwrap());
    }
    std::fs::write(&path, out).unwrap();
    check(&[&path], &[], "alb.expected.jsonl");
}

/// A real nginx's access log (a custom log_format with upstream fields) scanned together with
/// its error log: 5xx lines without a cause of their own take the error log's.
#[test]
fn nginx_access_and_error_logs_are_joined() {
    let log_format = std::fs::read_to_string(data("nginx_access_up.log_format")).unwrap();
    check(
        &[&data("nginx_access_up.log"), &data("nginx_error_up.log")],
        &["--log-format", &log_format],
        "nginx_up_joined.expected.jsonl",
    );
    // The same access log alone: those lines stay other_5xx.
    let alone = events(
        &[&data("nginx_access_up.log")],
        &["--log-format", &log_format],
    );
    let reset = alone.iter().find(|e| e["line"] == 12).unwrap();
    assert_eq!(reset["cause"], "other_5xx");
    assert_eq!(reset["entry"], serde_json::Value::Null);
}

/// `scan`'s summary on standard error counts a joined failure once, through its access-log
/// line (regression: the error-log line it consumed was counted too, doubling every joined
/// cause beside the failures).
#[test]
fn the_scan_summary_counts_a_joined_failure_once() {
    let log_format = std::fs::read_to_string(data("nginx_access_up.log_format")).unwrap();
    let files = [data("nginx_access_up.log"), data("nginx_error_up.log")];
    let o = run(&[
        "scan",
        "--timezone",
        "UTC",
        "--log-format",
        &log_format,
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let causes = err
        .lines()
        .find_map(|l| l.strip_prefix("causes: "))
        .unwrap_or_else(|| panic!("{err}"));
    let summary: std::collections::BTreeMap<String, u64> = causes
        .split(", ")
        .map(|c| {
            let (name, n) = c.rsplit_once(' ').unwrap();
            (name.to_string(), n.parse().unwrap())
        })
        .collect();
    // What each line settled as, from --events: a consumed error-log line is the one that
    // names the same failure as an access-log line, so it must not be counted again.
    let settled = events(&[&files[0], &files[1]], &["--log-format", &log_format]);
    let failures_in = |format: &str| {
        settled
            .iter()
            .filter(|e| {
                e["format"] == format && e["cause"] != "ok" && e["cause"] != "not_applicable"
            })
            .count() as u64
    };
    let joined: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("joined ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(joined > 0, "{err}");
    let counted_failures: u64 = summary
        .iter()
        .filter(|(c, _)| *c != "ok" && *c != "not_applicable")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        counted_failures,
        failures_in("nginx_access") + failures_in("nginx_error") - joined,
        "{err}"
    );
}

/// The `combined` format names no upstream: a 502 gets its cause and its upstream from the
/// error log, matched on client and request line.
#[test]
fn combined_access_log_takes_cause_and_upstream_from_the_error_log() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.log");
    let error = dir.path().join("error.log");
    std::fs::write(
        &access,
        concat!(
            "203.0.113.7 - - [01/May/2024:12:00:01 +0000] \"GET /api/v1/orders HTTP/1.1\" 502 157 \"-\" \"curl/8.5.0\"\n",
            "203.0.113.8 - - [01/May/2024:12:00:02 +0000] \"GET /ok HTTP/1.1\" 200 12 \"-\" \"curl/8.5.0\"\n",
            "203.0.113.9 - - [01/May/2024:12:00:07 +0000] \"GET /crash HTTP/1.1\" 502 157 \"-\" \"curl/8.5.0\"\n",
            "203.0.113.10 - - [01/May/2024:12:00:30 +0000] \"GET /lonely HTTP/1.1\" 502 157 \"-\" \"curl/8.5.0\"\n",
        ),
    )
    .unwrap();
    std::fs::write(
        &error,
        concat!(
            "2024/05/01 12:00:01 [error] 2118#2118: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.7, server: api.example.com, request: \"GET /api/v1/orders HTTP/1.1\", upstream: \"http://10.0.1.5:8080/api/v1/orders\", host: \"api.example.com\"\n",
            "2024/05/01 12:00:07 [error] 2118#2118: *12 upstream prematurely closed connection while reading response header from upstream, client: 203.0.113.9, server: api.example.com, request: \"GET /crash HTTP/1.1\", upstream: \"http://10.0.1.8:8080/crash\", host: \"api.example.com\"\n",
            "2024/05/01 12:00:20 [error] 2118#2118: *20 connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.99, server: api.example.com, request: \"GET /other HTTP/1.1\", upstream: \"http://10.0.1.5:8080/other\", host: \"api.example.com\"\n",
        ),
    )
    .unwrap();
    // Error log first on the command line: the join does not depend on the order of files.
    let ev = events(&[&error, &access], &[]);
    let access_events: Vec<_> = ev
        .iter()
        .filter(|e| e["format"] == "nginx_access")
        .collect();
    let summary: Vec<(u64, &str, Option<&str>)> = access_events
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["cause"].as_str().unwrap(),
                e["upstream"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "upstream_unreachable", Some("10.0.1.5:8080")),
            (2, "ok", None),
            (3, "upstream_reset", Some("10.0.1.8:8080")),
            (4, "other_5xx", None),
        ]
    );
}

/// Issue 15: the same real nginx logs as a container runtime writes them — access lines on
/// stdout and error lines on stderr in one log, in the order written, one line split in parts
/// — in CRI framing and in docker's json-file: `scan` unwraps them and names the same cause,
/// status, upstream and entry for every line as for the two plain files.
#[test]
fn container_logs_scan_like_the_plain_logs_they_carry() {
    let log_format = std::fs::read_to_string(data("nginx_access_up.log_format")).unwrap();
    let access = std::fs::read_to_string(data("nginx_access_up.log")).unwrap();
    let error = std::fs::read_to_string(data("nginx_error_up.log")).unwrap();
    // (time key, stream, line): an access line's `[24/Nov/2026:01:56:02 +0000]`, an error
    // line's `2026/11/24 01:55:57`, both as `2026-11-24 01:56:02`.
    let mut lines: Vec<(String, &str, &str)> = Vec::new();
    for l in access.lines() {
        let t = &l[l.find('[').unwrap() + 1..][..20];
        let key = chrono::NaiveDateTime::parse_from_str(t, "%d/%b/%Y:%H:%M:%S")
            .unwrap()
            .to_string();
        lines.push((key, "stdout", l));
    }
    for l in error.lines() {
        let key = chrono::NaiveDateTime::parse_from_str(&l[..19], "%Y/%m/%d %H:%M:%S")
            .unwrap()
            .to_string();
        lines.push((key, "stderr", l));
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cri = String::new();
    let mut docker = String::new();
    for (i, (_, stream, l)) in lines.iter().enumerate() {
        let time = "2026-11-24T01:56:02.123456789Z";
        // Every tenth line comes in three parts (as a runtime splits lines over 16 KiB).
        let parts: Vec<&str> = if i % 10 == 3 && l.len() > 30 {
            vec![&l[..10], &l[10..20], &l[20..]]
        } else {
            vec![l]
        };
        for (n, p) in parts.iter().enumerate() {
            let last = n + 1 == parts.len();
            cri += &format!("{time} {stream} {} {p}\n", if last { "F" } else { "P" });
            let text = if last {
                format!("{p}\n")
            } else {
                p.to_string()
            };
            docker += &serde_json::json!({"log": text, "stream": stream, "time": time}).to_string();
            docker.push('\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let plain = events(
        &[&data("nginx_access_up.log"), &data("nginx_error_up.log")],
        &["--log-format", &log_format],
    );
    // (format, line's own time, status, cause, upstream, entry), in a stable order.
    let answers = |evs: &[serde_json::Value]| {
        let mut v: Vec<String> = evs
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {} {} {}",
                    e["format"], e["time"], e["status"], e["cause"], e["upstream"], e["entry"]
                )
            })
            .collect();
        v.sort();
        v
    };
    let want = answers(&plain);
    assert!(
        want.iter().any(|a| a.contains("upstream_unreachable")),
        "{want:#?}"
    );
    for (name, text) in [("0.log", &cri), ("docker-json.log", &docker)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let got = events(&[&path], &["--log-format", &log_format]);
        assert_eq!(answers(&got), want, "{name}");
        let files: std::collections::BTreeSet<&str> =
            got.iter().map(|e| e["file"].as_str().unwrap()).collect();
        assert_eq!(
            files,
            [
                format!("{} (stderr)", path.display()),
                format!("{} (stdout)", path.display())
            ]
            .iter()
            .map(String::as_str)
            .collect(),
            "{name}"
        );
    }
}

/// Issue 15, join across zones: the same real logs, but the error log written an hour ahead
/// (a proxy in +01:00 whose error log is read as UTC: its lines carry no zone). No line joins,
/// and `scan` says why and what to give it; with `--timezone +01:00` they join again.
#[test]
fn scan_says_when_the_error_log_was_read_in_the_wrong_zone() {
    let log_format = std::fs::read_to_string(data("nginx_access_up.log_format")).unwrap();
    let error = std::fs::read_to_string(data("nginx_error_up.log")).unwrap();
    let shifted: String = error
        .lines()
        .map(|l| {
            let t = chrono::NaiveDateTime::parse_from_str(&l[..19], "%Y/%m/%d %H:%M:%S").unwrap()
                + chrono::Duration::hours(1);
            format!("{}{}\n", t.format("%Y/%m/%d %H:%M:%S"), &l[19..])
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("error.log");
    std::fs::write(&e, shifted).unwrap();
    let access = data("nginx_access_up.log");
    let scan = |zone: &str| {
        run(&[
            "scan",
            "--timezone",
            zone,
            "--log-format",
            &log_format,
            access.to_str().unwrap(),
            e.to_str().unwrap(),
        ])
    };
    let o = scan("UTC");
    let err = stderr(&o);
    assert!(err.contains("joined 0 access-log lines"), "{err}");
    assert!(
        err.contains("the error log's times are +01:00 from the access log's"),
        "{err}"
    );
    let o = scan("+01:00");
    let err = stderr(&o);
    assert!(!err.contains("joined 0 "), "{err}");
    assert!(!err.contains("error log's times are"), "{err}");
}

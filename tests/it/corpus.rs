//! Accuracy on real lines (issue 15): every `tests/data/corpus/NAME.log` — lines copied from
//! public test suites and documentation, or (`*_lab.log`) written by real servers on the
//! project's test machine, labelled by hand from the proxies' documented semantics
//! (`tests/data/corpus/README*.md`) — is scanned with its format recognised, as a user's file
//! would be (or named, where a `NAME.format` says so). Per format: no line read as another
//! format; the cause right for at least 98 % of lines; the status and the upstream right on
//! every request line and every failure line.

use super::*;
use std::collections::BTreeMap;

/// The format a corpus file holds, from its name.
fn format_of(name: &str) -> &'static str {
    if name.starts_with("nginx_error") {
        "nginx_error"
    } else if name.starts_with("nginx_access") || name.starts_with("ingress_nginx") {
        "nginx_access"
    } else if name.starts_with("haproxy") {
        "haproxy"
    } else if name.starts_with("alb") {
        "alb"
    } else if name.starts_with("apache_error") {
        "apache_error"
    } else if name.starts_with("apache_access") {
        "apache_access"
    } else if name.starts_with("caddy") {
        "caddy"
    } else if name.starts_with("envoy") {
        "envoy"
    } else if name.starts_with("traefik") {
        "traefik"
    } else {
        panic!("{name}: which format is it?")
    }
}

#[derive(Default, Debug)]
struct Score {
    lines: u64,
    causes_right: u64,
    requests: u64,
    requests_right: u64,
    wrong: Vec<String>,
}

#[test]
fn real_lines_from_public_sources_get_their_labelled_cause_status_and_upstream() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus");
    let mut scores: BTreeMap<&str, Score> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for log in files {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let format = format_of(&name);
        let labels_path = log.with_extension("labels.jsonl");
        let labels: Vec<serde_json::Value> = std::fs::read_to_string(&labels_path)
            .unwrap_or_else(|e| panic!("{}: {e}", labels_path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let lines = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            labels.len(),
            lines.lines().count(),
            "{name}: a label per line"
        );
        let mut extra: Vec<String> = Vec::new();
        let lf = log.with_extension("log_format");
        if lf.exists() {
            extra.push("--log-format".into());
            extra.push(std::fs::read_to_string(lf).unwrap().trim().to_string());
        }
        // Apache's access lines are nginx's `combined`, byte for byte: such a file is named, as
        // its user names it (`NAME.format`).
        let named = log.with_extension("format");
        if named.exists() {
            extra.push("--format".into());
            extra.push(std::fs::read_to_string(named).unwrap().trim().to_string());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let events: BTreeMap<u64, serde_json::Value> = events(&[&log], &extra)
            .into_iter()
            .map(|e| (e["line"].as_u64().unwrap(), e))
            .collect();
        let score = scores.entry(format).or_default();
        for (label, text) in labels.iter().zip(lines.lines()) {
            let n = label["line"].as_u64().unwrap();
            score.lines += 1;
            let got = events.get(&n);
            let mut wrong = |what: String| {
                score.wrong.push(format!("{name}:{n}: {what}\n    {text}"));
            };
            // A line that does not fit its format (a typo in a documentation example) is
            // labelled "unparsed": it must not be read.
            if label["cause"] == "unparsed" {
                match got {
                    None => score.causes_right += 1,
                    Some(e) => wrong(format!("read as {} (want unparsed)", e["cause"])),
                }
                continue;
            }
            let Some(e) = got else {
                wrong(format!("not parsed (want {})", label["cause"]));
                continue;
            };
            assert_eq!(e["format"], format, "{name}:{n}: read as another format");
            if e["cause"] == label["cause"] {
                score.causes_right += 1;
            } else {
                wrong(format!("cause {} (want {})", e["cause"], label["cause"]));
            }
            // Request lines, and failure lines of an error log, must name the right upstream.
            let failure = !matches!(label["cause"].as_str(), Some("ok" | "not_applicable"));
            if !label["status"].is_null() || failure {
                score.requests += 1;
                if e["status"] == label["status"] && e["upstream"] == label["upstream"] {
                    score.requests_right += 1;
                } else {
                    wrong(format!(
                        "status {} upstream {} (want {} {})",
                        e["status"], e["upstream"], label["status"], label["upstream"]
                    ));
                }
            }
        }
    }
    let mut report = String::new();
    for (format, s) in &scores {
        report += &format!(
            "{format}: {} lines, causes right {} ({:.1} %), request and failure lines {} with status and upstream right {}\n",
            s.lines,
            s.causes_right,
            100.0 * s.causes_right as f64 / s.lines as f64,
            s.requests,
            s.requests_right
        );
    }
    eprintln!("corpus accuracy:\n{report}");
    for (format, s) in &scores {
        assert!(
            s.causes_right as f64 >= 0.98 * s.lines as f64 && s.requests_right == s.requests,
            "{format}:\n{report}\n{}",
            s.wrong.join("\n")
        );
    }
}

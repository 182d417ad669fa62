//! The command line as a user meets it: `check`, `patterns`, and `scan` on bad input.

use super::*;

#[test]
fn check_proves_the_shipped_knowledge_base() {
    let o = run(&[
        "check",
        "--patterns",
        concat!(env!("CARGO_MANIFEST_DIR"), "/patterns"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("example lines proven"), "{out}");
    assert!(out.ends_with("ok\n"), "{out}");
    // The built-in knowledge base is the same files.
    let o = run(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn check_reports_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/patterns/api/http-502-bad-gateway-upstream-unreachable.toml"
    ))
    .unwrap();
    std::fs::create_dir_all(dir.path().join("api")).unwrap();
    let broken = src.replace("success_rate = 0.80", "success_rate = 8.0");
    let file = dir
        .path()
        .join("api/http-502-bad-gateway-upstream-unreachable.toml");
    std::fs::write(&file, &broken).unwrap();
    let o = run(&["check", "--patterns", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let line = broken
        .lines()
        .position(|l| l.contains("success_rate = 8.0"))
        .unwrap();
    // The error points at the workaround's table, a line or two above the key.
    let err = stderr(&o);
    let expected_file = format!("{}:", file.display());
    assert!(err.contains(&expected_file), "{err}");
    let reported: usize = err
        .split(&expected_file)
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        reported <= line + 1 && reported + 6 > line + 1,
        "line {reported} for {line}: {err}"
    );
    assert!(err.contains("workaround 3: success_rate is 8"), "{err}");

    let config = dir.path().join("gatewatch.toml");
    std::fs::write(&config, "[detect]\nwindow = \"soon\"\n").unwrap();
    let o = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}:2: detect.window", config.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn patterns_list_and_show_in_both_languages() {
    let o = run(&["patterns", "list"]);
    assert!(o.status.success());
    let list = stdout(&o);
    assert!(
        list.contains("api/http-502-bad-gateway-upstream-unreachable"),
        "{list}"
    );
    assert!(list.lines().count() >= 10, "{list}");

    let o = run(&[
        "patterns",
        "show",
        "api/http-502-bad-gateway-upstream-unreachable",
        "--lang",
        "zh",
        "--upstream",
        "10.0.1.5:8080",
    ]);
    assert!(o.status.success());
    let zh = stdout(&o);
    assert!(zh.contains("502 错误网关:上游服务器不可达"), "{zh}");
    assert!(
        zh.contains("示例:`curl -I http://10.0.1.5:8080/health`"),
        "{zh}"
    );
    assert!(zh.contains("无效做法"), "{zh}");

    let o = run(&["patterns", "show", "no/such-entry"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("patterns list"));
}

#[test]
fn garbage_and_binary_input_is_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.log");
    let mut bytes = b"2024/05/01 12:00:01 [error] 1#1: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://10.0.1.5:8080/\", host: \"x\"\n".to_vec();
    bytes.extend_from_slice(b"\x00\x01\x02\xff\xfe binary \x1b[31m\n");
    bytes.extend(std::iter::repeat_n(b'A', 200_000));
    bytes.push(b'\n');
    bytes.extend_from_slice(b"2024/05/01 12:00:02 [error] 1#1: *6 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://10.0.1.5:8080/\", host: \"x\"");
    std::fs::write(&path, bytes).unwrap();
    let o = run(&[
        "scan",
        "--events",
        "--json",
        "--timezone",
        "UTC",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("4 lines, 2 parsed, 2 unparsed (1 over the line limit)"),
        "{err}"
    );
    assert!(err.contains("first unparsed: line 2"), "{err}");
}

#[test]
fn unrecognised_files_and_bad_arguments_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "shopping list\nmilk\n").unwrap();
    let o = run(&["scan", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--format"), "{}", stderr(&o));

    let o = run(&["scan", "/nonexistent/access.log"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("opening /nonexistent/access.log"),
        "{}",
        stderr(&o)
    );

    let o = run(&[
        "scan",
        "--log-format",
        "$status$request_time",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not separated"), "{}", stderr(&o));

    let o = run(&["scan", "--timezone", "Mars/Olympus", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown time zone"), "{}", stderr(&o));
}

#[test]
fn standard_input_and_empty_files() {
    use std::io::Write;
    let mut child = gatewatch()
        .args(["scan", "--events", "--json", "--timezone", "UTC", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(std::fs::read(data("alb.log")).unwrap().as_slice())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 8);

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let o = run(&["scan", "--format", "nginx_access", empty.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 lines"), "{}", stderr(&o));
}

#[test]
fn the_packaged_config_is_valid() {
    // As the unit's pre-start check runs it: this machine need not have the logs it names.
    let o = run(&[
        "check",
        "--no-access",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/gatewatch.toml"),
        "--patterns",
        concat!(env!("CARGO_MANIFEST_DIR"), "/patterns"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("(3 sources, 0 channels)"),
        "{}",
        stdout(&o)
    );
}

/// `scan` on threads (reading and parsing ahead of detection) gives exactly what the
/// single-threaded scan gives: the same events, incidents and counts, over files several
/// blocks long with a burst, garbage, binary and over-long lines, alone and joined with an
/// error log.
#[test]
fn threaded_scan_gives_the_same_results_as_one_thread() {
    use gatewatch::synth::{Burst, Synth, SynthConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut synth = Synth::new(SynthConfig {
        requests_per_sec: 400,
        burst: Some(Burst {
            start_secs: 30,
            duration_secs: 20,
            upstream: 1,
            share: 0.9,
        }),
        ..SynthConfig::default()
    });
    let (mut access, mut error) = (Vec::new(), Vec::new());
    for i in 0..40_000u32 {
        let g = synth.next_request();
        access.extend_from_slice(g.access.as_bytes());
        access.push(b'\n');
        if let Some(e) = g.error {
            error.extend_from_slice(e.as_bytes());
            error.push(b'\n');
        }
        match i % 997 {
            0 => access.extend_from_slice(b"garbage that is no log line\n"),
            1 => access.extend_from_slice(&[0, 159, 146, 150, 0xff, b'\n']),
            2 if i % 3 == 0 => {
                access.extend(std::iter::repeat_n(b'x', 70 * 1024));
                access.push(b'\n');
            }
            _ => {}
        }
    }
    // The last line without its newline.
    access.pop();
    let a = dir.path().join("access.log");
    let e = dir.path().join("error.log");
    std::fs::write(&a, &access).unwrap();
    std::fs::write(&e, &error).unwrap();
    let (a, e) = (a.to_str().unwrap(), e.to_str().unwrap());
    let lf = format!("--log-format={}", gatewatch::synth::LOG_FORMAT);
    for files in [vec![a], vec![a, e]] {
        for mode in [&["--events", "--json"][..], &["--json"][..], &[][..]] {
            let scan = |threads: &str| {
                let mut args = vec!["scan", "--timezone", "UTC", &lf, "--threads", threads];
                args.extend_from_slice(mode);
                args.extend_from_slice(&files);
                let o = run(&args);
                assert!(o.status.success(), "{}", stderr(&o));
                (stdout(&o), stderr(&o))
            };
            let one = scan("1");
            assert!(
                one.1.contains("unparsed") && one.1.contains("upstream_unreachable"),
                "{}",
                one.1
            );
            if mode.is_empty() {
                assert!(
                    one.0
                        .contains("api/http-502-bad-gateway-upstream-unreachable")
                );
            }
            for threads in ["2", "3"] {
                let other = scan(threads);
                assert!(
                    other == one,
                    "--threads {threads} differs from --threads 1 for {files:?} {mode:?}"
                );
            }
        }
    }
    // The other formats (HAProxy's parser keeps state between lines: read on a thread, never
    // split), and all of the test data together.
    let all: Vec<String> = std::fs::read_dir(data(""))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(all.len() >= 5, "{all:?}");
    let mut sets: Vec<Vec<&str>> = all.iter().map(|f| vec![f.as_str()]).collect();
    sets.push(all.iter().map(String::as_str).collect());
    for files in sets {
        let scan = |threads: &str| {
            let mut args = vec![
                "scan",
                "--timezone",
                "UTC",
                "--events",
                "--json",
                "--threads",
                threads,
            ];
            args.extend_from_slice(&files);
            let o = run(&args);
            (stdout(&o), stderr(&o), o.status.code())
        };
        assert_eq!(scan("3"), scan("1"), "{files:?}");
    }
}

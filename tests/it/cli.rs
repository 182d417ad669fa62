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
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\npath = \"{}/access.log\"\nformat = \"nginx_access\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let o = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("example lines proven"),
        "{}",
        stdout(&o)
    );
}

/// A config file without `[[source]]` means what no config file means: follow the logs found
/// on this machine. `check` shows that plan, and `check` and `run` agree on whether there is
/// anything to follow (what is found depends on the machine: nginx and its logs, or none).
#[test]
fn a_config_without_sources_follows_what_is_found_and_check_agrees_with_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}/state\"\n\n[detect]\nwindow = \"2m\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let check = run(&["check", "--config", cfg.to_str().unwrap()]);
    let out = stdout(&check);
    assert!(
        out.contains("no [[source]]: `gatewatch run` would follow the logs found on this machine:"),
        "{out}"
    );
    let mut daemon = gatewatch()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `run` either stops at once with nothing to follow, or starts following what it found.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut err = String::new();
    let stderr_pipe = daemon.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = loop {
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(line) => {
                err.push_str(&line);
                err.push('\n');
                if line.contains(" ready state=") {
                    break true;
                }
            }
            Err(_) if daemon.try_wait().unwrap().is_some() => {
                while let Ok(line) = rx.try_recv() {
                    err.push_str(&line);
                    err.push('\n');
                }
                break false;
            }
            Err(_) => assert!(
                std::time::Instant::now() < deadline,
                "run neither started nor stopped: {err}"
            ),
        }
    };
    if started {
        let _ = daemon.kill();
        let _ = daemon.wait();
        assert!(
            check.status.success(),
            "run follows logs, so check must pass: {}",
            stderr(&check)
        );
        assert!(
            err.contains(
                "the config names no [[source]]; following the logs found on this machine"
            ),
            "{err}"
        );
    } else {
        let status = daemon.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{err}");
        assert_eq!(
            check.status.code(),
            Some(1),
            "run has nothing to follow, so check must fail: {out}"
        );
        assert!(err.contains("no log to follow"), "{err}");
        assert!(!err.contains("pass it with --config"), "{err}");
        assert!(
            err.contains(&format!(
                "add a [[source]] (path = …, format = …) to {}",
                cfg.display()
            )),
            "{err}"
        );
        assert!(
            stderr(&check).contains("no log to follow"),
            "{}",
            stderr(&check)
        );
    }
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
    // An argument that cannot be used: exit 2, as for every invalid argument.
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not separated"), "{}", stderr(&o));

    let o = run(&["scan", "--timezone", "Mars/Olympus", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
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
/// blocks long with a burst, garbage, binary and over-long lines (one longer than a block), runs
/// of empty lines, plain and gzip (decoded into the blocks), alone and joined with an
/// error log.
#[test]
fn threaded_scan_gives_the_same_results_as_one_thread() {
    use gatewatch::engine::synth::{Burst, Synth, SynthConfig};
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
            // Longer than a block, and a block's worth of lines by their number.
            3 if i == 20_941 => {
                access.extend(std::iter::repeat_n(b'y', 300 * 1024));
                access.push(b'\n');
            }
            4 if i % 4 == 0 => access.extend(std::iter::repeat_n(b'\n', 2_500)),
            _ => {}
        }
    }
    // The last line without its newline.
    access.pop();
    let a = dir.path().join("access.log");
    let e = dir.path().join("error.log");
    let z = dir.path().join("access.log.gz");
    std::fs::write(&a, &access).unwrap();
    std::fs::write(&e, &error).unwrap();
    // The gzip file ends in an over-long line without its newline (skipped to the end).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &access).unwrap();
    std::io::Write::write_all(&mut gz, b"\n").unwrap();
    std::io::Write::write_all(&mut gz, &[b'z'; 70 * 1024]).unwrap();
    std::fs::write(&z, gz.finish().unwrap()).unwrap();
    let (a, e, z) = (
        a.to_str().unwrap(),
        e.to_str().unwrap(),
        z.to_str().unwrap(),
    );
    let lf = format!("--log-format={}", gatewatch::engine::synth::LOG_FORMAT);
    for files in [vec![a], vec![a, e], vec![z], vec![z, e]] {
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
    // A gzip file cut short: the lines before the damage are read on threads as on one, then
    // the damage is said, naming the file.
    let cut = dir.path().join("cut.log.gz");
    let whole = std::fs::read(z).unwrap();
    std::fs::write(&cut, &whole[..whole.len() * 3 / 5]).unwrap();
    let cut = cut.to_str().unwrap();
    let scan = |threads: &str| {
        let o = run(&[
            "scan",
            "--timezone",
            "UTC",
            &lf,
            "--events",
            "--json",
            "--threads",
            threads,
            cut,
        ]);
        (stdout(&o), stderr(&o), o.status.code())
    };
    let one = scan("1");
    assert!(
        one.1.contains(cut) && one.1.contains("truncated"),
        "{}",
        one.1
    );
    assert!(one.0.lines().count() > 10_000, "{}", one.0.lines().count());
    for threads in ["2", "3"] {
        assert!(
            scan(threads) == one,
            "--threads {threads} differs on a cut gzip file"
        );
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

/// Requests that did not fail take a short way through `scan` when nothing needs their events
/// (no join, no `--events`): the counts, the file reports and every incident opened and closed
/// are exactly those of the long way, on one thread and on three, over a burst, failed
/// requests of every kind, garbage, over-long lines and real lines of several layouts and ALB.
#[test]
fn the_short_way_of_answered_requests_changes_no_result() {
    use gatewatch::engine::detect::Change;
    use gatewatch::engine::pipeline::{Settled, Sink};
    use gatewatch::engine::synth::{Burst, Synth, SynthConfig};
    use gatewatch::source::scan::{ScanOptions, scan};

    struct Collect {
        events: bool,
        /// Lines settled through `event` (the short way does not settle its lines).
        settled: u64,
        changes: Vec<Change>,
    }
    impl Sink for Collect {
        fn event(&mut self, _: &Settled<'_>) {
            self.settled += 1;
        }
        fn change(&mut self, c: Change) {
            self.changes.push(c);
        }
        fn wants_events(&self) -> bool {
            self.events
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let mut synth = Synth::new(SynthConfig {
        requests_per_sec: 300,
        burst: Some(Burst {
            start_secs: 20,
            duration_secs: 15,
            upstream: 2,
            share: 0.6,
        }),
        ..SynthConfig::default()
    });
    let mut access = Vec::new();
    for i in 0..30_000u32 {
        let line = synth.next_request().access;
        // Now and then a line the short way must leave to the long one.
        let line = match i % 101 {
            0 => line.replacen(" 200 ", " 504 ", 1),
            1 => line.replacen(" 200 ", " 009 ", 1),
            2 => line.replacen(" - ", "  - ", 1),
            3 => line.replacen('"', "", 1),
            4 => line[..line.len() / 2].to_string(),
            _ => line,
        };
        access.extend_from_slice(line.as_bytes());
        access.push(b'\n');
        if i % 4_999 == 0 {
            access.extend(std::iter::repeat_n(b'x', 70 * 1024));
            access.extend_from_slice(b"\ngarbage\n\r\n");
        }
    }
    let synthetic = dir.path().join("access.log");
    std::fs::write(&synthetic, &access).unwrap();
    // The same lines gzipped: the reading thread inflates, the parsing thread parses them all.
    let gz = dir.path().join("access.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &access).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    // HAProxy in a syslog header (no short walk of its own: its answered requests' events are
    // counted the short way), with a burst of `SC` failures on one server.
    let mut haproxy = String::new();
    for i in 0..20_000u32 {
        let (sec, srv) = (i / 300, i % 3 + 1);
        let fail = (20..35).contains(&sec) && srv == 1 && i % 5 != 0;
        let (timers, status, flags) = match (fail, i % 97) {
            (true, _) => ("0/0/-1/-1/3001", "503", "SC--"),
            (_, 0) => ("0/0/1/5/6", "500", "----"),
            _ => ("0/0/1/83/85", "200", "----"),
        };
        haproxy.push_str(&format!(
            "May  1 12:{:02}:{:02} lb1 haproxy[14389]: 203.0.113.{}:{} [01/May/2024:12:{:02}:{:02}.{:03}] http-in app/srv{srv} {timers} {status} 2740 - - {flags} 12/12/3/1/0 0/0 \"GET /api/v1/users/{i} HTTP/1.1\"\n",
            sec / 60,
            sec % 60,
            i % 250,
            30_000 + i % 30_000,
            sec / 60,
            sec % 60,
            i % 1000,
        ));
        if i % 3_001 == 0 {
            // HAProxy's other messages: events that are not requests, the long way.
            haproxy.push_str("May  1 12:00:00 lb1 haproxy[14389]: Proxy http-in started.\n");
        }
    }
    let haproxy_file = dir.path().join("haproxy.log");
    std::fs::write(&haproxy_file, haproxy).unwrap();
    let haproxy_file = haproxy_file.display().to_string();
    let (synthetic, gz) = (synthetic.display().to_string(), gz.display().to_string());
    let corpus = |f: &str| data(&format!("corpus/{f}")).display().to_string();
    // (files, read with the synthetic lines' log_format): alone, gzipped, and two merged.
    let sets = [
        (vec![synthetic.clone()], true),
        (vec![gz.clone()], true),
        (vec![synthetic.clone(), gz.clone()], true),
        (vec![haproxy_file.clone()], false),
        (vec![corpus("nginx_access_real.log")], false),
        (vec![corpus("ingress_nginx_beats.log")], false),
        (vec![corpus("alb_real.log")], false),
        (vec![corpus("apache_access_real.log")], false),
        (vec![corpus("haproxy_real.log")], false),
        (vec![corpus("caddy_real.log")], false),
        (vec![corpus("envoy_real.log")], false),
        (vec![corpus("traefik_real.log")], false),
    ];
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    for (files, synthetic_format) in &sets {
        for threads in [1, 3] {
            let opts = ScanOptions {
                threads,
                parser: gatewatch::engine::parse::ParserOptions {
                    zone: "UTC".parse().unwrap(),
                    log_format: synthetic_format.then(|| {
                        gatewatch::engine::parse::LogFormat::from_directive(
                            gatewatch::engine::synth::LOG_FORMAT,
                        )
                        .unwrap()
                    }),
                    ..Default::default()
                },
                ..ScanOptions::default()
            };
            let run = |events: bool| {
                let mut sink = Collect {
                    events,
                    settled: 0,
                    changes: Vec::new(),
                };
                let report = scan(files, &opts, kb.clone(), &mut sink).unwrap();
                let result = (
                    report.files,
                    report.counts,
                    report.detect,
                    format!("{:?}", sink.changes),
                );
                (result, sink.settled)
            };
            let ((short, settled_short), (long, settled_long)) = (run(false), run(true));
            assert_eq!(short, long, "{files:?}, {threads} threads");
            let parsed: u64 = short.0.iter().map(|f| f.parsed).sum();
            assert_eq!(settled_long, parsed, "{files:?}");
            // The short way was taken: most lines never became events (in the corpus files,
            // rich in failures, some). Files merged in one thread are parsed line by line for
            // the merge, the long way.
            let merged = files.len() > 1 && threads == 1;
            let generated = *synthetic_format || files[0] == haproxy_file;
            assert!(
                merged || settled_short < if generated { parsed / 2 } else { parsed },
                "{files:?}, {threads} threads: {settled_short} of {parsed} lines settled"
            );
            if files[0] == haproxy_file {
                assert!(
                    short.3.contains("Opened") && short.3.contains("Closed"),
                    "{}",
                    short.3
                );
            }
            if *synthetic_format {
                assert!(
                    short.3.contains("Opened") && short.3.contains("Closed"),
                    "{}",
                    short.3
                );
                assert!(short.0[0].unparsed > 300, "{:?}", short.0);
            }
        }
    }
}

/// Read-only commands create no state, and the exit status says what went wrong: 1 when the
/// command ran and failed, 2 when it cannot run as given (README, "Exit status").
#[test]
fn read_only_commands_create_no_state_and_exit_codes_follow_the_readme() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\npath = \"{}/access.log\"\nformat = \"nginx_access\"\n\n[state]\ndir = \"{}\"\n",
            dir.path().display(),
            state.display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = run(&["silence", "list", "--config", c]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "no silences");
    let o = run(&["silence", "remove", "--config", c, "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("there is no silence 3"),
        "{}",
        stderr(&o)
    );
    let o = run(&["summary", "--config", c]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no state in"), "{}", stderr(&o));
    for args in [
        // Neither --for nor --until.
        &[
            "silence",
            "add",
            "--config",
            c,
            "--upstream",
            "x",
            "--reason",
            "r",
        ][..],
        &[
            "silence",
            "add",
            "--config",
            c,
            "--upstream",
            "x",
            "--for",
            "soon",
            "--reason",
            "r",
        ],
        &[
            "silence",
            "add",
            "--config",
            c,
            "--upstream",
            "x",
            "--until",
            "tomorrow",
            "--reason",
            "r",
        ],
        &["summary", "--config", c, "--date", "yesterday"],
        &["scan", "--timezone", "Mars/Olympus", "-"],
        &["patterns", "shoe"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    assert!(
        !state.exists(),
        "a read-only or refused command created the state folder"
    );
    // Adding a silence is what creates the state.
    let o = run(&[
        "silence",
        "add",
        "--config",
        c,
        "--upstream",
        "x",
        "--for",
        "1h",
        "--reason",
        "r",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(state.join("gatewatch.db").exists());
}

#[test]
fn patterns_list_has_column_headers() {
    let o = run(&["patterns", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ENTRY", "FIX", "RATE", "CAUSES", "TITLE"], "{out}");
    assert!(
        lines.any(|l| l.starts_with("api/http-502-bad-gateway-upstream-unreachable ")),
        "{out}"
    );
}

/// `scan --unparsed` shows each line that did not parse, with its number and why (control
/// characters escaped), the same whatever the threads; a format named with `--format` that
/// fits no line is a failure, not an empty answer.
#[test]
fn scan_shows_rejected_lines_and_a_wrong_forced_format_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mixed.log");
    std::fs::write(
        &log,
        "hello world\n10.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n\u{1b}[31mgarbage\n",
    )
    .unwrap();
    let l = log.to_str().unwrap();
    for threads in ["1", "3"] {
        let o = run(&[
            "scan",
            "--timezone",
            "UTC",
            "--unparsed",
            "--threads",
            threads,
            l,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "{l}:1: the line does not have the shape of the format: hello world"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("{l}:3: ")) && err.contains("\\x1b[31mgarbage"),
            "{err}"
        );
        assert!(!err.contains(&format!("{l}:2: ")), "{err}");
    }
    let o = run(&["scan", "--timezone", "UTC", "--format", "haproxy", l]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no line parsed as haproxy"),
        "{}",
        stderr(&o)
    );
}

/// The Kubernetes example (`deploy/kubernetes/gatewatch.yaml`): the config in its ConfigMap is
/// one `gatewatch check` accepts, it follows kubelet's pod logs as container logs, and the
/// DaemonSet mounts them read-only without privileges.
#[test]
fn the_kubernetes_example_is_a_config_check_accepts() {
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/gatewatch.yaml"),
    )
    .unwrap();
    // The ConfigMap's `gatewatch.toml: |` block, unindented.
    let start = yaml.find("gatewatch.toml: |\n").unwrap() + "gatewatch.toml: |\n".len();
    let toml: String = yaml[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(toml.contains("format = \"container\""), "{toml}");
    assert!(toml.contains("/var/log/pods/"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let o = run(&["check", "--no-access", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    for want in [
        "readOnly: true }",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "readOnlyRootFilesystem: true",
        "automountServiceAccountToken: false",
    ] {
        assert!(yaml.contains(want), "{want} missing from the DaemonSet");
    }
}

/// A reader that stops early (`gatewatch check | head -1`) closes the pipe: the
/// command ends quietly (status 141, as on SIGPIPE), not with a panic on standard error.
#[test]
fn a_closed_standard_output_ends_a_command_quietly() {
    use std::io::Read;
    let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
    let mut child = gatewatch()
        .args(["check", "--patterns", patterns.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the command has loaded the knowledge base and printed anything.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(141), "{err}");
}

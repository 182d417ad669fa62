//! Bad configuration and pattern files, as a user meets them: `gatewatch check` prints exactly
//! one line, `file:line: message`, naming the field, and exits 1. And `gatewatch run` refuses
//! root unless told.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// A valid config, every section a case below changes.
const BASE: &str = r#"[[source]]
path = "{d}/logs/access.log"
format = "nginx_access"
timezone = "UTC"

[state]
dir = "{d}/state"

[http]
listen = "127.0.0.1:9502"

[detect]
window = "2m"
open_share = 0.5

[alerts]
group_wait = "5s"

[[channel]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[summary]
at = "08:00"
channels = ["ops"]
"#;

/// (what, text replaced, replacement, the one line `check` prints with `{f}` for the file).
const CONFIG_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "unknown key",
        r#"window = "2m""#,
        r#"windw = "2m""#,
        "{f}:13: detect: unknown field `windw`, expected one of `window`, `open_failures`, `open_share`, `close_failures`, `quiet`, `max_upstreams`, `join_before`, `join_after`",
    ),
    (
        "unknown section",
        "[detect]",
        "[detekt]",
        "{f}:12: unknown field `detekt`, expected one of `source`, `state`, `http`, `channel`, `detect`, `patterns`, `alerts`, `maintenance`, `summary`",
    ),
    (
        "wrong type",
        r#"window = "2m""#,
        "window = 120",
        "{f}:13: detect.window: invalid type: integer `120`, expected a string",
    ),
    (
        "bad duration",
        r#"window = "2m""#,
        r#"window = "2 parsecs""#,
        r#"{f}:13: detect.window: "2 parsecs" is not a duration (unknown time unit "parsecs", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write it like "60s" or "5m""#,
    ),
    (
        "negative duration",
        r#"group_wait = "5s""#,
        r#"group_wait = "-5s""#,
        r#"{f}:17: alerts.group_wait: "-5s" is not a duration (expected number at 0); write it like "60s" or "5m""#,
    ),
    (
        "share written as a percentage",
        "open_share = 0.5",
        "open_share = 50",
        "{f}:14: detect.open_share is a fraction from 0.0 to 1.0 (0.2 for 20 %)",
    ),
    (
        "key given twice",
        "open_share = 0.5",
        "open_share = 0.5\nopen_share = 0.6",
        "{f}:15: detect.open_share: duplicate key",
    ),
    (
        "bad time zone",
        r#"timezone = "UTC""#,
        r#"timezone = "Mars/Olympus""#,
        r#"{f}:4: source.timezone: unknown time zone "Mars/Olympus": use UTC, local, an offset such as +02:00, or an IANA name such as Europe/Berlin"#,
    ),
    (
        "unknown log format",
        r#"format = "nginx_access""#,
        r#"format = "lighttpd""#,
        r#"{f}:3: source.format: "lighttpd" is not one of nginx_access, nginx_error, haproxy, alb, apache_access, apache_error, caddy, envoy, traefik, container, syslog"#,
    ),
    (
        "proxy on a source that is not a container log",
        r#"format = "nginx_access""#,
        "format = \"nginx_access\"\nproxy = \"nginx\"",
        r#"{f}:4: source.proxy is only for format = "container""#,
    ),
    (
        "a container of an unknown proxy",
        r#"format = "nginx_access""#,
        "format = \"container\"\nproxy = \"lighttpd\"",
        r#"{f}:4: source.proxy: "lighttpd" is not one of nginx, haproxy, apache, caddy, envoy, traefik"#,
    ),
    (
        "log_format whose fields run together",
        r#"format = "nginx_access""#,
        "format = \"nginx_access\"\nlog_format = \"$remote_addr$status\"",
        "{f}:4: source.log_format: $remote_addr and $status are not separated by any text, so gatewatch cannot tell where one ends",
    ),
    (
        "log in a folder that does not exist",
        r#"path = "{d}/logs/access.log""#,
        r#"path = "{d}/nowhere/access.log""#,
        "{f}:2: source.path: {d}/nowhere/access.log: the folder {d}/nowhere does not exist",
    ),
    (
        "log path that is a folder",
        r#"path = "{d}/logs/access.log""#,
        r#"path = "{d}/logs""#,
        "{f}:2: source.path: {d}/logs is a folder; name the log file in it",
    ),
    (
        "state dir of the wrong type",
        r#"dir = "{d}/state""#,
        "dir = 5",
        "{f}:7: state.dir: invalid type: integer `5`, expected a string",
    ),
    (
        "listen address that is none",
        r#"listen = "127.0.0.1:9502""#,
        r#"listen = "everywhere""#,
        r#"{f}:10: http.listen: "everywhere" is not an address such as "127.0.0.1:9502""#,
    ),
    (
        "unknown channel kind",
        r#"kind = "webhook""#,
        r#"kind = "carrier-pigeon""#,
        r#"{f}:21: channel.kind: "carrier-pigeon" is not {kinds}"#,
    ),
    (
        "webhook that is not http",
        r#"url = "http://127.0.0.1:9/hook""#,
        r#"url = "ftp://127.0.0.1/hook""#,
        r#"{f}:22: channel.url: "ftp://127.0.0.1/hook" is not an http:// or https:// address"#,
    ),
    (
        "secret written into the config",
        r#"url = "http://127.0.0.1:9/hook""#,
        "url = \"http://127.0.0.1:9/hook\"\npassword = \"hunter2\"",
        "{f}:23: channel.password: secrets are not read from the config file; use password_file (e.g. a systemd credential) or password_env",
    ),
    (
        "missing secret file",
        r#"url = "http://127.0.0.1:9/hook""#,
        "url = \"http://127.0.0.1:9/hook\"\nsecret_file = \"{d}/no-such-secret\"",
        "{f}:19: channel ops: secret: reading the secret file {d}/no-such-secret: No such file or directory (os error 2)",
    ),
    (
        "email channel without a server",
        r#"kind = "webhook""#,
        r#"kind = "email""#,
        r#"{f}:19: channel: an email channel needs server = "host:port""#,
    ),
    (
        "unknown channel in the summary",
        r#"channels = ["ops"]"#,
        r#"channels = ["pager"]"#,
        r#"{f}:26: summary.channels: there is no channel named "pager""#,
    ),
    (
        "summary time that is none",
        r#"at = "08:00""#,
        r#"at = "8 am""#,
        r#"{f}:25: summary.at: "8 am" is not a time of day such as "08:00""#,
    ),
    (
        "retry window upside down",
        "[alerts]",
        "[alerts]\nretry_min = \"10m\"\nretry_max = \"1m\"",
        "{f}:18: alerts.retry_max must not be below retry_min",
    ),
    (
        "maintenance at an hour that does not exist",
        "[summary]",
        "[[maintenance]]\nstart = \"25:00\"\nend = \"02:00\"\n\n[summary]",
        r#"{f}:25: maintenance.start: "25:00" is not a time of day such as "02:30""#,
    ),
    (
        "TOML syntax",
        "[detect]",
        "[detect",
        "{f}:12: unclosed table, expected `]`",
    ),
    (
        "status page on every address",
        r#"listen = "127.0.0.1:9502""#,
        r#"listen = "0.0.0.0:9502""#,
        "{f}:10: http.listen: 0.0.0.0:9502 can be reached from other machines, and the status page and /metrics have no authentication; listen on 127.0.0.1 (behind a proxy that authenticates), or set allow_remote = true in [http] if you mean it",
    ),
    (
        "syslog listener on every address",
        "[state]",
        "[[source]]\nformat = \"syslog\"\nlisten = \"udp://[::]:5514\"\n\n[state]",
        "{f}:8: source.listen: [::]:5514 can be reached from other machines, and anyone who can send to it can make gatewatch alert; listen on 127.0.0.1 or a unix socket, or set allow_remote = true on this source if you mean it",
    ),
    (
        "the same log twice",
        "[state]",
        "[[source]]\npath = \"{d}/logs/access.log\"\nformat = \"nginx_access\"\n\n[state]",
        "{f}:7: source: {d}/logs/access.log is already a source at line 2; every line would be counted twice (remove one)",
    ),
    (
        "close threshold above open",
        "open_share = 0.5",
        "open_share = 0.5\nopen_failures = 3\nclose_failures = 5",
        "{f}:16: detect.close_failures (5) is above open_failures (3): an incident would close while still bursting",
    ),
    (
        "pattern folder that does not exist",
        "[alerts]",
        "[patterns]\ndirs = [\"{d}/nowhere\"]\n\n[alerts]",
        "{f}:17: patterns.dirs: {d}/nowhere: cannot read the folder (No such file or directory (os error 2))",
    ),
    (
        "mail server written as a web address",
        "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"",
        "kind = \"email\"\nserver = \"https://mail.example.com\"\nfrom = \"gw@example.com\"\nto = [\"ops@example.com\"]",
        r#"{f}:22: channel.server: "https://mail.example.com": only smtp:// and smtps:// addresses are mail servers; write host:port, e.g. "smtp.example.com:587""#,
    ),
    (
        "misspelt channel key",
        "url = \"http://127.0.0.1:9/hook\"",
        "url = \"http://127.0.0.1:9/hook\"\nformt = \"slack\"",
        "{f}:23: channel: unknown field `formt`; a webhook channel takes `ca_file`, `format`, `kind`, `lang`, `name`, `secret_env`, `secret_file`, `template_dir`, `timeout`, `url`",
    ),
    (
        "smtps with STARTTLS",
        "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"",
        "kind = \"email\"\nserver = \"smtps://mail.example.com\"\ntls = \"starttls\"\nfrom = \"gw@example.com\"\nto = [\"ops@example.com\"]",
        r#"{f}:23: channel.tls = "starttls" contradicts the server's "smtps://mail.example.com"; smtps:// is implicit TLS (leave tls out, or write host:port)"#,
    ),
];

/// (what, entry file, text replaced, replacement, the one line with `{p}` for the folder).
const PATTERN_CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "bad regex",
        "nginx/upstream-timed-out.toml",
        "statuses = [504]",
        "statuses = [504]\nsignatures = [{ format = \"nginx_error\", regex = \"upstream (timed\" }]",
        r#"{p}/nginx/upstream-timed-out.toml:90: match.signatures: the regex "upstream (timed" does not compile: unclosed group"#,
    ),
    (
        "regex too big",
        "nginx/upstream-timed-out.toml",
        "statuses = [504]",
        "statuses = [504]\nsignatures = [{ format = \"nginx_error\", regex = \"a{99999}\" }]",
        r#"{p}/nginx/upstream-timed-out.toml:90: match.signatures: the regex "a{99999}" does not compile: Compiled regex exceeds size limit of 1048576 bytes."#,
    ),
    (
        "entry id copied from another entry",
        "nginx/upstream-timed-out.toml",
        r#"id = "nginx/upstream-timed-out""#,
        r#"id = "nginx/no-live-upstreams""#,
        r#"{p}/nginx/upstream-timed-out.toml:8: id "nginx/no-live-upstreams" does not match the file's path: expected "nginx/upstream-timed-out""#,
    ),
    (
        "rate written as a percentage",
        "nginx/upstream-timed-out.toml",
        "fix_rate = 0.70",
        "fix_rate = 70",
        "{p}/nginx/upstream-timed-out.toml:12: fix_rate is 70, but rates are written as a fraction from 0.0 to 1.0 (0.85 for 85 %)",
    ),
    (
        "unknown cause",
        "nginx/upstream-timed-out.toml",
        r#"causes = ["upstream_timeout"]"#,
        r#"causes = ["upstream_sleepy"]"#,
        r#"{p}/nginx/upstream-timed-out.toml:88: match.causes: unknown cause "upstream_sleepy"; the causes are upstream_unreachable, no_live_upstreams, upstream_timeout, upstream_reset, upstream_protocol_error, dns_failure, tls_failure, other_5xx, ok, not_applicable"#,
    ),
    (
        "misspelt table",
        "nginx/upstream-timed-out.toml",
        "[title]",
        "[titel]",
        "{p}/nginx/upstream-timed-out.toml:24: unknown field `titel`, expected one of `id`, `title`, `category`, `kind`, `ai_generated`, `fix_rate`, `confidence`, `evidence_count`, `first_seen`, `docs`, `versions`, `root_cause`, `workarounds`, `dead_ends`, `match`, `examples`, `near_misses`, `draft`",
    ),
    (
        "date that is none",
        "nginx/upstream-timed-out.toml",
        "first_seen = 2026-11-24",
        r#"first_seen = "yesterday""#,
        r#"{p}/nginx/upstream-timed-out.toml:15: first_seen: invalid type: string "yesterday", expected a TOML datetime"#,
    ),
    (
        "example that no longer matches its entry",
        "nginx/upstream-timed-out.toml",
        "upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.1, server: api.example.com, request: \"GET /api/v1/reports",
        "upstream went fishing while reading response header from upstream, client: 10.0.0.1, server: api.example.com, request: \"GET /api/v1/reports",
        "{p}/nginx/upstream-timed-out.toml:93: example 1: the line is not_applicable and matches no entry, not this entry",
    ),
];

fn base_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("logs/access.log"), "").unwrap();
    dir
}

/// `check`'s complaint, which must be exactly one problem line.
fn the_one_problem(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(o), stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one problem line and the count expected:\n{err}"
    );
    assert_eq!(lines[1], "gatewatch check: 1 problem(s)");
    lines[0].to_string()
}

#[test]
fn every_bad_config_gets_one_line_naming_file_line_and_field() {
    let dir = base_dir();
    let d = dir.path().display().to_string();
    let base = BASE.replace("{d}", &d);
    let file = dir.path().join("gatewatch.toml");
    std::fs::write(&file, &base).unwrap();
    let o = run(&["check", "--config", file.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the base config is valid: {}",
        stderr(&o)
    );
    assert!(CONFIG_CASES.len() >= 20);
    // The unit's pre-start check leaves what is readable to the daemon.
    std::fs::write(
        &file,
        base.replacen(
            &format!("path = \"{d}/logs/access.log\""),
            &format!("path = \"{d}/nowhere/access.log\""),
            1,
        ),
    )
    .unwrap();
    let o = run(&["check", "--no-access", "--config", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (what, from, to, expected) in CONFIG_CASES {
        let (from, to) = (from.replace("{d}", &d), to.replace("{d}", &d));
        assert!(base.contains(&from), "{what}: {from}");
        std::fs::write(&file, base.replacen(&from, &to, 1)).unwrap();
        let o = run(&["check", "--config", file.to_str().unwrap()]);
        let kinds: Vec<&str> = gatewatch::delivery::channel::KINDS
            .iter()
            .map(|(k, _)| *k)
            .collect();
        let expected = expected
            .replace("{f}", file.to_str().unwrap())
            .replace("{d}", &d)
            .replace("{kinds}", &gatewatch::delivery::channel::one_of(&kinds));
        assert_eq!(the_one_problem(&o), expected, "{what}");
        assert!(!stderr(&o).contains("hunter2"), "a secret was shown");
    }
}

#[test]
fn every_bad_pattern_file_gets_one_line_naming_file_line_and_field() {
    let dir = base_dir();
    let d = dir.path().display().to_string();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(&cfg, BASE.replace("{d}", &d)).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
    for (what, entry, from, to, expected) in PATTERN_CASES {
        let pat = tempfile::tempdir().unwrap();
        let copy = std::process::Command::new("cp")
            .arg("-r")
            .arg(format!("{}/.", shipped.display()))
            .arg(pat.path())
            .status()
            .unwrap();
        assert!(copy.success());
        let file = pat.path().join(entry);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{what}: {from}");
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
        let o = run(&[
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--patterns",
            pat.path().to_str().unwrap(),
        ]);
        let expected = expected.replace("{p}", pat.path().to_str().unwrap());
        assert_eq!(the_one_problem(&o), expected, "{what}");
    }
}

/// Whether this process runs as root (then `setpriv` drops to nobody for what root cannot see).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

#[test]
fn a_log_gatewatch_cannot_read_is_named_by_check() {
    let dir = base_dir();
    let d = dir.path().display().to_string();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(&cfg, BASE.replace("{d}", &d)).unwrap();
    let log = dir.path().join("logs/access.log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = gatewatch();
    if is_root() {
        // Root reads everything: check as nobody, who can read the config but not the log.
        for p in [dir.path(), &dir.path().join("logs")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_gatewatch"));
    } else {
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let o = cmd
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        the_one_problem(&o),
        format!(
            "{}:2: source.path: {d}/logs/access.log: cannot be read (Permission denied (os error 13)); gatewatch needs read access to the logs it follows",
            cfg.display()
        )
    );
}

#[test]
fn run_refuses_root_unless_told() {
    let dir = base_dir();
    let d = dir.path().display().to_string();
    let cfg = dir.path().join("gatewatch.toml");
    std::fs::write(&cfg, BASE.replace("{d}", &d)).unwrap();
    let mut cmd = if is_root() {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatewatch"))
    } else {
        // Root inside a user namespace of our own.
        let mut c = std::process::Command::new("unshare");
        c.arg("-r").arg(env!("CARGO_BIN_EXE_gatewatch"));
        c
    };
    let o = cmd
        .env_remove("GATEWATCH_ALLOW_ROOT")
        .args(["run", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("gatewatch run: refusing to run as root."),
        "{}",
        stderr(&o)
    );
}

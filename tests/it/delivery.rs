//! Alerts delivered by the real daemon to real receivers: an HTTP server on loopback for the
//! webhooks and aiosmtpd for email. A receiver that is down, a daemon killed in the middle,
//! a receiver that refuses: every alert arrives once, in order, or is recorded as failed.

use super::daemon::{access_line, append, config, wait_for};
use super::receiver::Receiver;
use super::*;
use rusqlite::Connection;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// The daemon's config: one access log, short windows (an incident closes about 7 s after
/// its last failure), fast retries, and the given channels.
pub fn daemon_config(dir: &Path, channels: &str) -> String {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    format!(
        r#"{}
[detect]
window = "5s"
quiet = "2s"
close_failures = 1

[alerts]
host = "proxy-test"
group_wait = "300ms"
retry_min = "200ms"
retry_max = "1s"
renotify = "off"

{channels}
"#,
        config(dir, "beginning")
    )
}

/// Starts `gatewatch run` with extra environment; its standard error line by line, and the
/// lines up to "ready".
pub fn start_seen(
    cfg: &Path,
    env: &[(&str, &str)],
) -> (Running, mpsc::Receiver<String>, Vec<String>) {
    let mut cmd = gatewatch();
    cmd.args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let seen = wait_for(&rx, "ready", Duration::from_secs(15));
    (Running(child), rx, seen)
}

fn start(cfg: &Path, env: &[(&str, &str)]) -> (Running, mpsc::Receiver<String>) {
    let (d, rx, _) = start_seen(cfg, env);
    (d, rx)
}

/// A webhook channel named `hook` posting to the receiver.
pub fn hook_channel(hook: &Receiver) -> String {
    format!(
        "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{}/hook\"\n",
        hook.addr
    )
}

pub fn burst(dir: &Path, upstream: &str, n: u32) {
    let text: String = (0..n).map(|i| access_line(i, 502, upstream, "-")).collect();
    append(&dir.join("logs/access.log"), &text);
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("state/gatewatch.db")).unwrap()
}

/// Checks the `X-Gatewatch-Signature-256` header: HMAC-SHA256 of the body with the secret.
fn signed(r: &super::receiver::Request, secret: &str) -> bool {
    use aws_lc_rs::hmac;
    let Some(sig) = r.header("x-gatewatch-signature-256") else {
        return false;
    };
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, r.body.as_bytes(), &bytes).is_ok()
}

#[test]
fn a_receiver_down_and_a_daemon_killed_meanwhile_still_get_every_alert_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let addr = super::upstreams::free_port();
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(
            dir.path(),
            &format!(
                "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nformat = \"json\"\nurl = \"http://{addr}/hook\"\nsecret_env = \"GW_HOOK_SECRET\"\ntimeout = \"2s\"\n"
            ),
        ),
    );
    let env = [("GW_HOOK_SECRET", "s3cret")];
    // The receiver is down: the alert is retried.
    let (mut first, rx) = start(&cfg, &env);
    burst(dir.path(), "10.0.7.7:9000", 25);
    wait_for(&rx, "incident opened", Duration::from_secs(10));
    wait_for(&rx, "attempt=3", Duration::from_secs(15));
    // The daemon dies in the middle of it, without a chance to save anything more.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let (_second, rx, seen) = start_seen(&cfg, &env);
    assert!(
        seen.iter().any(|l| l.contains("incident still open")),
        "{seen:#?}"
    );
    // The burst is over: the incident closes while the receiver is still down.
    wait_for(&rx, "incident resolved", Duration::from_secs(20));
    // The receiver comes back, busy at first.
    let hook = Receiver::start(addr);
    hook.answer(&[(503, None)]);
    hook.wait_for_ok(2, Duration::from_secs(20));
    // Nothing more comes: no repeat of either.
    std::thread::sleep(Duration::from_millis(1500));
    let reqs = hook.requests();
    let ok: Vec<_> = reqs.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        2,
        "the alert and the resolved note, each once: {reqs:#?}"
    );
    assert_eq!(reqs[0].status, 503, "the busy answer was retried");
    let (a, b) = (ok[0].json(), ok[1].json());
    assert_eq!(
        (a["kind"].as_str(), b["kind"].as_str()),
        (Some("opened"), Some("resolved"))
    );
    assert_eq!(a["version"], 1);
    assert_eq!(a["status"], "firing");
    assert_eq!(b["status"], "resolved");
    assert_eq!(a["host"], "proxy-test");
    assert_eq!(
        a["incidents"][0]["key"], b["incidents"][0]["key"],
        "one incident"
    );
    assert_eq!(a["incidents"][0]["upstream"], "10.0.7.7:9000");
    assert_eq!(
        a["entries"][0]["id"],
        "api/http-502-bad-gateway-upstream-unreachable"
    );
    let first_step = a["entries"][0]["workarounds"][0]["text"].as_str().unwrap();
    assert!(
        first_step.contains("curl -I http://10.0.7.7:9000/health"),
        "{first_step}"
    );
    assert!(b["incidents"][0]["closed"].is_string());
    // Signed with the shared secret; a delivery id per message, the same on its retries.
    assert!(reqs.iter().all(|r| signed(r, "s3cret")), "signature");
    assert_eq!(
        reqs[0].header("x-gatewatch-delivery"),
        ok[0].header("x-gatewatch-delivery")
    );
    assert_ne!(
        ok[0].header("x-gatewatch-delivery"),
        ok[1].header("x-gatewatch-delivery")
    );
    // The outbox agrees: both sent, the alert after several attempts.
    let rows: Vec<(String, String, i64)> = db(dir.path())
        .prepare("SELECT kind, state, attempts FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("opened", "sent"));
    assert!(rows[0].2 >= 4, "{rows:?}");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        ("resolved", "sent")
    );
}

#[test]
fn a_refused_alert_is_recorded_not_retried_and_the_next_one_still_goes() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    hook.answer(&[(400, None)]);
    let http = super::upstreams::free_port();
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &format!(
            "{}\n[http]\nlisten = \"{http}\"\n",
            daemon_config(dir.path(), &hook_channel(&hook),)
        ),
    );
    let (_d, rx) = start(&cfg, &[]);
    burst(dir.path(), "10.0.7.7:9000", 25);
    let log = wait_for(&rx, "alert failed; not retried", Duration::from_secs(10));
    let line = log.last().unwrap();
    assert!(line.contains("HTTP 400"), "{line}");
    // The resolved note is a new message: it goes.
    hook.wait_for_ok(1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[0].json()["kind"], "opened");
    assert_eq!(reqs[1].json()["kind"], "resolved");
    let (state, attempts, error): (String, i64, String) = db(dir.path())
        .query_row(
            "SELECT state, attempts, last_error FROM outbox WHERE kind = 'opened'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert!(error.contains("HTTP 400"), "{error}");
    let (_, metrics) = super::daemon::http_get(http, "/metrics");
    assert!(
        metrics.contains("gatewatch_alerts_failed_total{channel=\"hook\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatewatch_alerts_sent_total{channel=\"hook\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gatewatch_outbox_depth 0"), "{metrics}");
}

#[test]
fn forty_upstreams_failing_at_once_make_one_message_and_reminders_follow() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &hook_channel(&hook))
            .replace("renotify = \"off\"", "renotify = \"2s\""),
    );
    let (_d, _rx) = start(&cfg, &[]);
    // Every line of the same second: a second boundary crossed while writing them would end
    // some incidents a second later than the others, in a resolved note of their own.
    let stamp = chrono::Utc::now()
        .format("[%d/%b/%Y:%H:%M:%S +0000]")
        .to_string();
    let mut text = String::new();
    for n in 0..40 {
        for i in 0..12 {
            let line = access_line(i, 502, &format!("10.0.9.{n}:8080"), "-");
            let (open, close) = (line.find('[').unwrap(), line.find(']').unwrap());
            text.push_str(&format!("{}{stamp}{}", &line[..open], &line[close + 1..]));
        }
    }
    append(&dir.path().join("logs/access.log"), &text);
    let reqs = hook.wait_for_ok(2, Duration::from_secs(15));
    let first = reqs[0].json();
    assert_eq!(first["kind"], "opened");
    assert_eq!(
        first["incidents"].as_array().unwrap().len(),
        40,
        "one message for the 40 upstreams"
    );
    assert_eq!(first["entries"].as_array().unwrap().len(), 1);
    // Still open two seconds later: a reminder about the same 40.
    let second = reqs[1].json();
    assert_eq!(second["kind"], "reminder", "{second}");
    assert_eq!(second["incidents"].as_array().unwrap().len(), 40);
    // Then all 40 resolve, in one note.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let resolved = loop {
        let r = hook.requests();
        if let Some(x) = r.iter().find(|q| q.json()["kind"] == "resolved") {
            break x.json();
        }
        assert!(std::time::Instant::now() < deadline, "no resolved note");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(resolved["incidents"].as_array().unwrap().len(), 40);
}

#[test]
fn a_silence_keeps_alerts_quiet_but_the_incident_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &hook_channel(&hook)),
    );
    let c = cfg.to_str().unwrap();
    let o = run(&[
        "silence",
        "add",
        "--config",
        c,
        "--upstream",
        "10.0.7.*",
        "--for",
        "1h",
        "--reason",
        "deploying orders",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("silence 1: upstream 10.0.7.*"),
        "{}",
        stdout(&o)
    );
    let list = stdout(&run(&["silence", "list", "--config", c]));
    assert!(list.contains("deploying orders"), "{list}");

    let (_d, rx) = start(&cfg, &[]);
    burst(dir.path(), "10.0.7.7:9000", 25);
    let log = wait_for(&rx, "incident silenced", Duration::from_secs(10));
    assert!(log.last().unwrap().contains("deploying orders"), "{log:?}");
    // Another upstream is not silenced.
    burst(dir.path(), "10.0.8.8:9000", 25);
    let reqs = hook.wait_for_ok(1, Duration::from_secs(10));
    assert_eq!(reqs[0].json()["incidents"][0]["upstream"], "10.0.8.8:9000");
    // Both resolve; only the unsilenced one's note is sent.
    let reqs = hook.wait_for_ok(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hook.requests().len(), 2, "{reqs:#?}");
    for r in &reqs {
        assert_ne!(r.json()["incidents"][0]["upstream"], "10.0.7.7:9000");
    }
    // Recorded all the same, as silenced (the daily summary lists it).
    let silenced: Vec<(String, i64, Option<i64>)> = db(dir.path())
        .prepare("SELECT upstream, silenced, closed_ms FROM incidents ORDER BY upstream")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(silenced.len(), 2);
    assert_eq!(
        (silenced[0].0.as_str(), silenced[0].1),
        ("10.0.7.7:9000", 1)
    );
    assert_eq!(
        (silenced[1].0.as_str(), silenced[1].1),
        ("10.0.8.8:9000", 0)
    );
    assert!(silenced.iter().all(|s| s.2.is_some()), "both closed");
    // The daily summary lists both, the silenced one marked.
    let start: i64 = db(dir.path())
        .query_row("SELECT MIN(start_ms) FROM incidents", [], |r| r.get(0))
        .unwrap();
    let day = chrono::DateTime::from_timestamp_millis(start)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let r = summary_json(c, &day);
    assert_eq!(r["day"]["incidents"], 2, "{r}");
    assert_eq!(r["day"]["requests"], 50);
    let listed: Vec<(String, bool)> = r["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["upstream"].as_str().unwrap().to_string(),
                i["silenced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        listed.contains(&("10.0.7.7:9000".into(), true)),
        "{listed:?}"
    );
    assert!(
        listed.contains(&("10.0.8.8:9000".into(), false)),
        "{listed:?}"
    );
    // Removed: it is listed as ended.
    let o = run(&["silence", "remove", "--config", c, "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = stdout(&run(&["silence", "list", "--config", c]));
    assert_eq!(list.trim(), "no silences");
    let o = run(&["silence", "remove", "--config", c, "7"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("there is no silence 7"));
}

#[test]
fn test_alert_posts_every_webhook_format_and_reports_each_result() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let a = hook.addr;
    let mut channels = String::new();
    for f in [
        "json",
        "slack",
        "teams",
        "discord",
        "alertmanager",
        "pagerduty",
    ] {
        channels.push_str(&format!(
            "[[channel]]\nname = \"{f}\"\nkind = \"webhook\"\nformat = \"{f}\"\nurl = \"http://{a}/{f}\"\nsecret_env = \"GW_SECRET\"\n\n"
        ));
    }
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &channels),
    );
    let o = gatewatch()
        .args(["test-alert", "--config", cfg.to_str().unwrap()])
        .env("GW_SECRET", "routing-or-hmac")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    for f in [
        "json",
        "slack",
        "teams",
        "discord",
        "alertmanager",
        "pagerduty",
    ] {
        assert!(stdout(&o).contains(&format!("{f}: sent")), "{}", stdout(&o));
    }
    let reqs = hook.requests();
    let by = |p: &str| {
        reqs.iter()
            .find(|r| r.path == format!("/{p}"))
            .unwrap_or_else(|| panic!("nothing posted to /{p}"))
    };
    let json = by("json").json();
    assert_eq!(json["version"], 1);
    assert!(json["subject"].as_str().unwrap().starts_with("[test] "));
    assert!(signed(by("json"), "routing-or-hmac"));
    let slack = by("slack").json();
    assert_eq!(slack["blocks"][0]["type"], "header");
    let teams = by("teams").json();
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let discord = by("discord").json();
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    let am = by("alertmanager").json();
    assert_eq!(am[0]["labels"]["alertname"], "GatewatchUpstreamBurst");
    assert_eq!(am[0]["labels"]["upstream"], "10.0.1.5:8080");
    assert!(am[0].get("endsAt").is_none(), "firing");
    let pd = by("pagerduty").json();
    assert_eq!(pd["routing_key"], "routing-or-hmac");
    assert_eq!(pd["event_action"], "trigger");
    assert!(pd["dedup_key"].as_str().unwrap().starts_with("gw-"));
    // PagerDuty gets its routing key in the body, not an HMAC header.
    assert!(
        by("pagerduty")
            .header("x-gatewatch-signature-256")
            .is_none()
    );

    // One channel refuses: its exact error, and exit status 1.
    hook.answer(&[(404, None)]);
    let o = gatewatch()
        .args([
            "test-alert",
            "--config",
            cfg.to_str().unwrap(),
            "--channel",
            "slack",
        ])
        .env("GW_SECRET", "x")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("slack: FAILED: 127.0.0.1: HTTP 404 Not Found"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "test-alert",
        "--config",
        cfg.to_str().unwrap(),
        "--channel",
        "nope",
    ]);
    assert!(
        stderr(&o).contains("no channel is named \"nope\""),
        "{}",
        stderr(&o)
    );
}

/// A real SMTP server with STARTTLS and AUTH, and a daemon config mailing `to` through it.
fn mail_setup(to: &str) -> Option<(super::smtp::Smtp, tempfile::TempDir, PathBuf)> {
    if !super::smtp::have_smtp() {
        return None;
    }
    let smtp = super::smtp::Smtp::start("starttls", &[]);
    let dir = tempfile::tempdir().unwrap();
    let channel = email_channel(&smtp, "starttls", dir.path(), to);
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &channel),
    );
    Some((smtp, dir, cfg))
}

pub fn email_channel(smtp: &super::smtp::Smtp, tls: &str, dir: &Path, to: &str) -> String {
    let pw = write(
        dir,
        "smtp-password",
        &format!("{}\n", super::smtp::PASSWORD),
    );
    format!(
        "[[channel]]\nname = \"mail\"\nkind = \"email\"\nserver = \"127.0.0.1:{}\"\ntls = \"{tls}\"\nfrom = \"gatewatch@proxy-test.example\"\nto = [\"{to}\"]\nusername = \"{}\"\npassword_file = \"{}\"\nca_file = \"{}\"\ntimeout = \"5s\"\n",
        smtp.port,
        super::smtp::USER,
        pw.display(),
        smtp.ca().display()
    )
}

#[test]
fn email_over_starttls_with_auth_threads_the_resolved_note_under_its_alert() {
    let Some((smtp, dir, cfg)) = mail_setup("oncall@example.com") else {
        return;
    };
    let (_d, rx) = start(&cfg, &[]);
    // A hostile request path travels in the log line into the mail.
    let line = access_line(1, 502, "10.0.7.7:9000", "-")
        .replace("/api/v1/orders", "/<script>alert(1)</script>");
    append(&dir.path().join("logs/access.log"), &line.repeat(25));
    let mails = smtp.wait_for(2, Duration::from_secs(30));
    let log: Vec<String> = rx.try_iter().collect();
    let (alert, resolved) = (&mails[0], &mails[1]);
    let env = smtp.envelope(1);
    assert_eq!(env["auth_user"], super::smtp::USER, "authenticated");
    assert_eq!(env["tls"], true, "over STARTTLS");
    assert_eq!(env["rcpt_tos"], serde_json::json!(["oncall@example.com"]));
    let subject = super::smtp::header(alert, "Subject").unwrap();
    assert!(
        subject
            .starts_with("[Incident] proxy-test: 502 burst: upstream 10.0.7.7:9000 unreachable — "),
        "{subject}"
    );
    assert!(alert.contains("multipart/alternative"), "{alert}");
    assert!(
        alert.contains("text/plain") && alert.contains("text/html"),
        "{alert}"
    );
    // The text part names the first thing to do, with the upstream filled in.
    let body = decode_qp(alert);
    assert!(
        body.contains("curl -I http://10.0.7.7:9000/health"),
        "{body}"
    );
    assert!(body.contains("Not worth trying"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "HTML part escaped: {body}");
    assert!(!html_part(&body).contains("<script>alert(1)"), "{body}");
    let id = super::smtp::header(alert, "Message-ID").unwrap();
    assert_eq!(
        super::smtp::header(resolved, "In-Reply-To").as_deref(),
        Some(id.as_str()),
        "the resolved note is threaded under the alert"
    );
    assert!(
        super::smtp::header(resolved, "Subject")
            .unwrap()
            .starts_with("[Resolved] proxy-test:")
    );
    // The password never reaches the daemon's log.
    assert!(!log.iter().any(|l| l.contains(super::smtp::PASSWORD)));
}

/// `gatewatch summary` of a day (UTC) from the state, as JSON.
pub fn summary_json(config: &str, day: &str) -> serde_json::Value {
    let o = run(&[
        "summary",
        "--config",
        config,
        "--date",
        day,
        "--timezone",
        "UTC",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// The body of a mail with quoted-printable soft breaks and `=XX` escapes undone.
pub fn decode_qp(raw: &str) -> String {
    let s = raw.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_part(body: &str) -> &str {
    body.find("<!DOCTYPE html>").map_or("", |i| &body[i..])
}

#[test]
fn test_alert_over_implicit_tls_reports_a_wrong_password_and_a_refused_address() {
    if !super::smtp::have_smtp() {
        return;
    }
    let smtp = super::smtp::Smtp::start("implicit", &["nobody@example.com"]);
    let dir = tempfile::tempdir().unwrap();
    let good = email_channel(&smtp, "implicit", dir.path(), "oncall@example.com");
    let cfg = write(dir.path(), "good.toml", &daemon_config(dir.path(), &good));
    let o = run(&["test-alert", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "mail: sent");
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert!(
        super::smtp::header(&mails[0], "Subject")
            .unwrap()
            .starts_with("[test] [Incident]")
    );
    assert_eq!(smtp.envelope(1)["tls"], true);

    // A refused recipient: permanent.
    let refused = good.replace("oncall@example.com", "nobody@example.com");
    let cfg = write(
        dir.path(),
        "refused.toml",
        &daemon_config(dir.path(), &refused),
    );
    let o = run(&["test-alert", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("mail: FAILED") && out.contains("550"), "{out}");
    assert!(out.contains("(permanent)"), "{out}");

    // A wrong password: the server's answer, and never the password.
    let cfg = write(dir.path(), "wrong.toml", &daemon_config(dir.path(), &good));
    write(dir.path(), "smtp-password", "hunter2\n");
    let o = run(&["test-alert", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("mail: FAILED") && out.contains("535"), "{out}");
    assert!(!out.contains("hunter2") && !stderr(&o).contains("hunter2"));
    assert_eq!(smtp.messages().len(), 1, "nothing else was accepted");
    smtp.stop();
}

#[test]
fn the_daily_summary_missed_while_down_is_sent_once_when_the_daemon_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let a = hook.addr;
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(
            dir.path(),
            &format!(
                "[summary]\nat = \"00:00\"\ntimezone = \"UTC\"\n\n\
                 [[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{a}/json\"\n\n\
                 [[channel]]\nname = \"chat\"\nkind = \"webhook\"\nformat = \"slack\"\nurl = \"http://{a}/slack\"\n\n\
                 [[channel]]\nname = \"am\"\nkind = \"webhook\"\nformat = \"alertmanager\"\nurl = \"http://{a}/am\"\n"
            ),
        ),
    );
    // gatewatch has been running since the day before yesterday (its state says so), and
    // yesterday's traffic is in the log: 30 answered requests and 8 failures at 10:00 UTC
    // (too few for an incident).
    let c = cfg.to_str().unwrap();
    // A state, as the daemon's first start makes it.
    gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let yesterday = chrono::Utc::now().date_naive().pred_opt().unwrap();
    let two_days = (chrono::Utc::now() - chrono::Duration::days(2)).timestamp_millis();
    db(dir.path())
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'created_ms'",
            [two_days.to_string()],
        )
        .unwrap();
    let t = yesterday.format("%d/%b/%Y:10:00:00 +0000").to_string();
    let mut text = String::new();
    for i in 0..38u32 {
        let (status, connect) = if i < 30 { (200, "0.001") } else { (502, "-") };
        text.push_str(&format!(
            "203.0.113.{i} - - [{t}] \"GET /v1 HTTP/1.1\" {status} 157 \"-\" \"curl/8.5.0\" api.example.com 10.0.1.5:8080 {status} {connect} - 0.000 0.001\n"
        ));
    }
    append(&dir.path().join("logs/access.log"), &text);

    let (d, rx, seen) = start_seen(&cfg, &[]);
    if !seen.iter().any(|l| l.contains("daily summary queued")) {
        wait_for(&rx, "daily summary queued", Duration::from_secs(10));
    }
    let reqs = hook.wait_for_ok(2, Duration::from_secs(10));
    let json = reqs
        .iter()
        .find(|r| r.path == "/json")
        .expect("json summary")
        .json();
    assert_eq!(json["kind"], "summary");
    let s = &json["summary"];
    assert_eq!(s["date"], yesterday.format("%Y-%m-%d").to_string());
    assert_eq!(s["day"]["requests"], 38);
    assert_eq!(s["day"]["failures"], 8);
    assert_eq!(s["hours"][10]["failures"], 8);
    assert!(
        json["subject"]
            .as_str()
            .unwrap()
            .starts_with("[Summary] proxy-test: ")
    );
    let slack = reqs
        .iter()
        .find(|r| r.path == "/slack")
        .expect("slack summary")
        .json();
    assert_eq!(slack["blocks"][0]["type"], "header");
    // Alertmanager is for alerts, not reports.
    assert!(!reqs.iter().any(|r| r.path == "/am"));
    // Once both are recorded as sent, the daemon goes away. (Killed between a receiver's
    // answer and that record, a message is sent again: receivers see the same id.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db(dir.path())
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never recorded as sent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(d);

    // Restarted: that day's summary is not sent again.
    let (_d, _rx) = start(&cfg, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let all = hook.requests();
    assert_eq!(all.len(), 2, "once per channel, and nothing else: {all:#?}");
    // `summary --send` sends any day on demand.
    let o = run(&[
        "summary",
        "--config",
        c,
        "--send",
        "--date",
        &yesterday.format("%Y-%m-%d").to_string(),
        "--timezone",
        "UTC",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "hook: sent\nchat: sent\n");
}

#[test]
fn the_summary_mail_is_text_and_html_with_the_chart_inline() {
    let Some((smtp, dir, cfg)) = mail_setup("team@example.com") else {
        return;
    };
    let c = cfg.to_str().unwrap();
    // A state, as the daemon's first start makes it.
    gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let o = run(&[
        "summary",
        "--config",
        c,
        "--send",
        "--date",
        "2024-05-01",
        "--timezone",
        "UTC",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "mail: sent\n");
    let mail = &smtp.wait_for(1, Duration::from_secs(10))[0];
    assert_eq!(
        super::smtp::header(mail, "Subject").unwrap(),
        "[Summary] proxy-test: 2024-05-01 — 0 incident(s), 0 5xx of 0 requests"
    );
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("multipart/related"), "{mail}");
    assert!(mail.contains("Content-Type: image/png"), "{mail}");
    assert!(mail.contains("Content-ID: <chart-2024-05-01>"), "{mail}");
    assert!(
        decode_qp(mail).contains("src=\"cid:chart-2024-05-01\""),
        "{mail}"
    );
    smtp.stop();
}

/// The webhook's signing key and the mail password never appear in the daemon's log, its
/// `/metrics`, its status page, or an alert.
#[test]
fn secrets_stay_out_of_logs_metrics_pages_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let http = super::upstreams::free_port();
    let secret = "TOPSECRET-hook-4711";
    let password = "TOPSECRET-mail-0815";
    std::fs::write(dir.path().join("mail-password"), password).unwrap();
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &format!(
            "{}\n[http]\nlisten = \"{http}\"\n",
            daemon_config(
                dir.path(),
                &format!(
                    "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{}/hook\"\nsecret_env = \"GW_HOOK_SECRET\"\n\n\
                     [[channel]]\nname = \"mail\"\nkind = \"email\"\nserver = \"{}\"\nfrom = \"gw@example.com\"\nto = [\"oncall@example.com\"]\nusername = \"gw\"\npassword_file = \"{}/mail-password\"\ntimeout = \"1s\"\n",
                    hook.addr,
                    super::upstreams::closed_port(),
                    dir.path().display()
                ),
            )
        ),
    );
    let (mut d, rx) = start(&cfg, &[("GW_HOOK_SECRET", secret)]);
    burst(dir.path(), "10.0.7.7:9000", 25);
    hook.wait_for_ok(1, Duration::from_secs(15));
    // The mail server is not there: its failures are logged, with the error, not the password.
    wait_for(&rx, "channel=mail", Duration::from_secs(15));
    let mut seen = String::new();
    for path in ["/metrics", "/api/incidents", "/"] {
        seen += &super::daemon::http_get(http, path).1;
    }
    for r in hook.requests() {
        seen += &r.body;
        for (k, v) in &r.headers {
            seen += &format!("{k}: {v}\n");
        }
    }
    super::daemon::unsafe_kill(d.0.id(), "TERM");
    d.0.wait().unwrap();
    seen += &rx.try_iter().collect::<Vec<_>>().join("\n");
    assert!(seen.contains("10.0.7.7:9000"), "the checks saw the alert");
    assert!(!seen.contains(secret), "the webhook secret leaked");
    assert!(!seen.contains(password), "the mail password leaked");
}

/// Issue 15, the safety net: a burst of 500s that no entry explains (the application failing
/// behind a healthy proxy) alerts through the channels like any incident, as
/// `unknown/5xx-burst`, saying that no cause is known, and resolves; the same failures as a
/// trickle among many good requests (below the share) alert nobody, and `scan --events` keeps
/// their entry empty (the safety net explains nothing).
#[test]
fn a_burst_of_5xx_no_entry_explains_alerts_as_unknown_and_a_trickle_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &hook_channel(&hook)),
    );
    let (_d, _rx) = start(&cfg, &[]);
    let text: String = (0..25)
        .map(|i| access_line(i, 500, "10.0.3.3:8080", "0.001"))
        .collect();
    append(&dir.path().join("logs/access.log"), &text);
    hook.wait_for_ok(2, Duration::from_secs(30));
    let reqs = hook.requests();
    let opened = reqs[0].json();
    assert_eq!(opened["kind"], "opened", "{opened:#}");
    let inc = &opened["incidents"][0];
    assert_eq!(inc["entry"], "unknown/5xx-burst");
    assert_eq!(inc["upstream"], "10.0.3.3:8080");
    let headline = inc["headline"].as_str().unwrap();
    assert!(
        headline.starts_with("500 burst on 10.0.3.3:8080 with no known cause"),
        "{headline}"
    );
    let title = opened["entries"][0]["title"].as_str().unwrap();
    assert!(title.contains("no workaround known yet"), "{title}");
    assert_eq!(reqs[1].json()["kind"], "resolved");

    // A trickle: one 500 among every twenty requests, over a minute of log time.
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut trickle = String::new();
    for i in 0..1200u32 {
        let t = (start + chrono::Duration::milliseconds(i as i64 * 50))
            .format("%d/%b/%Y:%H:%M:%S +0000")
            .to_string();
        let status = if i % 20 == 0 { 500 } else { 200 };
        trickle += &format!(
            "10.0.0.{} - - [{t}] \"GET /api HTTP/1.1\" {status} 5 \"-\" \"curl\"\n",
            i % 200
        );
    }
    let log = write(dir.path(), "trickle.log", &trickle);
    let o = run(&["scan", "--json", "--timezone", "UTC", log.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "no incident from a trickle");
    let evs = events(&[&log], &[]);
    let fivexx: Vec<_> = evs.iter().filter(|e| e["status"] == 500).collect();
    assert_eq!(fivexx.len(), 60);
    assert!(
        fivexx
            .iter()
            .all(|e| e["cause"] == "other_5xx" && e["entry"].is_null())
    );
}

/// Issue 15, never silently wrong: the access log's format changes under gatewatch (a new
/// log_format after a proxy upgrade). Once a fifth of its latest lines do not parse, the
/// format-drift alarm goes out through the channels, naming the file and showing lines that
/// do not parse, and `/metrics` and the status page say so; when the lines parse again it
/// resolves.
#[test]
fn a_log_whose_lines_stop_parsing_raises_the_format_drift_alarm_and_it_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let http = super::upstreams::free_port();
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &format!(
            "{}\n[http]\nlisten = \"{http}\"\n",
            daemon_config(dir.path(), &hook_channel(&hook))
        ),
    );
    let (_d, _rx) = start(&cfg, &[]);
    let log = dir.path().join("logs/access.log");
    let good = |n: u32| -> String {
        (0..n)
            .map(|i| access_line(i, 200, "10.0.1.5:8080", "0.001"))
            .collect()
    };
    append(&log, &good(50));
    // The new format: JSON lines that the configured log_format does not read.
    let new: String = (0..200)
        .map(|i| {
            format!(
                "{{\"time\":\"{}\",\"status\":200,\"n\":{i}}}\n",
                chrono::Utc::now().to_rfc3339()
            )
        })
        .collect();
    append(&log, &new);
    hook.wait_for_ok(1, Duration::from_secs(15));
    let opened = hook.requests()[0].json();
    assert_eq!(opened["kind"], "opened", "{opened:#}");
    let inc = &opened["incidents"][0];
    assert_eq!(inc["entry"], "gatewatch/format-drift");
    let headline = inc["headline"].as_str().unwrap();
    assert!(
        headline.starts_with("Format drift: ")
            && headline.ends_with(&format!("lines of {} did not parse", log.display())),
        "{headline}"
    );
    let samples = inc["samples"].to_string();
    assert!(samples.contains("\\\"status\\\":200"), "{samples}");
    let file = log.display().to_string();
    let (_, metrics) = super::daemon::http_get(http, "/metrics");
    assert!(
        metrics.contains(&format!("gatewatch_format_drift{{file=\"{file}\"}} 1")),
        "{metrics}"
    );
    let (_, page) = super::daemon::http_get(http, "/");
    assert!(page.contains("format drift"), "{page}");

    // The old format again: the alarm resolves.
    append(&log, &good(300));
    hook.wait_for_ok(2, Duration::from_secs(15));
    let resolved = hook.requests()[1].json();
    assert_eq!(resolved["kind"], "resolved", "{resolved:#}");
    assert_eq!(resolved["incidents"][0]["entry"], "gatewatch/format-drift");
    let (_, metrics) = super::daemon::http_get(http, "/metrics");
    assert!(
        metrics.contains(&format!("gatewatch_format_drift{{file=\"{file}\"}} 0")),
        "{metrics}"
    );
}

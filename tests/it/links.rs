//! The knowledge base learns from the alert itself (issue 17): a real `gatewatch run` mails its
//! alert through the real SMTP server; the test follows the mail's signed links as a person
//! would (the page, then its button), and the next alert of the same entry shows the local
//! record. Forged, altered, expired and replayed links are refused; the order of workarounds
//! moves only after enough incidents.

use super::daemon::{access_line, http_request as http};
use super::delivery::{daemon_config, decode_qp, email_channel, start_seen, summary_json, write};
use super::*;
use gatewatch::engine::kb::evidence::{Item, Verdict};
use gatewatch::render::links::{Action, Signer};
use gatewatch::store::outcomes::Outcome;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const KEY: &str = "a test key for the links, 32 bytes";
const ENTRY: &str = "api/http-502-bad-gateway-upstream-unreachable";

/// The mail's text part: every `label: url` link line of the first incident.
fn links(mail: &str) -> Vec<(String, String)> {
    let text = decode_qp(mail);
    let text = &text[..text.find("<!DOCTYPE html>").unwrap_or(text.len())];
    text.lines()
        .filter_map(|l| {
            let (label, url) = l.trim().split_once(": http://")?;
            Some((label.to_string(), format!("http://{url}")))
        })
        .collect()
}

fn link<'a>(links: &'a [(String, String)], label: &str) -> &'a str {
    &links
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label:?} link in {links:?}"))
        .1
}

/// The alert (not the resolved note) about `upstream` among the mails.
fn alert_for<'a>(mails: &'a [String], upstream: &str) -> &'a str {
    mails
        .iter()
        .find(|m| {
            smtp::header(m, "Subject")
                .is_some_and(|s| s.starts_with("[Incident]") && s.contains(upstream))
        })
        .unwrap_or_else(|| panic!("no alert about {upstream}"))
}

/// The path and query of a link to our server, and its form fields.
fn target(url: &str) -> (String, String) {
    let path = url.trim_start_matches("http://");
    let path = &path[path.find('/').unwrap()..];
    let query = path.split_once('?').unwrap().1.to_string();
    (path.to_string(), query)
}

/// The workarounds of the mail's text part, by their numbers in the order shown, with what
/// each says about the local record.
fn runbook(mail: &str) -> Vec<(usize, String)> {
    let text = decode_qp(mail);
    let text = &text[..text.find("<!DOCTYPE html>").unwrap_or(text.len())];
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let (n, rest) = l.split_once(". [")?;
            let n: usize = n.parse().ok()?;
            Some((n, rest.split_once(']')?.0.to_string()))
        })
        .collect()
}

/// A burst at `upstream` that goes on (a failure every 200 ms, at most two minutes) until the
/// flag is cleared.
fn keep_failing(
    log_file: &std::path::Path,
    upstream: &'static str,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let failing = Arc::new(AtomicBool::new(true));
    let (flag, log_file) = (failing.clone(), log_file.to_path_buf());
    let writer = std::thread::spawn(move || {
        let mut i = 0;
        while flag.load(Ordering::Relaxed) && i < 600 {
            let n = if i == 0 { 25 } else { 1 };
            let lines: String = (0..n).map(|c| access_line(c, 502, upstream, "-")).collect();
            daemon::append(&log_file, &lines);
            i += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    (failing, writer)
}

#[test]
fn a_link_followed_from_the_mail_records_what_fixed_it_and_the_next_alert_shows_it() {
    if !smtp::have_smtp() {
        return;
    }
    let mail = smtp::Smtp::start("starttls", &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_file = write(d, "link-key", &format!("{KEY}\n"));
    let listen = upstreams::free_port();
    let channel = email_channel(&mail, "starttls", d, "oncall@example.com");
    let text = daemon_config(d, &channel).replace(
        "[alerts]",
        &format!(
            "[http]\nlisten = \"{listen}\"\npublic_url = \"http://{listen}/\"\nlink_key_file = \"{}\"\n\n[alerts]",
            key_file.display()
        ),
    );
    let cfg = write(d, "gatewatch.toml", &text);
    let (_gw, _log, _) = start_seen(&cfg, &[]);
    let log_file = d.join("logs/access.log");

    // A burst that goes on until the test is done with the open incident.
    let (failing, writer) = keep_failing(&log_file, "10.0.7.7:9000");
    let mails = mail.wait_for(1, Duration::from_secs(30));
    let alert = &mails[0];
    let found = links(alert);
    // Ack, Snooze, then "Fixed by" and "Tried: no effect" for each workaround.
    let labels: Vec<&str> = found.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "Ack",
            "Snooze 1 h",
            "Fixed by #1",
            "Fixed by #2",
            "Fixed by #3",
            "Tried #1: no effect",
            "Tried #2: no effect",
            "Tried #3: no effect"
        ],
        "{alert}"
    );
    assert!(
        found
            .iter()
            .all(|(_, u)| u.starts_with(&format!("http://{listen}/act?i=gw-"))),
        "{found:?}"
    );
    // The HTML part carries them too.
    assert!(decode_qp(alert).contains(">Fixed by #2</a>"), "{alert}");

    let state = || {
        gatewatch::store::State::open_read_only(&d.join("state"))
            .unwrap()
            .unwrap()
    };
    let (fixed_path, fixed_form) = target(link(&found, "Fixed by #2"));
    let key = fixed_form
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("i=")
        .to_string();

    // Following the link shows what it will do; nothing is recorded before the button.
    let (code, page) = http(listen, "GET", &fixed_path, None);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Record that workaround #2 fixed it"),
        "{page}"
    );
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert!(
        state().outcomes(&key).unwrap().is_empty(),
        "a GET recorded a verdict"
    );

    // Altered links: another action, another incident, a later expiry, another signature.
    for (what, from, to) in [
        ("action", "a=fixed:workaround:2", "a=fixed:workaround:1"),
        ("incident", "i=gw-", "i=gw-0"),
        ("expiry", "&x=", "&x=9"),
    ] {
        let forged = fixed_path.replacen(from, to, 1);
        let (code, page) = http(listen, "GET", &forged, None);
        assert_eq!(code, 403, "{what}: {page}");
        assert!(page.contains("This link is not valid"), "{page}");
        let (code, _) = http(
            listen,
            "POST",
            "/act",
            Some(forged.split_once('?').unwrap().1),
        );
        assert_eq!(code, 403, "{what}");
    }
    // Made with another key.
    let other = Signer::new(b"somebody else's key of 32 bytes!", "http://x", 3600);
    let stranger = other.link(&key, &Action::Ack, gatewatch::clock::now_ms());
    let (code, _) = http(listen, "GET", &target(&stranger).0, None);
    assert_eq!(code, 403);
    // Made with our key but expired a minute ago.
    let ours = Signer::new(KEY.as_bytes(), &format!("http://{listen}"), 60);
    let old = ours.link(&key, &Action::Ack, gatewatch::clock::now_ms() - 120_000);
    let (code, page) = http(listen, "GET", &target(&old).0, None);
    assert_eq!(code, 410, "{page}");
    assert!(page.contains("expired"), "{page}");
    let (code, _) = http(listen, "POST", "/act", Some(&target(&old).1));
    assert_eq!(code, 410);
    assert!(state().outcomes(&key).unwrap().is_empty());

    // The button: recorded once.
    let (code, page) = http(listen, "POST", "/act", Some(&fixed_form));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Recorded"), "{page}");
    let (code, page) = http(listen, "POST", "/act", Some(&fixed_form));
    assert_eq!(code, 409, "replayed: {page}");
    let (code, _) = http(listen, "GET", &fixed_path, None);
    assert_eq!(code, 409, "a used link says so");
    let outcomes = state().outcomes(&key).unwrap();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(
        (
            outcomes[0].item,
            outcomes[0].verdict,
            outcomes[0].via.as_str()
        ),
        (Item::Workaround(2), Verdict::Fixed, "link")
    );

    // Ack while it is open.
    let (ack_path, ack_form) = target(link(&found, "Ack"));
    assert_eq!(http(listen, "GET", &ack_path, None).0, 200);
    let (code, page) = http(listen, "POST", "/act", Some(&ack_form));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("acknowledged"), "{page}");
    assert!(state().acked(&key).unwrap().is_some());

    // The burst ends: the resolved note asks what fixed it, with the same kind of links and
    // no Ack or Snooze.
    failing.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    let mails = mail.wait_for(2, Duration::from_secs(30));
    let resolved = links(&mails[1]);
    assert!(
        decode_qp(&mails[1]).contains("What fixed it?"),
        "{}",
        mails[1]
    );
    assert!(
        resolved.iter().any(|(l, _)| l == "Fixed by #1"),
        "{resolved:?}"
    );
    assert!(
        !resolved
            .iter()
            .any(|(l, _)| l == "Ack" || l == "Snooze 1 h")
    );
    // Its links are new ones (their own signatures), not the alert's.
    assert_ne!(link(&resolved, "Fixed by #2"), link(&found, "Fixed by #2"));
    // Ack on an ended incident: nothing to do.
    let (ack2_path, ack2_form) = target(link(&found, "Snooze 1 h"));
    let _ = ack2_path;
    let (code, page) = http(listen, "POST", "/act", Some(&ack2_form));
    assert_eq!(code, 409, "{page}");
    assert!(page.contains("has ended"), "{page}");

    // The next alert of the same entry shows the local record; one vote moved nothing.
    let burst: String = (0..25)
        .map(|c| access_line(c, 502, "10.0.8.8:9000", "-"))
        .collect();
    daemon::append(&log_file, &burst);
    let mails = mail.wait_for(4, Duration::from_secs(30));
    let second = alert_for(&mails, "10.0.8.8");
    let steps = runbook(second);
    assert_eq!(
        steps.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3],
        "{second}"
    );
    assert!(steps[1].1.ends_with("· 1 of 1 here"), "{steps:?}");
    assert!(!steps[0].1.contains("here"), "{steps:?}");

    // Five more incidents here where #3 fixed it and #1 did nothing: past the threshold, #3
    // leads the next alert.
    {
        let mut st = gatewatch::store::State::connect(&d.join("state")).unwrap();
        let mut v = Vec::new();
        for n in 0..5 {
            for (item, verdict) in [
                (Item::Workaround(3), Verdict::Fixed),
                (Item::Workaround(1), Verdict::NoEffect),
            ] {
                v.push(Outcome {
                    incident: format!("gw-earlier-{n}"),
                    entry: ENTRY.into(),
                    item,
                    verdict,
                    who: "test".into(),
                    via: "cli".into(),
                    note: None,
                    at_ms: 1,
                });
            }
        }
        st.record_outcomes(&v).unwrap();
    }
    // This one stays open while the test looks at the status page.
    let (failing, writer) = keep_failing(&log_file, "10.0.9.9:9000");
    let mails = mail.wait_for(5, Duration::from_secs(30));
    let third = alert_for(&mails, "10.0.9.9");
    let steps = runbook(third);
    assert_eq!(steps[0].0, 3, "{steps:?}");
    assert!(steps[0].1.ends_with("· 5 of 5 here"), "{steps:?}");
    assert_eq!(
        steps.last().unwrap().0,
        1,
        "#1 never worked here: {steps:?}"
    );
    // Its links follow the order shown.
    let labels: Vec<String> = links(third).into_iter().map(|(l, _)| l).collect();
    assert_eq!(labels[2], "Fixed by #3", "{labels:?}");
    // The status page shows the open incident's runbook in the same order, with the record.
    let (code, page) = http(listen, "GET", "/", None);
    assert_eq!(code, 200);
    let first = page
        .find("5 of 5 here")
        .unwrap_or_else(|| panic!("no local record on the status page: {page}"));
    let never = page
        .find("0 of 5 here")
        .expect("#1's record on the status page");
    assert!(first < never, "{page}");
    failing.store(false, Ordering::Relaxed);
    writer.join().unwrap();

    // The daily summary lists the incident nobody said anything about (10.0.8.8's), not the
    // one fixed through the link.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let r = summary_json(cfg.to_str().unwrap(), &today);
    let without: Vec<&str> = r["without_feedback"]
        .as_array()
        .unwrap_or_else(|| panic!("no feedback section: {r}"))
        .iter()
        .map(|i| i["upstream"].as_str().unwrap())
        .collect();
    assert!(without.contains(&"10.0.8.8:9000"), "{without:?}");
    assert!(!without.contains(&"10.0.7.7:9000"), "{without:?}");
    let text = run(&[
        "summary",
        "--config",
        cfg.to_str().unwrap(),
        "--date",
        &today,
        "--timezone",
        "UTC",
    ]);
    assert!(
        stdout(&text).contains("Still without feedback"),
        "{}",
        stdout(&text)
    );
    // Its first step is the one that worked here, with the record beside it.
    assert!(
        r["entries"][0]["first_step_here"]
            .as_str()
            .is_some_and(|h| h.contains("5 of 5 here")),
        "{}",
        r["entries"]
    );
}

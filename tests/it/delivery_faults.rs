//! Delivery when receivers misbehave (issue 12): a mail server that goes silent after its
//! banner, a webhook receiver slower than the timeout, tokens in webhook URLs. Real parts: a
//! real TCP server, the real HTTP receiver, `gatewatch` as a process.

use super::daemon::wait_for;
use super::delivery::{burst, daemon_config, db, start_seen, write};
use super::receiver::Receiver;
use super::*;
use std::io::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A mail server that sends its banner and then says nothing more, holding every connection
/// open until dropped.
struct SilentSmtp {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentSmtp {
    fn start() -> SilentSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: at most 50 connections, and stops when told.
            while !flag.load(Ordering::SeqCst) && held.len() < 50 {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"220 silent.example ESMTP\r\n");
                        held.push(s);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SilentSmtp {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentSmtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn silent_mail_channel(port: u16, timeout: &str) -> String {
    format!(
        "[[channel]]\nname = \"mail\"\nkind = \"email\"\nserver = \"127.0.0.1:{port}\"\ntls = \"none\"\nfrom = \"gw@example.com\"\nto = [\"ops@example.com\"]\ntimeout = \"{timeout}\"\n"
    )
}

#[test]
fn a_mail_server_silent_after_its_banner_holds_neither_a_send_nor_a_stop() {
    let smtp = SilentSmtp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &silent_mail_channel(smtp.port, "2s")),
    );
    // test-alert: the send ends at the channel's timeout, with a clear error.
    let started = Instant::now();
    let o = run(&["test-alert", "--config", cfg.to_str().unwrap()]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "test-alert took {took:?}");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("mail: FAILED: "), "{}", stdout(&o));

    // The daemon: an incident's mail is stuck at a silent server (a long timeout); SIGTERM
    // still stops it at once, and the message waits in the outbox for the next start.
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &silent_mail_channel(smtp.port, "120s")),
    );
    let (mut d, rx, _) = start_seen(&cfg, &[]);
    burst(dir.path(), "10.0.9.1:9000", 25);
    wait_for(&rx, "incident opened", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    let stopping = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = d.0.wait().unwrap();
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    let (state, composed): (String, Option<String>) = db(dir.path())
        .query_row(
            "SELECT state, message_id FROM outbox WHERE channel = 'mail' AND kind = 'opened'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "pending");
    assert!(
        composed.is_some(),
        "the message's rows are fixed at its first try"
    );
}

#[test]
fn a_delivery_id_always_carries_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let channel = format!(
        "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{}/hook\"\ntimeout = \"1s\"\n",
        hook.addr
    );
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &channel),
    );
    // The receiver takes longer than the timeout for its first three requests.
    hook.slow(3, Duration::from_millis(1500));
    let (_d, rx, _) = start_seen(&cfg, &[]);
    burst(dir.path(), "10.0.9.1:9000", 25);
    wait_for(&rx, "incident opened", Duration::from_secs(10));
    // The first message is being tried; a second upstream fails meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.requests().is_empty() {
        assert!(Instant::now() < deadline, "no request");
        std::thread::sleep(Duration::from_millis(20));
    }
    burst(dir.path(), "10.0.9.2:9000", 25);
    let reqs = hook.wait_for_ok(5, Duration::from_secs(30));
    let upstreams = |r: &super::receiver::Request| -> Vec<String> {
        r.json()["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["upstream"].as_str().unwrap().to_string())
            .collect()
    };
    let mut by_id: std::collections::BTreeMap<String, Vec<Vec<String>>> = Default::default();
    for r in &reqs {
        let id = r.header("x-gatewatch-delivery").unwrap().to_string();
        by_id.entry(id).or_default().push(upstreams(r));
    }
    for (id, contents) in &by_id {
        assert!(
            contents.windows(2).all(|w| w[0] == w[1]),
            "{id} went out with different contents: {contents:?}"
        );
    }
    // The slow receiver saw the first message several times, under one id, with one upstream.
    let first = reqs[0].header("x-gatewatch-delivery").unwrap();
    assert!(by_id[first].len() >= 2, "{by_id:#?}");
    assert_eq!(by_id[first][0], ["10.0.9.1:9000"]);
    // The second upstream reached the receiver, in a message of its own.
    assert!(
        by_id
            .iter()
            .any(|(id, c)| id != first && c[0].contains(&"10.0.9.2:9000".to_string())),
        "{by_id:#?}"
    );
}

#[test]
fn tokens_in_webhook_urls_reach_no_output_log_or_outbox() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback: every try fails, and says why.
    let channel = "[[channel]]\nname = \"chat\"\nkind = \"webhook\"\nformat = \"slack\"\nurl = \"http://127.0.0.1:9/services/T0PATHSECRET/B0PATHSECRET/XPATHSECRETX?token=QUERYSECRET\"\ntimeout = \"2s\"\n";
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), channel),
    );
    let o = run(&["test-alert", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let shown = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        shown.contains("chat: FAILED: 127.0.0.1: cannot connect"),
        "{shown}"
    );
    let (mut d, rx, _) = start_seen(&cfg, &[]);
    burst(dir.path(), "10.0.9.1:9000", 25);
    let mut seen = wait_for(
        &rx,
        "alert not delivered; retrying",
        Duration::from_secs(15),
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status();
    let _ = d.0.wait();
    seen.extend(rx.try_iter());
    let errors: Vec<String> = db(dir.path())
        .prepare("SELECT COALESCE(last_error, '') FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("cannot connect")),
        "{errors:?}"
    );
    for text in [shown, seen.join("\n"), errors.join("\n")] {
        for secret in ["PATHSECRET", "QUERYSECRET"] {
            assert!(!text.contains(secret), "{secret} in: {text}");
        }
    }
}

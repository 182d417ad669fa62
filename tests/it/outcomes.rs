//! What fixed an incident (issue 17), given on the command line: `incident list` shows the
//! incident the daemon recorded, `incident resolve` stores the verdicts in the state, and
//! `incident show` gives the entry's workarounds with their local record.

use super::daemon::{access_line, append, config};
use super::*;
use gatewatch::engine::detect::Change;
use std::sync::mpsc;
use std::time::Duration;

/// A state with one incident, recorded by the daemon (in process) from `lines` written to
/// `logs/access.log` under `dir`: the config file's path and the incident as opened.
fn recorded_incident(dir: &Path, lines: &str) -> (PathBuf, gatewatch::engine::detect::Incident) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let text = config(dir, "beginning");
    let cfg_path = dir.join("gatewatch.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &text).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = mpsc::channel();
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![tx]).unwrap();
    append(&dir.join("logs/access.log"), lines);
    let Change::Opened(inc) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an incident")
    else {
        panic!("no incident opened")
    };
    daemon.stop().unwrap();
    (cfg_path, inc)
}

#[test]
fn a_verdict_given_on_the_command_line_round_trips_through_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..25)
        .map(|i| access_line(i, 502, "10.0.7.7:9000", "-"))
        .collect();
    let (cfg_path, inc) = recorded_incident(dir.path(), &lines);
    let c = cfg_path.to_str().unwrap();

    let list = run(&["incident", "list", "--config", c]);
    assert!(list.status.success(), "{}", stderr(&list));
    let out = stdout(&list);
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("gw-"))
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_string();
    assert_eq!(inc.upstream, "10.0.7.7:9000");
    assert!(
        out.contains("10.0.7.7:9000")
            && out.contains("api/http-502-bad-gateway-upstream-unreachable"),
        "{out}"
    );

    // Wrong numbers and keys are refused and change nothing.
    let bad = run(&[
        "incident",
        "resolve",
        &key,
        "--fixed-by",
        "9",
        "--config",
        c,
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("there is no #9"), "{}", stderr(&bad));
    let both = run(&[
        "incident",
        "resolve",
        &key,
        "--fixed-by",
        "2",
        "--tried",
        "2",
        "--config",
        c,
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    let unknown = run(&[
        "incident",
        "resolve",
        "gw-nope",
        "--fixed-by",
        "1",
        "--config",
        c,
    ]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("there is no incident gw-nope"));

    let done = run(&[
        "incident",
        "resolve",
        &key,
        "--fixed-by",
        "2",
        "--tried",
        "1",
        "--note",
        "the load balancer listed the wrong port",
        "--config",
        c,
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(stdout(&done).contains("fixed by #2"), "{}", stdout(&done));

    // Kept in the state, with who and how.
    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let history = state.outcomes(&key).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history.iter().all(|o| o.via == "cli"
            && o.note.as_deref() == Some("the load balancer listed the wrong port"))
    );
    use gatewatch::engine::kb::evidence::Local;
    use gatewatch::store::outcomes::Item;
    let record = state.local_record(&history[0].entry).unwrap();
    assert_eq!(record[&Item::Workaround(2)], Local::new(1, 1));
    assert_eq!(record[&Item::Workaround(1)], Local::new(1, 0));
    drop(state);

    // Shown beside the knowledge base's rate; one vote does not reorder the runbook.
    let show = run(&["incident", "show", &key, "--config", c]);
    assert!(show.status.success(), "{}", stderr(&show));
    let out = stdout(&show);
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("  #")).collect();
    assert!(
        steps[0].starts_with("  #1 (") && steps[0].contains("0 of 1 here"),
        "{out}"
    );
    assert!(
        steps[1].starts_with("  #2 (") && steps[1].contains("1 of 1 here"),
        "{out}"
    );
    assert!(out.contains("workaround:2 fixed by"), "{out}");

    // Said again, differently: the new statement replaces the old one (#1 and #2 taken back).
    let again = run(&[
        "incident",
        "resolve",
        &key,
        "--fixed-by",
        "3",
        "--config",
        c,
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let record = state.local_record(&history[0].entry).unwrap();
    assert_eq!(record[&Item::Workaround(3)], Local::new(1, 1));
    assert_eq!(
        record
            .get(&Item::Workaround(2))
            .copied()
            .unwrap_or_default(),
        Local::default()
    );
    assert_eq!(
        record
            .get(&Item::Workaround(1))
            .copied()
            .unwrap_or_default(),
        Local::default()
    );
    assert_eq!(
        state.outcomes(&key).unwrap().len(),
        5,
        "the history is kept"
    );
}

/// The incident's own commands beyond `resolve`: `ack` and `snooze` on an open incident, a
/// draft entry grown from it that `check` holds back until its TODOs are written and then
/// proves (its examples match it, the shipped entries' examples still match theirs), and the
/// evidence export with counts only.
#[test]
fn ack_snooze_a_draft_entry_and_the_evidence_export() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/access.log");
    let lines: String = (0..25)
        .map(|i| {
            access_line(i, 502, "10.0.5.5:9000", "-").replace("/api/v1/orders", "/checkout/pay")
        })
        .collect();
    let (cfg_path, _) = recorded_incident(dir.path(), &lines);
    let c = cfg_path.to_str().unwrap();
    let list = stdout(&run(&["incident", "list", "--config", c]));
    let key = list
        .split_whitespace()
        .find(|w| w.starts_with("gw-"))
        .unwrap_or_else(|| panic!("no key in {list}"))
        .to_string();

    let ack = run(&["incident", "ack", &key, "--config", c]);
    assert!(ack.status.success(), "{}", stderr(&ack));
    assert!(stdout(&ack).contains("acknowledged"), "{}", stdout(&ack));
    let snooze = run(&["incident", "snooze", &key, "--for", "30m", "--config", c]);
    assert!(snooze.status.success(), "{}", stderr(&snooze));
    assert!(
        stdout(&snooze).contains("snoozed for 30m"),
        "{}",
        stdout(&snooze)
    );
    let bad = run(&["incident", "snooze", &key, "--for", "8days", "--config", c]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let silences = stdout(&run(&["silence", "list", "--config", c]));
    assert!(silences.contains(&format!("incident {key}")), "{silences}");
    let show = stdout(&run(&["incident", "show", &key, "--config", c]));
    assert!(show.contains("acknowledged by"), "{show}");
    assert!(show.contains("snoozed until"), "{show}");
    // A snooze scopes to its incident: another upstream's incident is not covered.
    let (state, _) = gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let covers = |k: &str, up: &str| {
        gatewatch::store::outbox::silenced_by(
            state.conn(),
            &[],
            k,
            up,
            "api/http-502-bad-gateway-upstream-unreachable",
            gatewatch::clock::now_ms(),
        )
        .unwrap()
    };
    assert!(covers(&key, "10.0.5.5:9000").is_some());
    assert!(covers("gw-0000000000000001", "10.0.5.5:9000").is_none());
    drop(state);

    // A draft entry from the incident, into a local pattern folder.
    let local = dir.path().join("patterns.d");
    let draft = run(&[
        "patterns",
        "draft",
        &key,
        "--out",
        local.to_str().unwrap(),
        "--config",
        c,
    ]);
    assert!(draft.status.success(), "{}", stderr(&draft));
    let file = std::fs::read_dir(local.join("local"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let draft_text = std::fs::read_to_string(&file).unwrap();
    assert!(
        draft_text.contains("causes = [\"upstream_unreachable\"]"),
        "{draft_text}"
    );
    assert!(draft_text.contains("/checkout/pay"), "{draft_text}");
    assert!(draft_text.contains("[[near_misses]]"), "{draft_text}");
    // Not twice without --force.
    let again = run(&[
        "patterns",
        "draft",
        &key,
        "--out",
        local.to_str().unwrap(),
        "--config",
        c,
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));

    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/patterns");
    let scan_entry = || {
        let got = incidents(&[
            "--log-format",
            gatewatch::engine::parse::nginx_access::GATEWATCH,
            "--patterns",
            shipped,
            "--patterns",
            local.to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert_eq!(got.len(), 1, "{got:?}");
        got[0]["entry"].as_str().unwrap().to_string()
    };
    // A draft, TODOs and all, does not stop the knowledge base from loading: it is left out.
    assert!(draft_text.contains("\ndraft = true\n"), "{draft_text}");
    assert_eq!(
        scan_entry(),
        "api/http-502-bad-gateway-upstream-unreachable"
    );
    let check = |dirs: &[&str]| {
        let mut args = vec!["check"];
        for d in dirs {
            args.extend(["--patterns", d]);
        }
        run(&args)
    };
    let held = check(&[shipped, local.to_str().unwrap()]);
    assert!(!held.status.success(), "a draft with TODOs passed check");
    let errors = stderr(&held) + &stdout(&held);
    assert!(
        errors.contains("title: the text (en) still says TODO"),
        "{errors}"
    );
    assert!(
        errors.contains("docs:") && errors.contains("still says TODO"),
        "{errors}"
    );
    // Written: proven, and the shipped entries' own examples still match them.
    let written = draft_text
        .replace(
            "https://TODO.example/the-official-documentation-of-the-cause",
            "https://nginx.org/en/docs/http/ngx_http_upstream_module.html",
        )
        .replace("TODO: ", "");
    std::fs::write(&file, written).unwrap();
    let proven = check(&[shipped, local.to_str().unwrap()]);
    assert!(
        proven.status.success(),
        "{}{}",
        stdout(&proven),
        stderr(&proven)
    );
    assert!(
        stdout(&proven).contains("is a draft (draft = true)"),
        "{}",
        stdout(&proven)
    );
    assert_eq!(
        scan_entry(),
        "api/http-502-bad-gateway-upstream-unreachable",
        "still a draft"
    );
    // Published: the line removed.
    let published = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\ndraft = true\n", "\n");
    std::fs::write(&file, published).unwrap();
    // The same lines now get the new entry.
    assert!(
        scan_entry().starts_with("local/draft-upstream-unreachable-502-"),
        "{}",
        scan_entry()
    );

    // The export: counts only.
    let resolve = run(&[
        "incident",
        "resolve",
        &key,
        "--fixed-by",
        "1",
        "--tried",
        "2",
        "--config",
        c,
    ]);
    assert!(resolve.status.success(), "{}", stderr(&resolve));
    let export = run(&["patterns", "export-evidence", "--config", c]);
    assert!(export.status.success(), "{}", stderr(&export));
    let out = stdout(&export);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["item"], "workaround:1");
    assert_eq!(
        (rows[0]["tried"].as_u64(), rows[0]["fixed"].as_u64()),
        (Some(1), Some(1))
    );
    for secret in [key.as_str(), "10.0.5.5", "checkout", "203.0."] {
        assert!(!out.contains(secret), "{secret} in the export: {out}");
    }
}

/// Implicit evidence: an nginx reload logged just before the failures stopped is recorded, by
/// gatewatch itself, as "recovery followed" the entry's reload step; shown beside it, never
/// counted as a fix, and not taken back when a person says what fixed it.
#[test]
fn a_reload_shortly_before_recovery_counts_weakly_for_the_reload_step() {
    use super::delivery::{daemon_config, start_seen, write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = format!(
        "[[source]]\npath = \"{}/logs/error.log\"\nformat = \"nginx_error\"\ntimezone = \"UTC\"\n\n{}",
        d.display(),
        daemon_config(d, "")
    );
    let cfg = write(d, "gatewatch.toml", &text);
    let (_gw, log, _) = start_seen(&cfg, &[]);
    let lines: String = (0..25)
        .map(|i| access_line(i, 502, "10.0.6.6:9000", "-"))
        .collect();
    append(&d.join("logs/access.log"), &lines);
    std::thread::sleep(Duration::from_millis(800));
    let now = chrono::Utc::now().format("%Y/%m/%d %H:%M:%S");
    append(
        &d.join("logs/error.log"),
        &format!(
            "{now} [notice] 1234#1234: signal 1 (SIGHUP) received from 4321, reconfiguring\n{now} [notice] 1234#1234: reconfiguring\n"
        ),
    );
    // The resolved note (console) says what the recovery followed.
    let seen = super::daemon::wait_for(&log, "Recovery followed", Duration::from_secs(30));
    assert!(
        seen.last().unwrap().contains("an nginx reload"),
        "{}",
        seen.join("\n")
    );
    let state = || {
        gatewatch::store::State::open_read_only(&d.join("state"))
            .unwrap()
            .unwrap()
    };
    let key = state().recent_incidents(0, 10).unwrap()[0].key.clone();
    let got = state().outcomes(&key).unwrap();
    assert_eq!(got.len(), 1, "one reload, however many lines: {got:?}");
    assert_eq!(
        (got[0].item, got[0].verdict, got[0].via.as_str()),
        (
            gatewatch::engine::kb::evidence::Item::Workaround(2),
            gatewatch::engine::kb::evidence::Verdict::Followed,
            "automatic"
        )
    );
    assert!(
        got[0]
            .note
            .as_deref()
            .unwrap()
            .starts_with("recovery followed an nginx reload at ")
    );
    let c = cfg.to_str().unwrap();
    let show = stdout(&run(&["incident", "show", &key, "--config", c]));
    let step2 = show.lines().find(|l| l.starts_with("  #2 ")).unwrap();
    assert!(step2.contains("recovery followed it 1×"), "{show}");
    assert!(!step2.contains("of 1 here"), "not a trial: {show}");
    // A person's word comes on top; the logs' evidence stays.
    let r = run(&[
        "incident",
        "resolve",
        &key,
        "--fixed-by",
        "1",
        "--config",
        c,
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    use gatewatch::engine::kb::evidence::{Item, Local};
    let record = state()
        .local_record("api/http-502-bad-gateway-upstream-unreachable")
        .unwrap();
    assert_eq!(record[&Item::Workaround(1)], Local::new(1, 1));
    assert_eq!(
        record[&Item::Workaround(2)],
        Local {
            tried: 0,
            fixed: 0,
            followed: 1
        }
    );
}

//! What fixed an incident (issue 17), given on the command line: `incident list` shows the
//! incident the daemon recorded, `incident resolve` stores the verdicts in the state, and
//! `incident show` gives the entry's workarounds with their local record.

use super::daemon::{access_line, append, config};
use super::*;
use gatewatch::engine::detect::Change;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_verdict_given_on_the_command_line_round_trips_through_the_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/access.log");
    let text = config(dir.path(), "beginning");
    let cfg_path = dir.path().join("gatewatch.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    // The daemon records an incident.
    let cfg = gatewatch::app::config::Config::parse("gw.toml", &text).unwrap();
    let kb = std::sync::Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let (tx, rx) = mpsc::channel();
    super::quiet_in_process_logs();
    let daemon = gatewatch::app::daemon::Daemon::start(&cfg, kb, vec![tx]).unwrap();
    let mut lines = String::new();
    for i in 0..25 {
        lines.push_str(&access_line(i, 502, "10.0.7.7:9000", "-"));
    }
    append(&log, &lines);
    let Change::Opened(inc) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an incident")
    else {
        panic!("no incident opened")
    };
    daemon.stop().unwrap();
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
    assert_eq!(record[&Item::Workaround(2)], Local { tried: 1, fixed: 1 });
    assert_eq!(record[&Item::Workaround(1)], Local { tried: 1, fixed: 0 });
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
    assert_eq!(record[&Item::Workaround(3)], Local { tried: 1, fixed: 1 });
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

//! `gatewatch incident`: the incidents the daemon recorded, and what fixed them (issue 17). A
//! verdict given here goes into the state with who gave it and when; the entry's workarounds
//! are then shown with their local record beside the knowledge base's rate.

use super::*;
use crate::engine::kb::evidence;
use crate::render::links::Action;
use crate::store::outcomes::{Acted, Item, Outcome, Verdict};
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub(super) enum IncidentAction {
    /// List the open incidents and those of the last days, with their keys.
    List {
        /// How many days back (default 7).
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Show an incident: what failed, the entry's workarounds with their local record, and
    /// every verdict given on it.
    Show {
        /// The incident's key (`gw-…`, from `incident list` or an alert).
        key: String,
    },
    /// Acknowledge an open incident: no more reminders about it (its resolved note still
    /// goes out).
    Ack { key: String },
    /// Silence an open incident, it alone, for a while (no reminders until then).
    Snooze {
        key: String,
        /// How long (`30m`, `1h`, `2h30m`; at most 7 days).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
    },
    /// Say what fixed an incident (the workaround's number as the alert shows it) and what was
    /// tried without effect; kept in the state, and counted in the entry's local record.
    Resolve {
        key: String,
        /// The workaround that fixed it.
        #[arg(long, value_name = "N")]
        fixed_by: usize,
        /// A workaround tried without effect (repeatable).
        #[arg(long, value_name = "M")]
        tried: Vec<usize>,
        /// A dead end that was tried anyway, without effect (repeatable).
        #[arg(long, value_name = "M")]
        tried_dead_end: Vec<usize>,
        /// What happened, in a few words.
        #[arg(long)]
        note: Option<String>,
    },
}

pub(super) fn run_incident(
    action: IncidentAction,
    config: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let dir = state_dir(&cfg);
    let Some(state) = crate::store::State::open_read_only(&dir)? else {
        anyhow::bail!(
            "there is no state in {}: the daemon has recorded no incident there",
            dir.display()
        );
    };
    let time = local_minute;
    let who = || {
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into())
    };
    match action {
        IncidentAction::Ack { key } => {
            drop(state);
            let (mut state, _) = crate::store::State::open(&dir)?;
            let acted = state.act(
                &key,
                &Action::Ack,
                &who(),
                "cli",
                None,
                crate::clock::now_ms(),
            )?;
            return acted_or_error(&key, acted);
        }
        IncidentAction::Snooze { key, duration } => {
            let d = humantime::parse_duration(&duration)
                .map_err(|e| usage(format!("--for {duration:?}: {e} (e.g. 30m, 1h, 2h30m)")))?;
            if d < std::time::Duration::from_secs(60)
                || d > std::time::Duration::from_secs(7 * 86_400)
            {
                return Err(usage("--for must be between 1m and 7 days"));
            }
            drop(state);
            let (mut state, _) = crate::store::State::open(&dir)?;
            let action = Action::Snooze {
                secs: d.as_secs() as u32,
            };
            let acted = state.act(&key, &action, &who(), "cli", None, crate::clock::now_ms())?;
            return acted_or_error(&key, acted);
        }
        IncidentAction::List { days } => {
            let since = crate::clock::now_ms() - i64::from(days) * 86_400_000;
            let list = state.recent_incidents(since, 200)?;
            if list.is_empty() {
                println!("no incident in the last {days} days");
            }
            for i in &list {
                println!(
                    "{}  {:<8}  {}  {}  {} → {}  {} failures",
                    i.key,
                    if i.closed_ms.is_some() {
                        "ended"
                    } else if state.acked(&i.key)?.is_some() {
                        "acked"
                    } else {
                        "open"
                    },
                    i.entry,
                    i.upstream,
                    time(i.start_ms),
                    time(i.end_ms),
                    i.failures
                );
            }
        }
        IncidentAction::Show { key } => {
            let inc = state
                .incident(&key)?
                .ok_or_else(|| anyhow::anyhow!("there is no incident {key}"))?;
            let kb = config_kb(&cfg)?;
            println!(
                "{key}: {} {} — {} failures, {} → {}{}",
                inc.cause,
                inc.upstream,
                inc.failures,
                time(inc.start_ms),
                time(inc.end_ms),
                if inc.closed_ms.is_some() {
                    " (ended)"
                } else {
                    " (open)"
                }
            );
            if let Some((at, by)) = state.acked(&key)? {
                println!("acknowledged by {by} at {}", time(at));
            }
            let now = crate::clock::now_ms();
            for s in crate::store::outbox::silences(state.conn(), now, false)? {
                if s.incident.as_deref() == Some(key.as_str()) && s.starts_ms <= now {
                    println!("snoozed until {} (silence {})", time(s.ends_ms), s.id);
                }
            }
            match kb.find(&inc.entry).map(|id| kb.get(id)) {
                Some(e) => {
                    println!("{} [{}]", e.title.en, e.id);
                    let record = state.local_record(&e.id)?;
                    for (i, est) in evidence::ranked_here(e, Some(&record)) {
                        println!(
                            "  #{} ({}) {}",
                            i + 1,
                            evidence::describe(&est),
                            e.workarounds[i].render(Lang::En, None)
                        );
                    }
                    for (i, d) in e.dead_ends.iter().enumerate() {
                        let l = record
                            .get(&Item::DeadEnd(i + 1))
                            .copied()
                            .unwrap_or_default();
                        let here = if l.tried > 0 {
                            format!(" · tried here {} times", l.tried)
                        } else {
                            String::new()
                        };
                        println!(
                            "  dead end {} ({:.0} % fail{here}) {}",
                            i + 1,
                            d.fail_rate * 100.0,
                            d.name.en
                        );
                    }
                }
                None => println!("entry {} (not in the knowledge base now)", inc.entry),
            }
            let history = state.outcomes(&key)?;
            if history.is_empty() {
                println!("no verdict yet: gatewatch incident resolve {key} --fixed-by N");
            }
            for o in history {
                println!(
                    "  {} {} {} by {} via {}{}",
                    time(o.at_ms),
                    o.item.name(),
                    o.verdict.as_str(),
                    o.who,
                    o.via,
                    o.note.map(|n| format!(": {n}")).unwrap_or_default()
                );
            }
        }
        IncidentAction::Resolve {
            key,
            fixed_by,
            tried,
            tried_dead_end,
            note,
        } => {
            let inc = state
                .incident(&key)?
                .ok_or_else(|| anyhow::anyhow!("there is no incident {key}"))?;
            let kb = config_kb(&cfg)?;
            let entry = kb.find(&inc.entry).map(|id| kb.get(id)).ok_or_else(|| {
                anyhow::anyhow!(
                    "incident {key}'s entry {} is not in the knowledge base now",
                    inc.entry
                )
            })?;
            let workarounds = entry.workarounds.len();
            for n in std::iter::once(fixed_by).chain(tried.iter().copied()) {
                if n == 0 || n > workarounds {
                    return Err(usage(format!(
                        "{} has workarounds 1 to {workarounds}; there is no #{n}",
                        entry.id
                    )));
                }
            }
            if tried.contains(&fixed_by) {
                return Err(usage(format!(
                    "#{fixed_by} cannot both have fixed it and been tried without effect"
                )));
            }
            for &n in &tried_dead_end {
                if n == 0 || n > entry.dead_ends.len() {
                    return Err(usage(match entry.dead_ends.len() {
                        0 => format!("{} has no dead ends", entry.id),
                        d => format!("{} has dead ends 1 to {d}; there is no {n}", entry.id),
                    }));
                }
            }
            let who = who();
            let now = crate::clock::now_ms();
            let verdict = |item, verdict| Outcome {
                incident: key.clone(),
                entry: entry.id.clone(),
                item,
                verdict,
                who: who.clone(),
                via: "cli".into(),
                note: note.clone(),
                at_ms: now,
            };
            let mut outcomes = vec![verdict(Item::Workaround(fixed_by), Verdict::Fixed)];
            outcomes.extend(
                tried
                    .iter()
                    .map(|&n| verdict(Item::Workaround(n), Verdict::NoEffect)),
            );
            outcomes.extend(
                tried_dead_end
                    .iter()
                    .map(|&n| verdict(Item::DeadEnd(n), Verdict::NoEffect)),
            );
            // A resolve says all that was done: an item an earlier one named and this one
            // does not is taken back (the last verdict per item counts).
            let mut earlier: BTreeMap<Item, Verdict> = BTreeMap::new();
            for o in state.outcomes(&key)? {
                if o.entry == entry.id {
                    earlier.insert(o.item, o.verdict);
                }
            }
            for (item, v) in earlier {
                if !matches!(v, Verdict::NotTried | Verdict::Followed)
                    && !outcomes.iter().any(|o| o.item == item)
                {
                    outcomes.push(verdict(item, Verdict::NotTried));
                }
            }
            drop(state);
            let (mut state, _) = crate::store::State::open(&dir)?;
            state.record_outcomes(&outcomes)?;
            let without: Vec<String> = tried
                .iter()
                .map(|n| format!("#{n}"))
                .chain(tried_dead_end.iter().map(|n| format!("dead end {n}")))
                .collect();
            println!(
                "{key}: fixed by #{fixed_by}{} — recorded ({} verdicts, by {who})",
                if without.is_empty() {
                    String::new()
                } else {
                    format!(", tried without effect: {}", without.join(", "))
                },
                outcomes.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `ack` and `snooze` print: what was done, or why nothing was.
fn acted_or_error(key: &str, acted: Acted) -> anyhow::Result<ExitCode> {
    match acted {
        Acted::Done(what) => {
            println!("{what}");
            Ok(ExitCode::SUCCESS)
        }
        Acted::NoIncident => anyhow::bail!("there is no incident {key}"),
        Acted::Ended => anyhow::bail!("{key} has ended: there is nothing to acknowledge or snooze"),
        Acted::Used => anyhow::bail!("{key}: this was done already"),
    }
}

//! The commands that read or change the daemon's state: `summary`, `silence`.

use super::*;

/// The state directory commands other than `run` use: the configured one, else systemd's,
/// else the default.
/// A time for people reading the command's output: the local minute with its offset.
pub(super) fn local_minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %z")
                .to_string()
        })
        .unwrap_or_default()
}

pub(super) fn state_dir(cfg: &Config) -> PathBuf {
    if cfg.file.is_none()
        && let Some(dir) = std::env::var_os("STATE_DIRECTORY")
    {
        return PathBuf::from(dir.to_string_lossy().split(':').next().unwrap_or(""));
    }
    cfg.state_dir.clone()
}

pub(super) fn parse_date(s: &str) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| {
        usage(format!(
            "--date {s:?} is not a date such as 2024-05-01 ({e})"
        ))
    })
}

/// Prints a report in a format.
pub(super) fn print_summary_report(
    r: &crate::render::summary::Report,
    format: &str,
) -> anyhow::Result<()> {
    let text = match format {
        "json" => serde_json::to_string_pretty(r)? + "\n",
        "html" => crate::render::summary::render(r, "summary.html.j2", None, None)?,
        _ => crate::render::summary::render(r, "summary.txt.j2", None, None)?,
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

pub(super) fn run_summary(
    config: Option<PathBuf>,
    date: Option<String>,
    (format, lang): (&str, &str),
    timezone: Option<String>,
    send: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let kb = config_kb(&cfg)?;
    let zone = match timezone {
        Some(t) => t
            .parse::<Zone>()
            .map_err(|e| usage(format!("--timezone: {e}")))?,
        None => cfg.summary.zone.clone(),
    };
    // Arguments first: a bad one is a usage error whatever the state.
    let date = date.as_deref().map(parse_date).transpose()?;
    let dir = state_dir(&cfg);
    let no_state = || {
        anyhow::anyhow!(
            "no state in {}: the daemon has not run with this configuration yet (or pass --config)",
            dir.display()
        )
    };
    // Rendering only reads; sending records what was sent.
    let state = if send {
        anyhow::ensure!(dir.join(crate::store::FILE_NAME).exists(), no_state());
        crate::store::State::open(&dir)?.0
    } else {
        crate::store::State::open_read_only(&dir)?.ok_or_else(no_state)?
    };
    let now = crate::clock::now_ms();
    let date = match date {
        Some(d) => d,
        None => crate::render::summary::local_date(&zone, now)
            .pred_opt()
            .context("a date")?,
    };
    if send {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let results = rt.block_on(crate::delivery::sender::send_summary_now(
            &cfg.delivery(),
            &kb,
            state.conn(),
            date,
            &zone,
        ))?;
        let mut failed = 0;
        for (name, r) in &results {
            match r {
                Ok(()) => println!("{name}: sent"),
                Err(e) => {
                    failed += 1;
                    println!("{name}: FAILED: {e}");
                }
            }
        }
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let r = crate::render::summary::build(
        state.conn(),
        &kb,
        &crate::render::summary::Options {
            date,
            zone,
            host: crate::delivery::channel::host_name(&cfg.alerts),
            lang: Lang::from_name(lang).unwrap_or_default(),
            now_ms: now,
            feedback: true,
        },
    )?;
    print_summary_report(&r, format)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_silence(
    action: SilenceAction,
    config: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use crate::store::outbox;
    let cfg = load_config(config.as_deref())?;
    let dir = state_dir(&cfg);
    // Listing and removing never create a state; adding does, once its arguments are valid.
    let state = match &action {
        SilenceAction::Add { .. } => None,
        _ => crate::store::State::open_read_only(&dir)?,
    };
    let now = crate::clock::now_ms();
    let time = local_minute;
    match action {
        SilenceAction::Add {
            upstream,
            entry,
            duration,
            until,
            reason,
        } => {
            let ends = match (duration, until) {
                (Some(d), None) => {
                    let d = humantime::parse_duration(&d).map_err(|e| {
                        usage(format!(
                            "--for {d:?} is not a duration ({e}); write it like 2h or 30m"
                        ))
                    })?;
                    now.saturating_add(d.as_millis().min(i64::MAX as u128) as i64)
                }
                (None, Some(u)) => chrono::DateTime::parse_from_rfc3339(&u)
                    .map_err(|e| usage(format!("--until {u:?} is not an RFC 3339 time ({e})")))?
                    .timestamp_millis(),
                _ => return Err(usage("give --for DURATION or --until TIME")),
            };
            if ends <= now {
                return Err(usage("the silence would end before it starts"));
            }
            let who = std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .ok();
            let s = outbox::Silence {
                id: 0,
                upstream,
                entry,
                starts_ms: now,
                ends_ms: ends,
                reason,
                created_by: who,
                incident: None,
            };
            let (state, _) = crate::store::State::open(&dir)?;
            let id = outbox::add_silence(state.conn(), &s)?;
            println!(
                "silence {id}: upstream {}{} until {}",
                s.upstream,
                s.entry.map(|e| format!(", entry {e}")).unwrap_or_default(),
                time(ends)
            );
        }
        SilenceAction::List { all, json } => {
            let list = match &state {
                Some(state) => outbox::silences(state.conn(), now, all)?,
                None => Vec::new(),
            };
            if json {
                for s in &list {
                    println!("{}", serde_json::to_string(s)?);
                }
            } else if list.is_empty() {
                println!("no silences");
            } else {
                for s in &list {
                    println!(
                        "{:>4}  upstream {}{}  {} → {}{}  {}{}",
                        s.id,
                        s.upstream,
                        match (&s.incident, &s.entry) {
                            (Some(i), _) => format!(" incident {i}"),
                            (None, Some(e)) => format!(" entry {e}"),
                            (None, None) => String::new(),
                        },
                        time(s.starts_ms),
                        time(s.ends_ms),
                        if s.ends_ms <= now { " (ended)" } else { "" },
                        s.reason,
                        s.created_by
                            .as_ref()
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        SilenceAction::Remove { id } => {
            // A state that exists is opened for writing only now, to end the silence.
            let state = match state {
                Some(_) => Some(crate::store::State::open(&dir)?.0),
                None => None,
            };
            let removed = match &state {
                Some(state) => outbox::remove_silence(state.conn(), id, now)?,
                None => false,
            };
            if removed {
                println!("silence {id} ended");
            } else {
                anyhow::bail!("there is no silence {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `gatewatch run` and `gatewatch test-alert`: the configuration the daemon runs with (a
//! file, or the logs found on this machine), signals, and the library's daemon.

use super::*;

/// The logs nginx's configuration names (`nginx -T`) and the standard paths that exist, added
/// to a config that names no source (no config file, or one without `[[source]]`). Returns why
/// each log was chosen, and notes.
pub(super) fn discover_sources(cfg: &mut Config) -> (Vec<String>, Vec<String>) {
    let (found, notes) = crate::source::discover::discover(&Zone::Local);
    let mut why = Vec::new();
    for f in found {
        if let crate::app::config::SourceKind::Log { path, format } = &f.source.kind {
            why.push(format!("{path} ({format}): {}", f.why));
        }
        cfg.sources.push(f.source);
    }
    (why, notes)
}

/// The built-in configuration: the logs found on this machine ([`discover_sources`]); state in
/// systemd's state directory or /var/lib/gatewatch; alerts on standard error. Also returns why
/// each log was chosen, and notes.
pub(super) fn builtin_config() -> (Config, Vec<String>, Vec<String>) {
    let mut cfg = Config::default();
    let (why, notes) = discover_sources(&mut cfg);
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd's StateDirectory= (several are separated by ':').
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        cfg.state_dir = PathBuf::from(first);
    }
    (cfg, why, notes)
}

/// The configuration `run` uses, and where it came from.
pub(super) fn daemon_config(path: Option<&Path>) -> anyhow::Result<(Config, Arc<Kb>)> {
    let explicit = path.is_some() || Path::new(DEFAULT_CONFIG).exists();
    let (mut cfg, mut found) = if explicit {
        (load_config(path)?, None)
    } else {
        let (cfg, why, notes) = builtin_config();
        (cfg, Some((why, notes)))
    };
    // A config file without [[source]] follows what is found, as no config file does.
    if explicit && cfg.sources.is_empty() {
        found = Some(discover_sources(&mut cfg));
    }
    if let Some((why, notes)) = found {
        crate::log!(
            Info,
            if explicit {
                "the config names no [[source]]; following the logs found on this machine"
            } else {
                "no config file; following the logs found on this machine"
            },
            config = cfg
                .file
                .as_ref()
                .map_or(DEFAULT_CONFIG.to_string(), |f| f.display().to_string()),
            sources = cfg.sources.len()
        );
        for w in why {
            crate::log!(Info, "found", log = w);
        }
        for n in notes {
            crate::log!(Info, "note", note = n);
        }
    }
    let kb = config_kb(&cfg)?;
    Ok((cfg, Arc::new(kb)))
}

/// Whether the effective user is root (the owner of `/proc/self` is the effective user).
pub(super) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub(super) fn run_daemon(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let (cfg, kb) = daemon_config(config.as_deref())?;
    if cfg.sources.is_empty() {
        let how = match &cfg.file {
            Some(f) => format!("add a [[source]] (path = …, format = …) to {}", f.display()),
            None => format!(
                "name your logs in a config file ([[source]] path = …, format = …) at {DEFAULT_CONFIG} or pass it with --config"
            ),
        };
        anyhow::bail!(
            "no log to follow: nginx's configuration (nginx -T) names none and no standard log path exists; {how}"
        );
    }
    for s in &cfg.sources {
        match &s.kind {
            crate::app::config::SourceKind::Log { path, format } => {
                crate::log!(Info, "source", path = path, format = format)
            }
            crate::app::config::SourceKind::Container { path, proxy } => {
                crate::log!(
                    Info,
                    "source",
                    path = path,
                    format = "container",
                    proxy = proxy
                )
            }
            crate::app::config::SourceKind::Syslog { .. } => {}
            crate::app::config::SourceKind::Kafka(k) => crate::log!(
                Info,
                "source",
                kafka = k.name,
                brokers = k.brokers,
                payload = k.payload.as_str()
            ),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (reload, reloads) = tokio::sync::mpsc::channel(1);
        // SIGHUP: the configuration and the knowledge base read again, and checked.
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if reload.send(daemon_config(config.as_deref())).await.is_err() {
                    break;
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        crate::app::daemon::run(cfg, kb, Vec::new(), reloads, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_test_alert(
    config: Option<PathBuf>,
    channel: Option<String>,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let kb = config_kb(&cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let results = rt.block_on(crate::delivery::sender::test_alert(
        &cfg.delivery(),
        &kb,
        channel.as_deref(),
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
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

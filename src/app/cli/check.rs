//! `gatewatch check`: the configuration and every pattern file proven, each problem one
//! `file:line: message` line; what `run` would follow when the config names no source.

use super::*;

pub(super) fn run_check(
    config: Option<PathBuf>,
    patterns: Vec<PathBuf>,
    access: bool,
    connect: bool,
) -> anyhow::Result<ExitCode> {
    let mut errors: Vec<String> = Vec::new();
    let cfg_path = config.clone().or_else(|| {
        Path::new(DEFAULT_CONFIG)
            .exists()
            .then(|| PathBuf::from(DEFAULT_CONFIG))
    });
    let cfg = match &cfg_path {
        Some(p) => match Config::load(p) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.extend(e.0.iter().map(ToString::to_string));
                None
            }
        },
        None => Some(Config::default()),
    };
    let dirs = if !patterns.is_empty() {
        patterns
    } else {
        cfg.as_ref()
            .map(|c| c.pattern_dirs.clone())
            .unwrap_or_default()
    };
    // Drafts are proven too (the daemon leaves them out).
    let dir_errors = cfg
        .as_ref()
        .filter(|c| c.pattern_dirs == dirs)
        .map(|c| c.pattern_dir_errors())
        .unwrap_or_default();
    let loaded = if dir_errors.is_empty() {
        crate::app::patterns::load_kb_with_drafts(&dirs, true)
    } else {
        Err(crate::engine::error::FileErrors(dir_errors))
    };
    let kb = match loaded {
        Ok((kb, drafts)) => {
            for d in drafts {
                println!(
                    "note: {d} is a draft (draft = true): proven, but not used until that line is removed"
                );
            }
            Some(kb)
        }
        Err(e) => {
            errors.extend(e.0.iter().map(ToString::to_string));
            None
        }
    };
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("gatewatch check: {} problem(s)", errors.len());
        return Ok(ExitCode::FAILURE);
    }
    let kb = kb.expect("no errors");
    let cfg = cfg.expect("no errors");
    if access {
        errors.extend(cfg.check_access().iter().map(ToString::to_string));
    }
    // Kafka sources: the brokers, the topic and the group's place in it, asked.
    if connect {
        errors.extend(probe_sources(&cfg));
    }
    // Every channel's templates (overrides included) render the sample alert.
    if let Some(inc) = crate::render::alert::sample(&kb) {
        for ch in cfg.alert_channels() {
            if let Err(e) = crate::delivery::channel::check(&ch, &cfg.alerts, &kb, &inc) {
                errors.push(format!("channel {}: {e:#}", ch.name));
            }
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("gatewatch check: {} problem(s)", errors.len());
        return Ok(ExitCode::FAILURE);
    }
    let where_from = if dirs.is_empty() {
        "built in".to_string()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let examples: usize = kb
        .entries()
        .map(|e| e.examples.len() + e.near_misses.len())
        .sum();
    println!(
        "patterns: {} entries ({where_from}), {examples} example lines proven",
        kb.len()
    );
    match &cfg_path {
        Some(p) => println!(
            "config: {} ({} sources, {} channels)",
            p.display(),
            cfg.sources.len(),
            cfg.channels.len()
        ),
        None => println!("config: none found at {DEFAULT_CONFIG}"),
    }
    // What `run` follows when the config names no source: the logs found on this machine.
    if cfg.sources.is_empty() {
        let mut found = Config::default();
        let (why, notes) = discover_sources(&mut found);
        println!("no [[source]]: `gatewatch run` would follow the logs found on this machine:");
        for w in &why {
            println!("  {w}");
        }
        for n in notes {
            println!("  note: {n}");
        }
        if found.sources.is_empty() {
            eprintln!(
                "{}: no log to follow: nginx's configuration (nginx -T) names none and no standard log path exists; add a [[source]] (path = …, format = …)",
                cfg_path
                    .as_ref()
                    .map_or(DEFAULT_CONFIG.to_string(), |p| p.display().to_string())
            );
            eprintln!("gatewatch check: 1 problem(s)");
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Connects to the brokers of every Kafka source and says what it finds; the problems.
fn probe_sources(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let crate::source::SourceKind::Kafka(k) = &s.kind else {
            continue;
        };
        let at = format!(
            "{}:{}",
            cfg.file
                .as_ref()
                .map_or("config".into(), |f| f.display().to_string()),
            cfg.lines.sources.get(i).copied().unwrap_or(0)
        );
        #[cfg(feature = "kafka")]
        match crate::source::kafka::probe(k, std::time::Duration::from_secs(5)) {
            Ok(what) => println!("{}: {what}", k.name),
            Err(e) => problems.push(format!("{at}: {}: {e:#}", k.name)),
        }
        #[cfg(not(feature = "kafka"))]
        problems.push(format!("{at}: {}: {}", k.name, crate::source::NO_KAFKA));
    }
    problems
}

//! The command line. This is the IO shell: it reads files and the config, and prints; the work
//! is done by the pure modules.

use crate::config::Config;
use crate::detect::{Change, Incident};
use crate::error::{FileError, FileErrors};
use crate::event::Format;
use crate::kb::{Kb, Lang, Source};
use crate::parse::{LogFormat, ParserOptions};
use crate::pipeline::{PipelineConfig, Settled, Sink};
use crate::report;
use crate::scan::{self, ScanOptions, ScanReport};
use crate::time::Zone;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// A command line that cannot run as given: an invalid argument value, or a refusal (root
/// without `--allow-root`). Exit status 2, like clap's own usage errors.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// An invalid argument: exit status 2.
fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "/etc/gatewatch/gatewatch.toml";

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_patterns.rs"));
}

#[derive(Parser, Debug)]
#[command(
    name = "gatewatch",
    version,
    about = "Watches reverse-proxy logs (nginx, HAProxy, AWS ALB) and tells you when an upstream becomes unreachable, and what to do about it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch the daemon at work: it follows nginx logs in a temporary folder while about twenty
    /// seconds of traffic with an unreachable upstream is written into them, and alerts on the console.
    Demo {
        /// The folder for the logs and the state [default: a new one under the temporary folder]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Follow the logs live and alert (the daemon). Without a config file: the standard nginx
    /// and HAProxy log paths that exist, alerts on standard error.
    Run {
        /// The config file [default: /etc/gatewatch/gatewatch.toml if it exists]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run even as root (also GATEWATCH_ALLOW_ROOT=1). gatewatch needs only read access to
        /// the logs and its state folder: run it as its own user (the packaged unit does).
        #[arg(long)]
        allow_root: bool,
    },
    /// Read old logs (plain or .gz): parse every line, name the cause of every 5xx, find bursts.
    Scan(ScanArgs),
    /// Validate the configuration and every pattern file; exit 1 with file:line: message errors.
    Check {
        /// The config file [default: /etc/gatewatch/gatewatch.toml if it exists]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pattern folders to check instead of the configured or built-in ones.
        #[arg(long = "patterns", value_name = "DIR")]
        patterns: Vec<PathBuf>,
        /// Do not check that the logs, secrets, CA files and template folders the config names
        /// can be read (the systemd unit's pre-start check: the daemon reports those itself and
        /// keeps watching what it can).
        #[arg(long)]
        no_access: bool,
    },
    /// Send a realistic sample alert through each configured channel (or one), now, and
    /// report success or the exact error.
    TestAlert {
        /// The config file [default: /etc/gatewatch/gatewatch.toml if it exists]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Render (or send) the daily summary of a day from the state.
    Summary {
        /// The config file (state directory, [summary] time zone) [default: /etc/gatewatch/gatewatch.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// The day, YYYY-MM-DD [default: yesterday]
        #[arg(long)]
        date: Option<String>,
        /// text, html or json
        #[arg(long, default_value = "text", value_parser = ["text", "html", "json"])]
        format: String,
        /// Language: en or zh.
        #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
        lang: String,
        /// The zone of the days [default: [summary] timezone, else local]
        #[arg(long)]
        timezone: Option<String>,
        /// Send it through the summary's channels now (and report each result) instead of
        /// printing it.
        #[arg(long)]
        send: bool,
    },
    /// Silence alerts for an upstream (incidents are still recorded).
    Silence {
        #[command(subcommand)]
        action: SilenceAction,
        /// The config file (for the state directory) [default: /etc/gatewatch/gatewatch.toml]
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Browse the knowledge base.
    Patterns {
        #[command(subcommand)]
        action: Option<PatternsAction>,
        /// Pattern folders instead of the built-in knowledge base.
        #[arg(long = "patterns", value_name = "DIR", global = true)]
        patterns: Vec<PathBuf>,
        /// Language of the text: en or zh.
        #[arg(long, default_value = "en", global = true, value_parser = ["en", "zh"])]
        lang: String,
    },
}

#[derive(Subcommand, Debug)]
enum SilenceAction {
    #[command(group = clap::ArgGroup::new("end").required(true).multiple(false))]
    /// Add a silence: incidents of matching upstreams that open while it lasts are recorded
    /// but not alerted; reminders of open ones stop.
    Add {
        /// The upstream, or a glob over upstreams (`10.0.1.*`, `*` for all).
        #[arg(long)]
        upstream: String,
        /// Only incidents of entries matching this glob (`nginx/*`).
        #[arg(long)]
        entry: Option<String>,
        /// How long, e.g. 2h, 30m.
        #[arg(long = "for", value_name = "DURATION", group = "end")]
        duration: Option<String>,
        /// Until a time (RFC 3339, e.g. 2026-12-01T06:00:00+01:00).
        #[arg(long, group = "end")]
        until: Option<String>,
        /// Why (shown in the list and the logs).
        #[arg(long)]
        reason: String,
    },
    /// List the silences that have not ended.
    List {
        /// Also the ended ones.
        #[arg(long)]
        all: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Remove {
        /// The silence's id (from `silence list`).
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum PatternsAction {
    /// List every entry.
    List,
    /// Show one entry in full.
    Show {
        /// The entry's id, e.g. api/http-502-bad-gateway-upstream-unreachable
        id: String,
        /// Fill the example commands in for this upstream (e.g. 10.0.1.5:8080).
        #[arg(long)]
        upstream: Option<String>,
    },
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// The format of every file [default: recognised from each file's first lines]
    #[arg(long, value_parser = ["nginx_access", "nginx_error", "haproxy", "alb"])]
    format: Option<String>,
    /// An nginx log_format, exactly as written in nginx.conf, for the nginx access logs.
    #[arg(long, value_name = "LOG_FORMAT")]
    log_format: Option<String>,
    /// Print one line per parsed log line instead of the incidents.
    #[arg(long)]
    events: bool,
    /// Print JSON (one object per line).
    #[arg(long)]
    json: bool,
    /// The time zone of logs whose lines carry none (nginx error log, HAProxy): UTC, local,
    /// +02:00 or an IANA name.
    #[arg(long, default_value = "local")]
    timezone: String,
    /// Take the detector's settings ([detect]) and pattern folders from this config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Pattern folders instead of the built-in knowledge base.
    #[arg(long = "patterns", value_name = "DIR")]
    patterns: Vec<PathBuf>,
    /// Language of incident text: en or zh.
    #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
    lang: String,
    /// Print the daily summary of the logs instead (text, html or json): what the daemon
    /// would send, for the day of the last line (or --date).
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text", require_equals = true,
          value_parser = ["text", "html", "json"], conflicts_with = "events")]
    summary: Option<String>,
    /// With --summary: the day, YYYY-MM-DD.
    #[arg(long, requires = "summary")]
    date: Option<String>,
    /// Threads: 1 does everything in one thread; 2 reads and parses each file on a thread of
    /// its own while the first finds the bursts in time order; 3 also parses every other block
    /// of a single file on a third [default: 3 where the machine has two cores or more, else 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Log files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

/// The exit status of a command line that cannot run as given (clap's, for its own errors).
const EXIT_USAGE: u8 = 2;

/// Runs the command line; returns the process exit code: 0 done, 1 the command failed (a
/// problem found by `check`, a file that cannot be read, a send that failed), 2 it cannot run
/// as given (invalid arguments, root without `--allow-root`).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, allow_root } => {
            let allowed =
                allow_root || std::env::var_os("GATEWATCH_ALLOW_ROOT").is_some_and(|v| v == "1");
            if !allowed && running_as_root() {
                eprintln!(
                    "gatewatch run: refusing to run as root. gatewatch only reads the logs and writes its state folder: run it as its own user (the packaged systemd unit runs as user gatewatch in group adm), or pass --allow-root (GATEWATCH_ALLOW_ROOT=1) if you must."
                );
                return ExitCode::from(EXIT_USAGE);
            }
            run_daemon(config)
        }
        Command::Demo { dir } => load_kb(&[])
            .map_err(anyhow::Error::from)
            .and_then(|kb| crate::demo::run(Arc::new(kb), dir))
            .map(|()| ExitCode::SUCCESS),
        Command::Scan(args) => run_scan(args),
        Command::Check {
            config,
            patterns,
            no_access,
        } => run_check(config, patterns, !no_access),
        Command::TestAlert { config, channel } => run_test_alert(config, channel),
        Command::Silence { action, config } => run_silence(action, config),
        Command::Summary {
            config,
            date,
            format,
            lang,
            timezone,
            send,
        } => run_summary(config, date, (&format, &lang), timezone, send),
        Command::Patterns {
            action,
            patterns,
            lang,
        } => run_patterns(action, patterns, &lang),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("gatewatch: error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The pattern files of the built-in knowledge base.
pub fn embedded_sources() -> Vec<Source> {
    embedded::EMBEDDED
        .iter()
        .map(|(rel, text)| Source {
            file: format!("patterns/{rel}"),
            rel: rel.to_string(),
            text: text.to_string(),
        })
        .collect()
}

/// Reads every `*.toml` below the folders; a later folder's file replaces an earlier one with
/// the same path (local additions override shipped entries).
pub fn read_pattern_dirs(dirs: &[PathBuf]) -> Result<Vec<Source>, FileErrors> {
    let mut by_rel: std::collections::BTreeMap<String, Source> = Default::default();
    let mut errors = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<FileError>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                errors.push(FileError::new(
                    dir.display().to_string(),
                    0,
                    format!("cannot read the folder: {e}"),
                ));
                return;
            }
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out, errors);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    for dir in dirs {
        let mut files = Vec::new();
        walk(dir, &mut files, &mut errors);
        for f in files {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            match std::fs::read_to_string(&f) {
                Ok(text) => {
                    by_rel.insert(
                        rel.clone(),
                        Source {
                            file: f.display().to_string(),
                            rel,
                            text,
                        },
                    );
                }
                Err(e) => errors.push(FileError::new(
                    f.display().to_string(),
                    0,
                    format!("cannot read the file: {e}"),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(by_rel.into_values().collect())
    } else {
        Err(FileErrors(errors))
    }
}

/// The knowledge base a config names: its pattern folders (a missing one reported at the
/// config's line), or the built-in one.
fn config_kb(cfg: &Config) -> Result<Kb, FileErrors> {
    let errors = cfg.pattern_dir_errors();
    if !errors.is_empty() {
        return Err(FileErrors(errors));
    }
    load_kb(&cfg.pattern_dirs)
}

/// The knowledge base from folders, or the built-in one when none are given.
pub fn load_kb(dirs: &[PathBuf]) -> Result<Kb, FileErrors> {
    let sources = if dirs.is_empty() {
        embedded_sources()
    } else {
        read_pattern_dirs(dirs)?
    };
    Kb::load(&sources).map_err(FileErrors)
}

/// The logs nginx's configuration names (`nginx -T`) and the standard paths that exist, added
/// to a config that names no source (no config file, or one without `[[source]]`). Returns why
/// each log was chosen, and notes.
fn discover_sources(cfg: &mut Config) -> (Vec<String>, Vec<String>) {
    let (found, notes) = crate::discover::discover(&Zone::Local);
    let mut why = Vec::new();
    for f in found {
        if let crate::config::SourceKind::Log { path, format } = &f.source.kind {
            why.push(format!("{path} ({format}): {}", f.why));
        }
        cfg.sources.push(f.source);
    }
    (why, notes)
}

/// The built-in configuration: the logs found on this machine ([`discover_sources`]); state in
/// systemd's state directory or /var/lib/gatewatch; alerts on standard error. Also returns why
/// each log was chosen, and notes.
fn builtin_config() -> (Config, Vec<String>, Vec<String>) {
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
fn daemon_config(path: Option<&Path>) -> anyhow::Result<(Config, Arc<Kb>)> {
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
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run_daemon(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
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
        if let crate::config::SourceKind::Log { path, format } = &s.kind {
            crate::log!(Info, "source", path = path, format = format);
        }
    }
    // What the config names but this process cannot read: said once at start; the daemon
    // goes on (a log may become readable, a secret is read again at each send).
    for problem in cfg.check_access() {
        crate::log!(Warn, "cannot use what the config names", problem = problem);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let daemon = {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || crate::daemon::Daemon::start(&cfg, kb, Vec::new()))
                .await??
        };
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http = match cfg.http_listen {
            Some(addr) => {
                let listener = crate::http::bind(addr).await?;
                crate::log!(Info, "serving /health and /metrics", listen = addr);
                Some(tokio::spawn(crate::http::serve(
                    listener,
                    daemon.status(),
                    async {
                        let _ = http_stopped.await;
                    },
                )))
            }
            None => None,
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        crate::log!(Info, "ready", state = cfg.state_dir.display());
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    let _ = sd_notify::notify(&[
                        sd_notify::NotifyState::Reloading,
                        sd_notify::NotifyState::monotonic_usec_now()?,
                    ]);
                    match daemon_config(config.as_deref()) {
                        Ok((cfg, kb)) => daemon.reload(cfg, kb),
                        Err(e) => crate::log!(
                            Error,
                            "reload refused; the old configuration keeps running",
                            error = format!("{e:#}")
                        ),
                    }
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        crate::log!(Info, "stopping");
        let _ = http_stop.send(());
        if let Some(h) = http {
            h.await??;
        }
        tokio::task::spawn_blocking(move || daemon.stop()).await??;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a config file; `None` reads the default file if it exists.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(Config::default()),
    };
    Ok(Config::load(&path)?)
}

fn run_check(
    config: Option<PathBuf>,
    patterns: Vec<PathBuf>,
    access: bool,
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
    let kb = match cfg
        .as_ref()
        .filter(|c| c.pattern_dirs == dirs)
        .map_or_else(|| load_kb(&dirs), config_kb)
    {
        Ok(kb) => Some(kb),
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
    // Every channel's templates (overrides included) render the sample alert.
    if let Some(inc) = crate::alert::sample(&kb) {
        for ch in cfg.alert_channels() {
            if let Err(e) = crate::alert::check_channel(&ch, &cfg.alerts, &kb, &inc) {
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
        .iter()
        .map(|e| e.examples.len() + e.near_misses.len())
        .sum();
    println!(
        "patterns: {} entries ({where_from}), {examples} example lines proven",
        kb.entries().len()
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

fn run_test_alert(config: Option<PathBuf>, channel: Option<String>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let kb = config_kb(&cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let results = rt.block_on(crate::send::test_alert(&cfg, &kb, channel.as_deref()))?;
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

/// The state directory commands other than `run` use: the configured one, else systemd's,
/// else the default.
fn state_dir(cfg: &Config) -> PathBuf {
    if cfg.file.is_none()
        && let Some(dir) = std::env::var_os("STATE_DIRECTORY")
    {
        return PathBuf::from(dir.to_string_lossy().split(':').next().unwrap_or(""));
    }
    cfg.state_dir.clone()
}

fn parse_date(s: &str) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| {
        usage(format!(
            "--date {s:?} is not a date such as 2024-05-01 ({e})"
        ))
    })
}

/// Prints a report in a format.
fn print_summary_report(r: &crate::summary::Report, format: &str) -> anyhow::Result<()> {
    let text = match format {
        "json" => serde_json::to_string_pretty(r)? + "\n",
        "html" => crate::summary::render(r, "summary.html.j2", None, None)?,
        _ => crate::summary::render(r, "summary.txt.j2", None, None)?,
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn run_summary(
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
        anyhow::ensure!(dir.join(crate::state::FILE_NAME).exists(), no_state());
        crate::state::State::open(&dir)?.0
    } else {
        crate::state::State::open_read_only(&dir)?.ok_or_else(no_state)?
    };
    let now = chrono::Utc::now().timestamp_millis();
    let date = match date {
        Some(d) => d,
        None => crate::summary::local_date(&zone, now)
            .pred_opt()
            .context("a date")?,
    };
    if send {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let results = rt.block_on(crate::send::send_summary_now(
            &cfg,
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
    let r = crate::summary::build(
        state.conn(),
        &kb,
        &crate::summary::Options {
            date,
            zone,
            host: crate::send::host_name(&cfg.alerts),
            lang: Lang::from_name(lang).unwrap_or_default(),
            now_ms: now,
        },
    )?;
    print_summary_report(&r, format)?;
    Ok(ExitCode::SUCCESS)
}

fn run_silence(action: SilenceAction, config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use crate::outbox;
    let cfg = load_config(config.as_deref())?;
    let dir = state_dir(&cfg);
    // Listing and removing never create a state; adding does, once its arguments are valid.
    let state = match &action {
        SilenceAction::Add { .. } => None,
        _ => crate::state::State::open_read_only(&dir)?,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M %z")
                    .to_string()
            })
            .unwrap_or_default()
    };
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
            };
            let (state, _) = crate::state::State::open(&dir)?;
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
                        s.entry
                            .as_ref()
                            .map(|e| format!(" entry {e}"))
                            .unwrap_or_default(),
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
                Some(_) => Some(crate::state::State::open(&dir)?.0),
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

fn run_patterns(
    action: Option<PatternsAction>,
    dirs: Vec<PathBuf>,
    lang: &str,
) -> anyhow::Result<ExitCode> {
    let kb = load_kb(&dirs)?;
    let lang = Lang::from_name(lang).unwrap_or_default();
    let mut out = io::stdout().lock();
    match action.unwrap_or(PatternsAction::List) {
        PatternsAction::List => {
            writeln!(
                out,
                "{:<58} {:>8} {:<40} TITLE",
                "ENTRY", "FIX RATE", "CAUSES"
            )?;
            for e in kb.entries() {
                let causes: Vec<&str> = e.causes.iter().map(|c| c.as_str()).collect();
                writeln!(
                    out,
                    "{:<58} {:>6.0} % {:<40} {}",
                    e.id,
                    e.fix_rate * 100.0,
                    causes.join(","),
                    e.title.get(lang)
                )?;
            }
        }
        PatternsAction::Show { id, upstream } => match kb.find(&id) {
            Some(eid) => {
                let text = report::entry_text(kb.get(eid), lang, upstream.as_deref());
                out.write_all(text.as_bytes())?;
            }
            None => {
                eprintln!(
                    "gatewatch: no entry {id:?}; `gatewatch patterns list` shows the {} entries",
                    kb.entries().len()
                );
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Collects scan output: events as they settle, incidents as they close.
struct ScanSink<'a, W: Write> {
    out: W,
    buf: Vec<u8>,
    events: bool,
    json: bool,
    names: &'a [String],
    kb: Arc<Kb>,
    incidents: Vec<Incident>,
    error: Option<io::Error>,
    /// `--summary`: every line counted, as the daemon counts them; the newest line's time.
    counters: Option<crate::state::Counters>,
    last_ms: i64,
}

impl<W: Write> ScanSink<'_, W> {
    fn flush_buf(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(&self.buf)
        {
            self.error = Some(e);
        }
        self.buf.clear();
    }
}

impl<W: Write> Sink for ScanSink<'_, W> {
    fn event(&mut self, s: &Settled<'_>) {
        if let Some(c) = &mut self.counters
            && let Some(t) = s.ev.time
        {
            c.add(t.ms, s.source, s.upstream, s.ev.cause);
            self.last_ms = self.last_ms.max(t.ms);
        }
        if !self.events || self.error.is_some() {
            return;
        }
        let name = self
            .names
            .get(s.source as usize)
            .map_or("-", String::as_str);
        if self.json {
            report::event_json(&mut self.buf, name, s, &self.kb);
        } else {
            report::event_text(&mut self.buf, name, s, &self.kb);
        }
        if self.buf.len() >= 64 * 1024 {
            self.flush_buf();
        }
    }

    fn change(&mut self, change: Change) {
        if let Change::Closed(inc) = change {
            self.incidents.push(inc);
        }
    }
}

fn run_scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let cfg = match &args.config {
        Some(p) => load_config(Some(p))?,
        None => Config::default(),
    };
    let dirs = if args.patterns.is_empty() {
        cfg.pattern_dirs.clone()
    } else {
        args.patterns.clone()
    };
    let kb = Arc::new(load_kb(&dirs)?);
    let zone: Zone = args
        .timezone
        .parse()
        .map_err(|e: String| usage(format!("--timezone: {e}")))?;
    let log_format = match &args.log_format {
        Some(f) => {
            Some(LogFormat::from_directive(f).map_err(|e| usage(format!("--log-format: {e}")))?)
        }
        None => None,
    };
    // With --log-format alone, each file's format is still recognised: the access log is read
    // with that log_format, an error log given beside it as an error log.
    let format = args.format.as_deref().and_then(Format::from_name);
    let year = args
        .files
        .iter()
        .find_map(|f| scan::file_year(f))
        .unwrap_or_else(|| chrono::Datelike::year(&chrono::Utc::now()));
    let window_ms = cfg.detect.window_ms;
    let opts = ScanOptions {
        format,
        parser: ParserOptions {
            zone,
            year,
            log_format,
        },
        pipeline: PipelineConfig {
            detect: cfg.detect.clone(),
            join: Some(cfg.join),
        },
        threads: match args.threads {
            Some(n) => n as usize,
            None if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) => 3,
            None => 1,
        },
        ..ScanOptions::default()
    };
    let stdout = io::stdout().lock();
    let mut sink = ScanSink {
        out: io::BufWriter::with_capacity(64 * 1024, stdout),
        buf: Vec::with_capacity(128 * 1024),
        events: args.events,
        json: args.json,
        names: &args.files,
        kb: kb.clone(),
        incidents: Vec::new(),
        error: None,
        counters: args.summary.is_some().then(crate::state::Counters::default),
        last_ms: i64::MIN,
    };
    let zone = opts.parser.zone.clone();
    let report = scan::scan(&args.files, &opts, kb.clone(), &mut sink)?;
    sink.flush_buf();
    if let Some(format) = &args.summary {
        print_summary(&report, sink.incidents.len());
        let host = crate::send::host_name(&cfg.alerts);
        return scan_summary(&args, &report, sink, &kb, (zone, host), format);
    }
    let lang = Lang::from_name(&args.lang).unwrap_or_default();
    if !args.events {
        let mut incidents = std::mem::take(&mut sink.incidents);
        incidents.sort_by_key(|i| (i.start_ms, i.seq));
        for inc in &incidents {
            if args.json {
                let v = report::incident_json(inc, &kb, window_ms, &args.files);
                sink.buf.extend_from_slice(v.to_string().as_bytes());
                sink.buf.push(b'\n');
            } else {
                sink.buf.extend_from_slice(
                    report::incident_text(inc, &kb, window_ms, &args.files, lang).as_bytes(),
                );
                sink.buf.push(b'\n');
            }
        }
        sink.incidents = incidents;
        sink.flush_buf();
    }
    if let Some(e) = sink.error.take() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("writing the output");
        }
        return Ok(ExitCode::SUCCESS);
    }
    sink.out.flush().or_else(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    print_summary(&report, sink.incidents.len());
    if report.files.iter().all(|f| f.format.is_none()) {
        eprintln!(
            "gatewatch: no file was recognised as nginx, HAProxy or ALB logs; name the format with --format (and --log-format for a custom nginx access log)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `scan --summary`: the lines and incidents of the scan go into a state in memory, and the
/// report is built from it exactly as the daemon's is from its state file.
fn scan_summary<W: Write>(
    args: &ScanArgs,
    report: &ScanReport,
    mut sink: ScanSink<'_, W>,
    kb: &Kb,
    (zone, host): (Zone, String),
    format: &str,
) -> anyhow::Result<ExitCode> {
    use crate::outbox::{Alerting, Notice};
    let mut state = crate::state::State::in_memory()?;
    let formats: Vec<(String, Format)> = report
        .files
        .iter()
        .filter_map(|f| {
            let name = f.format.as_deref()?.split_whitespace().next()?;
            Some((f.name.clone(), Format::from_name(name)?))
        })
        .collect();
    state.register_sources(&formats)?;
    let mut notices = Vec::new();
    for inc in &sink.incidents {
        let mut opened = inc.clone();
        opened.closed_ms = None;
        notices.push(Notice::new(crate::alert::AlertKind::Opened, opened));
        notices.push(Notice::new(crate::alert::AlertKind::Resolved, inc.clone()));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let alerting = Alerting {
        kb,
        host: &host,
        channels: &[],
        sources: &args.files,
        maintenance: &[],
        open: &[],
        now_ms: now,
    };
    let mut counters = sink.counters.take().unwrap_or_default();
    state.commit(
        &[],
        &[],
        &mut counters,
        &args.files,
        Some((&alerting, &notices)),
    )?;
    let date = match &args.date {
        Some(d) => parse_date(d)?,
        None if sink.last_ms > i64::MIN => crate::summary::local_date(&zone, sink.last_ms),
        None => anyhow::bail!("no line with a time: nothing to summarise"),
    };
    let r = crate::summary::build(
        state.conn(),
        kb,
        &crate::summary::Options {
            date,
            zone,
            host,
            lang: Lang::from_name(&args.lang).unwrap_or_default(),
            now_ms: now,
        },
    )?;
    print_summary_report(&r, format)?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(report: &ScanReport, incidents: usize) {
    let mut err = io::stderr().lock();
    for f in &report.files {
        let format = f.format.as_deref().unwrap_or("format not recognised");
        let gz = if f.gzip { " (gzip)" } else { "" };
        let mut line = format!(
            "{}{gz}: {format}: {} lines, {} parsed, {} unparsed",
            f.name, f.lines, f.parsed, f.unparsed
        );
        if f.too_long > 0 {
            line.push_str(&format!(" ({} over the line limit)", f.too_long));
        }
        if let Some((n, why)) = &f.first_unparsed {
            line.push_str(&format!("; first unparsed: line {n}: {why}"));
        }
        let _ = writeln!(err, "{line}");
    }
    let causes: Vec<String> = crate::event::Cause::ALL
        .iter()
        .filter(|c| report.counts.get(**c) > 0)
        .map(|c| format!("{} {}", c, report.counts.get(*c)))
        .collect();
    let _ = writeln!(
        err,
        "causes: {}",
        if causes.is_empty() {
            "none".into()
        } else {
            causes.join(", ")
        }
    );
    if let Some(j) = report.join {
        let _ = writeln!(
            err,
            "joined {} access-log lines with the error-log lines that explain them",
            j.joined
        );
    }
    let _ = writeln!(err, "incidents: {incidents}");
}

//! The command line. This is the IO shell: it reads files and the config, and prints; the work
//! is done by the pure modules.

use crate::app::config::Config;
use crate::engine::detect::{Change, Incident};
use crate::engine::event::Format;
use crate::engine::kb::{Kb, Lang};
use crate::engine::parse::{LogFormat, ParserOptions};
use crate::engine::pipeline::{PipelineConfig, Settled, Sink};
use crate::engine::time::Zone;
use crate::render::report;
use crate::source::scan::{self, ScanOptions, ScanReport};
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

mod check;
mod draft;
mod incident;
mod patterns;
mod run;
mod scan_command;
mod state;

use check::*;
use incident::*;
use patterns::*;
use run::*;
use scan_command::*;
use state::*;

use crate::app::patterns::{for_config as config_kb, load_kb};

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "/etc/gatewatch/gatewatch.toml";

#[derive(Parser, Debug)]
#[command(
    name = "gatewatch",
    version,
    about = "Watches reverse-proxy logs (nginx, HAProxy, AWS ALB, Apache httpd, Caddy, Envoy, Traefik) and tells you when an upstream becomes unreachable, and what to do about it."
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
        /// Connect to the brokers of every Kafka source and report the topic's partitions and
        /// where the group stands in each (5 s deadline per request).
        #[arg(long)]
        connect: bool,
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
    /// The incidents recorded, and what fixed them.
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
        /// The config file (for the state directory and the patterns) [default:
        /// /etc/gatewatch/gatewatch.toml]
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
    /// Write a new entry's skeleton from a recorded incident (an unknown burst above all):
    /// its sample lines as examples, a near-miss candidate, TODOs for the text.
    Draft {
        /// The incident's key (`gw-…`).
        key: String,
        /// The pattern folder to write into [default: the last of [patterns] dirs]; the draft
        /// goes to its `local/` folder.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace a draft written before.
        #[arg(long)]
        force: bool,
        /// The config file (state directory, sources, pattern folders) [default:
        /// /etc/gatewatch/gatewatch.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the local record as counts only (entry, item, tried, fixed; one JSON object per
    /// line): no hosts, upstreams, paths or log text, to contribute measured rates upstream.
    ExportEvidence {
        /// The config file [default: /etc/gatewatch/gatewatch.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// The format of every file [default: recognised from each file's first lines; a container
    /// log (CRI or docker json-file framing) is unwrapped into its stdout and stderr lines]
    #[arg(long, value_parser = ["nginx_access", "nginx_error", "haproxy", "alb", "apache_access", "apache_error", "caddy", "envoy", "traefik", "container"])]
    format: Option<String>,
    /// An nginx log_format, exactly as written in nginx.conf, for the nginx access logs.
    #[arg(long, value_name = "LOG_FORMAT")]
    log_format: Option<String>,
    /// Print one line per parsed log line instead of the incidents.
    #[arg(long)]
    events: bool,
    /// Also print, on standard error, the lines that did not parse (`file:line: why: line`;
    /// the first 1,000 of each file).
    #[arg(long)]
    unparsed: bool,
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
    /// its own while the first finds the bursts in time order (and, for a single file, parses
    /// the blocks the reading thread leaves it); 3 parses two blocks in three of a single file
    /// (every block of a gzip one) on a third [default: the machine's cores, at most 3]
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
/// A reader that stops reading (`gatewatch scan … | head`) closes the pipe: Rust's `println!`
/// then panics ("failed printing to stdout: Broken pipe"). Such a command ends quietly, as
/// Unix tools do on SIGPIPE (status 141), instead of printing a panic; every other panic is
/// reported as before.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
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
            .and_then(|kb| crate::app::demo::run(Arc::new(kb), dir))
            .map(|()| ExitCode::SUCCESS),
        Command::Scan(args) => run_scan(args),
        Command::Check {
            config,
            patterns,
            no_access,
            connect,
        } => run_check(config, patterns, !no_access, connect),
        Command::TestAlert { config, channel } => run_test_alert(config, channel),
        Command::Silence { action, config } => run_silence(action, config),
        Command::Incident { action, config } => run_incident(action, config),
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

/// Reads a config file; `None` reads the default file if it exists.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(Config::default()),
    };
    Ok(Config::load(&path)?)
}

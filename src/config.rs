//! The configuration file (`/etc/gatewatch/gatewatch.toml`): the TOML as written, then a checked
//! [`Config`]. Unknown keys are refused; every error names the file, the line and the key.
//! Secrets are never read from this file: passwords come from a file (systemd credentials) or
//! an environment variable.

use crate::detect::DetectConfig;
use crate::error::{FileError, FileErrors};
use crate::event::Format;
use crate::join::JoinConfig;
use crate::kb::Lang;
use crate::parse::LogFormat;
use crate::time::Zone;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where the SQLite state lives when the config names none.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gatewatch";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "source")]
    sources: Vec<Spanned<RawSource>>,
    state: Option<RawState>,
    http: Option<RawHttp>,
    #[serde(default, rename = "channel")]
    channels: Vec<Spanned<RawChannel>>,
    detect: Option<RawDetect>,
    patterns: Option<RawPatterns>,
    alerts: Option<RawAlerts>,
    #[serde(default)]
    maintenance: Vec<Spanned<RawMaintenance>>,
    summary: Option<RawSummary>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSummary {
    at: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    channels: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    host: Option<String>,
    group_wait: Option<Spanned<String>>,
    renotify: Option<Spanned<String>>,
    give_up_after: Option<Spanned<String>>,
    retry_min: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
    template_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    upstream: Option<String>,
    entry: Option<String>,
    days: Option<Spanned<Vec<String>>>,
    start: Option<Spanned<String>>,
    end: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    until: Option<Spanned<String>>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    /// A syslog listener on an address other machines can reach (off by default).
    allow_remote: Option<bool>,
    format: Spanned<String>,
    log_format: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    start_at: Option<Spanned<String>>,
    /// S3-compatible endpoint and region, for `alb` sources read from `s3://`.
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Spanned<String>,
    /// Serve on an address other machines can reach (the pages have no authentication).
    allow_remote: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetect {
    window: Option<Spanned<String>>,
    open_failures: Option<Spanned<u32>>,
    open_share: Option<Spanned<f64>>,
    close_failures: Option<Spanned<u32>>,
    quiet: Option<Spanned<String>>,
    max_upstreams: Option<Spanned<usize>>,
    join_before: Option<Spanned<String>>,
    join_after: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatterns {
    dirs: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: Spanned<String>,
    kind: Spanned<String>,
    lang: Option<Spanned<String>>,
    // email
    server: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<Vec<String>>>,
    username: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    /// Refused with an explanation: secrets do not belong in the config file.
    password: Option<Spanned<toml::Value>>,
    // webhook
    format: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    secret_file: Option<String>,
    secret_env: Option<String>,
    timeout: Option<Spanned<String>>,
    /// A PEM file of extra trusted roots (an internal relay or receiver with a private CA).
    ca_file: Option<String>,
    /// A folder whose templates replace the built-in ones of the same name.
    template_dir: Option<String>,
}

/// How a source is read.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// A log file or glob (for `alb`, a folder of `.log.gz` or `s3://bucket/prefix`).
    Log { path: String, format: Format },
    /// gatewatch's own syslog listener (`udp://127.0.0.1:5514`, `unix:///run/gatewatch/log`).
    Syslog { listen: String },
}

/// Where reading starts in a file seen for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    End,
    Beginning,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub log_format: Option<LogFormat>,
    pub timezone: Zone,
    pub start_at: StartAt,
    /// For `s3://` ALB sources: an S3-compatible endpoint (`http://127.0.0.1:9000`) and region.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// TLS for SMTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChannelKind {
    Console,
    Email {
        server: String,
        tls: SmtpTls,
        from: String,
        to: Vec<String>,
        username: Option<String>,
        password: Option<Secret>,
        timeout: Duration,
    },
    Webhook {
        format: WebhookFormat,
        url: String,
        /// The HMAC key (for `pagerduty`, the routing key).
        secret: Option<Secret>,
        timeout: Duration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    Json,
    Slack,
    Teams,
    Discord,
    Alertmanager,
    Pagerduty,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChannelConfig {
    pub name: String,
    pub lang: Lang,
    pub kind: ChannelKind,
    pub ca_file: Option<PathBuf>,
    /// Templates of this channel; else `[alerts] template_dir`; else the built-in ones.
    pub template_dir: Option<PathBuf>,
}

impl ChannelConfig {
    /// The console channel used when none is configured.
    pub fn console() -> ChannelConfig {
        ChannelConfig {
            name: "console".into(),
            lang: Lang::En,
            kind: ChannelKind::Console,
            ca_file: None,
            template_dir: None,
        }
    }
}

impl Secret {
    /// Reads the secret (a trailing newline of a file is not part of it). The error names
    /// where it looked, never the value.
    pub fn read(&self) -> anyhow::Result<String> {
        match self {
            Secret::File(p) => {
                // Relative names are looked up in systemd's credentials directory.
                let path = match std::env::var_os("CREDENTIALS_DIRECTORY") {
                    Some(dir) if p.is_relative() => PathBuf::from(dir).join(p),
                    _ => p.clone(),
                };
                let s = std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("reading the secret file {}: {e}", path.display())
                })?;
                Ok(s.trim_end_matches(['\r', '\n']).to_string())
            }
            Secret::Env(name) => std::env::var(name).map_err(|_| {
                anyhow::anyhow!("the environment variable {name} (a secret) is not set")
            }),
        }
    }
}

/// How alerts are sent.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// The name of this host in messages (default: the system's host name).
    pub host: Option<String>,
    /// How long the first change of a message waits for others to join it.
    pub group_wait: Duration,
    /// How often an open incident is announced again (`None`: never).
    pub renotify: Option<Duration>,
    /// How long a message is retried before it is recorded as failed.
    pub give_up_after: Duration,
    /// The first retry's delay, doubled on every failure up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub template_dir: Option<PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            host: None,
            // Long enough for upstreams failing together to share one message, short enough
            // that an alert arrives within two seconds of the first failed request.
            group_wait: Duration::from_secs(1),
            renotify: Some(Duration::from_secs(4 * 3600)),
            give_up_after: Duration::from_secs(24 * 3600),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            template_dir: None,
        }
    }
}

/// A maintenance window: incidents that open inside it are recorded but not alerted.
#[derive(Clone, Debug, PartialEq)]
pub struct Maintenance {
    /// Globs (`*`, `?`) over the upstream and the entry id.
    pub upstream: String,
    pub entry: Option<String>,
    pub when: MaintenanceTime,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MaintenanceTime {
    /// Every week on these days (0 = Monday), from `start` to `end` (minutes after
    /// midnight; `end` before `start` runs past midnight), in a time zone.
    Weekly {
        days: Vec<u32>,
        start: u32,
        end: u32,
        zone: Zone,
    },
    /// Once, from one instant until another (Unix ms).
    Once { from_ms: i64, until_ms: i64 },
}

impl Maintenance {
    /// Whether the window covers an incident of `upstream` and `entry` at `now_ms` (Unix ms).
    pub fn covers(&self, upstream: &str, entry: &str, now_ms: i64) -> bool {
        if !crate::daemon::glob_match(self.upstream.as_bytes(), upstream.as_bytes())
            || self
                .entry
                .as_ref()
                .is_some_and(|e| !crate::daemon::glob_match(e.as_bytes(), entry.as_bytes()))
        {
            return false;
        }
        match &self.when {
            MaintenanceTime::Once { from_ms, until_ms } => (*from_ms..*until_ms).contains(&now_ms),
            MaintenanceTime::Weekly {
                days,
                start,
                end,
                zone,
            } => {
                use chrono::{Datelike, Timelike};
                let Some(utc) = chrono::DateTime::from_timestamp_millis(now_ms) else {
                    return false;
                };
                let local = zone.local(utc);
                let minute = local.hour() * 60 + local.minute();
                let today = local.weekday().num_days_from_monday();
                let yesterday = (today + 6) % 7;
                if start <= end {
                    days.contains(&today) && (*start..*end).contains(&minute)
                } else {
                    // Past midnight: the evening of a listed day, or the morning after it.
                    (days.contains(&today) && minute >= *start)
                        || (days.contains(&yesterday) && minute < *end)
                }
            }
        }
    }
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from (`None` for the built-in defaults).
    pub file: Option<PathBuf>,
    pub sources: Vec<SourceConfig>,
    pub state_dir: PathBuf,
    pub http_listen: Option<SocketAddr>,
    pub channels: Vec<ChannelConfig>,
    pub detect: DetectConfig,
    pub join: JoinConfig,
    /// Pattern folders; empty means the knowledge base built into the binary.
    pub pattern_dirs: Vec<PathBuf>,
    pub alerts: AlertsConfig,
    pub maintenance: Vec<Maintenance>,
    pub summary: SummaryConfig,
    /// Where each source and channel is written in the file (1-based lines; empty when the
    /// config was not read from a file), for messages about them.
    pub lines: Lines,
}

/// Lines of the config file, parallel to `Config::sources` and `Config::channels`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    pub sources: Vec<usize>,
    pub channels: Vec<usize>,
    /// The line of `[patterns] dirs` (0 when not written).
    pub patterns: usize,
}

/// The daily summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryConfig {
    /// When it is sent, in minutes after local midnight (`None`: not sent).
    pub at: Option<u32>,
    /// The zone its days are in.
    pub zone: Zone,
    /// The channels it goes to (empty: every channel).
    pub channels: Vec<String>,
}

impl Default for SummaryConfig {
    fn default() -> SummaryConfig {
        SummaryConfig {
            at: None,
            zone: Zone::Local,
            channels: Vec::new(),
        }
    }
}

impl Config {
    /// The channels alerts go to: the configured ones, or the console.
    pub fn alert_channels(&self) -> Vec<ChannelConfig> {
        if self.channels.is_empty() {
            vec![ChannelConfig::console()]
        } else {
            self.channels.clone()
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            file: None,
            sources: Vec::new(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            http_listen: None,
            channels: Vec::new(),
            detect: DetectConfig::default(),
            join: JoinConfig::default(),
            pattern_dirs: Vec::new(),
            alerts: AlertsConfig::default(),
            maintenance: Vec::new(),
            summary: SummaryConfig::default(),
            lines: Lines::default(),
        }
    }
}

/// The longest duration a key accepts. Durations become milliseconds in an `i64` that is added
/// to time stamps; a longer one would wrap (a negative window) or overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600); // humantime: 365.25-day years

/// Parses `5m`, `90s`, `1h 30m`.
fn duration(p: &mut Problems<'_>, v: &Spanned<String>, key: &str) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) if d > MAX_DURATION => {
            p.at(
                v.span().start,
                format!("{key}: {:?} is too long (at most 100 years)", v.get_ref()),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p.at(
                v.span().start,
                format!(
                    "{key}: {:?} is not a duration ({e}); write it like \"60s\" or \"5m\"",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

struct Problems<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<FileError>,
}

impl Problems<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        self.errors
            .push(FileError::at(self.file, self.text, offset, message));
    }
}

fn format_is_pagerduty(k: &ChannelKind) -> bool {
    matches!(
        k,
        ChannelKind::Webhook {
            format: WebhookFormat::Pagerduty,
            ..
        }
    )
}

/// `HH:MM` as minutes after midnight.
fn clock_minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// `tls = "…"` by name.
fn tls_by_name(name: &str) -> Option<SmtpTls> {
    match name {
        "starttls" => Some(SmtpTls::StartTls),
        "implicit" => Some(SmtpTls::Implicit),
        "none" => Some(SmtpTls::None),
        _ => None,
    }
}

/// An SMTP server as people write it: `host:port`, `[::1]:25`, or the URL forms mail clients
/// use, `smtp://host[:port]` (port 587 by default; TLS as `tls` says, STARTTLS unless told) and
/// `smtps://host[:port]` (implicit TLS, port 465 by default). Returns `host:port` and the TLS
/// the URL implies.
fn smtp_server(written: &str) -> Result<(String, Option<SmtpTls>), String> {
    let (rest, tls, default_port) = if let Some(r) = written.strip_prefix("smtp://") {
        (r, None, Some(587))
    } else if let Some(r) = written.strip_prefix("smtps://") {
        (r, Some(SmtpTls::Implicit), Some(465))
    } else if written.contains("://") {
        return Err(format!(
            "{written:?}: only smtp:// and smtps:// addresses are mail servers; write host:port, e.g. \"smtp.example.com:587\""
        ));
    } else {
        (written, None, None)
    };
    let rest = rest.trim_end_matches('/');
    let bad = || {
        format!(
            "{written:?} must be host:port, e.g. \"smtp.example.com:587\" (or smtp://host:port, smtps://host:port)"
        )
    };
    if rest.is_empty() || rest.contains(['/', '@', '?', ' ']) {
        return Err(bad());
    }
    // A port is the part after the last colon, unless that colon is inside an IPv6 literal.
    let port_part = rest
        .rsplit_once(':')
        .filter(|(h, _)| !h.contains(':') || h.ends_with(']'));
    match (port_part, default_port) {
        (Some((host, port)), _) if !host.is_empty() => match port.parse::<u16>() {
            Ok(n) if n > 0 => Ok((format!("{host}:{n}"), tls)),
            _ => Err(bad()),
        },
        (None, Some(port)) => Ok((format!("{rest}:{port}"), tls)),
        _ => Err(bad()),
    }
}

/// Checks a syslog listener's address: a unix socket path, or a UDP address on loopback unless
/// `allow_remote`.
fn check_syslog_listen(listen: &str, allow_remote: Option<bool>) -> Result<(), String> {
    if let Some(path) = listen.strip_prefix("unix://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!(
                "{listen:?}: a unix socket needs an absolute path, e.g. \"unix:///run/gatewatch/haproxy.sock\""
            ))
        };
    }
    let addr = listen.strip_prefix("udp://").unwrap_or(listen);
    match addr.parse::<SocketAddr>() {
        Err(_) => Err(format!(
            "{listen:?} is not an address such as \"udp://127.0.0.1:5514\" or \"unix:///run/gatewatch/haproxy.sock\""
        )),
        Ok(a) if !a.ip().is_loopback() && allow_remote != Some(true) => Err(format!(
            "{a} can be reached from other machines, and anyone who can send to it can make gatewatch alert; listen on 127.0.0.1 or a unix socket, or set allow_remote = true on this source if you mean it"
        )),
        Ok(_) => Ok(()),
    }
}

impl SourceKind {
    /// What the source reads: its path, or its listener's address.
    pub fn input(&self) -> &str {
        match self {
            SourceKind::Log { path, .. } => path,
            SourceKind::Syslog { listen } => listen,
        }
    }

    /// Whether two sources read the same input (the same path, or the same listener).
    fn same_input(&self, other: &SourceKind) -> bool {
        match (self, other) {
            (SourceKind::Log { path: a, .. }, SourceKind::Log { path: b, .. }) => a == b,
            (SourceKind::Syslog { listen: a }, SourceKind::Syslog { listen: b }) => {
                a.strip_prefix("udp://").unwrap_or(a) == b.strip_prefix("udp://").unwrap_or(b)
            }
            _ => false,
        }
    }
}

fn is_loopback_host(server: &str) -> bool {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// What the file cannot tell: whether the logs, secrets, CA files and template folders it
    /// names can be read by this process. `gatewatch check` reports these; the daemon logs
    /// them at start. A log that does not exist yet is fine (it is followed once created) as
    /// long as its folder exists.
    pub fn check_access(&self) -> Vec<FileError> {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "config".to_string(), |f| f.display().to_string());
        let mut out = Vec::new();
        let mut err = |line: Option<&usize>, msg: String| {
            out.push(FileError::new(&file, line.copied().unwrap_or(0), msg));
        };
        for (i, s) in self.sources.iter().enumerate() {
            let SourceKind::Log { path, .. } = &s.kind else {
                continue;
            };
            if path.starts_with("s3://") {
                continue;
            }
            let line = self.lines.sources.get(i);
            let p = Path::new(path);
            match std::fs::File::open(p) {
                Ok(_) if p.is_dir() => err(
                    line,
                    format!("source.path: {path} is a folder; name the log file in it"),
                ),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                    if let Some(d) = dir
                        && !d.is_dir()
                    {
                        err(
                            line,
                            format!(
                                "source.path: {path}: the folder {} does not exist",
                                d.display()
                            ),
                        );
                    }
                }
                Err(e) => err(
                    line,
                    format!(
                        "source.path: {path}: cannot be read ({e}); gatewatch needs read access to the logs it follows"
                    ),
                ),
            }
        }
        for (i, ch) in self.channels.iter().enumerate() {
            let line = self.lines.channels.get(i);
            let secret = match &ch.kind {
                ChannelKind::Email { password, .. } => password.as_ref().map(|s| ("password", s)),
                ChannelKind::Webhook { secret, .. } => secret.as_ref().map(|s| ("secret", s)),
                _ => None,
            };
            if let Some((what, secret)) = secret {
                let relative_credential = matches!(secret, Secret::File(p) if p.is_relative())
                    && std::env::var_os("CREDENTIALS_DIRECTORY").is_none();
                if !relative_credential && let Err(e) = secret.read() {
                    err(line, format!("channel {}: {what}: {e}", ch.name));
                }
            }
            if let Some(ca) = &ch.ca_file
                && let Err(e) = std::fs::read(ca)
            {
                err(
                    line,
                    format!("channel {}: ca_file {}: {e}", ch.name, ca.display()),
                );
            }
            if let Some(d) = &ch.template_dir
                && !d.is_dir()
            {
                err(
                    line,
                    format!(
                        "channel {}: template_dir {} is not a folder",
                        ch.name,
                        d.display()
                    ),
                );
            }
        }
        out
    }

    /// Reads and checks a config file. A file that is not UTF-8 is refused at the line of its
    /// first bad byte.
    pub fn load(path: &Path) -> Result<Config, FileErrors> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            FileErrors(vec![FileError::new(
                &file,
                0,
                format!("cannot read the file: {e}"),
            )])
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            FileErrors(vec![FileError::new(
                &file,
                line,
                "the file is not UTF-8 text (TOML is UTF-8); save it as UTF-8",
            )])
        })?;
        Config::parse(&file, &text)
    }

    /// Problems with the pattern folders the config names, at the line of `[patterns] dirs`.
    pub fn pattern_dir_errors(&self) -> Vec<FileError> {
        let file = self
            .file
            .as_ref()
            .map_or_else(|| "config".to_string(), |f| f.display().to_string());
        self.pattern_dirs
            .iter()
            .filter_map(|d| match std::fs::read_dir(d) {
                Ok(_) => None,
                Err(e) => Some(FileError::new(
                    &file,
                    self.lines.patterns,
                    format!(
                        "patterns.dirs: {}: cannot read the folder ({e})",
                        d.display()
                    ),
                )),
            })
            .collect()
    }

    /// Parses and checks a config file's text. `file` is used in messages.
    pub fn parse(file: &str, text: &str) -> Result<Config, FileErrors> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| FileErrors(vec![FileError::from_toml(file, text, &e)]))?;
        let mut p = Problems {
            file,
            text,
            errors: Vec::new(),
        };
        let mut cfg = Config {
            file: Some(PathBuf::from(file)),
            ..Config::default()
        };

        for s in raw.sources {
            let at = s.span().start;
            let s = s.into_inner();
            let fmt_name = s.format.get_ref().as_str();
            let kind = match (fmt_name, &s.path, &s.listen) {
                ("syslog", _, Some(listen)) => {
                    if let Err(e) = check_syslog_listen(listen.get_ref(), s.allow_remote) {
                        p.at(listen.span().start, format!("source.listen: {e}"));
                    }
                    SourceKind::Syslog {
                        listen: listen.get_ref().clone(),
                    }
                }
                ("syslog", _, None) => {
                    p.at(at, "source: a syslog source needs listen = \"udp://127.0.0.1:5514\" (or unix:///path)");
                    continue;
                }
                (_, Some(path), None) => match Format::from_name(fmt_name) {
                    Some(format) => SourceKind::Log {
                        path: path.get_ref().clone(),
                        format,
                    },
                    None => {
                        p.at(
                            s.format.span().start,
                            format!("source.format: {fmt_name:?} is not one of nginx_access, nginx_error, haproxy, alb, syslog"),
                        );
                        continue;
                    }
                },
                (_, _, Some(_)) => {
                    p.at(
                        at,
                        "source: listen is only for format = \"syslog\"; log files take path",
                    );
                    continue;
                }
                (_, None, None) => {
                    p.at(at, "source: path is missing");
                    continue;
                }
            };
            let log_format = match &s.log_format {
                Some(lf) if fmt_name != "nginx_access" => {
                    p.at(
                        lf.span().start,
                        "source.log_format is only for format = \"nginx_access\"",
                    );
                    None
                }
                Some(lf) => match LogFormat::from_directive(lf.get_ref()) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        p.at(lf.span().start, format!("source.{e}"));
                        None
                    }
                },
                None => None,
            };
            let timezone = match &s.timezone {
                Some(tz) => match tz.get_ref().parse::<Zone>() {
                    Ok(z) => z,
                    Err(e) => {
                        p.at(tz.span().start, format!("source.timezone: {e}"));
                        Zone::Local
                    }
                },
                None => Zone::Local,
            };
            let start_at = match s
                .start_at
                .as_ref()
                .map(|v| (v.get_ref().as_str(), v.span().start))
            {
                None | Some(("end", _)) => StartAt::End,
                Some(("beginning", _)) => StartAt::Beginning,
                Some((other, at)) => {
                    p.at(
                        at,
                        format!("source.start_at: {other:?} is not \"end\" or \"beginning\""),
                    );
                    StartAt::End
                }
            };
            let s3 = matches!(&kind, SourceKind::Log { path, format: Format::Alb } if path.starts_with("s3://"));
            if let Some(e) = &s.endpoint
                && !s3
            {
                p.at(
                    e.span().start,
                    "source.endpoint is only for ALB logs read from s3://",
                );
            }
            if s.allow_remote.is_some() && !matches!(kind, SourceKind::Syslog { .. }) {
                p.at(
                    at,
                    "source.allow_remote is only for format = \"syslog\" listeners",
                );
            }
            let path_at = s
                .path
                .as_ref()
                .or(s.listen.as_ref())
                .map_or(at, |p| p.span().start);
            let line = crate::error::line_of(text, path_at);
            // The same log twice would count every line twice.
            if let Some(i) = cfg.sources.iter().position(|o| o.kind.same_input(&kind)) {
                p.at(
                    path_at,
                    format!(
                        "source: {} is already a source at line {}; every line would be counted twice (remove one)",
                        kind.input(),
                        cfg.lines.sources[i]
                    ),
                );
            }
            cfg.lines.sources.push(line);
            cfg.sources.push(SourceConfig {
                kind,
                log_format,
                timezone,
                start_at,
                endpoint: s.endpoint.map(Spanned::into_inner),
                region: s.region,
            });
        }

        if let Some(state) = raw.state {
            cfg.state_dir = PathBuf::from(state.dir);
        }
        if let Some(http) = raw.http {
            match http.listen.get_ref().parse::<SocketAddr>() {
                Ok(addr) if !addr.ip().is_loopback() && http.allow_remote != Some(true) => p.at(
                    http.listen.span().start,
                    format!(
                        "http.listen: {addr} can be reached from other machines, and the status page and /metrics have no authentication; listen on 127.0.0.1 (behind a proxy that authenticates), or set allow_remote = true in [http] if you mean it"
                    ),
                ),
                Ok(addr) => cfg.http_listen = Some(addr),
                Err(_) => p.at(
                    http.listen.span().start,
                    format!(
                        "http.listen: {:?} is not an address such as \"127.0.0.1:9502\"",
                        http.listen.get_ref()
                    ),
                ),
            }
        }
        if let Some(d) = raw.detect {
            let c = &mut cfg.detect;
            if let Some(w) = &d.window
                && let Some(v) = duration(&mut p, w, "detect.window")
            {
                if v < Duration::from_secs(1) {
                    p.at(w.span().start, "detect.window must be at least 1s");
                }
                c.window_ms = v.as_millis() as i64;
            }
            if let Some(q) = &d.quiet
                && let Some(v) = duration(&mut p, q, "detect.quiet")
            {
                c.quiet_ms = v.as_millis() as i64;
            }
            if let Some(v) = &d.open_failures {
                if *v.get_ref() == 0 {
                    p.at(v.span().start, "detect.open_failures must be at least 1");
                }
                c.open_failures = *v.get_ref();
            }
            if let Some(v) = &d.close_failures {
                c.close_failures = *v.get_ref();
            }
            if let Some(v) = &d.open_share {
                if !(0.0..=1.0).contains(v.get_ref()) {
                    p.at(
                        v.span().start,
                        "detect.open_share is a fraction from 0.0 to 1.0 (0.2 for 20 %)",
                    );
                }
                c.open_share = *v.get_ref();
            }
            if let Some(v) = &d.max_upstreams {
                if *v.get_ref() == 0 {
                    p.at(v.span().start, "detect.max_upstreams must be at least 1");
                }
                c.max_upstreams = *v.get_ref();
            }
            if c.close_failures > c.open_failures {
                let at = d
                    .close_failures
                    .as_ref()
                    .or(d.open_failures.as_ref())
                    .map_or(0, |v| v.span().start);
                p.at(at, format!(
                    "detect.close_failures ({}) is above open_failures ({}): an incident would close while still bursting",
                    c.close_failures, c.open_failures
                ));
            }
            if let Some(v) = &d.join_before
                && let Some(v) = duration(&mut p, v, "detect.join_before")
            {
                cfg.join.before_ms = v.as_millis() as i64;
            }
            if let Some(v) = &d.join_after
                && let Some(v) = duration(&mut p, v, "detect.join_after")
            {
                cfg.join.after_ms = v.as_millis() as i64;
            }
        }
        if let Some(pat) = raw.patterns {
            cfg.lines.patterns = crate::error::line_of(text, pat.dirs.span().start);
            cfg.pattern_dirs = pat
                .dirs
                .into_inner()
                .into_iter()
                .map(PathBuf::from)
                .collect();
        }

        let mut names = std::collections::HashSet::new();
        let mut summary_channels_at = 0;
        for ch in raw.channels {
            let at = ch.span().start;
            let ch = ch.into_inner();
            let name = ch.name.get_ref().clone();
            if !names.insert(name.clone()) {
                p.at(
                    ch.name.span().start,
                    format!("channel.name: {name:?} is used twice"),
                );
            }
            if let Some(pw) = &ch.password {
                p.at(
                    pw.span().start,
                    "channel.password: secrets are not read from the config file; use password_file (e.g. a systemd credential) or password_env",
                );
            }
            let lang = match &ch.lang {
                None => Lang::En,
                Some(l) => Lang::from_name(l.get_ref()).unwrap_or_else(|| {
                    p.at(
                        l.span().start,
                        format!("channel.lang: {:?} is not \"en\" or \"zh\"", l.get_ref()),
                    );
                    Lang::En
                }),
            };
            let secret = |p: &mut Problems<'_>,
                          file: &Option<String>,
                          env: &Option<String>,
                          what: &str| match (file, env) {
                (Some(_), Some(_)) => {
                    p.at(
                        at,
                        format!("channel: give {what}_file or {what}_env, not both"),
                    );
                    None
                }
                (Some(f), None) => Some(Secret::File(PathBuf::from(f))),
                (None, Some(e)) => Some(Secret::Env(e.clone())),
                (None, None) => None,
            };
            let kind = match ch.kind.get_ref().as_str() {
                "console" => ChannelKind::Console,
                "email" => {
                    let Some(written) = ch.server.as_ref() else {
                        p.at(at, "channel: an email channel needs server = \"host:port\"");
                        continue;
                    };
                    let (server, url_tls) = match smtp_server(written.get_ref()) {
                        Ok(v) => v,
                        Err(e) => {
                            p.at(written.span().start, format!("channel.server: {e}"));
                            continue;
                        }
                    };
                    let tls = match ch
                        .tls
                        .as_ref()
                        .map(|t| (t.get_ref().as_str(), t.span().start))
                    {
                        Some((written_tls, off))
                            if url_tls.is_some_and(|u| Some(u) != tls_by_name(written_tls)) =>
                        {
                            p.at(off, format!("channel.tls = {written_tls:?} contradicts the server's {:?}; smtps:// is implicit TLS (leave tls out, or write host:port)", written.get_ref()));
                            SmtpTls::StartTls
                        }
                        None => url_tls.unwrap_or(SmtpTls::StartTls),
                        Some(("starttls", _)) => SmtpTls::StartTls,
                        Some(("implicit", _)) => SmtpTls::Implicit,
                        Some(("none", off)) => {
                            if !is_loopback_host(&server) {
                                p.at(off, "channel.tls = \"none\" is only allowed for a loopback server; mail and passwords would cross the network in clear text");
                            }
                            SmtpTls::None
                        }
                        Some((other, off)) => {
                            p.at(
                                off,
                                format!("channel.tls: {other:?} is not starttls, implicit or none"),
                            );
                            SmtpTls::StartTls
                        }
                    };
                    let from = match &ch.from {
                        Some(f) if f.get_ref().contains('@') => f.get_ref().clone(),
                        Some(f) => {
                            p.at(
                                f.span().start,
                                format!("channel.from: {:?} is not a mail address", f.get_ref()),
                            );
                            continue;
                        }
                        None => {
                            p.at(
                                at,
                                "channel: an email channel needs from = \"gatewatch@example.com\"",
                            );
                            continue;
                        }
                    };
                    let to = match &ch.to {
                        Some(t) if !t.get_ref().is_empty() => {
                            for addr in t.get_ref() {
                                if !addr.contains('@') {
                                    p.at(
                                        t.span().start,
                                        format!("channel.to: {addr:?} is not a mail address"),
                                    );
                                }
                            }
                            t.get_ref().clone()
                        }
                        _ => {
                            p.at(
                                at,
                                "channel: an email channel needs to = [\"oncall@example.com\"]",
                            );
                            continue;
                        }
                    };
                    let password = secret(&mut p, &ch.password_file, &ch.password_env, "password");
                    if password.is_some() && ch.username.is_none() {
                        p.at(at, "channel: a password needs username = \"…\"");
                    }
                    if password.is_some() && tls == SmtpTls::None {
                        p.at(at, "channel: a password is only sent over TLS (tls = \"starttls\" or \"implicit\")");
                    }
                    let timeout = match &ch.timeout {
                        Some(t) => duration(&mut p, t, "channel.timeout")
                            .unwrap_or(Duration::from_secs(30)),
                        None => Duration::from_secs(30),
                    };
                    ChannelKind::Email {
                        server,
                        tls,
                        from,
                        to,
                        username: ch.username.clone(),
                        password,
                        timeout,
                    }
                }
                "webhook" => {
                    let format = match ch
                        .format
                        .as_ref()
                        .map(|f| (f.get_ref().as_str(), f.span().start))
                    {
                        None | Some(("json", _)) => WebhookFormat::Json,
                        Some(("slack", _)) => WebhookFormat::Slack,
                        Some(("teams", _)) => WebhookFormat::Teams,
                        Some(("discord", _)) => WebhookFormat::Discord,
                        Some(("alertmanager", _)) => WebhookFormat::Alertmanager,
                        Some(("pagerduty", _)) => WebhookFormat::Pagerduty,
                        Some((other, off)) => {
                            p.at(off, format!("channel.format: {other:?} is not json, slack, teams, discord, alertmanager or pagerduty"));
                            WebhookFormat::Json
                        }
                    };
                    let url = match &ch.url {
                        Some(u)
                            if u.get_ref().starts_with("https://")
                                || u.get_ref().starts_with("http://") =>
                        {
                            u.get_ref().clone()
                        }
                        Some(u) => {
                            p.at(
                                u.span().start,
                                format!(
                                    "channel.url: {:?} is not an http:// or https:// address",
                                    u.get_ref()
                                ),
                            );
                            continue;
                        }
                        None => {
                            p.at(at, "channel: a webhook channel needs url = \"https://…\"");
                            continue;
                        }
                    };
                    let timeout = match &ch.timeout {
                        Some(t) => duration(&mut p, t, "channel.timeout")
                            .unwrap_or(Duration::from_secs(10)),
                        None => Duration::from_secs(10),
                    };
                    ChannelKind::Webhook {
                        format,
                        url,
                        secret: secret(&mut p, &ch.secret_file, &ch.secret_env, "secret"),
                        timeout,
                    }
                }
                other => {
                    p.at(
                        ch.kind.span().start,
                        format!("channel.kind: {other:?} is not email, webhook or console"),
                    );
                    continue;
                }
            };
            if format_is_pagerduty(&kind)
                && !matches!(
                    &kind,
                    ChannelKind::Webhook {
                        secret: Some(_),
                        ..
                    }
                )
            {
                p.at(at, "channel: a pagerduty channel needs its routing key in secret_file or secret_env");
            }
            cfg.lines.channels.push(crate::error::line_of(text, at));
            cfg.channels.push(ChannelConfig {
                name,
                lang,
                kind,
                ca_file: ch.ca_file.map(PathBuf::from),
                template_dir: ch.template_dir.map(PathBuf::from),
            });
        }
        if let Some(a) = raw.alerts {
            let c = &mut cfg.alerts;
            c.host = a.host;
            c.template_dir = a.template_dir.map(PathBuf::from);
            if let Some(v) = &a.group_wait
                && let Some(d) = duration(&mut p, v, "alerts.group_wait")
            {
                c.group_wait = d;
            }
            if let Some(v) = &a.renotify {
                c.renotify = if matches!(v.get_ref().as_str(), "off" | "never" | "0") {
                    None
                } else {
                    duration(&mut p, v, "alerts.renotify")
                };
                if c.renotify.is_some_and(|d| d < Duration::from_secs(1)) {
                    p.at(
                        v.span().start,
                        "alerts.renotify must be at least 1s (or \"off\")",
                    );
                }
            }
            if let Some(v) = &a.give_up_after
                && let Some(d) = duration(&mut p, v, "alerts.give_up_after")
            {
                c.give_up_after = d;
            }
            if let Some(v) = &a.retry_min
                && let Some(d) = duration(&mut p, v, "alerts.retry_min")
            {
                c.retry_min = d.max(Duration::from_millis(100));
            }
            if let Some(v) = &a.retry_max
                && let Some(d) = duration(&mut p, v, "alerts.retry_max")
            {
                if d < c.retry_min {
                    p.at(
                        v.span().start,
                        "alerts.retry_max must not be below retry_min",
                    );
                }
                c.retry_max = d;
            }
        }
        if let Some(sm) = raw.summary {
            if let Some(at) = &sm.at {
                cfg.summary.at = clock_minutes(at.get_ref()).filter(|m| *m < 24 * 60);
                if cfg.summary.at.is_none() {
                    p.at(
                        at.span().start,
                        format!(
                            "summary.at: {:?} is not a time of day such as \"08:00\"",
                            at.get_ref()
                        ),
                    );
                }
            }
            if let Some(tz) = &sm.timezone {
                match tz.get_ref().parse::<Zone>() {
                    Ok(z) => cfg.summary.zone = z,
                    Err(e) => p.at(tz.span().start, format!("summary.timezone: {e}")),
                }
            }
            if let Some(chs) = sm.channels {
                summary_channels_at = chs.span().start;
                cfg.summary.channels = chs.into_inner();
            }
        }
        for m in raw.maintenance {
            let at = m.span().start;
            let m = m.into_inner();
            let when = match (&m.from, &m.until, &m.start, &m.end) {
                (Some(from), Some(until), None, None) => {
                    let t = |p: &mut Problems<'_>, v: &Spanned<String>, key: &str| {
                        match chrono::DateTime::parse_from_rfc3339(v.get_ref()) {
                            Ok(t) => Some(t.timestamp_millis()),
                            Err(_) => {
                                p.at(v.span().start, format!("maintenance.{key}: {:?} is not a time such as \"2026-12-01T02:00:00+01:00\"", v.get_ref()));
                                None
                            }
                        }
                    };
                    match (t(&mut p, from, "from"), t(&mut p, until, "until")) {
                        (Some(from_ms), Some(until_ms)) => {
                            if until_ms <= from_ms {
                                p.at(until.span().start, "maintenance.until must be after from");
                            }
                            MaintenanceTime::Once { from_ms, until_ms }
                        }
                        _ => continue,
                    }
                }
                (None, None, Some(start), Some(end)) => {
                    let mins = |p: &mut Problems<'_>, v: &Spanned<String>, key: &str| {
                        clock_minutes(v.get_ref()).or_else(|| {
                            p.at(v.span().start, format!("maintenance.{key}: {:?} is not a time of day such as \"02:30\"", v.get_ref()));
                            None
                        })
                    };
                    let (Some(s), Some(e)) =
                        (mins(&mut p, start, "start"), mins(&mut p, end, "end"))
                    else {
                        continue;
                    };
                    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                    let days = match &m.days {
                        None => (0..7).collect(),
                        Some(d) => {
                            let mut out = Vec::new();
                            for name in d.get_ref() {
                                let lower = name.to_ascii_lowercase();
                                match DAYS.iter().position(|x| lower.starts_with(x)) {
                                    Some(i) => out.push(i as u32),
                                    None => p.at(d.span().start, format!("maintenance.days: {name:?} is not a day (mon, tue, … sun)")),
                                }
                            }
                            out
                        }
                    };
                    let zone = match &m.timezone {
                        Some(tz) => match tz.get_ref().parse::<Zone>() {
                            Ok(z) => z,
                            Err(e) => {
                                p.at(tz.span().start, format!("maintenance.timezone: {e}"));
                                continue;
                            }
                        },
                        None => Zone::Local,
                    };
                    MaintenanceTime::Weekly {
                        days,
                        start: s,
                        end: e,
                        zone,
                    }
                }
                _ => {
                    p.at(at, "maintenance: give start and end (\"02:00\", every day or on days = [\"sun\"]), or from and until (RFC 3339 times)");
                    continue;
                }
            };
            cfg.maintenance.push(Maintenance {
                upstream: m.upstream.unwrap_or_else(|| "*".into()),
                entry: m.entry,
                when,
                reason: m.reason.unwrap_or_else(|| "maintenance".into()),
            });
        }
        for name in &cfg.summary.channels {
            // Channels named in the file but refused for another error were reported already.
            if !names.contains(name) {
                p.at(
                    summary_channels_at,
                    format!("summary.channels: there is no channel named {name:?}"),
                );
            }
        }
        if p.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(FileErrors(p.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[[source]]
path = "/var/log/nginx/access.log"
format = "nginx_access"
log_format = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $upstream_addr'

[[source]]
path = "/var/log/nginx/error.log"
format = "nginx_error"
timezone = "Europe/Berlin"

[[source]]
format = "syslog"
listen = "udp://127.0.0.1:5514"

[state]
dir = "/var/lib/gatewatch"

[http]
listen = "127.0.0.1:9502"

[detect]
window = "2m"
open_failures = 20
open_share = 0.5
quiet = "90s"

[[channel]]
name = "oncall"
kind = "email"
server = "smtp.example.com:587"
tls = "starttls"
from = "gatewatch@example.com"
to = ["oncall@example.com"]
username = "gatewatch"
password_file = "/run/credentials/gatewatch.service/smtp-password"

[[channel]]
name = "hook"
kind = "webhook"
format = "json"
url = "http://127.0.0.1:9000/hook"
"#;

    #[test]
    fn the_documented_example_is_valid() {
        let c = Config::parse("gatewatch.toml", FULL).unwrap();
        assert_eq!(c.sources.len(), 3);
        assert_eq!(c.detect.window_ms, 120_000);
        assert_eq!(c.detect.open_failures, 20);
        assert_eq!(c.http_listen, Some("127.0.0.1:9502".parse().unwrap()));
        assert_eq!(c.channels.len(), 2);
        assert!(matches!(
            c.channels[0].kind,
            ChannelKind::Email {
                password: Some(Secret::File(_)),
                ..
            }
        ));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                "format = \"nginx_error\"",
                "format = \"nginx_eror\"",
                "gatewatch.toml:9: source.format: \"nginx_eror\"",
            ),
            (
                "window = \"2m\"",
                "window = \"2 parsecs\"",
                "gatewatch.toml:23: detect.window: \"2 parsecs\" is not a duration",
            ),
            (
                "open_share = 0.5",
                "open_share = 50",
                "gatewatch.toml:25: detect.open_share is a fraction",
            ),
            (
                "[detect]",
                "[detekt]",
                "gatewatch.toml:22: unknown field `detekt`",
            ),
            (
                "username = \"gatewatch\"",
                "password = \"hunter2\"",
                "gatewatch.toml:35: channel.password: secrets are not read from the config file",
            ),
            (
                "tls = \"starttls\"",
                "tls = \"none\"",
                "gatewatch.toml:32: channel.tls = \"none\" is only allowed for a loopback server",
            ),
            (
                "listen = \"127.0.0.1:9502\"",
                "listen = \"everywhere\"",
                "gatewatch.toml:20: http.listen",
            ),
            (
                "timezone = \"Europe/Berlin\"",
                "timezone = \"Mars/Olympus\"",
                "gatewatch.toml:10: source.timezone: unknown time zone",
            ),
            (
                "$upstream_addr'",
                "$upstream_addr$host'",
                "gatewatch.toml:5: source.log_format: $upstream_addr and $host are not separated",
            ),
        ];
        for (from, to, expected) in cases {
            let text = FULL.replacen(from, to, 1);
            assert_ne!(text, FULL, "{from}");
            let err = Config::parse("gatewatch.toml", &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
            assert!(
                !err.contains("hunter2"),
                "a secret leaked into an error: {err}"
            );
        }
    }

    #[test]
    fn maintenance_windows_cover_their_days_and_hours() {
        let c = Config::parse(
            "gw.toml",
            r#"
[[maintenance]]
upstream = "10.0.1.*"
days = ["sat", "sun"]
start = "23:00"
end = "02:00"
timezone = "+01:00"

[[maintenance]]
entry = "haproxy/*"
from = "2026-12-01T02:00:00Z"
until = "2026-12-01T03:00:00Z"
"#,
        )
        .unwrap();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        let w = &c.maintenance[0];
        let e = "api/http-502-bad-gateway-upstream-unreachable";
        // Saturday 23:30 and Sunday 01:30 (+01:00) are inside; so is Monday 01:30, the
        // morning after Sunday's evening.
        assert!(w.covers("10.0.1.5:80", e, at("2026-11-28T23:30:00+01:00")));
        assert!(w.covers("10.0.1.5:80", e, at("2026-11-29T01:30:00+01:00")));
        assert!(w.covers("10.0.1.5:80", e, at("2026-11-30T01:30:00+01:00")));
        // Friday night's window does not exist; other upstreams are not covered.
        assert!(!w.covers("10.0.1.5:80", e, at("2026-11-27T23:30:00+01:00")));
        assert!(!w.covers("10.0.1.5:80", e, at("2026-11-28T02:00:00+01:00")));
        assert!(!w.covers("10.0.2.5:80", e, at("2026-11-28T23:30:00+01:00")));
        let once = &c.maintenance[1];
        assert!(once.covers(
            "be/s1",
            "haproxy/no-server-available",
            at("2026-12-01T02:30:00Z")
        ));
        assert!(!once.covers("be/s1", e, at("2026-12-01T02:30:00Z")));
        assert!(!once.covers("be/s1", "haproxy/x", at("2026-12-01T03:00:00Z")));

        let err = Config::parse(
            "gw.toml",
            "[[maintenance]]\nstart = \"25:00\"\nend = \"02:00\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gw.toml:2: maintenance.start: \"25:00\" is not a time of day"),
            "{err}"
        );
        let err = Config::parse("gw.toml", "[[maintenance]]\nupstream = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gw.toml:1: maintenance: give start and end"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = Config::parse("empty.toml", "").unwrap();
        assert_eq!(c.detect, DetectConfig::default());
        assert!(c.sources.is_empty());
    }

    fn email(server: &str, tls: Option<&str>) -> Result<ChannelKind, String> {
        let text = format!(
            "[[channel]]\nname = \"m\"\nkind = \"email\"\nserver = {server:?}\n{}from = \"a@example.com\"\nto = [\"b@example.com\"]\n",
            tls.map(|t| format!("tls = {t:?}\n")).unwrap_or_default()
        );
        Config::parse("gw.toml", &text)
            .map(|c| c.channels[0].kind.clone())
            .map_err(|e| e.to_string())
    }

    fn server_and_tls(k: &ChannelKind) -> (&str, SmtpTls) {
        match k {
            ChannelKind::Email { server, tls, .. } => (server, *tls),
            _ => panic!("not email"),
        }
    }

    #[test]
    fn smtp_servers_are_taken_as_people_paste_them() {
        for (written, tls, expected) in [
            (
                "smtp.example.com:587",
                None,
                ("smtp.example.com:587", SmtpTls::StartTls),
            ),
            (
                "smtp://smtp.example.com:587",
                None,
                ("smtp.example.com:587", SmtpTls::StartTls),
            ),
            (
                "smtp://smtp.example.com",
                None,
                ("smtp.example.com:587", SmtpTls::StartTls),
            ),
            (
                "smtp://smtp.example.com:25/",
                None,
                ("smtp.example.com:25", SmtpTls::StartTls),
            ),
            (
                "smtps://smtp.example.com",
                None,
                ("smtp.example.com:465", SmtpTls::Implicit),
            ),
            (
                "smtps://smtp.example.com:2465",
                Some("implicit"),
                ("smtp.example.com:2465", SmtpTls::Implicit),
            ),
            (
                "smtp://127.0.0.1:2525",
                Some("none"),
                ("127.0.0.1:2525", SmtpTls::None),
            ),
            ("[::1]:25", Some("none"), ("[::1]:25", SmtpTls::None)),
            ("smtp://[::1]", Some("none"), ("[::1]:587", SmtpTls::None)),
        ] {
            let k = email(written, tls).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(server_and_tls(&k), expected, "{written}");
        }
        for (written, tls, message) in [
            ("smtp.example.com", None, "must be host:port"),
            ("smtp.example.com:mail", None, "must be host:port"),
            (
                "https://smtp.example.com",
                None,
                "only smtp:// and smtps://",
            ),
            ("smtp://user@smtp.example.com", None, "must be host:port"),
            ("smtp://", None, "must be host:port"),
            ("smtps://smtp.example.com", Some("starttls"), "contradicts"),
            ("smtps://smtp.example.com", Some("none"), "contradicts"),
        ] {
            let e = email(written, tls).unwrap_err();
            assert!(e.contains(message), "{written}: {e}");
            assert!(
                e.starts_with("gw.toml:4: channel.") || e.starts_with("gw.toml:5: channel."),
                "{e}"
            );
        }
    }

    #[test]
    fn listeners_reachable_from_other_machines_need_to_be_asked_for() {
        for listen in ["0.0.0.0:9502", "[::]:9502", "192.0.2.1:9502"] {
            let e = Config::parse("gw.toml", &format!("[http]\nlisten = {listen:?}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("gw.toml:2: http.listen:"), "{e}");
            let ok = Config::parse(
                "gw.toml",
                &format!("[http]\nlisten = {listen:?}\nallow_remote = true\n"),
            )
            .unwrap();
            assert_eq!(ok.http_listen, Some(listen.parse().unwrap()));
        }
        for listen in ["127.0.0.1:9502", "[::1]:9502", "127.0.0.53:9502"] {
            assert!(Config::parse("gw.toml", &format!("[http]\nlisten = {listen:?}\n")).is_ok());
        }
        let syslog = |listen: &str, extra: &str| {
            Config::parse(
                "gw.toml",
                &format!("[[source]]\nformat = \"syslog\"\nlisten = {listen:?}\n{extra}"),
            )
        };
        assert!(syslog("udp://127.0.0.1:5514", "").is_ok());
        assert!(syslog("unix:///run/gatewatch/log", "").is_ok());
        assert!(syslog("udp://0.0.0.0:5514", "allow_remote = true\n").is_ok());
        let e = syslog("udp://0.0.0.0:5514", "").unwrap_err().to_string();
        assert!(
            e.starts_with("gw.toml:3: source.listen: 0.0.0.0:5514 can be reached"),
            "{e}"
        );
        let e = syslog("unix://run/log", "").unwrap_err().to_string();
        assert!(e.contains("absolute path"), "{e}");
        let e = syslog("udp://localhost", "").unwrap_err().to_string();
        assert!(e.contains("is not an address"), "{e}");
        let e = Config::parse(
            "gw.toml",
            "[[source]]\npath = \"/var/log/nginx/access.log\"\nformat = \"nginx_access\"\nallow_remote = true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("source.allow_remote is only for"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gw.toml");
        std::fs::write(&f, b"[detect]\nwindow = \"2m\"\n# caf\xe9\n").unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:3: the file is not UTF-8 text (TOML is UTF-8); save it as UTF-8",
                f.display()
            )
        );
    }
}

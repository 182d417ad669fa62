//! The configuration file (`/etc/gatewatch/gatewatch.toml`): the TOML as written, then a checked
//! [`Config`]. Unknown keys are refused; every error names the file, the line and the key.
//! Secrets are never read from this file: passwords come from a file (systemd credentials) or
//! an environment variable.

pub use crate::delivery::channel::{ChannelConfig, ChannelKind, Secret, SmtpTls, WebhookFormat};
pub use crate::delivery::sender::{AlertsConfig, Settings, SummaryConfig};
use crate::engine::detect::DetectConfig;
use crate::engine::error::{FileError, FileErrors};
use crate::engine::event::Format;
use crate::engine::join::JoinConfig;
use crate::engine::parse::LogFormat;
pub use crate::engine::policy::{Maintenance, MaintenanceTime};
use crate::engine::time::Zone;
pub use crate::source::{Proxy, SourceConfig, SourceKind, StartAt};
mod channels;
mod kafka;
mod raw;
mod sections;
mod sources;

use raw::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where the SQLite state lives when the config names none.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gatewatch";

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from (`None` for the built-in defaults).
    pub file: Option<PathBuf>,
    pub sources: Vec<SourceConfig>,
    pub state_dir: PathBuf,
    /// How often the state file is checked for damage while running.
    pub state_check: Duration,
    pub http_listen: Option<SocketAddr>,
    /// One-click links in alerts (`[http] public_url`); `None`: off.
    pub links: Option<LinksConfig>,
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
    /// The line of `[http] public_url` (0 when not written).
    pub links: usize,
}

/// `[http] public_url` and its key: alerts carry signed one-click links to the status server.
#[derive(Clone, Debug)]
pub struct LinksConfig {
    pub public_url: String,
    pub key: Secret,
    pub ttl: Duration,
}

/// The shortest link key accepted, in bytes.
pub const MIN_LINK_KEY: usize = 16;

impl LinksConfig {
    /// The signer, with the key read (the error names where it looked, never the key).
    pub fn signer(&self) -> anyhow::Result<crate::render::links::Signer> {
        let key = self.key.read()?;
        if key.trim().len() < MIN_LINK_KEY {
            anyhow::bail!(
                "the link key is shorter than {MIN_LINK_KEY} bytes; make one with: head -c 32 /dev/urandom | base64"
            );
        }
        Ok(crate::render::links::Signer::new(
            key.trim().as_bytes(),
            &self.public_url,
            self.ttl.as_secs(),
        ))
    }
}

impl Config {
    /// What the sender needs: the channels, `[alerts]`, `[summary]`, the state folder.
    pub fn delivery(&self) -> Settings {
        Settings {
            state_dir: self.state_dir.clone(),
            journal: crate::store::journal::files(&self.state_dir, None),
            channels: self.alert_channels(),
            alerts: self.alerts.clone(),
            summary: self.summary.clone(),
        }
    }

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
            state_check: Duration::from_secs(600),
            http_listen: None,
            links: None,
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
            let (SourceKind::Log { path, .. } | SourceKind::Container { path, .. }) = &s.kind
            else {
                continue;
            };
            if path.starts_with("s3://") {
                continue;
            }
            let line = self.lines.sources.get(i);
            let p = Path::new(path);
            // A glob over folders (`/var/log/pods/*/*/*.log`): its fixed start must exist.
            if let Some(parent) = p.parent()
                && parent.to_string_lossy().contains(['*', '?'])
            {
                let fixed: PathBuf = parent
                    .components()
                    .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?']))
                    .collect();
                if !fixed.is_dir() {
                    err(
                        line,
                        format!(
                            "source.path: {path}: the folder {} does not exist",
                            fixed.display()
                        ),
                    );
                }
                continue;
            }
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
        if let Some(l) = &self.links {
            let relative_credential = matches!(&l.key, Secret::File(p) if p.is_relative())
                && std::env::var_os("CREDENTIALS_DIRECTORY").is_none();
            if !relative_credential && let Err(e) = l.signer() {
                err(Some(&self.lines.links), format!("http.link_key: {e:#}"));
            }
        }
        for (i, ch) in self.channels.iter().enumerate() {
            let line = self.lines.channels.get(i);
            for (what, secret) in ch.kind.secrets() {
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

        sources::sources(&mut p, text, raw.sources, &mut cfg);
        sections::state_and_http(text, &mut p, raw.state, raw.http, &mut cfg);
        sections::detect(&mut p, raw.detect, &mut cfg);
        sections::patterns(text, raw.patterns, &mut cfg);
        let names = channels::channels(&mut p, raw.channels, &mut cfg);
        sections::alerts(&mut p, raw.alerts, &mut cfg);
        // The instances of a fleet name themselves alike, so their incidents get the same keys
        // and their Alertmanager alerts the same labels: the group's name, unless set.
        if cfg.alerts.host.is_none()
            && let Some(k) = cfg.sources.iter().find_map(|s| match &s.kind {
                SourceKind::Kafka(k) => Some(k),
                _ => None,
            })
        {
            cfg.alerts.host = Some(k.group.clone());
        }
        sections::maintenance(&mut p, raw.maintenance, &mut cfg);
        sections::summary(&mut p, raw.summary, &names, &mut cfg);
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
        let email = c.channels[0]
            .kind
            .as_any()
            .downcast_ref::<crate::delivery::channel::email::EmailSettings>()
            .expect("an email channel");
        assert!(matches!(email.password, Some(Secret::File(_))));
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

    fn email(server: &str, tls: Option<&str>) -> Result<std::sync::Arc<dyn ChannelKind>, String> {
        let text = format!(
            "[[channel]]\nname = \"m\"\nkind = \"email\"\nserver = {server:?}\n{}from = \"a@example.com\"\nto = [\"b@example.com\"]\n",
            tls.map(|t| format!("tls = {t:?}\n")).unwrap_or_default()
        );
        Config::parse("gw.toml", &text)
            .map(|c| c.channels[0].kind.clone())
            .map_err(|e| e.to_string())
    }

    fn server_and_tls(k: &std::sync::Arc<dyn ChannelKind>) -> (&str, SmtpTls) {
        let e = k
            .as_any()
            .downcast_ref::<crate::delivery::channel::email::EmailSettings>()
            .expect("an email channel");
        (&e.server, e.tls)
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

//! The channels: where messages go. Each kind of channel is a module of its own that owns its
//! settings, its request or mail, and how its failures are judged ([`Deliver`]); the sender
//! ([`crate::delivery::sender`]) owns the outbox, the order, the retries and the backoff.
//! Adding a kind of channel is a new module here, a variant of [`ChannelKind`] and its line in
//! [`Channel::new`].

pub mod console;
pub mod email;
pub mod webhook;

pub use email::SmtpTls;
pub use webhook::WebhookFormat;

use crate::delivery::settings::AlertsConfig;
use crate::engine::detect::Incident;
use crate::engine::kb::{Kb, Lang};
use crate::log;
use crate::render::alert::{AlertKind, AlertView, Templates};
use crate::render::summary::Report;
use anyhow::Context;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

/// The kinds of channel, each with its settings: one variant per channel module (the
/// registration of a channel kind, with [`Channel::new`]).
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

/// Why a message was not delivered.
#[derive(Debug, PartialEq)]
pub enum SendError {
    /// Worth trying again (the receiver is down, busy or slow).
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (the receiver refused the message or the address).
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient { error, .. } => write!(f, "{error}"),
            SendError::Permanent(e) => write!(f, "{e} (permanent)"),
        }
    }
}

pub(crate) fn transient(error: impl std::fmt::Display) -> SendError {
    SendError::Transient {
        error: error.to_string(),
        retry_after: None,
    }
}

/// A failure of rendering: a template that does not render will not render on a retry.
pub(crate) fn permanent(e: anyhow::Error) -> SendError {
    SendError::Permanent(format!("{e:#}"))
}

/// The host name messages carry: configured, else the system's.
pub fn host_name(cfg: &AlertsConfig) -> String {
    if let Some(h) = &cfg.host {
        return h.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The threading of a message: its own id, and the ids of the messages it follows up.
#[derive(Clone, Debug, Default)]
pub struct Thread {
    pub message_id: String,
    pub references: Vec<String>,
}

/// A send in progress (the sender runs every channel on one thread).
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + 'a>>;

/// What a message is rendered with: the channel's templates, the folder they may come from
/// (for the summary's), and the host name the messages carry.
pub struct Forms<'a> {
    pub templates: &'a Templates,
    pub template_dir: Option<&'a Path>,
    pub host: &'a str,
}

/// How a kind of channel delivers. Every network step has a deadline: a send returns within
/// the channel's timeout, with [`SendError::Transient`] when trying again may help.
pub trait Deliver {
    /// Sends one alert message (an alert, a reminder or a resolved note).
    fn alert<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        v: &'a AlertView,
        thread: &'a Thread,
    ) -> Sending<'a>;
    /// Sends a daily summary.
    fn summary<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        r: &'a Report,
        thread: &'a Thread,
    ) -> Sending<'a>;
    /// Whether open alerts must be posted again while they last (Alertmanager resolves alerts
    /// that are not refreshed).
    fn refreshes_open_alerts(&self) -> bool {
        false
    }
}

/// A channel ready to send.
pub struct Channel {
    pub cfg: ChannelConfig,
    /// The host name its messages carry.
    pub host: String,
    templates: Templates,
    template_dir: Option<PathBuf>,
    deliver: Box<dyn Deliver>,
}

/// Reads an extra trusted CA. Said loudly: every certificate that CA signs is trusted for this
/// channel (the system's roots are still trusted; verification is never turned off).
fn read_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    log!(
        Warn,
        "a channel trusts an extra CA besides the system's roots",
        ca_file = path.display()
    );
    std::fs::read(path).with_context(|| format!("reading ca_file {}", path.display()))
}

impl Channel {
    /// Builds a channel: templates compiled, secrets read, clients made. The error says what
    /// is wrong with the channel's configuration or its secret.
    pub fn new(cfg: &ChannelConfig, alerts: &AlertsConfig) -> anyhow::Result<Channel> {
        let dir = cfg.template_dir.as_ref().or(alerts.template_dir.as_ref());
        let templates = Templates::new(dir.map(PathBuf::as_path))?;
        let ca = cfg.ca_file.as_deref();
        let deliver: Box<dyn Deliver> = match &cfg.kind {
            ChannelKind::Console => Box::new(console::Console),
            ChannelKind::Email { .. } => Box::new(email::Email::new(&cfg.kind, ca)?),
            ChannelKind::Webhook { .. } => Box::new(webhook::Webhook::new(&cfg.kind, ca)?),
        };
        Ok(Channel {
            cfg: cfg.clone(),
            host: host_name(alerts),
            templates,
            template_dir: dir.cloned(),
            deliver,
        })
    }

    fn forms(&self) -> Forms<'_> {
        Forms {
            templates: &self.templates,
            template_dir: self.template_dir.as_deref(),
            host: &self.host,
        }
    }

    /// Sends one message.
    pub async fn send(&self, v: &AlertView, thread: &Thread) -> Result<(), SendError> {
        let forms = self.forms();
        self.deliver.alert(&forms, v, thread).await
    }

    /// Sends a daily summary.
    pub async fn send_summary(&self, r: &Report, thread: &Thread) -> Result<(), SendError> {
        let forms = self.forms();
        self.deliver.summary(&forms, r, thread).await
    }

    /// Whether the channel takes daily summaries (alerting systems do not).
    pub fn takes_summaries(cfg: &ChannelConfig) -> bool {
        !matches!(
            cfg.kind,
            ChannelKind::Webhook {
                format: WebhookFormat::Alertmanager | WebhookFormat::Pagerduty,
                ..
            }
        )
    }

    /// Whether this channel posts to Alertmanager (which wants firing alerts refreshed).
    pub fn is_alertmanager(&self) -> bool {
        self.deliver.refreshes_open_alerts()
    }
}

/// Renders the sample incident through a channel's templates (built in or overridden): a
/// template that does not compile or does not produce its format is found by `gatewatch
/// check`, before an incident.
pub fn check(
    ch: &ChannelConfig,
    alerts: &AlertsConfig,
    kb: &Kb,
    inc: &Incident,
) -> anyhow::Result<()> {
    use crate::render::alert::{compose, item};
    let dir = ch.template_dir.as_ref().or(alerts.template_dir.as_ref());
    let t = Templates::new(dir.map(|d| d.as_path()))?;
    for kind in [AlertKind::Opened, AlertKind::Reminder, AlertKind::Resolved] {
        let mut inc = inc.clone();
        if kind == AlertKind::Resolved {
            inc.closed_ms = Some(inc.end_ms);
        }
        let items = vec![item(&inc, kb, ch.lang, "check", &[])];
        let v = compose(kind, "check", ch.lang, "gw-check", items);
        match &ch.kind {
            ChannelKind::Console => {
                t.console(&v)?;
            }
            ChannelKind::Email { .. } => {
                t.email(&v)?;
            }
            ChannelKind::Webhook { format, .. } => {
                webhook::bodies(&t, *format, &v, Some("check"), "2024-05-01T12:00:00+00:00")?;
            }
        }
    }
    Ok(())
}

//! The channels: where messages go. Each kind of channel is a module of its own that owns its
//! settings, its request or mail, and how its failures are judged ([`Deliver`]); the sender
//! ([`crate::delivery::sender`]) owns the outbox, the order, the retries and the backoff.
//! Adding a kind of channel is a new module here and its line in [`KINDS`].

pub mod console;
pub mod email;
pub mod googlechat;
pub mod matrix;
pub mod mattermost;
pub mod ntfy;
pub mod telegram;
pub mod webhook;

pub use crate::render::alert::html_escape;
pub use email::SmtpTls;
pub use webhook::WebhookFormat;

use crate::delivery::settings::AlertsConfig;
use crate::engine::detect::Incident;
use crate::engine::kb::{Kb, Lang};
use crate::log;
use crate::render::alert::{AlertKind, AlertView, Templates};
use crate::render::summary::Report;
use crate::table::Table;
use anyhow::Context;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

/// What a kind of channel is configured with. Each channel module reads its own keys of the
/// `[[channel]]` table into a type of its own that implements this.
pub trait ChannelKind: std::fmt::Debug + Send + Sync + 'static {
    /// Its `kind = "…"`.
    fn name(&self) -> &'static str;
    /// The channel ready to send: clients made, secrets read. `ca`: extra trusted roots.
    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>>;
    /// Renders a message in every form the channel sends (`gatewatch check`).
    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()>;
    /// Its secrets, by key, for `gatewatch check`'s access check.
    fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        Vec::new()
    }
    /// Whether it takes daily summaries (alerting systems do not).
    fn takes_summaries(&self) -> bool {
        true
    }
    /// The longest a send may take, every step included; past it the send is abandoned as a
    /// transient failure and retried later.
    fn deadline(&self) -> Duration {
        Duration::from_secs(60)
    }
    /// Templates of its own (name, built-in text), which a `template_dir` may replace.
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// For a look at one kind's settings.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// How a kind reads its keys; `None` when the table has problems (already reported).
pub type Read = fn(&mut Table<'_>) -> Option<Arc<dyn ChannelKind>>;

/// The kinds of channel. Adding one is adding its module and its line here.
pub const KINDS: &[(&str, Read)] = &[
    ("console", console::read),
    ("email", email::read),
    ("webhook", webhook::read),
    ("telegram", telegram::read),
    ("ntfy", ntfy::read),
    ("googlechat", googlechat::read),
    ("mattermost", mattermost::read),
    ("matrix", matrix::read),
];

/// A `[[channel]]`.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub name: String,
    pub lang: Lang,
    pub kind: Arc<dyn ChannelKind>,
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
            kind: Arc::new(console::ConsoleSettings),
            ca_file: None,
            template_dir: None,
        }
    }

    /// Reads a `[[channel]]` table: `name`, `kind`, `lang`, `ca_file`, `template_dir`, and the
    /// keys of its kind (read by the kind's module). Problems go to the table's errors.
    pub fn read(t: &mut Table<'_>) -> Option<ChannelConfig> {
        let name = t.required("name", "a channel", "\"oncall\"");
        let kind = t.required("kind", "a channel", "\"email\"");
        let lang = match t.string("lang") {
            None => Lang::En,
            Some(l) => Lang::from_name(l.get_ref()).unwrap_or_else(|| {
                t.at(
                    l.span().start,
                    format!("channel.lang: {:?} is not \"en\" or \"zh\"", l.get_ref()),
                );
                Lang::En
            }),
        };
        let ca_file = t.string("ca_file").map(|s| PathBuf::from(s.into_inner()));
        let template_dir = t
            .string("template_dir")
            .map(|s| PathBuf::from(s.into_inner()));
        let (name, kind) = (name?, kind?);
        let Some((_, read)) = KINDS.iter().find(|(k, _)| *k == kind.get_ref()) else {
            let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            t.at(
                kind.span().start,
                format!(
                    "channel.kind: {:?} is not {}",
                    kind.get_ref(),
                    one_of(&names)
                ),
            );
            return None;
        };
        // A secret written into the file is refused whatever the kind: they are read from a
        // file (a systemd credential) or the environment only.
        for key in SECRET_KEYS {
            refuse_secret(t, key);
        }
        let settings = read(t)?;
        Some(ChannelConfig {
            name: name.into_inner(),
            lang,
            kind: settings,
            ca_file,
            template_dir,
        })
    }
}

/// `a, b or c`.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Keys that would hold a secret in the file.
const SECRET_KEYS: [&str; 5] = ["password", "secret", "token", "access_token", "api_key"];

fn refuse_secret(t: &mut Table<'_>, key: &str) {
    t.refuse(
        key,
        &format!("secrets are not read from the config file; use {key}_file (e.g. a systemd credential) or {key}_env"),
    );
}

/// A secret a channel reads from `{key}_file` or `{key}_env`; `{key}` itself in the file is
/// refused (secrets are never read from the configuration file).
pub fn secret(t: &mut Table<'_>, key: &str) -> Option<Secret> {
    refuse_secret(t, key);
    let file = t.string(&format!("{key}_file"));
    let env = t.string(&format!("{key}_env"));
    match (file, env) {
        (Some(_), Some(_)) => {
            t.error(format!("give {key}_file or {key}_env, not both"));
            None
        }
        (Some(f), None) => Some(Secret::File(PathBuf::from(f.into_inner()))),
        (None, Some(e)) => Some(Secret::Env(e.into_inner())),
        (None, None) => None,
    }
}

/// An `http://` or `https://` address a channel must have under `key`.
pub fn http_url(t: &mut Table<'_>, key: &str, needed_by: &str) -> Option<String> {
    let u = t.required(key, needed_by, "\"https://…\"")?;
    checked_url(t, key, u)
}

/// An address written under `key`, if it is `http://` or `https://`.
pub fn checked_url(t: &mut Table<'_>, key: &str, u: toml::Spanned<String>) -> Option<String> {
    if u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://") {
        Some(u.into_inner())
    } else {
        t.at(
            u.span().start,
            format!(
                "channel.{key}: {:?} is not an http:// or https:// address",
                redact_url(u.get_ref())
            ),
        );
        None
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

/// A URL as gatewatch shows it anywhere: its scheme, host and the start of its path, never
/// the rest (webhook URLs hold tokens in their paths and queries).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let (host, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // user:password@host keeps the host only.
    let host = host.rsplit('@').next().unwrap_or(host);
    let hint: String = path.chars().take(6).collect();
    if path.chars().count() > 6 {
        format!("{scheme}{host}{hint}…")
    } else {
        format!("{scheme}{host}{hint}")
    }
}

/// `s` cut to at most `max` characters, with `…` when cut.
pub fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The characters a reader sees of simple HTML: tags left out, an entity counted once (how
/// Telegram and Google Chat count their limits).
pub fn visible_chars(html: &str) -> usize {
    let (mut n, mut in_tag, mut in_entity) = (0, false, false);
    for c in html.chars() {
        match c {
            '<' if !in_entity => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            '&' => {
                in_entity = true;
                n += 1;
            }
            ';' if in_entity => in_entity = false,
            _ if in_entity && (c.is_ascii_alphanumeric() || c == '#') => {}
            _ => {
                in_entity = false;
                n += 1;
            }
        }
    }
    n
}

/// An HTTP client for a channel: the channel's timeout for the whole request (and at most
/// 10 s to connect), no redirects (a redirect is a mistake in the configuration, and following
/// it could leak the body elsewhere), extra trusted roots from `ca`.
pub fn http_client(timeout: Duration, ca: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gatewatch/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca {
        let pem = read_ca(ca)?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("ca_file {}", ca.display()))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().context("making the HTTP client")
}

/// Sends a request to `url`: 2xx is delivered; 408, 429 and 5xx are worth retrying (after the
/// receiver's `Retry-After`, if it says); anything else is refused for good. Errors name the
/// receiver's host, never its URL: a URL may hold a token (Slack, Discord, Telegram).
pub async fn http_send(req: reqwest::RequestBuilder, url: &str) -> Result<(), SendError> {
    let site = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_string()))
        .unwrap_or_default();
    let resp = req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        // The error's own text would name the URL (and a token in it).
        transient(format!("{site}: {what}: {}", error_chain(&e.without_url())))
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().await.unwrap_or_default();
    let excerpt: String = crate::render::report::printable(&text)
        .chars()
        .take(200)
        .collect();
    let error = format!("{site}: HTTP {status}: {excerpt}");
    if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
        Err(SendError::Transient { error, retry_after })
    } else {
        Err(SendError::Permanent(error))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
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
    deadline: Duration,
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
        let templates = templates(cfg.kind.as_ref(), dir.map(PathBuf::as_path))?;
        let deliver = cfg.kind.deliver(cfg.ca_file.as_deref())?;
        Ok(Channel {
            deadline: cfg.kind.deadline(),
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

    /// Sends one message, within the channel's deadline.
    pub async fn send(&self, v: &AlertView, thread: &Thread) -> Result<(), SendError> {
        let forms = self.forms();
        self.within_deadline(self.deliver.alert(&forms, v, thread))
            .await
    }

    /// Sends a daily summary, within the channel's deadline.
    pub async fn send_summary(&self, r: &Report, thread: &Thread) -> Result<(), SendError> {
        let forms = self.forms();
        self.within_deadline(self.deliver.summary(&forms, r, thread))
            .await
    }

    /// A send that has not finished by the deadline (a server that accepted the connection
    /// and went silent) is abandoned as a transient failure.
    async fn within_deadline(&self, send: Sending<'_>) -> Result<(), SendError> {
        match tokio::time::timeout(self.deadline, send).await {
            Ok(r) => r,
            Err(_) => Err(transient(format!(
                "no answer within {} s (the channel's timeout)",
                self.deadline.as_secs()
            ))),
        }
    }

    /// Whether the channel takes daily summaries (alerting systems do not).
    pub fn takes_summaries(cfg: &ChannelConfig) -> bool {
        cfg.kind.takes_summaries()
    }

    /// Whether this channel posts to Alertmanager (which wants firing alerts refreshed).
    pub fn is_alertmanager(&self) -> bool {
        self.deliver.refreshes_open_alerts()
    }
}

/// The templates a channel renders with: the built-in ones and its own, each replaced by a
/// file of the same name in `dir` if there is one.
pub fn templates(kind: &dyn ChannelKind, dir: Option<&Path>) -> anyhow::Result<Templates> {
    let mut t = Templates::new(dir)?;
    for (name, text) in kind.templates() {
        t.add(name, text)?;
    }
    Ok(t)
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
    let t = templates(ch.kind.as_ref(), dir.map(|d| d.as_path()))?;
    for kind in [AlertKind::Opened, AlertKind::Reminder, AlertKind::Resolved] {
        let mut inc = inc.clone();
        if kind == AlertKind::Resolved {
            inc.closed_ms = Some(inc.end_ms);
        }
        let items = vec![item(&inc, kb, ch.lang, "check", &[], Default::default())];
        let v = compose(kind, "check", ch.lang, "gw-check", items);
        ch.kind.check(&t, &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_tokens() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T000/B000/XXXX",
                "https://hooks.slack.com/servi…",
            ),
            (
                "https://chat.googleapis.com/v1/spaces/A/messages?key=K&token=T",
                "https://chat.googleapis.com/v1/sp…",
            ),
            ("https://user:pw@example.com/x", "https://example.com/x"),
            (
                "hooks.slack.com/services/T000/B000/XXXX",
                "hooks.slack.com/servi…",
            ),
            ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}

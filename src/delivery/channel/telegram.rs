//! Telegram (`kind = "telegram"`): the Bot API's `sendMessage` to a chat, in its HTML parse
//! mode, link previews off. The bot token is a secret (`token_file`, `token_env`) and is part
//! of the request's path, so it never appears in an error (they name the host only).
//! A message's text is at most 4,096 characters as Telegram counts them (tags left out).

use super::{
    ChannelKind, Deliver, Forms, Secret, Sending, Thread, checked_url, cut_chars, html_escape,
    permanent, secret, visible_chars,
};
use crate::render::alert::{AlertView, Templates};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Telegram's limit on a message's text.
pub const MAX_CHARS: usize = 4096;

const TEMPLATES: &[(&str, &str)] = &[(
    "telegram.html.j2",
    include_str!("../../../templates/telegram.html.j2"),
)];

/// A Telegram channel's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TelegramSettings {
    /// The chat: `-1001234567890` (a group or channel) or `@channelname`.
    pub chat_id: String,
    pub token: Secret,
    /// The Bot API's address (another for a local Bot API server, or a test).
    pub api_url: String,
    pub timeout: Duration,
}

/// Reads `kind = "telegram"`: `chat_id`, `token_file` / `token_env`, `api_url`, `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let chat_id = t.text("chat_id");
    if chat_id.is_none() {
        t.error("a telegram channel needs chat_id = \"-1001234567890\" (or \"@channel\")");
    }
    let token = secret(t, "token");
    if token.is_none() {
        t.error("a telegram channel needs its bot token in token_file or token_env");
    }
    let api_url = match t.string("api_url") {
        Some(u) => checked_url(t, "api_url", u)?,
        None => "https://api.telegram.org".to_string(),
    };
    let timeout = t.duration("timeout", Duration::from_secs(10));
    Some(Arc::new(TelegramSettings {
        chat_id: chat_id?.into_inner(),
        token: token?,
        api_url: api_url.trim_end_matches('/').to_string(),
        timeout,
    }))
}

impl ChannelKind for TelegramSettings {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        let token = self.token.read()?;
        Ok(Box::new(Telegram {
            client: super::http_client(self.timeout, ca)?,
            url: format!("{}/bot{token}/sendMessage", self.api_url),
            chat_id: self.chat_id.clone(),
        }))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        request(&self.chat_id, &text(t, v)?).map(drop)
    }

    fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        vec![("token", &self.token)]
    }

    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        TEMPLATES
    }

    fn deadline(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The message's text, shortened to Telegram's limit.
pub fn text(t: &Templates, v: &AlertView) -> anyhow::Result<String> {
    let render = |v: &AlertView| t.render("telegram.html.j2", v);
    let fitted = v.fit(|v| Ok(visible_chars(&render(v)?) <= MAX_CHARS))?;
    let html = render(&fitted)?;
    if visible_chars(&html) <= MAX_CHARS {
        return Ok(html);
    }
    // Still too long: the subject alone, as text.
    Ok(html_escape(&cut_chars(&v.subject, MAX_CHARS)))
}

/// The `sendMessage` body.
pub fn request(chat_id: &str, text: &str) -> anyhow::Result<String> {
    let chat: serde_json::Value = match chat_id.parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => chat_id.into(),
    };
    Ok(serde_json::json!({
        "chat_id": chat,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    })
    .to_string())
}

/// The summary: its subject, and its text as preformatted.
pub fn summary_text(r: &Report, text: &str) -> String {
    let head = format!("📊 <b>{}</b>\n", html_escape(&summary::subject(r)));
    let room = MAX_CHARS.saturating_sub(visible_chars(&head) + 2);
    format!("{head}<pre>{}</pre>", html_escape(&cut_chars(text, room)))
}

struct Telegram {
    client: reqwest::Client,
    url: String,
    chat_id: String,
}

impl Telegram {
    async fn post(&self, body: String) -> Result<(), super::SendError> {
        let req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        super::http_send(req, &self.url).await
    }
}

impl Deliver for Telegram {
    fn alert<'a>(&'a self, forms: &'a Forms<'a>, v: &'a AlertView, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            let text = text(forms.templates, v).map_err(permanent)?;
            self.post(request(&self.chat_id, &text).map_err(permanent)?)
                .await
        })
    }

    fn summary<'a>(&'a self, forms: &'a Forms<'a>, r: &'a Report, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            let text = summary::render(r, "summary.txt.j2", forms.template_dir, None)
                .map_err(permanent)?;
            self.post(request(&self.chat_id, &summary_text(r, &text)).map_err(permanent)?)
                .await
        })
    }
}

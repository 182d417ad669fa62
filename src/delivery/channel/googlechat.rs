//! Google Chat (`kind = "googlechat"`): an incoming webhook of a space, `POST` of a message
//! with a card (cards v2: a header and the text in simple HTML). The webhook's URL carries its
//! key and token; errors name the host only. A resolved note goes to the alert's thread
//! (`threadKey` = the incident's key). A message's text is at most 4,096 characters and the
//! whole message at most 32,000 bytes.

use super::{
    ChannelKind, Deliver, Forms, Sending, Thread, cut_chars, html_escape, http_url, permanent,
    visible_chars,
};
use crate::render::alert::{AlertKind, AlertView, Templates};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Google Chat's limits: the text of a message or a text widget, and the whole message.
pub const MAX_CHARS: usize = 4096;
pub const MAX_BYTES: usize = 32_000;

const TEMPLATES: &[(&str, &str)] = &[(
    "googlechat.html.j2",
    include_str!("../../../templates/googlechat.html.j2"),
)];

/// A Google Chat channel's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GoogleChatSettings {
    /// The space's incoming webhook, `https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…`.
    pub url: String,
    pub timeout: Duration,
}

/// Reads `kind = "googlechat"`: `url`, `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let url = http_url(t, "url", "a googlechat channel");
    let timeout = t.duration("timeout", Duration::from_secs(10));
    Some(Arc::new(GoogleChatSettings { url: url?, timeout }))
}

impl ChannelKind for GoogleChatSettings {
    fn name(&self) -> &'static str {
        "googlechat"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(GoogleChat {
            client: super::http_client(self.timeout, ca)?,
            url: self.url.clone(),
        }))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        message(t, v).map(drop)
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

/// A message with one card: `text` is what notifications show, the card the rest.
fn card(id: &str, title: &str, subtitle: &str, html: &str) -> String {
    serde_json::json!({
        "text": cut_chars(title, MAX_CHARS),
        "cardsV2": [{
            "cardId": format!("gatewatch-{id}"),
            "card": {
                "header": {"title": cut_chars(title, 200), "subtitle": cut_chars(subtitle, 200)},
                "sections": [{"widgets": [{"textParagraph": {"text": html}}]}],
            },
        }],
    })
    .to_string()
}

/// The message's body, fitted to Google Chat's limits.
pub fn message(t: &Templates, v: &AlertView) -> anyhow::Result<String> {
    let body = |v: &AlertView| -> anyhow::Result<(String, usize)> {
        let html = t.render("googlechat.html.j2", v)?;
        let chars = visible_chars(&html);
        Ok((card(&v.id, &v.subject, &v.host, html.trim()), chars))
    };
    let fits = |v: &AlertView| -> anyhow::Result<bool> {
        let (b, chars) = body(v)?;
        Ok(chars <= MAX_CHARS && b.len() <= MAX_BYTES)
    };
    let fitted = v.fit(fits)?;
    if fits(&fitted)? {
        return Ok(body(&fitted)?.0);
    }
    Ok(card(
        &v.id,
        &v.subject,
        &v.host,
        &html_escape(&cut_chars(&v.subject, 1000)),
    ))
}

/// The summary's message: its text, preformatted.
pub fn summary_message(r: &Report, id: &str, text: &str) -> String {
    let html = format!(
        "<font face=\"monospace\">{}</font>",
        html_escape(&cut_chars(text, MAX_CHARS - 64)).replace('\n', "<br>")
    );
    card(id, &summary::subject(r), &r.host, &html)
}

/// The webhook's URL with the thread to post in: an incident's messages share one.
pub fn thread_url(url: &str, thread: &str) -> anyhow::Result<String> {
    let mut u = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("url: {e}"))?;
    u.query_pairs_mut()
        .append_pair("threadKey", thread)
        .append_pair("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
    Ok(u.to_string())
}

struct GoogleChat {
    client: reqwest::Client,
    url: String,
}

impl GoogleChat {
    async fn post(&self, url: &str, body: String) -> Result<(), super::SendError> {
        let req = self
            .client
            .post(url)
            .header("content-type", "application/json; charset=UTF-8")
            .body(body);
        super::http_send(req, url).await
    }
}

impl Deliver for GoogleChat {
    fn alert<'a>(&'a self, forms: &'a Forms<'a>, v: &'a AlertView, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            let body = message(forms.templates, v).map_err(permanent)?;
            // Every message about an incident goes to the incident's thread.
            let url = match v.incidents.first() {
                Some(i) if v.kind != AlertKind::Summary => {
                    thread_url(&self.url, &i.key).map_err(permanent)?
                }
                _ => self.url.clone(),
            };
            self.post(&url, body).await
        })
    }

    fn summary<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        r: &'a Report,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            let text = summary::render(r, "summary.txt.j2", forms.template_dir, None)
                .map_err(permanent)?;
            self.post(&self.url, summary_message(r, &thread.message_id, &text))
                .await
        })
    }
}

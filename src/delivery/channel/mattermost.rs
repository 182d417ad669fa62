//! Mattermost (`kind = "mattermost"`): an incoming webhook, `POST` of a message in Mattermost's
//! own shape: a short `text`, and an attachment coloured by the change (red, amber, green) with
//! the incident's fields and the entry in Markdown. Log content is escaped or in code spans, so
//! it cannot mention people or make links. A post is at most 16,383 characters.

use super::{ChannelKind, Deliver, Forms, Sending, Thread, cut_chars, http_url, permanent};
use crate::render::alert::{AlertKind, AlertView, Templates};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Mattermost's limit on a post (its text and its attachments' text together, here).
pub const MAX_CHARS: usize = 16_383;

const TEMPLATES: &[(&str, &str)] = &[(
    "mattermost.md.j2",
    include_str!("../../../templates/mattermost.md.j2"),
)];

/// A Mattermost channel's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MattermostSettings {
    /// The incoming webhook, `https://mattermost.example.com/hooks/…`.
    pub url: String,
    /// Post as this user name (when the server lets webhooks override it).
    pub username: Option<String>,
    /// Post to this channel instead of the webhook's own (when the server lets it).
    pub channel: Option<String>,
    pub timeout: Duration,
}

/// Reads `kind = "mattermost"`: `url`, `username`, `channel`, `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let url = http_url(t, "url", "a mattermost channel");
    let username = t.string("username").map(|s| s.into_inner());
    let channel = t.string("channel").map(|s| s.into_inner());
    let timeout = t.duration("timeout", Duration::from_secs(10));
    Some(Arc::new(MattermostSettings {
        url: url?,
        username,
        channel,
        timeout,
    }))
}

impl ChannelKind for MattermostSettings {
    fn name(&self) -> &'static str {
        "mattermost"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(Mattermost {
            client: super::http_client(self.timeout, ca)?,
            settings: self.clone(),
        }))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        post(self, t, v).map(drop)
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

/// The attachment's colour for a change.
fn color(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Opened => "#b3261e",
        AlertKind::Reminder => "#e8710a",
        AlertKind::Resolved => "#1b7f3b",
        AlertKind::Summary => "#5f6368",
    }
}

/// Text from the logs for a Markdown field: no mention, link or formatting.
fn plain(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

fn body(s: &MattermostSettings, text: &str, attachment: serde_json::Value) -> String {
    let mut b = serde_json::json!({
        "username": s.username.as_deref().unwrap_or("gatewatch"),
        "text": text,
        "attachments": [attachment],
    });
    if let Some(c) = &s.channel {
        b["channel"] = c.as_str().into();
    }
    b.to_string()
}

/// The post for a message, fitted to Mattermost's limit.
pub fn post(s: &MattermostSettings, t: &Templates, v: &AlertView) -> anyhow::Result<String> {
    let parts = |v: &AlertView| -> anyhow::Result<(String, serde_json::Value, usize)> {
        let md = t.render("mattermost.md.j2", v)?;
        let md = md.trim().to_string();
        let upstreams: Vec<String> = v.incidents.iter().map(|i| plain(&i.upstream)).collect();
        let causes: Vec<&str> = v.incidents.iter().map(|i| i.cause.as_str()).collect();
        let fields = serde_json::json!([
            {"short": true, "title": v.labels.host, "value": plain(&v.host)},
            {"short": true, "title": v.labels.cause, "value": causes.join(", ")},
            {"short": false, "title": v.labels.upstream, "value": upstreams.join(", ")},
        ]);
        let fields_len: usize = upstreams.iter().map(|u| u.chars().count() + 2).sum();
        let title = v.subject.clone();
        let size = title.chars().count() * 2 + md.chars().count() + fields_len;
        let attachment = serde_json::json!({
            "fallback": title,
            "color": color(v.kind),
            "title": title,
            "text": md,
            "fields": fields,
        });
        Ok((title, attachment, size))
    };
    let fitted = v.fit(|v| Ok(parts(v)?.2 <= MAX_CHARS))?;
    let (title, mut attachment, size) = parts(&fitted)?;
    if size > MAX_CHARS {
        attachment["text"] =
            cut_chars(attachment["text"].as_str().unwrap_or(""), MAX_CHARS / 2).into();
        attachment["fields"] = serde_json::json!([]);
    }
    Ok(body(s, &title, attachment))
}

/// The summary's post: its text as a code block.
pub fn summary_post(s: &MattermostSettings, r: &Report, text: &str) -> String {
    let subject = summary::subject(r);
    let text = cut_chars(
        &text.replace("```", "'''"),
        MAX_CHARS - subject.chars().count() * 2 - 16,
    );
    body(
        s,
        &subject,
        serde_json::json!({
            "fallback": subject,
            "color": color(AlertKind::Summary),
            "title": subject,
            "text": format!("```\n{text}\n```"),
        }),
    )
}

struct Mattermost {
    client: reqwest::Client,
    settings: MattermostSettings,
}

impl Mattermost {
    async fn send(&self, body: String) -> Result<(), super::SendError> {
        let req = self
            .client
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .body(body);
        super::http_send(req, &self.settings.url).await
    }
}

impl Deliver for Mattermost {
    fn alert<'a>(&'a self, forms: &'a Forms<'a>, v: &'a AlertView, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            self.send(post(&self.settings, forms.templates, v).map_err(permanent)?)
                .await
        })
    }

    fn summary<'a>(&'a self, forms: &'a Forms<'a>, r: &'a Report, _: &'a Thread) -> Sending<'a> {
        Box::pin(async move {
            let text = summary::render(r, "summary.txt.j2", forms.template_dir, None)
                .map_err(permanent)?;
            self.send(summary_post(&self.settings, r, &text)).await
        })
    }
}

//! ntfy (`kind = "ntfy"`): a push notification published to a topic, `POST` of the text to the
//! topic's URL with `Title`, `Priority` and `Tags` headers, and `Authorization: Bearer` when a
//! token is set (`token_file`, `token_env`). ntfy keeps a message to 4,096 bytes (a longer one
//! becomes an attachment, or is refused), so the text is fitted to that.

use super::{
    ChannelKind, Deliver, Forms, Secret, Sending, Thread, cut_bytes, cut_chars, http_url,
    permanent, secret,
};
use crate::render::alert::{AlertKind, AlertView, Templates};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// ntfy's limit on a message.
pub const MAX_BYTES: usize = 4096;

const TEMPLATES: &[(&str, &str)] = &[(
    "ntfy.txt.j2",
    include_str!("../../../templates/ntfy.txt.j2"),
)];

/// The priorities ntfy knows, by name (1 to 5 are the same).
const PRIORITIES: [&str; 6] = ["min", "low", "default", "high", "max", "urgent"];

/// An ntfy channel's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NtfySettings {
    /// The topic's URL, `https://ntfy.sh/my-alerts`.
    pub url: String,
    pub token: Option<Secret>,
    /// The priority of alerts (resolved notes go at `default`).
    pub priority: String,
    pub timeout: Duration,
}

/// Reads `kind = "ntfy"`: `url`, `priority`, `token_file` / `token_env`, `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let url = http_url(t, "url", "an ntfy channel");
    if let Some(u) = &url
        && reqwest::Url::parse(u).is_ok_and(|u| u.path().trim_matches('/').is_empty())
    {
        t.error(format!(
            "url {u:?} names no topic; write the topic's URL, e.g. \"https://ntfy.sh/my-alerts\""
        ));
    }
    let priority = match t.text("priority") {
        None => "high".to_string(),
        Some(p) => {
            let name = match p.get_ref().as_str() {
                "1" => "min",
                "2" => "low",
                "3" => "default",
                "4" => "high",
                "5" => "urgent",
                other => other,
            };
            if !PRIORITIES.contains(&name) {
                t.at(p.span().start, format!("channel.priority: {:?} is not min, low, default, high, max or urgent (or 1 to 5)", p.get_ref()));
            }
            name.to_string()
        }
    };
    let token = secret(t, "token");
    let timeout = t.duration("timeout", Duration::from_secs(10));
    Some(Arc::new(NtfySettings {
        url: url?,
        token,
        priority,
        timeout,
    }))
}

impl ChannelKind for NtfySettings {
    fn name(&self) -> &'static str {
        "ntfy"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(Ntfy {
            client: super::http_client(self.timeout, ca)?,
            url: self.url.clone(),
            token: self.token.as_ref().map(Secret::read).transpose()?,
            priority: self.priority.clone(),
        }))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        message(t, v).map(drop)
    }

    fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        self.token.iter().map(|s| ("token", s)).collect()
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

/// The notification's text, fitted to ntfy's limit.
pub fn message(t: &Templates, v: &AlertView) -> anyhow::Result<String> {
    let render = |v: &AlertView| t.render("ntfy.txt.j2", v);
    let fitted = v.fit(|v| Ok(render(v)?.trim().len() <= MAX_BYTES))?;
    Ok(cut_bytes(render(&fitted)?.trim(), MAX_BYTES))
}

/// The tags ntfy shows as emoji before the title.
pub fn tags(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Opened => "rotating_light",
        AlertKind::Reminder => "repeat",
        AlertKind::Resolved => "white_check_mark",
        AlertKind::Summary => "bar_chart",
    }
}

/// A header value as ntfy reads it: ASCII as it is, anything else as an RFC 2047 encoded word
/// (ntfy decodes them), so a Chinese title arrives whole.
pub fn header_text(s: &str) -> String {
    let s = cut_chars(s, 250);
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s;
    }
    format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Ntfy {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    priority: String,
}

impl Ntfy {
    async fn publish(
        &self,
        title: &str,
        priority: &str,
        tags: &str,
        id: &str,
        body: String,
    ) -> Result<(), super::SendError> {
        let mut req = self
            .client
            .post(&self.url)
            .header("title", header_text(title))
            .header("priority", priority)
            .header("tags", tags)
            .header("x-gatewatch-delivery", id)
            .header("content-type", "text/plain; charset=utf-8");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        super::http_send(req.body(body), &self.url).await
    }
}

impl Deliver for Ntfy {
    fn alert<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        v: &'a AlertView,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            let body = message(forms.templates, v).map_err(permanent)?;
            let priority = if v.kind == AlertKind::Resolved {
                "default"
            } else {
                &self.priority
            };
            self.publish(&v.subject, priority, tags(v.kind), &thread.message_id, body)
                .await
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
            let body = cut_bytes(text.trim(), MAX_BYTES);
            self.publish(
                &summary::subject(r),
                "default",
                tags(AlertKind::Summary),
                &thread.message_id,
                body,
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_any_text() {
        // RFC 4648 test vectors.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(header_text("502 burst"), "502 burst");
        assert_eq!(
            header_text("上游"),
            format!("=?UTF-8?B?{}?=", base64("上游".as_bytes()))
        );
    }
}

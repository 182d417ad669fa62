//! The webhook channel: one POST per message (PagerDuty: one per event) with the message's
//! delivery id in `X-Gatewatch-Delivery` and, with a secret, an HMAC-SHA256 signature; the body
//! in the receiver's own format (generic JSON, Slack, Teams, Discord, Alertmanager v2, PagerDuty
//! Events v2). No redirects are followed; the connection and the whole request have the
//! channel's timeout; errors name the receiver's host, never its URL (it may hold a token).

use super::{ChannelKind, Deliver, Forms, Secret, SendError, Sending, Thread, permanent, secret};
use crate::render::alert::{self, AlertKind, AlertView, Templates, truncate};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    Json,
    Slack,
    Teams,
    Discord,
    Alertmanager,
    Pagerduty,
}

/// A webhook channel's settings (`kind = "webhook"`).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub format: WebhookFormat,
    pub url: String,
    /// The HMAC key (for `pagerduty`, the routing key).
    pub secret: Option<Secret>,
    pub timeout: Duration,
}

/// Reads `kind = "webhook"`: `format`, `url`, `secret_file` / `secret_env`, `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let format = match t
        .string("format")
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
            t.at(off, format!("channel.format: {other:?} is not json, slack, teams, discord, alertmanager or pagerduty"));
            WebhookFormat::Json
        }
    };
    let url = super::http_url(t, "url", "a webhook channel")?;
    let timeout = t.duration("timeout", Duration::from_secs(10));
    let secret = secret(t, "secret");
    if format == WebhookFormat::Pagerduty && secret.is_none() {
        t.error("a pagerduty channel needs its routing key in secret_file or secret_env");
    }
    Some(Arc::new(WebhookSettings {
        format,
        url,
        secret,
        timeout,
    }))
}

impl ChannelKind for WebhookSettings {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(Webhook::new(self, ca)?))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        bodies(
            t,
            self.format,
            v,
            Some("check"),
            "2024-05-01T12:00:00+00:00",
        )
        .map(drop)
    }

    fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        self.secret.iter().map(|s| ("secret", s)).collect()
    }

    fn takes_summaries(&self) -> bool {
        !matches!(
            self.format,
            WebhookFormat::Alertmanager | WebhookFormat::Pagerduty
        )
    }

    fn deadline(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A webhook channel ready to send.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    format: WebhookFormat,
    secret: Option<String>,
}

impl Webhook {
    /// The HTTP client for a channel's settings; `ca`: extra trusted roots.
    pub fn new(settings: &WebhookSettings, ca: Option<&Path>) -> anyhow::Result<Webhook> {
        let WebhookSettings {
            format,
            url,
            secret,
            timeout,
        } = settings;
        Ok(Webhook {
            client: super::http_client(*timeout, ca)?,
            url: url.clone(),
            format: *format,
            secret: secret.as_ref().map(|s| s.read()).transpose()?,
        })
    }

    /// The key bodies are signed with (PagerDuty's secret is its routing key, not a key).
    fn hmac_key(&self) -> Option<&str> {
        self.secret
            .as_deref()
            .filter(|_| self.format != WebhookFormat::Pagerduty)
    }
}

impl Deliver for Webhook {
    fn alert<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        v: &'a AlertView,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            let now = chrono::Utc::now().to_rfc3339();
            let bodies = bodies(
                forms.templates,
                self.format,
                v,
                self.secret.as_deref(),
                &now,
            )
            .map_err(permanent)?;
            for body in bodies {
                post(
                    &self.client,
                    &self.url,
                    body,
                    &thread.message_id,
                    self.hmac_key(),
                )
                .await?;
            }
            Ok(())
        })
    }

    fn summary<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        r: &'a Report,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            let render =
                |name: &str| summary::render(r, name, forms.template_dir, None).map_err(permanent);
            let format = &self.format;
            let body = match format {
                WebhookFormat::Json => serde_json::json!({
                    "version": alert::SCHEMA_VERSION,
                    "kind": "summary",
                    "id": thread.message_id,
                    "host": r.host,
                    "subject": summary::subject(r),
                    "summary": r,
                })
                .to_string(),
                WebhookFormat::Slack => {
                    let b = render("summary.slack.json.j2")?;
                    serde_json::from_str::<serde_json::Value>(&b).map_err(|e| {
                        SendError::Permanent(format!(
                            "summary.slack.json.j2 did not render to JSON: {e}"
                        ))
                    })?;
                    b
                }
                WebhookFormat::Teams => serde_json::json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.4",
                            "body": [
                                {"type": "TextBlock", "text": summary::subject(r), "weight": "Bolder", "wrap": true},
                                {"type": "TextBlock", "text": render("summary.txt.j2")?, "fontType": "Monospace", "wrap": true},
                            ],
                        },
                    }],
                })
                .to_string(),
                WebhookFormat::Discord => {
                    let text: String = render("summary.txt.j2")?.chars().take(1900).collect();
                    serde_json::json!({
                        "content": format!("```\n{}\n```", text.replace("```", "'''")),
                        "allowed_mentions": {"parse": []},
                    })
                    .to_string()
                }
                WebhookFormat::Alertmanager | WebhookFormat::Pagerduty => {
                    return Err(SendError::Permanent(
                        "alerting channels (alertmanager, pagerduty) do not take summaries"
                            .into(),
                    ));
                }
            };
            post(
                &self.client,
                &self.url,
                body,
                &thread.message_id,
                self.hmac_key(),
            )
            .await
        })
    }

    fn refreshes_open_alerts(&self) -> bool {
        self.format == WebhookFormat::Alertmanager
    }
}

/// The request bodies a webhook receives for a message (PagerDuty takes one event per
/// request; the others one body). Template output is checked to be JSON, so a broken override
/// is an error here, not a 400 from the receiver.
pub fn bodies(
    t: &Templates,
    format: WebhookFormat,
    v: &AlertView,
    routing_key: Option<&str>,
    now_rfc3339: &str,
) -> anyhow::Result<Vec<String>> {
    let one = |name: &str| -> anyhow::Result<Vec<String>> {
        let body = t.render(name, v)?;
        serde_json::from_str::<serde_json::Value>(&body)
            .map_err(|e| anyhow::anyhow!("{name} did not render to JSON: {e}"))?;
        Ok(vec![body])
    };
    match format {
        WebhookFormat::Json => Ok(vec![serde_json::to_string(v)?]),
        WebhookFormat::Slack => one("slack.json.j2"),
        WebhookFormat::Teams => one("teams.json.j2"),
        WebhookFormat::Discord => one("discord.json.j2"),
        WebhookFormat::Alertmanager => {
            Ok(vec![serde_json::to_string(&alertmanager(v, now_rfc3339))?])
        }
        WebhookFormat::Pagerduty => {
            let key = routing_key.ok_or_else(|| {
                anyhow::anyhow!(
                    "a pagerduty channel needs its routing key in secret_file or secret_env"
                )
            })?;
            pagerduty(v, key)
                .iter()
                .map(|e| Ok(serde_json::to_string(e)?))
                .collect()
        }
    }
}

/// Prometheus Alertmanager API v2 (`POST /api/v2/alerts`): one alert per incident, labelled so
/// that a fleet's Alertmanager groups and deduplicates them; `endsAt` resolves them.
pub fn alertmanager(v: &AlertView, now_rfc3339: &str) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = v
        .incidents
        .iter()
        .map(|i| {
            let e = v.entry_of(i);
            let mut a = serde_json::json!({
                "labels": {
                    "alertname": "GatewatchUpstreamBurst",
                    "severity": "critical",
                    "instance": v.host,
                    "upstream": i.upstream,
                    "cause": i.cause,
                    "entry": i.entry,
                },
                "annotations": {
                    "summary": i.headline,
                    "description": format!(
                        "{}\n{}",
                        e.map_or("", |e| e.root_cause.as_str()),
                        e.and_then(|e| e.workarounds.first()).map_or("", |w| w.text.as_str())
                    ),
                    "runbook_url": e.and_then(|e| e.docs.first()).cloned().unwrap_or_default(),
                    "incident": i.key,
                },
                "startsAt": i.start,
            });
            // The one-click links: Ack and Snooze by name, the verdicts as lines of text.
            for l in &i.links {
                match l.kind.as_str() {
                    "ack" | "snooze" => {
                        a["annotations"][format!("{}_url", l.kind)] = l.url.clone().into();
                    }
                    _ => {
                        let all = a["annotations"]["feedback"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        let sep = if all.is_empty() { "" } else { "\n" };
                        a["annotations"]["feedback"] =
                            format!("{all}{sep}{}: {}", l.label, l.url).into();
                    }
                }
            }
            if v.kind == AlertKind::Resolved {
                a["endsAt"] = serde_json::Value::String(
                    i.closed.clone().unwrap_or_else(|| now_rfc3339.to_string()),
                );
            }
            a
        })
        .collect();
    serde_json::Value::Array(alerts)
}

/// PagerDuty Events API v2: one event per incident, trigger or resolve, deduplicated by the
/// incident's key.
pub fn pagerduty(v: &AlertView, routing_key: &str) -> Vec<serde_json::Value> {
    v.incidents
        .iter()
        .map(|i| {
            let e = v.entry_of(i);
            let action = if v.kind == AlertKind::Resolved {
                "resolve"
            } else {
                "trigger"
            };
            serde_json::json!({
                "routing_key": routing_key,
                "event_action": action,
                "dedup_key": i.key,
                "payload": {
                    "summary": truncate(i.headline.clone(), 1024),
                    "source": v.host,
                    "severity": "critical",
                    "component": i.upstream,
                    "class": i.cause,
                    "custom_details": {
                        "entry": i.entry,
                        "root_cause": e.map(|e| e.root_cause.clone()),
                        "first_step": e.and_then(|e| e.workarounds.first()).map(|w| w.text.clone()),
                        "failures": i.failures,
                        "requests": i.requests,
                        "start": i.start,
                    },
                },
                "links": e
                    .map_or(Vec::new(), |e| e.docs.iter().map(|d| serde_json::json!({"href": d, "text": e.title})).collect::<Vec<_>>())
                    .into_iter()
                    .chain(i.links.iter().map(|l| serde_json::json!({"href": l.url, "text": l.label})))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `sha256=<hex>`: HMAC-SHA256 of the body with the shared secret (as GitHub signs its
/// webhooks), so a receiver can check that the message came from gatewatch.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    let mut s = String::from("sha256=");
    for b in tag.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// POSTs one body with the message's delivery id, signed when there is a key.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: String,
    delivery: &str,
    hmac_key: Option<&str>,
) -> Result<(), SendError> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-gatewatch-delivery", delivery);
    if let Some(k) = hmac_key {
        req = req.header("x-gatewatch-signature-256", signature(k, body.as_bytes()));
    }
    super::http_send(req.body(body), url).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

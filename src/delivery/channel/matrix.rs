//! Matrix (`kind = "matrix"`): an `m.room.message` sent to a room with the client-server API,
//! `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`, as plain text and HTML.
//! The transaction id is the message's delivery id, so a resend after a crash is the same
//! event to the homeserver, not a second one. The access token is a secret (`access_token_file`,
//! `access_token_env`), sent as `Authorization: Bearer`. An event is at most 65,536 bytes.

use super::{
    ChannelKind, Deliver, Forms, Secret, Sending, Thread, cut_bytes, html_escape, http_url,
    permanent, secret,
};
use crate::render::alert::{AlertView, Templates};
use crate::render::summary::{self, Report};
use crate::table::Table;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The size a Matrix event may have, less room for what the homeserver adds.
pub const MAX_BYTES: usize = 60_000;

const TEMPLATES: &[(&str, &str)] = &[(
    "matrix.html.j2",
    include_str!("../../../templates/matrix.html.j2"),
)];

/// A Matrix channel's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSettings {
    /// The homeserver's client API address, `https://matrix.example.org`.
    pub homeserver: String,
    /// The room's id, `!abcdefg:example.org` (not an alias).
    pub room: String,
    pub access_token: Secret,
    pub timeout: Duration,
}

/// Reads `kind = "matrix"`: `homeserver`, `room`, `access_token_file` / `access_token_env`,
/// `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let homeserver = http_url(t, "homeserver", "a matrix channel");
    let room = t.required("room", "a matrix channel", "\"!roomid:example.org\"");
    if let Some(r) = &room
        && !(r.get_ref().starts_with('!') && r.get_ref().contains(':'))
    {
        t.at(
            r.span().start,
            format!(
                "channel.room: {:?} is not a room id such as \"!abcdefg:example.org\" (an alias like #room:example.org does not work here: the room's settings show its id)",
                r.get_ref()
            ),
        );
        return None;
    }
    let access_token = secret(t, "access_token");
    if access_token.is_none() {
        t.error("a matrix channel needs its access token in access_token_file or access_token_env");
    }
    let timeout = t.duration("timeout", Duration::from_secs(10));
    Some(Arc::new(MatrixSettings {
        homeserver: homeserver?.trim_end_matches('/').to_string(),
        room: room?.into_inner(),
        access_token: access_token?,
        timeout,
    }))
}

impl ChannelKind for MatrixSettings {
    fn name(&self) -> &'static str {
        "matrix"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(Matrix {
            client: super::http_client(self.timeout, ca)?,
            homeserver: self.homeserver.clone(),
            room: self.room.clone(),
            token: self.access_token.read()?,
        }))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        event(t, v).map(drop)
    }

    fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        vec![("access_token", &self.access_token)]
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

/// The event's content: the console text as `body`, the HTML as `formatted_body`; shortened to
/// fit an event.
pub fn event(t: &Templates, v: &AlertView) -> anyhow::Result<String> {
    let content = |v: &AlertView| -> anyhow::Result<String> {
        Ok(serde_json::json!({
            "msgtype": if v.kind == crate::render::alert::AlertKind::Resolved { "m.notice" } else { "m.text" },
            "body": t.console(v)?,
            "format": "org.matrix.custom.html",
            "formatted_body": t.render("matrix.html.j2", v)?,
        })
        .to_string())
    };
    let fitted = v.fit(|v| Ok(content(v)?.len() <= MAX_BYTES))?;
    let body = content(&fitted)?;
    if body.len() <= MAX_BYTES {
        return Ok(body);
    }
    Ok(
        serde_json::json!({"msgtype": "m.text", "body": cut_bytes(&v.subject, MAX_BYTES / 2)})
            .to_string(),
    )
}

/// The summary's event: its text, and the same preformatted as HTML.
pub fn summary_event(r: &Report, text: &str) -> String {
    let text = cut_bytes(text, MAX_BYTES / 3);
    serde_json::json!({
        "msgtype": "m.notice",
        "body": format!("{}\n\n{text}", summary::subject(r)),
        "format": "org.matrix.custom.html",
        "formatted_body": format!("<h4>{}</h4><pre><code>{}</code></pre>", html_escape(&summary::subject(r)), html_escape(&text)),
    })
    .to_string()
}

/// `PUT …/rooms/{room}/send/m.room.message/{txn}`, each part escaped.
pub fn send_url(homeserver: &str, room: &str, txn: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(homeserver)
        .map_err(|e| anyhow::anyhow!("homeserver {homeserver:?}: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("homeserver {homeserver:?} cannot take a path"))?
        .pop_if_empty()
        .extend([
            "_matrix",
            "client",
            "v3",
            "rooms",
            room,
            "send",
            "m.room.message",
            txn,
        ]);
    Ok(url.to_string())
}

struct Matrix {
    client: reqwest::Client,
    homeserver: String,
    room: String,
    token: String,
}

impl Matrix {
    async fn put(&self, txn: &str, body: String) -> Result<(), super::SendError> {
        let url = send_url(&self.homeserver, &self.room, txn).map_err(permanent)?;
        let req = self
            .client
            .put(&url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body);
        super::http_send(req, &url).await
    }
}

impl Deliver for Matrix {
    fn alert<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        v: &'a AlertView,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            let body = event(forms.templates, v).map_err(permanent)?;
            self.put(&thread.message_id, body).await
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
            self.put(&thread.message_id, summary_event(r, &text)).await
        })
    }
}

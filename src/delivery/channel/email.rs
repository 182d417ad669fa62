//! The email channel (lettre): STARTTLS, implicit TLS or plain on loopback, AUTH, a text and
//! an HTML part; a resolved note threads under its alert (`In-Reply-To`, `References`); the
//! daily summary carries its chart inline. The channel's timeout bounds each SMTP step and the
//! whole send (a server that goes silent after its banner cannot hold a message).

use super::{
    ChannelKind, Deliver, Forms, Secret, SendError, Sending, Thread, permanent, read_ca, secret,
    transient,
};
use crate::render::alert::AlertView;
use crate::render::alert::Templates;
use crate::render::summary::{self, Report};
use crate::table::Table;
use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// TLS for SMTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// An email channel's settings (`kind = "email"`).
#[derive(Clone, Debug, PartialEq)]
pub struct EmailSettings {
    /// `host:port`.
    pub server: String,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

/// Reads `kind = "email"`: `server`, `tls`, `from`, `to`, `username`, `password_file` /
/// `password_env`, `timeout`.
pub fn read(t: &mut Table<'_>) -> Option<Arc<dyn ChannelKind>> {
    let written = t.required("server", "an email channel", "\"host:port\"")?;
    let (server, url_tls) = match smtp_server(written.get_ref()) {
        Ok(v) => v,
        Err(e) => {
            t.at(written.span().start, format!("channel.server: {e}"));
            return None;
        }
    };
    let tls_written = t.string("tls");
    let tls = match tls_written
        .as_ref()
        .map(|v| (v.get_ref().as_str(), v.span().start))
    {
        Some((written_tls, off))
            if url_tls.is_some_and(|u| Some(u) != tls_by_name(written_tls)) =>
        {
            t.at(off, format!("channel.tls = {written_tls:?} contradicts the server's {:?}; smtps:// is implicit TLS (leave tls out, or write host:port)", written.get_ref()));
            SmtpTls::StartTls
        }
        None => url_tls.unwrap_or(SmtpTls::StartTls),
        Some(("starttls", _)) => SmtpTls::StartTls,
        Some(("implicit", _)) => SmtpTls::Implicit,
        Some(("none", off)) => {
            if !is_loopback_host(&server) {
                t.at(off, "channel.tls = \"none\" is only allowed for a loopback server; mail and passwords would cross the network in clear text");
            }
            SmtpTls::None
        }
        Some((other, off)) => {
            t.at(
                off,
                format!("channel.tls: {other:?} is not starttls, implicit or none"),
            );
            SmtpTls::StartTls
        }
    };
    let from = t.required("from", "an email channel", "\"gatewatch@example.com\"")?;
    if !from.get_ref().contains('@') {
        t.at(
            from.span().start,
            format!("channel.from: {:?} is not a mail address", from.get_ref()),
        );
        return None;
    }
    let to = match t.strings("to") {
        Some(list) if !list.get_ref().is_empty() => {
            for addr in list.get_ref() {
                if !addr.contains('@') {
                    t.at(
                        list.span().start,
                        format!("channel.to: {addr:?} is not a mail address"),
                    );
                }
            }
            list.into_inner()
        }
        _ => {
            t.error("an email channel needs to = [\"oncall@example.com\"]");
            return None;
        }
    };
    let username = t.string("username").map(Spanned::into_inner);
    let password = secret(t, "password");
    if password.is_some() && username.is_none() {
        t.error("a password needs username = \"…\"");
    }
    if password.is_some() && tls == SmtpTls::None {
        t.error("a password is only sent over TLS (tls = \"starttls\" or \"implicit\")");
    }
    let timeout = t.duration("timeout", Duration::from_secs(30));
    Some(Arc::new(EmailSettings {
        server,
        tls,
        from: from.into_inner(),
        to,
        username,
        password,
        timeout,
    }))
}

impl ChannelKind for EmailSettings {
    fn name(&self) -> &'static str {
        "email"
    }

    fn deliver(&self, ca: Option<&Path>) -> anyhow::Result<Box<dyn Deliver>> {
        Ok(Box::new(Email::new(self, ca)?))
    }

    fn check(&self, t: &Templates, v: &AlertView) -> anyhow::Result<()> {
        t.email(v).map(drop)
    }

    fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        self.password.iter().map(|s| ("password", s)).collect()
    }

    fn deadline(&self) -> Duration {
        self.timeout
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// An email channel ready to send.
pub struct Email {
    mailer: Box<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    /// The SMTP client for a channel's settings; `ca`: extra trusted roots.
    pub fn new(settings: &EmailSettings, ca: Option<&Path>) -> anyhow::Result<Email> {
        let EmailSettings {
            server,
            tls,
            from,
            to,
            username,
            password,
            timeout,
        } = settings;
        let (host, port) = server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .with_context(|| format!("server {server:?} is not host:port"))?;
        let params = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(host.to_string());
            if let Some(ca) = ca {
                let cert = Certificate::from_pem(&read_ca(ca)?)
                    .with_context(|| format!("ca_file {}", ca.display()))?;
                b = b.add_root_certificate(cert);
            }
            Ok(b.build()?)
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(*timeout));
        b = match tls {
            SmtpTls::StartTls => b.tls(Tls::Required(params()?)),
            SmtpTls::Implicit => b.tls(Tls::Wrapper(params()?)),
            SmtpTls::None => b.tls(Tls::None),
        };
        if let Some(user) = username {
            let pass = match password {
                Some(p) => p.read()?,
                None => String::new(),
            };
            b = b.credentials(Credentials::new(user.clone(), pass));
        }
        let mailbox = |a: &str| -> anyhow::Result<Mailbox> {
            a.parse::<Mailbox>()
                .map_err(|e| anyhow::anyhow!("{a:?} is not a mail address: {e}"))
        };
        Ok(Email {
            mailer: Box::new(b.build()),
            from: mailbox(from)?,
            to: to.iter().map(|a| mailbox(a)).collect::<Result<_, _>>()?,
        })
    }

    /// A message to every recipient, with its id (as `<id@host>`).
    fn builder(&self, subject: String, id: String) -> lettre::message::MessageBuilder {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(id))
            .user_agent(concat!("gatewatch/", env!("CARGO_PKG_VERSION")).into());
        for t in &self.to {
            b = b.to(t.clone());
        }
        b
    }

    /// Hands a mail to the SMTP server; a 5xx answer is permanent, anything else worth
    /// retrying.
    async fn send(&self, msg: Message) -> Result<(), SendError> {
        match self.mailer.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
                "the SMTP server refused: {e}"
            ))),
            Err(e) => Err(transient(format!("SMTP: {e}"))),
        }
    }
}

impl Deliver for Email {
    fn alert<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        v: &'a AlertView,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            let mail = forms.templates.email(v).map_err(permanent)?;
            let domain = mail_domain(forms.host);
            let id = |m: &str| format!("<{m}@{domain}>");
            let mut b = self.builder(mail.subject, id(&thread.message_id));
            if let Some(first) = thread.references.first() {
                b = b.in_reply_to(id(first)).references(
                    thread
                        .references
                        .iter()
                        .map(|r| id(r))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            let msg = b
                .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
                .map_err(|e| SendError::Permanent(format!("building the mail: {e}")))?;
            self.send(msg).await
        })
    }

    fn summary<'a>(
        &'a self,
        forms: &'a Forms<'a>,
        r: &'a Report,
        thread: &'a Thread,
    ) -> Sending<'a> {
        Box::pin(async move {
            use lettre::message::{Attachment, SinglePart, header::ContentType};
            let dir = forms.template_dir;
            let text = summary::render(r, "summary.txt.j2", dir, None).map_err(permanent)?;
            // The chart travels as an inline image, referred to by its Content-ID.
            let cid = format!("chart-{}", r.date);
            let html = summary::render(r, "summary.html.j2", dir, Some(&cid)).map_err(permanent)?;
            let png = crate::render::chart::hourly_png(r);
            let image_type = ContentType::parse("image/png").expect("a valid content type");
            let domain = mail_domain(forms.host);
            let msg = self
                .builder(
                    summary::subject(r),
                    format!("<{}@{domain}>", thread.message_id),
                )
                .multipart(
                    MultiPart::alternative()
                        .singlepart(SinglePart::plain(text))
                        .multipart(
                            MultiPart::related()
                                .singlepart(SinglePart::html(html))
                                .singlepart(Attachment::new_inline(cid).body(png, image_type)),
                        ),
                )
                .map_err(|e| SendError::Permanent(format!("building the mail: {e}")))?;
            self.send(msg).await
        })
    }
}

/// The host name as the right-hand side of a Message-ID.
fn mail_domain(host: &str) -> String {
    let d: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    if d.is_empty() { "gatewatch".into() } else { d }
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

pub(crate) fn is_loopback_host(server: &str) -> bool {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

//! The email channel (lettre): STARTTLS, implicit TLS or plain on loopback, AUTH, a text and
//! an HTML part; a resolved note threads under its alert (`In-Reply-To`, `References`); the
//! daily summary carries its chart inline. Every SMTP step has the channel's timeout.

use super::{
    ChannelKind, Deliver, Forms, SendError, Sending, Thread, permanent, read_ca, transient,
};
use crate::render::alert::AlertView;
use crate::render::summary::{self, Report};
use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;

/// TLS for SMTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// An email channel ready to send.
pub struct Email {
    mailer: Box<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    /// The SMTP client for a channel's settings; `ca`: extra trusted roots.
    pub fn new(kind: &ChannelKind, ca: Option<&Path>) -> anyhow::Result<Email> {
        let ChannelKind::Email {
            server,
            tls,
            from,
            to,
            username,
            password,
            timeout,
        } = kind
        else {
            anyhow::bail!("not an email channel");
        };
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

//! `[[channel]]`: where alerts go (console, email, webhooks), checked; secrets are never read
//! from the file.

use super::*;

/// Checks `[[channel]]` tables into `cfg.channels`; returns the names given.
pub(super) fn channels(
    p: &mut Problems<'_>,
    text: &str,
    raw: Vec<Spanned<RawChannel>>,
    cfg: &mut Config,
) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    for ch in raw {
        let at = ch.span().start;
        let ch = ch.into_inner();
        let name = ch.name.get_ref().clone();
        if !names.insert(name.clone()) {
            p.at(
                ch.name.span().start,
                format!("channel.name: {name:?} is used twice"),
            );
        }
        if let Some(pw) = &ch.password {
            p.at(
                pw.span().start,
                "channel.password: secrets are not read from the config file; use password_file (e.g. a systemd credential) or password_env",
            );
        }
        let lang = match &ch.lang {
            None => Lang::En,
            Some(l) => Lang::from_name(l.get_ref()).unwrap_or_else(|| {
                p.at(
                    l.span().start,
                    format!("channel.lang: {:?} is not \"en\" or \"zh\"", l.get_ref()),
                );
                Lang::En
            }),
        };
        let secret = |p: &mut Problems<'_>,
                      file: &Option<String>,
                      env: &Option<String>,
                      what: &str| match (file, env) {
            (Some(_), Some(_)) => {
                p.at(
                    at,
                    format!("channel: give {what}_file or {what}_env, not both"),
                );
                None
            }
            (Some(f), None) => Some(Secret::File(PathBuf::from(f))),
            (None, Some(e)) => Some(Secret::Env(e.clone())),
            (None, None) => None,
        };
        let kind = match ch.kind.get_ref().as_str() {
            "console" => ChannelKind::Console,
            "email" => {
                let Some(written) = ch.server.as_ref() else {
                    p.at(at, "channel: an email channel needs server = \"host:port\"");
                    continue;
                };
                let (server, url_tls) = match smtp_server(written.get_ref()) {
                    Ok(v) => v,
                    Err(e) => {
                        p.at(written.span().start, format!("channel.server: {e}"));
                        continue;
                    }
                };
                let tls = match ch
                    .tls
                    .as_ref()
                    .map(|t| (t.get_ref().as_str(), t.span().start))
                {
                    Some((written_tls, off))
                        if url_tls.is_some_and(|u| Some(u) != tls_by_name(written_tls)) =>
                    {
                        p.at(off, format!("channel.tls = {written_tls:?} contradicts the server's {:?}; smtps:// is implicit TLS (leave tls out, or write host:port)", written.get_ref()));
                        SmtpTls::StartTls
                    }
                    None => url_tls.unwrap_or(SmtpTls::StartTls),
                    Some(("starttls", _)) => SmtpTls::StartTls,
                    Some(("implicit", _)) => SmtpTls::Implicit,
                    Some(("none", off)) => {
                        if !is_loopback_host(&server) {
                            p.at(off, "channel.tls = \"none\" is only allowed for a loopback server; mail and passwords would cross the network in clear text");
                        }
                        SmtpTls::None
                    }
                    Some((other, off)) => {
                        p.at(
                            off,
                            format!("channel.tls: {other:?} is not starttls, implicit or none"),
                        );
                        SmtpTls::StartTls
                    }
                };
                let from = match &ch.from {
                    Some(f) if f.get_ref().contains('@') => f.get_ref().clone(),
                    Some(f) => {
                        p.at(
                            f.span().start,
                            format!("channel.from: {:?} is not a mail address", f.get_ref()),
                        );
                        continue;
                    }
                    None => {
                        p.at(
                            at,
                            "channel: an email channel needs from = \"gatewatch@example.com\"",
                        );
                        continue;
                    }
                };
                let to = match &ch.to {
                    Some(t) if !t.get_ref().is_empty() => {
                        for addr in t.get_ref() {
                            if !addr.contains('@') {
                                p.at(
                                    t.span().start,
                                    format!("channel.to: {addr:?} is not a mail address"),
                                );
                            }
                        }
                        t.get_ref().clone()
                    }
                    _ => {
                        p.at(
                            at,
                            "channel: an email channel needs to = [\"oncall@example.com\"]",
                        );
                        continue;
                    }
                };
                let password = secret(p, &ch.password_file, &ch.password_env, "password");
                if password.is_some() && ch.username.is_none() {
                    p.at(at, "channel: a password needs username = \"…\"");
                }
                if password.is_some() && tls == SmtpTls::None {
                    p.at(at, "channel: a password is only sent over TLS (tls = \"starttls\" or \"implicit\")");
                }
                let timeout = match &ch.timeout {
                    Some(t) => duration(p, t, "channel.timeout").unwrap_or(Duration::from_secs(30)),
                    None => Duration::from_secs(30),
                };
                ChannelKind::Email {
                    server,
                    tls,
                    from,
                    to,
                    username: ch.username.clone(),
                    password,
                    timeout,
                }
            }
            "webhook" => {
                let format = match ch
                    .format
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
                        p.at(off, format!("channel.format: {other:?} is not json, slack, teams, discord, alertmanager or pagerduty"));
                        WebhookFormat::Json
                    }
                };
                let url = match &ch.url {
                    Some(u)
                        if u.get_ref().starts_with("https://")
                            || u.get_ref().starts_with("http://") =>
                    {
                        u.get_ref().clone()
                    }
                    Some(u) => {
                        p.at(
                            u.span().start,
                            format!(
                                "channel.url: {:?} is not an http:// or https:// address",
                                u.get_ref()
                            ),
                        );
                        continue;
                    }
                    None => {
                        p.at(at, "channel: a webhook channel needs url = \"https://…\"");
                        continue;
                    }
                };
                let timeout = match &ch.timeout {
                    Some(t) => duration(p, t, "channel.timeout").unwrap_or(Duration::from_secs(10)),
                    None => Duration::from_secs(10),
                };
                ChannelKind::Webhook {
                    format,
                    url,
                    secret: secret(p, &ch.secret_file, &ch.secret_env, "secret"),
                    timeout,
                }
            }
            other => {
                p.at(
                    ch.kind.span().start,
                    format!("channel.kind: {other:?} is not email, webhook or console"),
                );
                continue;
            }
        };
        if format_is_pagerduty(&kind)
            && !matches!(
                &kind,
                ChannelKind::Webhook {
                    secret: Some(_),
                    ..
                }
            )
        {
            p.at(
                at,
                "channel: a pagerduty channel needs its routing key in secret_file or secret_env",
            );
        }
        cfg.lines
            .channels
            .push(crate::engine::error::line_of(text, at));
        cfg.channels.push(ChannelConfig {
            name,
            lang,
            kind,
            ca_file: ch.ca_file.map(PathBuf::from),
            template_dir: ch.template_dir.map(PathBuf::from),
        });
    }
    names
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

fn is_loopback_host(server: &str) -> bool {
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn format_is_pagerduty(k: &ChannelKind) -> bool {
    matches!(
        k,
        ChannelKind::Webhook {
            format: WebhookFormat::Pagerduty,
            ..
        }
    )
}

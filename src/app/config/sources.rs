//! `[[source]]`: the logs to follow (a file, a glob, an ALB folder or bucket) and the syslog
//! listeners.

use super::*;

/// Checks `[[source]]` tables into `cfg.sources` (and their lines).
pub(super) fn sources(
    p: &mut Problems<'_>,
    text: &str,
    raw: Vec<Spanned<RawSource>>,
    cfg: &mut Config,
) {
    for s in raw {
        let at = s.span().start;
        let s = s.into_inner();
        match s
            .kind
            .as_ref()
            .map(|k| (k.get_ref().as_str(), k.span().start))
        {
            None => {}
            Some(("kafka", _)) => {
                if let Some(c) = super::kafka::source(p, text, s, at, cfg) {
                    cfg.sources.push(c);
                }
                continue;
            }
            Some((other, at)) => {
                p.at(
                    at,
                    format!("source.kind: {other:?} is not \"kafka\" (files, containers and syslog listeners are told apart by format = …, without kind)"),
                );
                continue;
            }
        }
        if let Some(k) = super::kafka::stray(&s) {
            p.at(k.1, format!("source.{} is only for kind = \"kafka\"", k.0));
        }
        let Some(format) = &s.format else {
            p.at(at, "source: format is missing (nginx_access, nginx_error, haproxy, alb, …, container or syslog)");
            continue;
        };
        let fmt_name = format.get_ref().as_str();
        let kind = match (fmt_name, &s.path, &s.listen) {
            ("syslog", _, Some(listen)) => {
                if let Err(e) = check_syslog_listen(listen.get_ref(), s.allow_remote) {
                    p.at(listen.span().start, format!("source.listen: {e}"));
                }
                SourceKind::Syslog {
                    listen: listen.get_ref().clone(),
                }
            }
            ("syslog", _, None) => {
                p.at(at, "source: a syslog source needs listen = \"udp://127.0.0.1:5514\" (or unix:///path)");
                continue;
            }
            ("container", Some(path), None) => {
                let proxy = match s
                    .proxy
                    .as_ref()
                    .map(|v| (v.get_ref().as_str(), v.span().start))
                {
                    None => Proxy::Nginx,
                    Some((name, at)) => match Proxy::from_name(name) {
                        Some(proxy) => proxy,
                        None => {
                            p.at(
                                at,
                                format!(
                                    "source.proxy: {name:?} is not one of {}",
                                    Proxy::ALL.map(Proxy::as_str).join(", ")
                                ),
                            );
                            continue;
                        }
                    },
                };
                SourceKind::Container {
                    path: path.get_ref().clone(),
                    proxy,
                }
            }
            (_, Some(path), None) => match Format::from_name(fmt_name) {
                Some(format) => SourceKind::Log {
                    path: path.get_ref().clone(),
                    format,
                },
                None => {
                    p.at(
                        format.span().start,
                        format!(
                            "source.format: {fmt_name:?} is not one of {}, container, syslog",
                            Format::ALL.map(Format::as_str).join(", ")
                        ),
                    );
                    continue;
                }
            },
            (_, _, Some(_)) => {
                p.at(
                    at,
                    "source: listen is only for format = \"syslog\"; log files take path",
                );
                continue;
            }
            (_, None, None) => {
                p.at(at, "source: path is missing");
                continue;
            }
        };
        if let Some(v) = &s.proxy
            && fmt_name != "container"
        {
            p.at(
                v.span().start,
                "source.proxy is only for format = \"container\"",
            );
        }
        let nginx = fmt_name == "nginx_access"
            || matches!(
                kind,
                SourceKind::Container {
                    proxy: Proxy::Nginx,
                    ..
                }
            );
        let apache = fmt_name == "apache_access"
            || matches!(
                kind,
                SourceKind::Container {
                    proxy: Proxy::Apache,
                    ..
                }
            );
        let log_format = match &s.log_format {
            Some(lf) if !nginx && !apache => {
                p.at(
                    lf.span().start,
                    "source.log_format is only for format = \"nginx_access\" or \"apache_access\" (or \"container\" with proxy = \"nginx\" or \"apache\")",
                );
                None
            }
            Some(lf) if apache => {
                match crate::engine::parse::apache_access::log_format(lf.get_ref()) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        p.at(lf.span().start, format!("source.{e}"));
                        None
                    }
                }
            }
            Some(lf) => nginx_log_format(p, lf),
            None => None,
        };
        let timezone = timezone(p, &s.timezone);
        let start_at = start_at(p, &s.start_at);
        let s3 = matches!(&kind, SourceKind::Log { path, format: Format::Alb } if path.starts_with("s3://"));
        if let Some(e) = &s.endpoint
            && !s3
        {
            p.at(
                e.span().start,
                "source.endpoint is only for ALB logs read from s3://",
            );
        }
        if s.allow_remote.is_some() && !matches!(kind, SourceKind::Syslog { .. }) {
            p.at(
                at,
                "source.allow_remote is only for format = \"syslog\" listeners",
            );
        }
        let path_at = s
            .path
            .as_ref()
            .or(s.listen.as_ref())
            .map_or(at, |p| p.span().start);
        let line = crate::engine::error::line_of(text, path_at);
        // The same log twice would count every line twice.
        if let Some(i) = cfg.sources.iter().position(|o| o.kind.same_input(&kind)) {
            p.at(
                path_at,
                format!(
                    "source: {} is already a source at line {}; every line would be counted twice (remove one)",
                    kind.input(),
                    cfg.lines.sources[i]
                ),
            );
        }
        cfg.lines.sources.push(line);
        cfg.sources.push(SourceConfig {
            kind,
            log_format,
            timezone,
            start_at,
            endpoint: s.endpoint.map(Spanned::into_inner),
            region: s.region,
        });
    }
}

/// An nginx `log_format` as nginx.conf writes it.
pub(super) fn nginx_log_format(p: &mut Problems<'_>, lf: &Spanned<String>) -> Option<LogFormat> {
    match LogFormat::from_directive(lf.get_ref()) {
        Ok(f) => Some(f),
        Err(e) => {
            p.at(lf.span().start, format!("source.{e}"));
            None
        }
    }
}

/// A source's `timezone` (the local one by default).
pub(super) fn timezone(p: &mut Problems<'_>, tz: &Option<Spanned<String>>) -> Zone {
    match tz {
        Some(tz) => match tz.get_ref().parse::<Zone>() {
            Ok(z) => z,
            Err(e) => {
                p.at(tz.span().start, format!("source.timezone: {e}"));
                Zone::Local
            }
        },
        None => Zone::Local,
    }
}

/// A source's `start_at` (`"end"` by default).
pub(super) fn start_at(p: &mut Problems<'_>, v: &Option<Spanned<String>>) -> StartAt {
    match v.as_ref().map(|v| (v.get_ref().as_str(), v.span().start)) {
        None | Some(("end", _)) => StartAt::End,
        Some(("beginning", _)) => StartAt::Beginning,
        Some((other, at)) => {
            p.at(
                at,
                format!("source.start_at: {other:?} is not \"end\" or \"beginning\""),
            );
            StartAt::End
        }
    }
}

/// Checks a syslog listener's address: a unix socket path, or a UDP address on loopback unless
/// `allow_remote`.
fn check_syslog_listen(listen: &str, allow_remote: Option<bool>) -> Result<(), String> {
    if let Some(path) = listen.strip_prefix("unix://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!(
                "{listen:?}: a unix socket needs an absolute path, e.g. \"unix:///run/gatewatch/haproxy.sock\""
            ))
        };
    }
    let addr = listen.strip_prefix("udp://").unwrap_or(listen);
    match addr.parse::<SocketAddr>() {
        Err(_) => Err(format!(
            "{listen:?} is not an address such as \"udp://127.0.0.1:5514\" or \"unix:///run/gatewatch/haproxy.sock\""
        )),
        Ok(a) if !a.ip().is_loopback() && allow_remote != Some(true) => Err(format!(
            "{a} can be reached from other machines, and anyone who can send to it can make gatewatch alert; listen on 127.0.0.1 or a unix socket, or set allow_remote = true on this source if you mean it"
        )),
        Ok(_) => Ok(()),
    }
}

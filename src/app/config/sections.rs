//! The single tables: `[state]`, `[http]`, `[detect]`, `[patterns]`, `[alerts]`,
//! `[summary]`, and the `[[maintenance]]` windows.

use super::*;

/// `[state]` and `[http]`.
pub(super) fn state_and_http(
    text: &str,
    p: &mut Problems<'_>,
    state: Option<RawState>,
    http: Option<RawHttp>,
    cfg: &mut Config,
) {
    if let Some(state) = state {
        if let Some(d) = state.dir {
            cfg.state_dir = PathBuf::from(d);
        }
        if let Some(v) = &state.check_every
            && let Some(d) = duration(p, v, "state.check_every")
        {
            if d < Duration::from_secs(1) {
                p.at(v.span().start, "state.check_every must be at least 1s");
            }
            cfg.state_check = d;
        }
    }
    if let Some(http) = http {
        match http.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if !addr.ip().is_loopback() && http.allow_remote != Some(true) => p.at(
                http.listen.span().start,
                format!(
                    "http.listen: {addr} can be reached from other machines, and the status page and /metrics have no authentication; listen on 127.0.0.1 (behind a proxy that authenticates), or set allow_remote = true in [http] if you mean it"
                ),
            ),
            Ok(addr) => cfg.http_listen = Some(addr),
            Err(_) => p.at(
                http.listen.span().start,
                format!(
                    "http.listen: {:?} is not an address such as \"127.0.0.1:9502\"",
                    http.listen.get_ref()
                ),
            ),
        }
        links(text, p, &http, cfg);
    }
}

/// `[http] public_url`, `link_key_file` / `link_key_env`, `link_ttl`.
fn links(text: &str, p: &mut Problems<'_>, http: &RawHttp, cfg: &mut Config) {
    let key = match (&http.link_key_file, &http.link_key_env) {
        (Some(f), None) => Some(Secret::File(PathBuf::from(f.get_ref()))),
        (None, Some(e)) => Some(Secret::Env(e.get_ref().clone())),
        (Some(f), Some(_)) => {
            p.at(
                f.span().start,
                "http: link_key_file and link_key_env both set; keep one",
            );
            None
        }
        (None, None) => None,
    };
    let Some(url) = &http.public_url else {
        if let Some(at) = http.link_key_file.as_ref().or(http.link_key_env.as_ref()) {
            p.at(
                at.span().start,
                "http: a link key without public_url makes no links; set public_url (the address people reach the status server at) or remove the key",
            );
        }
        return;
    };
    cfg.lines.links = crate::engine::error::line_of(text, url.span().start);
    let u = url.get_ref();
    let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
    let host = u.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || host.starts_with('/') || u.contains(['?', '#', ' ']) {
        p.at(
            url.span().start,
            format!(
                "http.public_url: {u:?} is not an address such as \"https://gatewatch.example.com\" (http or https, no query)"
            ),
        );
        return;
    }
    let Some(key) = key else {
        p.at(
            url.span().start,
            "http.public_url: the links need a key: set link_key_file (a file of at least 16 random bytes, e.g. made with `head -c 32 /dev/urandom | base64`) or link_key_env",
        );
        return;
    };
    let mut ttl = Duration::from_secs(crate::render::links::DEFAULT_TTL_SECS);
    if let Some(v) = &http.link_ttl
        && let Some(d) = duration(p, v, "http.link_ttl")
    {
        let keep = Duration::from_millis(crate::store::outbox::KEEP_MS as u64);
        if d < Duration::from_secs(60) || d > keep {
            p.at(
                v.span().start,
                "http.link_ttl must be between 1m and 30days (the state remembers used links for 30 days)",
            );
        }
        ttl = d;
    }
    cfg.links = Some(LinksConfig {
        public_url: u.trim_end_matches('/').to_string(),
        key,
        ttl,
    });
}

/// `[detect]`: the burst detector and the join.
pub(super) fn detect(p: &mut Problems<'_>, d: Option<RawDetect>, cfg: &mut Config) {
    if let Some(d) = d {
        let c = &mut cfg.detect;
        if let Some(w) = &d.window
            && let Some(v) = duration(p, w, "detect.window")
        {
            if v < Duration::from_secs(1) {
                p.at(w.span().start, "detect.window must be at least 1s");
            }
            c.window_ms = v.as_millis() as i64;
        }
        if let Some(q) = &d.quiet
            && let Some(v) = duration(p, q, "detect.quiet")
        {
            c.quiet_ms = v.as_millis() as i64;
        }
        if let Some(v) = &d.open_failures {
            if *v.get_ref() == 0 {
                p.at(v.span().start, "detect.open_failures must be at least 1");
            }
            c.open_failures = *v.get_ref();
        }
        if let Some(v) = &d.close_failures {
            c.close_failures = *v.get_ref();
        }
        if let Some(v) = &d.open_share {
            if !(0.0..=1.0).contains(v.get_ref()) {
                p.at(
                    v.span().start,
                    "detect.open_share is a fraction from 0.0 to 1.0 (0.2 for 20 %)",
                );
            }
            c.open_share = *v.get_ref();
        }
        if let Some(v) = &d.max_upstreams {
            if *v.get_ref() == 0 {
                p.at(v.span().start, "detect.max_upstreams must be at least 1");
            }
            c.max_upstreams = *v.get_ref();
        }
        if c.close_failures > c.open_failures {
            let at = d
                .close_failures
                .as_ref()
                .or(d.open_failures.as_ref())
                .map_or(0, |v| v.span().start);
            p.at(at, format!(
                "detect.close_failures ({}) is above open_failures ({}): an incident would close while still bursting",
                c.close_failures, c.open_failures
            ));
        }
        if let Some(v) = &d.join_before
            && let Some(v) = duration(p, v, "detect.join_before")
        {
            cfg.join.before_ms = v.as_millis() as i64;
        }
        if let Some(v) = &d.join_after
            && let Some(v) = duration(p, v, "detect.join_after")
        {
            cfg.join.after_ms = v.as_millis() as i64;
        }
    }
}

/// `[patterns]`.
pub(super) fn patterns(text: &str, pat: Option<RawPatterns>, cfg: &mut Config) {
    if let Some(pat) = pat {
        cfg.lines.patterns = crate::engine::error::line_of(text, pat.dirs.span().start);
        cfg.pattern_dirs = pat
            .dirs
            .into_inner()
            .into_iter()
            .map(PathBuf::from)
            .collect();
    }
}

/// `[alerts]`.
pub(super) fn alerts(p: &mut Problems<'_>, a: Option<RawAlerts>, cfg: &mut Config) {
    if let Some(a) = a {
        let c = &mut cfg.alerts;
        c.host = a.host;
        c.template_dir = a.template_dir.map(PathBuf::from);
        if let Some(v) = &a.group_wait
            && let Some(d) = duration(p, v, "alerts.group_wait")
        {
            c.group_wait = d;
        }
        if let Some(v) = &a.renotify {
            c.renotify = if matches!(v.get_ref().as_str(), "off" | "never" | "0") {
                None
            } else {
                duration(p, v, "alerts.renotify")
            };
            if c.renotify.is_some_and(|d| d < Duration::from_secs(1)) {
                p.at(
                    v.span().start,
                    "alerts.renotify must be at least 1s (or \"off\")",
                );
            }
        }
        if let Some(v) = &a.give_up_after
            && let Some(d) = duration(p, v, "alerts.give_up_after")
        {
            c.give_up_after = d;
        }
        if let Some(v) = &a.retry_min
            && let Some(d) = duration(p, v, "alerts.retry_min")
        {
            c.retry_min = d.max(Duration::from_millis(100));
        }
        if let Some(v) = &a.retry_max
            && let Some(d) = duration(p, v, "alerts.retry_max")
        {
            if d < c.retry_min {
                p.at(
                    v.span().start,
                    "alerts.retry_max must not be below retry_min",
                );
            }
            c.retry_max = d;
        }
    }
}

/// `[summary]`; returns where its `channels` are written, and checks they exist.
pub(super) fn summary(
    p: &mut Problems<'_>,
    sm: Option<RawSummary>,
    names: &std::collections::HashSet<String>,
    cfg: &mut Config,
) {
    let mut summary_channels_at = 0;
    if let Some(sm) = sm {
        if let Some(at) = &sm.at {
            cfg.summary.at = clock_minutes(at.get_ref()).filter(|m| *m < 24 * 60);
            if cfg.summary.at.is_none() {
                p.at(
                    at.span().start,
                    format!(
                        "summary.at: {:?} is not a time of day such as \"08:00\"",
                        at.get_ref()
                    ),
                );
            }
        }
        if let Some(tz) = &sm.timezone {
            match tz.get_ref().parse::<Zone>() {
                Ok(z) => cfg.summary.zone = z,
                Err(e) => p.at(tz.span().start, format!("summary.timezone: {e}")),
            }
        }
        if let Some(chs) = sm.channels {
            summary_channels_at = chs.span().start;
            cfg.summary.channels = chs.into_inner();
        }
    }
    for name in &cfg.summary.channels {
        // Channels named in the file but refused for another error were reported already.
        if !names.contains(name) {
            p.at(
                summary_channels_at,
                format!("summary.channels: there is no channel named {name:?}"),
            );
        }
    }
}

/// `[[maintenance]]` windows.
pub(super) fn maintenance(
    p: &mut Problems<'_>,
    raw: Vec<Spanned<RawMaintenance>>,
    cfg: &mut Config,
) {
    for m in raw {
        let at = m.span().start;
        let m = m.into_inner();
        let when = match (&m.from, &m.until, &m.start, &m.end) {
            (Some(from), Some(until), None, None) => {
                let t = |p: &mut Problems<'_>, v: &Spanned<String>, key: &str| {
                    match chrono::DateTime::parse_from_rfc3339(v.get_ref()) {
                        Ok(t) => Some(t.timestamp_millis()),
                        Err(_) => {
                            p.at(v.span().start, format!("maintenance.{key}: {:?} is not a time such as \"2026-12-01T02:00:00+01:00\"", v.get_ref()));
                            None
                        }
                    }
                };
                match (t(p, from, "from"), t(p, until, "until")) {
                    (Some(from_ms), Some(until_ms)) => {
                        if until_ms <= from_ms {
                            p.at(until.span().start, "maintenance.until must be after from");
                        }
                        MaintenanceTime::Once { from_ms, until_ms }
                    }
                    _ => continue,
                }
            }
            (None, None, Some(start), Some(end)) => {
                let mins = |p: &mut Problems<'_>, v: &Spanned<String>, key: &str| {
                    clock_minutes(v.get_ref()).or_else(|| {
                        p.at(
                            v.span().start,
                            format!(
                                "maintenance.{key}: {:?} is not a time of day such as \"02:30\"",
                                v.get_ref()
                            ),
                        );
                        None
                    })
                };
                let (Some(s), Some(e)) = (mins(p, start, "start"), mins(p, end, "end")) else {
                    continue;
                };
                const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let days = match &m.days {
                    None => (0..7).collect(),
                    Some(d) => {
                        let mut out = Vec::new();
                        for name in d.get_ref() {
                            let lower = name.to_ascii_lowercase();
                            match DAYS.iter().position(|x| lower.starts_with(x)) {
                                Some(i) => out.push(i as u32),
                                None => p.at(
                                    d.span().start,
                                    format!(
                                        "maintenance.days: {name:?} is not a day (mon, tue, … sun)"
                                    ),
                                ),
                            }
                        }
                        out
                    }
                };
                let zone = match &m.timezone {
                    Some(tz) => match tz.get_ref().parse::<Zone>() {
                        Ok(z) => z,
                        Err(e) => {
                            p.at(tz.span().start, format!("maintenance.timezone: {e}"));
                            continue;
                        }
                    },
                    None => Zone::Local,
                };
                MaintenanceTime::Weekly {
                    days,
                    start: s,
                    end: e,
                    zone,
                }
            }
            _ => {
                p.at(at, "maintenance: give start and end (\"02:00\", every day or on days = [\"sun\"]), or from and until (RFC 3339 times)");
                continue;
            }
        };
        cfg.maintenance.push(Maintenance {
            upstream: m.upstream.unwrap_or_else(|| "*".into()),
            entry: m.entry,
            when,
            reason: m.reason.unwrap_or_else(|| "maintenance".into()),
        });
    }
}

/// `HH:MM` as minutes after midnight.
fn clock_minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

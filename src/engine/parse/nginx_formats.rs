//! The nginx access-log formats people ship, by name: the built-in `log_format`s gatewatch
//! recognises, each with where it comes from, and the choice of the one that reads a file's
//! first lines.

use super::nginx_access::{AccessParser, Escape, LogFormat};
use crate::engine::event::Cause;
use crate::engine::time::ZoneClock;

/// nginx's predefined `combined` format.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// Debian's and the nginx docs' customary `main` format: `combined` plus X-Forwarded-For.
pub const MAIN: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;

/// The format the README recommends: `combined` plus the virtual host and every upstream field
/// gatewatch uses to name a cause without the error log.
pub const GATEWATCH: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $host $upstream_addr $upstream_status $upstream_connect_time $upstream_header_time $upstream_response_time $request_time"#;

/// ingress-nginx's default `upstreaminfo` format.
pub const UPSTREAMINFO: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;

/// ingress-nginx's `upstreaminfo` of 0.20 and 0.21 (the client written twice, `$req_id` last).
pub const UPSTREAMINFO_0_20: &str = r#"$the_real_ip - [$the_real_ip] - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;

/// ingress-nginx's `upstreaminfo` before `$req_id` (0.10 to 0.19).
pub const UPSTREAMINFO_0_10: &str = r#"$the_real_ip - [$the_real_ip] - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status"#;

/// ingress-nginx's first `upstreaminfo` (0.9).
pub const UPSTREAMINFO_0_9: &str = r#"[$the_real_ip] - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status"#;

/// Nginx Proxy Manager's `proxy` format (its `conf.d/include/log-proxy.conf`), which its proxy
/// hosts write to `proxy-host-N_access.log`; `$server` is the host NPM forwards to.
pub const NPM_PROXY: &str = r#"[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme $host "$request_uri" [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] [Sent-to $server] "$http_user_agent" "$http_referer""#;

/// Nginx Proxy Manager's `standard` format, for its redirection and 404 hosts.
pub const NPM_STANDARD: &str = r#"[$time_local] $status - $request_method $scheme $host "$request_uri" [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] "$http_user_agent" "$http_referer""#;

/// The formats people ship, by name: `log_format = "npm"` in a `[[source]]` (or `scan
/// --log-format npm`) takes one, and they are tried, in this order, when a file's format is
/// recognised automatically (the one that reads the most sample lines wins; two that read them
/// alike but differently are refused). Sources: nginx's documentation (`combined`), Debian's
/// and the nginx image's `nginx.conf` (`main`), ingress-nginx's
/// `internal/ingress/controller/config/config.go` across its releases (`upstreaminfo`), Nginx
/// Proxy Manager's `docker/rootfs/etc/nginx/conf.d/include/log-proxy.conf` (`npm`,
/// `npm-standard`), this README (`gatewatch`).
pub const KNOWN: [(&str, &str); 9] = [
    ("gatewatch", GATEWATCH),
    ("upstreaminfo", UPSTREAMINFO),
    ("upstreaminfo-0.20", UPSTREAMINFO_0_20),
    ("upstreaminfo-0.10", UPSTREAMINFO_0_10),
    ("upstreaminfo-0.9", UPSTREAMINFO_0_9),
    ("npm", NPM_PROXY),
    ("npm-standard", NPM_STANDARD),
    ("main", MAIN),
    ("combined", COMBINED),
];

/// Apache httpd's `common` (`%h %l %u %t "%r" %>s %b`), in nginx's variables.
pub const APACHE_COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// Apache httpd's `vhost_combined` (`%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i"
/// "%{User-Agent}i"`), Debian's `other_vhosts_access.log`, in nginx's variables.
pub const APACHE_VHOST_COMBINED: &str = r#"$server_name:$server_port $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// Apache httpd's predefined `LogFormat`s (its `httpd.conf` and Debian's `apache2.conf`), tried
/// in this order on an Apache access log. `combined` (`%h %l %u %t "%r" %>s %O "%{Referer}i"
/// "%{User-Agent}i"`) is nginx's `combined`, field for field.
pub const APACHE_KNOWN: [(&str, &str); 3] = [
    ("combined", COMBINED),
    ("vhost_combined", APACHE_VHOST_COMBINED),
    ("common", APACHE_COMMON),
];

/// Recognises which known layout fits sample lines best: the JSON layout, or the known
/// `log_format` that parses the most lines, preferring one that explains whole lines. When two
/// fit equally well but read the lines differently (another status, upstream, time or cause),
/// it refuses to choose: the parser it returns refuses every line, naming both.
pub fn recognise(samples: &[&[u8]], zone: &ZoneClock) -> Option<AccessParser> {
    let mut candidates: Vec<AccessParser> = vec![AccessParser::json(zone.clone())];
    candidates.extend(compile_known(&KNOWN, zone));
    recognise_among(samples, candidates)
}

/// The Apache httpd `LogFormat` that reads sample lines best, among Apache's own
/// ([`super::nginx_formats::APACHE_KNOWN`]); `combined` when none reads any.
pub fn recognise_apache(samples: &[&[u8]], zone: &ZoneClock) -> AccessParser {
    recognise_apache_lines(samples, zone)
        .unwrap_or_else(|| compile_known(&APACHE_KNOWN[..1], zone).remove(0))
}

/// The Apache `LogFormat` that reads sample lines best, or `None` when none reads any.
pub fn recognise_apache_lines(samples: &[&[u8]], zone: &ZoneClock) -> Option<AccessParser> {
    recognise_among(samples, compile_known(&APACHE_KNOWN, zone))
}

pub(super) fn compile_known(known: &[(&str, &str)], zone: &ZoneClock) -> Vec<AccessParser> {
    known
        .iter()
        .map(|(name, text)| {
            let format =
                LogFormat::compile(name, Escape::Default, text).expect("built-in formats compile");
            AccessParser::new(format, zone.clone())
        })
        .collect()
}

/// What a candidate made of the samples: how many it parsed, how many whole, and its reading
/// of each (status, upstream, time, cause), for telling real ties from harmless ones.
type Reading = (
    usize,
    usize,
    Vec<Option<(Option<u16>, Option<Vec<u8>>, Option<i64>, Cause)>>,
);

pub(super) fn recognise_among(
    samples: &[&[u8]],
    candidates: Vec<AccessParser>,
) -> Option<AccessParser> {
    let mut scored: Vec<(Reading, AccessParser)> = Vec::new();
    for mut p in candidates {
        let mut parsed = 0;
        let mut exact = 0;
        let mut readings = Vec::with_capacity(samples.len());
        for line in samples {
            // A line without a status is not an access line of this layout (docker's and
            // Traefik's JSON lines are JSON objects too).
            match p.parse_exact(line) {
                Ok((ev, whole)) if ev.status.is_some() => {
                    parsed += 1;
                    exact += whole as usize;
                    readings.push(Some((
                        ev.status,
                        ev.upstream(line).map(<[u8]>::to_vec),
                        ev.time.map(|t| t.ms),
                        ev.cause,
                    )));
                }
                _ => readings.push(None),
            }
        }
        if parsed > 0 {
            scored.push(((parsed, exact, readings), p));
        }
    }
    let best = scored.iter().map(|((p, e, _), _)| (*p, *e)).max()?;
    let mut top = scored.into_iter().filter(|((p, e, _), _)| (*p, *e) == best);
    let (first_reading, first) = top.next()?;
    let rivals: Vec<String> = top
        .filter(|(r, _)| r.2 != first_reading.2)
        .map(|(_, p)| p.layout_name().to_string())
        .collect();
    if rivals.is_empty() {
        return Some(first);
    }
    let names = format!(
        "ambiguous: {} or {}",
        first.layout_name(),
        rivals.join(" or ")
    );
    Some(AccessParser::ambiguous(names, first.zone().clone()))
}

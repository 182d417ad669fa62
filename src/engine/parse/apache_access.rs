//! Apache httpd's access-log `LogFormat`s, read by the nginx access-log reader: a `LogFormat`
//! is translated into the nginx variables that mean the same (`%h` is `$remote_addr`, `%t` is
//! `[$time_local]`, `%>s` is `$status`), so the same allocation-free reader, and the same
//! checks, serve both.

use super::nginx_access::{Escape, FormatError, LogFormat};
use super::nginx_formats::APACHE_KNOWN;

/// A `LogFormat` given as in httpd's configuration: a predefined name (`combined`, `common`,
/// `vhost_combined`), the format string (`%h %l %u %t \"%r\" %>s %b`), or the whole directive
/// (`LogFormat "%h …" mine`).
pub fn log_format(text: &str) -> Result<LogFormat, FormatError> {
    let t = text.trim();
    if !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return match APACHE_KNOWN.iter().find(|(n, _)| *n == t) {
            Some((name, format)) => LogFormat::compile(name, Escape::Default, format),
            None => Err(FormatError(format!(
                "{t:?} is not one of Apache's predefined formats ({}); give the LogFormat string as written in the httpd configuration",
                APACHE_KNOWN.map(|(n, _)| n).join(", ")
            ))),
        };
    }
    let (name, body) = match t.strip_prefix("LogFormat") {
        Some(rest) => {
            let rest = rest.trim_start();
            let body = rest
                .strip_prefix('"')
                .and_then(|r| closing_quote(r).map(|end| (&r[..end], r[end + 1..].trim())))
                .ok_or_else(|| {
                    FormatError(format!("the LogFormat string of {t:?} is not quoted"))
                })?;
            (if body.1.is_empty() { "apache" } else { body.1 }, body.0)
        }
        None => (
            "apache",
            t.strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(t),
        ),
    };
    LogFormat::compile(name, Escape::Default, &to_nginx(body)?)
}

/// The index of the `"` that ends a LogFormat string (`\"` does not).
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Translates httpd's `%` directives into nginx variables. Works on bytes: the text between
/// directives is copied as it is (whatever its encoding).
fn to_nginx(format: &str) -> Result<String, FormatError> {
    let b = format.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(format.len() * 2);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'"') => out.push(b'"'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'n') => out.push(b'\n'),
                    Some(&c) => out.extend_from_slice(&[b'\\', c]),
                    None => out.push(b'\\'),
                }
                i += 2;
            }
            b'%' => {
                let start = i;
                i += 1;
                // Conditions (`%400,501{…}i`, `%!200s`) and `<` / `>` (original / final).
                while i < b.len()
                    && (b[i].is_ascii_digit() || matches!(b[i], b',' | b'!' | b'<' | b'>'))
                {
                    i += 1;
                }
                let arg = if b.get(i) == Some(&b'{') {
                    let close = memchr::memchr(b'}', &b[i..]).ok_or_else(|| {
                        FormatError(format!("unclosed %{{ at byte {start} of {format:?}"))
                    })?;
                    // Between two ASCII bytes: a whole string.
                    let arg = format.get(i + 1..i + close).unwrap_or("");
                    i += close + 1;
                    Some(arg)
                } else {
                    None
                };
                let Some(&d) = b.get(i) else {
                    return Err(FormatError(format!(
                        "{format:?} ends in the middle of a % directive"
                    )));
                };
                i += 1;
                // `%{Name}^ti` / `%{Name}^to`: a request or response trailer.
                if d == b'^' {
                    i = (i + 2).min(b.len());
                }
                let whole = String::from_utf8_lossy(&b[start..i.min(b.len())]);
                out.extend_from_slice(directive(d, arg, &whole)?.as_bytes());
            }
            b'$' => {
                // A literal `$` would start a variable in nginx's syntax.
                return Err(FormatError(format!(
                    "a literal $ in the LogFormat {format:?} is not supported"
                )));
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| FormatError(format!("the LogFormat {format:?} is not UTF-8 text")))
}

fn directive(d: u8, arg: Option<&str>, whole: &str) -> Result<String, FormatError> {
    let var = |name: &str| Ok(format!("${{{name}}}"));
    match (d, arg) {
        (b'h' | b'a', _) => var("remote_addr"),
        (b'l', None) => var("remote_ident"),
        (b'u', None) => var("remote_user"),
        (b't', None) => Ok("[${time_local}]".into()),
        (b'r', None) => var("request"),
        (b's', None) => var("status"),
        (b'b' | b'B' | b'O' | b'I' | b'S', None) => var("body_bytes_sent"),
        (b'v' | b'V', None) => var("server_name"),
        (b'p', _) => var("server_port"),
        (b'%', None) => Ok("%".into()),
        (b'i', Some(h)) => var(&format!(
            "http_{}",
            h.to_ascii_lowercase().replace('-', "_")
        )),
        // The balancer member that served the request (mod_proxy_balancer): the upstream.
        (b'e', Some("BALANCER_WORKER_NAME")) => var("server"),
        // Other values gatewatch does not read: environment, notes, cookies, times taken,
        // process ids, the query, the method, the protocol...
        (
            b'e' | b'n' | b'o' | b'C' | b'D' | b'T' | b'P' | b'q' | b'm' | b'H' | b'U' | b'f'
            | b'k' | b'L' | b'R' | b'X' | b'A' | b'^',
            _,
        ) => var(&format!("apache_{}", (d as char).to_ascii_lowercase())),
        (b't', Some(_)) => Err(FormatError(format!(
            "{whole}: gatewatch reads the time only as %t (the default [day/month/year:time zone])"
        ))),
        _ => Err(FormatError(format!(
            "{whole} is not an httpd LogFormat directive gatewatch knows"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::Cause;
    use crate::engine::parse::nginx_access::AccessParser;
    use crate::engine::time::{Zone, ZoneClock};

    fn read(format: &str, line: &str) -> (Option<u16>, Cause, String, String) {
        let f = log_format(format).unwrap_or_else(|e| panic!("{format}: {e}"));
        let mut p = AccessParser::new(f, ZoneClock::new(Zone::Utc));
        let ev = p
            .parse(line.as_bytes())
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        let s = |x: Option<&[u8]>| String::from_utf8_lossy(x.unwrap_or(b"")).into_owned();
        (
            ev.status,
            ev.cause,
            s(ev.client(line.as_bytes())),
            s(ev.vhost(line.as_bytes())),
        )
    }

    #[test]
    fn predefined_and_custom_formats_read_httpd_lines() {
        // A line of a real httpd 2.4.71 (Debian 12, `combined` with %O).
        let line = r#"127.0.0.1 - - [06/Dec/2026:08:22:30 +0000] "GET /down HTTP/1.1" 503 529 "-" "curl/7.88.1""#;
        assert_eq!(
            read("combined", line),
            (Some(503), Cause::Other5xx, "127.0.0.1".into(), "".into())
        );
        let directive =
            r#"LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" combined"#;
        assert_eq!(read(directive, line).0, Some(503));
        // `%b` writes `-` for an empty body.
        let common = r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 -"#;
        assert_eq!(read("common", common).0, Some(200));
        let vhost = r#"www.example.com:443 10.0.0.1 - - [06/Dec/2026:08:22:30 +0000] "GET / HTTP/1.1" 502 0 "-" "curl/8""#;
        assert_eq!(read("vhost_combined", vhost).3, "www.example.com");
        let worker = r#"%h %l %u %t \"%r\" %>s %b \"%{BALANCER_WORKER_NAME}e\""#;
        let line = r#"10.0.0.3 - - [06/Dec/2026:08:22:31 +0000] "GET /bal HTTP/1.1" 503 299 "http://127.0.0.1:18083""#;
        let f = log_format(worker).unwrap();
        let mut p = AccessParser::new(f, ZoneClock::new(Zone::Utc));
        let ev = p.parse(line.as_bytes()).unwrap();
        assert_eq!(ev.upstream(line.as_bytes()), Some(&b"127.0.0.1:18083"[..]));
        assert!(ev.names_upstream);
        let trailer = log_format(r#"%h %l %u %t \"%r\" %>s %b %{X-Trace}^to"#).unwrap();
        let mut p = AccessParser::new(trailer, ZoneClock::new(Zone::Utc));
        let line = r#"10.0.0.3 - - [06/Dec/2026:08:22:31 +0000] "GET / HTTP/1.1" 200 5 abc"#;
        assert_eq!(p.parse(line.as_bytes()).unwrap().status, Some(200));
        let timed = r#""%h %l %u %t \"%r\" %>s %b %D \"%{X-Forwarded-For}i\"""#;
        let line = r#"10.0.0.2 - - [06/Dec/2026:08:22:30 +0000] "GET / HTTP/1.1" 500 12 1034 "-""#;
        assert_eq!(read(timed, line).0, Some(500));
    }

    #[test]
    fn formats_gatewatch_cannot_read_are_refused_with_the_reason() {
        for (bad, why) in [
            ("vhost", "predefined"),
            (r#"%h %{%Y-%m-%d}t %>s"#, "%t"),
            (r#"%h %>s %Z"#, "%Z"),
            (r#"LogFormat "%h %>s"#, "not quoted"),
            (r#"%h %{User-Agent"#, "unclosed"),
            // A multi-byte character after `%` (found by fuzzing: it cut a character in two).
            ("%\u{e9}", "not an httpd LogFormat directive"),
        ] {
            let e = log_format(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}

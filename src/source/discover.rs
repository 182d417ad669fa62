//! Finding the logs to follow when there is no config file: nginx's own configuration (`nginx
//! -T` prints it whole, includes and all), HAProxy's log targets, and the Debian/RHEL standard
//! paths (nginx, HAProxy, Apache httpd). Each source found says why it was chosen.

use crate::engine::event::Format;
use crate::engine::parse::LogFormat;
use crate::engine::time::Zone;
use crate::source::{SourceConfig, SourceKind, StartAt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A log to follow, and why.
#[derive(Clone, Debug)]
pub struct Found {
    pub source: SourceConfig,
    pub why: String,
}

/// The words of nginx configuration text: directives end with `;`, blocks with braces;
/// quotes and comments are handled. Returns each directive as its words.
fn directives(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' | '"' => {
                let q = c;
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(match n {
                                    'n' => '\n',
                                    't' => '\t',
                                    other => other,
                                });
                            }
                        }
                        c if c == q => break,
                        c => word.push(c),
                    }
                }
                // nginx joins adjacent strings of one argument only when written together;
                // a space ends the word.
            }
            ';' | '{' | '}' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if c == ';' && !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                } else {
                    words.clear();
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    out
}

/// Sources from nginx's full configuration (the output of `nginx -T`).
pub fn from_nginx_config(text: &str, zone: &Zone) -> (Vec<Found>, Vec<String>) {
    let ds = directives(text);
    let mut formats: Vec<(String, String)> = vec![(
        "combined".into(),
        format!(
            "log_format combined '{}'",
            crate::engine::parse::nginx_access::COMBINED
        ),
    )];
    let mut notes = Vec::new();
    for d in &ds {
        if d[0] == "log_format" && d.len() >= 3 {
            let name = d[1].clone();
            let mut rest = &d[2..];
            let mut escape = String::new();
            if rest[0].starts_with("escape=") {
                escape = format!("{} ", rest[0]);
                rest = &rest[1..];
            }
            let body: String = rest.concat();
            // Keep it in directive form so escape= is honoured.
            let quoted = body.replace('\\', "\\\\").replace('\'', "\\'");
            formats.push((
                name.clone(),
                format!("log_format {name} {escape}'{quoted}'"),
            ));
        }
    }
    let mut found: Vec<Found> = Vec::new();
    let mut add = |path: &str, format: Format, log_format: Option<LogFormat>, why: String| {
        if found
            .iter()
            .any(|f| matches!(&f.source.kind, SourceKind::Log { path: p, .. } if p == path))
        {
            return;
        }
        found.push(Found {
            source: SourceConfig {
                kind: SourceKind::Log {
                    path: path.to_string(),
                    format,
                },
                log_format,
                timezone: zone.clone(),
                start_at: StartAt::End,
                endpoint: None,
                region: None,
            },
            why,
        });
    };
    for d in &ds {
        match d[0].as_str() {
            "access_log" if d.len() >= 2 => {
                let path = &d[1];
                if path == "off" {
                    continue;
                }
                if path.starts_with("syslog:") || path.contains('$') {
                    notes.push(format!(
                        "nginx access_log {path}: not a fixed file (syslog or a variable); not followed"
                    ));
                    continue;
                }
                let name = d
                    .get(2)
                    .filter(|w| !w.contains('='))
                    .map_or("combined", String::as_str);
                let lf = formats
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, f)| f.clone());
                let Some(lf) = lf else {
                    notes.push(format!(
                        "nginx access_log {path}: log_format {name} not found"
                    ));
                    continue;
                };
                match LogFormat::from_directive(&lf) {
                    Ok(f) => add(
                        path,
                        Format::NginxAccess,
                        Some(f),
                        format!("nginx -T: access_log {path} {name}"),
                    ),
                    Err(e) => notes.push(format!("nginx access_log {path} ({name}): {e}")),
                }
            }
            "error_log" if d.len() >= 2 => {
                let path = &d[1];
                if path.starts_with("syslog:") || path == "stderr" || path.starts_with("memory:") {
                    notes.push(format!("nginx error_log {path}: not a file; not followed"));
                    continue;
                }
                add(
                    path,
                    Format::NginxError,
                    None,
                    format!("nginx -T: error_log {path}"),
                );
            }
            _ => {}
        }
    }
    (found, notes)
}

/// Runs `nginx -T` (with `-c` when given) and returns its output, or why it could not.
pub fn nginx_t(nginx: &Path, conf: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new(nginx);
    cmd.arg("-T");
    if let Some(c) = conf {
        cmd.arg("-c").arg(c);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", nginx.display()))?;
    // A hung nginx must not hang the daemon's start.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return Err(format!("{} -T did not finish within 10 s", nginx.display()));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{} -T failed: {}",
            nginx.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Standard paths, for what nginx -T did not name.
const STANDARD: [(&str, Format, &str); 8] = [
    (
        "/var/log/nginx/access.log",
        Format::NginxAccess,
        "the Debian/RHEL default nginx access log",
    ),
    (
        "/var/log/nginx/error.log",
        Format::NginxError,
        "the Debian/RHEL default nginx error log",
    ),
    (
        "/var/log/haproxy.log",
        Format::Haproxy,
        "where Debian's rsyslog writes HAProxy's log",
    ),
    (
        "/var/log/haproxy",
        Format::Haproxy,
        "where some distributions' syslog writes HAProxy's log",
    ),
    (
        "/var/log/apache2/access.log",
        Format::ApacheAccess,
        "Debian's default Apache httpd access log",
    ),
    (
        "/var/log/apache2/error.log",
        Format::ApacheError,
        "Debian's default Apache httpd error log",
    ),
    (
        "/var/log/httpd/access_log",
        Format::ApacheAccess,
        "RHEL's default Apache httpd access log",
    ),
    (
        "/var/log/httpd/error_log",
        Format::ApacheError,
        "RHEL's default Apache httpd error log",
    ),
];

/// Everything found on this machine: nginx's configuration, HAProxy's, the standard paths.
/// Also returns notes on what was looked at and not used.
pub fn discover(zone: &Zone) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let nginx = [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    match nginx {
        Some(bin) => match nginx_t(&bin, None) {
            Ok(text) => {
                let (f, n) = from_nginx_config(&text, zone);
                found.extend(f);
                notes.extend(n);
            }
            Err(e) => notes.push(format!(
                "nginx is installed but its configuration could not be read: {e}"
            )),
        },
        None => notes.push("nginx is not installed here".into()),
    }
    let haproxy_cfg = Path::new("/etc/haproxy/haproxy.cfg");
    if let Ok(text) = std::fs::read_to_string(haproxy_cfg) {
        let logs_to_syslog = text.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&"log")
                && w.get(1)
                    .is_some_and(|t| t.starts_with('/') || t.contains('.') || *t == "global")
        });
        if logs_to_syslog {
            notes.push(format!(
                "{}: HAProxy logs to syslog; its log file is where syslog writes it",
                haproxy_cfg.display()
            ));
        }
    }
    for (path, format, why) in STANDARD {
        let taken = found.iter().any(
            |f: &Found| matches!(&f.source.kind, SourceKind::Log { path: p, .. } if p == path),
        );
        if !taken && Path::new(path).is_file() {
            found.push(Found {
                source: SourceConfig {
                    kind: SourceKind::Log {
                        path: path.to_string(),
                        format,
                    },
                    log_format: None,
                    timezone: zone.clone(),
                    start_at: StartAt::End,
                    endpoint: None,
                    region: None,
                },
                why: why.to_string(),
            });
        }
    }
    (found, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_T: &str = r#"
# configuration file /etc/nginx/nginx.conf:
user www-data;
http {
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for" $upstream_addr';
    log_format js escape=json '{"time":"$time_iso8601","status":$status}';
    access_log /var/log/nginx/access.log main;
    error_log /var/log/nginx/error.log warn; # comment ; with a semicolon
    include /etc/nginx/sites-enabled/*;
# configuration file /etc/nginx/sites-enabled/api:
    server {
        access_log /var/log/nginx/api.access.log;
        access_log /var/log/nginx/api.json.log js buffer=32k;
        access_log syslog:server=127.0.0.1 main;
        access_log /var/log/nginx/$host.log main;
    }
}
"#;

    #[test]
    fn nginx_t_output_names_every_log_and_its_format() {
        let (found, notes) = from_nginx_config(NGINX_T, &Zone::Utc);
        let got: Vec<(String, Format, Option<String>)> = found
            .iter()
            .map(|f| match &f.source.kind {
                SourceKind::Log { path, format } => (
                    path.clone(),
                    *format,
                    f.source.log_format.as_ref().map(|l| l.name().to_string()),
                ),
                SourceKind::Syslog { .. } | SourceKind::Container { .. } | SourceKind::Kafka(_) => {
                    unreachable!()
                }
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/var/log/nginx/access.log".into(),
                    Format::NginxAccess,
                    Some("main".into())
                ),
                ("/var/log/nginx/error.log".into(), Format::NginxError, None),
                (
                    "/var/log/nginx/api.access.log".into(),
                    Format::NginxAccess,
                    Some("combined".into())
                ),
                (
                    "/var/log/nginx/api.json.log".into(),
                    Format::NginxAccess,
                    Some("js".into())
                ),
            ]
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("syslog:server"));
        assert!(notes[1].contains("$host"));
    }
}

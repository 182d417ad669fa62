//! A real nginx on loopback in front of faulty upstreams writes real logs; `scan` must name the
//! cause of every failed request and find the burst.

use super::upstreams::{self, get};
use super::*;
use std::collections::BTreeMap;
use std::process::Stdio;

const JSON_FORMAT: &str = r#"'{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status":$status,"host":"$host","upstream_addr":"$upstream_addr","upstream_status":"$upstream_status","upstream_connect_time":"$upstream_connect_time"}'"#;

/// nginx's temporary folders, inside the test's folder (in the `http` block).
pub fn temp_paths(dir: &Path) -> String {
    ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {}/tmp_{t};", dir.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn config(dir: &Path, listen: std::net::SocketAddr, u: &upstreams::Upstreams) -> String {
    let d = dir.display();
    let gatewatch_format = gatewatch::engine::parse::nginx_access::GATEWATCH;
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
{temp_paths}
    log_format gatewatch '{gatewatch_format}';
    log_format json escape=json {JSON_FORMAT};
    access_log {d}/access.log gatewatch;
    access_log {d}/access_combined.log combined;
    access_log {d}/access_json.log json;
    proxy_connect_timeout 2s;
    proxy_read_timeout 1s;
    resolver {dns} ipv6=off valid=1s;
    resolver_timeout 2s;
    upstream dead_pool {{
        server {r0} max_fails=1 fail_timeout=60s;
        server {r1} max_fails=1 fail_timeout=60s;
    }}
    server {{
        listen {listen};
        server_name test.example;
        location /ok {{ proxy_pass http://{ok}; }}
        location /refused {{ proxy_pass http://{r0}; }}
        location /unix {{ proxy_pass http://unix:{d}/missing.sock; }}
        location /pool {{ proxy_pass http://dead_pool; }}
        location /hang {{ proxy_pass http://{hang}; }}
        location /close {{ proxy_pass http://{close}; }}
        location /garbage {{ proxy_pass http://{garbage}; }}
        location /invalid {{ proxy_pass http://{invalid}; }}
        location /tls {{ proxy_pass https://{ok}; }}
        location /dns {{ set $backend backend.invalid; proxy_pass http://$backend:8080; }}
    }}
}}
"#,
        temp_paths = temp_paths(dir),
        dns = u.dns,
        r0 = u.refused[0],
        r1 = u.refused[1],
        ok = u.ok,
        hang = u.hang,
        close = u.close,
        garbage = u.garbage,
        invalid = u.invalid,
    )
}

#[test]
fn nginx_logs_of_real_failures_get_their_causes_and_a_burst_is_found() {
    let Some(nginx) = require("nginx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let u = upstreams::start();
    let listen = upstreams::free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), listen, &u)).unwrap();
    let child = Command::new(&nginx)
        .args([
            "-p",
            dir.path().to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
        ])
        .args(["-e", dir.path().join("error.log").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx starts");
    let _guard = Running(child);
    assert!(
        upstreams::wait_for_port(listen),
        "nginx did not start listening on {listen}"
    );

    // (path, requests, expected status of the last one)
    let plan: [(&str, usize, u16); 10] = [
        ("/ok", 3, 200),
        ("/refused", 2, 502),
        ("/unix", 2, 502),
        ("/pool", 3, 502),
        ("/hang", 2, 504),
        ("/close", 2, 502),
        // nginx passes the upstream's HTTP/0.9-looking bytes through: no status line at all.
        ("/garbage", 2, 0),
        ("/invalid", 2, 502),
        ("/tls", 2, 502),
        ("/dns", 2, 502),
    ];
    for (path, n, status) in plan {
        let mut last = 0;
        for _ in 0..n {
            last = get(listen, path);
        }
        assert_eq!(last, status, "{path}");
    }
    // A burst: the refused upstream for 40 requests.
    for _ in 0..40 {
        assert_eq!(get(listen, "/refused/burst"), 502);
    }

    let access = dir.path().join("access.log");
    let error = dir.path().join("error.log");
    let ev = events(&[&access, &error], &[]);
    let mut by_path: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for e in ev.iter().filter(|e| e["format"] == "nginx_access") {
        let req = e_request(&access, e["line"].as_u64().unwrap());
        by_path.entry(req).or_default().push((
            e["cause"].as_str().unwrap().to_string(),
            e["upstream"].as_str().map(String::from),
        ));
    }
    let causes = |path: &str| -> Vec<String> {
        by_path
            .get(path)
            .unwrap_or_else(|| panic!("no access lines for {path}: {by_path:#?}"))
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    };
    assert_eq!(causes("/ok"), ["ok"; 3]);
    assert_eq!(causes("/refused"), ["upstream_unreachable"; 2]);
    assert_eq!(causes("/unix"), ["upstream_unreachable"; 2]);
    assert!(
        by_path["/unix"][0]
            .1
            .as_deref()
            .unwrap()
            .ends_with("/missing.sock")
    );
    // The first request finds both servers refusing; then the pool has no live server.
    assert_eq!(
        causes("/pool"),
        [
            "upstream_unreachable",
            "no_live_upstreams",
            "no_live_upstreams"
        ]
    );
    assert_eq!(by_path["/pool"][1].1.as_deref(), Some("dead_pool"));
    assert_eq!(causes("/hang"), ["upstream_timeout"; 2]);
    assert_eq!(causes("/close"), ["upstream_reset"; 2]);
    assert_eq!(causes("/garbage"), ["upstream_protocol_error"; 2]);
    assert_eq!(causes("/invalid"), ["upstream_protocol_error"; 2]);
    assert_eq!(causes("/tls"), ["tls_failure"; 2]);
    assert_eq!(causes("/dns"), ["dns_failure"; 2]);
    assert_eq!(by_path["/dns"][0].1.as_deref(), Some("backend.invalid"));

    // The other access-log formats of the same requests parse completely.
    for (file, layout) in [
        ("access_combined.log", "(combined)"),
        ("access_json.log", "(json)"),
    ] {
        let o = run(&[
            "scan",
            "--timezone",
            "UTC",
            dir.path().join(file).to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert!(
            err.contains(layout) && err.contains(" 0 unparsed"),
            "{file}: {err}"
        );
    }
    let json = events(&[&dir.path().join("access_json.log")], &[]);
    // nginx writes `"status":009` (not valid JSON) for the HTTP/0.9 answer; it is read.
    assert_eq!(json.iter().filter(|e| e["status"] == 9).count(), 2);
    // Without the error log, a failed TLS handshake looks like a refused connection (its
    // connect time is "-" too): /tls counts as unreachable here, as DESIGN §2's rule says.
    assert_eq!(
        json.iter()
            .filter(|e| e["cause"] == "upstream_unreachable")
            .count(),
        2 + 2 + 1 + 2 + 40
    );

    // The burst is one incident on the refused upstream, with the unreachable entry.
    let found = incidents(&[access.to_str().unwrap(), error.to_str().unwrap()]);
    let refused = u.refused[0].to_string();
    let burst: Vec<_> = found
        .iter()
        .filter(|i| i["upstream"] == refused.as_str())
        .collect();
    assert_eq!(burst.len(), 1, "{found:#?}");
    assert_eq!(
        burst[0]["entry"],
        "api/http-502-bad-gateway-upstream-unreachable"
    );
    assert!(burst[0]["count"].as_u64().unwrap() >= 40);
}

/// The request path of an access-log line (`GET /pool HTTP/1.1` → `/pool`).
fn e_request(file: &Path, line: u64) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let l = text.lines().nth(line as usize - 1).unwrap();
    let req = l.split('"').nth(1).unwrap();
    req.split(' ').nth(1).unwrap().to_string()
}

/// Zero-config start reads what nginx itself says its logs are (`nginx -T`, includes and all).
#[test]
fn nginx_t_of_a_real_configuration_names_its_logs_and_formats() {
    let Some(nginx) = require("nginx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("sites")).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            r#"
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ }}
http {{
    log_format up '$remote_addr - $remote_user [$time_local] "$request" $status '
                  '$body_bytes_sent "$http_referer" "$http_user_agent" $upstream_addr $upstream_status $upstream_connect_time';
    access_log {d}/access.log up;
    include {d}/sites/*.conf;
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sites/api.conf"),
        format!("server {{ listen 127.0.0.1:1; access_log {d}/api.log; }}\n"),
    )
    .unwrap();
    let text = gatewatch::source::discover::nginx_t(&nginx, Some(&dir.path().join("nginx.conf")))
        .expect("nginx -T runs");
    let (found, _) =
        gatewatch::source::discover::from_nginx_config(&text, &gatewatch::engine::time::Zone::Utc);
    let got: Vec<String> = found
        .iter()
        .map(|f| match &f.source.kind {
            gatewatch::app::config::SourceKind::Log { path, format } => format!(
                "{path} {format} {}",
                f.source.log_format.as_ref().map_or("-", |l| l.name())
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            format!("{d}/error.log nginx_error -"),
            format!("{d}/access.log nginx_access up"),
            format!("{d}/api.log nginx_access combined"),
        ]
    );
    // The format read from nginx's configuration parses nginx's lines with upstream fields.
    let up = found[1].source.log_format.clone().unwrap();
    let mut p = gatewatch::engine::parse::Parser::new(
        gatewatch::engine::event::Format::NginxAccess,
        &gatewatch::engine::parse::ParserOptions {
            log_format: Some(up),
            ..Default::default()
        },
        &[],
    );
    let ev = p
        .parse(br#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "ua" 10.0.1.5:8080 502 -"#)
        .unwrap();
    assert_eq!(
        ev.cause,
        gatewatch::engine::event::Cause::UpstreamUnreachable
    );
}

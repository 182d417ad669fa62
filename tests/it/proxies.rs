//! The proxies beyond nginx, HAProxy and ALB through `scan`, with their formats recognised from
//! the lines as a user's files would be: Envoy's access log names the cause itself; Traefik's
//! access lines take the cause of its debug lines (which name the upstream but not the client);
//! each burst gets its proxy's own entry.

use super::*;
use std::fmt::Write as _;

/// Two minutes of Traefik traffic: one request a second to a healthy service and, from the
/// 30th second on, one a second to a service whose server refuses connections, each with the
/// debug line Traefik writes for it.
fn traefik_logs(dir: &Path) -> (PathBuf, PathBuf) {
    let (mut access, mut debug) = (String::new(), String::new());
    for s in 0..120u32 {
        let (m, sec) = (s / 60, s % 60);
        let t = format!("01/May/2024:12:{m:02}:{sec:02} +0000");
        writeln!(
            access,
            r#"10.0.0.{c} - - [{t}] "GET /web HTTP/1.1" 200 512 "-" "curl/8.5.0" {n} "web@docker" "http://172.18.0.4:80" 3ms"#,
            c = s % 7 + 1,
            n = 2 * s
        )
        .unwrap();
        if s >= 30 {
            writeln!(
                debug,
                r#"time="2024-05-01T12:{m:02}:{sec:02}Z" level=debug msg="'502 Bad Gateway' caused by: dial tcp 172.18.0.5:8080: connect: connection refused""#
            )
            .unwrap();
            writeln!(
                access,
                r#"10.0.1.{c} - - [{t}] "GET /api/orders HTTP/1.1" 502 11 "-" "curl/8.5.0" {n} "api@docker" "http://172.18.0.5:8080" 0ms"#,
                c = s % 5 + 1,
                n = 2 * s + 1
            )
            .unwrap();
        } else {
            writeln!(
                access,
                r#"10.0.1.{c} - - [{t}] "GET /api/orders HTTP/1.1" 200 64 "-" "curl/8.5.0" {n} "api@docker" "http://172.18.0.5:8080" 4ms"#,
                c = s % 5 + 1,
                n = 2 * s + 1
            )
            .unwrap();
        }
    }
    let (a, d) = (dir.join("access.log"), dir.join("traefik.log"));
    std::fs::write(&a, access).unwrap();
    std::fs::write(&d, debug).unwrap();
    (a, d)
}

#[test]
fn traefik_access_lines_take_the_cause_of_the_debug_line_of_their_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (access, debug) = traefik_logs(dir.path());
    let ev = events(&[&access, &debug], &[]);
    let failed: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["file"].as_str().unwrap().ends_with("access.log") && e["status"] == 502)
        .collect();
    assert_eq!(failed.len(), 90);
    for e in &failed {
        assert_eq!(e["format"], "traefik");
        assert_eq!(e["cause"], "upstream_unreachable", "{e}");
        assert_eq!(e["upstream"], "172.18.0.5:8080", "{e}");
    }
    // The healthy service's requests keep their own answer.
    assert!(
        ev.iter()
            .filter(|e| e["upstream"] == "172.18.0.4:80")
            .all(|e| e["cause"] == "ok")
    );
    let found = incidents(&[access.to_str().unwrap(), debug.to_str().unwrap()]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["upstream"], "172.18.0.5:8080");
    assert_eq!(found[0]["entry"], "traefik/bad-gateway-dial-failed");
    // Without the debug log, the same 502s are an unknown burst, never a guessed cause.
    let alone = incidents(&[access.to_str().unwrap()]);
    assert_eq!(alone.len(), 1, "{alone:#?}");
    assert_eq!(alone[0]["entry"], "unknown/5xx-burst");
}

#[test]
fn envoy_names_the_cause_of_each_request_from_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();
    for s in 0..120u32 {
        let (m, sec) = (s / 60, s % 60);
        for (host, code, flags, details) in [
            ("10.44.1.7:9080", 200, "-", "via_upstream"),
            (
                "10.44.1.9:8080",
                if s >= 30 { 503 } else { 200 },
                if s >= 30 { "UF,URX" } else { "-" },
                if s >= 30 {
                    "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}"
                } else {
                    "via_upstream"
                },
            ),
        ] {
            writeln!(
                log,
                r#"[2024-05-01T12:{m:02}:{sec:02}.250Z] "GET /api/v1/items HTTP/1.1" {code} {flags} {details} 0 91 1 - "-" "curl/8.5.0" "5e4b1c6a-0c1d-4b5e-9a1f-{s:012}" "api.example.com" "{host}""#
            )
            .unwrap();
        }
    }
    let path = dir.path().join("envoy.log");
    std::fs::write(&path, log).unwrap();
    let found = incidents(&[path.to_str().unwrap()]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["upstream"], "10.44.1.9:8080");
    assert_eq!(found[0]["cause"], "upstream_unreachable");
    assert_eq!(found[0]["entry"], "envoy/upstream-connection-failure");
}

#[test]
fn each_proxys_lines_are_recognised_as_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[Sun Dec 06 08:22:30.591879 2026] [proxy_http:error] [pid 23874:tid 23881] [client 127.0.0.1:59524] AH01114: HTTP: failed to make connection to backend: 127.0.0.1",
            "apache_error",
        ),
        (
            r#"{"level":"error","ts":1796545415.8897493,"logger":"http.log.error","msg":"dial tcp 127.0.0.1:18081: connect: connection refused","request":{"remote_ip":"127.0.0.1","uri":"/down"},"status":502}"#,
            "caddy",
        ),
        (
            r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#,
            "envoy",
        ),
        (
            r#"192.168.33.1 - - [02/Oct/2017:20:22:07 +0000] "GET / HTTP/1.1" 304 0 "-" "Mozilla/5.0" 262 "Host-host-1" "http://172.19.0.3:5601" 2ms"#,
            "traefik",
        ),
        (
            r#"203.0.113.7 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.0""#,
            "nginx_access",
        ),
    ];
    for (n, (line, format)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{n}.log"));
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let ev = events(&[&path], &[]);
        assert_eq!(ev.len(), 1, "{line}");
        assert_eq!(ev[0]["format"], *format, "{line}");
    }
}

/// httpd writes a failed connection's address on one line and the request's report on the
/// next of the same thread: the report takes the address, but only its own (a left-over line
/// of a request that failed over to another member must not rename a later report).
#[test]
fn an_httpd_report_takes_the_address_of_its_own_connection_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    std::fs::write(
        &log,
        [
            // Thread 1: a balancer member refused, the request went to another member.
            "[Sun Dec 06 08:22:30.100000 2026] [proxy:error] [pid 7:tid 1] (111)Connection refused: AH00957: http: attempt to connect to 10.0.0.5:8080 (10.0.0.5:8080) failed",
            // Thread 1 again, a later request whose backend timed out: its own address.
            "[Sun Dec 06 08:22:31.100000 2026] [proxy_http:error] [pid 7:tid 1] (70007)The timeout specified has expired: [client 10.1.1.1:5000] AH01102: error reading status line from remote server 10.0.0.6:8080",
            // Thread 2: a backend configured by name, refused.
            "[Sun Dec 06 08:22:32.100000 2026] [proxy:error] [pid 7:tid 2] (111)Connection refused: AH00957: http: attempt to connect to 10.0.0.7:8080 (app.internal:8080) failed",
            "[Sun Dec 06 08:22:32.100100 2026] [proxy_http:error] [pid 7:tid 2] [client 10.1.1.2:5001] AH01114: HTTP: failed to make connection to backend: app.internal",
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    let ev = events(&[&log], &[]);
    let reports: Vec<(String, String)> = ev
        .iter()
        .filter(|e| e["cause"] != "not_applicable")
        .map(|e| {
            (
                e["cause"].as_str().unwrap().to_string(),
                e["upstream"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        reports,
        [
            ("upstream_timeout".to_string(), "10.0.0.6:8080".to_string()),
            (
                "upstream_unreachable".to_string(),
                "app.internal:8080".to_string()
            ),
        ]
    );
}

//! End to end beyond nginx and HAProxy (issue 18): a real Apache httpd (`mod_proxy`) and a real
//! Caddy on loopback in front of a backend the test kills under traffic and brings back;
//! `gatewatch run` follows the proxies' own logs and alerts a real webhook receiver. Each test
//! asserts what a user would see: one alert naming the proxy's own entry and the backend's
//! address, a resolved note when it is back, and no alert about anything else.

use super::e2e::{
    QUICK_CLOSE, Traffic, accepted, incidents_in, start_gatewatch, webhook, write_config,
};
use super::receiver::Receiver;
use super::upstreams::{self, Killable};
use super::*;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Waits (bounded) until the incidents opened include `want`; all opened so far.
fn wait_opened(
    hook: &Receiver,
    want: &[(String, String)],
    limit: Duration,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let opened = incidents_in(&accepted(hook), "opened");
        if want.iter().all(|w| opened.contains(w)) || Instant::now() > deadline {
            return opened;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until a resolved note names `upstream`.
fn wait_resolved(hook: &Receiver, upstream: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if incidents_in(&accepted(hook), "resolved")
            .iter()
            .any(|(u, _)| u == upstream)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// httpd's configuration: Debian's module folder, logs in `dir`, `/app/` to the killable
/// backend, `/hang/` to a backend that never answers (`ProxyTimeout 1`), `/ok/` to a healthy one.
fn apache_config(
    dir: &Path,
    listen: SocketAddr,
    app: SocketAddr,
    hang: SocketAddr,
    ok: SocketAddr,
) -> String {
    let d = dir.display();
    let m = "/usr/lib/apache2/modules";
    // Started as root, httpd refuses to serve as root: its children run as nobody. (The test's
    // folder is owned by the user the test runs as.)
    use std::os::unix::fs::MetadataExt;
    let user = if std::fs::metadata(dir).unwrap().uid() == 0 {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    format!(
        r#"ServerRoot "{d}"
DefaultRuntimeDir "{d}"
PidFile "{d}/httpd.pid"
Listen {listen}
ServerName localhost
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule proxy_module {m}/mod_proxy.so
LoadModule proxy_http_module {m}/mod_proxy_http.so
{user}ErrorLog "{d}/error.log"
LogLevel warn
LogFormat "%h %l %u %t \"%r\" %>s %O \"%{{Referer}}i\" \"%{{User-Agent}}i\"" combined
CustomLog "{d}/access.log" combined
ProxyTimeout 1
ProxyPass /app/ http://{app}/
ProxyPass /hang/ http://{hang}/
ProxyPass /ok/ http://{ok}/
"#
    )
}

/// A backend of a real httpd killed under traffic alerts once with Apache's connect-failed
/// entry naming its `host:port` (taken from the `AH00957` line, since `AH01114` names the host
/// only), and a backend that never answers alerts with Apache's read-timeout entry; the
/// killed one brought back gets its resolved note. Nothing is alerted as an unknown 5xx burst:
/// every 503 and 502 of the access log took its cause from the error log.
#[test]
fn apache_a_killed_and_a_hanging_backend_alert_with_apache_entries_and_resolve() {
    let Some(bin) = require("apache2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let u = upstreams::start();
    let mut app = Killable::start();
    let listen = upstreams::free_port();
    let conf = dir.path().join("httpd.conf");
    std::fs::write(
        &conf,
        apache_config(dir.path(), listen, app.addr, u.hang, u.ok),
    )
    .unwrap();
    let child = Command::new(&bin)
        .args(["-f", conf.to_str().unwrap(), "-DFOREGROUND"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("httpd starts");
    let _httpd = Running(child);
    assert!(
        upstreams::wait_for_port(listen),
        "httpd did not start listening on {listen}: {}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );
    let hook = Receiver::start(upstreams::free_port());
    let http = upstreams::free_port();
    let sources = format!(
        "[[source]]\npath = \"{d}/access.log\"\nformat = \"apache_access\"\nstart_at = \"beginning\"\n\n[[source]]\npath = \"{d}/error.log\"\nformat = \"apache_error\"\nstart_at = \"beginning\"\n",
        d = dir.path().display()
    );
    let cfg = write_config(dir.path(), &sources, http, &webhook(&hook), QUICK_CLOSE);
    let (_gw, _log) = start_gatewatch(&cfg);

    let mut quick = Traffic::start(
        listen,
        &["/app/v1/orders", "/ok/v1/health"],
        1,
        Duration::from_millis(20),
        Duration::from_secs(40),
    );
    // Each request to the hanging backend takes a second (ProxyTimeout 1): six clients of
    // their own (one Traffic's clients take turns).
    let mut slow: Vec<Traffic> = (0..6)
        .map(|_| {
            Traffic::start(
                listen,
                &["/hang/v1/report"],
                1,
                Duration::ZERO,
                Duration::from_secs(12),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    app.kill();
    let want = [
        (
            app.addr.to_string(),
            "apache/proxy-connect-failed".to_string(),
        ),
        (
            u.hang.to_string(),
            "apache/proxy-error-reading-status-line".to_string(),
        ),
    ];
    let opened = wait_opened(&hook, &want, Duration::from_secs(25));
    let error_log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap();
    for w in &want {
        assert!(
            opened.contains(w),
            "{w:?} not in {opened:#?}\n{}",
            error_log()
        );
    }
    let slow_hits: Vec<_> = slow.iter_mut().flat_map(Traffic::stop).collect();
    app.restart();
    assert!(
        wait_resolved(&hook, &app.addr.to_string(), Duration::from_secs(30)),
        "no resolved note for {}: {:#?}",
        app.addr,
        accepted(&hook)
    );
    let hits = quick.stop();
    std::thread::sleep(Duration::from_millis(500));
    // One alert each, and none for anything else (no unknown 5xx burst: the access log's
    // 503s and 502s were explained by the error log).
    let mut opened = incidents_in(&accepted(&hook), "opened");
    opened.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(opened, want, "{}", error_log());
    // What the clients got: httpd's 503 for the dead backend, 502 for the hanging one. A
    // request in flight when the backend was killed may get a 502 (its connection reset), and
    // only such a one, before the 503s.
    assert!(hits.iter().any(|h| h.status == 503), "{hits:?}");
    assert!(
        hits.iter().all(|h| matches!(h.status, 200 | 502 | 503)),
        "{hits:?}"
    );
    let first_503 = hits.iter().position(|h| h.status == 503).unwrap();
    let resets: Vec<usize> = (0..hits.len()).filter(|&i| hits[i].status == 502).collect();
    assert!(
        resets.len() <= 2 && resets.iter().all(|&i| i < first_503),
        "502s other than the requests in flight at the kill: {hits:?}"
    );
    assert!(slow_hits.iter().all(|h| h.status == 502), "{slow_hits:?}");
    let headline = accepted(&hook)
        .iter()
        .flat_map(|m| m["incidents"].as_array().unwrap().clone())
        .find(|i| i["upstream"] == app.addr.to_string())
        .unwrap()["headline"]
        .clone();
    assert!(
        headline
            .as_str()
            .unwrap()
            .starts_with(&format!("503 burst: upstream {} unreachable", app.addr)),
        "{headline}"
    );
}

/// A real Caddy (JSON logs: error entries on its standard error, access entries in a file) in
/// front of a backend killed under traffic: one alert with Caddy's dial-failed entry naming the
/// backend, one resolved note when it is back, nothing else.
#[test]
fn caddy_a_killed_backend_alerts_once_with_the_caddy_entry_and_resolves() {
    let Some(bin) = require("caddy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut app = Killable::start();
    let u = upstreams::start();
    let listen = upstreams::free_port();
    let caddyfile = d.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\nhttp://:{port} {{\n\tbind {ip}\n\tlog {{\n\t\toutput file {access}\n\t}}\n\thandle /app/* {{\n\t\treverse_proxy {app}\n\t}}\n\thandle /ok/* {{\n\t\treverse_proxy {ok}\n\t}}\n}}\n",
            port = listen.port(),
            ip = listen.ip(),
            access = d.join("access.log").display(),
            app = app.addr,
            ok = u.ok,
        ),
    )
    .unwrap();
    let stderr = d.join("caddy.log");
    let child = Command::new(&bin)
        .args([
            "run",
            "--config",
            caddyfile.to_str().unwrap(),
            "--adapter",
            "caddyfile",
        ])
        .env("HOME", d)
        .env("XDG_CONFIG_HOME", d)
        .env("XDG_DATA_HOME", d)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("caddy starts");
    let _caddy = Running(child);
    assert!(
        upstreams::wait_for_port(listen),
        "caddy did not start listening on {listen}: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let hook = Receiver::start(upstreams::free_port());
    let http = upstreams::free_port();
    let sources = format!(
        "[[source]]\npath = \"{}\"\nformat = \"caddy\"\nstart_at = \"beginning\"\n\n[[source]]\npath = \"{}\"\nformat = \"caddy\"\nstart_at = \"beginning\"\n",
        d.join("access.log").display(),
        stderr.display()
    );
    let cfg = write_config(d, &sources, http, &webhook(&hook), QUICK_CLOSE);
    let (_gw, _log) = start_gatewatch(&cfg);
    let mut traffic = Traffic::start(
        listen,
        &["/app/v1/orders", "/ok/v1/health"],
        1,
        Duration::from_millis(20),
        Duration::from_secs(40),
    );
    std::thread::sleep(Duration::from_secs(1));
    app.kill();
    let want = [(
        app.addr.to_string(),
        "caddy/reverse-proxy-dial-failed".to_string(),
    )];
    let opened = wait_opened(&hook, &want, Duration::from_secs(20));
    assert!(
        opened.contains(&want[0]),
        "{opened:#?}\n{}",
        std::fs::read_to_string(&stderr).unwrap()
    );
    app.restart();
    assert!(
        wait_resolved(&hook, &app.addr.to_string(), Duration::from_secs(30)),
        "no resolved note: {:#?}",
        accepted(&hook)
    );
    let hits = traffic.stop();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(incidents_in(&accepted(&hook), "opened"), want);
    assert!(hits.iter().any(|h| h.status == 502), "{hits:?}");
    assert!(
        hits.iter().all(|h| matches!(h.status, 200 | 502)),
        "{hits:?}"
    );
}

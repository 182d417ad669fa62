//! End to end (issue 6): real nginx and HAProxy in front of upstreams the test starts, kills and
//! brings back; `gatewatch run` as a real process following the proxies' own log files; alerts
//! arriving at a real webhook receiver and a real SMTP server (aiosmtpd). Logs rotated by the
//! real logrotate, nginx reloaded and told to reopen its logs, the daemon stopped and killed, all
//! in the middle of incidents. Every test asserts on what the receivers got, and on `/metrics`.
//!
//! `bench_time_from_first_failed_request_to_alert` (ignored; `scripts/e2ebench.sh`) measures the
//! figures in the README's Performance section.

use super::daemon::{http_get, spawn, unsafe_kill, wait_for};
use super::delivery::{decode_qp, email_channel};
use super::receiver::{Receiver, Request};
use super::smtp::{self, Smtp};
use super::upstreams::{self, Killable, Upstreams, get};
use super::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub(super) const UNREACHABLE: &str = "api/http-502-bad-gateway-upstream-unreachable";

/// Short windows so an incident closes about 7 s after its last failure; the thresholds that
/// open one (10 failures, 20 % of requests) and `group_wait` keep their defaults.
pub(super) const QUICK_CLOSE: &str =
    "[detect]\nwindow = \"5s\"\nquiet = \"2s\"\nclose_failures = 1\n";

/// A real nginx (a master and one worker, so it can be reloaded and told to reopen its logs) in
/// front of the test's upstreams, with its config, pid file and logs in its own folder.
struct Nginx {
    bin: PathBuf,
    dir: PathBuf,
    listen: SocketAddr,
    child: Running,
}

impl Nginx {
    /// `/svcN/` goes to `services[N]`, the other locations to the faulty upstreams.
    fn start(bin: &Path, dir: &Path, u: &Upstreams, services: &[SocketAddr]) -> Nginx {
        Nginx::start_logging(bin, dir, u, services, false).0
    }

    /// With `stdio`, as in a container (the official image, ingress-nginx): access lines in the
    /// `main` format on standard output, errors on standard error; returns both.
    fn start_logging(
        bin: &Path,
        dir: &Path,
        u: &Upstreams,
        services: &[SocketAddr],
        stdio: bool,
    ) -> (
        Nginx,
        Option<(std::process::ChildStdout, std::process::ChildStderr)>,
    ) {
        // Started as root, nginx's worker runs as `nobody`: it must reach the folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let listen = upstreams::free_port();
        let d = dir.display();
        let locations: String = services
            .iter()
            .enumerate()
            .map(|(n, a)| format!("        location /svc{n}/ {{ proxy_pass http://{a}; }}\n"))
            .collect();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                r#"
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
{error_log}
events {{ worker_connections 256; }}
http {{
{temp_paths}
    log_format gatewatch '{format}';
    log_format main '{main}';
    {access_log}
    proxy_connect_timeout 2s;
    proxy_read_timeout 500ms;
    upstream dead_pool {{
        server {p0} max_fails=1 fail_timeout=60s;
        server {p1} max_fails=1 fail_timeout=60s;
    }}
    server {{
        listen {listen};
        server_name api.example.com;
{locations}        location /refused/ {{ proxy_pass http://{refused}; }}
        location /unix/ {{ proxy_pass http://unix:{d}/missing.sock; }}
        location /pool/ {{ proxy_pass http://dead_pool; }}
        location /hang/ {{ proxy_pass http://{hang}; }}
        location /close/ {{ proxy_pass http://{close}; }}
        location /garbage/ {{ proxy_pass http://{garbage}; }}
        location /invalid/ {{ proxy_pass http://{invalid}; }}
    }}
}}
"#,
                temp_paths = super::real_nginx::temp_paths(dir),
                format = gatewatch::engine::parse::nginx_access::GATEWATCH,
                main = gatewatch::engine::parse::nginx_access::MAIN,
                error_log = if stdio {
                    "error_log stderr error;".to_string()
                } else {
                    format!("error_log {d}/error.log error;")
                },
                access_log = if stdio {
                    "access_log /dev/stdout main;".to_string()
                } else {
                    format!("access_log {d}/access.log gatewatch;")
                },
                p0 = upstreams::closed_port(),
                p1 = upstreams::closed_port(),
                refused = u.refused[0],
                hang = u.hang,
                close = u.close,
                garbage = u.garbage,
                invalid = u.invalid,
            ),
        )
        .unwrap();
        let pipe = || if stdio { Stdio::piped() } else { Stdio::null() };
        let mut child = Command::new(bin)
            .args(Nginx::args(dir))
            .stdout(pipe())
            .stderr(pipe())
            .spawn()
            .expect("nginx starts");
        let out = stdio.then(|| (child.stdout.take().unwrap(), child.stderr.take().unwrap()));
        let nginx = Nginx {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            listen,
            child: Running(child),
        };
        assert!(
            upstreams::wait_for_port(listen),
            "nginx did not start listening on {listen}"
        );
        (nginx, out)
    }

    fn args(dir: &Path) -> Vec<String> {
        let p = |name: &str| dir.join(name).display().to_string();
        vec![
            "-p".into(),
            p(""),
            "-c".into(),
            p("nginx.conf"),
            "-e".into(),
            p("error.log"),
        ]
    }

    /// `nginx -s reload` or `nginx -s reopen`, as an operator types it.
    fn signal(&self, what: &str) {
        let o = Command::new(&self.bin)
            .args(Nginx::args(&self.dir))
            .args(["-s", what])
            .output()
            .unwrap();
        assert!(o.status.success(), "nginx -s {what}: {}", stderr(&o));
    }

    /// Clients on these paths through it, one request every `every` each, for at most a minute.
    fn traffic(&self, paths: &[&str], clients: usize, every: Duration) -> Traffic {
        Traffic::start(self.listen, paths, clients, every, Duration::from_secs(60))
    }

    /// The `[[source]]`s of its access and error logs.
    fn sources(&self) -> String {
        format!(
            "[[source]]\npath = \"{d}/access.log\"\nformat = \"nginx_access\"\nlog_format = '{lf}'\nstart_at = \"beginning\"\n\n[[source]]\npath = \"{d}/error.log\"\nformat = \"nginx_error\"\nstart_at = \"beginning\"\n",
            d = self.dir.display(),
            lf = gatewatch::engine::parse::nginx_access::GATEWATCH,
        )
    }
}

impl Drop for Nginx {
    /// A fast shutdown through the master, so its worker does not outlive the test.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One request the test's client made and the status it got (0: no HTTP answer).
#[derive(Clone, Debug)]
pub(super) struct Hit {
    pub(super) at: SystemTime,
    pub(super) path: String,
    pub(super) status: u16,
}

/// Clients sending requests through a proxy, each one request every `every` over its paths in
/// turn, until stopped or for at most `limit`. Holding `pause` holds them between requests.
pub(super) struct Traffic {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Hit>>>,
    pause: Arc<Mutex<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    pub(super) fn start(
        proxy: SocketAddr,
        paths: &[&str],
        clients: usize,
        every: Duration,
        limit: Duration,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let pause = Arc::new(Mutex::new(()));
        let threads = (0..clients)
            .map(|c| {
                let (stop, hits, pause) = (stop.clone(), hits.clone(), pause.clone());
                let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                std::thread::spawn(move || {
                    let end = Instant::now() + limit;
                    let mut n = c;
                    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                        {
                            let _held = pause.lock().unwrap();
                            let path = &paths[n % paths.len()];
                            let status = get(proxy, path);
                            hits.lock().unwrap().push(Hit {
                                at: SystemTime::now(),
                                path: path.clone(),
                                status,
                            });
                        }
                        n += 1;
                        std::thread::sleep(every);
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            hits,
            pause,
            threads,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (bounded) for a request after the `after` first ones that got `status`.
    fn wait_for(&self, after: usize, status: u16, timeout: Duration) -> Hit {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(h) = self
                .hits()
                .into_iter()
                .skip(after)
                .find(|h| h.status == status)
            {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "no request answered {status} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients; every request they made.
    pub(super) fn stop(&mut self) -> Vec<Hit> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        self.hits()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Writes gatewatch's config: the sources, `/metrics` on `http`, the channels, `detect`.
pub(super) fn write_config(
    dir: &Path,
    sources: &str,
    http: SocketAddr,
    channels: &str,
    detect: &str,
) -> PathBuf {
    let cfg = dir.join("gatewatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "{sources}\n[state]\ndir = \"{d}/state\"\n\n[http]\nlisten = \"{http}\"\n\n{detect}\n[alerts]\nhost = \"proxy-e2e\"\nretry_min = \"200ms\"\nretry_max = \"1s\"\n\n{channels}",
            d = dir.display()
        ),
    )
    .unwrap();
    cfg
}

pub(super) fn webhook(hook: &Receiver) -> String {
    format!(
        "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{}/hook\"\ntimeout = \"5s\"\n\n",
        hook.addr
    )
}

/// `gatewatch run --config cfg`, once it said it is ready; its log lines.
pub(super) fn start_gatewatch(cfg: &Path) -> (Running, std::sync::mpsc::Receiver<String>) {
    let (proc, rx) = spawn(cfg);
    wait_for(&rx, "ready", Duration::from_secs(15));
    (proc, rx)
}

/// What a test drives through nginx: the faulty upstreams, healthy services it can kill, nginx in
/// front of them, a webhook receiver, an SMTP server when asked for, and gatewatch's config with
/// them as channels. Fields drop in order: the folder goes last.
struct Stage {
    nginx: Nginx,
    u: Upstreams,
    services: Vec<Killable>,
    hook: Receiver,
    mail: Option<Smtp>,
    http: SocketAddr,
    cfg: PathBuf,
    dir: tempfile::TempDir,
}

impl Stage {
    /// `None` when nginx or (with `mail`) the SMTP server is missing, outside CI.
    fn new(services: usize, mail: bool, detect: &str) -> Option<Stage> {
        let bin = require("nginx")?;
        if mail && !smtp::have_smtp() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let u = upstreams::start();
        let services: Vec<Killable> = (0..services).map(|_| Killable::start()).collect();
        let addrs: Vec<SocketAddr> = services.iter().map(|s| s.addr).collect();
        let nginx = Nginx::start(&bin, dir.path(), &u, &addrs);
        let hook = Receiver::start(upstreams::free_port());
        let mail = mail.then(|| Smtp::start("starttls", &[]));
        let mut channels = webhook(&hook);
        if let Some(m) = &mail {
            channels += &email_channel(m, "starttls", dir.path(), "oncall@example.com");
        }
        let http = upstreams::free_port();
        let cfg = write_config(dir.path(), &nginx.sources(), http, &channels, detect);
        Some(Stage {
            nginx,
            u,
            services,
            hook,
            mail,
            http,
            cfg,
            dir,
        })
    }
}

/// The messages the receiver accepted, as JSON.
pub(super) fn accepted(hook: &Receiver) -> Vec<serde_json::Value> {
    hook.requests()
        .iter()
        .filter(|r| r.status < 300)
        .map(Request::json)
        .collect()
}

/// Waits (bounded) until the receiver accepted a message of `kind`; all accepted so far.
pub(super) fn wait_for_kind(
    hook: &Receiver,
    kind: &str,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let m = accepted(hook);
        if m.iter().any(|j| j["kind"] == kind) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind:?} message within {timeout:?}: {m:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (upstream, entry) of every incident in messages of `kind`.
pub(super) fn incidents_in(messages: &[serde_json::Value], kind: &str) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|m| m["kind"] == kind)
        .flat_map(|m| m["incidents"].as_array().unwrap().clone())
        .map(|i| {
            (
                i["upstream"].as_str().unwrap().to_string(),
                i["entry"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// `gatewatch_lines_total` of one file in the daemon's `/metrics`.
fn lines_read(http: SocketAddr, file: &Path) -> u64 {
    let (_, metrics) = http_get(http, "/metrics");
    let key = format!("gatewatch_lines_total{{file=\"{}\"}} ", file.display());
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Waits (bounded) until the daemon has read `want` lines of `file`; the count it reached.
fn wait_lines(http: SocketAddr, file: &Path, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = lines_read(http, file);
        if n >= want || Instant::now() > deadline {
            // A moment more, to see a line counted twice.
            std::thread::sleep(Duration::from_millis(300));
            return lines_read(http, file);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines in a log and its rotated copies (`access.log`, `access.log.1`, …).
fn lines_on_disk(dir: &Path, name: &str) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == name || n.starts_with(&format!("{name}.")))
        })
        .map(|p| bytecount(&std::fs::read(p).unwrap()))
        .sum()
}

fn bytecount(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// Scenarios 1 and 2: healthy traffic alerts nobody; the upstream killed under traffic gets one
/// alert per channel that names it, with the unreachable entry, its workarounds filled in for
/// it and its dead ends; brought back, one resolved note per channel; nothing else.
#[test]
fn an_upstream_killed_under_traffic_gets_one_alert_per_channel_and_one_resolved_note() {
    let Some(mut st) = Stage::new(1, true, QUICK_CLOSE) else {
        return;
    };
    let (hook, mail, api) = (&st.hook, st.mail.as_ref().unwrap(), &mut st.services[0]);
    let (_gw, _log) = start_gatewatch(&st.cfg);
    let mut traffic = st.nginx.traffic(
        &["/svc0/v1/orders", "/svc0/v1/users/me"],
        1,
        Duration::from_millis(20),
    );

    // 1. Healthy traffic for a while: no alert anywhere.
    std::thread::sleep(Duration::from_secs(3));
    let healthy = traffic.hits();
    assert!(healthy.len() >= 50, "{} requests", healthy.len());
    assert!(healthy.iter().all(|h| h.status == 200), "{healthy:?}");
    assert!(hook.requests().is_empty(), "{:#?}", hook.requests());
    assert!(mail.messages().is_empty());

    // 2. The upstream dies under traffic.
    api.kill();
    let first_failure = traffic.wait_for(healthy.len(), 502, Duration::from_secs(5));
    let opened = wait_for_kind(hook, "opened", Duration::from_secs(10));
    let mails = mail.wait_for(1, Duration::from_secs(10));
    let alert = &opened[0];
    let upstream = api.addr.to_string();
    assert_eq!(alert["kind"], "opened");
    assert_eq!(
        incidents_in(&opened, "opened"),
        [(upstream.clone(), UNREACHABLE.to_string())]
    );
    let incident = &alert["incidents"][0];
    assert_eq!(incident["cause"], "upstream_unreachable");
    assert!(
        incident["headline"]
            .as_str()
            .unwrap()
            .starts_with(&format!("502 burst: upstream {upstream} unreachable")),
        "{incident}"
    );
    let entry = &alert["entries"][0];
    assert_eq!(entry["id"], UNREACHABLE);
    let steps: Vec<&str> = entry["workarounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["text"].as_str().unwrap())
        .collect();
    assert!(
        steps[0].contains(&format!("curl -I http://{upstream}/health")),
        "the first workaround, filled in for the dead upstream: {steps:?}"
    );
    let dead_ends = entry["dead_ends"].as_array().unwrap();
    assert!(
        dead_ends.len() >= 2
            && dead_ends
                .iter()
                .all(|d| d["fail_pct"].as_u64().unwrap() > 0),
        "{dead_ends:?}"
    );
    // The mail says the same.
    let subject = smtp::header(&mails[0], "Subject").unwrap();
    assert!(
        subject.starts_with(&format!(
            "[Incident] proxy-e2e: 502 burst: upstream {upstream} unreachable"
        )),
        "{subject}"
    );
    let body = decode_qp(&mails[0]);
    for want in [
        UNREACHABLE,
        "What to do, most successful first",
        &format!("curl -I http://{upstream}/health"),
        "Not worth trying",
        "Restart the gateway",
    ] {
        assert!(
            body.contains(want),
            "{want:?} missing from the mail:\n{body}"
        );
    }
    let took = hook.requests()[0]
        .received
        .duration_since(first_failure.at)
        .unwrap_or_default();
    eprintln!("e2e: first failed request to the webhook: {took:?}");

    // The outage goes on for a while: no second alert.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(accepted(hook).len(), 1);
    assert_eq!(mail.messages().len(), 1);

    // The upstream comes back: one resolved note per channel.
    let before = traffic.hits().len();
    api.restart();
    traffic.wait_for(before, 200, Duration::from_secs(5));
    let all = wait_for_kind(hook, "resolved", Duration::from_secs(20));
    let mails = mail.wait_for(2, Duration::from_secs(10));
    let hits = traffic.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let all_now = accepted(hook);
    assert_eq!(all_now.len(), 2, "{all_now:#?}");
    assert_eq!(all.len(), 2);
    assert_eq!(
        incidents_in(&all_now, "resolved"),
        [(upstream.clone(), UNREACHABLE.to_string())]
    );
    assert_eq!(
        all_now[0]["incidents"][0]["key"], all_now[1]["incidents"][0]["key"],
        "the note resolves the incident of the alert"
    );
    assert_eq!(mail.messages().len(), 2);
    assert!(
        smtp::header(&mails[1], "Subject")
            .unwrap()
            .starts_with("[Resolved] proxy-e2e:")
    );
    // The clients got answers or nginx's 502, never a hang or a broken connection.
    assert!(hits.iter().all(|h| h.status == 200 || h.status == 502));
}

/// Scenario 3 (and the pool and the unix socket): bursts of timeouts, resets, invalid answers
/// and a pool with no live server each alert with their own entry; only the missing unix
/// socket, which is unreachable, gets the unreachable entry.
#[test]
fn timeouts_resets_and_invalid_answers_alert_with_their_own_entries_never_unreachable() {
    let Some(st) = Stage::new(0, false, QUICK_CLOSE) else {
        return;
    };
    let (u, hook) = (&st.u, &st.hook);
    let (_gw, _log) = start_gatewatch(&st.cfg);
    let want: BTreeMap<String, &str> = [
        (u.hang.to_string(), "nginx/upstream-timed-out"),
        (u.close.to_string(), "nginx/upstream-prematurely-closed"),
        (u.garbage.to_string(), "nginx/upstream-sent-invalid-header"),
        (u.invalid.to_string(), "nginx/upstream-sent-invalid-header"),
        ("dead_pool".to_string(), "nginx/no-live-upstreams"),
        (
            format!("unix:{}/missing.sock", st.dir.path().display()),
            UNREACHABLE,
        ),
    ]
    .into_iter()
    .collect();
    // One client for the quick failures; six for timeouts, which take a second or so each.
    let limit = Duration::from_secs(8);
    let mut quick = Traffic::start(
        st.nginx.listen,
        &[
            "/close/v1/orders",
            "/garbage/v1/orders",
            "/invalid/v1/orders",
            "/pool/v1/orders",
            "/unix/v1/orders",
        ],
        1,
        Duration::from_millis(10),
        limit,
    );
    let mut slow = Traffic::start(
        st.nginx.listen,
        &["/hang/v1/report"],
        6,
        Duration::ZERO,
        limit,
    );
    // Every upstream's incident opens (grouped into as few messages as arrive together).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    while seen.len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = incidents_in(&accepted(hook), "opened")
            .into_iter()
            .collect();
    }
    let hits = [quick.stop(), slow.stop()].concat();
    std::thread::sleep(Duration::from_millis(1500));
    let opened = incidents_in(&accepted(hook), "opened");
    let statuses: BTreeMap<(&str, u16), usize> = hits.iter().fold(BTreeMap::new(), |mut m, h| {
        *m.entry((h.path.as_str(), h.status)).or_default() += 1;
        m
    });
    let got: BTreeMap<String, &str> = opened
        .iter()
        .map(|(u, e)| (u.clone(), e.as_str()))
        .collect();
    assert_eq!(got, want, "requests made: {statuses:?}");
    // One alert per incident, and the unreachable entry only for the unix socket.
    assert_eq!(opened.len(), want.len(), "{opened:#?}");
    assert_eq!(
        opened.iter().filter(|(_, e)| e == UNREACHABLE).count(),
        1,
        "{opened:#?}"
    );
}

/// HAProxy's real configuration: `/app` goes to one server, killed under traffic; `/pool` to
/// servers that health checks have marked DOWN (`<NOSRV>`); `/mixed` to a healthy and a dead
/// server, which health checks take out of rotation.
fn haproxy_config(listen: SocketAddr, u: &Upstreams, app: SocketAddr) -> String {
    format!(
        r#"
global
    log stdout format raw local0

{defaults}
frontend fe
    bind {listen}
    use_backend app if {{ path_beg /app }}
    use_backend pool if {{ path_beg /pool }}
    default_backend mixed

backend app
    server web1 {app}
backend pool
    server p1 {p0} check inter 200ms fall 1 rise 1
    server p2 {p1} check inter 200ms fall 1 rise 1
backend mixed
    balance roundrobin
    server m1 {ok} check inter 200ms fall 1 rise 1
    server m2 {dead} check inter 200ms fall 1 rise 1
"#,
        defaults = super::real_haproxy::DEFAULTS,
        p0 = u.refused[0],
        p1 = u.refused[1],
        ok = u.ok,
        dead = upstreams::closed_port(),
    )
}

/// Scenario 4: HAProxy with a dead server (503, `SC`) and with every server of a backend down
/// (`<NOSRV>`): each gets its own entry; the dead server that health checks took out of a
/// healthy backend alerts nobody.
#[test]
fn haproxy_a_dead_server_and_a_backend_without_servers_get_their_entries() {
    let Some(bin) = require("haproxy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let u = upstreams::start();
    let mut app = Killable::start();
    let listen = upstreams::free_port();
    let conf = dir.path().join("haproxy.cfg");
    std::fs::write(&conf, haproxy_config(listen, &u, app.addr)).unwrap();
    let log = dir.path().join("haproxy.log");
    let child = Command::new(&bin)
        .args(["-db", "-f", conf.to_str().unwrap()])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy starts");
    let _haproxy = Running(child);
    assert!(upstreams::wait_for_port(listen), "haproxy did not start");
    let hook = Receiver::start(upstreams::free_port());
    let http = upstreams::free_port();
    let sources = format!(
        "[[source]]\npath = \"{}\"\nformat = \"haproxy\"\nstart_at = \"beginning\"\n",
        log.display()
    );
    let cfg = write_config(dir.path(), &sources, http, &webhook(&hook), QUICK_CLOSE);
    let (_gw, _log) = start_gatewatch(&cfg);
    // The health checks mark the dead servers DOWN.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("backend pool has no server available")
        || !std::fs::read_to_string(&log)
            .unwrap()
            .contains("mixed/m2 is DOWN")
    {
        assert!(Instant::now() < deadline, "no health-check verdicts");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut traffic = Traffic::start(
        listen,
        &["/app/v1/orders", "/mixed/v1/orders", "/pool/v1/orders"],
        1,
        Duration::from_millis(20),
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(1));
    app.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    while incidents_in(&accepted(&hook), "opened").len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let hits = traffic.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let mut opened = incidents_in(&accepted(&hook), "opened");
    opened.sort();
    assert_eq!(
        opened,
        [
            ("app/web1".to_string(), UNREACHABLE.to_string()),
            (
                "pool".to_string(),
                "haproxy/503-no-server-available".to_string()
            ),
        ],
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // The healthy backend answered throughout; the dead backends with HAProxy's 503.
    for h in &hits {
        let want: &[u16] = match &h.path[..4] {
            "/mix" => &[200],
            "/poo" => &[503],
            // A connection the server had not accepted yet when it died is reset: 502.
            _ => &[200, 502, 503],
        };
        assert!(want.contains(&h.status), "{h:?}");
    }
    let headline = accepted(&hook)
        .iter()
        .flat_map(|m| m["incidents"].as_array().unwrap().clone())
        .find(|i| i["upstream"] == "app/web1")
        .unwrap()["headline"]
        .clone();
    assert!(
        headline
            .as_str()
            .unwrap()
            .starts_with("503 burst: upstream app/web1 unreachable"),
        "{headline}"
    );
}

/// Runs the real logrotate over nginx's logs with a config of its own.
fn logrotate(bin: &Path, dir: &Path, name: &str, directives: &str) {
    let d = dir.display();
    let conf = dir.join(name);
    std::fs::write(
        &conf,
        format!("{d}/access.log {d}/error.log {{\n    rotate 5\n    nocompress\n{directives}}}\n"),
    )
    .unwrap();
    let o = Command::new(bin)
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "logrotate {name}: {}", stderr(&o));
}

/// Scenarios 5 and 7: in the middle of a burst, logrotate (create mode with nginx reopening its
/// logs, then copytruncate), `nginx -s reload` and `nginx -s reopen`: the same one alert and one
/// resolved note, and every line nginx wrote read exactly once (`/metrics` against the files).
#[test]
fn logrotate_and_nginx_reload_and_reopen_in_a_burst_lose_and_repeat_nothing() {
    let Some(rotate) = require("logrotate") else {
        return;
    };
    let Some(st) = Stage::new(1, false, QUICK_CLOSE) else {
        return;
    };
    let (d, hook, http) = (st.dir.path(), &st.hook, st.http);
    let (_gw, _log) = start_gatewatch(&st.cfg);
    let mut traffic = st.nginx.traffic(
        &["/refused/v1/orders", "/svc0/v1/orders"],
        1,
        Duration::from_millis(10),
    );
    wait_for_kind(hook, "opened", Duration::from_secs(10));
    let pause = Duration::from_millis(700);
    // Create mode: the logs are renamed, new ones created, nginx told to reopen (SIGUSR1).
    logrotate(
        &rotate,
        d,
        "create.conf",
        &format!(
            "    create\n    sharedscripts\n    postrotate\n        kill -USR1 $(cat {}/nginx.pid)\n    endscript\n",
            d.display()
        ),
    );
    std::thread::sleep(pause);
    // copytruncate: lines written between logrotate's copy and its truncation are lost by
    // logrotate itself (its manual says so), and lines not read yet when the file is truncated
    // exist only in the copy, which no source names. So the clients hold still while it runs.
    {
        let _held = traffic.pause.lock().unwrap();
        let written = traffic.hits().len() as u64;
        assert_eq!(wait_lines(http, &d.join("access.log"), written), written);
        logrotate(&rotate, d, "copytruncate.conf", "    copytruncate\n");
    }
    std::thread::sleep(pause);
    st.nginx.signal("reload");
    std::thread::sleep(pause);
    st.nginx.signal("reopen");
    std::thread::sleep(pause);
    let hits = traffic.stop();
    let written = hits.len() as u64;
    assert!(
        std::fs::metadata(d.join("access.log.2")).is_ok(),
        "both rotations happened"
    );
    // Every request is one line in the access logs, and every line was read once.
    assert_eq!(lines_on_disk(d, "access.log"), written);
    assert_eq!(wait_lines(http, &d.join("access.log"), written), written);
    let errors = lines_on_disk(d, "error.log");
    assert!(errors >= written / 2, "{errors} error-log lines");
    assert_eq!(wait_lines(http, &d.join("error.log"), errors), errors);
    // One incident: its alert, and once the burst is over its resolved note.
    wait_for_kind(hook, "resolved", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let all = accepted(hook);
    let want = [(st.u.refused[0].to_string(), UNREACHABLE.to_string())];
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(incidents_in(&all, "opened"), want);
    assert_eq!(incidents_in(&all, "resolved"), want);
}

/// Scenario 6: gatewatch stopped (SIGTERM) and later killed (SIGKILL) in the middle of an
/// incident: no alert twice, on either channel, and the resolved note still comes.
#[test]
fn gatewatch_stopped_and_killed_during_an_incident_alerts_once_and_still_resolves() {
    let Some(mut st) = Stage::new(1, true, QUICK_CLOSE) else {
        return;
    };
    let (hook, mail, api, cfg) = (
        &st.hook,
        st.mail.as_ref().unwrap(),
        &mut st.services[0],
        &st.cfg,
    );
    let (mut gw, _log) = start_gatewatch(cfg);
    let mut traffic = st
        .nginx
        .traffic(&["/svc0/v1/orders"], 1, Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(500));
    api.kill();
    wait_for_kind(hook, "opened", Duration::from_secs(10));
    mail.wait_for(1, Duration::from_secs(10));
    // Stopped, while the upstream is still down; failures go on meanwhile.
    unsafe_kill(gw.0.id(), "TERM");
    assert!(gw.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    // It takes the open incident back, before it is ready.
    let (mut gw, log) = spawn(cfg);
    wait_for(&log, "incident still open", Duration::from_secs(15));
    wait_for(&log, "ready", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    // Killed, with no chance to save anything.
    gw.0.kill().unwrap();
    gw.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (_gw, _log) = start_gatewatch(cfg);
    std::thread::sleep(Duration::from_secs(1));
    let before = traffic.hits().len();
    api.restart();
    traffic.wait_for(before, 200, Duration::from_secs(5));
    wait_for_kind(hook, "resolved", Duration::from_secs(25));
    mail.wait_for(2, Duration::from_secs(10));
    traffic.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let all = accepted(hook);
    let want = [(api.addr.to_string(), UNREACHABLE.to_string())];
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(incidents_in(&all, "opened"), want);
    assert_eq!(incidents_in(&all, "resolved"), want);
    assert_eq!(all[0]["incidents"][0]["key"], all[1]["incidents"][0]["key"]);
    let mails = mail.messages();
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| smtp::header(m, "Subject").unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:#?}");
    assert!(
        subjects[0].starts_with("[Incident] proxy-e2e:"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[Resolved] proxy-e2e:"),
        "{subjects:?}"
    );
}

/// The figures in the README (a measurement, not an assertion; `scripts/e2ebench.sh` runs it
/// with a release build): over repeated kills of a healthy upstream under steady traffic
/// (100 requests a second), the time from the first failed request the client saw to the
/// alert's arrival at the webhook receiver and at the SMTP server (STARTTLS and AUTH), with
/// every detector and alert setting at its default. Each kill is a new upstream, so every
/// alert is a new incident's (with the default 60 s window and quiet period, none closes
/// within the run). `E2EBENCH_KILLS` sets the number of kills (default 20).
#[test]
#[ignore = "a benchmark: scripts/e2ebench.sh runs it"]
fn bench_time_from_first_failed_request_to_alert() {
    let kills: usize = std::env::var("E2EBENCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let Some(mut st) = Stage::new(kills, true, "") else {
        return;
    };
    let (hook, mail) = (&st.hook, st.mail.as_ref().unwrap());
    let (_gw, _log) = start_gatewatch(&st.cfg);
    let since = |t: SystemTime, first: SystemTime| t.duration_since(first).unwrap_or_default();
    let (mut to_hook, mut to_mail, mut to_threshold) = (Vec::new(), Vec::new(), Vec::new());
    for (k, service) in st.services.iter_mut().enumerate() {
        let path = format!("/svc{k}/v1/orders");
        let mut traffic = Traffic::start(
            st.nginx.listen,
            &[&path],
            1,
            Duration::from_millis(10),
            Duration::from_secs(30),
        );
        std::thread::sleep(Duration::from_millis(500));
        let before = traffic.hits().len();
        service.kill();
        let first = traffic.wait_for(before, 502, Duration::from_secs(5)).at;
        let upstream = service.addr.to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (hook_at, mail_at) = loop {
            let hook_at = hook
                .requests()
                .into_iter()
                .find(|r| r.status < 300 && r.body.contains(&format!("\"{upstream}\"")))
                .map(|r| r.received);
            let mail_at = mail_arrival(mail, &upstream);
            if let (Some(h), Some(m)) = (hook_at, mail_at) {
                break (h, m);
            }
            assert!(Instant::now() < deadline, "no alert about {upstream}");
            std::thread::sleep(Duration::from_millis(2));
        };
        let failures: Vec<SystemTime> = traffic
            .hits()
            .into_iter()
            .skip(before)
            .filter(|h| h.status == 502)
            .map(|h| h.at)
            .collect();
        to_hook.push(since(hook_at, first));
        to_mail.push(since(mail_at, first));
        to_threshold.push(since(failures[9.min(failures.len() - 1)], first));
        service.restart();
        traffic.stop();
        // Apart by more than `group_wait`, so every alert is a message of its own.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let show = |what: &str, v: &mut Vec<Duration>| {
        v.sort();
        let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        eprintln!(
            "e2ebench: {what}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} kills)",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3,
            v.len()
        );
    };
    show(
        "first failed request to the 10th (the threshold)",
        &mut to_threshold,
    );
    show("first failed request to the webhook receiver", &mut to_hook);
    show("first failed request to the SMTP server", &mut to_mail);
}

/// When the SMTP server stored the first mail whose subject names `upstream` (its file's time).
fn mail_arrival(mail: &Smtp, upstream: &str) -> Option<SystemTime> {
    mail.message_files().into_iter().find_map(|p| {
        let raw = std::fs::read_to_string(&p).ok()?;
        let subject = smtp::header(&raw, "Subject")?;
        subject
            .contains(&format!("upstream {upstream} "))
            .then(|| std::fs::metadata(&p).ok()?.modified().ok())?
    })
}

/// Kubelet's part, as it does it: each line a container writes is framed as CRI (`TIME STREAM F
/// LINE`) into `pods/NS_POD_UID/CONTAINER/0.log`; `rotate` renames it to `0.log.TIMESTAMP` and
/// starts a new `0.log`, and gzips the one rotated before (kubelet keeps the newest rotated
/// file plain).
struct Kubelet {
    log: Arc<Mutex<(PathBuf, std::fs::File)>>,
    rotated: Mutex<Vec<PathBuf>>,
    lines: Arc<std::sync::atomic::AtomicU64>,
}

impl Kubelet {
    fn start(
        dir: &Path,
        out: std::process::ChildStdout,
        err: std::process::ChildStderr,
    ) -> Kubelet {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("0.log");
        let file = std::fs::File::create(&path).unwrap();
        let log = Arc::new(Mutex::new((path, file)));
        let lines = Arc::new(std::sync::atomic::AtomicU64::new(0));
        fn pump(
            from: impl std::io::Read + Send + 'static,
            stream: &'static str,
            log: Arc<Mutex<(PathBuf, std::fs::File)>>,
            lines: Arc<std::sync::atomic::AtomicU64>,
        ) {
            std::thread::spawn(move || {
                use std::io::{BufRead, Write};
                let mut r = std::io::BufReader::new(from);
                let mut line = Vec::new();
                while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ");
                    let mut framed = format!("{time} {stream} F ").into_bytes();
                    framed.extend_from_slice(text);
                    framed.push(b'\n');
                    let mut l = log.lock().unwrap();
                    l.1.write_all(&framed).unwrap();
                    lines.fetch_add(1, Ordering::SeqCst);
                    line.clear();
                }
            });
        }
        pump(out, "stdout", log.clone(), lines.clone());
        pump(err, "stderr", log.clone(), lines.clone());
        Kubelet {
            log,
            rotated: Mutex::new(Vec::new()),
            lines,
        }
    }

    fn rotate(&self) {
        let mut l = self.log.lock().unwrap();
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f");
        let to = l.0.with_file_name(format!("0.log.{stamp}"));
        std::fs::rename(&l.0, &to).unwrap();
        l.1 = std::fs::File::create(&l.0).unwrap();
        drop(l);
        let mut rotated = self.rotated.lock().unwrap();
        if let Some(older) = rotated.last() {
            let data = std::fs::read(older).unwrap();
            let gz = std::fs::File::create(format!("{}.gz", older.display())).unwrap();
            let mut e = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &data).unwrap();
            e.finish().unwrap();
            std::fs::remove_file(older).unwrap();
        }
        rotated.push(to);
    }
}

/// Issue 15: nginx in a pod. Real nginx writes its access lines (the official image's `main`
/// format, which names no upstream) to standard output and its errors to standard error; the
/// runtime frames both into one CRI log that kubelet rotates. gatewatch follows
/// `pods/*/*/*.log` as a container log: the upstream killed under traffic gets one alert that
/// names it (from the error line joined to the access line) and the pod; through two
/// rotations every line is read once.
#[test]
fn nginx_in_a_pod_cri_log_through_kubelet_rotation_alerts_once_with_the_pod() {
    let Some(bin) = require("nginx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let u = upstreams::start();
    let mut api = Killable::start();
    let (nginx, out) = Nginx::start_logging(&bin, dir.path(), &u, &[api.addr], true);
    let (stdout, stderr) = out.unwrap();
    let pod_dir = dir
        .path()
        .join("pods/shop_web-5f7c9_0b6f6c3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b/nginx");
    let kubelet = Kubelet::start(&pod_dir, stdout, stderr);
    let hook = Receiver::start(upstreams::free_port());
    let http = upstreams::free_port();
    let sources = format!(
        "[[source]]\npath = \"{}/pods/*/*/*.log\"\nformat = \"container\"\nstart_at = \"beginning\"\n",
        dir.path().display()
    );
    let cfg = write_config(dir.path(), &sources, http, &webhook(&hook), QUICK_CLOSE);
    let (_gw, _log) = start_gatewatch(&cfg);
    let mut traffic = nginx.traffic(&["/svc0/v1/orders"], 1, Duration::from_millis(20));
    std::thread::sleep(Duration::from_secs(2));
    kubelet.rotate();
    std::thread::sleep(Duration::from_secs(1));
    let healthy = traffic.hits();
    assert!(healthy.iter().all(|h| h.status == 200), "{healthy:?}");
    assert!(hook.requests().is_empty(), "{:#?}", hook.requests());

    api.kill();
    traffic.wait_for(healthy.len(), 502, Duration::from_secs(5));
    let opened = wait_for_kind(&hook, "opened", Duration::from_secs(10));
    let upstream = api.addr.to_string();
    assert_eq!(
        incidents_in(&opened, "opened"),
        [(upstream.clone(), UNREACHABLE.to_string())]
    );
    let incident = &opened[0]["incidents"][0];
    assert_eq!(incident["cause"], "upstream_unreachable");
    let sources: Vec<&str> = incident["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s.starts_with("pod shop/web-5f7c9/nginx")),
        "the alert names the pod: {sources:?}"
    );
    kubelet.rotate();
    api.restart();
    let before = traffic.hits().len();
    traffic.wait_for(before, 200, Duration::from_secs(5));
    wait_for_kind(&hook, "resolved", Duration::from_secs(20));
    traffic.stop();
    std::thread::sleep(Duration::from_secs(1));
    kubelet.rotate();
    let all = accepted(&hook);
    assert_eq!(all.len(), 2, "one alert and one resolved note: {all:#?}");
    // Every line the container wrote was read once, through the rotations (one of the
    // rotated files gzipped meanwhile).
    let written = kubelet.lines.load(Ordering::SeqCst);
    let file = pod_dir.join("0.log");
    let read = wait_lines(http, &file, written);
    assert_eq!(read, written, "lines read of {written} written");
}

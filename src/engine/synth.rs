//! Synthetic proxy traffic: realistic nginx access-log lines (and the error-log lines nginx
//! writes with them), with an optional burst of unreachable-upstream 502s. Used by the
//! benchmark's generator, the tests and the demo. Deterministic: the same seed gives the same
//! bytes.

use crate::engine::time::days_from_civil;
use std::fmt::Write as _;

/// The nginx `log_format` of the generated access lines (gatewatch's recommended format).
pub const LOG_FORMAT: &str = crate::engine::parse::nginx_access::GATEWATCH;

/// A burst of unreachable-upstream failures.
#[derive(Clone, Debug)]
pub struct Burst {
    /// Seconds after the start of the traffic.
    pub start_secs: u32,
    pub duration_secs: u32,
    /// Index into [`SynthConfig::upstreams`].
    pub upstream: usize,
    /// The share of that upstream's requests that fail during the burst (0.0 ..= 1.0).
    pub share: f64,
}

#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub seed: u64,
    /// Milliseconds since the epoch of the first line.
    pub start_ms: i64,
    pub requests_per_sec: u32,
    pub upstreams: Vec<String>,
    pub burst: Option<Burst>,
    /// Share of requests answered 500 by the application itself (not a gateway failure).
    pub app_error_share: f64,
}

impl Default for SynthConfig {
    fn default() -> SynthConfig {
        SynthConfig {
            seed: 0x5eed,
            // 2024-05-01T12:00:00Z
            start_ms: 1_714_564_800_000,
            requests_per_sec: 2_000,
            upstreams: vec![
                "10.0.1.5:8080".into(),
                "10.0.1.6:8080".into(),
                "10.0.1.7:8080".into(),
                "10.0.2.10:9000".into(),
            ],
            burst: None,
            app_error_share: 0.001,
        }
    }
}

/// One generated request.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    pub access: String,
    /// The error-log line nginx writes for a failed connection, if this request had one.
    pub error: Option<String>,
    /// True when this request is part of the burst.
    pub failed: bool,
}

const PATHS: [&str; 8] = [
    "/api/v1/orders",
    "/api/v1/orders/4711",
    "/api/v1/users/me",
    "/api/v1/items?page=2",
    "/api/v1/cart",
    "/static/app.js",
    "/health",
    "/api/v2/search?q=shoes",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "okhttp/4.12.0",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The traffic generator.
pub struct Synth {
    cfg: SynthConfig,
    rng: u64,
    n: u64,
}

impl Synth {
    pub fn new(cfg: SynthConfig) -> Synth {
        Synth {
            rng: cfg.seed | 1,
            cfg,
            n: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// The time of the `n`-th request.
    fn time_ms(&self, n: u64) -> i64 {
        self.cfg.start_ms + (n * 1000 / self.cfg.requests_per_sec.max(1) as u64) as i64
    }

    /// The next request.
    pub fn next_request(&mut self) -> Generated {
        let r = self.next_fields();
        let mut access = String::with_capacity(256);
        write_nginx(&mut access, &r);
        let error = r.failed.then(|| {
            let mut e = String::with_capacity(320);
            write_nginx_error(&mut e, &r);
            e
        });
        Generated {
            access,
            error,
            failed: r.failed,
        }
    }

    /// The next request as one line of `format` (`Nginx`: the access line).
    pub fn next_line(&mut self, format: SynthFormat, out: &mut String) -> bool {
        let r = self.next_fields();
        match format {
            SynthFormat::Nginx => write_nginx(out, &r),
            SynthFormat::NginxError => write_nginx_error(out, &r),
            SynthFormat::Haproxy => write_haproxy(out, &r),
            SynthFormat::Alb => write_alb(out, &r),
            SynthFormat::Ingress => write_ingress(out, &r),
        }
        r.failed
    }

    fn next_fields(&mut self) -> Request {
        let n = self.n;
        self.n += 1;
        let ms = self.time_ms(n);
        let secs_in = ((ms - self.cfg.start_ms) / 1000) as u32;
        let up_index = (self.next_u64() % self.cfg.upstreams.len() as u64) as usize;
        let client = 1 + (self.next_u64() % 254) as u8;
        let path = self.pick(&PATHS);
        let agent = self.pick(&AGENTS);
        let in_burst = self.cfg.burst.as_ref().is_some_and(|b| {
            b.upstream == up_index
                && secs_in >= b.start_secs
                && secs_in < b.start_secs + b.duration_secs
        });
        let failed = in_burst && {
            let share = self.cfg.burst.as_ref().map_or(0.0, |b| b.share);
            self.chance(share)
        };
        let (status, bytes, rt) = if failed {
            (502, 157, 0)
        } else if self.chance(self.cfg.app_error_share) {
            (500, 64, 30)
        } else {
            let status = if self.chance(0.02) { 404 } else { 200 };
            let bytes = 200 + self.next_u64() % 20_000;
            let rt = 1 + self.next_u64() % 120;
            (status, bytes, rt)
        };
        Request {
            n,
            ms,
            client,
            method: if path.contains("cart") { "POST" } else { "GET" },
            path,
            agent,
            upstream: self.cfg.upstreams[up_index].clone(),
            up_index,
            status,
            bytes,
            rt,
            failed,
        }
    }
}

/// The formats the generator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthFormat {
    /// nginx access log in [`LOG_FORMAT`].
    Nginx,
    /// nginx error log: every request as the error line of a refused connection.
    NginxError,
    /// HAProxy HTTP log (`option httplog`) in a syslog header; a failed request ends `SC--`.
    Haproxy,
    /// AWS ALB access log; a failed request is a 502 its target never answered.
    Alb,
    /// ingress-nginx's access log (`upstreaminfo`): the service in brackets, the pod's
    /// address; a failed request is a 502 the pod never answered.
    Ingress,
}

/// One request's fields, before it is written in a format.
struct Request {
    n: u64,
    ms: i64,
    client: u8,
    method: &'static str,
    path: &'static str,
    agent: &'static str,
    upstream: String,
    up_index: usize,
    status: u16,
    bytes: u64,
    rt: u64,
    failed: bool,
}

fn write_nginx(out: &mut String, r: &Request) {
    let (client, method, path, agent, upstream) =
        (r.client, r.method, r.path, r.agent, &r.upstream);
    let _ = write!(
        out,
        "203.0.113.{client} - - [{}] \"{method} {path} HTTP/1.1\" ",
        clf(r.ms)
    );
    let status = r.status;
    match status {
        502 => {
            let _ = write!(
                out,
                "502 157 \"-\" \"{agent}\" api.example.com {upstream} 502 - - 0.000 0.001"
            );
        }
        500 => {
            let _ = write!(
                out,
                "500 64 \"-\" \"{agent}\" api.example.com {upstream} 500 0.001 0.030 0.030 0.031"
            );
        }
        _ => {
            let (bytes, rt) = (r.bytes, r.rt);
            let _ = write!(
                out,
                "{status} {bytes} \"-\" \"{agent}\" api.example.com {upstream} {status} 0.001 0.{rt:03} 0.{rt:03} 0.{:03}",
                rt + 1
            );
        }
    }
}

/// The services of [`SynthFormat::Ingress`], one per upstream (as ingress-nginx names them:
/// namespace, service, port).
const SERVICES: [&str; 4] = [
    "shop-api-8080",
    "shop-checkout-payments-8443",
    "default-web-80",
    "monitoring-grafana-3000",
];

fn write_ingress(out: &mut String, r: &Request) {
    let (client, method, path, agent, upstream) =
        (r.client, r.method, r.path, r.agent, &r.upstream);
    let service = SERVICES[r.up_index % SERVICES.len()];
    let _ = write!(
        out,
        "203.0.113.{client} - - [{}] \"{method} {path} HTTP/1.1\" ",
        clf(r.ms)
    );
    let (status, bytes, rt, sent) = match r.status {
        502 => (502, 157, 0, 0),
        500 => (500, 64, 30, 64),
        s => (s, r.bytes, r.rt, r.bytes),
    };
    let _ = write!(
        out,
        "{status} {bytes} \"-\" \"{agent}\" {} 0.{:03} [{service}] [] {upstream} {sent} 0.{rt:03} {status} {:032x}",
        180 + r.n % 400,
        rt + 1,
        r.n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
}

fn write_nginx_error(out: &mut String, r: &Request) {
    let (client, method, path, upstream) = (r.client, r.method, r.path, &r.upstream);
    let _ = write!(
        out,
        "{} [error] 2118#2118: *{} connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.{client}, server: api.example.com, request: \"{method} {path} HTTP/1.1\", upstream: \"http://{upstream}{path}\", host: \"api.example.com\"",
        error_time(r.ms),
        r.n + 1
    );
}

fn write_haproxy(out: &mut String, r: &Request) {
    let (y, m, d, h, mi, s) = civil(r.ms);
    let month = MONTHS[(m - 1) as usize];
    let ms = r.ms.rem_euclid(1000);
    let (client, method, path, srv) = (r.client, r.method, r.path, r.up_index + 1);
    let _ = write!(
        out,
        "{month} {d:>2} {h:02}:{mi:02}:{s:02} lb1 haproxy[14389]: 203.0.113.{client}:{} [{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02}.{ms:03}] http-in app/srv{srv} ",
        30_000 + r.n % 30_000
    );
    if r.failed {
        // The connection to the server failed: HAProxy answers 503 and says SC.
        let _ = write!(
            out,
            "0/0/-1/-1/3001 503 212 - - SC-- 12/12/0/0/3 0/0 \"{method} {path} HTTP/1.1\""
        );
    } else {
        let (status, bytes, rt) = (r.status, r.bytes, r.rt);
        let _ = write!(
            out,
            "0/0/1/{rt}/{} {status} {bytes} - - ---- 12/12/3/1/0 0/0 \"{method} {path} HTTP/1.1\"",
            rt + 2
        );
    }
}

fn write_alb(out: &mut String, r: &Request) {
    let (y, m, d, h, mi, s) = civil(r.ms);
    let us = r.ms.rem_euclid(1000) * 1000;
    let time = format!("{y}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z");
    let (client, method, path, agent, target) = (r.client, r.method, r.path, r.agent, &r.upstream);
    let _ = write!(
        out,
        "https {time} app/my-alb/50dc6c495c0c9188 203.0.113.{client}:{} {target} ",
        30_000 + r.n % 30_000
    );
    // A target that never answered has no times and no status of its own.
    let (times, status, bytes, target_status) = if r.failed {
        ("-1 -1 -1".to_string(), 502, 272, "-".to_string())
    } else {
        let rt = r.rt;
        (
            format!("0.000 0.{rt:03} 0.000"),
            r.status,
            r.bytes,
            r.status.to_string(),
        )
    };
    let _ = write!(
        out,
        "{times} {status} {target_status} 496 {bytes} \"{method} https://api.example.com:443{path} HTTP/1.1\" \"{agent}\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/73e2d6bc24d8a067 \"Root=1-58337262-{:024x}\" \"api.example.com\" \"-\" 0 {time} \"forward\" \"-\" \"-\" \"{target}\" \"{target_status}\" \"-\" \"-\"",
        r.n
    );
}

fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    // Inverse of days_from_civil (Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    debug_assert_eq!(days_from_civil(y, m, d), days);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `01/May/2024:12:00:00 +0000`
pub fn clf(ms: i64) -> String {
    let (y, m, d, h, mi, s) = civil(ms);
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(m - 1) as usize]
    )
}

/// `2024/05/01 12:00:00` (nginx error log; the generator writes UTC).
pub fn error_time(ms: i64) -> String {
    let (y, m, d, h, mi, s) = civil(ms);
    format!("{y}/{m:02}/{d:02} {h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::Cause;
    use crate::engine::parse::{LogFormat, Parser, ParserOptions};

    #[test]
    fn generated_lines_parse_as_intended() {
        let mut s = Synth::new(SynthConfig {
            burst: Some(Burst {
                start_secs: 0,
                duration_secs: 10,
                upstream: 0,
                share: 1.0,
            }),
            ..SynthConfig::default()
        });
        let opts = ParserOptions {
            log_format: Some(LogFormat::from_directive(LOG_FORMAT).unwrap()),
            ..ParserOptions::default()
        };
        let mut p = Parser::new(crate::engine::event::Format::NginxAccess, &opts, &[]);
        let mut failed = 0;
        for _ in 0..2_000 {
            let g = s.next_request();
            let ev = p.parse(g.access.as_bytes()).unwrap();
            assert_eq!(
                ev.cause == Cause::UpstreamUnreachable,
                g.failed,
                "{}",
                g.access
            );
            failed += g.failed as u32;
            assert_eq!(g.error.is_some(), g.failed);
        }
        assert!(failed > 300, "{failed}");
        // ingress-nginx's `upstreaminfo`: a failed request is a 502 (which alone names no
        // cause: the error log's line does), the others are counted under their service.
        let (name, text) = crate::engine::parse::nginx_access::KNOWN
            .iter()
            .find(|(n, _)| *n == "upstreaminfo")
            .expect("upstreaminfo");
        let opts = ParserOptions {
            log_format: Some(
                LogFormat::compile(
                    name,
                    crate::engine::parse::nginx_access::Escape::Default,
                    text,
                )
                .unwrap(),
            ),
            ..ParserOptions::default()
        };
        let mut p = Parser::new(crate::engine::event::Format::NginxAccess, &opts, &[]);
        let mut line = String::new();
        let (mut failures, mut answered) = (0, 0);
        for _ in 0..2_000 {
            line.clear();
            let failed = s.next_line(SynthFormat::Ingress, &mut line);
            let ev = p
                .parse(line.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(ev.status == Some(502), failed, "{line}");
            failures += failed as u32;
            if let Some(a) = p.answered(line.as_bytes()) {
                let service = a.upstream.get(line.as_bytes()).unwrap_or_default();
                assert!(SERVICES.iter().any(|s| s.as_bytes() == service), "{line}");
                answered += 1;
            }
        }
        assert!(failures > 100 && answered > 1_000, "{failures} {answered}");
        // Every format: a failed request is an upstream failure of that format, the others
        // are not.
        use crate::engine::event::Format;
        for (sf, f) in [
            (SynthFormat::NginxError, Format::NginxError),
            (SynthFormat::Haproxy, Format::Haproxy),
            (SynthFormat::Alb, Format::Alb),
        ] {
            let mut s = Synth::new(SynthConfig {
                burst: Some(Burst {
                    start_secs: 0,
                    duration_secs: 10,
                    upstream: 0,
                    share: 0.5,
                }),
                ..SynthConfig::default()
            });
            let mut p = Parser::new(f, &ParserOptions::default(), &[]);
            let mut line = String::new();
            let mut failures = 0;
            for _ in 0..2_000 {
                line.clear();
                let failed = s.next_line(sf, &mut line);
                let ev = p
                    .parse(line.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}: {line}"));
                if sf == SynthFormat::NginxError {
                    assert_eq!(ev.cause, Cause::UpstreamUnreachable, "{line}");
                } else {
                    assert_eq!(ev.cause == Cause::UpstreamUnreachable, failed, "{line}");
                }
                failures += failed as u32;
            }
            assert!(failures > 100, "{sf:?} {failures}");
        }
        assert_eq!(clf(1_714_564_800_000), "01/May/2024:12:00:00 +0000");
        assert_eq!(error_time(1_714_564_800_000), "2024/05/01 12:00:00");
    }
}

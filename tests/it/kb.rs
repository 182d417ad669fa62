//! The knowledge base as shipped: the reference entry transcribed completely, and every entry
//! usable by an on-call engineer in both languages.

use gatewatch::engine::event::Cause;
use gatewatch::engine::kb::{Lang, Placeholders};

fn kb() -> gatewatch::engine::kb::Kb {
    gatewatch::app::patterns::load_kb(&[]).expect("the built-in knowledge base loads")
}

/// The text of the reference entry (shared/kb), as published, with three deliberate
/// corrections: nginx from 1.22 (Debian 12's, which the end-to-end tests run; the matched
/// messages are much older than 1.24), the first workaround's example on the same upstream as
/// the third (the published one mixed `upstream-service:8080` and `10.0.1.5:8080`), and the DNS
/// dead end worded for any upstream (it said "port 8080" whatever the upstream was).
mod reference {
    pub const ID: &str = "api/http-502-bad-gateway-upstream-unreachable";
    pub const TITLE: &str = "502 Bad Gateway: upstream server unreachable";
    pub const ROOT_CAUSE_EN: &str = "The API gateway or reverse proxy received an invalid response from the upstream server, often due to the upstream being down, overloaded, or misconfigured in the load balancer.";
    pub const ROOT_CAUSE_ZH: &str = "API 网关或反向代理从上游服务器收到无效响应,通常是由于上游服务器宕机、过载或负载均衡器配置错误。";
    pub const WORKAROUNDS: [(f64, &str, &str); 3] = [
        (
            0.90,
            "Check upstream server health via a health check endpoint (e.g., `/health`). Example: `curl -I http://10.0.1.5:8080/health`. If it fails, restart the upstream service or check its logs.",
            "通过健康检查端点(例如 `/health`)检查上游服务器健康状态。示例:`curl -I http://10.0.1.5:8080/health`。如果失败,重启上游服务或检查其日志。",
        ),
        (
            0.85,
            "Verify load balancer configuration, ensuring the upstream server is correctly listed and the port matches. Example: `nginx -t` to test Nginx config, then `systemctl reload nginx`.",
            "验证负载均衡器配置,确保上游服务器正确列出且端口匹配。示例:`nginx -t` 测试 Nginx 配置,然后 `systemctl reload nginx`。",
        ),
        (
            0.80,
            "Temporarily bypass the gateway by hitting the upstream directly (if network permits) to isolate the issue. Example: `curl http://10.0.1.5:8080/api/v1/resource`.",
            "临时绕过网关直接访问上游(如果网络允许)以隔离问题。示例:`curl http://10.0.1.5:8080/api/v1/resource`。",
        ),
    ];
    pub const DEAD_ENDS: [(f64, &str); 3] = [
        (
            0.90,
            "The upstream server itself is unhealthy; restarting the gateway does not fix the upstream issue.",
        ),
        (
            0.75,
            "If the upstream is down, timeouts only delay failure detection; the root cause (e.g., crashed service) remains.",
        ),
        (
            0.60,
            "While DNS can cause this, the error often stems from upstream service failure (e.g., nothing listening on the upstream's port), not DNS resolution.",
        ),
    ];
}

#[test]
fn the_reference_entry_is_transcribed_completely() {
    let kb = kb();
    let e = kb.get(
        kb.find(reference::ID)
            .expect("the reference entry is shipped"),
    );
    assert_eq!(e.title.en, reference::TITLE);
    assert!(!e.title.zh.is_empty());
    assert_eq!(
        (e.category.as_str(), e.kind.as_str(), e.ai_generated),
        ("api", "network_error", true)
    );
    assert_eq!(
        (e.fix_rate, e.confidence, e.evidence_count),
        (0.85, 0.88, 1)
    );
    assert_eq!(e.first_seen, "2023-06-10");
    assert_eq!(e.root_cause.en, reference::ROOT_CAUSE_EN);
    assert_eq!(e.root_cause.zh, reference::ROOT_CAUSE_ZH);
    assert_eq!(e.root_cause_tag.as_deref(), Some("generic"));
    assert_eq!(
        e.docs,
        ["https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_pass"]
    );
    let versions: Vec<(&str, &str, &str)> = e
        .versions
        .iter()
        .map(|v| (v.product.as_str(), v.versions.as_str(), v.status.as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            ("Nginx", "1.22+", "active"),
            ("HAProxy", "2.8+", "active"),
            ("AWS ALB", "(2024)", "active")
        ]
    );
    assert_eq!(e.workarounds.len(), 3);
    for (w, (rate, en, zh)) in e.workarounds.iter().zip(reference::WORKAROUNDS) {
        assert_eq!(w.success_rate, rate);
        // Without an incident, the text reads exactly as published.
        assert_eq!(w.render(Lang::En, None), en);
        assert_eq!(w.render(Lang::Zh, None), zh);
    }
    assert_eq!(e.dead_ends.len(), 3);
    for (d, (rate, why)) in e.dead_ends.iter().zip(reference::DEAD_ENDS) {
        assert_eq!(d.fail_rate, rate);
        assert_eq!(d.why.en, why);
        assert!(!d.name.en.is_empty() && !d.name.zh.is_empty() && !d.why.zh.is_empty());
    }
    // With an incident, the commands name the live upstream.
    let p = Placeholders::for_upstream("10.0.1.7:9000");
    assert!(
        e.workarounds[0]
            .render(Lang::En, Some(&p))
            .contains("`curl -I http://10.0.1.7:9000/health`")
    );
    assert!(
        e.workarounds[2]
            .render(Lang::Zh, Some(&p))
            .contains("`curl http://10.0.1.7:9000/api/v1/resource`")
    );
}

#[test]
fn every_failure_cause_has_an_entry_for_every_format_that_shows_it() {
    use gatewatch::engine::event::Format::*;
    let kb = kb();
    let covered = |cause: Cause, format: gatewatch::engine::event::Format| {
        kb.entries().any(|e| {
            e.causes.contains(&cause) && (e.formats.is_empty() || e.formats.contains(&format))
        })
    };
    let table = [
        (
            Cause::UpstreamUnreachable,
            vec![
                NginxAccess,
                NginxError,
                Haproxy,
                Alb,
                ApacheAccess,
                ApacheError,
                Caddy,
            ],
        ),
        (
            Cause::NoLiveUpstreams,
            vec![
                NginxAccess,
                NginxError,
                Haproxy,
                Alb,
                ApacheAccess,
                ApacheError,
                Caddy,
            ],
        ),
        (
            Cause::UpstreamTimeout,
            vec![NginxAccess, NginxError, Haproxy, Alb, ApacheError, Caddy],
        ),
        (
            Cause::UpstreamReset,
            vec![NginxError, Haproxy, ApacheError, Caddy],
        ),
        (
            Cause::UpstreamProtocolError,
            vec![NginxAccess, NginxError, Haproxy, Alb, Caddy],
        ),
        (Cause::DnsFailure, vec![NginxError, ApacheError, Caddy]),
        (Cause::TlsFailure, vec![NginxError, Caddy]),
    ];
    for (cause, formats) in table {
        for f in formats {
            assert!(covered(cause, f), "no entry for {cause} in {f}");
        }
    }
}

#[test]
fn every_entry_speaks_both_languages_and_ranks_its_workarounds() {
    for e in kb().entries() {
        assert!(
            !e.title.zh.is_empty() && !e.root_cause.zh.is_empty(),
            "{}",
            e.id
        );
        assert!(e.workarounds.len() >= 2, "{}", e.id);
        assert!(!e.dead_ends.is_empty(), "{}", e.id);
        assert!(
            e.workarounds
                .windows(2)
                .all(|w| w[0].success_rate >= w[1].success_rate),
            "{}",
            e.id
        );
        for w in &e.workarounds {
            for lang in [Lang::En, Lang::Zh] {
                let text = w.render(lang, Some(&Placeholders::for_upstream("10.0.1.5:8080")));
                assert!(
                    !text.contains("{command}") && !text.contains("{upstream}"),
                    "{}: {text}",
                    e.id
                );
            }
        }
        assert!(e.docs.iter().all(|d| d.starts_with("https://")), "{}", e.id);
        if e.category == gatewatch::engine::kb::SELF_ALARMS {
            // gatewatch's own alarms (format drift) explain no log line.
            assert!(e.causes.is_empty() && e.examples.is_empty(), "{}", e.id);
            continue;
        }
        assert!(
            !e.examples.is_empty() && !e.near_misses.is_empty(),
            "{}",
            e.id
        );
    }
}

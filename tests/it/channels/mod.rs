//! The chat and push channels beyond email and webhooks: Telegram, ntfy, Google Chat,
//! Mattermost and Matrix. Each has a file of its own here: its forms pinned as snapshots, a
//! message too big for the service fitted to its limit with log content kept inert, and a check
//! of a request the way the service reads it. This file delivers an alert and a daily summary
//! through all five to a real HTTP receiver on loopback.

mod googlechat;
mod matrix;
mod mattermost;
mod ntfy;
mod telegram;

use super::delivery::{daemon_config, write};
use super::receiver::{Receiver, Request};
use super::*;
use gatewatch::delivery::channel::{self, ChannelConfig};
use gatewatch::engine::kb::{Kb, Lang};
use gatewatch::render::alert::{self, AlertKind, AlertView, Templates};

/// The channel a config text names (the first), as gatewatch reads it.
pub fn channel(toml: &str) -> ChannelConfig {
    let cfg = gatewatch::app::config::Config::parse("gw.toml", toml)
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    cfg.channels[0].clone()
}

/// The templates a channel renders with.
pub fn templates(ch: &ChannelConfig) -> Templates {
    channel::templates(ch.kind.as_ref(), None).unwrap()
}

pub fn kb() -> Kb {
    super::alerts::kb()
}

/// Forty upstreams failing together, each with a long and hostile sample line: more than any
/// of these services takes in one message.
pub fn too_big(kb: &Kb) -> AlertView {
    let incs: Vec<_> = (0..40)
        .map(|n| {
            let mut i = alert::sample(kb).unwrap();
            i.upstream = format!("10.0.2.{n}:8080");
            i.vhosts.values = vec![("<!channel> @all [click](http://evil.example)".into(), 3)];
            i.paths.values = vec![("/<img src=x onerror=alert(1)>&amp;".into(), 3)];
            i.samples = vec![format!(
                "1.2.3.4 - - \"GET /<script>x</script> HTTP/1.1\" 502 @everyone {}",
                "x".repeat(3000)
            )];
            i
        })
        .collect();
    alert::view(AlertKind::Opened, &incs, kb, Lang::En, "proxy-1", &[])
}

/// JSON pretty-printed for a snapshot.
pub fn pretty(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

/// Simple HTML as chat services take it: only `allowed` tags, each closed in order (a service
/// refuses the message otherwise), no raw `<` or `&` that is not an entity.
pub fn check_html(html: &str, allowed: &[&str]) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        let tail = &rest[i..];
        if tail.starts_with('&') {
            let end = tail
                .find(';')
                .unwrap_or_else(|| panic!("a bare & in {html}"));
            let entity = &tail[1..end];
            assert!(
                entity.starts_with('#') || ["amp", "lt", "gt", "quot"].contains(&entity),
                "an entity the service does not know: &{entity}; in {html}"
            );
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail
            .find('>')
            .unwrap_or_else(|| panic!("an unclosed tag in {html}"));
        let tag = &tail[1..end];
        let (closing, name) = match tag.strip_prefix('/') {
            Some(n) => (true, n),
            None => (false, tag.split([' ', '/']).next().unwrap()),
        };
        assert!(allowed.contains(&name), "the tag <{tag}> in {html}");
        if closing {
            assert_eq!(
                open.pop().as_deref(),
                Some(name),
                "misnested </{name}> in {html}"
            );
        } else if name != "br" {
            open.push(name.to_string());
        }
        rest = &tail[end + 1..];
    }
    assert!(open.is_empty(), "unclosed {open:?} in {html}");
}

/// The configuration of all five channels, pointing at `a`.
fn five_channels(a: std::net::SocketAddr, dir: &Path) -> String {
    let token = write(dir, "bot-token", "123456:ABC-secret\n");
    let matrix = write(dir, "matrix-token", "syt_matrix_secret\n");
    let ntfy = write(dir, "ntfy-token", "tk_ntfy_secret\n");
    format!(
        "[[channel]]\nname = \"tg\"\nkind = \"telegram\"\nchat_id = -1001234567890\ntoken_file = \"{}\"\napi_url = \"http://{a}\"\n\n\
         [[channel]]\nname = \"push\"\nkind = \"ntfy\"\nurl = \"http://{a}/gatewatch-alerts\"\ntoken_file = \"{}\"\n\n\
         [[channel]]\nname = \"gchat\"\nkind = \"googlechat\"\nurl = \"http://{a}/v1/spaces/AAAA/messages?key=KEY&token=TOKEN\"\n\n\
         [[channel]]\nname = \"mm\"\nkind = \"mattermost\"\nurl = \"http://{a}/hooks/xyz\"\n\n\
         [[channel]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"http://{a}\"\nroom = \"!room:example.org\"\naccess_token_file = \"{}\"\nlang = \"zh\"\n",
        token.display(),
        ntfy.display(),
        matrix.display()
    )
}

/// `gatewatch check` accepts the five; `test-alert` and `summary --send` deliver through each,
/// and every request is what the service takes.
#[test]
fn an_alert_and_a_summary_reach_each_service_as_it_expects() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(super::upstreams::free_port());
    let cfg = write(
        dir.path(),
        "gatewatch.toml",
        &daemon_config(dir.path(), &five_channels(hook.addr, dir.path())),
    );
    let c = cfg.to_str().unwrap();
    let o = run(&["check", "--config", c]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = run(&["test-alert", "--config", c]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    for name in ["tg", "push", "gchat", "mm", "mx"] {
        assert!(
            stdout(&o).contains(&format!("{name}: sent")),
            "{}",
            stdout(&o)
        );
    }
    gatewatch::store::State::open(&dir.path().join("state")).unwrap();
    let o = run(&[
        "summary",
        "--config",
        c,
        "--send",
        "--date",
        "2024-05-01",
        "--timezone",
        "UTC",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 10, "an alert and a summary each: {reqs:#?}");
    let of = |prefix: &str| -> Vec<&Request> {
        reqs.iter().filter(|r| r.path.starts_with(prefix)).collect()
    };
    for (prefix, check) in [
        ("/bot", telegram::check_request as fn(&Request)),
        ("/gatewatch-alerts", ntfy::check_request),
        ("/v1/spaces/", googlechat::check_request),
        ("/hooks/", mattermost::check_request),
        ("/_matrix/", matrix::check_request),
    ] {
        let got = of(prefix);
        assert_eq!(got.len(), 2, "{prefix}: {reqs:#?}");
        for r in got {
            check(r);
        }
    }
    // An alert goes to its incident's thread; the summary to the space.
    assert!(
        of("/v1/spaces/")[0].query.contains("threadKey="),
        "{}",
        of("/v1/spaces/")[0].query
    );
    assert!(!of("/v1/spaces/")[1].query.contains("threadKey="));
    // The summary is recognisable in each.
    assert!(
        of("/bot")[1].json()["text"]
            .as_str()
            .unwrap()
            .contains("<pre>")
    );
    assert!(
        of("/_matrix/")[1].json()["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<pre>")
    );
    // Secrets stay out of what gatewatch printed.
    for secret in ["ABC-secret", "syt_matrix_secret", "tk_ntfy_secret", "TOKEN"] {
        assert!(!stdout(&o).contains(secret) && !stderr(&o).contains(secret));
    }

    // A refusal names the host, never the URL with its token.
    hook.answer(&[(401, None)]);
    let o = run(&["test-alert", "--config", c, "--channel", "tg"]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("tg: FAILED: 127.0.0.1: HTTP 401"), "{out}");
    assert!(!out.contains("ABC-secret"), "{out}");
}

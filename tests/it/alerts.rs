//! What alerts say: every rendered form of a sample incident pinned as a snapshot
//! (`tests/snapshots/`; `GATEWATCH_BLESS=1` rewrites them after a deliberate change), the JSON
//! forms valid JSON, and hostile log content kept inert in every format.

use gatewatch::delivery::channel::webhook::{self, WebhookFormat};
use gatewatch::engine::kb::{Kb, Lang};
use gatewatch::render::alert::{self, AlertKind, AlertView, Templates};
use std::path::Path;

pub fn kb() -> Kb {
    gatewatch::app::patterns::load_kb(&[]).expect("the built-in knowledge base loads")
}

/// Compares a rendered form with its snapshot; with `GATEWATCH_BLESS=1`, writes it.
pub fn snapshot(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("GATEWATCH_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (GATEWATCH_BLESS=1 writes it)", path.display()));
    if want != got {
        let line = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from its snapshot at line {}:\n want: {:?}\n  got: {:?}\n(GATEWATCH_BLESS=1 rewrites the snapshots)",
            line + 1,
            want.lines().nth(line),
            got.lines().nth(line)
        );
    }
}

/// The sample incident (upstream 10.0.1.5:8080 refusing connections) as a message.
pub fn sample_view(kb: &Kb, kind: AlertKind, lang: Lang) -> AlertView {
    let mut inc = alert::sample(kb).unwrap();
    if kind == AlertKind::Resolved {
        inc.closed_ms = Some(inc.end_ms + 60_000);
    }
    alert::view(
        kind,
        &[inc],
        kb,
        lang,
        "proxy-1.example.com",
        &["/var/log/nginx/access.log".to_string()],
    )
}

/// The sample with what this installation learned: a local record (#3 worked six times out
/// of six, #1 never, #2 once and recovery followed it twice), the signed one-click links, and
/// for a resolved note what the recovery followed.
pub fn learned_view(kb: &Kb, kind: AlertKind, lang: Lang) -> AlertView {
    use gatewatch::engine::kb::evidence::{Item, Local};
    let mut inc = alert::sample(kb).unwrap();
    if kind == AlertKind::Resolved {
        inc.closed_ms = Some(inc.end_ms + 60_000);
        inc.recovery = vec![gatewatch::engine::recovery::Recovery {
            signal: gatewatch::engine::event::Signal::NginxReload,
            at_ms: inc.end_ms - 2_000,
            server: None,
        }];
    }
    let mut local = std::collections::BTreeMap::new();
    local.insert(Item::Workaround(3), Local::new(6, 6));
    local.insert(Item::Workaround(1), Local::new(6, 0));
    local.insert(
        Item::Workaround(2),
        Local {
            tried: 1,
            fixed: 1,
            followed: 2,
        },
    );
    let signer = gatewatch::render::links::Signer::new(
        b"a snapshot key of 32 bytes......",
        "https://gw.example.com",
        7 * 86_400,
    );
    let item = alert::item(
        &inc,
        kb,
        lang,
        "proxy-1.example.com",
        &["/var/log/nginx/access.log".to_string()],
        alert::Extra {
            local: Some(&local),
            links: Some((&signer, kind, 1_714_565_400_000)),
        },
    );
    alert::compose(kind, "proxy-1.example.com", lang, "gw-sample", vec![item])
}

/// The view a snapshot is named for: the sample, or with `.learned` the learned one.
pub fn named_view(kb: &Kb, kind: AlertKind, lang: Lang, name: &str) -> AlertView {
    if name.contains(".learned") {
        learned_view(kb, kind, lang)
    } else {
        sample_view(kb, kind, lang)
    }
}

const NOW: &str = "2024-05-01T12:10:00+00:00";

#[test]
fn every_rendered_form_matches_its_snapshot() {
    let kb = kb();
    let t = Templates::new(None).unwrap();
    for (kind, lang, suffix) in [
        (AlertKind::Opened, Lang::En, "opened"),
        (AlertKind::Resolved, Lang::En, "resolved"),
        (AlertKind::Opened, Lang::Zh, "opened.zh"),
        (AlertKind::Opened, Lang::En, "opened.learned"),
        (AlertKind::Resolved, Lang::En, "resolved.learned"),
        (AlertKind::Opened, Lang::Zh, "opened.zh.learned"),
    ] {
        let v = named_view(&kb, kind, lang, suffix);
        snapshot(&format!("console.{suffix}.txt"), &t.console(&v).unwrap());
        let mail = t.email(&v).unwrap();
        snapshot(
            &format!("email.{suffix}.txt"),
            &format!("Subject: {}\n\n{}", mail.subject, mail.text),
        );
        snapshot(&format!("email.{suffix}.html"), &mail.html);
        for (format, name) in [
            (WebhookFormat::Json, "json"),
            (WebhookFormat::Slack, "slack"),
            (WebhookFormat::Teams, "teams"),
            (WebhookFormat::Discord, "discord"),
            (WebhookFormat::Alertmanager, "alertmanager"),
            (WebhookFormat::Pagerduty, "pagerduty"),
        ] {
            let bodies = webhook::bodies(&t, format, &v, Some("R0UTINGKEY"), NOW).unwrap();
            let pretty: Vec<String> = bodies
                .iter()
                .map(|b| {
                    let v: serde_json::Value = serde_json::from_str(b).unwrap();
                    serde_json::to_string_pretty(&v).unwrap()
                })
                .collect();
            snapshot(
                &format!("{name}.{suffix}.json"),
                &(pretty.join("\n") + "\n"),
            );
        }
    }
}

#[test]
fn the_alert_fills_the_upstream_into_the_entrys_commands() {
    let kb = kb();
    let v = sample_view(&kb, AlertKind::Opened, Lang::En);
    let e = &v.entries[0];
    assert_eq!(e.id, "api/http-502-bad-gateway-upstream-unreachable");
    let all: Vec<&str> = e.workarounds.iter().map(|w| w.text.as_str()).collect();
    assert!(
        all.iter()
            .any(|w| w.contains("curl -I http://10.0.1.5:8080/health")),
        "{all:?}"
    );
    // Another upstream than the entry's own examples: every command names it.
    let mut inc = alert::sample(&kb).unwrap();
    inc.upstream = "10.9.8.7:9443".into();
    let other = alert::view(AlertKind::Opened, &[inc], &kb, Lang::En, "proxy-1", &[]);
    let texts: Vec<&str> = other.entries[0]
        .workarounds
        .iter()
        .map(|w| w.text.as_str())
        .collect();
    assert!(
        texts
            .iter()
            .any(|w| w.contains("curl -I http://10.9.8.7:9443/health")),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|w| w.contains("10.0.1.5")), "{texts:?}");
    // Ranked by success rate, with the dead ends and their fail rates.
    let rates: Vec<u32> = e.workarounds.iter().map(|w| w.success_pct).collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
    assert_eq!(e.dead_ends.len(), 3);
    assert!(
        e.dead_ends
            .iter()
            .all(|d| d.fail_pct > 0 && !d.why.is_empty())
    );
    assert_eq!(
        v.incidents[0].headline,
        "502 burst: upstream 10.0.1.5:8080 unreachable — 143 of 372 requests in 4m 7s"
    );
}

/// An incident whose log lines were written by an attacker: the request path, the Host
/// header and the upstream name all come from the log.
fn hostile(kb: &Kb, kind: AlertKind) -> AlertView {
    let mut inc = alert::sample(kb).unwrap();
    inc.upstream = "evil<script>alert(1)</script>:80\r\nBcc: victim@example.com".into();
    inc.vhosts.values = vec![("<!channel> <@U123> [click](http://evil.example)".into(), 3)];
    inc.paths.values = vec![("/<img src=x onerror=alert(1)>&amp;\"'".into(), 3)];
    inc.samples = vec![
        "1.2.3.4 - - \"GET /<script>x</script> HTTP/1.1\" 502 ```@everyone``` \u{1b}[31m\u{7}"
            .into(),
    ];
    alert::view(kind, &[inc], kb, Lang::En, "proxy-1", &[])
}

#[test]
fn hostile_log_content_stays_inert_in_every_format() {
    let kb = kb();
    let t = Templates::new(None).unwrap();
    let v = hostile(&kb, AlertKind::Opened);

    // The subject is one line: no header can be added through it.
    assert!(
        !v.subject.contains('\r') && !v.subject.contains('\n'),
        "{}",
        v.subject
    );
    assert!(v.subject.chars().count() <= alert::SUBJECT_CHARS);

    let mail = t.email(&v).unwrap();
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(!mail.html.contains("<img"), "{}", mail.html);
    assert!(mail.html.contains("&lt;script&gt;"), "{}", mail.html);
    // Nothing from the logs becomes a link (the only anchors are the knowledge base's docs);
    // hosts and paths are code.
    assert!(
        mail.html
            .split("<a ")
            .skip(1)
            .map(|a| a.split('>').next().unwrap_or(""))
            .all(|tag| tag.starts_with("href=\"https:&#x2f;&#x2f;") && !tag.contains("evil")),
        "{}",
        mail.html
    );
    assert!(
        mail.html.contains(
            "<code>&lt;!channel&gt; &lt;@U123&gt; [click](http:&#x2f;&#x2f;evil.example)</code>"
        ),
        "{}",
        mail.html
    );
    // Terminal escapes and bells never reach a mail or a console.
    assert!(!mail.text.contains('\u{1b}') && !mail.text.contains('\u{7}'));
    assert!(mail.text.contains("\\x1b[31m"), "{}", mail.text);
    assert!(!t.console(&v).unwrap().contains('\u{1b}'));

    let slack = &webhook::bodies(&t, WebhookFormat::Slack, &v, None, NOW).unwrap()[0];
    let slack: serde_json::Value = serde_json::from_str(slack).unwrap();
    // Slack parses the top-level text and mrkdwn blocks (plain_text is shown as written).
    let mut texts = vec![slack["text"].as_str().unwrap().to_string()];
    mrkdwn(&slack, &mut texts);
    assert!(texts.len() > 3, "{texts:?}");
    for s in &texts {
        // No mention, link or channel ping can be formed from log content.
        assert!(!s.contains("<!channel>") && !s.contains("<@U123>"), "{s}");
        assert!(!s.contains("<script>"), "{s}");
    }
    assert!(
        texts.iter().any(|s| s.contains("&lt;!channel&gt;")),
        "{texts:?}"
    );
    // The virtual host (a URL here) is inline code, which Slack never links.
    assert!(
        texts
            .iter()
            .any(|s| s.contains("`&lt;!channel&gt; &lt;@U123&gt; [click](http://evil.example)`")),
        "{texts:?}"
    );

    let discord = &webhook::bodies(&t, WebhookFormat::Discord, &v, None, NOW).unwrap()[0];
    let discord: serde_json::Value = serde_json::from_str(discord).unwrap();
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    for s in collect_strings(&discord) {
        assert!(!s.contains("[click](http"), "{s}");
    }
    // Markdown links cannot be made from log content; no control character but a newline
    // reaches any chat.
    for format in [
        WebhookFormat::Teams,
        WebhookFormat::Discord,
        WebhookFormat::Slack,
    ] {
        let body = &webhook::bodies(&t, format, &v, None, NOW).unwrap()[0];
        for s in collect_strings(&serde_json::from_str(body).unwrap()) {
            // (Slack's links are `<url|text>`, escaped above; `[t](url)` is plain text there.)
            if format != WebhookFormat::Slack {
                assert!(!s.contains("[click](http"), "{format:?}: {s}");
            }
            assert!(
                !s.chars().any(|c| c.is_control() && c != '\n'),
                "{format:?}: {s:?}"
            );
        }
    }
    // The generic JSON carries the content as data: exactly what the log said, printable.
    let json = &webhook::bodies(&t, WebhookFormat::Json, &v, None, NOW).unwrap()[0];
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        json["incidents"][0]["paths"][0],
        "/<img src=x onerror=alert(1)>&amp;\"'"
    );
}

fn mrkdwn(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| mrkdwn(x, out)),
        serde_json::Value::Object(o) => {
            if o.get("type").and_then(|t| t.as_str()) == Some("mrkdwn") {
                out.push(o["text"].as_str().unwrap().to_string());
            }
            o.values().for_each(|x| mrkdwn(x, out));
        }
        _ => {}
    }
}

fn collect_strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(collect_strings).collect(),
        serde_json::Value::Object(o) => o.values().flat_map(collect_strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn forty_failing_upstreams_make_one_message_listing_each() {
    let kb = kb();
    let t = Templates::new(None).unwrap();
    let incs: Vec<_> = (0..40)
        .map(|n| {
            let mut i = alert::sample(&kb).unwrap();
            i.upstream = format!("10.0.2.{n}:8080");
            i
        })
        .collect();
    let v = alert::view(AlertKind::Opened, &incs, &kb, Lang::En, "proxy-1", &[]);
    assert_eq!(v.entries.len(), 1, "one entry, shown once");
    assert_eq!(v.entries[0].upstreams.len(), 40);
    assert!(v.subject.ends_with("(+39)"), "{}", v.subject);
    let text = t.email(&v).unwrap().text;
    for n in 0..40 {
        assert!(
            text.contains(&format!("10.0.2.{n}:8080")),
            "10.0.2.{n} missing"
        );
    }
    // Slack allows 50 blocks; Discord 10 embeds; every upstream is still named.
    let slack: serde_json::Value =
        serde_json::from_str(&webhook::bodies(&t, WebhookFormat::Slack, &v, None, NOW).unwrap()[0])
            .unwrap();
    assert!(slack["blocks"].as_array().unwrap().len() <= 50);
    let all = collect_strings(&slack).join("\n");
    for n in 0..40 {
        assert!(
            all.contains(&format!("10.0.2.{n}:8080")),
            "slack: 10.0.2.{n} missing"
        );
    }
    let discord: serde_json::Value = serde_json::from_str(
        &webhook::bodies(&t, WebhookFormat::Discord, &v, None, NOW).unwrap()[0],
    )
    .unwrap();
    assert!(discord["embeds"].as_array().unwrap().len() <= 10);
    let all = collect_strings(&discord).join("\n");
    for n in 0..40 {
        assert!(
            all.contains(&format!("10.0.2.{n}:8080")),
            "discord: 10.0.2.{n} missing"
        );
    }
    let am = webhook::bodies(&t, WebhookFormat::Alertmanager, &v, None, NOW).unwrap();
    let am: serde_json::Value = serde_json::from_str(&am[0]).unwrap();
    assert_eq!(
        am.as_array().unwrap().len(),
        40,
        "one Alertmanager alert per upstream"
    );
}

#[test]
fn a_template_override_replaces_the_builtin_by_name_and_bad_json_is_an_error() {
    let kb = kb();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slack.json.j2"),
        "{\"text\": {{ subject }}, \"who\": {{ incidents[0].upstream }}}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("teams.json.j2"),
        "{\"text\": {{ subject }},}",
    )
    .unwrap();
    let t = Templates::new(Some(dir.path())).unwrap();
    let v = sample_view(&kb, AlertKind::Opened, Lang::En);
    let slack = &webhook::bodies(&t, WebhookFormat::Slack, &v, None, NOW).unwrap()[0];
    let slack: serde_json::Value = serde_json::from_str(slack).unwrap();
    assert_eq!(slack["who"], "10.0.1.5:8080");
    let err = webhook::bodies(&t, WebhookFormat::Teams, &v, None, NOW)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("teams.json.j2 did not render to JSON"),
        "{err}"
    );
    // Others stay built in.
    assert!(t.console(&v).unwrap().starts_with("=== ALERT ==="));
    // A template that does not compile names itself.
    std::fs::write(dir.path().join("email.txt.j2"), "{% for x in %}").unwrap();
    let err = Templates::new(Some(dir.path())).err().unwrap().to_string();
    assert!(err.contains("email.txt.j2"), "{err}");
}

#[test]
fn check_renders_every_channels_templates_and_names_a_broken_override() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("templates");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("slack.json.j2"), "{\"text\": {{ subject }} oops}").unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\npath = \"{}/access.log\"\nformat = \"nginx_access\"\n\n[[channel]]\nname = \"chat\"\nkind = \"webhook\"\nformat = \"slack\"\nurl = \"http://127.0.0.1:9/x\"\ntemplate_dir = \"{}\"\n",
            t.display(),
            t.display()
        ),
    )
    .unwrap();
    let o = super::run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = super::stderr(&o);
    assert!(
        err.contains("channel chat: slack.json.j2 did not render to JSON"),
        "{err}"
    );
    std::fs::remove_file(t.join("slack.json.j2")).unwrap();
    let o = super::run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", super::stderr(&o));
}

//! Mattermost: an incoming webhook's post with a coloured attachment.

use super::*;
use gatewatch::delivery::channel::mattermost;

const CONFIG: &str = "[[channel]]\nname = \"mm\"\nkind = \"mattermost\"\nurl = \"https://mm.example.com/hooks/xyz\"\n";

/// The characters of a post as Mattermost counts them: its text and its attachments'.
fn post_chars(b: &serde_json::Value) -> usize {
    let mut n = b["text"].as_str().unwrap_or("").chars().count();
    for a in b["attachments"].as_array().into_iter().flatten() {
        for k in ["title", "text"] {
            n += a[k].as_str().unwrap_or("").chars().count();
        }
        for f in a["fields"].as_array().into_iter().flatten() {
            n += f["value"].as_str().unwrap_or("").chars().count();
        }
    }
    n
}

/// What Mattermost checks of an incoming webhook's post.
pub fn check_request(r: &Request) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/xyz");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let b = r.json();
    assert!(!b["text"].as_str().unwrap().is_empty());
    let a = &b["attachments"][0];
    assert!(a["color"].as_str().unwrap().starts_with('#'));
    assert!(a["fallback"].as_str().is_some());
    assert!(post_chars(&b) <= mattermost::MAX_CHARS);
}

fn settings() -> mattermost::MattermostSettings {
    channel(CONFIG)
        .kind
        .as_any()
        .downcast_ref::<mattermost::MattermostSettings>()
        .unwrap()
        .clone()
}

#[test]
fn mattermost_posts_match_their_snapshots() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    for (kind, lang, name) in [
        (AlertKind::Opened, Lang::En, "mattermost.opened.json"),
        (AlertKind::Opened, Lang::Zh, "mattermost.opened.zh.json"),
        (AlertKind::Resolved, Lang::En, "mattermost.resolved.json"),
        (
            AlertKind::Opened,
            Lang::En,
            "mattermost.opened.learned.json",
        ),
        (
            AlertKind::Resolved,
            Lang::Zh,
            "mattermost.resolved.zh.learned.json",
        ),
    ] {
        let body = mattermost::post(
            &settings(),
            &t,
            &super::super::alerts::named_view(&kb, kind, lang, name),
        )
        .unwrap();
        super::super::alerts::snapshot(name, &pretty(&body));
    }
}

#[test]
fn a_mattermost_post_too_big_is_fitted_and_log_content_mentions_nobody() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    let body = mattermost::post(&settings(), &t, &too_big(&kb)).unwrap();
    let b: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(post_chars(&b) <= mattermost::MAX_CHARS);
    let text = b["attachments"][0]["text"].as_str().unwrap();
    assert!(text.contains("10.0.2.0:8080"), "{text}");
    // Outside code spans, log content cannot mention or link.
    let outside: String = text.split('`').step_by(2).collect();
    assert!(
        !outside.contains("@all") && !outside.contains("@everyone"),
        "{text}"
    );
    assert!(!outside.contains("](http"), "{text}");
}

//! ntfy: the text published to a topic, with title, priority and tags as headers.

use super::*;
use gatewatch::delivery::channel::ntfy;

const CONFIG: &str =
    "[[channel]]\nname = \"push\"\nkind = \"ntfy\"\nurl = \"https://ntfy.sh/gatewatch-alerts\"\n";

/// What ntfy checks of a publish.
pub fn check_request(r: &Request) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/gatewatch-alerts");
    assert!(!r.body.trim().is_empty() && r.body.len() <= ntfy::MAX_BYTES);
    let title = r.header("title").expect("a title");
    assert!(
        title.is_ascii(),
        "header values are ASCII (RFC 2047 for the rest): {title}"
    );
    assert!(
        ["min", "low", "default", "high", "max", "urgent"].contains(&r.header("priority").unwrap())
    );
    assert!(!r.header("tags").unwrap().is_empty());
    assert_eq!(r.header("authorization"), Some("Bearer tk_ntfy_secret"));
}

#[test]
fn ntfy_messages_match_their_snapshots() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    for (kind, lang, name) in [
        (AlertKind::Opened, Lang::En, "ntfy.opened.txt"),
        (AlertKind::Opened, Lang::Zh, "ntfy.opened.zh.txt"),
        (AlertKind::Resolved, Lang::En, "ntfy.resolved.txt"),
        (AlertKind::Opened, Lang::En, "ntfy.opened.learned.txt"),
        (
            AlertKind::Resolved,
            Lang::Zh,
            "ntfy.resolved.zh.learned.txt",
        ),
    ] {
        let v = super::super::alerts::named_view(&kb, kind, lang, name);
        let text = format!(
            "Title: {}\nTags: {}\n\n{}\n",
            ntfy::header_text(&v.subject),
            ntfy::tags(kind),
            ntfy::message(&t, &v).unwrap()
        );
        super::super::alerts::snapshot(name, &text);
    }
}

#[test]
fn an_ntfy_message_too_big_is_fitted() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    let text = ntfy::message(&t, &too_big(&kb)).unwrap();
    assert!(text.len() <= ntfy::MAX_BYTES, "{}", text.len());
    assert!(text.contains("10.0.2.0:8080"), "{text}");
    // A Chinese title travels as an encoded word.
    assert!(ntfy::header_text("上游不可达").starts_with("=?UTF-8?B?"));
}

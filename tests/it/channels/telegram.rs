//! Telegram: `sendMessage` in HTML parse mode.

use super::*;
use gatewatch::delivery::channel::telegram;

const CONFIG: &str = "[[channel]]\nname = \"tg\"\nkind = \"telegram\"\nchat_id = \"-1001234567890\"\ntoken_env = \"TG_TOKEN\"\n";

/// The tags Telegram's HTML parse mode knows.
const TAGS: [&str; 10] = [
    "b",
    "i",
    "u",
    "s",
    "a",
    "code",
    "pre",
    "blockquote",
    "strong",
    "em",
];

/// What Telegram checks of a `sendMessage` request.
pub fn check_request(r: &Request) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/bot123456:ABC-secret/sendMessage");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let b = r.json();
    assert_eq!(b["chat_id"], -1001234567890i64);
    assert_eq!(b["parse_mode"], "HTML");
    let text = b["text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    assert!(gatewatch::delivery::channel::visible_chars(text) <= telegram::MAX_CHARS);
    check_html(text, &TAGS);
}

#[test]
fn telegram_messages_match_their_snapshots() {
    let kb = kb();
    let ch = channel(CONFIG);
    let t = templates(&ch);
    for (kind, lang, name) in [
        (AlertKind::Opened, Lang::En, "telegram.opened.json"),
        (AlertKind::Opened, Lang::Zh, "telegram.opened.zh.json"),
        (AlertKind::Resolved, Lang::En, "telegram.resolved.json"),
        (AlertKind::Opened, Lang::En, "telegram.opened.learned.json"),
        (
            AlertKind::Resolved,
            Lang::Zh,
            "telegram.resolved.zh.learned.json",
        ),
    ] {
        let text =
            telegram::text(&t, &super::super::alerts::named_view(&kb, kind, lang, name)).unwrap();
        check_html(&text, &TAGS);
        let body = telegram::request("-1001234567890", &text).unwrap();
        super::super::alerts::snapshot(name, &pretty(&body));
    }
}

#[test]
fn a_telegram_message_too_big_is_fitted_and_log_content_stays_text() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    let text = telegram::text(&t, &too_big(&kb)).unwrap();
    assert!(gatewatch::delivery::channel::visible_chars(&text) <= telegram::MAX_CHARS);
    check_html(&text, &TAGS);
    assert!(text.contains("10.0.2.0:8080"), "{text}");
    assert!(
        !text.contains("<script>") && !text.contains("<img"),
        "{text}"
    );
    // The entry's first step, its command filled in, survives the fitting.
    assert!(
        text.contains("curl -I http://10.0.2.0:8080/health"),
        "{text}"
    );
}

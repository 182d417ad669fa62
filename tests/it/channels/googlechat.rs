//! Google Chat: an incoming webhook's message with a cards v2 card, threaded by incident.

use super::*;
use gatewatch::delivery::channel::googlechat;

const CONFIG: &str = "[[channel]]\nname = \"gchat\"\nkind = \"googlechat\"\nurl = \"https://chat.googleapis.com/v1/spaces/AAAA/messages?key=KEY&token=TOKEN\"\n";

/// The HTML a card's text paragraph takes.
const TAGS: [&str; 7] = ["b", "i", "u", "s", "br", "font", "a"];

/// What Google Chat checks of a webhook message.
pub fn check_request(r: &Request) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/spaces/AAAA/messages");
    let query: Vec<(String, String)> = r
        .query
        .split('&')
        .filter_map(|p| {
            p.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let has = |k: &str, v: &str| query.iter().any(|(a, b)| a == k && b == v);
    assert!(has("key", "KEY") && has("token", "TOKEN"), "{}", r.query);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(r.body.len() <= googlechat::MAX_BYTES);
    let b = r.json();
    assert!(b["text"].as_str().unwrap().chars().count() <= googlechat::MAX_CHARS);
    let card = &b["cardsV2"][0];
    assert!(card["cardId"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(card["card"]["header"]["title"].as_str().is_some());
    let text = card["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"]
        .as_str()
        .unwrap();
    assert!(gatewatch::delivery::channel::visible_chars(text) <= googlechat::MAX_CHARS);
    check_html(text, &TAGS);
}

#[test]
fn google_chat_messages_match_their_snapshots() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    for (kind, lang, name) in [
        (AlertKind::Opened, Lang::En, "googlechat.opened.json"),
        (AlertKind::Opened, Lang::Zh, "googlechat.opened.zh.json"),
        (AlertKind::Resolved, Lang::En, "googlechat.resolved.json"),
        (
            AlertKind::Opened,
            Lang::En,
            "googlechat.opened.learned.json",
        ),
        (
            AlertKind::Resolved,
            Lang::Zh,
            "googlechat.resolved.zh.learned.json",
        ),
    ] {
        let body =
            googlechat::message(&t, &super::super::alerts::named_view(&kb, kind, lang, name))
                .unwrap();
        super::super::alerts::snapshot(name, &pretty(&body));
    }
    let url = googlechat::thread_url(
        "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=KEY&token=TOKEN",
        "proxy-1/api/x/10.0.1.5:8080",
    )
    .unwrap();
    assert!(url.contains("key=KEY&token=TOKEN&threadKey=proxy-1%2Fapi%2Fx%2F10.0.1.5%3A8080&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"), "{url}");
}

#[test]
fn a_google_chat_message_too_big_is_fitted_and_log_content_stays_text() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    let body = googlechat::message(&t, &too_big(&kb)).unwrap();
    assert!(body.len() <= googlechat::MAX_BYTES);
    let b: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = b["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"]
        .as_str()
        .unwrap();
    assert!(gatewatch::delivery::channel::visible_chars(text) <= googlechat::MAX_CHARS);
    check_html(text, &TAGS);
    assert!(text.contains("10.0.2.0:8080"));
}

//! Matrix: `m.room.message` through the client-server API, the delivery id as transaction id.

use super::*;
use gatewatch::delivery::channel::matrix;

const CONFIG: &str = "[[channel]]\nname = \"mx\"\nkind = \"matrix\"\nhomeserver = \"https://matrix.example.org\"\nroom = \"!room:example.org\"\naccess_token_env = \"MX_TOKEN\"\n";

/// The HTML Matrix clients render (the spec's suggested subset, as used here).
const TAGS: [&str; 14] = [
    "h4", "h5", "p", "b", "br", "code", "pre", "ol", "ul", "li", "i", "em", "strong", "a",
];

/// What a homeserver checks of a send.
pub fn check_request(r: &Request) {
    assert_eq!(r.method, "PUT");
    let rest = r
        .path
        .strip_prefix("/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/")
        .unwrap_or_else(|| panic!("{}", r.path));
    assert!(
        !rest.is_empty() && !rest.contains('/'),
        "a transaction id: {rest}"
    );
    assert_eq!(r.header("authorization"), Some("Bearer syt_matrix_secret"));
    assert!(r.body.len() <= 65_536);
    let b = r.json();
    assert!(["m.text", "m.notice"].contains(&b["msgtype"].as_str().unwrap()));
    assert!(!b["body"].as_str().unwrap().is_empty());
    assert_eq!(b["format"], "org.matrix.custom.html");
    check_html(b["formatted_body"].as_str().unwrap(), &TAGS);
}

#[test]
fn matrix_events_match_their_snapshots() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    for (kind, lang, name) in [
        (AlertKind::Opened, Lang::En, "matrix.opened.json"),
        (AlertKind::Opened, Lang::Zh, "matrix.opened.zh.json"),
        (AlertKind::Resolved, Lang::En, "matrix.resolved.json"),
        (AlertKind::Opened, Lang::En, "matrix.opened.learned.json"),
        (
            AlertKind::Resolved,
            Lang::Zh,
            "matrix.resolved.zh.learned.json",
        ),
    ] {
        let body =
            matrix::event(&t, &super::super::alerts::named_view(&kb, kind, lang, name)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        check_html(v["formatted_body"].as_str().unwrap(), &TAGS);
        super::super::alerts::snapshot(name, &pretty(&body));
    }
}

#[test]
fn a_matrix_event_too_big_is_fitted_and_the_transaction_is_the_delivery_id() {
    let kb = kb();
    let t = templates(&channel(CONFIG));
    let body = matrix::event(&t, &too_big(&kb)).unwrap();
    assert!(body.len() <= matrix::MAX_BYTES, "{}", body.len());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let html = v["formatted_body"].as_str().unwrap();
    check_html(html, &TAGS);
    assert!(!html.contains("<script>") && !html.contains("<img"));
    assert!(html.contains("10.0.2.0:8080"));
    // The same delivery id is the same URL: a resend is the same event to the homeserver.
    let a = matrix::send_url(
        "https://matrix.example.org",
        "!room:example.org",
        "gw-42-mx",
    )
    .unwrap();
    let b = matrix::send_url(
        "https://matrix.example.org/",
        "!room:example.org",
        "gw-42-mx",
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a,
        "https://matrix.example.org/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/gw-42-mx"
    );
    // A transaction id with characters of a path is escaped, not a path.
    let c = matrix::send_url("https://m.example.org", "!r:example.org", "a/b?c").unwrap();
    assert!(c.ends_with("/m.room.message/a%2Fb%3Fc"), "{c}");
}

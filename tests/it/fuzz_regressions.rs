//! Bugs found by fuzzing (`fuzz/`), each pinned through the public API; named after the bug,
//! with the target that found it.

use gatewatch::app::config::Config;

/// Found while writing the `config` target's checks (its assertion now catches it): a duration
/// too long for `i64` milliseconds was accepted and wrapped, so `window = "9223372036854776s"`
/// checked fine and gave a negative window (and `group_wait` or `renotify` overflowed when added
/// to a time stamp).
#[test]
fn config_refuses_durations_that_do_not_fit_in_milliseconds() {
    for (table, key) in [
        ("detect", "window"),
        ("detect", "quiet"),
        ("detect", "join_before"),
        ("detect", "join_after"),
        ("alerts", "group_wait"),
        ("alerts", "renotify"),
        ("alerts", "give_up_after"),
        ("alerts", "retry_min"),
        ("alerts", "retry_max"),
    ] {
        for long in ["9223372036854776s", "101years"] {
            let text = format!("[{table}]\n{key} = \"{long}\"\n");
            let errors = Config::parse("x.toml", &text).expect_err(&text).to_string();
            assert!(
                errors.contains(&format!("x.toml:2: {table}.{key}: {long:?} is too long")),
                "{text}: {errors}"
            );
        }
    }
    // The longest accepted window still checks fine.
    let cfg = Config::parse("x.toml", "[detect]\nwindow = \"100years\"\n").unwrap();
    assert!(cfg.detect.window_ms > 0);
}

/// Found by the `proxies` target: translating an httpd `LogFormat` cut a multi-byte character
/// after a `%` in two (a string slice inside the character: a panic). Now such a directive is
/// refused with a message, and the text between directives is copied whatever it holds.
#[test]
fn an_httpd_log_format_with_a_multi_byte_character_after_a_percent_is_refused_not_a_panic() {
    use gatewatch::engine::parse::apache_access::log_format;
    for text in [
        "%\u{e9}",
        "%h %{Referer}i %\u{4e2d}",
        "%>\u{1f600} %s",
        "\\\u{e9} %h %s",
    ] {
        let _ = log_format(text);
    }
    assert!(log_format("%\u{e9}").is_err());
    assert!(log_format("%h \u{e9}t\u{e9} [%t] %>s").is_ok());
}

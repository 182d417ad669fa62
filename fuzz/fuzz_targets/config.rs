//! The config loader on arbitrary text: a config or `file:line: message` errors, never a panic;
//! every error names the file and a line inside the text; an accepted config keeps the promises
//! its checks make.
#![no_main]

use gatewatch::app::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse("fuzz.toml", text) {
        Ok(cfg) => {
            // What the checks promise the detector, the joiner and the sender: durations are
            // never negative and at most 100 years (milliseconds that are added to time stamps
            // must not wrap or overflow), and the window is at least a second.
            const MAX_MS: i64 = 100 * 31_557_600 * 1000;
            let d = &cfg.detect;
            assert!(
                (1000..=MAX_MS).contains(&d.window_ms),
                "window of {} ms",
                d.window_ms
            );
            for (key, ms) in [
                ("quiet", d.quiet_ms),
                ("join_before", cfg.join.before_ms),
                ("join_after", cfg.join.after_ms),
                ("group_wait", cfg.alerts.group_wait.as_millis() as i64),
                ("give_up_after", cfg.alerts.give_up_after.as_millis() as i64),
                ("retry_max", cfg.alerts.retry_max.as_millis() as i64),
            ] {
                assert!((0..=MAX_MS).contains(&ms), "{key} of {ms} ms");
            }
            let _ = cfg.alert_channels();
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a message");
            let lines = text.split('\n').count();
            for e in &errors.0 {
                assert_eq!(e.file, "fuzz.toml");
                assert!(e.line <= lines, "line {} of {lines}: {e}", e.line);
            }
            let _ = errors.to_string();
        }
    }
});

//! The config loader on arbitrary text: a config or `file:line: message` errors, never a panic;
//! every error names the file and a line inside the text; an accepted config keeps the promises
//! its checks make.
#![no_main]

use gatewatch::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse("fuzz.toml", text) {
        Ok(cfg) => {
            // What the checks promise the detector and the joiner: durations are never negative
            // (a duration too long for i64 milliseconds must be refused, not wrapped) and the
            // window is at least a second.
            let d = &cfg.detect;
            assert!(d.window_ms >= 1000, "window of {} ms", d.window_ms);
            assert!(d.quiet_ms >= 0, "quiet of {} ms", d.quiet_ms);
            assert!(
                cfg.join.before_ms >= 0 && cfg.join.after_ms >= 0,
                "{:?}",
                cfg.join
            );
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

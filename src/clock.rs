//! The wall clock, for the shell (every layer but the engine, which is handed its times).

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

//! The daemon's own log, on standard error. Under systemd (`JOURNAL_STREAM` set) each line starts
//! with its syslog priority (`<4>`), which journald turns into the entry's level, and carries no
//! time stamp or colour (journald adds its own); elsewhere lines start with the time and level.
//! Fields are written `key=value`, values quoted when they contain spaces.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

fn journal() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

static MAX: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(u8::MAX);

/// Sets the most detailed level written (the demo keeps its console for the story).
pub fn set_max_level(level: Level) {
    MAX.store(level as u8, std::sync::atomic::Ordering::Relaxed);
}

fn max_level() -> Level {
    let set = MAX.load(std::sync::atomic::Ordering::Relaxed);
    if set != u8::MAX {
        return [Level::Error, Level::Warn, Level::Info, Level::Debug][set as usize];
    }
    static L: OnceLock<Level> = OnceLock::new();
    *L.get_or_init(|| match std::env::var("GATEWATCH_LOG").as_deref() {
        Ok("debug") => Level::Debug,
        Ok("warn") => Level::Warn,
        Ok("error") => Level::Error,
        _ => Level::Info,
    })
}

/// Writes one log line: a message and `key=value` fields.
pub fn write(level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    if level > max_level() {
        return;
    }
    let mut line = String::with_capacity(128);
    if journal() {
        let _ = write!(line, "<{}>", level.priority());
    } else {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let _ = write!(line, "{now} {:<5} ", level.name());
    }
    for c in message.chars() {
        line.push(if c.is_control() { ' ' } else { c });
    }
    for (k, v) in fields {
        let v = v.to_string();
        if v.is_empty() || v.contains([' ', '"', '=']) {
            let _ = write!(line, " {k}={v:?}");
        } else {
            let _ = write!(line, " {k}={v}");
        }
    }
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `log!(Info, "message", key = value, …)`
#[macro_export]
macro_rules! log {
    ($level:ident, $msg:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::write($crate::log::Level::$level, &$msg, &[$((stringify!($k), &$v as &dyn std::fmt::Display)),*])
    };
}

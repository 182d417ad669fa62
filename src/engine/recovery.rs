//! What the proxy did shortly before an incident recovered (issue 17): an nginx reload, a
//! server back UP. Recorded with the closed incident as "recovery followed X", weak evidence
//! for the advice that does X, never a fix on its own.

use crate::engine::event::Signal;
use std::collections::VecDeque;

/// How long before an incident's last failure a signal may come and still be the one that
/// ended it (a reload takes effect at once; a server is marked UP only after its checks).
pub const BEFORE_MS: i64 = 30_000;
/// How long after it (the signal's line may be written after the last failed request's).
pub const AFTER_MS: i64 = 5_000;
/// Signals kept: the newest.
const KEEP: usize = 64;

/// One signal seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recovery {
    pub signal: Signal,
    pub at_ms: i64,
    /// The server it names (`be/srv` for HAProxy), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// The signals seen lately, by event time.
#[derive(Clone, Debug, Default)]
pub struct Recoveries {
    seen: VecDeque<Recovery>,
}

impl Recoveries {
    /// Remembers a signal. One reload writes several lines (the master's `SIGHUP received`,
    /// `reconfiguring`, the signaller's `signal process started`): kept once.
    pub fn note(&mut self, signal: Signal, at_ms: i64, server: Option<&[u8]>) {
        let server = server.map(|s| String::from_utf8_lossy(s).into_owned());
        let repeat = self.seen.iter().rev().take(4).any(|r| {
            r.signal == signal && r.server == server && (r.at_ms - at_ms).abs() <= AFTER_MS
        });
        if repeat {
            return;
        }
        if self.seen.len() == KEEP {
            self.seen.pop_front();
        }
        self.seen.push_back(Recovery {
            signal,
            at_ms,
            server,
        });
    }

    /// The signals that came around an incident's last failure and concern it: a reload of
    /// the proxy, or its own server (or, for a whole backend, one of its servers) back UP. The
    /// latest of each kind.
    pub fn followed(&self, upstream: &str, end_ms: i64) -> Vec<Recovery> {
        let mut out: Vec<Recovery> = Vec::new();
        let from = end_ms - BEFORE_MS;
        let to = end_ms + AFTER_MS;
        for r in self.seen.iter().filter(|r| (from..=to).contains(&r.at_ms)) {
            let concerns = match (r.signal, &r.server) {
                (Signal::NginxReload, _) => true,
                (Signal::ServerUp, Some(s)) => {
                    *s == upstream
                        || s.strip_prefix(upstream)
                            .is_some_and(|rest| rest.starts_with('/'))
                }
                (Signal::ServerUp, None) => false,
            };
            if !concerns {
                continue;
            }
            match out.iter_mut().find(|o| o.signal == r.signal) {
                Some(o) => *o = r.clone(),
                None => out.push(r.clone()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_around_the_last_failure_that_concern_the_incident() {
        let mut r = Recoveries::default();
        r.note(Signal::NginxReload, 100_000, None);
        // The same reload's other lines.
        r.note(Signal::NginxReload, 100_001, None);
        r.note(Signal::ServerUp, 101_000, Some(b"app/web1"));
        r.note(Signal::ServerUp, 101_000, Some(b"app/web2"));
        assert_eq!(r.seen.len(), 3);
        let got = r.followed("app/web1", 102_000);
        assert_eq!(
            got.iter().map(|g| g.signal).collect::<Vec<_>>(),
            [Signal::NginxReload, Signal::ServerUp]
        );
        assert_eq!(got[1].server.as_deref(), Some("app/web1"));
        // A backend without servers came back with one of them.
        assert_eq!(r.followed("app", 102_000).len(), 2);
        // Another backend's server does not concern it; a reload long before neither.
        assert!(r.followed("api/web1", 200_000).is_empty());
        assert_eq!(
            r.followed("other/x", 99_000)
                .iter()
                .map(|g| g.signal)
                .collect::<Vec<_>>(),
            [Signal::NginxReload],
            "a reload up to 5 s after the last failure"
        );
        assert!(r.followed("app/web1", 94_000).is_empty());
    }
}

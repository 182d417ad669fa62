//! What the daemon is doing, as `/health`, `/metrics` and the status page show it.

use crate::delivery::sender::Tally;
use crate::engine::kb::Kb;
use crate::render::page::FileStatus;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What the daemon is doing, for `/health`, `/metrics` and the status page; refreshed by the
/// reader after every round.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub files: Vec<FileStatus>,
    /// Lines per cause since start.
    pub causes: [u64; crate::engine::event::Cause::COUNT],
    pub open_incidents: Vec<crate::engine::detect::Incident>,
    pub incidents_opened: u64,
    pub incidents_closed: u64,
    /// What the sender has done (shared with it): messages sent and failed per channel, the
    /// outbox's depth.
    pub delivery: Arc<Mutex<Tally>>,
    /// When the reader last finished a round, and last committed.
    pub round_at: Option<std::time::SystemTime>,
    pub commit_at: Option<std::time::SystemTime>,
    /// The last error, until a round succeeds again.
    pub error: Option<String>,
    /// Running, but not as configured: why (a fallback state in use).
    pub degraded: Option<String>,
    pub upstreams_tracked: usize,
    pub upstreams_evicted: u64,
    /// Lines counted under `(other)`: their hour had too many distinct upstreams.
    pub upstreams_pooled_lines: u64,
    pub late_events: u64,
    pub started_at: Option<std::time::SystemTime>,
    /// For the status page: the knowledge base, this host's name, the state file.
    pub kb: Option<Arc<Kb>>,
    pub host: String,
    pub state_path: Option<PathBuf>,
    /// Signs and checks the alerts' one-click links (`[http] public_url`); `None`: off.
    pub links: Option<crate::render::links::Signer>,
}

/// How old the reader's last round may be before `/health` reports the daemon stuck.
const STALE: Duration = Duration::from_secs(15);

impl Status {
    /// `None` when healthy, else why not.
    pub fn problem(&self, now: SystemTime) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(format!("reading or saving state fails: {e}"));
        }
        if let Some(d) = &self.degraded {
            return Some(format!("degraded: {d}"));
        }
        match self.round_at {
            None => Some("not started".into()),
            Some(t) if now.duration_since(t).unwrap_or_default() > STALE => Some(format!(
                "the reader has not completed a round for {} s",
                now.duration_since(t).unwrap_or_default().as_secs()
            )),
            Some(_) => None,
        }
    }

    /// What the sender has done so far.
    pub fn tally(&self) -> Tally {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

//! The settings of alerting as a whole (`[alerts]`, `[summary]`), beside those of each channel.

use crate::engine::time::Zone;
use std::path::PathBuf;
use std::time::Duration;

/// How alerts are sent.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// The name of this host in messages (default: the system's host name).
    pub host: Option<String>,
    /// How long the first change of a message waits for others to join it.
    pub group_wait: Duration,
    /// How often an open incident is announced again (`None`: never).
    pub renotify: Option<Duration>,
    /// How long a message is retried before it is recorded as failed.
    pub give_up_after: Duration,
    /// The first retry's delay, doubled on every failure up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub template_dir: Option<PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            host: None,
            // Long enough for upstreams failing together to share one message, short enough
            // that an alert arrives within two seconds of the first failed request.
            group_wait: Duration::from_secs(1),
            renotify: Some(Duration::from_secs(4 * 3600)),
            give_up_after: Duration::from_secs(24 * 3600),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            template_dir: None,
        }
    }
}

/// The daily summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryConfig {
    /// When it is sent, in minutes after local midnight (`None`: not sent).
    pub at: Option<u32>,
    /// The zone its days are in.
    pub zone: Zone,
    /// The channels it goes to (empty: every channel).
    pub channels: Vec<String>,
}

impl Default for SummaryConfig {
    fn default() -> SummaryConfig {
        SummaryConfig {
            at: None,
            zone: Zone::Local,
            channels: Vec::new(),
        }
    }
}

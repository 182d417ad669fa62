//! Where lines come from: followed files ([`tail`]), old files read whole ([`scan`]), ALB
//! objects in a folder or a bucket ([`s3`]), HAProxy's syslog datagrams ([`syslog`]), and the
//! logs found on a machine without a config ([`discover`]). These modules own the file and
//! socket IO; what they read goes into the [`crate::engine`] unchanged.

pub mod discover;
#[cfg(feature = "s3")]
pub mod s3;
pub mod scan;
pub mod syslog;
pub mod tail;

use crate::engine::event::Format;
use crate::engine::parse::LogFormat;
use crate::engine::time::Zone;

/// How a source is read.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// A log file or glob (for `alb`, a folder of `.log.gz` or `s3://bucket/prefix`).
    Log { path: String, format: Format },
    /// gatewatch's own syslog listener (`udp://127.0.0.1:5514`, `unix:///run/gatewatch/log`).
    Syslog { listen: String },
}

/// Where reading starts in a file seen for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    End,
    Beginning,
}

#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub log_format: Option<LogFormat>,
    pub timezone: Zone,
    pub start_at: StartAt,
    /// For `s3://` ALB sources: an S3-compatible endpoint (`http://127.0.0.1:9000`) and region.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl SourceKind {
    /// What the source reads: its path, or its listener's address.
    pub fn input(&self) -> &str {
        match self {
            SourceKind::Log { path, .. } => path,
            SourceKind::Syslog { listen } => listen,
        }
    }

    /// Whether two sources read the same input (the same path, or the same listener).
    pub fn same_input(&self, other: &SourceKind) -> bool {
        match (self, other) {
            (SourceKind::Log { path: a, .. }, SourceKind::Log { path: b, .. }) => a == b,
            (SourceKind::Syslog { listen: a }, SourceKind::Syslog { listen: b }) => {
                a.strip_prefix("udp://").unwrap_or(a) == b.strip_prefix("udp://").unwrap_or(b)
            }
            _ => false,
        }
    }
}

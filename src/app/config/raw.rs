//! The configuration file as written: TOML tables with spans for `file:line` messages.
//! Unknown keys are refused here.

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, rename = "source")]
    pub(super) sources: Vec<Spanned<RawSource>>,
    pub(super) state: Option<RawState>,
    pub(super) http: Option<RawHttp>,
    #[serde(default, rename = "channel")]
    pub(super) channels: Vec<Spanned<std::collections::BTreeMap<String, Spanned<toml::Value>>>>,
    pub(super) detect: Option<RawDetect>,
    pub(super) patterns: Option<RawPatterns>,
    pub(super) alerts: Option<RawAlerts>,
    #[serde(default)]
    pub(super) maintenance: Vec<Spanned<RawMaintenance>>,
    pub(super) summary: Option<RawSummary>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSummary {
    pub(super) at: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) channels: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) host: Option<String>,
    pub(super) group_wait: Option<Spanned<String>>,
    pub(super) renotify: Option<Spanned<String>>,
    pub(super) give_up_after: Option<Spanned<String>>,
    pub(super) retry_min: Option<Spanned<String>>,
    pub(super) retry_max: Option<Spanned<String>>,
    pub(super) template_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    pub(super) upstream: Option<String>,
    pub(super) entry: Option<String>,
    pub(super) days: Option<Spanned<Vec<String>>>,
    pub(super) start: Option<Spanned<String>>,
    pub(super) end: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) from: Option<Spanned<String>>,
    pub(super) until: Option<Spanned<String>>,
    pub(super) reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    /// `"kafka"`; other sources are told apart by `format`.
    pub(super) kind: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) listen: Option<Spanned<String>>,
    /// A syslog listener on an address other machines can reach (off by default).
    pub(super) allow_remote: Option<bool>,
    pub(super) format: Option<Spanned<String>>,
    /// For `container`: the proxy whose output it is (nginx, haproxy).
    pub(super) proxy: Option<Spanned<String>>,
    pub(super) log_format: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) start_at: Option<Spanned<String>>,
    /// S3-compatible endpoint and region, for `alb` sources read from `s3://`.
    pub(super) endpoint: Option<Spanned<String>>,
    pub(super) region: Option<String>,
    /// Kafka: the brokers (a string, comma-separated, or a list), the topic and the group.
    pub(super) brokers: Option<Spanned<toml::Value>>,
    pub(super) topic: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    /// Kafka: `"raw"` or `"json"`, and the JSON envelope's field names.
    pub(super) payload: Option<Spanned<String>>,
    pub(super) keys: Option<Spanned<RawKeys>>,
    /// Kafka: librdkafka properties.
    pub(super) options: Option<Spanned<std::collections::BTreeMap<String, Spanned<toml::Value>>>>,
    pub(super) session_timeout: Option<Spanned<String>>,
    pub(super) replay: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    pub(super) message: Option<String>,
    pub(super) host: Option<String>,
    pub(super) file: Option<String>,
    pub(super) format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) dir: Option<String>,
    /// How often the state file is checked for damage while running.
    pub(super) check_every: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Spanned<String>,
    /// Serve on an address other machines can reach (the pages have no authentication).
    pub(super) allow_remote: Option<bool>,
    /// The address people reach the status server at (behind a proxy): alerts then carry
    /// signed one-click links to it.
    pub(super) public_url: Option<Spanned<String>>,
    pub(super) link_key_file: Option<Spanned<String>>,
    pub(super) link_key_env: Option<Spanned<String>>,
    pub(super) link_ttl: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetect {
    pub(super) window: Option<Spanned<String>>,
    pub(super) open_failures: Option<Spanned<u32>>,
    pub(super) open_share: Option<Spanned<f64>>,
    pub(super) close_failures: Option<Spanned<u32>>,
    pub(super) quiet: Option<Spanned<String>>,
    pub(super) max_upstreams: Option<Spanned<usize>>,
    pub(super) join_before: Option<Spanned<String>>,
    pub(super) join_after: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPatterns {
    pub(super) dirs: Spanned<Vec<String>>,
}

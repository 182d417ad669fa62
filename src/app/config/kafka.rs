//! `[[source]] kind = "kafka"`: the topic a fleet's log forwarders write to.

use super::*;
use crate::source::KafkaConfig;
use crate::source::envelope::{Keys, Payload};

/// The librdkafka properties gatewatch sets itself: an `options` entry may not change them
/// (the offsets are gatewatch's to store and commit).
const OWN: [&str; 4] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

/// Session timeouts Kafka brokers accept by default (`group.min.session.timeout.ms` …
/// `group.max.session.timeout.ms`), give or take.
const SESSION_MIN: Duration = Duration::from_secs(1);
const SESSION_MAX: Duration = Duration::from_secs(1800);

/// How far back a partition taken over is read again by default: the default detection window
/// (2 min) and then some.
const DEFAULT_REPLAY: Duration = Duration::from_secs(300);
const REPLAY_MAX: Duration = Duration::from_secs(3600);

/// The first Kafka-only key a source of another kind sets, and where.
pub(super) fn stray(s: &RawSource) -> Option<(&'static str, usize)> {
    let at = |v: Option<std::ops::Range<usize>>| v.map(|r| r.start);
    [
        ("brokers", at(s.brokers.as_ref().map(|v| v.span()))),
        ("topic", at(s.topic.as_ref().map(|v| v.span()))),
        ("group", at(s.group.as_ref().map(|v| v.span()))),
        ("payload", at(s.payload.as_ref().map(|v| v.span()))),
        ("keys", at(s.keys.as_ref().map(|v| v.span()))),
        ("options", at(s.options.as_ref().map(|v| v.span()))),
        (
            "session_timeout",
            at(s.session_timeout.as_ref().map(|v| v.span())),
        ),
        ("replay", at(s.replay.as_ref().map(|v| v.span()))),
    ]
    .into_iter()
    .find_map(|(k, at)| at.map(|a| (k, a)))
}

/// Checks a Kafka source; `None` when it has errors (they are in `p`).
pub(super) fn source(
    p: &mut Problems<'_>,
    text: &str,
    s: RawSource,
    at: usize,
    cfg: &mut Config,
) -> Option<SourceConfig> {
    let before = p.errors.len();
    for (key, v) in [
        ("path", &s.path),
        ("listen", &s.listen),
        ("proxy", &s.proxy),
        ("endpoint", &s.endpoint),
    ] {
        if let Some(v) = v {
            p.at(
                v.span().start,
                format!(
                    "source.{key} is not for kind = \"kafka\" (it reads brokers, topic and group)"
                ),
            );
        }
    }
    if s.allow_remote.is_some() {
        p.at(at, "source.allow_remote is not for kind = \"kafka\"");
    }
    let brokers = match &s.brokers {
        None => {
            p.at(at, "source: a Kafka source needs brokers = \"127.0.0.1:9092\" (host:port, comma-separated or a list)");
            String::new()
        }
        Some(v) => brokers(p, v),
    };
    let topic = match &s.topic {
        None => {
            p.at(at, "source: a Kafka source needs topic = \"…\"");
            String::new()
        }
        Some(t) => {
            if let Err(e) = check_topic(t.get_ref()) {
                p.at(t.span().start, format!("source.topic: {e}"));
            }
            t.get_ref().clone()
        }
    };
    let group = match &s.group {
        None => "gatewatch".to_string(),
        Some(g) if g.get_ref().trim().is_empty() => {
            p.at(g.span().start, "source.group: empty");
            String::new()
        }
        Some(g) => g.get_ref().clone(),
    };
    let payload = match &s.payload {
        None => Payload::Raw,
        Some(v) => Payload::from_name(v.get_ref()).unwrap_or_else(|| {
            p.at(
                v.span().start,
                format!(
                    "source.payload: {:?} is not \"raw\" or \"json\"",
                    v.get_ref()
                ),
            );
            Payload::Raw
        }),
    };
    let format = match &s.format {
        None => None,
        Some(f) => match Format::from_name(f.get_ref()) {
            Some(Format::Alb) => {
                p.at(
                    f.span().start,
                    "source.format: ALB logs are read from their S3 objects, not from Kafka",
                );
                None
            }
            Some(f) => Some(f),
            None => {
                p.at(
                    f.span().start,
                    format!(
                        "source.format: {:?} is not one of {}",
                        f.get_ref(),
                        Format::ALL.map(Format::as_str).join(", ")
                    ),
                );
                None
            }
        },
    };
    if format.is_none() && s.format.is_none() && payload == Payload::Raw {
        p.at(
            at,
            "source: a raw Kafka payload names no format: set format = \"nginx_access\" (or nginx_error, haproxy, …), or use payload = \"json\" with a format field",
        );
    }
    let keys = match &s.keys {
        Some(k) if payload == Payload::Raw => {
            p.at(
                k.span().start,
                "source.keys is only for payload = \"json\" (a raw message has no fields)",
            );
            Keys::default()
        }
        Some(k) => {
            let d = Keys::default();
            let k = k.get_ref();
            Keys {
                message: k.message.clone().unwrap_or(d.message),
                host: k.host.clone().unwrap_or(d.host),
                file: k.file.clone().unwrap_or(d.file),
                format: k.format.clone().unwrap_or(d.format),
            }
        }
        None => Keys::default(),
    };
    let options = match &s.options {
        None => Vec::new(),
        Some(o) => options(p, o),
    };
    let session_timeout = match &s.session_timeout {
        None => Duration::from_secs(10),
        Some(v) => match duration(p, v, "source.session_timeout") {
            Some(d) if (SESSION_MIN..=SESSION_MAX).contains(&d) => d,
            Some(_) => {
                p.at(
                    v.span().start,
                    "source.session_timeout: between 1s and 30m (the brokers refuse others)",
                );
                Duration::from_secs(10)
            }
            None => Duration::from_secs(10),
        },
    };
    let replay = match &s.replay {
        None => DEFAULT_REPLAY,
        Some(v) => match duration(p, v, "source.replay") {
            Some(d) if d <= REPLAY_MAX => d,
            Some(_) => {
                p.at(v.span().start, "source.replay: at most 1h");
                DEFAULT_REPLAY
            }
            None => DEFAULT_REPLAY,
        },
    };
    let log_format = match &s.log_format {
        Some(lf) if format.is_some_and(|f| f != Format::NginxAccess) => {
            p.at(
                lf.span().start,
                "source.log_format is for nginx access lines (format = \"nginx_access\", or named so by the envelope)",
            );
            None
        }
        Some(lf) => super::sources::nginx_log_format(p, lf),
        None => None,
    };
    let timezone = super::sources::timezone(p, &s.timezone);
    let start_at = super::sources::start_at(p, &s.start_at);
    if !cfg!(feature = "kafka") {
        p.at(
            s.kind.as_ref().map_or(at, |k| k.span().start),
            format!("source.kind: {}", crate::source::NO_KAFKA),
        );
    }
    let name = KafkaConfig::name_of(&topic, &group);
    let line_at = s.topic.as_ref().map_or(at, |t| t.span().start);
    if let Some(i) = cfg.sources.iter().position(|o| o.kind.input() == name) {
        p.at(
            line_at,
            format!(
                "source: topic {topic} is already read by group {group} at line {}; every line would be counted twice (remove one)",
                cfg.lines.sources[i]
            ),
        );
    }
    if p.errors.len() > before {
        return None;
    }
    cfg.lines
        .sources
        .push(crate::engine::error::line_of(text, line_at));
    Some(SourceConfig {
        kind: SourceKind::Kafka(Box::new(KafkaConfig {
            brokers,
            topic,
            group,
            payload,
            keys,
            format,
            options,
            session_timeout,
            replay,
            name,
        })),
        log_format,
        timezone,
        start_at,
        endpoint: None,
        region: None,
    })
}

/// `"a:9092,b:9092"` or `["a:9092", "b:9092"]`, each `host:port`.
fn brokers(p: &mut Problems<'_>, v: &Spanned<toml::Value>) -> String {
    let list: Vec<String> = match v.get_ref() {
        toml::Value::String(s) => s.split(',').map(|b| b.trim().to_string()).collect(),
        toml::Value::Array(a) => a
            .iter()
            .map(|b| b.as_str().map(|s| s.trim().to_string()).unwrap_or_default())
            .collect(),
        _ => {
            p.at(
                v.span().start,
                "source.brokers: a string (\"host:9092,host2:9092\") or a list of them",
            );
            return String::new();
        }
    };
    for b in &list {
        let ok = b
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            p.at(
                v.span().start,
                format!("source.brokers: {b:?} is not host:port (e.g. \"127.0.0.1:9092\")"),
            );
        }
    }
    if list.is_empty() {
        p.at(v.span().start, "source.brokers: empty");
    }
    list.join(",")
}

/// Kafka's own rule for topic names.
fn check_topic(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 249 || t == "." || t == ".." {
        return Err(format!(
            "{t:?} is not a Kafka topic name (1 to 249 characters)"
        ));
    }
    match t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{t:?} has {c:?}; Kafka topic names hold letters, digits, '.', '_' and '-'"
        )),
        None => Ok(()),
    }
}

/// librdkafka properties: strings, numbers and booleans, written as librdkafka reads them.
fn options(
    p: &mut Problems<'_>,
    o: &Spanned<std::collections::BTreeMap<String, Spanned<toml::Value>>>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in o.get_ref() {
        if OWN.contains(&k.as_str()) {
            p.at(
                v.span().start,
                format!("source.options.{k}: set by gatewatch (brokers, group and the offsets are its own); remove it"),
            );
            continue;
        }
        let value = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                p.at(
                    v.span().start,
                    format!("source.options.{k}: a string, number or boolean"),
                );
                continue;
            }
        };
        out.push((k.clone(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::check_topic;
    use crate::app::config::{Config, SourceKind};

    const KAFKA: &str = r#"
[[source]]
kind = "kafka"
brokers = ["10.0.0.1:9092", "10.0.0.2:9092"]
topic = "proxy-logs"
group = "gw"
payload = "json"
keys = { message = "log", host = "hostname" }
options = { "security.protocol" = "SASL_SSL", "fetch.wait.max.ms" = 50 }
session_timeout = "15s"
"#;

    #[test]
    fn a_kafka_source_is_read_from_its_table() {
        let r = Config::parse("gw.toml", KAFKA);
        if !cfg!(feature = "kafka") {
            let e = r.err().unwrap().to_string();
            assert!(
                e.contains("gw.toml:3") && e.contains("--features kafka"),
                "{e}"
            );
            return;
        }
        let c = r.unwrap();
        let SourceKind::Kafka(k) = &c.sources[0].kind else {
            panic!("{:?}", c.sources[0].kind)
        };
        assert_eq!(k.brokers, "10.0.0.1:9092,10.0.0.2:9092");
        assert_eq!(k.name, "kafka:proxy-logs@gw");
        assert_eq!(
            (k.keys.message.as_str(), k.keys.file.as_str()),
            ("log", "file")
        );
        assert_eq!(k.options[0], ("fetch.wait.max.ms".into(), "50".into()));
        assert_eq!(k.session_timeout.as_secs(), 15);
    }

    #[test]
    fn kafka_mistakes_name_their_line_and_key() {
        for (bad, line, want) in [
            (
                "kind = \"kafka\"\ntopic = \"t\"\nformat = \"haproxy\"",
                2,
                "needs brokers",
            ),
            (
                "kind = \"kafka\"\nbrokers = \"a:b\"\ntopic = \"t\"\nformat = \"haproxy\"",
                4,
                "not host:port",
            ),
            (
                "kind = \"kafka\"\nbrokers = \"a:1\"\ntopic = \"t\"",
                2,
                "raw Kafka payload names no format",
            ),
            (
                "kind = \"kafka\"\nbrokers = \"a:1\"\ntopic = \"t/x\"\nformat = \"haproxy\"",
                5,
                "source.topic",
            ),
            (
                "kind = \"kafka\"\nbrokers = \"a:1\"\ntopic = \"t\"\nformat = \"haproxy\"\noptions = { \"group.id\" = \"x\" }",
                7,
                "set by gatewatch",
            ),
            (
                "kind = \"kafka\"\nbrokers = \"a:1\"\ntopic = \"t\"\nformat = \"haproxy\"\npath = \"/x\"",
                7,
                "source.path is not for kind",
            ),
            (
                "kind = \"kafka\"\nbrokers = \"a:1\"\ntopic = \"t\"\nformat = \"haproxy\"\nkeys = { host = \"h\" }",
                7,
                "only for payload = \"json\"",
            ),
            (
                "kind = \"file\"\npath = \"/x\"\nformat = \"haproxy\"",
                3,
                "is not \"kafka\"",
            ),
            (
                "path = \"/x\"\nformat = \"haproxy\"\ntopic = \"t\"",
                5,
                "only for kind = \"kafka\"",
            ),
        ] {
            let text = format!("\n[[source]]\n{bad}\n");
            let e = Config::parse("gw.toml", &text).err().unwrap().to_string();
            if !cfg!(feature = "kafka") && bad.contains("kafka") && !e.contains(want) {
                continue;
            }
            assert!(
                e.contains(&format!("gw.toml:{line}")) && e.contains(want),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(check_topic("proxy-logs.v1_a").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("..").is_err());
        assert!(check_topic("logs/nginx").unwrap_err().contains("'/'"));
        assert!(check_topic(&"a".repeat(250)).is_err());
    }
}

//! What a log forwarder puts in a Kafka message: the line alone (`payload = "raw"`, keyed by
//! the proxy host), or a JSON object holding the line and where it came from (`payload =
//! "json"`: Vector's `{"host", "file", "message", …}`, an rsyslog template, Fluent Bit's
//! record), read with the field names the source configures. Pure: bytes in, fields out; the
//! field buffers are reused (serde_json still makes a scratch buffer for a message whose
//! strings hold escapes, as nginx lines in JSON do: one allocation per such message).

use crate::engine::event::Format;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// How a topic's messages hold their lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The message value is the line (or lines); the key names the host.
    Raw,
    /// The value is a JSON object; [`Keys`] names its fields.
    Json,
}

impl Payload {
    pub fn from_name(name: &str) -> Option<Payload> {
        match name {
            "raw" => Some(Payload::Raw),
            "json" => Some(Payload::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Raw => "raw",
            Payload::Json => "json",
        }
    }
}

/// The names of the JSON envelope's fields (top level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The log line (Vector: `message`; Fluent Bit: `log`).
    pub message: String,
    /// The proxy host that wrote it.
    pub host: String,
    /// The log file it was read from.
    pub file: String,
    /// The line's format, by gatewatch's names (`nginx_access`, `nginx_error`, `haproxy`, …);
    /// without it, the source's `format`.
    pub format: String,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            message: "message".into(),
            host: "host".into(),
            file: "file".into(),
            format: "format".into(),
        }
    }
}

/// A message's fields, in buffers reused from message to message.
#[derive(Debug, Default)]
pub struct Fields {
    pub host: String,
    pub file: String,
    pub format: String,
    pub message: String,
    /// Whether the envelope had the message field (a message without it is not a log line).
    pub has_message: bool,
}

/// Why a message held no line.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a JSON object, or its message field is not a string.
    NotJson(String),
    /// A JSON object without the configured message field.
    NoMessage,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotJson(e) => write!(f, "not a JSON object with a string message: {e}"),
            Refused::NoMessage => f.write_str("no message field"),
        }
    }
}

/// The longest host or file name kept (longer ones are cut at a character's boundary): they
/// name streams, which live as long as the daemon.
pub const MAX_NAME: usize = 255;

fn cut(s: &mut String) {
    if s.len() > MAX_NAME {
        let mut at = MAX_NAME;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

impl Fields {
    /// Reads a JSON envelope into the fields (the ones it lacks are left empty).
    pub fn read_json(&mut self, keys: &Keys, value: &[u8]) -> Result<(), Refused> {
        self.clear();
        let mut de = serde_json::Deserializer::from_slice(value);
        Envelope { keys, out: self }
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| Refused::NotJson(e.to_string()))?;
        cut(&mut self.host);
        cut(&mut self.file);
        if self.has_message {
            Ok(())
        } else {
            Err(Refused::NoMessage)
        }
    }

    /// A raw message: the value is the line, the key the host.
    pub fn read_raw(&mut self, key: Option<&[u8]>, value: &[u8]) {
        self.clear();
        if let Some(k) = key {
            self.host.push_str(&String::from_utf8_lossy(k));
            cut(&mut self.host);
        }
        self.message.push_str(&String::from_utf8_lossy(value));
        self.has_message = true;
    }

    fn clear(&mut self) {
        self.host.clear();
        self.file.clear();
        self.format.clear();
        self.message.clear();
        self.has_message = false;
    }

    /// The format the envelope names: gatewatch's names, with `-` for `_` (`nginx-access`).
    /// `Err` holds a name that is none of them.
    pub fn named_format(&self) -> Result<Option<Format>, &str> {
        if self.format.is_empty() {
            return Ok(None);
        }
        let name = self.format.trim();
        Format::ALL
            .into_iter()
            .find(|f| {
                let n = f.as_str();
                n.len() == name.len()
                    && n.bytes()
                        .zip(name.bytes())
                        .all(|(a, b)| a == b.to_ascii_lowercase() || (a == b'_' && b == b'-'))
            })
            .map(Some)
            .ok_or(name)
    }

    /// The lines of the message: forwarders send one, some several joined by newlines; a
    /// trailing newline or carriage return is not part of a line.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let m = self.message.as_bytes();
        let m = m.strip_suffix(b"\n").unwrap_or(m);
        m.split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
    }
}

/// The top-level object: the configured fields into their buffers, the rest skipped.
struct Envelope<'k, 'o> {
    keys: &'k Keys,
    out: &'o mut Fields,
}

/// Which field a key names.
#[derive(Clone, Copy)]
enum Which {
    Message,
    Host,
    File,
    Format,
    Other,
}

struct KeySeed<'k>(&'k Keys);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Which;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Which, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Which;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Which, E> {
        let k = self.0;
        // A field named by two keys (host = file = "source") fills the first of them.
        Ok(if v == k.message {
            Which::Message
        } else if v == k.host {
            Which::Host
        } else if v == k.file {
            Which::File
        } else if v == k.format {
            Which::Format
        } else {
            Which::Other
        })
    }
}

/// A string value into a buffer; a number or a boolean is written as JSON writes it (a host
/// given as a number); null, an object or a list leave the buffer empty.
struct Into<'o>(&'o mut String);

impl<'de> DeserializeSeed<'de> for Into<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Into<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        use std::fmt::Write;
        let _ = write!(self.0, "{v}");
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        use std::fmt::Write;
        let _ = write!(self.0, "{v}");
        Ok(())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        use std::fmt::Write;
        let _ = write!(self.0, "{v}");
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    // An object or a list (Filebeat's `"host": {"name": …}`) is not a name: left empty.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Envelope<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        while let Some(which) = map.next_key_seed(KeySeed(self.keys))? {
            match which {
                Which::Message => {
                    if out.has_message {
                        return Err(serde::de::Error::custom("the message field twice"));
                    }
                    // The line must be a string: a number is not a log line.
                    map.next_value_seed(Line(&mut out.message))?;
                    out.has_message = true;
                }
                Which::Host => map.next_value_seed(Into(&mut out.host))?,
                Which::File => map.next_value_seed(Into(&mut out.file))?,
                Which::Format => map.next_value_seed(Into(&mut out.format))?,
                Which::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The message field: a string only.
struct Line<'o>(&'o mut String);

impl<'de> DeserializeSeed<'de> for Line<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Line<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the log line as a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_envelope_gives_host_file_and_the_line_unescaped() {
        // Vector's file source, as its console sink writes it with `encoding.codec = "json"`.
        let v = br#"{"file":"/var/log/nginx/access.log","host":"edge-1","message":"10.0.0.1 - - [06/Dec/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 502 157 \"-\" \"curl/8.0\"","source_type":"file","timestamp":"2026-12-06T10:00:00.1Z"}"#;
        let mut f = Fields::default();
        f.read_json(&Keys::default(), v).unwrap();
        assert_eq!(f.host, "edge-1");
        assert_eq!(f.file, "/var/log/nginx/access.log");
        assert!(f.message.contains(r#""GET / HTTP/1.1" 502"#));
        assert_eq!(f.named_format(), Ok(None));
        assert_eq!(f.lines().count(), 1);
    }

    #[test]
    fn configured_keys_and_a_format_field_are_read() {
        let keys = Keys {
            message: "log".into(),
            host: "hostname".into(),
            file: "path".into(),
            format: "type".into(),
        };
        let mut f = Fields::default();
        f.read_json(
            &keys,
            br#"{"log":"a\nb\n","hostname":7,"path":{"name":"x"},"type":"nginx-error","kubernetes":{"pod":"x"}}"#,
        )
        .unwrap();
        assert_eq!(f.host, "7");
        assert_eq!(f.file, "", "an object is not a file name");
        assert_eq!(f.named_format(), Ok(Some(Format::NginxError)));
        assert_eq!(f.lines().collect::<Vec<_>>(), vec![&b"a"[..], b"b"]);
        // The buffers are cleared between messages.
        f.read_json(&keys, br#"{"log":"c"}"#).unwrap();
        assert_eq!((f.host.as_str(), f.format.as_str()), ("", ""));
    }

    #[test]
    fn what_is_not_an_envelope_is_refused_not_half_read() {
        let mut f = Fields::default();
        let k = Keys::default();
        assert_eq!(f.read_json(&k, br#"{"host":"a"}"#), Err(Refused::NoMessage));
        assert!(matches!(
            f.read_json(&k, br#"{"message":5}"#),
            Err(Refused::NotJson(_))
        ));
        assert!(matches!(
            f.read_json(&k, b"10.0.0.1 - - [06/Dec/2026"),
            Err(Refused::NotJson(_))
        ));
        assert!(matches!(
            f.read_json(&k, br#"{"message":"a"} trailing"#),
            Err(Refused::NotJson(_))
        ));
        assert!(matches!(
            f.read_json(&k, br#"{"message":"a","message":"b"}"#),
            Err(Refused::NotJson(_))
        ));
        f.format = "squid".into();
        assert_eq!(f.named_format(), Err("squid"));
    }

    #[test]
    fn raw_messages_take_the_key_as_host() {
        let mut f = Fields::default();
        f.read_raw(Some(b"edge-2"), b"line one\r\n");
        assert_eq!(f.host, "edge-2");
        assert_eq!(f.lines().collect::<Vec<_>>(), vec![&b"line one"[..]]);
        f.read_raw(None, b"");
        assert_eq!((f.host.as_str(), f.lines().count()), ("", 0));
        // A host name is not allowed to grow without end.
        f.read_raw(Some("é".repeat(200).as_bytes()), b"x");
        assert!(f.host.len() <= MAX_NAME && f.host.chars().all(|c| c == 'é'));
    }
}

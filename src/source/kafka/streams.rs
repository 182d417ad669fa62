//! A topic's messages into lines: the envelope read, each (host, file, format) a stream with
//! its own parser, lines counted or (read again after a takeover) only replayed.

use super::group::Partitions;
use super::{MAX_STREAMS, SAY_EVERY};
use crate::engine::event::Format;
use crate::engine::parse::{Parser, ParserOptions};
use crate::log;
use crate::source::envelope::{Fields, Keys, Payload};
use crate::source::{Emit, Recent};
use rdkafka::message::Message;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The streams' parsers and counts: everything but the consumer (which lends the messages).
pub(super) struct Streams {
    pub(super) source: String,
    pub(super) payload: Payload,
    pub(super) keys: Keys,
    pub(super) format: Option<Format>,
    pub(super) opts: ParserOptions,
    pub(super) fields: Fields,
    pub(super) key: String,
    /// Stream by `host \0 file \0 format`.
    pub(super) index: FxHashMap<String, usize>,
    /// The streams in the order the reader numbers them (saved with the checkpoint, so a
    /// restart numbers them alike: incidents refer to the numbers).
    pub(super) list: Vec<Stream>,
    /// Each stream's parser (made from its first lines after a start) and line count.
    pub(super) parsers: Vec<(Option<Parser>, u64)>,
    /// Streams the reader was told of: the first `told` of `list`.
    pub(super) told: usize,
    pub(super) parts: Arc<Mutex<Partitions>>,
    pub(super) lines: u64,
    pub(super) unparsed: u64,
    pub(super) recent: Recent,
    pub(super) said: FxHashMap<&'static str, Instant>,
}

/// A (host, file) pair and the format of its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stream {
    pub(super) host: String,
    pub(super) file: String,
    pub(super) format: Format,
}

impl Stream {
    /// What counters and alerts call it: `edge-1:/var/log/nginx/access.log`.
    pub(super) fn name(&self) -> String {
        match (self.host.is_empty(), self.file.is_empty()) {
            (false, false) => format!("{}:{}", self.host, self.file),
            (false, true) => self.host.clone(),
            (true, false) => self.file.clone(),
            (true, true) => "(no host)".into(),
        }
    }

    fn key(host: &str, file: &str, format: Format, out: &mut String) {
        out.clear();
        out.push_str(host);
        out.push('\0');
        out.push_str(file);
        out.push('\0');
        out.push_str(format.as_str());
    }
}

/// A stream's parser; one taken back from a checkpoint is made from the first message's lines
/// (they recognise an nginx access log's layout).
fn parser_of<'p>(
    slot: &'p mut Option<Parser>,
    format: Format,
    opts: &ParserOptions,
    fields: &Fields,
) -> &'p mut Parser {
    slot.get_or_insert_with(|| Parser::new(format, opts, &fields.lines().collect::<Vec<_>>()))
}

/// What one message came to.
pub(super) enum Taken {
    Lines(u64),
    /// Its stream is new: the reader must hear of it before its lines are handed over.
    New,
}

impl Streams {
    /// Takes back the streams a checkpoint names (their parsers are made from their first
    /// lines); the reader numbers them as [`Streams::told`] says.
    pub(super) fn restore(&mut self, list: Vec<Stream>) {
        for st in list.into_iter().take(MAX_STREAMS) {
            Stream::key(&st.host, &st.file, st.format, &mut self.key);
            if self.index.contains_key(self.key.as_str()) {
                continue;
            }
            self.index.insert(self.key.clone(), self.list.len());
            self.list.push(st);
            self.parsers.push((None, 0));
        }
        self.told = self.list.len();
    }

    /// Logs a problem that can repeat with every message, at most once a minute; `detail` is
    /// made only then.
    fn say(&mut self, what: &'static str, detail: impl FnOnce(&Self) -> String) {
        if self.said.get(what).is_some_and(|t| t.elapsed() < SAY_EVERY) {
            return;
        }
        self.said.insert(what, Instant::now());
        log!(Warn, what, source = self.source, detail = detail(self));
    }

    pub(super) fn take(&mut self, m: &impl Message, emit: &mut Emit<'_>) -> Taken {
        let (p, offset) = (m.partition(), m.offset());
        let replayed = {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            match parts.counting_from.get(&p) {
                Some(&c) if offset < c => true,
                // The replay is over.
                Some(_) => {
                    parts.counting_from.remove(&p);
                    false
                }
                None => false,
            }
        };
        let n = self.lines_of(m, replayed, emit);
        if let Taken::Lines(_) = n {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            if replayed {
                // Lines read again leave the position where counting resumes.
                let next = parts.next.entry(p).or_insert(offset + 1);
                *next = (*next).max(offset + 1);
            } else {
                // Where the broker says reading is (after a reset to the oldest offset left,
                // perhaps before the saved one).
                parts.next.insert(p, offset + 1);
            }
        }
        n
    }

    /// Hands over a message's lines; `replayed`: lines read again to rebuild the detector's
    /// state, neither counted nor reported.
    fn lines_of(&mut self, m: &impl Message, replayed: bool, emit: &mut Emit<'_>) -> Taken {
        if replayed {
            return self.replay(m, emit);
        }
        let value = m.payload().unwrap_or_default();
        match self.payload {
            Payload::Raw => self.fields.read_raw(m.key(), value),
            Payload::Json => {
                if let Err(e) = self.fields.read_json(&self.keys, value) {
                    self.lines += 1;
                    self.unparsed += 1;
                    self.recent.push(value);
                    self.say(
                        "kafka: a message is not the configured JSON envelope; counted as unparsed",
                        |_| e.to_string(),
                    );
                    return Taken::Lines(1);
                }
            }
        }
        let format = match self.fields.named_format() {
            Ok(f) => f.or(self.format),
            Err(_) => {
                self.say(
                    "kafka: a message names a format gatewatch does not read; its lines are counted as unparsed",
                    |s| s.fields.format.clone(),
                );
                None
            }
        };
        let Some(format) = format else {
            let n = self.fields.lines().count() as u64;
            self.lines += n;
            self.unparsed += n;
            self.say(
                "kafka: a message names no format and the source has none: set format = \"nginx_access\" (or another) on the [[source]], or have the forwarder add a format field",
                |s| s.fields.host.clone(),
            );
            return Taken::Lines(n);
        };
        self.stream_key(format);
        let Some(&s) = self.index.get(self.key.as_str()) else {
            if self.parsers.len() >= MAX_STREAMS {
                let n = self.fields.lines().count() as u64;
                self.lines += n;
                self.unparsed += n;
                self.say(
                    "kafka: more (host, file) pairs than a source keeps apart; the lines of new ones are counted as unparsed (does the forwarder put something else in the host or file field?)",
                    |_| format!("{MAX_STREAMS} pairs"),
                );
                return Taken::Lines(n);
            }
            return self.new_stream(format);
        };
        let (slot, count) = &mut self.parsers[s];
        let parser = parser_of(slot, format, &self.opts, &self.fields);
        let mut n = 0;
        for line in self.fields.lines() {
            n += 1;
            *count += 1;
            match parser.parse(line) {
                // Stream 0 is the topic's own; the pairs come after it.
                Ok(ev) => emit(s + 1, *count, line, ev),
                Err(_) => {
                    self.unparsed += 1;
                    self.recent.push(line);
                }
            }
        }
        self.lines += n;
        Taken::Lines(n)
    }
}

impl Streams {
    /// A message of the replay period, for the detector only: lines of streams not known yet
    /// or that do not parse are passed over silently (the instance that counted them said so).
    fn replay(&mut self, m: &impl Message, emit: &mut Emit<'_>) -> Taken {
        let value = m.payload().unwrap_or_default();
        let ok = match self.payload {
            Payload::Raw => {
                self.fields.read_raw(m.key(), value);
                true
            }
            Payload::Json => self.fields.read_json(&self.keys, value).is_ok(),
        };
        let Some(format) = ok
            .then(|| self.fields.named_format().ok().flatten().or(self.format))
            .flatten()
        else {
            return Taken::Lines(0);
        };
        self.stream_key(format);
        let Some(&s) = self.index.get(self.key.as_str()) else {
            if self.parsers.len() >= MAX_STREAMS {
                return Taken::Lines(0);
            }
            return self.new_stream(format);
        };
        let parser = parser_of(&mut self.parsers[s].0, format, &self.opts, &self.fields);
        for line in self.fields.lines() {
            if let Ok(ev) = parser.parse(line) {
                emit(s + 1, crate::source::REPLAYED, line, ev);
            }
        }
        Taken::Lines(0)
    }

    /// The key of the current message's stream, in `key`.
    fn stream_key(&mut self, format: Format) {
        Stream::key(&self.fields.host, &self.fields.file, format, &mut self.key);
    }

    /// Makes the current message's stream (its first lines recognise an nginx access log's
    /// layout), for the reader to hear of before its lines are handed over.
    fn new_stream(&mut self, format: Format) -> Taken {
        let samples: Vec<&[u8]> = self.fields.lines().collect();
        let parser = Parser::new(format, &self.opts, &samples);
        self.index.insert(self.key.clone(), self.list.len());
        self.parsers.push((Some(parser), 0));
        self.list.push(Stream {
            host: self.fields.host.clone(),
            file: self.fields.file.clone(),
            format,
        });
        Taken::New
    }

    /// The streams not told to the reader yet; from now on they are.
    pub(super) fn tell(&mut self) -> Vec<(String, Format)> {
        let out = self.list[self.told..]
            .iter()
            .map(|s| (s.name(), s.format))
            .collect();
        self.told = self.list.len();
        out
    }

    /// The streams told to the reader, in its order.
    pub(super) fn told(&self) -> Vec<(String, Format)> {
        self.list[..self.told]
            .iter()
            .map(|s| (s.name(), s.format))
            .collect()
    }
}

//! The knowledge base: one entry per known failure, kept as TOML files in `patterns/`.
//!
//! An entry says what went wrong (root cause), what to do (workarounds ranked by success rate),
//! what not to bother with (dead ends with fail rates) and where the docs are, in English and
//! Chinese. Its `[match]` table says which events it explains; its examples and near-misses
//! prove that, and loading fails when they do not.

pub mod evidence;
mod load;

#[cfg(test)]
pub(crate) use load::classify_example;
pub use load::{KbError, SELF_ALARMS, Source};

use crate::engine::event::{Cause, Format};
use regex::bytes::Regex;
use std::fmt;
use std::sync::OnceLock;

/// The language of rendered text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub fn from_name(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }
}

/// Text in every language gatewatch speaks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub en: String,
    pub zh: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }
}

/// A row of an entry's version-compatibility table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub product: String,
    pub versions: String,
    pub status: String,
    pub introduced: Option<String>,
    pub deprecated: Option<String>,
    pub notes: Option<String>,
}

/// A fix to try, with how often it works.
#[derive(Clone, Debug, PartialEq)]
pub struct Workaround {
    /// 0.0 ..= 1.0
    pub success_rate: f64,
    /// The step; `{command}` marks where the example command goes.
    pub text: Text,
    /// The example command, with `{upstream}`, `{host}` and `{port}` filled in from the incident.
    pub command: Option<String>,
    /// The command as the source wrote it, shown when there is no incident to fill it from.
    pub example: Option<String>,
    /// What the logs show when the step is taken (an nginx reload): a recovery that follows
    /// it counts, weakly, for the step.
    pub seen_as: Vec<crate::engine::event::Signal>,
}

/// A common fix that does not work here, with how often it fails and why.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadEnd {
    pub name: Text,
    /// 0.0 ..= 1.0
    pub fail_rate: f64,
    pub why: Text,
    /// As for [`Workaround::seen_as`].
    pub seen_as: Vec<crate::engine::event::Signal>,
}

/// An example line carried by an entry: it must match the entry (or, for a near-miss, must not).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub format: Format,
    pub line: String,
    pub log_format: Option<String>,
    /// For near-misses: why the line looks similar but is something else.
    pub why: Option<String>,
}

/// One knowledge-base entry.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    /// The file the entry was loaded from, for messages.
    pub file: String,
    pub title: Text,
    pub category: String,
    pub kind: String,
    pub ai_generated: bool,
    pub fix_rate: f64,
    pub confidence: f64,
    pub evidence_count: u32,
    /// `YYYY-MM-DD`
    pub first_seen: String,
    pub docs: Vec<String>,
    pub versions: Vec<Version>,
    pub root_cause_tag: Option<String>,
    pub root_cause: Text,
    /// Ranked: the highest success rate first.
    pub workarounds: Vec<Workaround>,
    pub dead_ends: Vec<DeadEnd>,
    pub causes: Vec<Cause>,
    /// Client statuses covered; empty means any. Lines without a status always qualify.
    pub statuses: Vec<u16>,
    /// Formats covered; empty means any.
    pub formats: Vec<Format>,
    pub signatures: Vec<Signature>,
    pub priority: i32,
    pub examples: Vec<Example>,
    pub near_misses: Vec<Example>,
}

/// A line of `format` that matches `regex` is the entry's failure (`match.signatures`).
///
/// The built-in base's regexes are compiled when a line of their format first asks (its
/// build proves they compile); those of pattern folders when the folder is loaded, where an
/// error names the file and line.
#[derive(Clone, Debug)]
pub struct Signature {
    pub format: Format,
    pattern: Box<str>,
    regex: OnceLock<Option<Regex>>,
}

impl Signature {
    /// A signature whose regex is compiled on first use ([`Signature::regex`]).
    pub(crate) fn lazy(format: Format, pattern: &str) -> Signature {
        Signature {
            format,
            pattern: pattern.into(),
            regex: OnceLock::new(),
        }
    }

    /// A signature whose regex is compiled now: the compiler's error when it does not.
    pub(crate) fn compiled(format: Format, pattern: &str) -> Result<Signature, regex::Error> {
        let re = Self::build(pattern)?;
        Ok(Signature {
            format,
            pattern: pattern.into(),
            regex: OnceLock::from(Some(re)),
        })
    }

    fn build(pattern: &str) -> Result<Regex, regex::Error> {
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
    }

    /// The regex as written in the pattern file.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The compiled regex; `None` (matching no line) only for a built-in one that does not
    /// compile, which the build's tests rule out.
    pub fn regex(&self) -> Option<&Regex> {
        self.regex
            .get_or_init(|| Self::build(&self.pattern).ok())
            .as_ref()
    }
}

/// The index of an entry in its [`Kb`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct EntryId(pub u16);

/// The compiled knowledge base.
///
/// The built-in base is compiled as it is used: at start only each entry's `[match]` table is
/// read (what [`Kb::match_event`] needs), the rest of its file when the entry is first asked
/// for ([`Kb::get`]) — most scans and most daemon runs ask for one entry or none, and reading
/// all 33 files was nine tenths of a start. Pattern folders are compiled, and proven, whole
/// at load.
#[derive(Clone, Debug, Default)]
pub struct Kb {
    slots: Vec<Slot>,
    /// Entries per cause, in file order.
    by_cause: [Vec<EntryId>; Cause::COUNT],
}

/// An entry of a [`Kb`]: what matching reads, and the entry itself.
#[derive(Clone, Debug)]
struct Slot {
    id: String,
    matching: Matching,
    entry: OnceLock<Entry>,
    /// The built-in file the entry is compiled from when first asked for (none when it was
    /// compiled at load).
    source: Option<Source>,
}

/// What [`Kb::match_event`] reads of an entry (its `[match]` table).
#[derive(Clone, Debug)]
struct Matching {
    causes: Vec<Cause>,
    statuses: Vec<u16>,
    formats: Vec<Format>,
    signatures: Vec<Signature>,
    priority: i32,
}

impl Slot {
    /// An entry compiled at load.
    fn ready(entry: Entry) -> Slot {
        Slot {
            id: entry.id.clone(),
            matching: Matching {
                causes: entry.causes.clone(),
                statuses: entry.statuses.clone(),
                formats: entry.formats.clone(),
                signatures: entry.signatures.clone(),
                priority: entry.priority,
            },
            entry: OnceLock::from(entry),
            source: None,
        }
    }
}

impl Kb {
    fn from_slots(mut slots: Vec<Slot>) -> Kb {
        slots.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_cause: [Vec<EntryId>; Cause::COUNT] = Default::default();
        for (i, s) in slots.iter().enumerate() {
            for c in &s.matching.causes {
                by_cause[c.index()].push(EntryId(i as u16));
            }
        }
        Kb { slots, by_cause }
    }

    /// Every entry, by id (the built-in ones compiled now if they were not yet).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        (0..self.slots.len()).map(|i| self.get(EntryId(i as u16)))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// An entry (a built-in one compiled from its file the first time it is asked for).
    pub fn get(&self, id: EntryId) -> &Entry {
        let slot = &self.slots[id.0 as usize];
        slot.entry.get_or_init(|| load::compile_later(slot))
    }

    /// Every entry's id, without compiling them.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.slots.iter().map(|s| s.id.as_str())
    }

    /// An entry's id, without compiling it.
    pub fn id(&self, id: EntryId) -> &str {
        &self.slots[id.0 as usize].id
    }

    pub fn find(&self, id: &str) -> Option<EntryId> {
        self.slots
            .iter()
            .position(|s| s.id == id)
            .map(|i| EntryId(i as u16))
    }

    /// The entry that explains an event: among the entries covering its cause, status and
    /// format, one whose signature matches the line beats one without signatures for the
    /// format; then the higher priority; then the first by id.
    pub fn match_event(
        &self,
        cause: Cause,
        status: Option<u16>,
        format: Format,
        line: &[u8],
    ) -> Option<EntryId> {
        let mut best: Option<(u8, i32, EntryId)> = None;
        for &id in &self.by_cause[cause.index()] {
            let e = &self.slots[id.0 as usize].matching;
            if let Some(s) = status
                && !e.statuses.is_empty()
                && !e.statuses.contains(&s)
            {
                continue;
            }
            if !e.formats.is_empty() && !e.formats.contains(&format) {
                continue;
            }
            let mut has_own = false;
            let mut matched = false;
            for sig in &e.signatures {
                if sig.format == format {
                    has_own = true;
                    if sig.regex().is_some_and(|re| re.is_match(line)) {
                        matched = true;
                        break;
                    }
                }
            }
            if has_own && !matched {
                continue;
            }
            let rank = (matched as u8, e.priority, id);
            if best.is_none_or(|(m, p, _)| (rank.0, rank.1) > (m, p)) {
                best = Some(rank);
            }
        }
        best.map(|(_, _, id)| id)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Values for the placeholders of example commands, taken from an incident's upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholders {
    pub upstream: String,
    pub host: String,
    pub port: String,
}

impl Placeholders {
    /// Splits `host:port`, `[v6]:port`; other upstreams (`unix:/path`, pool names, HAProxy
    /// `backend/server`) fill `{host}` with the whole name and `{port}` with nothing.
    pub fn for_upstream(upstream: &str) -> Placeholders {
        let whole = || Placeholders {
            upstream: upstream.to_string(),
            host: upstream.to_string(),
            port: String::new(),
        };
        if upstream.starts_with("unix:") || upstream.contains('/') {
            return whole();
        }
        match upstream.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                let v6 = h.starts_with('[') && h.ends_with(']');
                if h.contains(':') && !v6 {
                    return whole();
                }
                Placeholders {
                    upstream: upstream.to_string(),
                    host: h.to_string(),
                    port: p.to_string(),
                }
            }
            _ => whole(),
        }
    }

    /// Fills `{upstream}`, `{host}` and `{port}` in a command template.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{upstream}", &self.upstream)
            .replace("{host}", &self.host)
            .replace("{port}", &self.port)
    }
}

/// The placeholders a command template may use.
pub const PLACEHOLDERS: [&str; 3] = ["upstream", "host", "port"];

impl Workaround {
    /// The step in one language, with the command filled in for `upstream` (or the example
    /// command when there is no upstream).
    pub fn render(&self, lang: Lang, upstream: Option<&Placeholders>) -> String {
        let command = match (upstream, &self.command, &self.example) {
            (Some(p), Some(c), _) => Some(p.fill(c)),
            (_, _, Some(e)) => Some(e.clone()),
            (None, Some(c), None) => Some(c.clone()),
            (_, None, None) => None,
        };
        let text = self.text.get(lang);
        match command {
            Some(c) => text.replace("{command}", &c),
            None => text.to_string(),
        }
    }

    /// The command for `upstream`, if the workaround has one.
    pub fn command_for(&self, upstream: &Placeholders) -> Option<String> {
        self.command.as_ref().map(|c| upstream.fill(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_split_addresses_only() {
        let p = Placeholders::for_upstream("10.0.1.5:8080");
        assert_eq!((p.host.as_str(), p.port.as_str()), ("10.0.1.5", "8080"));
        assert_eq!(
            p.fill("curl -I http://{upstream}/health"),
            "curl -I http://10.0.1.5:8080/health"
        );
        let p = Placeholders::for_upstream("[::1]:8080");
        assert_eq!((p.host.as_str(), p.port.as_str()), ("[::1]", "8080"));
        for whole in ["unix:/run/app.sock", "backend", "be/srv1", "::1"] {
            let p = Placeholders::for_upstream(whole);
            assert_eq!((p.host.as_str(), p.port.as_str()), (whole, ""), "{whole}");
        }
    }
}

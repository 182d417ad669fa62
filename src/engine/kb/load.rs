//! Reading entries from TOML: the schema as written, then a checked, compiled [`Entry`].
//! Every error names the file, the line and the field.

use super::{
    DeadEnd, Entry, Example, Kb, Matching, PLACEHOLDERS, Signature, Slot, Text, Version, Workaround,
};
use crate::engine::error::{FileError, line_of};
use crate::engine::event::{Cause, Format, Signal};
use crate::engine::parse::{LogFormat, Parser, ParserOptions};
use serde::Deserialize;
use std::sync::OnceLock;
use toml::Spanned;

/// The text of one pattern file.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path shown in messages (`patterns/api/x.toml`).
    pub file: String,
    /// The path below the patterns folder (`api/x.toml`); the entry's id must be this without
    /// `.toml`.
    pub rel: String,
    /// (Borrowed for the files built into the binary.)
    pub text: std::borrow::Cow<'static, str>,
}

/// The category of gatewatch's own alarms (format drift): entries that match no log line.
pub const SELF_ALARMS: &str = "gatewatch";

/// A problem in a pattern file: `file:line: message`.
pub type KbError = FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Spanned<String>,
    title: Text,
    category: String,
    kind: String,
    #[serde(default)]
    ai_generated: bool,
    fix_rate: Spanned<f64>,
    confidence: Spanned<f64>,
    evidence_count: u32,
    first_seen: Spanned<toml::value::Datetime>,
    docs: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    versions: Vec<RawVersion>,
    root_cause: RawRootCause,
    workarounds: Spanned<Vec<Spanned<RawWorkaround>>>,
    dead_ends: Spanned<Vec<Spanned<RawDeadEnd>>>,
    #[serde(rename = "match")]
    matching: Spanned<RawMatch>,
    #[serde(default)]
    examples: Vec<Spanned<RawExample>>,
    #[serde(default)]
    near_misses: Vec<Spanned<RawExample>>,
    /// A draft (`gatewatch patterns draft`): read by the app layer, which leaves it out of the
    /// knowledge base in use.
    #[serde(default)]
    #[allow(dead_code)]
    draft: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersion {
    product: String,
    versions: String,
    status: String,
    introduced: Option<String>,
    deprecated: Option<String>,
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRootCause {
    tag: Option<String>,
    en: String,
    zh: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkaround {
    success_rate: f64,
    en: String,
    zh: String,
    command: Option<String>,
    example: Option<String>,
    #[serde(default)]
    seen_as: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadEnd {
    name: Text,
    fail_rate: f64,
    en: String,
    zh: String,
    #[serde(default)]
    seen_as: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    causes: Vec<Spanned<String>>,
    #[serde(default)]
    statuses: Vec<u16>,
    #[serde(default)]
    formats: Vec<Spanned<String>>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    signatures: Vec<Spanned<RawSignature>>,
}

/// A file's `[match]` table read alone ([`match_table`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    #[serde(rename = "match")]
    matching: RawMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    format: String,
    regex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    format: String,
    line: String,
    log_format: Option<String>,
    why: Option<String>,
}

/// Collects the errors of one file.
struct Problems<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<KbError>,
}

impl Problems<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        self.errors.push(FileError::new(
            self.file,
            line_of(self.text, offset),
            message,
        ));
    }
}

fn rate(p: &mut Problems<'_>, offset: usize, what: &str, v: f64) {
    if !(0.0..=1.0).contains(&v) {
        p.at(
            offset,
            format!(
                "{what} is {v}, but rates are written as a fraction from 0.0 to 1.0 (0.85 for 85 %)"
            ),
        );
    }
}

fn text_present(p: &mut Problems<'_>, offset: usize, what: &str, en: &str, zh: &str) {
    if en.trim().is_empty() {
        p.at(offset, format!("{what}: the English text (en) is empty"));
    }
    if zh.trim().is_empty() {
        p.at(offset, format!("{what}: the Chinese text (zh) is empty"));
    }
    // A draft (`gatewatch patterns draft`) marks what is left to write.
    for (lang, text) in [("en", en), ("zh", zh)] {
        if text.contains("TODO") {
            p.at(
                offset,
                format!(
                    "{what}: the text ({lang}) still says TODO: write it (the entry is a draft)"
                ),
            );
        }
    }
}

/// Every `{name}` in a command must be a known placeholder.
/// `seen_as`: the signals in the logs that show the step was taken.
fn signals(p: &mut Problems<'_>, offset: usize, what: &str, names: &[String]) -> Vec<Signal> {
    names
        .iter()
        .filter_map(|n| {
            let s = Signal::from_name(n);
            if s.is_none() {
                p.at(
                    offset,
                    format!(
                        "{what}: seen_as {n:?} is not a signal gatewatch sees; the known ones are {}",
                        Signal::ALL.map(|s| s.as_str()).join(", ")
                    ),
                );
            }
            s
        })
        .collect()
}

fn placeholders_known(p: &mut Problems<'_>, offset: usize, what: &str, template: &str) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            p.at(offset, format!("{what}: '{{' without a closing '}}'"));
            return;
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            p.at(
                offset,
                format!(
                    "{what}: unknown placeholder {{{name}}}; use {}",
                    PLACEHOLDERS.map(|n| format!("{{{n}}}")).join(", ")
                ),
            );
        }
        rest = &after[close + 1..];
    }
}

fn example(p: &mut Problems<'_>, raw: Spanned<RawExample>, what: &str) -> Option<Example> {
    let offset = raw.span().start;
    let raw = raw.into_inner();
    let Some(format) = Format::from_name(&raw.format) else {
        p.at(
            offset,
            format!(
                "{what}: format {:?} is not one of {}",
                raw.format,
                Format::ALL.map(Format::as_str).join(", ")
            ),
        );
        return None;
    };
    if let Some(lf) = &raw.log_format
        && let Err(e) = log_format(format, lf)
    {
        p.at(offset, format!("{what}: {e}"));
        return None;
    }
    Some(Example {
        format,
        line: raw.line,
        log_format: raw.log_format,
        why: raw.why,
    })
}

/// How much of an entry [`compile`] proves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// Everything: the regexes compiled now, every example and near miss classified.
    Full,
    /// Files the binary was built with, proven by its tests: the schema checked, the regexes
    /// compiled when first used, the examples not classified again.
    Built,
}

/// Checks and compiles one file; the examples are checked later, against the whole base.
fn compile(src: &Source, proof: Proof) -> Result<(Entry, Vec<usize>, Vec<usize>), Vec<KbError>> {
    let mut p = Problems {
        file: &src.file,
        text: &src.text,
        errors: Vec::new(),
    };
    let raw: RawEntry = match toml::from_str(&src.text) {
        Ok(r) => r,
        Err(e) => return Err(vec![FileError::from_toml(&src.file, &src.text, &e)]),
    };

    let id_at = raw.id.span().start;
    let id = raw.id.into_inner();
    let expected = id_of(&src.rel);
    let well_formed = id.split_once('/').is_some_and(|(c, n)| {
        !c.is_empty()
            && !n.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-/_".contains(&b))
    });
    if !well_formed {
        p.at(
            id_at,
            format!("id {id:?} must look like \"category/name\" in lower case, digits and '-'"),
        );
    } else if id != expected {
        p.at(
            id_at,
            format!("id {id:?} does not match the file's path: expected \"{expected}\""),
        );
    }
    text_present(&mut p, 0, "title", &raw.title.en, &raw.title.zh);
    rate(
        &mut p,
        raw.fix_rate.span().start,
        "fix_rate",
        *raw.fix_rate.get_ref(),
    );
    rate(
        &mut p,
        raw.confidence.span().start,
        "confidence",
        *raw.confidence.get_ref(),
    );
    let first_seen_at = raw.first_seen.span().start;
    let first_seen = match raw.first_seen.get_ref().date {
        Some(d) if raw.first_seen.get_ref().time.is_none() => {
            format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
        }
        _ => {
            p.at(
                first_seen_at,
                "first_seen must be a date such as 2023-06-10",
            );
            String::new()
        }
    };
    let docs_at = raw.docs.span().start;
    let mut docs = Vec::new();
    for d in raw.docs.into_inner() {
        if !d.get_ref().starts_with("https://") {
            p.at(
                d.span().start,
                format!("docs: {:?} is not an https:// address", d.get_ref()),
            );
        } else if d.get_ref().contains("TODO") {
            p.at(
                d.span().start,
                format!(
                    "docs: {:?} still says TODO: name the official page (the entry is a draft)",
                    d.get_ref()
                ),
            );
        }
        docs.push(d.into_inner());
    }
    if docs.is_empty() {
        p.at(
            docs_at,
            "docs: name at least one page of official documentation",
        );
    }
    text_present(
        &mut p,
        0,
        "root_cause",
        &raw.root_cause.en,
        &raw.root_cause.zh,
    );

    let wa_at = raw.workarounds.span().start;
    let mut workarounds: Vec<Workaround> = Vec::new();
    for (i, w) in raw.workarounds.into_inner().into_iter().enumerate() {
        let at = w.span().start;
        let w = w.into_inner();
        let what = format!("workaround {}", i + 1);
        rate(&mut p, at, &format!("{what}: success_rate"), w.success_rate);
        text_present(&mut p, at, &what, &w.en, &w.zh);
        for text in [&w.en, &w.zh] {
            if text.contains("{command}") && w.command.is_none() && w.example.is_none() {
                p.at(
                    at,
                    format!("{what}: the text has {{command}} but there is no command"),
                );
            }
        }
        if let Some(c) = &w.command {
            placeholders_known(&mut p, at, &format!("{what}: command"), c);
        }
        if let Some(prev) = workarounds.last()
            && prev.success_rate < w.success_rate
        {
            p.at(
                at,
                format!(
                    "{what}: success_rate {} is higher than the one before ({}); list workarounds from the most to the least successful",
                    w.success_rate, prev.success_rate
                ),
            );
        }
        let seen_as = signals(&mut p, at, &what, &w.seen_as);
        workarounds.push(Workaround {
            success_rate: w.success_rate,
            text: Text { en: w.en, zh: w.zh },
            command: w.command,
            example: w.example,
            seen_as,
        });
    }
    if workarounds.is_empty() {
        p.at(wa_at, "workarounds: an entry needs at least one workaround");
    }

    let de_at = raw.dead_ends.span().start;
    let mut dead_ends = Vec::new();
    for (i, d) in raw.dead_ends.into_inner().into_iter().enumerate() {
        let at = d.span().start;
        let d = d.into_inner();
        let what = format!("dead end {}", i + 1);
        rate(&mut p, at, &format!("{what}: fail_rate"), d.fail_rate);
        text_present(&mut p, at, &format!("{what}: name"), &d.name.en, &d.name.zh);
        text_present(&mut p, at, &what, &d.en, &d.zh);
        let seen_as = signals(&mut p, at, &what, &d.seen_as);
        dead_ends.push(DeadEnd {
            name: d.name,
            fail_rate: d.fail_rate,
            why: Text { en: d.en, zh: d.zh },
            seen_as,
        });
    }
    if dead_ends.is_empty() {
        p.at(de_at, "dead_ends: an entry needs at least one dead end");
    }

    let match_at = raw.matching.span().start;
    let m = matching(&mut p, raw.matching.into_inner(), match_at, proof);
    // gatewatch's own alarms (category `gatewatch`, such as format drift) explain no log line:
    // they match nothing, and have no examples to prove.
    let own_alarm = raw.category == SELF_ALARMS;
    if own_alarm && !m.causes.is_empty() {
        p.at(
            match_at,
            "match.causes: an entry of category \"gatewatch\" is one of gatewatch's own alarms and matches no log line; leave causes empty",
        );
    }
    if m.causes.is_empty() && !own_alarm && p.errors.is_empty() {
        p.at(match_at, "match.causes: name at least one cause");
    }

    let mut examples = Vec::new();
    let mut example_at = Vec::new();
    for (i, e) in raw.examples.into_iter().enumerate() {
        let at = e.span().start;
        if let Some(x) = example(&mut p, e, &format!("example {}", i + 1)) {
            examples.push(x);
            example_at.push(at);
        }
    }
    if examples.is_empty() && !own_alarm && p.errors.is_empty() {
        p.at(
            match_at,
            "examples: an entry needs at least one example line that it matches",
        );
    }
    let mut near_misses = Vec::new();
    let mut near_at = Vec::new();
    for (i, e) in raw.near_misses.into_iter().enumerate() {
        let at = e.span().start;
        if let Some(x) = example(&mut p, e, &format!("near miss {}", i + 1)) {
            near_misses.push(x);
            near_at.push(at);
        }
    }

    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    let entry = Entry {
        id,
        file: src.file.clone(),
        title: raw.title,
        category: raw.category,
        kind: raw.kind,
        ai_generated: raw.ai_generated,
        fix_rate: raw.fix_rate.into_inner(),
        confidence: raw.confidence.into_inner(),
        evidence_count: raw.evidence_count,
        first_seen,
        docs,
        versions: raw
            .versions
            .into_iter()
            .map(|v| Version {
                product: v.product,
                versions: v.versions,
                status: v.status,
                introduced: v.introduced,
                deprecated: v.deprecated,
                notes: v.notes,
            })
            .collect(),
        root_cause_tag: raw.root_cause.tag,
        root_cause: Text {
            en: raw.root_cause.en,
            zh: raw.root_cause.zh,
        },
        workarounds,
        dead_ends,
        causes: m.causes,
        statuses: m.statuses,
        formats: m.formats,
        signatures: m.signatures,
        priority: m.priority,
        examples,
        near_misses,
    };
    Ok((entry, example_at, near_at))
}

/// Checks and compiles a `[match]` table.
fn matching(p: &mut Problems<'_>, m: RawMatch, match_at: usize, proof: Proof) -> Matching {
    let mut causes = Vec::new();
    for c in m.causes {
        match Cause::from_name(c.get_ref()) {
            Some(Cause::Ok | Cause::NotApplicable) => p.at(
                c.span().start,
                format!(
                    "match.causes: {:?} is not a failure; an entry explains failures",
                    c.get_ref()
                ),
            ),
            Some(cause) => causes.push(cause),
            None => p.at(
                c.span().start,
                format!(
                    "match.causes: unknown cause {:?}; the causes are {}",
                    c.get_ref(),
                    Cause::ALL.map(|c| c.as_str()).join(", ")
                ),
            ),
        }
    }
    for s in &m.statuses {
        if *s > 999 {
            p.at(
                match_at,
                format!("match.statuses: {s} is not an HTTP status"),
            );
        }
    }
    let mut formats = Vec::new();
    for f in m.formats {
        match Format::from_name(f.get_ref()) {
            Some(format) => formats.push(format),
            None => p.at(
                f.span().start,
                format!("match.formats: unknown format {:?}", f.get_ref()),
            ),
        }
    }
    let mut signatures = Vec::new();
    for s in m.signatures {
        let at = s.span().start;
        let s = s.into_inner();
        let Some(format) = Format::from_name(&s.format) else {
            p.at(
                at,
                format!("match.signatures: unknown format {:?}", s.format),
            );
            continue;
        };
        if proof == Proof::Built {
            signatures.push(Signature::lazy(format, &s.regex));
            continue;
        }
        match Signature::compiled(format, &s.regex) {
            Ok(sig) => signatures.push(sig),
            Err(e) => p.at(
                at,
                format!(
                    "match.signatures: the regex {:?} does not compile: {}",
                    s.regex,
                    one_line_regex_error(&e)
                ),
            ),
        }
    }

    Matching {
        causes,
        statuses: m.statuses,
        formats,
        signatures,
        priority: m.priority,
    }
}

/// The id a pattern file's path gives its entry (`api/x.toml`: `api/x`).
fn id_of(rel: &str) -> String {
    rel.trim_end_matches(".toml").replace('\\', "/")
}

/// A built-in file with only its `[match]` table read ([`match_table`]): the rest is
/// compiled when the entry is first asked for ([`compile_later`]). `None` when the table does
/// not read alone; the file is then compiled whole at load.
fn unread(src: &Source) -> Option<Slot> {
    let table = match_table(&src.text)?;
    let raw: RawHead = toml::from_str(table).ok()?;
    let mut p = Problems {
        file: &src.file,
        text: table,
        errors: Vec::new(),
    };
    let matching = matching(&mut p, raw.matching, 0, Proof::Built);
    if !p.errors.is_empty() {
        return None;
    }
    // (The id is the file's path: the built-in base's tests prove it, as all the rest.)
    Some(Slot {
        id: id_of(&src.rel),
        matching,
        entry: OnceLock::new(),
        source: Some(src.clone()),
    })
}

/// A pattern file's `[match]` table as a TOML document of its own: from its `[match]` line to
/// the next table header that is not its own (`[match.x]`, `[[match.x]]`). `None` when no line
/// starts with `[match]`, or when a line outside those says something of `match` (a header
/// written otherwise, `[[match.signatures]]` after another table, a dotted key `match.x =`):
/// the table read alone might then not be the file's.
fn match_table(text: &str) -> Option<&str> {
    let start = match text.starts_with("[match]") {
        true => 0,
        false => memchr::memmem::find(text.as_bytes(), b"\n[match]")? + 1,
    };
    let mut end = text.len();
    let mut at = start + text[start..].find('\n')? + 1;
    for line in text[at..].split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') && !t.starts_with("[match.") && !t.starts_with("[[match.") {
            end = at;
            break;
        }
        at += line.len();
    }
    // A `match` with only brackets, spaces and quotes before it on its line, and `.`, `]` or
    // `=` next after spaces and quotes.
    let of_match = |at: usize| {
        let line = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let key = |b: &u8| b" \t\"'".contains(b);
        text.as_bytes()[line..at]
            .iter()
            .all(|b| key(b) || *b == b'[')
            && matches!(
                text.as_bytes()[at + 5..].iter().find(|b| !key(b)),
                Some(b'.' | b']' | b'=')
            )
    };
    let mut elsewhere =
        memchr::memmem::find_iter(text.as_bytes(), "match").filter(|&at| at < start || at >= end);
    if elsewhere.any(of_match) {
        return None;
    }
    Some(&text[start..end])
}

/// A built-in entry, compiled from its file when first asked for ([`Kb::get`]).
pub(super) fn compile_later(slot: &Slot) -> Entry {
    let errors = match &slot.source {
        Some(src) => match compile(src, Proof::Built) {
            Ok((entry, _, _)) => return entry,
            Err(errors) => errors,
        },
        None => Vec::new(),
    };
    // Not for a binary whose tests passed (`the_built_in_base_is_proven` compiles every
    // built-in file): the entry is named, its matching kept, and the error told.
    let why = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    crate::log!(
        Error,
        "a built-in knowledge-base entry does not load",
        entry = slot.id,
        error = why
    );
    let text = Text {
        en: format!("{} (the entry did not load: {why})", slot.id),
        zh: format!("{}(条目未能加载:{why})", slot.id),
    };
    let m = slot.matching.clone();
    Entry {
        id: slot.id.clone(),
        file: slot
            .source
            .as_ref()
            .map(|s| s.file.clone())
            .unwrap_or_default(),
        title: text.clone(),
        category: slot.id.split('/').next().unwrap_or_default().to_string(),
        kind: String::new(),
        ai_generated: false,
        fix_rate: 0.0,
        confidence: 0.0,
        evidence_count: 0,
        first_seen: String::new(),
        docs: Vec::new(),
        versions: Vec::new(),
        root_cause_tag: None,
        root_cause: text,
        workarounds: Vec::new(),
        dead_ends: Vec::new(),
        causes: m.causes,
        statuses: m.statuses,
        formats: m.formats,
        signatures: m.signatures,
        priority: m.priority,
        examples: Vec::new(),
        near_misses: Vec::new(),
    }
}

/// An example's `log_format`, in nginx's syntax or, for Apache's access log, httpd's.
fn log_format(format: Format, text: &str) -> Result<LogFormat, crate::engine::parse::FormatError> {
    match format {
        Format::ApacheAccess => crate::engine::parse::apache_access::log_format(text),
        _ => LogFormat::from_directive(text),
    }
}

/// What an example line turns into: its cause and the entry the base matches it to.
pub(crate) fn classify_example(kb: &Kb, ex: &Example) -> Result<(Cause, Option<String>), String> {
    let opts = ParserOptions {
        log_format: match &ex.log_format {
            Some(f) => Some(log_format(ex.format, f).map_err(|e| e.to_string())?),
            None => None,
        },
        year: 2024,
        ..ParserOptions::default()
    };
    let line = ex.line.as_bytes();
    let mut parser = Parser::new(ex.format, &opts, &[line]);
    let ev = parser
        .parse(line)
        .map_err(|e| format!("the line does not parse as {}: {e}", ex.format))?;
    let entry = kb
        .match_event(ev.cause, ev.status, ex.format, line)
        .map(|id| kb.id(id).to_string());
    Ok((ev.cause, entry))
}

/// The regex crate explains a syntax error over several lines (the pattern, a caret, then
/// `error: ...`); a `file:line: message` error keeps only the explanation.
fn one_line_regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(|| text.replace('\n', " "), str::to_string)
}

impl Kb {
    /// Loads and checks every entry: the schema, the regexes, and every example and near-miss
    /// against the whole base. Returns every problem found, not just the first.
    pub fn load(sources: &[Source]) -> Result<Kb, Vec<KbError>> {
        Kb::load_as(sources, Proof::Full)
    }

    /// Loads the entries the binary was built with (the built-in base), which its tests prove
    /// as [`Kb::load`] does: their schema is checked, but their regexes are compiled when first
    /// used and their examples are not classified again (a third of every command's start-up).
    pub fn load_built(sources: &[Source]) -> Result<Kb, Vec<KbError>> {
        Kb::load_as(sources, Proof::Built)
    }

    fn load_as(sources: &[Source], proof: Proof) -> Result<Kb, Vec<KbError>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        let mut later = Vec::new();
        for src in sources {
            if proof == Proof::Built
                && let Some(slot) = unread(src)
            {
                later.push(slot);
                continue;
            }
            match compile(src, proof) {
                Ok(c) => compiled.push((c, src)),
                Err(e) => errors.extend(e),
            }
        }
        let mut seen: std::collections::HashMap<&str, &str> = Default::default();
        let ids = compiled
            .iter()
            .map(|((entry, _, _), src)| (entry.id.as_str(), src.file.as_str()))
            .chain(later.iter().map(|s: &Slot| {
                let file = s.source.as_ref().map_or("", |src| src.file.as_str());
                (s.id.as_str(), file)
            }));
        for (id, file) in ids {
            if let Some(other) = seen.insert(id, file) {
                errors.push(FileError::new(
                    file,
                    0,
                    format!("id {id:?} is also used by {other}"),
                ));
            }
        }
        // Where each entry's examples stand in its file, by id, for the messages below.
        let mut places: std::collections::HashMap<String, (&Source, Vec<usize>, Vec<usize>)> =
            Default::default();
        let mut slots = Vec::with_capacity(compiled.len() + later.len());
        for ((entry, example_at, near_at), src) in compiled {
            places.insert(entry.id.clone(), (src, example_at, near_at));
            slots.push(Slot::ready(entry));
        }
        slots.extend(later);
        let kb = Kb::from_slots(slots);
        if proof == Proof::Built {
            return if errors.is_empty() {
                Ok(kb)
            } else {
                Err(errors)
            };
        }
        for entry in kb.entries() {
            let id = &entry.id;
            let (src, example_at, near_at) = &places[id];
            let mut p = Problems {
                file: &src.file,
                text: &src.text,
                errors: Vec::new(),
            };
            for (i, (ex, at)) in entry.examples.iter().zip(example_at).enumerate() {
                match classify_example(&kb, ex) {
                    Err(e) => p.at(*at, format!("example {}: {e}", i + 1)),
                    Ok((cause, got)) if got.as_deref() != Some(id.as_str()) => p.at(
                        *at,
                        format!(
                            "example {}: the line is {cause} and matches {}, not this entry",
                            i + 1,
                            got.as_deref().unwrap_or("no entry")
                        ),
                    ),
                    Ok(_) => {}
                }
            }
            for (i, (ex, at)) in entry.near_misses.iter().zip(near_at).enumerate() {
                if let Ok((cause, Some(got))) = classify_example(&kb, ex)
                    && got == *id
                {
                    p.at(
                        *at,
                        format!(
                            "near miss {}: the line ({cause}) matches this entry, but must not",
                            i + 1
                        ),
                    );
                }
            }
            errors.extend(p.errors);
        }
        if errors.is_empty() {
            Ok(kb)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kb::EntryId;

    const MINIMAL: &str = r#"
id = "test/unreachable"
category = "test"
kind = "network_error"
fix_rate = 0.5
confidence = 0.5
evidence_count = 1
first_seen = 2024-01-01
docs = ["https://nginx.org/"]
title = { en = "Unreachable", zh = "不可达" }
root_cause = { en = "Down.", zh = "宕机。" }

[[workarounds]]
success_rate = 0.9
en = "Check it: `{command}`."
zh = "检查:`{command}`。"
command = "curl -I http://{upstream}/health"

[[dead_ends]]
name = { en = "Restart the proxy", zh = "重启代理" }
fail_rate = 0.9
en = "The upstream is down."
zh = "上游宕机。"

[match]
causes = ["upstream_unreachable"]
statuses = [502]

[[examples]]
format = "nginx_error"
line = '2024/05/01 12:00:00 [error] 1#1: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://10.0.1.5:8080/", host: "x"'

[[near_misses]]
format = "nginx_error"
why = "a file, not an upstream"
line = '2024/05/01 12:00:00 [error] 1#1: *1 open() "/x" failed (2: No such file or directory), client: 10.0.0.1, server: _'
"#;

    fn load(text: &str) -> Result<Kb, Vec<String>> {
        Kb::load(&[Source {
            file: "patterns/test/unreachable.toml".into(),
            rel: "test/unreachable.toml".into(),
            text: text.to_string().into(),
        }])
        .map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn a_valid_entry_loads_and_matches() {
        let kb = load(MINIMAL).unwrap();
        let id = kb.find("test/unreachable").unwrap();
        assert_eq!(kb.get(id).workarounds.len(), 1);
        let line = kb.get(id).examples[0].line.as_bytes();
        assert_eq!(
            kb.match_event(Cause::UpstreamUnreachable, None, Format::NginxError, line),
            Some(id)
        );
        assert_eq!(
            kb.match_event(
                Cause::UpstreamUnreachable,
                Some(504),
                Format::NginxError,
                line
            ),
            None
        );
    }

    /// Each broken variant of the minimal entry, and the `file:line: message` it must produce.
    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (
                "fix_rate = 0.5",
                "fix_rate = 85",
                "patterns/test/unreachable.toml:5: fix_rate is 85",
            ),
            (
                "kind = ",
                "knd = ",
                "patterns/test/unreachable.toml:4: unknown field `knd`",
            ),
            (
                "success_rate = 0.9",
                "success_rate = 1.9",
                "patterns/test/unreachable.toml:13: workaround 1: success_rate is 1.9",
            ),
            (
                "{upstream}/health",
                "{upstrem}/health",
                "patterns/test/unreachable.toml:13: workaround 1: command: unknown placeholder {upstrem}",
            ),
            (
                "causes = [\"upstream_unreachable\"]",
                "causes = [\"upstream_down\"]",
                "patterns/test/unreachable.toml:26: match.causes: unknown cause \"upstream_down\"",
            ),
            (
                "statuses = [502]",
                "statuses = [502]\nsignatures = [{ format = \"nginx_error\", regex = \"(\" }]",
                "match.signatures: the regex \"(\" does not compile: unclosed group",
            ),
            (
                "(111: Connection refused)",
                "(110: Connection timed out)",
                "patterns/test/unreachable.toml:29: example 1: the line is upstream_timeout and matches no entry, not this entry",
            ),
            (
                "open() \"/x\" failed (2: No such file or directory)",
                "connect() failed (111: Connection refused) while connecting to upstream",
                "patterns/test/unreachable.toml:33: near miss 1: the line (upstream_unreachable) matches this entry, but must not",
            ),
            (
                "id = \"test/unreachable\"",
                "id = \"test/other\"",
                "patterns/test/unreachable.toml:2: id \"test/other\" does not match the file's path",
            ),
        ];
        for (from, to, expected) in cases {
            let text = MINIMAL.replacen(from, to, 1);
            assert_ne!(text, MINIMAL, "{from}");
            let errors = load(&text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "expected {expected:?} in {errors:#?}"
            );
        }
    }

    fn same_matching(a: &Matching, b: &Matching, id: &str) {
        assert_eq!(a.causes, b.causes, "{id}");
        assert_eq!(a.statuses, b.statuses, "{id}");
        assert_eq!(a.formats, b.formats, "{id}");
        assert_eq!(a.priority, b.priority, "{id}");
        let sigs = |m: &Matching| -> Vec<(Format, String)> {
            m.signatures
                .iter()
                .map(|s| (s.format, s.pattern().to_string()))
                .collect()
        };
        assert_eq!(sigs(a), sigs(b), "{id}");
    }

    fn compiled(kb: &Kb) -> usize {
        kb.slots.iter().filter(|s| s.entry.get().is_some()).count()
    }

    /// The built-in base is read as it is used: at load each file's `[match]` table alone, an
    /// entry's file when the entry is first asked for — and what is read so is what reading
    /// every file whole gives.
    #[test]
    fn built_in_entries_are_read_when_asked_for_and_alike() {
        let sources: Vec<Source> = crate::app::patterns::embedded_sources()
            .into_iter()
            .filter(|s| !crate::app::patterns::is_draft(&s.text))
            .collect();
        let whole = Kb::load(&sources).expect("the built-in base is proven");
        let built = Kb::load_built(&sources).expect("the built-in base loads");
        assert_eq!(whole.len(), built.len());
        assert!(built.len() > 30, "{}", built.len());
        // Every file's table read alone: none compiled at load.
        assert_eq!(compiled(&built), 0);
        for (w, b) in whole.slots.iter().zip(&built.slots) {
            assert_eq!(w.id, b.id);
            same_matching(&w.matching, &b.matching, &w.id);
        }
        let id = built
            .find("api/http-502-bad-gateway-upstream-unreachable")
            .expect("the first entry");
        let asked = built.get(id);
        assert_eq!(compiled(&built), 1, "only the entry asked for is compiled");
        let w = whole.get(whole.find(&asked.id).expect("in both"));
        assert_eq!(
            (&asked.title, &asked.workarounds),
            (&w.title, &w.workarounds)
        );
        for (w, b) in whole.entries().zip(built.entries()) {
            let id = &w.id;
            assert_eq!(w.id, b.id);
            assert_eq!(w.file, b.file, "{id}");
            assert_eq!(w.title, b.title, "{id}");
            assert_eq!((&w.category, &w.kind), (&b.category, &b.kind), "{id}");
            assert_eq!(w.ai_generated, b.ai_generated, "{id}");
            assert_eq!(
                (w.fix_rate, w.confidence),
                (b.fix_rate, b.confidence),
                "{id}"
            );
            assert_eq!(w.evidence_count, b.evidence_count, "{id}");
            assert_eq!(w.first_seen, b.first_seen, "{id}");
            assert_eq!(w.docs, b.docs, "{id}");
            assert_eq!(w.versions, b.versions, "{id}");
            assert_eq!(w.root_cause_tag, b.root_cause_tag, "{id}");
            assert_eq!(w.root_cause, b.root_cause, "{id}");
            assert_eq!(w.workarounds, b.workarounds, "{id}");
            assert_eq!(w.dead_ends, b.dead_ends, "{id}");
            assert_eq!(w.examples, b.examples, "{id}");
            assert_eq!(w.near_misses, b.near_misses, "{id}");
            let m = |e: &Entry| Matching {
                causes: e.causes.clone(),
                statuses: e.statuses.clone(),
                formats: e.formats.clone(),
                signatures: e.signatures.clone(),
                priority: e.priority,
            };
            same_matching(&m(w), &m(b), id);
        }
    }

    #[test]
    fn the_match_table_is_read_alone_up_to_the_next_table() {
        let text = "id = \"a/b\"\n[title]\nen = \"x\"\n[match]\ncauses = [\n    \"upstream_unreachable\",\n]\n# a comment\n[[match.signatures]]\nformat = \"nginx_error\"\nregex = 'x'\n\n  [[examples]]\nline = \"[match]\"\n";
        assert_eq!(
            match_table(text),
            Some(
                "[match]\ncauses = [\n    \"upstream_unreachable\",\n]\n# a comment\n[[match.signatures]]\nformat = \"nginx_error\"\nregex = 'x'\n\n"
            )
        );
        assert_eq!(
            match_table("[match]\ncauses = []\n"),
            Some("[match]\ncauses = []\n")
        );
        assert_eq!(match_table("match = { causes = [] }\n"), None);
        assert_eq!(match_table("[matches]\n"), None);
        // What else says something of `match` leaves the file to be read whole.
        for other in [
            "[[ match.signatures ]]\nformat = \"nginx_error\"\nregex = 'x'\n",
            "[[\"match\".signatures]]\nformat = \"nginx_error\"\nregex = 'x'\n",
            "[[examples]]\nline = \"x\"\n[[match.signatures]]\nformat = \"nginx_error\"\n",
            "match.priority = 1\n",
            "  [match]\n",
        ] {
            let text = format!("id = \"a/b\"\n[match]\ncauses = []\n[title]\nen = \"x\"\n{other}");
            assert_eq!(match_table(&text), None, "{other}");
        }
        assert_eq!(
            match_table("[match]\ncauses = []\n[[examples]]\nline = \"[matches] match\"\n"),
            Some("[match]\ncauses = []\n")
        );
    }

    /// A built-in file whose `[match]` table is not written as a table of its own is compiled
    /// whole at load; one whose table reads but whose rest does not (which the build's tests
    /// rule out) still loads, and its entry says it did not.
    #[test]
    fn built_in_files_that_do_not_read_lazily_still_load() {
        let source = |rel: &str, text: String| Source {
            file: format!("patterns/{rel}"),
            rel: rel.into(),
            text: text.into(),
        };
        let inline = MINIMAL
            .replace("[match]\ncauses", "[match_]\ncauses")
            .replace(
                "[match_]\ncauses = [\"upstream_unreachable\"]\nstatuses = [502]\n",
                "",
            )
            .replace(
                "root_cause = {",
                "match = { causes = [\"upstream_unreachable\"], statuses = [502] }\nroot_cause = {",
            );
        assert!(match_table(&inline).is_none(), "{inline}");
        let kb = Kb::load_built(&[source("test/unreachable.toml", inline)]).unwrap();
        assert_eq!(compiled(&kb), 1);
        let line = kb.get(EntryId(0)).examples[0].line.clone();
        assert_eq!(
            kb.match_event(
                Cause::UpstreamUnreachable,
                Some(502),
                Format::NginxError,
                line.as_bytes()
            ),
            Some(EntryId(0))
        );

        let broken = MINIMAL.replace("fix_rate = 0.5", "fix_rate = \"half\"");
        let kb = Kb::load_built(&[source("test/unreachable.toml", broken)]).unwrap();
        assert_eq!(compiled(&kb), 0);
        let id = kb.find("test/unreachable").unwrap();
        assert_eq!(
            kb.match_event(
                Cause::UpstreamUnreachable,
                Some(502),
                Format::NginxError,
                b"x"
            ),
            Some(id)
        );
        let e = kb.get(id);
        assert!(e.title.en.contains("did not load"), "{}", e.title.en);
        assert!(
            e.title.en.contains("patterns/test/unreachable.toml:5"),
            "{}",
            e.title.en
        );
        assert_eq!(e.causes, [Cause::UpstreamUnreachable]);
    }
}

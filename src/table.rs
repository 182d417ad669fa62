//! A table of the configuration file read key by key, so that the module that owns some
//! settings (a kind of channel) reads its own keys, and every problem is reported as
//! `file:line: table.key: message` at the key's line (at the table's line for a missing key).
//! Keys nobody took are refused with the list of those the table accepts.

use crate::engine::error::FileError;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::{Spanned, Value};

/// The longest duration a key accepts. Durations become milliseconds in an `i64` that is added
/// to time stamps; a longer one would wrap (a negative window) or overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600); // 365.25-day years

/// A table being read.
pub struct Table<'a> {
    file: &'a str,
    text: &'a str,
    /// How keys are named in messages: `channel`.
    prefix: &'static str,
    /// Where the table starts (a byte offset of `text`).
    at: usize,
    keys: BTreeMap<String, Spanned<Value>>,
    /// Every key asked for, present or not: what the table accepts.
    asked: Vec<String>,
    errors: &'a mut Vec<FileError>,
}

impl<'a> Table<'a> {
    pub fn new(
        file: &'a str,
        text: &'a str,
        prefix: &'static str,
        table: Spanned<BTreeMap<String, Spanned<Value>>>,
        errors: &'a mut Vec<FileError>,
    ) -> Table<'a> {
        let at = table.span().start;
        Table {
            file,
            text,
            prefix,
            at,
            keys: table.into_inner(),
            asked: Vec::new(),
            errors,
        }
    }

    /// The 1-based line the table starts at.
    pub fn line(&self) -> usize {
        crate::engine::error::line_of(self.text, self.at)
    }

    /// A problem with the table as a whole, at its first line: `table: message`.
    pub fn error(&mut self, message: impl std::fmt::Display) {
        let e = FileError::at(
            self.file,
            self.text,
            self.at,
            format!("{}: {message}", self.prefix),
        );
        self.errors.push(e);
    }

    /// A problem at a byte offset of the file, the message as given.
    pub fn at(&mut self, offset: usize, message: impl Into<String>) {
        let e = FileError::at(self.file, self.text, offset, message);
        self.errors.push(e);
    }

    /// A problem with a key's value, at its line: `table.key: message`.
    pub fn error_at(&mut self, key: &str, value: &Spanned<Value>, message: impl std::fmt::Display) {
        let e = FileError::at(
            self.file,
            self.text,
            value.span().start,
            format!("{}.{key}: {message}", self.prefix),
        );
        self.errors.push(e);
    }

    fn take(&mut self, key: &str) -> Option<Spanned<Value>> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
        self.keys.remove(key)
    }

    /// A string key; a value of another type is an error.
    pub fn string(&mut self, key: &str) -> Option<Spanned<String>> {
        let v = self.take(key)?;
        match v.get_ref() {
            Value::String(s) => Some(Spanned::new(v.span(), s.clone())),
            other => {
                let what = other.type_str();
                self.error_at(key, &v, format!("expected a string, not {what}"));
                None
            }
        }
    }

    /// A string, or an integer taken as its digits (an id people write either way).
    pub fn text(&mut self, key: &str) -> Option<Spanned<String>> {
        let v = self.take(key)?;
        match v.get_ref() {
            Value::String(s) => Some(Spanned::new(v.span(), s.clone())),
            Value::Integer(n) => Some(Spanned::new(v.span(), n.to_string())),
            other => {
                let what = other.type_str();
                self.error_at(key, &v, format!("expected a string, not {what}"));
                None
            }
        }
    }

    /// A string key that must be there: `example` shows how it is written.
    pub fn required(
        &mut self,
        key: &str,
        needed_by: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        let present = self.keys.contains_key(key);
        let v = self.string(key);
        if !present {
            self.error(format!("{needed_by} needs {key} = {example}"));
        }
        v
    }

    /// A list of strings.
    pub fn strings(&mut self, key: &str) -> Option<Spanned<Vec<String>>> {
        let v = self.take(key)?;
        let list = match v.get_ref() {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>(),
            Value::String(s) => Some(vec![s.clone()]),
            _ => None,
        };
        match list {
            Some(l) => Some(Spanned::new(v.span(), l)),
            None => {
                self.error_at(
                    key,
                    &v,
                    "expected a list of strings, such as [\"a\", \"b\"]",
                );
                None
            }
        }
    }

    /// A duration (`"30s"`, `"5m"`), or `default`.
    pub fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let Some(v) = self.string(key) else {
            return default;
        };
        let value = Spanned::new(v.span(), Value::String(v.get_ref().clone()));
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d > MAX_DURATION => {
                self.error_at(
                    key,
                    &value,
                    format!("{:?} is too long (at most 100 years)", v.get_ref()),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error_at(
                    key,
                    &value,
                    format!(
                        "{:?} is not a duration ({e}); write it like \"60s\" or \"5m\"",
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    /// A key that must not be there, with why (a secret written into the file).
    pub fn refuse(&mut self, key: &str, why: &str) {
        if let Some(v) = self.keys.remove(key) {
            self.error_at(key, &v, why);
        }
    }

    /// The end of reading: keys nobody asked for are refused, naming those the table takes.
    pub fn finish(mut self, what: &str) {
        let left = std::mem::take(&mut self.keys);
        let mut accepted: Vec<&str> = self.asked.iter().map(String::as_str).collect();
        accepted.sort_unstable();
        for (key, v) in left {
            let list = accepted
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.errors.push(FileError::at(
                self.file,
                self.text,
                v.span().start,
                format!(
                    "{}: unknown field `{key}`; {what} takes {list}",
                    self.prefix
                ),
            ));
        }
    }
}

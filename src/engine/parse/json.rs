//! A tolerant walk over the members of one JSON object, for log lines that are JSON objects
//! (nginx `escape=json`, Caddy). Allocation-free: values are spans into the line, strings
//! without their quotes and still escaped. Tolerant the way log readers must be: nginx writes
//! numbers such as `"status":009` that strict JSON refuses, so a bare value is taken as written.

use crate::engine::event::{Span, Unparsed};

/// A member's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string's content, without the quotes (escapes are left as written).
    Str(Span),
    /// A number, `true`, `false` or `null`, as written.
    Bare(Span),
    /// A nested object: the index of its `{`; walk it with [`walk`] from there.
    Object(usize),
    /// An array (not read).
    Array,
}

impl Value {
    /// The value's text (a string's content or a bare value), if it is one of those.
    pub fn text(self) -> Span {
        match self {
            Value::Str(s) | Value::Bare(s) => s,
            _ => Span::NONE,
        }
    }
}

/// Visits each member of the object whose `{` is at `at` (after optional white space); returns
/// the index just after its `}`. A line that is not an object, or breaks off, is `Shape`.
pub fn walk(
    line: &[u8],
    at: usize,
    mut visit: impl FnMut(&[u8], Value),
) -> Result<usize, Unparsed> {
    let mut p = skip_ws(line, at);
    if line.get(p) != Some(&b'{') {
        return Err(Unparsed::Shape);
    }
    p += 1;
    loop {
        p = skip_ws(line, p);
        match line.get(p) {
            Some(b'}') => return Ok(p + 1),
            Some(b',') => {
                p += 1;
                continue;
            }
            Some(b'"') => {}
            _ => return Err(Unparsed::Shape),
        }
        let key_end = string_end(line, p + 1).ok_or(Unparsed::Shape)?;
        let key = &line[p + 1..key_end];
        p = skip_ws(line, key_end + 1);
        if line.get(p) != Some(&b':') {
            return Err(Unparsed::Shape);
        }
        p = skip_ws(line, p + 1);
        let (value, next) = match line.get(p) {
            Some(b'"') => {
                let end = string_end(line, p + 1).ok_or(Unparsed::Shape)?;
                (Value::Str(Span::new(p + 1, end)), end + 1)
            }
            Some(b'{') => (
                Value::Object(p),
                skip_nested(line, p).ok_or(Unparsed::Shape)?,
            ),
            Some(b'[') => (Value::Array, skip_nested(line, p).ok_or(Unparsed::Shape)?),
            Some(_) => {
                let end = memchr::memchr2(b',', b'}', &line[p..]).map_or(line.len(), |i| p + i);
                let raw = line[p..end].trim_ascii_end();
                (Value::Bare(Span::new(p, p + raw.len())), end)
            }
            None => return Err(Unparsed::Shape),
        };
        visit(key, value);
        p = next;
    }
}

fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(|c| c.is_ascii_whitespace()) {
        p += 1;
    }
    p
}

/// The index of the `"` that closes a JSON string whose content starts at `from`.
fn string_end(b: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = from + memchr::memchr2(b'"', b'\\', b.get(from..)?)?;
        if b[i] == b'\\' {
            from = i + 2;
            if from > b.len() {
                return None;
            }
        } else {
            return Some(i);
        }
    }
}

/// The index just after the object or array starting at `p`.
fn skip_nested(b: &[u8], mut p: usize) -> Option<usize> {
    let mut depth = 0usize;
    while p < b.len() {
        match b[p] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(p + 1);
                }
            }
            b'"' => p = string_end(b, p + 1)?,
            _ => {}
        }
        p += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(line: &str) -> Result<Vec<(String, String)>, Unparsed> {
        let b = line.as_bytes();
        let mut out = Vec::new();
        walk(b, 0, |k, v| {
            let text = match v {
                Value::Object(at) => format!("{{@{at}"),
                Value::Array => "[".into(),
                v => String::from_utf8_lossy(v.text().get(b).unwrap_or(b"")).into_owned(),
            };
            out.push((String::from_utf8_lossy(k).into_owned(), text));
        })?;
        Ok(out)
    }

    #[test]
    fn members_strings_numbers_and_nested_values() {
        let m = members(r#" {"a":"x\"y", "n": 009 ,"o":{"k":[1,"}"]},"l":[{"}":1}],"t":true}"#)
            .unwrap();
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "n", "o", "l", "t"]);
        assert_eq!(m[0].1, r#"x\"y"#);
        assert_eq!(m[1].1, "009");
        assert_eq!(m[2].1, "{@28");
        assert_eq!(m[4].1, "true");
    }

    #[test]
    fn broken_objects_are_refused() {
        for bad in [
            r#"{"a":"x"#,
            r#"{"a" 1}"#,
            "[1]",
            r#"{"a":{"b":1}"#,
            "",
            "{\"a\\",
        ] {
            assert_eq!(members(bad), Err(Unparsed::Shape), "{bad}");
        }
    }
}

//! Errors that point into a file: `file:line: message`, the form editors and CI logs link to.

use std::fmt;

/// A problem at a line of a config or pattern file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a line.
    pub line: usize,
    pub message: String,
}

impl FileError {
    pub fn new(file: impl Into<String>, line: usize, message: impl Into<String>) -> FileError {
        FileError {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    /// An error at a byte offset of `text`.
    pub fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> FileError {
        FileError::new(file, line_of(text, offset), message)
    }

    /// A TOML syntax or schema error, placed at the line it names.
    pub fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> FileError {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        let message = e.message().trim();
        match key_at(text, line) {
            // An unknown key names itself; say which table it is in.
            Some(key) if message.starts_with("unknown field") => match key.rsplit_once('.') {
                Some((table, _)) => FileError::new(file, line, format!("{table}: {message}")),
                None => FileError::new(file, line, message),
            },
            Some(key) => FileError::new(file, line, format!("{key}: {message}")),
            None => FileError::new(file, line, message),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for FileError {}

/// The dotted name of the key set on a 1-based line (`detect.window` for `window = 5` under
/// `[detect]`), so a message from the TOML reader names the field; `None` when the line sets no
/// key (a table header, a line inside a multi-line value).
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    let mut key = None;
    for (n, l) in text.lines().take(line).enumerate() {
        let l = l.trim();
        if let Some(h) = l.strip_prefix('[') {
            let h = h.trim_start_matches('[');
            if let Some(end) = h.find(']') {
                table = h[..end].trim().to_string();
            }
        } else if n + 1 == line
            && let Some((k, _)) = l.split_once('=')
        {
            let k = k.trim();
            let bare = |c: char| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c);
            if !k.is_empty() && k.chars().all(bare) {
                key = Some(k.replace(['"', '\''], ""));
            }
        }
    }
    let key = key?;
    Some(if table.is_empty() {
        key
    } else {
        format!("{table}.{key}")
    })
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Several errors, one per line when shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileErrors(pub Vec<FileError>);

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FileErrors {}

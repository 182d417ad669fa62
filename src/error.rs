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
        FileError::new(file, line, e.message().trim())
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

//! Splitting a byte stream into lines: one reusable buffer, no allocation per line, a limit on
//! line length so a file without newlines cannot exhaust memory.

use std::io::{self, Read};

/// A line inside the reader's buffer: valid until the next call to [`LineReader::next_line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRef {
    pub start: usize,
    pub end: usize,
}

/// What the reader found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Line(LineRef),
    /// A line longer than the limit: its bytes were skipped up to the next newline.
    TooLong,
    Eof,
}

/// Reads lines from any `Read` (a file, a gzip decoder).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of unread data in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    eof: bool,
    max_line: usize,
    /// Bytes consumed from the stream so far (lines and their newlines).
    offset: u64,
}

impl<R: Read> LineReader<R> {
    /// `max_line` is the longest line kept, in bytes; the buffer holds at least that.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        let cap = (max_line + 1).max(256 * 1024);
        LineReader {
            inner,
            buf: vec![0; cap],
            pos: 0,
            end: 0,
            eof: false,
            max_line,
            offset: 0,
        }
    }

    /// The bytes of a line returned by the last call to `next_line`.
    pub fn bytes(&self, line: LineRef) -> &[u8] {
        &self.buf[line.start..line.end]
    }

    /// Bytes of the stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line, without its `\n`. A last line without a newline is returned at the end
    /// of the stream.
    pub fn next_line(&mut self) -> io::Result<Next> {
        let mut skipping = false;
        let mut searched = self.pos;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let nl = searched + i;
                let start = self.pos;
                self.pos = nl + 1;
                self.offset += (nl + 1 - start) as u64;
                if skipping || nl - start > self.max_line {
                    return Ok(Next::TooLong);
                }
                return Ok(Next::Line(LineRef { start, end: nl }));
            }
            if self.eof {
                if self.pos == self.end {
                    return Ok(if skipping { Next::TooLong } else { Next::Eof });
                }
                let start = self.pos;
                self.offset += (self.end - start) as u64;
                self.pos = self.end;
                if skipping || self.end - start > self.max_line {
                    return Ok(Next::TooLong);
                }
                return Ok(Next::Line(LineRef {
                    start,
                    end: self.end,
                }));
            }
            if self.end - self.pos > self.max_line {
                // No newline within the limit: drop what we have and skip to the next one.
                self.offset += (self.end - self.pos) as u64;
                self.pos = 0;
                self.end = 0;
                skipping = true;
            } else if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            searched = self.end;
            let n = loop {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match r.next_line().unwrap() {
                Next::Line(l) => out.push(Some(r.bytes(l).to_vec())),
                Next::TooLong => out.push(None),
                Next::Eof => break,
            }
        }
        assert_eq!(r.offset(), input.len() as u64);
        out
    }

    #[test]
    fn splits_lines_and_keeps_a_last_line_without_newline() {
        assert_eq!(
            lines(b"a\nbb\n\nccc", 100),
            vec![
                Some(b"a".to_vec()),
                Some(b"bb".to_vec()),
                Some(vec![]),
                Some(b"ccc".to_vec())
            ]
        );
        assert_eq!(lines(b"", 100), Vec::<Option<Vec<u8>>>::new());
    }

    #[test]
    fn overlong_lines_are_skipped_and_reported() {
        let mut input = vec![b'x'; 1_000_000];
        input.extend_from_slice(b"\nok\n");
        input.extend(vec![b'y'; 300_000]);
        assert_eq!(lines(&input, 1000), vec![None, Some(b"ok".to_vec()), None]);
    }

    #[test]
    fn lines_across_buffer_refills() {
        let mut input = Vec::new();
        for i in 0..100_000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let got = lines(&input, 64);
        assert_eq!(got.len(), 100_000);
        assert_eq!(got[99_999], Some(b"line 99999".to_vec()));
    }
}

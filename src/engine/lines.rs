//! Splitting a byte stream into lines: one reusable buffer, no allocation per line, a limit on
//! line length so a file without newlines cannot exhaust memory.

use crate::engine::parse::mask;
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

/// Where a [`LineReader`] takes its bytes from: any reader, or a decoder that writes into the
/// reader's buffer after the bytes it gave before ([`crate::engine::gunzip::Gunzip`]).
pub trait Source {
    /// How many of the bytes given before the next read must still be right before where it
    /// writes (all of them when fewer were given).
    fn history(&self) -> usize {
        0
    }

    /// Reads into `buf[at..]` (`buf[..at]` ends with the last [`Source::history`] bytes read);
    /// how many, 0 at the end.
    fn read_after(&mut self, buf: &mut [u8], at: usize) -> io::Result<usize>;
}

impl<R: Read> Source for R {
    fn read_after(&mut self, buf: &mut [u8], at: usize) -> io::Result<usize> {
        self.read(&mut buf[at..])
    }
}

/// The unread bytes of the buffer ([`LineReader::unread`]): `buf[pos..end]`, with the masks
/// of every 64 bytes of `buf` in `words` (newlines first) when the reader classifies them.
/// `buf` holds at least a 64-byte word after `end`'s.
pub struct Unread<'a> {
    pub buf: &'a [u8],
    pub words: Option<&'a [[u64; 4]]>,
    pub pos: usize,
    pub end: usize,
}

/// Reads lines from any [`Source`] (a file, a gzip decoder).
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
    /// How much of `buf` a read may fill (`buf` is longer: to a multiple of 64 bytes, and 64
    /// more).
    cap: usize,
    /// With [`LineReader::classify`]: the masks of `buf`, kept as it is read.
    masks: Option<Classified>,
}

/// Masks of newlines and three more bytes for every 64 bytes of the buffer (see
/// [`crate::engine::parse::mask`]): lines are split on the first, and a parser walks its
/// fields on the others, all found in one pass over the bytes.
struct Classified {
    set: [u8; 3],
    words: Vec<[u64; 4]>,
}

impl<R: Source> LineReader<R> {
    /// `max_line` is the longest line kept, in bytes; the buffer holds at least that.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        let cap = (max_line + 1 + inner.history()).max(256 * 1024);
        LineReader {
            inner,
            // (And a window's room after the bytes read: the quick walk's windows of a line
            // run up to 64 bytes past its end, see `mask::Bytes::window`.)
            buf: vec![0; cap.next_multiple_of(64) + 64],
            pos: 0,
            end: 0,
            eof: false,
            max_line,
            offset: 0,
            cap,
            masks: None,
        }
    }

    /// From now on, classifies the bytes read (newlines, and the three bytes of `set`) as they
    /// come in: lines are split through the newline masks, and
    /// [`LineReader::masks`] gives the others to a parser.
    pub fn classify(&mut self, set: [u8; 3]) {
        self.masks = Some(Classified {
            set,
            words: vec![[0; 4]; self.buf.len() / 64],
        });
        self.reclassify(0, self.end);
    }

    /// With [`LineReader::classify`]: the masks of the buffer the lines are in, one entry per
    /// 64 bytes (newlines first, then the set's bytes); a line starts at [`LineRef::start`] in it.
    pub fn masks(&self) -> Option<&[[u64; 4]]> {
        self.masks.as_ref().map(|c| &c.words[..])
    }

    /// Classifies `buf[from..to]` (`to` is the end of the data: the bytes after it up to the
    /// next 64 are zeroed, so they match nothing).
    fn reclassify(&mut self, from: usize, to: usize) {
        let Some(c) = &mut self.masks else { return };
        let to64 = to.next_multiple_of(64);
        self.buf[to..to64].fill(0);
        let w = from / 64;
        mask::classify_lines(&self.buf[w * 64..to64], c.set, &mut c.words[w..to64 / 64]);
    }

    /// The first newline in `buf[from..self.end]`.
    #[inline]
    fn find_newline(&self, from: usize) -> Option<usize> {
        let Some(c) = &self.masks else {
            return memchr::memchr(b'\n', &self.buf[from..self.end]).map(|i| from + i);
        };
        if from >= self.end {
            return None;
        }
        let mut w = from / 64;
        let mut m = c.words[w][0] >> (from % 64) << (from % 64);
        while m == 0 {
            w += 1;
            if w * 64 >= self.end {
                return None;
            }
            m = c.words[w][0];
        }
        let p = w * 64 + m.trailing_zeros() as usize;
        (p < self.end).then_some(p)
    }

    /// The bytes of a line returned by the last call to `next_line`.
    pub fn bytes(&self, line: LineRef) -> &[u8] {
        &self.buf[line.start..line.end]
    }

    /// Bytes of the stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The longest line kept, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The buffer, its masks (with [`LineReader::classify`]), and where the unread bytes start
    /// and end in it — for a caller that walks the whole lines among them itself, taking them
    /// with [`LineReader::consume`] (a line longer than [`LineReader::max_line`] among them is
    /// the caller's to skip, as `next_line` would).
    #[inline]
    pub fn unread(&self) -> Unread<'_> {
        Unread {
            buf: &self.buf,
            words: self.masks.as_ref().map(|c| &c.words[..]),
            pos: self.pos,
            end: self.end,
        }
    }

    /// The whole lines already in the buffer from the next one on, each with its `\n`, without
    /// reading: `None` when the next line is not whole there (then [`LineReader::next_line`]
    /// reads on). Take some with [`LineReader::consume`]; a line longer than
    /// [`LineReader::max_line`] among them is the caller's to skip, as `next_line` would.
    pub fn whole_lines(&self) -> Option<&[u8]> {
        let rest = &self.buf[self.pos..self.end];
        let last = memchr::memrchr(b'\n', rest)?;
        Some(&rest[..=last])
    }

    /// Takes the first `n` bytes of [`LineReader::whole_lines`] (whole lines, newlines included).
    pub fn consume(&mut self, n: usize) {
        assert!(self.pos + n <= self.end, "consumed past the buffer");
        self.pos += n;
        self.offset += n as u64;
    }

    /// For a caller that finds the lines itself from here on: the bytes the buffer still
    /// holds (the start of the next line, after as many bytes before it as the source needs
    /// before its next read) and where the line starts in them. [`LineReader::read_after`]
    /// reads on; [`LineReader::next_line`] must not be called again.
    pub fn detach(&mut self) -> (&[u8], usize) {
        let from = self.pos.min(self.end.saturating_sub(self.inner.history()));
        let start = self.pos - from;
        self.offset += (self.end - self.pos) as u64;
        self.pos = self.end;
        (&self.buf[from..self.end], start)
    }

    /// After [`LineReader::detach`]: what [`Source::read_after`] reads (`buf[..at]` ending
    /// with the bytes read before, as many as [`Source::history`] asks).
    pub fn read_after(&mut self, buf: &mut [u8], at: usize) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let n = loop {
            match self.inner.read_after(buf, at) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.eof = n == 0;
        self.offset += n as u64;
        Ok(n)
    }

    /// How many bytes read before must stay before the next read (see [`Source::history`]).
    pub fn history(&self) -> usize {
        self.inner.history()
    }

    /// The next line, without its `\n`. A last line without a newline is returned at the end
    /// of the stream.
    pub fn next_line(&mut self) -> io::Result<Next> {
        let mut skipping = false;
        let mut searched = self.pos;
        loop {
            if let Some(nl) = self.find_newline(searched) {
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
            // What the source needs of the bytes before its next read stays in the buffer.
            let keep = self.end.saturating_sub(self.inner.history());
            if self.end - self.pos > self.max_line {
                // No newline within the limit: drop what we have and skip to the next one.
                self.offset += (self.end - self.pos) as u64;
                self.buf.copy_within(keep..self.end, 0);
                self.end -= keep;
                self.pos = self.end;
                skipping = true;
            } else if self.pos.min(keep) > 0 {
                let from = self.pos.min(keep);
                self.buf.copy_within(from..self.end, 0);
                self.end -= from;
                self.pos -= from;
                self.reclassify(self.pos, self.end);
            }
            searched = self.end;
            let n = loop {
                match self.inner.read_after(&mut self.buf[..self.cap], self.end) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
            self.reclassify(searched, self.end);
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

    /// Whole lines taken from the buffer in runs of varying length, `next_line` when there is
    /// none: the same lines, over-long ones skipped, and the same offsets as `next_line` alone.
    /// Lines of every length: empty, short, over 1,000 bytes, one longer than the buffer; the
    /// last without its newline.
    fn mixed() -> Vec<u8> {
        let mut input = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..3_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = match i % 97 {
                _ if i == 1_500 => 300_000, // longer than the buffer: skipped while read
                0 => 1_500 + (seed % 600) as usize, // over-long (the limit below is 1,000)
                1 => 0,
                _ => (seed % 300) as usize,
            };
            input.extend((0..len).map(|k| b'a' + (k % 26) as u8));
            input.push(b'\n');
        }
        input.extend_from_slice(b"last line without a newline");
        input
    }

    /// A gzip stream decoded into the buffer (the decoder's window kept before each read, on
    /// every refill and while an over-long line is skipped) gives the lines and offsets the
    /// plain bytes give, classified or not.
    #[test]
    fn gzip_decoded_in_place_gives_the_lines_of_the_plain_bytes() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let input = mixed();
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&input).unwrap();
        let gz = gz.finish().unwrap();
        for max in [1_000, 100_000] {
            let want = lines(&input, max);
            for classify in [None, Some([b' ', b'"', b']'])] {
                let source = crate::engine::gunzip::Gunzip::new(Dribble { data: &gz, seed: 3 });
                let mut r = LineReader::new(source, max);
                if let Some(set) = classify {
                    r.classify(set);
                }
                let mut got = Vec::new();
                loop {
                    match r.next_line().unwrap() {
                        Next::Line(l) => {
                            if let Some(words) = r.masks() {
                                // The masks are of the line's own bytes.
                                for (i, &b) in r.bytes(l).iter().enumerate() {
                                    let at = l.start + i;
                                    let bit = |k: usize| words[at / 64][k] >> (at % 64) & 1 == 1;
                                    assert_eq!((bit(0), bit(1)), (b == b'\n', b == b' '));
                                }
                            }
                            got.push(Some(r.bytes(l).to_vec()))
                        }
                        Next::TooLong => got.push(None),
                        Next::Eof => break,
                    }
                }
                assert!(got == want, "max {max}, classify {classify:?}");
                assert_eq!(r.offset(), input.len() as u64);
            }
        }
    }

    #[test]
    fn runs_of_whole_lines_are_the_lines_next_line_gives() {
        let input = mixed();
        for max in [1_000, 100_000] {
            let want = lines(&input, max);
            let mut r = LineReader::new(
                Dribble {
                    data: &input,
                    seed: 7,
                },
                max,
            );
            let mut got = Vec::new();
            let mut budget = 1usize;
            loop {
                if let Some(run) = r.whole_lines() {
                    budget = budget % 7 + 1;
                    let mut taken = 0;
                    for (k, line) in run.split_inclusive(|&b| b == b'\n').enumerate() {
                        if k == budget {
                            break;
                        }
                        let body = &line[..line.len() - 1];
                        got.push((body.len() <= r.max_line()).then(|| body.to_vec()));
                        taken += line.len();
                    }
                    r.consume(taken);
                    continue;
                }
                match r.next_line().unwrap() {
                    Next::Line(l) => got.push(Some(r.bytes(l).to_vec())),
                    Next::TooLong => got.push(None),
                    Next::Eof => break,
                }
            }
            assert_eq!(got, want, "max {max}");
            assert_eq!(r.offset(), input.len() as u64);
        }
    }

    /// Gives its bytes in reads of varying, small sizes.
    struct Dribble<'a> {
        data: &'a [u8],
        seed: u64,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let n = (self.seed % 700) as usize + 1;
            let n = n.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn classified_lines_split_alike_and_their_masks_are_theirs() {
        let set = [b' ', b'"', b']'];
        let mut input = Vec::new();
        let mut seed = 7u64;
        for i in 0..30_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 33) as usize % 300;
            input.extend((0..len).map(|k| b" \"]xy\r\0"[(k * 7 + i) % 7]));
            if seed.is_multiple_of(97) {
                input.extend(vec![b'z'; 2_000]);
            }
            input.push(b'\n');
        }
        input.extend_from_slice(b"last \"line\" without ] newline");
        for max in [64, 1_000, 100_000] {
            let want = lines(&input, max);
            let mut r = LineReader::new(
                Dribble {
                    data: &input,
                    seed: 3,
                },
                max,
            );
            r.classify(set);
            let mut got = Vec::new();
            loop {
                match r.next_line().unwrap() {
                    Next::Line(l) => {
                        let bytes = r.bytes(l);
                        // The masks at the line's place are those of its bytes.
                        let mut view = crate::engine::parse::mask::LineMasks::new(
                            r.masks().unwrap(),
                            l.start,
                            bytes.len(),
                        );
                        for (k, b) in set.iter().enumerate() {
                            let sel = crate::engine::parse::mask::select(1 << k);
                            let want = bytes.iter().position(|c| c == b);
                            use crate::engine::parse::mask::Find;
                            assert_eq!(view.find_in(&sel, 0), want);
                            assert_eq!(view.last_in(&sel), bytes.iter().rposition(|c| c == b));
                        }
                        got.push(Some(bytes.to_vec()));
                    }
                    Next::TooLong => got.push(None),
                    Next::Eof => break,
                }
            }
            assert_eq!(r.offset(), input.len() as u64);
            assert_eq!(got, want, "max {max}");
        }
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

//! Blocks of whole lines, read on a reading thread and parsed there, on a parsing thread or on
//! the scanning thread.
//!
//! Once the lines read to recognise the format are handed on, a file is read straight into the
//! blocks ([`Direct`]): the reader's bytes are the block's bytes, and only the part of a line
//! a block ends in is copied, to the start of the next.

use crate::engine::event::{Event, Unparsed};
use crate::engine::lines::{LineReader, Source};
use crate::engine::parse::Parser;
use crate::engine::parse::haproxy::Year;
use crate::engine::parse::mask::{self, Classes, Cpu, InBuffer};
use crate::engine::parse::nginx_access::Answered;
use std::io;

/// A block is full at this many bytes of lines or this many lines.
pub(super) const BLOCK_BYTES: usize = 256 * 1024;
pub(super) const BLOCK_LINES: usize = 2048;
/// Read straight into a block this many bytes at a time at most (so that a block full of
/// lines by their number leaves little to copy to the next).
const READ_CHUNK: usize = 64 * 1024;

/// Lines of one file, read in order and parsed on a reading thread, handed to the scanning
/// thread.
#[derive(Default)]
pub(super) struct Block {
    /// The lines' bytes are `bytes[..end]`. The vector keeps its length between uses (it is
    /// zeroed once, not before every read into it).
    pub(super) bytes: Vec<u8>,
    end: usize,
    /// Where each line is in `bytes`; `None` for an over-long line (skipped).
    pub(super) spans: Vec<Option<(usize, usize)>>,
    /// What each line parsed into, once parsed.
    pub(super) parsed: Vec<Parsed>,
    /// The events of [`Parsed::Event`] (a few lines in a hundred: kept apart, each line's
    /// entry stays small).
    pub(super) events: Vec<Event>,
    /// The lines whose reading needed what earlier blocks left ([`Parser::begin_block`]):
    /// read again in order by the scanning thread.
    pub(super) deferred: Vec<usize>,
    /// What the block's lines leave for the next block, when they gave it
    /// ([`Parser::block_leaves`]).
    pub(super) leaves: Option<Year>,
    /// The block's place in the file (0 for the first).
    pub(super) seq: usize,
    /// The masks of the block's bytes (`masks[w]`: bytes `64 w` to `64 w + 64`, of the
    /// parser's [`Classes`]) when the reading thread made them as it read ([`Direct`] with
    /// classes): the lines were found from them, and the parsing needs no pass of its own.
    masks: Vec<[u64; 4]>,
    masked: bool,
}

/// A parsing thread's own (see [`Block::parse`]): the masks of the block it parses — half the
/// size of a block's bytes, needed only while it is parsed, so one per thread rather than one
/// per block in flight — and the block its parser has read up to.
#[derive(Default)]
pub(super) struct Words {
    masks: Vec<[u64; 4]>,
    /// The block whose lines follow those the parser read last (0 before any): a parser
    /// that reads blocks one after another needs to forget nothing ([`Parser::begin_block`]).
    next: usize,
}

impl Words {
    pub(super) fn new() -> Words {
        Words::default()
    }
}

/// What a line of a [`Block`] parsed into. (A tag byte of its own: in the niche of the
/// request's fields, the entries were written and read byte by byte; 13 instructions a line.)
#[repr(u8)]
pub(super) enum Parsed {
    /// The line's event: `events[i]` of its block.
    Event(u32),
    /// A request that did not fail, read the short way ([`Parser::answered`]).
    Answered(Answered),
    Unparsed(Unparsed),
}

/// Reads a line (`at` its place in the block, see [`InBuffer`]). With `short`, a request that
/// did not fail takes the short way: read by [`Parser::answered_at`] where the format has a
/// short walk, else parsed and handed on as what it is ([`Answered::of`]) without its event.
#[inline(always)]
fn read<const AVX2: bool>(
    cpu: Cpu<AVX2>,
    parser: &mut Parser,
    line: &[u8],
    at: Option<InBuffer<'_>>,
    short: bool,
    events: &mut Vec<Event>,
) -> Parsed {
    if short && let Some(a) = parser.answered_at(cpu, line, at) {
        return Parsed::Answered(a);
    }
    match parser.parse(line) {
        Ok(ev) => match Answered::of(&ev) {
            Some(a) if short => Parsed::Answered(a),
            _ => {
                // (A block holds at most `BLOCK_LINES` lines, each read at most twice.)
                events.push(ev);
                Parsed::Event((events.len() - 1) as u32)
            }
        },
        Err(e) => Parsed::Unparsed(e),
    }
}

impl Block {
    pub(super) fn clear(&mut self) {
        self.end = 0;
        self.spans.clear();
        self.parsed.clear();
        self.events.clear();
        self.deferred.clear();
        self.leaves = None;
        self.seq = 0;
        self.masked = false;
    }

    /// Whether the block is full.
    pub(super) fn full(&self) -> bool {
        self.end >= BLOCK_BYTES || self.spans.len() >= BLOCK_LINES
    }

    /// `n` bytes of room after the block's bytes (grown, and zeroed, only when it has not had
    /// them before), and a window's after those (the quick walk's windows of a line's bytes
    /// run up to 64 bytes past its end: [`mask::Bytes::window`]).
    fn room(&mut self, n: usize) -> &mut [u8] {
        let want = self.end + n;
        if self.bytes.len() < want + mask::BLOCK {
            self.bytes
                .resize((want + mask::BLOCK).next_multiple_of(64), 0);
        }
        &mut self.bytes[self.end..want]
    }

    fn extend(&mut self, b: &[u8]) {
        self.room(b.len()).copy_from_slice(b);
        self.end += b.len();
    }

    /// Makes the masks of the bytes from `from` (those before have theirs) to the end; the
    /// bytes after the end in its last word are zeroed first.
    fn classify(&mut self, from: usize, set: [u8; 3]) {
        let (first, len) = (from / 64, self.end.next_multiple_of(64));
        // (`bytes` grows by whole words: see `room`.)
        self.bytes[self.end..len].fill(0);
        if self.masks.len() < len / 64 {
            self.masks.resize(len / 64, [0; 4]);
        }
        mask::classify_lines(
            &self.bytes[first * 64..len],
            set,
            &mut self.masks[first..len / 64],
        );
    }

    /// A line (`None`: an over-long one, skipped).
    pub(super) fn push(&mut self, line: Option<&[u8]>) {
        let span = line.map(|l| {
            let start = self.end;
            self.extend(l);
            (start, self.end)
        });
        self.spans.push(span);
    }

    /// Takes whole lines (each with its `\n`) from the front of `lines` while the block has
    /// room, a line longer than `max_line` as over-long; the bytes taken.
    pub(super) fn push_lines(&mut self, lines: &[u8], max_line: usize) -> usize {
        let base = self.end;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', lines) {
            self.spans.push(span(base + start, base + nl, max_line));
            start = nl + 1;
            if base + start >= BLOCK_BYTES || self.spans.len() >= BLOCK_LINES {
                break;
            }
        }
        self.extend(&lines[..start]);
        start
    }

    /// Parses the lines; with `short`, requests that did not fail take the short way, through
    /// the block's bytes and, for walks that search them, masks of its bytes computed in one
    /// pass (into `words`, unless the reading thread made them).
    pub(super) fn parse(&mut self, parser: &mut Parser, short: bool, scratch: &mut Words) {
        let classes = parser.classes().filter(|_| short);
        let words = &mut scratch.masks;
        if let Some(Classes::With(set)) = classes
            && !self.masked
        {
            let len = self.end.next_multiple_of(64);
            self.room(len - self.end).fill(0);
            words.resize(len / 64, [0; 4]);
            // From the first line on (before it: bytes kept for the decoder).
            let w = self.spans.iter().flatten().next().map_or(len, |s| s.0) / 64;
            mask::classify_lines(&self.bytes[w * 64..len], set, &mut words[w..len / 64]);
        }
        let bytes = &self.bytes[..];
        let words = match self.masked {
            true => &self.masks[..],
            false => &words[..],
        };
        let words = classes.and_then(|c| c.searchable(words));
        // A block parsed apart from the one before: what earlier lines left is not known.
        if self.seq != scratch.next {
            parser.begin_block();
        }
        scratch.next = self.seq + 1;
        let (deferred, events) = (&mut self.deferred, &mut self.events);
        self.parsed
            .extend(self.spans.iter().enumerate().map(|(i, span)| {
                let Some((s, e)) = *span else {
                    return Parsed::Unparsed(Unparsed::TooLong);
                };
                let at = classes.map(|_| InBuffer {
                    buf: bytes,
                    start: s,
                    words,
                });
                let p = read(Cpu::ANY, parser, &bytes[s..e], at, short, events);
                if parser.needed_carried() {
                    deferred.push(i);
                }
                p
            }));
        self.leaves = parser.block_leaves();
    }

    /// Reads again, in order, the lines that needed what the blocks before left (`carried`,
    /// which becomes what this block leaves, and what `parser` is left with: this block's
    /// end, should it read the next).
    pub(super) fn read_deferred(
        &mut self,
        parser: &mut Parser,
        short: bool,
        carried: &mut Option<Year>,
    ) {
        for &i in &self.deferred {
            if let Some((s, e)) = self.spans[i] {
                parser.carry(*carried);
                self.parsed[i] = read(
                    Cpu::ANY,
                    parser,
                    &self.bytes[s..e],
                    None,
                    short,
                    &mut self.events,
                );
            }
        }
        if self.leaves.is_some() {
            *carried = self.leaves;
        }
        if !self.deferred.is_empty() {
            parser.carry(*carried);
        }
    }
}

/// The line from `start` to `end` (its newline, or the end of the file), over-long when it is
/// longer than `max_line`.
fn span(start: usize, end: usize, max_line: usize) -> Option<(usize, usize)> {
    (end - start <= max_line).then_some((start, end))
}

/// Reading a file straight into blocks: the lines are found as [`LineReader::next_line`] finds
/// them (the same lines, over-long ones skipped and counted once, a last line without its
/// newline), without first copying them into the reader's buffer.
pub(super) struct Direct {
    /// The bytes the last block ended with: the start of a line it did not hold, after as
    /// many bytes before it as the source needs before its next read ([`Source::history`]).
    carry: Vec<u8>,
    /// Where that line starts in `carry`.
    line: usize,
    /// An over-long line is being skipped (counted already) up to its newline.
    skipping: bool,
    eof: bool,
    /// A read failed after the block had lines: said once they are handed on.
    failed: Option<io::Error>,
    /// What the blocks' masks hold (see [`Parser::classes`]), when they are made as the
    /// blocks are read: one pass over the bytes finds the lines and what the parsing needs
    /// (else the lines are found with `memchr`, and the parsing makes what masks it needs).
    classes: Option<Classes>,
    /// With [`Classes::Newlines`]: the newlines of the bytes read last
    /// ([`mask::newline_list_in`]).
    ends: Vec<usize>,
}

impl Direct {
    /// Takes over from `reader` where its lines were taken up to.
    pub(super) fn new<R: Source>(reader: &mut LineReader<R>, classes: Option<Classes>) -> Direct {
        let (rest, line) = reader.detach();
        Direct {
            carry: rest.to_vec(),
            line,
            skipping: false,
            eof: false,
            failed: None,
            classes,
            ends: Vec::new(),
        }
    }

    /// Fills `block` (empty) with the next lines; false when the file has no more.
    pub(super) fn fill<R: Source>(
        &mut self,
        reader: &mut LineReader<R>,
        block: &mut Block,
    ) -> io::Result<bool> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let max_line = reader.max_line();
        block.extend(&self.carry);
        // `bytes[..start]` are whole lines, skipped bytes or bytes kept for the source;
        // `bytes[start..end]` the start of the next line, searched for its newline up to
        // `searched`.
        let mut start = self.line;
        let mut searched = start;
        // The masks are those of `bytes[..masked]` (its last word's made again as bytes come).
        // (Not for newlines alone: they are found from the bytes as the lines are taken.)
        let mut masked = 0;
        let set = match self.classes {
            Some(Classes::With(set)) => Some(set),
            _ => None,
        };
        block.masked = set.is_some();
        loop {
            if let Some(set) = set {
                block.classify(masked, set);
                masked = block.end;
            }
            if self.classes == Some(Classes::Newlines) {
                // The newlines listed from the bytes, then the lines they end, up to a full
                // block, in one stretch.
                let n = mask::newline_list_in(&block.bytes, searched, block.end, &mut self.ends);
                let mut ends = self.ends[..n].iter();
                if self.skipping
                    && let Some(&nl) = ends.next()
                {
                    self.skipping = false;
                    start = nl + 1;
                }
                let room = BLOCK_LINES.saturating_sub(block.spans.len());
                block.spans.extend(ends.take(room).map(|&nl| {
                    let line = span(start, nl, max_line);
                    start = nl + 1;
                    line
                }));
            } else {
                let (spans, skipping) = (&mut block.spans, &mut self.skipping);
                let words = set.map(|_| &block.masks[..]);
                newlines(&block.bytes, words, searched, block.end, |nl| {
                    if *skipping {
                        *skipping = false;
                    } else {
                        spans.push(span(start, nl, max_line));
                    }
                    start = nl + 1;
                    spans.len() >= BLOCK_LINES
                });
            }
            searched = block.end.max(start);
            if !block.spans.is_empty()
                && (block.spans.len() >= BLOCK_LINES || block.end >= BLOCK_BYTES)
            {
                let from = start.min(block.end.saturating_sub(reader.history()));
                self.carry.clear();
                self.carry.extend_from_slice(&block.bytes[from..block.end]);
                self.line = start - from;
                block.end = start;
                return Ok(true);
            }
            // Bytes before `start` that no line holds (the end of a skipped line) are not
            // kept, but for what the source needs.
            let keep = start.min(block.end.saturating_sub(reader.history()));
            if block.spans.is_empty() && keep > 0 {
                block.bytes.copy_within(keep..block.end, 0);
                block.end -= keep;
                start -= keep;
                searched -= keep;
                masked = 0;
            }
            if !self.skipping && block.end - start > max_line {
                // No newline within the limit: the line is over-long whatever follows.
                block.spans.push(None);
                self.skipping = true;
            }
            if self.skipping {
                // Its bytes are not kept, but for what the source needs (the lines before it
                // stay where they are).
                let cut = block.end.saturating_sub(reader.history());
                if cut > start {
                    block.bytes.copy_within(cut..block.end, start);
                    block.end -= cut - start;
                    masked = masked.min(start);
                }
                searched = block.end;
            }
            if self.eof {
                if let Some(set) = set {
                    block.classify(masked, set);
                }
                if !self.skipping && block.end > start {
                    block.spans.push(span(start, block.end, max_line));
                }
                return Ok(false);
            }
            let want = match BLOCK_BYTES.checked_sub(block.end) {
                Some(room @ 1..) => room.min(READ_CHUNK),
                // A line longer than a block, within the limit.
                _ => READ_CHUNK,
            };
            block.room(want);
            let n = match reader.read_after(&mut block.bytes[..block.end + want], block.end) {
                Ok(n) => n,
                // The lines before the damage go on first, as they do read one by one (the
                // line it cut is not one).
                Err(e) if !block.spans.is_empty() => {
                    self.failed = Some(e);
                    block.end = start;
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            block.end += n;
            self.eof = n == 0;
        }
    }
}

/// Calls `f` with each newline of `bytes[from..end]` in turn until it returns true: found from
/// the masks of `bytes` (`words`, see [`Block::classify`]), or with `memchr`.
#[inline(always)]
fn newlines(
    bytes: &[u8],
    words: Option<&[[u64; 4]]>,
    from: usize,
    end: usize,
    mut f: impl FnMut(usize) -> bool,
) {
    let Some(words) = words else {
        for nl in memchr::memchr_iter(b'\n', &bytes[from..end]) {
            if f(from + nl) {
                return;
            }
        }
        return;
    };
    // (The words up to the end: one bound for the walk to check.)
    let words = &words[..end.div_ceil(64)];
    let mut w = from / 64;
    let mut bits = words
        .get(w)
        .map_or(0, |m| m[0] >> (from % 64) << (from % 64));
    loop {
        while bits != 0 {
            let nl = w * 64 + bits.trailing_zeros() as usize;
            if nl >= end {
                return;
            }
            bits &= bits - 1;
            if f(nl) {
                return;
            }
        }
        w += 1;
        let Some(m) = words.get(w) else {
            return;
        };
        bits = m[0];
    }
}

//! A file read on threads of its own: the reading thread fills blocks of whole lines and
//! parses them, or leaves them to a parsing thread or to the scanning thread, which takes them
//! back in order (see `ARCHITECTURE.md`, "`scan` on threads").

use super::block::{Block, Direct, Parsed, Words};
use super::queue::{self, Rx as Receiver, Tx as SyncSender};
use super::{FileReport, Line, Producer, count_parsed, count_unparsed};
use crate::engine::event::Timestamp;
use crate::engine::parse::Parser;
use crate::engine::parse::haproxy::Year;
use crate::engine::parse::mask::Classes;
use anyhow::Context;
use std::thread::{self, JoinHandle};

impl Producer {
    /// On a thread of its own: reads the file into blocks of whole lines and parses them, or
    /// leaves some to a `helper` (parsing needs no order, see [`Parser::parses_in_blocks`];
    /// the blocks are taken back in order). Blocks come back through `free` for reuse, so
    /// memory stays bounded.
    fn run(
        mut self,
        tx: SyncSender<Block>,
        free: Receiver<Block>,
        helper: Helper,
    ) -> anyhow::Result<()> {
        let Some(mut parser) = self.parser.take() else {
            return Ok(());
        };
        let mut words = Words::new();
        // The blocks' masks are made as they are read, but where reading is as much work as
        // parsing (gzip: see `Share::None`).
        let classes = parser.classes().filter(|_| self.short && !self.report.gzip);
        let mut k = 0usize;
        loop {
            let mut block = free.try_recv().unwrap_or_default();
            block.clear();
            let more = self.fill(&mut block, classes)?;
            if block.spans.is_empty() {
                return Ok(());
            }
            block.seq = k;
            let sent = match &helper {
                Helper::Thread(h, share) if !share.reader_parses(k) => h.send(block).is_ok(),
                Helper::Scanner if leaves(k, &tx) => tx.send(block).is_ok(),
                _ => {
                    block.parse(&mut parser, self.short, &mut words);
                    tx.send(block).is_ok()
                }
            };
            // A failed send: the scan stopped (an error in the scanning thread).
            if !sent || !more {
                return Ok(());
            }
            k += 1;
        }
    }

    /// Fills a block (empty) with the next lines; false at the end of the file. The lines read
    /// to recognise the format and the whole lines the reader holds go in first (copied);
    /// then the file is read straight into the blocks ([`Direct`]), their masks made of
    /// `classes`.
    fn fill(&mut self, block: &mut Block, classes: Option<Classes>) -> anyhow::Result<bool> {
        if let Some(direct) = &mut self.direct {
            return direct
                .fill(&mut self.reader, block)
                .with_context(|| format!("reading {}", self.report.name));
        }
        while !block.full() {
            if let Some(line) = self.samples.pop_front() {
                block.push(line.as_deref());
            } else if let Some(lines) = self.reader.whole_lines() {
                let taken = block.push_lines(lines, self.reader.max_line());
                self.reader.consume(taken);
            } else {
                // The reader holds no whole line: on from here straight into the blocks.
                self.direct = Some(Direct::new(&mut self.reader, classes));
                if block.spans.is_empty() {
                    return self.fill(block, classes);
                }
                break;
            }
        }
        Ok(true)
    }
}

/// With a parsing thread beside the reading thread, the reading thread parses one block in
/// this many, the parsing thread the others. (One in three measured best once the reading
/// thread read straight into the blocks: nginx 174 → 167 ms, 20 alternating runs; while it
/// copied the lines, every other block was best, and longer queues made runs slower and less
/// steady on two cores.)
const SPLIT: usize = 3;

/// Which blocks the reading thread parses itself when a parsing thread helps it.
#[derive(Clone, Copy, Debug)]
enum Share {
    /// One block in [`SPLIT`].
    Part,
    /// None: the reading thread also decompresses (gzip), which is as much work as parsing.
    None,
}

impl Share {
    fn of(producer: &Producer) -> Share {
        if producer.report.gzip {
            Share::None
        } else {
            Share::Part
        }
    }

    fn reader_parses(self, block: usize) -> bool {
        match self {
            Share::Part => block.is_multiple_of(SPLIT),
            Share::None => false,
        }
    }
}

/// Who parses the blocks a reading thread leaves.
enum Helper {
    /// Nobody: the reading thread parses every block.
    None,
    /// A parsing thread, the blocks `Share` gives it.
    Thread(SyncSender<Block>, Share),
    /// The scanning thread, each block the reading thread finishes while the scanning thread
    /// has at most one waiting ([`leaves`]): the two share the parsing by how busy each is,
    /// and no third thread takes turns with them on two cores.
    Scanner,
}

/// With [`Helper::Scanner`]: whether the reading thread leaves block `k` to the scanning
/// thread — when the scanning thread has at most one block waiting (it would soon wait for
/// the reading thread; leaving only when it has none measured slower: 2 M nginx lines 266 →
/// 222 ms, twelve alternating runs).
fn leaves(k: usize, tx: &SyncSender<Block>) -> bool {
    #[cfg(test)]
    if let n @ 1.. = super::tests::LEAVE_EVERY.load(std::sync::atomic::Ordering::Relaxed) {
        return !k.is_multiple_of(n);
    }
    let _ = k;
    tx.queued() <= 1
}

/// How a file is read on threads (see [`Input::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Threads {
    /// A reading thread parses every block.
    Reader,
    /// The scanning thread parses the blocks the reading thread leaves it ([`Helper::Scanner`]).
    Shared,
    /// A parsing thread parses two blocks in three, every block of a gzip file
    /// ([`Helper::Thread`]).
    Helper,
}

/// Blocks queued between threads, per queue.
const BLOCKS_QUEUED: usize = 2;

/// The scanning thread's end of a file read on threads of its own.
pub(super) struct Reading {
    /// Blocks from the reading thread (parsed, or left to this thread with
    /// [`Threads::Shared`]), and from its helper (as `share` says).
    rx: Receiver<Block>,
    helper_rx: Option<Receiver<Block>>,
    share: Share,
    /// The scanning thread's parser, for the blocks left unparsed ([`Threads::Shared`]) and
    /// the lines read again in order ([`Block::read_deferred`]); whether requests that did
    /// not fail take the short way, and the masks of the block being parsed.
    parser: Option<(Parser, bool, Words)>,
    /// What the blocks taken so far leave for the next ([`Parser::carried`]).
    carried: Option<Year>,
    /// Blocks taken so far (which decides the queue of the next one).
    taken: usize,
    free: SyncSender<Block>,
    block: Option<Block>,
    /// The line of `block` that is the head.
    next: usize,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
    line_no: u64,
    pub(super) report: FileReport,
    last_time: Option<Timestamp>,
}

impl Reading {
    pub(super) fn start(mut producer: Producer, how: Threads) -> anyhow::Result<Reading> {
        let (tx, rx) = queue::bounded(BLOCKS_QUEUED);
        let (free, free_rx) = queue::bounded(2 * BLOCKS_QUEUED + 4);
        let mut threads = Vec::new();
        let mut helper_rx = None;
        let mut helper_tx = None;
        if how == Threads::Helper
            && let Some(parser) = &producer.parser
        {
            let (raw_tx, raw_rx) = queue::bounded::<Block>(BLOCKS_QUEUED);
            let (out_tx, out_rx) = queue::bounded(BLOCKS_QUEUED);
            let mut parser = parser.clone();
            let short = producer.short;
            threads.push(
                thread::Builder::new()
                    .name("gatewatch-parse".into())
                    .spawn(move || {
                        let mut words = Words::new();
                        while let Ok(mut block) = raw_rx.recv() {
                            block.parse(&mut parser, short, &mut words);
                            if out_tx.send(block).is_err() {
                                break;
                            }
                        }
                        Ok(())
                    })
                    .context("starting a parsing thread")?,
            );
            helper_rx = Some(out_rx);
            helper_tx = Some(raw_tx);
        }
        let share = Share::of(&producer);
        let parser = (producer.parser.clone()).map(|p| (p, producer.short, Words::new()));
        let carried = producer.parser.as_ref().and_then(Parser::carried);
        let helper = match (helper_tx, how) {
            (Some(h), _) => Helper::Thread(h, share),
            (None, Threads::Shared) => Helper::Scanner,
            (None, _) => Helper::None,
        };
        // (The reading thread keeps the file's name, for its errors.)
        let name = producer.report.name.clone();
        let report = std::mem::replace(
            &mut producer.report,
            FileReport {
                name,
                ..FileReport::default()
            },
        );
        threads.insert(
            0,
            thread::Builder::new()
                .name("gatewatch-read".into())
                .spawn(move || producer.run(tx, free_rx, helper))
                .context("starting a reading thread")?,
        );
        Ok(Reading {
            rx,
            helper_rx,
            share,
            parser,
            carried,
            taken: 0,
            free,
            block: None,
            next: 0,
            threads,
            line_no: 0,
            report,
            last_time: None,
        })
    }

    /// Takes the next block, parsing it when the reading thread left it unparsed (the one
    /// before goes back for reuse); false at the end of the file.
    fn next_block(&mut self) -> anyhow::Result<bool> {
        if let Some(b) = self.block.take() {
            let _ = self.free.try_send(b);
        }
        let rx = match &self.helper_rx {
            Some(h) if !self.share.reader_parses(self.taken) => h,
            _ => &self.rx,
        };
        match rx.recv() {
            Ok(mut b) => {
                self.taken += 1;
                if let Some((parser, short, words)) = &mut self.parser {
                    if b.parsed.is_empty() {
                        // Left by the reading thread ([`Helper::Scanner`]).
                        b.parse(parser, *short, words);
                    }
                    b.read_deferred(parser, *short, &mut self.carried);
                }
                self.block = Some(b);
                // `advance` moves past `next` first.
                self.next = usize::MAX;
                Ok(true)
            }
            Err(_) => {
                // The reading threads are done: the end of the file, or an error.
                for t in self.threads.drain(..) {
                    t.join()
                        .map_err(|_| anyhow::anyhow!("a reading thread panicked"))??;
                }
                Ok(false)
            }
        }
    }

    /// Moves to the next line that parsed, counting the others; false at the end.
    pub(super) fn advance(&mut self) -> anyhow::Result<bool> {
        loop {
            if let Some(b) = &mut self.block {
                self.next = self.next.wrapping_add(1);
                while self.next < b.parsed.len() {
                    self.line_no += 1;
                    self.report.lines += 1;
                    match &mut b.parsed[self.next] {
                        Parsed::Event(i) => {
                            let ev = &mut b.events[*i as usize];
                            count_parsed(&mut self.report, &mut self.last_time, ev);
                            return Ok(true);
                        }
                        Parsed::Answered(a) => {
                            self.report.parsed += 1;
                            self.last_time = Some(a.time);
                            return Ok(true);
                        }
                        Parsed::Unparsed(e) => {
                            let e = *e;
                            let line = b.spans[self.next].map(|(s, end)| &b.bytes[s..end]);
                            count_unparsed(&mut self.report, self.line_no, e, line);
                            self.next += 1;
                        }
                    }
                }
            }
            if !self.next_block()? {
                return Ok(false);
            }
        }
    }

    /// A file read alone: each line that parsed to `emit` in the order read, the others
    /// counted — what [`Reading::advance`] and [`Reading::head`] give, a block at a time.
    pub(super) fn each(
        &mut self,
        mut emit: impl FnMut(u64, &[u8], Line<'_>),
    ) -> anyhow::Result<()> {
        while self.next_block()? {
            let Reading {
                block: Some(b),
                report,
                line_no,
                last_time,
                ..
            } = self
            else {
                break;
            };
            for (p, span) in b.parsed.iter().zip(&b.spans) {
                *line_no += 1;
                report.lines += 1;
                let line = span.map(|(s, e)| &b.bytes[s..e]);
                match p {
                    Parsed::Event(i) => {
                        let ev = &mut b.events[*i as usize];
                        count_parsed(report, last_time, ev);
                        emit(*line_no, line.unwrap_or_default(), Line::Event(ev));
                    }
                    Parsed::Answered(a) => {
                        report.parsed += 1;
                        *last_time = Some(a.time);
                        emit(*line_no, line.unwrap_or_default(), Line::Answered(a));
                    }
                    Parsed::Unparsed(e) => count_unparsed(report, *line_no, *e, line),
                }
            }
        }
        Ok(())
    }

    pub(super) fn head(&self) -> Option<(u64, &[u8], Line<'_>)> {
        let b = self.block.as_ref()?;
        let line = match b.parsed.get(self.next)? {
            Parsed::Event(i) => Line::Event(&b.events[*i as usize]),
            Parsed::Answered(a) => Line::Answered(a),
            Parsed::Unparsed(_) => return None,
        };
        let (s, e) = b.spans[self.next]?;
        Some((self.line_no, &b.bytes[s..e], line))
    }
}

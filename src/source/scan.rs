//! `gatewatch scan`: old log files (plain or gzip) through the same pipeline as the daemon.
//!
//! Each file's format is recognised from its first lines unless given. Several files are read
//! together in time order (a merge of their lines by the time written in them), so an access
//! log and its error log are joined and bursts are placed in time exactly as when following
//! them live.

use crate::engine::event::{Event, Format, Timestamp, Unparsed};
use crate::engine::gunzip::Gunzip;
use crate::engine::join::JoinStats;
use crate::engine::kb::Kb;
use crate::engine::lines::{LineReader, LineRef, Next, Source, Unread};
use crate::engine::parse::mask::{self, Classes, Cpu, InBuffer, OnCpu};
use crate::engine::parse::nginx_access::Answered;
use crate::engine::parse::{self, Parser, ParserOptions};
use crate::engine::pipeline::{CauseCounts, Pipeline, PipelineConfig, Sink};
use anyhow::Context;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

mod block;
mod queue;
mod reading;

use block::Direct;
use reading::{Reading, Threads};

/// Lines read from the start of a file to recognise its format.
const SAMPLE_LINES: usize = 50;
/// Files scanned together beyond this many are parsed in the scanning thread.
const MAX_READING_THREADS: usize = 16;

/// Options of a scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// The format of every file; `None` recognises each file's format.
    pub format: Option<Format>,
    pub parser: ParserOptions,
    pub pipeline: PipelineConfig,
    /// The longest line read, in bytes; longer lines are counted and skipped.
    pub max_line: usize,
    /// With more than one, each file is read and parsed on a thread of its own while the
    /// scanning thread settles the lines in time order.
    pub threads: usize,
    /// How many lines that did not parse each file's report keeps, with why (`scan
    /// --unparsed`); the others are counted only.
    pub keep_unparsed: usize,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions {
            format: None,
            parser: ParserOptions::default(),
            pipeline: PipelineConfig::default(),
            max_line: 64 * 1024,
            threads: 1,
            keep_unparsed: 0,
        }
    }
}

/// What was read from one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileReport {
    /// The name as given.
    pub name: String,
    /// `nginx_access (combined)`, or `None` when no format was recognised.
    pub format: Option<String>,
    pub gzip: bool,
    pub lines: u64,
    pub parsed: u64,
    /// Lines that did not parse (including over-long ones).
    pub unparsed: u64,
    pub too_long: u64,
    /// The first line that did not parse: its number and why.
    pub first_unparsed: Option<(u64, String)>,
    /// Lines that did not parse, up to `ScanOptions::keep_unparsed`: number, why, the line (its
    /// first 400 bytes, as they are: escape them to show them).
    pub rejected: Vec<(u64, String, String)>,
    /// How many `rejected` may hold.
    pub keep: usize,
}

/// What a scan did.
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    pub files: Vec<FileReport>,
    pub counts: CauseCounts,
    pub join: Option<JoinStats>,
    pub detect: crate::engine::detect::DetectStats,
}

enum HeadLine {
    Sample(Vec<u8>),
    Buffer(LineRef),
}

struct Head {
    line_no: u64,
    line: HeadLine,
    ev: Event,
}

fn bytes_of<'a>(reader: &'a LineReader<Stream>, line: &'a HeadLine) -> &'a [u8] {
    match line {
        HeadLine::Sample(s) => s,
        HeadLine::Buffer(l) => reader.bytes(*l),
    }
}

/// Reads one file's lines and parses them: in the scanning thread, or on a thread of its own
/// (see [`Input`]).
struct Producer {
    reader: LineReader<Stream>,
    parser: Option<Parser>,
    /// The first lines, read to recognise the format (`None` for an over-long line).
    samples: VecDeque<Option<Vec<u8>>>,
    line_no: u64,
    report: FileReport,
    last_time: Option<Timestamp>,
    done: bool,
    /// Whether requests that did not fail may take the short way ([`Parser::answered`]): the
    /// pipeline and sink they go to do not need their events.
    short: bool,
    /// On a reading thread, once the lines already read are in blocks: the file read straight
    /// into the blocks.
    direct: Option<Direct>,
}

/// A file's bytes: as they are, or gzip decoded into the line reader's buffer.
pub enum Stream {
    Plain(Box<dyn Read + Send>),
    Gzip(Gunzip<Box<dyn Read + Send>>),
}

impl Source for Stream {
    fn history(&self) -> usize {
        match self {
            Stream::Plain(_) => 0,
            Stream::Gzip(g) => g.history(),
        }
    }

    fn read_after(&mut self, buf: &mut [u8], at: usize) -> io::Result<usize> {
        match self {
            Stream::Plain(r) => r.read(&mut buf[at..]),
            Stream::Gzip(g) => g.read_after(buf, at),
        }
    }
}

/// Opens a file (or `-` for standard input) and undoes gzip when the content is gzip.
pub fn open(name: &str) -> io::Result<(Stream, bool)> {
    let mut raw: Box<dyn Read + Send> = if name == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(name)?)
    };
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let n = raw.read(&mut magic[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = io::Cursor::new(magic[..got].to_vec());
    let stream = Box::new(head.chain(raw));
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok((Stream::Gzip(Gunzip::new(stream)), true))
    } else {
        Ok((Stream::Plain(stream), false))
    }
}

/// A line of a file scanned alone ([`Producer::run_alone`]): its bytes, number, and masks
/// when its buffer has them.
struct Take<'a, const AVX2: bool> {
    cpu: Cpu<AVX2>,
    bytes: &'a [u8],
    line_no: u64,
    at: Option<InBuffer<'a>>,
}

impl<const AVX2: bool> Take<'_, AVX2> {
    /// Reads the line and hands it to the pipeline, counting it — what [`Producer::next`] and
    /// [`Pipeline::push`] do, without moving an event through `Parsed`: with `short`, a
    /// request that did not fail takes the short way ([`Parser::answered_at`]).
    #[inline(always)]
    fn take(
        self,
        parser: &mut Parser,
        short: bool,
        report: &mut FileReport,
        last_time: &mut Option<Timestamp>,
        pipeline: &mut Pipeline,
        sink: &mut impl Sink,
    ) {
        let answered = match short {
            true => parser.answered_at(self.cpu, self.bytes, self.at),
            false => None,
        };
        let answered = match answered {
            Some(a) => a,
            None => match parser.parse(self.bytes) {
                Ok(ev) if short && let Some(a) = Answered::of(&ev) => a,
                Ok(mut ev) => {
                    count_parsed(report, last_time, &mut ev);
                    pipeline.push(0, self.line_no, self.bytes, ev, sink);
                    return;
                }
                Err(e) => {
                    count_unparsed(report, self.line_no, e, Some(self.bytes));
                    return;
                }
            },
        };
        report.parsed += 1;
        *last_time = Some(answered.time);
        pipeline.push_answered(self.bytes, &answered, sink);
    }
}

impl Producer {
    fn open(name: &str, opts: &ScanOptions) -> anyhow::Result<Producer> {
        let (stream, gzip) = open(name).with_context(|| format!("opening {name}"))?;
        let mut p = Producer {
            reader: LineReader::new(stream, opts.max_line),
            parser: None,
            samples: VecDeque::new(),
            line_no: 0,
            report: FileReport {
                name: name.to_string(),
                gzip,
                keep: opts.keep_unparsed,
                ..FileReport::default()
            },
            last_time: None,
            done: false,
            short: false,
            direct: None,
        };
        // Read the first lines to recognise the format; they are parsed again afterwards.
        while p.samples.len() < SAMPLE_LINES {
            match p
                .reader
                .next_line()
                .with_context(|| format!("reading {name}"))?
            {
                Next::Line(l) => p.samples.push_back(Some(p.reader.bytes(l).to_vec())),
                Next::TooLong => p.samples.push_back(None),
                Next::Eof => break,
            }
        }
        let refs: Vec<&[u8]> = p.samples.iter().flatten().map(Vec::as_slice).collect();
        p.parser = match opts.format {
            Some(f) => Some(Parser::new(f, &opts.parser, &refs)),
            None => parse::detect(&refs, &opts.parser),
        };
        p.report.format = p.parser.as_ref().map(Parser::describe);
        Ok(p)
    }

    fn bytes<'a>(&'a self, line: &'a HeadLine) -> &'a [u8] {
        bytes_of(&self.reader, line)
    }

    /// The next line that is not over-long (those are counted), from the samples first, then
    /// the file; `None` at the end.
    fn next_line(&mut self) -> anyhow::Result<Option<HeadLine>> {
        loop {
            let line = match self.samples.pop_front() {
                Some(Some(s)) => Some(HeadLine::Sample(s)),
                Some(None) => None,
                None => match self
                    .reader
                    .next_line()
                    .with_context(|| format!("reading {}", self.report.name))?
                {
                    Next::Line(l) => Some(HeadLine::Buffer(l)),
                    Next::TooLong => None,
                    Next::Eof => return Ok(None),
                },
            };
            self.line_no += 1;
            self.report.lines += 1;
            match line {
                Some(l) => return Ok(Some(l)),
                None => self.count_unparsed(Unparsed::TooLong),
            }
        }
    }

    /// Reads lines until one parses (counting the others): that line, or `None` at the end.
    /// A line in the reader's buffer is valid until the next call.
    fn next(&mut self) -> anyhow::Result<Option<Head>> {
        while !self.done {
            let Some(line) = self.next_line()? else {
                self.done = true;
                break;
            };
            let Some(parser) = &mut self.parser else {
                self.count_unparsed(Unparsed::Shape);
                continue;
            };
            let bytes = bytes_of(&self.reader, &line);
            match parser.parse(bytes) {
                Ok(mut ev) => {
                    count_parsed(&mut self.report, &mut self.last_time, &mut ev);
                    return Ok(Some(Head {
                        line_no: self.line_no,
                        line,
                        ev,
                    }));
                }
                Err(e) => count_unparsed(&mut self.report, self.line_no, e, Some(bytes)),
            }
        }
        Ok(None)
    }

    /// A file scanned on its own in this thread: each line goes straight to the pipeline (no
    /// merge), and requests that did not fail take the short way ([`Parser::answered`]) when
    /// the pipeline and the sink allow it. Counts and results are those of [`Producer::next`]
    /// and [`Pipeline::push`].
    fn run_alone(&mut self, pipeline: &mut Pipeline, sink: &mut impl Sink) -> anyhow::Result<()> {
        // A short way that reads windows of the bytes (nginx's quick walk) is inlined into the
        // loop compiled for the CPU. (Not the other parsers, calls of their own: the loop
        // around them measured a little slower so compiled, HAProxy +15 instructions a line.)
        if self.parser.as_ref().and_then(Parser::classes) == Some(Classes::Newlines) {
            return mask::on_cpu(Alone {
                producer: self,
                pipeline,
                sink,
            });
        }
        self.run_alone_on(Cpu::ANY, pipeline, sink)
    }

    /// [`Producer::run_alone`] with `cpu`'s instructions.
    #[inline(always)]
    fn run_alone_on<const AVX2: bool>(
        &mut self,
        cpu: Cpu<AVX2>,
        pipeline: &mut Pipeline,
        sink: &mut impl Sink,
    ) -> anyhow::Result<()> {
        let short = self.short;
        let classes = self
            .parser
            .as_ref()
            .and_then(Parser::classes)
            .filter(|_| short);
        if let Some(Classes::With(set)) = classes {
            // Newlines and what the short way reads, found in one pass over each read. (A
            // walk that reads windows of the bytes needs only the newlines, found as the
            // lines are taken.)
            self.reader.classify(set);
        }
        let mut ends = Vec::new();
        loop {
            // The whole lines the buffer holds, walked through the list of its newlines (the
            // lines `next_line` would give, over-long ones counted as it counts them).
            if classes.is_some()
                && self.samples.is_empty()
                && let Some(parser) = &mut self.parser
                && let Unread {
                    buf,
                    words,
                    pos,
                    end,
                } = self.reader.unread()
                && pos < end
            {
                let max_line = self.reader.max_line();
                let mut start = pos;
                // The buffer's masks, for the short way to search.
                let masks = classes.zip(words).and_then(|(c, w)| c.searchable(w));
                let n = match words {
                    // (The words up to the end: one bound for the walk to check.)
                    Some(words) => mask::newline_list(&words[..end.div_ceil(64)], pos, &mut ends),
                    None => mask::newline_list_in(buf, pos, end, &mut ends),
                };
                // Counted here and kept after the loop (in registers, not through `self`).
                let first = self.line_no;
                let mut line_no = first;
                for &nl in &ends[..n] {
                    if nl >= end {
                        break;
                    }
                    line_no += 1;
                    if nl - start > max_line {
                        count_unparsed(&mut self.report, line_no, Unparsed::TooLong, None);
                    } else {
                        let line = Take {
                            cpu,
                            bytes: &buf[start..nl],
                            line_no,
                            at: Some(InBuffer {
                                buf,
                                start,
                                words: masks,
                            }),
                        };
                        line.take(
                            parser,
                            short,
                            &mut self.report,
                            &mut self.last_time,
                            pipeline,
                            sink,
                        );
                    }
                    start = nl + 1;
                }
                self.line_no = line_no;
                self.report.lines += line_no - first;
                self.reader.consume(start - pos);
            }
            let Some(line) = self.next_line()? else {
                break;
            };
            let Some(parser) = &mut self.parser else {
                self.count_unparsed(Unparsed::Shape);
                continue;
            };
            let at = match (&line, classes) {
                (HeadLine::Buffer(l), Some(c)) => {
                    let u = self.reader.unread();
                    Some(InBuffer {
                        buf: u.buf,
                        start: l.start,
                        words: u.words.and_then(|w| c.searchable(w)),
                    })
                }
                _ => None,
            };
            let line = Take {
                cpu,
                bytes: bytes_of(&self.reader, &line),
                line_no: self.line_no,
                at,
            };
            line.take(
                parser,
                short,
                &mut self.report,
                &mut self.last_time,
                pipeline,
                sink,
            );
        }
        self.done = true;
        Ok(())
    }

    fn count_unparsed(&mut self, why: Unparsed) {
        count_unparsed(&mut self.report, self.line_no, why, None);
    }
}

/// [`Producer::run_alone`]'s loop, for [`mask::on_cpu`].
struct Alone<'a, S> {
    producer: &'a mut Producer,
    pipeline: &'a mut Pipeline,
    sink: &'a mut S,
}

impl<S: Sink> OnCpu for Alone<'_, S> {
    type Out = anyhow::Result<()>;
    #[inline(always)]
    fn run<const AVX2: bool>(self, cpu: Cpu<AVX2>) -> anyhow::Result<()> {
        self.producer.run_alone_on(cpu, self.pipeline, self.sink)
    }
}

/// A parsed line, as the merge hands it on.
#[derive(Clone, Copy)]
enum Line<'a> {
    Event(&'a Event),
    Answered(&'a Answered),
}

impl Line<'_> {
    fn time_ms(self) -> i64 {
        match self {
            Line::Event(ev) => ev.time.map_or(i64::MIN, |t| t.ms),
            Line::Answered(a) => a.time.ms,
        }
    }
}

/// Counts a line that parsed into `ev`. Lines without a time of their own (some HAProxy events)
/// take the time of the line before, which keeps them in place in the merge.
fn count_parsed(report: &mut FileReport, last_time: &mut Option<Timestamp>, ev: &mut Event) {
    report.parsed += 1;
    match ev.time {
        Some(t) => *last_time = Some(t),
        None => ev.time = *last_time,
    }
}

fn count_unparsed(report: &mut FileReport, line_no: u64, why: Unparsed, line: Option<&[u8]>) {
    report.unparsed += 1;
    if why == Unparsed::TooLong {
        report.too_long += 1;
    }
    if report.first_unparsed.is_none() {
        report.first_unparsed = Some((line_no, why.to_string()));
    }
    if report.rejected.len() < report.keep {
        let text = line.map_or_else(String::new, |l| {
            String::from_utf8_lossy(&l[..l.len().min(400)]).into_owned()
        });
        report.rejected.push((line_no, why.to_string(), text));
    }
}

/// One input file being read: parsed in the scanning thread, or on threads of their own that
/// run ahead (the scanning thread then only settles lines in time order: detection needs
/// order, parsing does not).
enum Input {
    Inline {
        producer: Box<Producer>,
        head: Option<Head>,
    },
    Threaded(Box<Reading>),
}

impl Input {
    /// `threads`: 1 parses in the scanning thread; 2 or more read and parse on a thread of
    /// its own. A `single` file whose blocks parse apart is parsed on two threads: with 2, the
    /// reading thread and the scanning thread share the parsing ([`Threads::Shared`]); with 3
    /// or more a parsing thread parses two blocks in three (every block of a gzip file:
    /// inflating is the reading thread's share, [`Threads::Helper`]).
    fn new(producer: Producer, threads: usize, single: bool) -> anyhow::Result<Input> {
        let apart = producer
            .parser
            .as_ref()
            .is_some_and(Parser::parses_in_blocks);
        if threads < 2 || producer.parser.is_none() {
            return Ok(Input::Inline {
                producer: Box::new(producer),
                head: None,
            });
        }
        let how = match threads {
            _ if !single || !apart => Threads::Reader,
            2 => Threads::Shared,
            _ => Threads::Helper,
        };
        Ok(Input::Threaded(Box::new(Reading::start(producer, how)?)))
    }

    /// Makes the next parsed line available (see `head`); false at the end of the file.
    fn advance(&mut self) -> anyhow::Result<bool> {
        match self {
            Input::Inline { producer, head } => {
                *head = producer.next()?;
                Ok(head.is_some())
            }
            Input::Threaded(r) => r.advance(),
        }
    }

    /// The current line: its number, bytes and what it parsed into.
    fn head(&self) -> Option<(u64, &[u8], Line<'_>)> {
        match self {
            Input::Inline { producer, head } => head
                .as_ref()
                .map(|h| (h.line_no, producer.bytes(&h.line), Line::Event(&h.ev))),
            Input::Threaded(r) => r.head(),
        }
    }

    fn head_time(&self) -> Option<i64> {
        self.head().map(|(_, _, l)| l.time_ms())
    }

    fn into_report(self) -> FileReport {
        match self {
            Input::Inline { producer, .. } => producer.report,
            Input::Threaded(r) => r.report,
        }
    }
}

/// Scans files through the pipeline; events and incident changes go to `sink`.
pub fn scan(
    names: &[String],
    opts: &ScanOptions,
    kb: Arc<Kb>,
    sink: &mut impl Sink,
) -> anyhow::Result<ScanReport> {
    anyhow::ensure!(
        names.len() <= u16::MAX as usize,
        "too many files ({}); scan at most {} at once",
        names.len(),
        u16::MAX
    );
    let mut producers = Vec::with_capacity(names.len());
    for name in names {
        producers.push(Producer::open(name, opts)?);
    }
    // nginx's `combined` beside an Apache error log (and no nginx one) is Apache's access log.
    let has = |f: Format| {
        producers
            .iter()
            .any(|p| p.parser.as_ref().map(Parser::format) == Some(f))
    };
    if has(Format::ApacheError) && !has(Format::NginxError) && opts.format.is_none() {
        for p in &mut producers {
            if let Some(parser) = p.parser.take() {
                p.parser = Some(parser.as_apache_access());
                p.report.format = p.parser.as_ref().map(Parser::describe);
            }
        }
    }
    let formats: Vec<Format> = producers
        .iter()
        .filter_map(|p| p.parser.as_ref().map(Parser::format))
        .collect();
    let mut cfg = opts.pipeline.clone();
    let joinable = crate::engine::join::needed(&formats);
    if !joinable {
        cfg.join = None;
    }
    // Threads per file: a reading thread each, and a second parsing thread for a single file.
    let threads = match names.len() {
        1 => opts.threads,
        n if n <= MAX_READING_THREADS => opts.threads.min(2),
        _ => 1,
    };
    // Requests that did not fail need no event when nothing joins them and the sink does not
    // take events one by one.
    let short = cfg.join.is_none() && !sink.wants_events();
    let mut inputs = Vec::with_capacity(names.len());
    for mut p in producers {
        p.short = short;
        inputs.push(Input::new(p, threads, names.len() == 1)?);
    }
    let mut pipeline = Pipeline::new(kb, cfg);
    if let [Input::Inline { producer, .. }] = &mut inputs[..] {
        producer.run_alone(&mut pipeline, sink)?;
    } else {
        merge(
            &mut inputs,
            #[inline(always)]
            |i, line_no, line, l| match l {
                Line::Event(ev) => pipeline.push(i as u16, line_no, line, *ev, sink),
                Line::Answered(a) => pipeline.push_answered(line, a, sink),
            },
        )?;
    }
    pipeline.finish(sink);
    Ok(ScanReport {
        files: inputs.into_iter().map(Input::into_report).collect(),
        counts: pipeline.counts(),
        join: pipeline.joiner().map(|j| j.stats),
        detect: pipeline.detector().stats,
    })
}

/// Reads files together, in the time order of their lines, handing every line that parsed to
/// `emit` (the daemon's ALB objects).
pub fn read_merged(
    names: &[String],
    opts: &ScanOptions,
    emit: &mut super::Emit<'_>,
) -> anyhow::Result<Vec<FileReport>> {
    let mut inputs = Vec::with_capacity(names.len());
    for name in names {
        inputs.push(Input::new(Producer::open(name, opts)?, 1, false)?);
    }
    merge(&mut inputs, |_, line_no, line, l| {
        // Read without the short way: every line is an event.
        if let Line::Event(ev) = l {
            emit(0, line_no, line, *ev)
        }
    })?;
    Ok(inputs.into_iter().map(Input::into_report).collect())
}

/// Hands the lines of `inputs` to `emit` in time order (ties to the input named first), with
/// the index of their input.
fn merge(
    inputs: &mut [Input],
    mut emit: impl FnMut(usize, u64, &[u8], Line<'_>),
) -> anyhow::Result<()> {
    if let [Input::Threaded(r)] = inputs {
        // One file on threads: its blocks' lines in order, a block at a time.
        return r.each(|line_no, line, l| emit(0, line_no, line, l));
    }
    for input in inputs.iter_mut() {
        input.advance()?;
    }
    if let [input] = inputs {
        // One file: no merge, lines in the order read.
        while let Some((line_no, line, l)) = input.head() {
            emit(0, line_no, line, l);
            input.advance()?;
        }
        return Ok(());
    }
    loop {
        // The input whose next line is the earliest; ties go to the file named first.
        let mut pick: Option<(i64, usize)> = None;
        for (i, input) in inputs.iter().enumerate() {
            if let Some(t) = input.head_time()
                && pick.is_none_or(|(pt, _)| t < pt)
            {
                pick = Some((t, i));
            }
        }
        let Some((_, i)) = pick else { break };
        let input = &mut inputs[i];
        let (line_no, line, l) = input.head().expect("picked input has a line");
        emit(i, line_no, line, l);
        input.advance()?;
    }
    Ok(())
}

/// The year of a file's last change, for syslog headers that do not write the year.
pub fn file_year(name: &str) -> Option<i32> {
    let modified = Path::new(name).metadata().ok()?.modified().ok()?;
    let t: chrono::DateTime<chrono::Utc> = modified.into();
    Some(chrono::Datelike::year(&t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::detect::Change;
    use crate::engine::pipeline::Settled;
    use crate::engine::synth::{Burst, Synth, SynthConfig};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// When not 0: with [`Helper::Scanner`], the reading thread leaves block `k` to the
    /// scanning thread when `k % LEAVE_EVERY != 0` (instead of by how busy it is), so that a
    /// test chooses who parses which block.
    pub(super) static LEAVE_EVERY: AtomicUsize = AtomicUsize::new(0);

    /// Held by a test while it sets [`LEAVE_EVERY`] (tests run in parallel in one process).
    fn choosing() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    struct Collect {
        events: bool,
        settled: u64,
        /// The times of the events settled, summed with their line numbers.
        times: i64,
        changes: Vec<Change>,
    }

    impl Sink for Collect {
        fn event(&mut self, s: &Settled<'_>) {
            self.settled += 1;
            let t = s.ev.time.map_or(-1, |t| t.ms);
            self.times = self
                .times
                .wrapping_add(t.wrapping_mul(s.line_no as i64 | 1));
        }
        fn change(&mut self, c: Change) {
            self.changes.push(c);
        }
        fn wants_events(&self) -> bool {
            self.events
        }
    }

    /// What a user sees of a scan of `file` (file report, counts, incidents, events and their
    /// times), as text, with `threads` and a sink that takes events or not.
    fn scan_file(file: &Path, threads: usize, events: bool, parser: &ParserOptions) -> String {
        let opts = ScanOptions {
            threads,
            parser: parser.clone(),
            ..ScanOptions::default()
        };
        scan_file_with(file, &opts, events)
    }

    fn scan_file_with(file: &Path, opts: &ScanOptions, events: bool) -> String {
        static KB: std::sync::OnceLock<Arc<Kb>> = std::sync::OnceLock::new();
        let kb = KB.get_or_init(|| Arc::new(crate::app::patterns::load_kb(&[]).unwrap()));
        let mut sink = Collect {
            events,
            settled: 0,
            times: 0,
            changes: Vec::new(),
        };
        let r = scan(&[file.display().to_string()], opts, kb.clone(), &mut sink).unwrap();
        format!(
            "{:?} {:?} {:?} {:?} {} {}",
            r.files, r.counts, r.detect, sink.changes, sink.settled, sink.times
        )
    }

    #[test]
    fn blocks_left_to_the_scanning_thread_give_what_one_thread_gives() {
        let _choosing = choosing();
        let dir = tempfile::tempdir().unwrap();
        let mut synth = Synth::new(SynthConfig {
            requests_per_sec: 400,
            burst: Some(Burst {
                start_secs: 30,
                duration_secs: 20,
                upstream: 1,
                share: 0.9,
            }),
            ..SynthConfig::default()
        });
        let mut text = Vec::new();
        for i in 0..30_000u32 {
            text.extend_from_slice(synth.next_request().access.as_bytes());
            text.push(b'\n');
            if i % 1_009 == 0 {
                text.extend_from_slice(b"garbage that is no log line\n");
            }
        }
        let file = dir.path().join("access.log");
        std::fs::write(&file, &text).unwrap();
        let parser = ParserOptions {
            zone: "UTC".parse().unwrap(),
            log_format: Some(
                parse::LogFormat::from_directive(crate::engine::synth::LOG_FORMAT).unwrap(),
            ),
            ..Default::default()
        };
        for events in [false, true] {
            LEAVE_EVERY.store(0, Ordering::Relaxed);
            let one = scan_file(&file, 1, events, &parser);
            assert!(
                one.contains("parsed: 30000,") && one.contains("Closed(Incident"),
                "every request parsed, a burst opened and closed: {one}"
            );
            // None left (1), one block in two left, nearly all left, and by how busy.
            for every in [1, 2, 1_000, 0] {
                LEAVE_EVERY.store(every, Ordering::Relaxed);
                let two = scan_file(&file, 2, events, &parser);
                assert!(
                    two == one,
                    "blocks left every {every} (events: {events}):\n{two}\nagainst\n{one}"
                );
            }
        }
        LEAVE_EVERY.store(0, Ordering::Relaxed);
    }

    /// Options for a scan of lines with UTC times.
    fn utc_options() -> ScanOptions {
        ScanOptions {
            parser: ParserOptions {
                zone: "UTC".parse().unwrap(),
                ..Default::default()
            },
            ..ScanOptions::default()
        }
    }

    /// Runs of empty and one-byte lines between requests (up to 64 newlines in 64 bytes: the
    /// newline list's rare path, and its room grown): every line counted once, in order, on
    /// one thread as on two.
    #[test]
    fn runs_of_short_lines_are_each_counted_once() {
        let _choosing = choosing();
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut short = 0;
        for i in 0..3000u32 {
            let (m, s) = (i / 600, i / 10 % 60);
            text.push_str(&format!(
                "203.0.113.9 - - [01/May/2024:12:{m:02}:{s:02} +0000] \"GET /x HTTP/1.1\" 200 5 \
                 \"-\" \"curl/8.5.0\" api.example.com 10.0.1.{}:8080 200 0.001 0.001 0.001 0.001\n",
                i % 7
            ));
            for k in 0..(i * 37 % 150) {
                text.push_str(if k % 3 == 0 { "x\n" } else { "\n" });
                short += 1;
            }
        }
        let file = dir.path().join("access.log");
        std::fs::write(&file, &text).unwrap();
        let mut opts = utc_options();
        opts.threads = 1;
        let one = scan_file_with(&file, &opts, false);
        assert!(
            one.contains(&format!(
                "lines: {}, parsed: 3000, unparsed: {short},",
                3000 + short
            )),
            "{one}"
        );
        opts.threads = 2;
        assert_eq!(scan_file_with(&file, &opts, false), one);
    }

    /// Long lines among requests of a format whose newlines are found from the bytes as the
    /// lines are taken (no masks stored): lines just within the limit, over it, longer than a
    /// block and than the reader's buffer, lines across reads, and a last line without its
    /// newline — counted alike, once each, on one thread and on two or three.
    #[test]
    fn long_lines_and_a_last_line_without_newline_count_alike_on_threads() {
        let _choosing = choosing();
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let (mut lines, mut too_long) = (0, 0);
        for i in 0..4000u32 {
            let (m, s) = (i / 600, i / 10 % 60);
            let agent = match i % 500 {
                7 => "a".repeat(1_900),                // within the limit
                8 => "b".repeat(5_000),                // over it
                9 if i == 1009 => "c".repeat(300_000), // longer than a block and the buffer
                _ => format!("curl/{}", i % 9),
            };
            too_long += usize::from(agent.len() > 2_000);
            text.push_str(&format!(
                "203.0.113.9 - - [01/May/2024:12:{m:02}:{s:02} +0000] \"GET /x HTTP/1.1\" 200 5 \
                 \"-\" \"{agent}\" api.example.com 10.0.1.{}:8080 200 0.001 0.001 0.001 0.001\n",
                i % 7
            ));
            lines += 1;
        }
        text.pop();
        let file = dir.path().join("access.log");
        std::fs::write(&file, &text).unwrap();
        let mut opts = utc_options();
        opts.max_line = 2_200;
        opts.threads = 1;
        let one = scan_file_with(&file, &opts, false);
        assert!(
            one.contains(&format!(
                "lines: {lines}, parsed: {}, unparsed: {too_long}, too_long: {too_long},",
                lines - too_long
            )),
            "{one}"
        );
        for threads in [2, 3] {
            opts.threads = threads;
            assert_eq!(
                scan_file_with(&file, &opts, false),
                one,
                "{threads} threads"
            );
        }
    }

    /// Many upstreams a second (names short, of 16 bytes, long, none), more than the detector
    /// keeps (it evicts, which depends on the order the requests are counted in), failures
    /// between them: on two threads, with blocks left to the scanning thread or not, what one
    /// thread gives.
    #[test]
    fn many_upstreams_and_evictions_count_alike_on_threads() {
        let _choosing = choosing();
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for sec in 0..120u32 {
            let (m, s) = (sec / 60, sec % 60);
            for i in 0..300u32 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = seed % 90;
                let failed = (60..80).contains(&sec) && i.is_multiple_of(10);
                let upstream = match k % 5 {
                    _ if failed => "10.9.9.9:8080".to_string(),
                    0 => format!("u{k}:80"),
                    1 => format!("10.0.{k}.1:8080"),
                    2 => format!("backend-{k:03}.orders.svc.cluster.local:8080"),
                    3 => "-".to_string(),
                    _ => format!("10.1.1.{k}:80"),
                };
                let host = if k.is_multiple_of(7) {
                    "-"
                } else {
                    "api.example.com"
                };
                let status = if failed { 502 } else { 200 };
                let times = if failed {
                    "- - 0.000 0.001"
                } else {
                    "0.001 0.001 0.001 0.001"
                };
                text.push_str(&format!(
                    "203.0.113.{} - - [01/May/2024:12:{m:02}:{s:02} +0000] \"GET /x HTTP/1.1\" \
                     {status} 5 \"-\" \"curl/8.5.0\" {host} {upstream} {status} {times}\n",
                    i % 250
                ));
            }
        }
        let file = dir.path().join("access.log");
        std::fs::write(&file, &text).unwrap();
        let mut opts = utc_options();
        opts.pipeline.detect.max_upstreams = 40;
        opts.threads = 1;
        let one = scan_file_with(&file, &opts, false);
        assert!(
            one.contains("parsed: 36000,")
                && one.contains("Opened(")
                && !one.contains("evicted: 0"),
            "every line parsed, incidents, upstreams evicted: {one}"
        );
        opts.threads = 2;
        for every in [1, 2, 1_000, 0] {
            LEAVE_EVERY.store(every, Ordering::Relaxed);
            let two = scan_file_with(&file, &opts, false);
            assert!(
                two == one,
                "blocks left every {every}:\n{two}\nagainst\n{one}"
            );
        }
        LEAVE_EVERY.store(0, Ordering::Relaxed);
    }

    /// HAProxy's RFC 3164 headers take the year of the request lines before them: a block of
    /// such lines parsed apart from those before is read again in order where it needs it.
    #[test]
    fn haproxy_blocks_parsed_apart_take_the_year_of_the_lines_before() {
        let _choosing = choosing();
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let request = |text: &mut String, i: usize, date: &str, header: &str, failed: bool| {
            let (timers, status, flags) = match failed {
                true => ("0/0/-1/-1/3001", "503", "SC--"),
                false => ("0/0/1/83/85", "200", "----"),
            };
            text.push_str(&format!(
                "{header} lb1 haproxy[14389]: 203.0.113.{}:{} [{date}.{:03}] http-in app/srv{} {timers} {status} 2740 - - {flags} 12/12/3/1/0 0/0 \"GET /api/{i} HTTP/1.1\"\n",
                i % 250,
                30_000 + i % 30_000,
                i % 1000,
                i % 3,
            ));
        };
        let event = |text: &mut String, i: usize, header: &str| {
            text.push_str(&match i % 2 {
                0 => format!("{header} lb1 haproxy[14389]: Proxy http-in started.\n"),
                _ => format!(
                    "{header} lb1 haproxy[14389]: Server app/srv1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.\n"
                ),
            });
        };
        // Event lines first (the year of the options), requests of the last seconds of 2023
        // (both in the first block), event lines of the first minute of 2024 (still taking 2023:
        // no request of 2024 yet; the second block starts among them), a few requests of 2024
        // (in the second block), then event lines taking 2024, several blocks of them: a thread
        // whose first block is not the file's first must not take the year it started with,
        // nor, after lines read again, the year before its own block's requests.
        for i in 0..100 {
            event(&mut text, i, "Dec 31 23:58:00");
        }
        for i in 0..500 {
            let s = 50 + i % 10;
            let date = format!("31/Dec/2023:23:59:{s}");
            request(&mut text, i, &date, &format!("Dec 31 23:59:{s}"), i % 7 < 5);
        }
        for i in 0..1_500 {
            event(&mut text, i, &format!("Jan  1 00:00:{:02}", i % 30));
        }
        for i in 0..100 {
            request(
                &mut text,
                i,
                "01/Jan/2024:00:00:30",
                "Jan  1 00:00:30",
                false,
            );
        }
        for i in 0..5_000 {
            event(&mut text, i, &format!("Jan  1 00:01:{:02}", i % 60));
        }
        let file = dir.path().join("haproxy.log");
        std::fs::write(&file, &text).unwrap();
        let parser = ParserOptions {
            zone: "UTC".parse().unwrap(),
            year: 2031,
            log_format: None,
        };
        for events in [true, false] {
            LEAVE_EVERY.store(0, Ordering::Relaxed);
            let one = scan_file(&file, 1, events, &parser);
            assert!(one.contains("Haproxy") || one.contains("haproxy"), "{one}");
            for every in [2, 3, 1_000, 1, 0] {
                LEAVE_EVERY.store(every, Ordering::Relaxed);
                for threads in [2, 3] {
                    let other = scan_file(&file, threads, events, &parser);
                    assert!(
                        other == one,
                        "{threads} threads, blocks left every {every} (events: {events}):\n{other}\nagainst\n{one}"
                    );
                }
            }
        }
        LEAVE_EVERY.store(0, Ordering::Relaxed);
    }
}

//! `gatewatch scan`: old log files (plain or gzip) through the same pipeline as the daemon.
//!
//! Each file's format is recognised from its first lines unless given. Several files are read
//! together in time order (a merge of their lines by the time written in them), so an access
//! log and its error log are joined and bursts are placed in time exactly as when following
//! them live.

use crate::event::{Event, Format, Timestamp, Unparsed};
use crate::join::JoinStats;
use crate::kb::Kb;
use crate::lines::{LineReader, LineRef, Next};
use crate::parse::{self, Parser, ParserOptions};
use crate::pipeline::{CauseCounts, Pipeline, PipelineConfig, Sink};
use anyhow::Context;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// Lines read from the start of a file to recognise its format.
const SAMPLE_LINES: usize = 50;

/// Options of a scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// The format of every file; `None` recognises each file's format.
    pub format: Option<Format>,
    pub parser: ParserOptions,
    pub pipeline: PipelineConfig,
    /// The longest line read, in bytes; longer lines are counted and skipped.
    pub max_line: usize,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions {
            format: None,
            parser: ParserOptions::default(),
            pipeline: PipelineConfig::default(),
            max_line: 64 * 1024,
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
}

/// What a scan did.
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    pub files: Vec<FileReport>,
    pub counts: CauseCounts,
    pub join: Option<JoinStats>,
    pub detect: crate::detect::DetectStats,
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

/// One input file being read.
struct Input {
    reader: LineReader<Box<dyn Read>>,
    parser: Option<Parser>,
    /// The first lines, read to recognise the format (`None` for an over-long line).
    samples: VecDeque<Option<Vec<u8>>>,
    line_no: u64,
    report: FileReport,
    head: Option<Head>,
    last_time: Option<Timestamp>,
    done: bool,
}

/// Opens a file (or `-` for standard input) and undoes gzip when the content is gzip.
fn open(name: &str) -> io::Result<(Box<dyn Read>, bool)> {
    let mut raw: Box<dyn Read> = if name == "-" {
        Box::new(io::stdin().lock())
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
    let stream = head.chain(raw);
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok((Box::new(flate2::read::MultiGzDecoder::new(stream)), true))
    } else {
        Ok((Box::new(stream), false))
    }
}

impl Input {
    fn open(name: &str, opts: &ScanOptions) -> anyhow::Result<Input> {
        let (stream, gzip) = open(name).with_context(|| format!("opening {name}"))?;
        let mut input = Input {
            reader: LineReader::new(stream, opts.max_line),
            parser: None,
            samples: VecDeque::new(),
            line_no: 0,
            report: FileReport {
                name: name.to_string(),
                gzip,
                ..FileReport::default()
            },
            head: None,
            last_time: None,
            done: false,
        };
        // Read the first lines to recognise the format; they are parsed again afterwards.
        while input.samples.len() < SAMPLE_LINES {
            match input
                .reader
                .next_line()
                .with_context(|| format!("reading {name}"))?
            {
                Next::Line(l) => input
                    .samples
                    .push_back(Some(input.reader.bytes(l).to_vec())),
                Next::TooLong => input.samples.push_back(None),
                Next::Eof => break,
            }
        }
        let refs: Vec<&[u8]> = input.samples.iter().flatten().map(Vec::as_slice).collect();
        input.parser = match opts.format {
            Some(f) => Some(Parser::new(f, &opts.parser, &refs)),
            None => parse::detect(&refs, &opts.parser),
        };
        input.report.format = input.parser.as_ref().map(Parser::describe);
        Ok(input)
    }

    /// Reads lines until one parses (counting the others); sets `head`, or `done` at the end.
    fn advance(&mut self) -> anyhow::Result<()> {
        self.head = None;
        while !self.done {
            let next = match self.samples.pop_front() {
                Some(Some(s)) => Some(HeadLine::Sample(s)),
                Some(None) => None,
                None => match self
                    .reader
                    .next_line()
                    .with_context(|| format!("reading {}", self.report.name))?
                {
                    Next::Line(l) => Some(HeadLine::Buffer(l)),
                    Next::TooLong => None,
                    Next::Eof => {
                        self.done = true;
                        break;
                    }
                },
            };
            self.line_no += 1;
            self.report.lines += 1;
            let Some(line) = next else {
                self.count_unparsed(Unparsed::TooLong);
                continue;
            };
            let bytes: &[u8] = match &line {
                HeadLine::Sample(s) => s,
                HeadLine::Buffer(l) => self.reader.bytes(*l),
            };
            let Some(parser) = &mut self.parser else {
                self.count_unparsed(Unparsed::Shape);
                continue;
            };
            match parser.parse(bytes) {
                Ok(mut ev) => {
                    self.report.parsed += 1;
                    // Lines without a time of their own (some HAProxy events) take the time of
                    // the line before, which keeps them in place in the merge.
                    match ev.time {
                        Some(t) => self.last_time = Some(t),
                        None => ev.time = self.last_time,
                    }
                    self.head = Some(Head {
                        line_no: self.line_no,
                        line,
                        ev,
                    });
                    return Ok(());
                }
                Err(e) => self.count_unparsed(e),
            }
        }
        Ok(())
    }

    fn count_unparsed(&mut self, why: Unparsed) {
        self.report.unparsed += 1;
        if why == Unparsed::TooLong {
            self.report.too_long += 1;
        }
        if self.report.first_unparsed.is_none() {
            self.report.first_unparsed = Some((self.line_no, why.to_string()));
        }
    }

    fn head_time(&self) -> Option<i64> {
        self.head
            .as_ref()
            .map(|h| h.ev.time.map_or(i64::MIN, |t| t.ms))
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
    let mut inputs = Vec::with_capacity(names.len());
    for name in names {
        inputs.push(Input::open(name, opts)?);
    }
    let formats: Vec<Format> = inputs
        .iter()
        .filter_map(|i| i.parser.as_ref().map(Parser::format))
        .collect();
    let mut cfg = opts.pipeline.clone();
    let joinable = formats.contains(&Format::NginxAccess) && formats.contains(&Format::NginxError);
    if !joinable {
        cfg.join = None;
    }
    let mut pipeline = Pipeline::new(kb, cfg);
    let sources: Vec<u16> = (0..inputs.len() as u16).collect();
    merge(&mut inputs, &sources, &mut pipeline, sink)?;
    pipeline.finish(sink);
    Ok(ScanReport {
        files: inputs.into_iter().map(|i| i.report).collect(),
        counts: pipeline.counts(),
        join: pipeline.joiner().map(|j| j.stats),
        detect: pipeline.detector().stats,
    })
}

/// Reads files together, in the time order of their lines, into an existing pipeline (the
/// daemon's, for ALB objects); the lines of file `k` count for source `sources[k]`.
pub fn merge_into(
    names: &[String],
    sources: &[u16],
    opts: &ScanOptions,
    pipeline: &mut Pipeline,
    sink: &mut impl Sink,
) -> anyhow::Result<Vec<FileReport>> {
    let mut inputs = Vec::with_capacity(names.len());
    for name in names {
        inputs.push(Input::open(name, opts)?);
    }
    merge(&mut inputs, sources, pipeline, sink)?;
    Ok(inputs.into_iter().map(|i| i.report).collect())
}

fn merge(
    inputs: &mut [Input],
    sources: &[u16],
    pipeline: &mut Pipeline,
    sink: &mut impl Sink,
) -> anyhow::Result<()> {
    for input in inputs.iter_mut() {
        input.advance()?;
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
        let head = input.head.take().expect("picked input has a line");
        let line: &[u8] = match &head.line {
            HeadLine::Sample(s) => s,
            HeadLine::Buffer(l) => input.reader.bytes(*l),
        };
        pipeline.push(sources[i], head.line_no, line, head.ev, sink);
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

//! Followed log files: the sources' globs, a tailer per file, the format recognised from the
//! first lines, lines parsed, counted and fed to the pipeline.

use super::*;

/// The longest line kept, in bytes; longer lines are counted and skipped.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// How long a rotated-away log is kept open after it stops growing: the proxy writes to it
/// until it reopens its log (nginx: after `USR1` from logrotate's postrotate).
pub(super) const ROTATE_WAIT: Duration = Duration::from_secs(30);

/// One followed file.
pub(super) struct Followed {
    pub(super) tailer: Tailer,
    pub(super) parser: Option<Parser>,
    pub(super) format: Format,
    pub(super) opts: ParserOptions,
    pub(super) source: u16,
    pub(super) lines: u64,
    pub(super) unparsed: u64,
    /// Lines skipped for being longer than the limit: in all, and since the last time that
    /// was logged (at most once a minute per file).
    pub(super) too_long: u64,
    pub(super) too_long_unlogged: u64,
    pub(super) too_long_logged: Option<Instant>,
}

/// A configured source and the files it currently names (a glob names several).
pub(super) struct SourcePlan {
    pub(super) pattern: PathBuf,
    pub(super) format: Format,
    pub(super) opts: ParserOptions,
    pub(super) start: Start,
}

/// Rotated or compressed names a glob must not pick up, or their lines would be read twice:
/// `access.log.1`, `access.log.2.gz`, `access.log-20240501`.
pub(super) fn looks_rotated(name: &str) -> bool {
    let compressed = [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"];
    if compressed.iter().any(|c| name.ends_with(c)) {
        return true;
    }
    let last = name.rsplit(['.', '-']).next().unwrap_or("");
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

impl SourcePlan {
    /// The files the source names now.
    pub(super) fn files(&self) -> Vec<PathBuf> {
        let name = self
            .pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?']) {
            return vec![self.pattern.clone()];
        }
        let dir = self.pattern.parent().unwrap_or(Path::new("."));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                crate::engine::glob::matches(name.as_bytes(), n.as_bytes()) && !looks_rotated(&n)
            })
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }
}

pub(super) fn report_notices(path: &Path, notices: &[Notice]) {
    for n in notices {
        match n {
            Notice::Opened { file, offset } => {
                log!(Info, "reading", file = file.display(), offset = offset)
            }
            Notice::Rotated { old } => {
                log!(Info, "rotated", file = path.display(), old_inode = old.ino)
            }
            Notice::Truncated { continued_in } => log!(
                Warn,
                "truncated",
                file = path.display(),
                continued_in = continued_in
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |p| p.display().to_string())
            ),
            Notice::Lost {
                id,
                offset,
                read_to_end: true,
            } => log!(
                Info,
                "a file read to its end before gatewatch stopped is gone (rotated and removed meanwhile); lines written to it after the stop, if any, were not read",
                file = path.display(),
                inode = id.ino,
                offset = offset
            ),
            Notice::Lost {
                id,
                offset,
                read_to_end: false,
            } => log!(
                Warn,
                "a file read before is gone; its unread lines cannot be read",
                file = path.display(),
                inode = id.ino,
                offset = offset
            ),
            Notice::Closed { id } => {
                log!(
                    Info,
                    "finished rotated file",
                    file = path.display(),
                    inode = id.ino
                )
            }
            Notice::Error(e) => log!(Error, "read error", file = path.display(), error = e),
        }
    }
}

impl Reader {
    /// Starts following files the sources name that are not followed yet.
    pub(super) fn discover(&mut self) -> anyhow::Result<()> {
        let checkpoints = self.state.checkpoints()?;
        for plan in &self.plans {
            for path in plan.files() {
                if self.files.iter().any(|f| f.tailer.path() == path) {
                    continue;
                }
                anyhow::ensure!(
                    self.names.len() < u16::MAX as usize,
                    "too many files to follow"
                );
                let mine: Vec<_> = checkpoints
                    .iter()
                    .filter(|c| c.path == path)
                    .cloned()
                    .collect();
                let mut notices = Vec::new();
                let tailer = Tailer::new(
                    path.clone(),
                    &mine,
                    plan.start,
                    MAX_LINE,
                    ROTATE_WAIT,
                    &mut notices,
                );
                report_notices(&path, &notices);
                log!(
                    Info,
                    "following",
                    file = path.display(),
                    format = plan.format,
                    resumed = !mine.is_empty()
                );
                let source = self.names.len() as u16;
                self.names.push(path.display().to_string());
                self.files.push(Followed {
                    tailer,
                    parser: None,
                    format: plan.format,
                    opts: plan.opts.clone(),
                    source,
                    lines: 0,
                    unparsed: 0,
                    too_long: 0,
                    too_long_unlogged: 0,
                    too_long_logged: None,
                });
            }
        }
        Ok(())
    }

    pub(super) fn read_round(&mut self) -> (u64, bool) {
        let Reader {
            files,
            pipeline,
            counters,
            out,
            clock,
            ..
        } = self;
        let mut lines = 0;
        let mut more = false;
        for f in files.iter_mut() {
            let mut notices = Vec::new();
            let mut pending: Vec<Option<Vec<u8>>> = Vec::new();
            let Followed {
                tailer,
                parser,
                format,
                opts,
                source,
                lines: count,
                unparsed,
                too_long: too_long_total,
                too_long_unlogged,
                too_long_logged,
            } = f;
            let mut sink = ReaderSink {
                counters,
                out,
                clock,
                count_settled: false,
            };
            // Line numbers count every line, over-long ones too.
            let number = std::cell::Cell::new(*count);
            let mut handle = |line: &[u8], parser: &mut Parser, sink: &mut ReaderSink<'_>| {
                number.set(number.get() + 1);
                let line_no = number.get();
                match parser.parse(line) {
                    Ok(mut ev) => {
                        if ev.time.is_none() {
                            ev.time = sink
                                .clock
                                .map(|(t, _)| crate::engine::event::Timestamp::new(t, 0));
                        }
                        if let Some(t) = ev.time {
                            sink.counters
                                .add(t.ms, *source, ev.upstream(line), ev.cause);
                            // The event clock moves with every line read, also with lines the
                            // joiner holds back.
                            if sink.clock.is_none_or(|(last, _)| t.ms > last) {
                                *sink.clock = Some((t.ms, Instant::now()));
                            }
                        }
                        pipeline.push(*source, line_no, line, ev, sink);
                    }
                    Err(_) => *unparsed += 1,
                }
            };
            let mut too_long = 0;
            more |= tailer.poll(&mut notices, &mut |d| {
                lines += 1;
                let Delivery::Line(line) = d else {
                    too_long += 1;
                    match parser {
                        Some(_) => number.set(number.get() + 1),
                        None => pending.push(None),
                    }
                    return;
                };
                match parser {
                    Some(p) => handle(line, p, &mut sink),
                    // The format is recognised from the first lines of the file.
                    None => pending.push(Some(line.to_vec())),
                }
            });
            if pending.iter().any(Option::is_some) {
                let samples: Vec<&[u8]> = pending.iter().flatten().map(Vec::as_slice).collect();
                let p = parser.insert(Parser::new(*format, opts, &samples));
                log!(
                    Info,
                    "format",
                    file = tailer.path().display(),
                    layout = p.describe()
                );
                for line in &pending {
                    match line {
                        Some(line) => handle(line, p, &mut sink),
                        None => number.set(number.get() + 1),
                    }
                }
            } else {
                // Only over-long lines so far: numbered, the format still unknown.
                number.set(number.get() + pending.len() as u64);
            }
            *count = number.get();
            *unparsed += too_long;
            *too_long_total += too_long;
            *too_long_unlogged += too_long;
            if *too_long_unlogged > 0
                && too_long_logged.is_none_or(|t| t.elapsed() >= FAULT_LOG_EVERY)
            {
                log!(
                    Warn,
                    "lines longer than the limit skipped",
                    file = tailer.path().display(),
                    lines = *too_long_unlogged,
                    limit_bytes = MAX_LINE
                );
                *too_long_unlogged = 0;
                *too_long_logged = Some(Instant::now());
            }
            report_notices(tailer.path(), &notices);
        }
        (lines, more)
    }
}

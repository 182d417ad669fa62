//! `gatewatch scan`: old logs through the same pipeline as the daemon; incidents, events or
//! a daily summary out, and a summary of what was read on standard error.

use super::*;

/// Collects scan output: events as they settle, incidents as they close.
pub(super) struct ScanSink<'a, W: Write> {
    out: W,
    buf: Vec<u8>,
    events: bool,
    json: bool,
    names: &'a [String],
    kb: Arc<Kb>,
    incidents: Vec<Incident>,
    error: Option<io::Error>,
    /// `--summary`: every line counted, as the daemon counts them; the newest line's time.
    counters: Option<crate::store::Counters>,
    last_ms: i64,
}

impl<W: Write> ScanSink<'_, W> {
    fn flush_buf(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(&self.buf)
        {
            self.error = Some(e);
        }
        self.buf.clear();
    }
}

impl<W: Write> Sink for ScanSink<'_, W> {
    fn event(&mut self, s: &Settled<'_>) {
        if let Some(c) = &mut self.counters
            && let Some(t) = s.ev.time
        {
            let upstream = s
                .upstream
                .filter(|_| !matches!(s.ev.kind, crate::engine::event::Kind::Recovery(_)));
            c.add(t.ms, s.source, upstream, s.ev.cause);
            self.last_ms = self.last_ms.max(t.ms);
        }
        if !self.events || self.error.is_some() {
            return;
        }
        let name = self
            .names
            .get(s.source as usize)
            .map_or("-", String::as_str);
        if self.json {
            report::event_json(&mut self.buf, name, s, &self.kb);
        } else {
            report::event_text(&mut self.buf, name, s, &self.kb);
        }
        if self.buf.len() >= 64 * 1024 {
            self.flush_buf();
        }
    }

    fn change(&mut self, change: Change) {
        if let Change::Closed(inc) = change {
            self.incidents.push(inc);
        }
    }

    fn wants_events(&self) -> bool {
        self.counters.is_some() || self.events
    }
}

/// A folder removed when `scan` ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn run_scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let cfg = match &args.config {
        Some(p) => load_config(Some(p))?,
        None => Config::default(),
    };
    let dirs = if args.patterns.is_empty() {
        cfg.pattern_dirs.clone()
    } else {
        args.patterns.clone()
    };
    let kb = Arc::new(load_kb(&dirs)?);
    let zone: Zone = args
        .timezone
        .parse()
        .map_err(|e: String| usage(format!("--timezone: {e}")))?;
    let log_format = match &args.log_format {
        Some(f) if args.format.as_deref() == Some("apache_access") => Some(
            crate::engine::parse::apache_access::log_format(f)
                .map_err(|e| usage(format!("--log-format: {e}")))?,
        ),
        Some(f) => {
            Some(LogFormat::from_directive(f).map_err(|e| usage(format!("--log-format: {e}")))?)
        }
        None => None,
    };
    // With --log-format alone, each file's format is still recognised: the access log is read
    // with that log_format, an error log given beside it as an error log.
    let format = args.format.as_deref().and_then(Format::from_name);
    // Container logs are unwrapped first: their stdout and stderr lines are scanned as two
    // files (the proxy's access and error logs), shown as `FILE (stdout)` and `FILE (stderr)`.
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "gatewatch-scan-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    )));
    let mut files: Vec<String> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    for name in &args.files {
        let unwrapped = if format.is_none() && name != "-" {
            crate::source::container::unwrap_file(name, &scratch.0)?
        } else {
            None
        };
        match unwrapped {
            Some(u) => {
                eprintln!(
                    "{name}: a container log ({} framing): its stdout and stderr lines are read as two logs{}",
                    u.framing.as_str(),
                    if u.unframed > 0 {
                        format!("; {} lines without the framing left out", u.unframed)
                    } else {
                        String::new()
                    }
                );
                for (file, stream) in u.files.iter().zip(["stdout", "stderr"]) {
                    files.push(file.display().to_string());
                    shown.push(format!("{name} ({stream})"));
                }
            }
            None if args.format.as_deref() == Some("container") => {
                return Err(usage(format!(
                    "{name} is not a container log (no CRI or docker json-file framing in its first lines); leave --format out to have its format recognised"
                )));
            }
            None => {
                files.push(name.clone());
                shown.push(name.clone());
            }
        }
    }
    let year = args
        .files
        .iter()
        .find_map(|f| scan::file_year(f))
        .unwrap_or_else(|| chrono::Datelike::year(&chrono::Utc::now()));
    let window_ms = cfg.detect.window_ms;
    let opts = ScanOptions {
        format,
        parser: ParserOptions {
            zone,
            year,
            log_format,
        },
        pipeline: PipelineConfig {
            detect: cfg.detect.clone(),
            join: Some(cfg.join),
        },
        threads: match args.threads {
            Some(n) => n as usize,
            // Two threads on two cores share the parsing of a single file between them; a
            // third, taking turns with them there, measured slower (2 M nginx lines: 306 →
            // 249 ms, twelve alternating runs).
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(3)),
        },
        keep_unparsed: if args.unparsed { 1000 } else { 0 },
        ..ScanOptions::default()
    };
    let stdout = io::stdout().lock();
    let mut sink = ScanSink {
        out: io::BufWriter::with_capacity(64 * 1024, stdout),
        buf: Vec::with_capacity(128 * 1024),
        events: args.events,
        json: args.json,
        names: &shown,
        kb: kb.clone(),
        incidents: Vec::new(),
        error: None,
        counters: args.summary.is_some().then(crate::store::Counters::default),
        last_ms: i64::MIN,
    };
    let zone = opts.parser.zone.clone();
    let mut report = scan::scan(&files, &opts, kb.clone(), &mut sink)?;
    for (f, name) in report.files.iter_mut().zip(&shown) {
        f.name = name.clone();
    }
    sink.flush_buf();
    if let Some(format) = &args.summary {
        print_summary(&report, sink.incidents.len());
        let host = crate::delivery::channel::host_name(&cfg.alerts);
        return scan_summary(&args, &report, sink, &kb, (zone, host), format);
    }
    let lang = Lang::from_name(&args.lang).unwrap_or_default();
    if !args.events {
        let mut incidents = std::mem::take(&mut sink.incidents);
        incidents.sort_by_key(|i| (i.start_ms, i.seq));
        for inc in &incidents {
            if args.json {
                let v = report::incident_json(inc, &kb, window_ms, &shown);
                sink.buf.extend_from_slice(v.to_string().as_bytes());
                sink.buf.push(b'\n');
            } else {
                sink.buf.extend_from_slice(
                    report::incident_text(inc, &kb, window_ms, &shown, lang).as_bytes(),
                );
                sink.buf.push(b'\n');
            }
        }
        sink.incidents = incidents;
        sink.flush_buf();
    }
    if let Some(e) = sink.error.take() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("writing the output");
        }
        return Ok(ExitCode::SUCCESS);
    }
    sink.out.flush().or_else(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    print_summary(&report, sink.incidents.len());
    if report.files.iter().all(|f| f.format.is_none()) {
        eprintln!(
            "gatewatch: no file was recognised as nginx, HAProxy, ALB, Apache, Caddy, Envoy or Traefik logs; name the format with --format (and --log-format for a custom nginx or Apache access log)"
        );
        return Ok(ExitCode::FAILURE);
    }
    // A format named on the command line that fits no line is a wrong answer, not an empty one.
    if let Some(format) = &args.format
        && report.files.iter().all(|f| f.parsed == 0)
        && report.files.iter().any(|f| f.lines > 0)
    {
        eprintln!(
            "gatewatch: no line parsed as {format}; leave --format out to have the format recognised{}",
            if args.log_format.is_none() && format == "nginx_access" {
                ", or give the log_format with --log-format"
            } else {
                ""
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `scan --summary`: the lines and incidents of the scan go into a state in memory, and the
/// report is built from it exactly as the daemon's is from its state file.
pub(super) fn scan_summary<W: Write>(
    args: &ScanArgs,
    report: &ScanReport,
    mut sink: ScanSink<'_, W>,
    kb: &Kb,
    (zone, host): (Zone, String),
    format: &str,
) -> anyhow::Result<ExitCode> {
    use crate::store::outbox::{Alerting, Notice};
    let mut state = crate::store::State::in_memory()?;
    let formats: Vec<(String, Format)> = report
        .files
        .iter()
        .filter_map(|f| {
            let name = f.format.as_deref()?.split_whitespace().next()?;
            Some((f.name.clone(), Format::from_name(name)?))
        })
        .collect();
    state.register_sources(&formats)?;
    let mut notices = Vec::new();
    for inc in &sink.incidents {
        let mut opened = inc.clone();
        opened.closed_ms = None;
        notices.push(Notice::new(crate::render::alert::AlertKind::Opened, opened));
        notices.push(Notice::new(
            crate::render::alert::AlertKind::Resolved,
            inc.clone(),
        ));
    }
    let now = crate::clock::now_ms();
    // The sources as scanned (a container log is two).
    let names = sink.names;
    let alerting = Alerting {
        kb,
        host: &host,
        channels: &[],
        sources: names,
        maintenance: &[],
        open: &[],
        now_ms: now,
        delivered: &Default::default(),
        links: None,
    };
    let mut counters = sink.counters.take().unwrap_or_default();
    state.commit(&[], &[], &mut counters, names, Some((&alerting, &notices)))?;
    let date = match &args.date {
        Some(d) => parse_date(d)?,
        None if sink.last_ms > i64::MIN => crate::render::summary::local_date(&zone, sink.last_ms),
        None => anyhow::bail!("no line with a time: nothing to summarise"),
    };
    let r = crate::render::summary::build(
        state.conn(),
        kb,
        &crate::render::summary::Options {
            date,
            zone,
            host,
            lang: Lang::from_name(&args.lang).unwrap_or_default(),
            now_ms: now,
            feedback: false,
        },
    )?;
    print_summary_report(&r, format)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_summary(report: &ScanReport, incidents: usize) {
    let mut err = io::stderr().lock();
    for f in &report.files {
        let format = f.format.as_deref().unwrap_or("format not recognised");
        let gz = if f.gzip { " (gzip)" } else { "" };
        let mut line = format!(
            "{}{gz}: {format}: {} lines, {} parsed, {} unparsed",
            f.name, f.lines, f.parsed, f.unparsed
        );
        if f.too_long > 0 {
            line.push_str(&format!(" ({} over the line limit)", f.too_long));
        }
        if let Some((n, why)) = &f.first_unparsed {
            line.push_str(&format!("; first unparsed: line {n}: {why}"));
        }
        let _ = writeln!(err, "{line}");
        for (n, why, text) in &f.rejected {
            let _ = writeln!(
                err,
                "{}:{n}: {why}: {}",
                f.name,
                crate::render::report::printable(text)
            );
        }
    }
    let causes: Vec<String> = crate::engine::event::Cause::ALL
        .iter()
        .filter(|c| report.counts.get(**c) > 0)
        .map(|c| format!("{} {}", c, report.counts.get(*c)))
        .collect();
    let _ = writeln!(
        err,
        "causes: {}",
        if causes.is_empty() {
            "none".into()
        } else {
            causes.join(", ")
        }
    );
    if let Some(j) = report.join {
        let _ = writeln!(
            err,
            "joined {} access-log lines with the error-log lines that explain them",
            j.joined
        );
        if let Some(off) = j.error_offset_ms {
            let (sign, m) = if off < 0 {
                ("-", -off / 60_000)
            } else {
                ("+", off / 60_000)
            };
            let _ = writeln!(
                err,
                "gatewatch: the error log's times are {sign}{:02}:{:02} from the access log's, so its lines could not meet their access-log lines: its lines carry no zone and were read in the wrong one; scan again with --timezone set to the zone the error log was written in ({sign}{:02}:{:02} from the one used)",
                m / 60,
                m % 60,
                m / 60,
                m % 60
            );
        }
    }
    let _ = writeln!(err, "incidents: {incidents}");
}

//! A container's log as its runtime writes it, as a [`Source`]: the CRI framing (containerd,
//! CRI-O; what kubelet keeps under `/var/log/pods`) or docker's `json-file`, recognised from the
//! first lines; parts of long lines (`P`) put back together; stdout read as the proxy's access
//! log and stderr as its error log (the official nginx image and ingress-nginx link them so),
//! joined as one proxy. Followed through kubelet's rotation (`0.log` renamed to
//! `0.log.20240501-120000`, a new `0.log`, the old one gzipped later) like any log.

use super::file::{MAX_LINE, open_tailer, say_too_long};
use super::tail::{Delivery, Start, Tailer};
use super::{
    Checkpoint, Context, Emit, Ledger, Plan, Proxy, Round, Source, SourceConfig, SourceStatus,
};
use crate::engine::event::Format;
use crate::engine::parse::container::{self, Framing, Stream};
use crate::engine::parse::{Parser, ParserOptions};
use crate::log;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checkpoint kind of a container log (its data: a followed file's).
pub const KIND: &str = "container";

/// Lines looked at to recognise the framing before a file with too few is judged.
const SAMPLE: usize = 20;

/// A configured path or glob of container logs.
pub struct ContainerPlan {
    pattern: super::file::Pattern,
    proxy: Proxy,
    opts: ParserOptions,
    start: Start,
}

impl ContainerPlan {
    pub fn new(cfg: &SourceConfig, ctx: &Context) -> ContainerPlan {
        ContainerPlan {
            pattern: super::file::Pattern::new(cfg),
            proxy: match &cfg.kind {
                super::SourceKind::Container { proxy, .. } => *proxy,
                _ => Proxy::Nginx,
            },
            opts: super::file::parser_options(cfg),
            start: super::file::start(cfg, ctx),
        }
    }
}

impl Plan for ContainerPlan {
    fn open(
        &mut self,
        saved: &dyn Fn(&str) -> anyhow::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let mut out: Vec<Box<dyn Source>> = Vec::new();
        for path in self.pattern.fresh() {
            let what = format!("container ({})", self.proxy);
            let tailer = open_tailer(&path, saved, KIND, self.start, &what)?;
            self.pattern.opened(path.clone());
            out.push(Box::new(ContainerSource::new(
                path,
                tailer,
                self.proxy,
                self.opts.clone(),
            )));
        }
        Ok(out)
    }

    fn folders(&self) -> Vec<PathBuf> {
        self.pattern.folders()
    }
}

/// The namespace, pod and container of a kubelet log path: `/var/log/pods/NS_POD_UID/C/N.log`
/// or `/var/log/containers/POD_NS_C-ID.log`.
pub fn pod_of(path: &Path) -> Option<(String, String, String)> {
    let parts: Vec<String> = path
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let n = parts.len();
    if n >= 4 && parts[n - 4] == "pods" && parts[n - 1].ends_with(".log") {
        let mut it = parts[n - 3].splitn(3, '_');
        let (ns, pod) = (it.next()?, it.next()?);
        it.next()?;
        return Some((ns.into(), pod.into(), parts[n - 2].clone()));
    }
    if n >= 2 && parts[n - 2] == "containers" {
        let name = parts[n - 1].strip_suffix(".log")?;
        let mut it = name.splitn(3, '_');
        let (pod, ns, rest) = (it.next()?, it.next()?, it.next()?);
        let (container, id) = rest.rsplit_once('-')?;
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some((ns.into(), pod.into(), container.into()));
        }
    }
    None
}

/// One container log file.
pub struct ContainerSource {
    path: String,
    /// What counters and alerts call it: `pod NS/POD/CONTAINER`, or the path.
    shown: String,
    tailer: Tailer,
    unwrap: Unwrap,
    too_long_logged: Option<Instant>,
}

/// Everything but the file: what turns framed lines into the proxy's lines.
struct Unwrap {
    proxy: Proxy,
    opts: ParserOptions,
    /// `None` until recognised; `Some(None)`: the lines have no known framing.
    framing: Option<Option<Framing>>,
    /// Lines read before the framing was recognised (`None`: too long).
    held: Vec<Option<Vec<u8>>>,
    /// The access log's parser, made from the first stdout lines (nginx; HAProxy's from the
    /// start); stdout lines wait in `waiting` until then.
    access: Option<Parser>,
    waiting: Vec<(u64, Vec<u8>)>,
    /// The error log's parser (HAProxy: unused, both streams are its HTTP log).
    error: Parser,
    /// Parts of a long line, per stream; and whether that line is already too long.
    parts: [Vec<u8>; 2],
    parts_too_long: [bool; 2],
    buf: Vec<u8>,
    lines: u64,
    unparsed: u64,
    too_long: u64,
    too_long_unlogged: u64,
}

impl ContainerSource {
    pub fn new(
        path: PathBuf,
        tailer: Tailer,
        proxy: Proxy,
        opts: ParserOptions,
    ) -> ContainerSource {
        let shown = match pod_of(&path) {
            Some((ns, pod, c)) => format!("pod {ns}/{pod}/{c}"),
            None => path.display().to_string(),
        };
        let error = Parser::new(proxy.error_format(), &opts, &[]);
        ContainerSource {
            path: path.display().to_string(),
            shown,
            tailer,
            too_long_logged: None,
            unwrap: Unwrap {
                access: proxy.single().map(|_| error.clone()),
                proxy,
                opts,
                framing: None,
                held: Vec::new(),
                waiting: Vec::new(),
                error,
                parts: Default::default(),
                parts_too_long: [false; 2],
                buf: Vec::new(),
                lines: 0,
                unparsed: 0,
                too_long: 0,
                too_long_unlogged: 0,
            },
        }
    }
}

impl Unwrap {
    /// One line from the file, once the framing is known.
    fn take(&mut self, line: Option<&[u8]>, emit: &mut Emit<'_>) {
        self.lines += 1;
        let (Some(Some(framing)), Some(line)) = (self.framing, line) else {
            if line.is_none() {
                self.too_long += 1;
                self.too_long_unlogged += 1;
            }
            self.unparsed += 1;
            return;
        };
        // `buf` is taken out while the frame borrows it, so the line can go to `self.logical`.
        let mut buf = std::mem::take(&mut self.buf);
        self.frame(framing, line, &mut buf, emit);
        self.buf = buf;
    }

    /// One framed line: its parts put together, the whole line handed on.
    fn frame(&mut self, framing: Framing, line: &[u8], buf: &mut Vec<u8>, emit: &mut Emit<'_>) {
        let frame = match container::decode(framing, line, buf) {
            Ok(f) => f,
            Err(_) => {
                self.unparsed += 1;
                return;
            }
        };
        let s = match frame.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        if frame.partial {
            if self.parts[s].len() + frame.payload.len() > MAX_LINE {
                self.parts_too_long[s] = true;
                self.parts[s].clear();
            } else if !self.parts_too_long[s] {
                self.parts[s].extend_from_slice(frame.payload);
            }
            return;
        }
        if self.parts_too_long[s] {
            self.parts_too_long[s] = false;
            self.parts[s].clear();
            self.too_long += 1;
            self.too_long_unlogged += 1;
            self.unparsed += 1;
            return;
        }
        let number = self.lines;
        if self.parts[s].is_empty() {
            // The common case: the payload is a part of the line (CRI) or of `buf` (docker),
            // nothing copied.
            self.logical(s, number, frame.payload, emit);
        } else {
            let mut whole = std::mem::take(&mut self.parts[s]);
            whole.extend_from_slice(frame.payload);
            self.logical(s, number, &whole, emit);
            whole.clear();
            self.parts[s] = whole;
        }
    }

    /// One whole line of the proxy's: stdout to the access log's parser (held until it is
    /// made), stderr to the error log's (for HAProxy, both to HAProxy's).
    fn logical(&mut self, s: usize, number: u64, line: &[u8], emit: &mut Emit<'_>) {
        let (parser, stream) = match (self.proxy.single(), s) {
            (None, 1) => (Some(&mut self.error), 1),
            _ => (self.access.as_mut(), 0),
        };
        let Some(parser) = parser else {
            self.waiting.push((number, line.to_vec()));
            return;
        };
        match parser.parse(line) {
            Ok(ev) => emit(stream, number, line, ev),
            // ingress-nginx's controller logs to nginx's stderr: its lines are about the
            // controller, not requests; counted as read, not as unparsed.
            Err(_) if stream == 1 && container::is_klog(line) => emit(
                stream,
                number,
                line,
                crate::engine::event::Event {
                    format: Some(self.proxy.error_format()),
                    ..Default::default()
                },
            ),
            Err(_) => self.unparsed += 1,
        }
    }

    /// Makes the access log's parser from the stdout lines waiting for it, and hands them on.
    fn recognise_access(&mut self, emit: &mut Emit<'_>, path: &str) {
        if self.access.is_some() || self.waiting.is_empty() {
            return;
        }
        let samples: Vec<&[u8]> = self.waiting.iter().map(|(_, l)| l.as_slice()).collect();
        // A new pod's first stdout lines may be its entrypoint's messages, which fit no layout:
        // the format is chosen once an access line is among them (or, at worst, after a
        // sample's worth of lines).
        let zone = crate::engine::time::ZoneClock::new(self.opts.zone.clone());
        let access_line_seen = || match self.proxy {
            Proxy::Nginx => {
                crate::engine::parse::nginx_access::recognise(&samples, &zone).is_some()
            }
            Proxy::Apache => {
                crate::engine::parse::nginx_access::recognise_apache_lines(&samples, &zone)
                    .is_some()
            }
            _ => true,
        };
        if self.opts.log_format.is_none() && samples.len() < SAMPLE && !access_line_seen() {
            return;
        }
        let p = Parser::new(self.proxy.access_format(), &self.opts, &samples);
        log!(Info, "format", file = path, layout = p.describe());
        self.access = Some(p);
        for (number, line) in std::mem::take(&mut self.waiting) {
            self.logical(0, number, &line, emit);
        }
    }
}

impl Source for ContainerSource {
    fn name(&self) -> &str {
        &self.path
    }

    fn format(&self) -> Format {
        self.unwrap.proxy.access_format()
    }

    fn streams(&self) -> Vec<(String, Format)> {
        let proxy = self.unwrap.proxy;
        match proxy.single() {
            Some(f) => vec![(self.shown.clone(), f)],
            None => vec![
                (self.shown.clone(), proxy.access_format()),
                (format!("{} (stderr)", self.shown), proxy.error_format()),
            ],
        }
    }

    fn read(&mut self, _: &dyn Ledger, emit: &mut Emit<'_>) -> anyhow::Result<Round> {
        let mut notices = Vec::new();
        let mut lines = 0;
        let ContainerSource {
            path,
            tailer,
            unwrap,
            too_long_logged,
            ..
        } = self;
        let more = tailer.poll(&mut notices, &mut |d| {
            lines += 1;
            let line = match d {
                Delivery::Line(l) => Some(l),
                Delivery::TooLong => None,
            };
            if unwrap.framing.is_some() {
                unwrap.take(line, emit);
            } else {
                unwrap.held.push(line.map(<[u8]>::to_vec));
            }
        });
        super::file::report_notices(tailer.path(), &notices);
        if unwrap.framing.is_none() {
            let samples: Vec<&[u8]> = unwrap.held.iter().flatten().map(Vec::as_slice).collect();
            match container::recognise(&samples) {
                Some(f) => {
                    log!(Info, "container log", file = path, framing = f.as_str());
                    unwrap.framing = Some(Some(f));
                }
                None if samples.len() >= SAMPLE => {
                    log!(
                        Error,
                        "not a container log: its lines have neither the CRI nor the docker json-file framing; every line is counted as unparsed (for a proxy's own log file use format = \"nginx_access\", \"nginx_error\" or \"haproxy\")",
                        file = path
                    );
                    unwrap.framing = Some(None);
                }
                None => {}
            }
            if unwrap.framing.is_some() {
                for line in std::mem::take(&mut unwrap.held) {
                    unwrap.take(line.as_deref(), emit);
                }
            }
        }
        unwrap.recognise_access(emit, path);
        say_too_long(
            tailer.path(),
            &mut unwrap.too_long_unlogged,
            too_long_logged,
        );
        Ok(Round { lines, more })
    }

    fn counts(&self) -> (u64, u64) {
        (self.unwrap.lines, self.unwrap.unparsed)
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        // Lines held to recognise the framing, or waiting for the access log's format, are not
        // read yet as far as a restart is concerned: it reads them again.
        if !self.unwrap.held.is_empty() || !self.unwrap.waiting.is_empty() {
            return None;
        }
        Some(super::file::encode(KIND, &self.tailer.checkpoints()))
    }

    fn status(&self) -> SourceStatus {
        let u = &self.unwrap;
        let framing = match u.framing {
            Some(Some(f)) => f.as_str(),
            Some(None) => "no framing",
            None => "framing not known yet",
        };
        SourceStatus {
            format: format!(
                "container {framing}: {}",
                match (&u.access, u.proxy.single()) {
                    (_, Some(f)) => f.to_string(),
                    (Some(p), None) => format!("{} + {}", p.describe(), u.proxy.error_format()),
                    (None, None) => {
                        format!("{} + {}", u.proxy.access_format(), u.proxy.error_format())
                    }
                }
            ),
            lines: u.lines,
            unparsed: u.unparsed,
            too_long: u.too_long,
            lag_bytes: self.tailer.lag_bytes(),
            ..Default::default()
        }
    }
}

/// A container log unwrapped for `scan`: the proxy's lines of each stream in a plain file.
#[derive(Debug)]
pub struct Unwrapped {
    pub framing: Framing,
    /// The lines written to standard output, and to standard error.
    pub files: [PathBuf; 2],
    /// Lines without the framing (or too long), left out and counted.
    pub unframed: u64,
}

/// `scan`'s way with a container log (plain or gzip): its lines unwrapped into two plain files
/// in `dir`, the stdout lines (an nginx access log, HAProxy's log) and the stderr lines (the
/// error log), parts of long lines put together; `None` when its first lines are not framed.
pub fn unwrap_file(name: &str, dir: &Path) -> anyhow::Result<Option<Unwrapped>> {
    use crate::engine::lines::{LineReader, Next};
    use anyhow::Context;
    use std::io::Write;
    let (stream, _) = super::scan::open(name).with_context(|| format!("opening {name}"))?;
    let mut reader = LineReader::new(stream, MAX_LINE);
    // The framing, from the first lines.
    let mut head: Vec<Vec<u8>> = Vec::new();
    let mut eof = false;
    while head.len() < SAMPLE {
        match reader
            .next_line()
            .with_context(|| format!("reading {name}"))?
        {
            Next::Line(l) => head.push(reader.bytes(l).to_vec()),
            Next::TooLong => {}
            Next::Eof => {
                eof = true;
                break;
            }
        }
    }
    let samples: Vec<&[u8]> = head.iter().map(Vec::as_slice).collect();
    let Some(framing) = container::recognise(&samples) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    let base = Path::new(name)
        .file_name()
        .map_or_else(|| "stdin".into(), |n| n.to_string_lossy().into_owned());
    let n = std::fs::read_dir(dir)?.count();
    let files = [
        dir.join(format!("{n}-{base}.stdout")),
        dir.join(format!("{n}-{base}.stderr")),
    ];
    let mut out = [
        std::io::BufWriter::new(std::fs::File::create(&files[0])?),
        std::io::BufWriter::new(std::fs::File::create(&files[1])?),
    ];
    let mut parts: [Vec<u8>; 2] = Default::default();
    let mut buf = Vec::new();
    let unframed = std::cell::Cell::new(0);
    let mut take = |line: &[u8], out: &mut [std::io::BufWriter<std::fs::File>; 2]| {
        let Ok(f) = container::decode(framing, line, &mut buf) else {
            unframed.set(unframed.get() + 1);
            return Ok::<(), std::io::Error>(());
        };
        let s = (f.stream == Stream::Stderr) as usize;
        if f.partial {
            if parts[s].len() + f.payload.len() <= MAX_LINE {
                parts[s].extend_from_slice(f.payload);
            }
            return Ok(());
        }
        out[s].write_all(&parts[s])?;
        parts[s].clear();
        out[s].write_all(f.payload)?;
        out[s].write_all(b"\n")
    };
    for line in &head {
        take(line, &mut out)?;
    }
    while !eof {
        match reader
            .next_line()
            .with_context(|| format!("reading {name}"))?
        {
            Next::Line(l) => take(reader.bytes(l), &mut out)?,
            Next::TooLong => unframed.set(unframed.get() + 1),
            Next::Eof => eof = true,
        }
    }
    for o in &mut out {
        o.flush()?;
    }
    Ok(Some(Unwrapped {
        framing,
        files,
        unframed: unframed.get(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_from_kubelet_paths() {
        assert_eq!(
            pod_of(Path::new(
                "/var/log/pods/ingress-nginx_ingress-nginx-controller-7d9f8_0b6f6c3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b/controller/0.log"
            )),
            Some((
                "ingress-nginx".into(),
                "ingress-nginx-controller-7d9f8".into(),
                "controller".into()
            ))
        );
        assert_eq!(
            pod_of(Path::new(&format!(
                "/var/log/containers/web-5f7c9_shop_nginx-{}.log",
                "a".repeat(64)
            ))),
            Some(("shop".into(), "web-5f7c9".into(), "nginx".into()))
        );
        assert_eq!(pod_of(Path::new("/var/log/nginx/access.log")), None);
        assert_eq!(pod_of(Path::new("/var/log/containers/x.log")), None);
    }

    #[test]
    fn scan_unwraps_both_streams_and_puts_parts_together() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2024-05-01T12:00:00Z stdout F a1\n2024-05-01T12:00:00Z stderr P e1-\n2024-05-01T12:00:00Z stdout F a2\ngarbage\n2024-05-01T12:00:00Z stderr F part2\n",
        )
        .unwrap();
        let u = unwrap_file(log.to_str().unwrap(), &dir.path().join("u"))
            .unwrap()
            .unwrap();
        assert_eq!(u.framing, Framing::Cri);
        assert_eq!(u.unframed, 1);
        assert_eq!(std::fs::read_to_string(&u.files[0]).unwrap(), "a1\na2\n");
        assert_eq!(std::fs::read_to_string(&u.files[1]).unwrap(), "e1-part2\n");
        let plain = dir.path().join("access.log");
        std::fs::write(
            &plain,
            "10.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" 200 1\n",
        )
        .unwrap();
        assert!(
            unwrap_file(plain.to_str().unwrap(), &dir.path().join("u"))
                .unwrap()
                .is_none()
        );
    }
}

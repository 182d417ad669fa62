//! gatewatch's own syslog listener, for HAProxy logging straight to it (`log 127.0.0.1:5514
//! local0` or `log /run/gatewatch/haproxy.sock local0`): UDP and unix datagram sockets, RFC
//! 3164 and RFC 5424 framing (the parser strips the header).

use anyhow::Context;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Datagrams received but not yet taken by the reader; beyond this, new ones are dropped (and
/// counted) rather than let memory grow without bound.
pub const MAX_QUEUED: usize = 100_000;

/// A bound socket.
pub enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram, PathBuf),
}

impl Socket {
    /// `udp://127.0.0.1:5514`, `127.0.0.1:5514`, or `unix:///run/gatewatch/haproxy.sock`.
    pub fn bind(listen: &str) -> anyhow::Result<Socket> {
        if let Some(path) = listen.strip_prefix("unix://") {
            let path = PathBuf::from(path);
            // A socket left by a previous run would make bind fail.
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing the old socket {}", path.display()))?;
            }
            let s = UnixDatagram::bind(&path)
                .with_context(|| format!("listening on {}", path.display()))?;
            // HAProxy runs as its own user: it must be able to write to the socket.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            return Ok(Socket::Unix(s, path));
        }
        let addr = listen.strip_prefix("udp://").unwrap_or(listen);
        let s = UdpSocket::bind(addr).with_context(|| format!("listening on udp://{addr}"))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Socket::Udp(s))
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Udp(s) => s.recv(buf),
            Socket::Unix(s, _) => s.recv(buf),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Socket::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Counters shared with the reader.
#[derive(Debug, Default)]
pub struct Counts {
    pub queued: AtomicUsize,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
}

/// Receives datagrams until `stop` is set and hands them over in batches of lines.
pub fn serve(
    socket: Socket,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    mut deliver: impl FnMut(Vec<Vec<u8>>) -> bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::new();
        match socket.recv(&mut buf) {
            Ok(n) => push_lines(&buf[..n], &mut batch),
            Err(_) => continue, // timeout: check the stop flag
        }
        // Take what else is already waiting, without blocking.
        while batch.len() < 256 {
            match nonblocking(&socket, &mut buf) {
                Some(n) => push_lines(&buf[..n], &mut batch),
                None => break,
            }
        }
        let n = batch.len();
        counts.received.fetch_add(n as u64, Ordering::Relaxed);
        if counts.queued.load(Ordering::Relaxed) + n > MAX_QUEUED {
            counts.dropped.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        counts.queued.fetch_add(n, Ordering::Relaxed);
        if !deliver(batch) {
            return;
        }
    }
}

fn nonblocking(socket: &Socket, buf: &mut [u8]) -> Option<usize> {
    let r = match socket {
        Socket::Udp(s) => {
            s.set_nonblocking(true).ok()?;
            let r = s.recv(buf);
            let _ = s.set_nonblocking(false);
            r
        }
        Socket::Unix(s, _) => {
            s.set_nonblocking(true).ok()?;
            let r = s.recv(buf);
            let _ = s.set_nonblocking(false);
            r
        }
    };
    r.ok()
}

/// One datagram may carry one message or several lines.
fn push_lines(datagram: &[u8], out: &mut Vec<Vec<u8>>) {
    for line in datagram.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_suffix(b"\0").unwrap_or(line);
        if !line.is_empty() {
            out.push(line.to_vec());
        }
    }
}

/// A syslog `[[source]]`: its socket is bound when the plan is made (a taken port is an error
/// at start), and kept across reloads that leave the listener as it was.
pub struct SyslogPlan {
    listen: String,
    source: Option<SyslogSource>,
}

impl SyslogPlan {
    pub fn new(cfg: &super::SourceConfig, ctx: &super::Context) -> anyhow::Result<SyslogPlan> {
        let listen = cfg.kind.input().to_string();
        let socket = Socket::bind(&listen)?;
        crate::log!(Info, "listening for syslog", listen = listen);
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (counts, stop, wake) = (counts.clone(), stop.clone(), ctx.wake.clone());
            std::thread::Builder::new()
                .name("gatewatch-syslog".into())
                .spawn(move || {
                    serve(socket, stop, counts, |lines| {
                        let ok = tx.send(lines).is_ok();
                        wake();
                        ok
                    })
                })
                .context("starting a syslog listener")?
        };
        Ok(SyslogPlan {
            source: Some(SyslogSource {
                listen: listen.clone(),
                parser: parser(cfg),
                lines: 0,
                unparsed: 0,
                counts,
                rx,
                stop,
                thread: Some(thread),
            }),
            listen,
        })
    }
}

impl super::Plan for SyslogPlan {
    fn open(
        &mut self,
        _: &dyn Fn(&str) -> anyhow::Result<Option<super::Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn super::Source>>> {
        Ok(self
            .source
            .take()
            .map(|s| Box::new(s) as Box<dyn super::Source>)
            .into_iter()
            .collect())
    }

    fn keeps(&self, cfg: &super::SourceConfig) -> bool {
        cfg.kind.same_input(&super::SourceKind::Syslog {
            listen: self.listen.clone(),
        })
    }
}

/// The lines a listener received: parsed, counted and fed to the pipeline like lines read from
/// a file (there is no position to save: a datagram is received once).
pub struct SyslogSource {
    listen: String,
    parser: crate::engine::parse::Parser,
    lines: u64,
    unparsed: u64,
    counts: Arc<Counts>,
    rx: std::sync::mpsc::Receiver<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The parser of a listener's lines (HAProxy's, after the syslog header).
fn parser(cfg: &super::SourceConfig) -> crate::engine::parse::Parser {
    crate::engine::parse::Parser::new(
        crate::engine::event::Format::Haproxy,
        &crate::engine::parse::ParserOptions {
            zone: cfg.timezone.clone(),
            year: chrono::Datelike::year(&chrono::Utc::now()),
            log_format: None,
        },
        &[],
    )
}

/// Lines taken from the listener per read at most (the rest are taken in the next).
const TAKE: usize = 8192;

impl super::Source for SyslogSource {
    fn name(&self) -> &str {
        &self.listen
    }

    fn format(&self) -> crate::engine::event::Format {
        crate::engine::event::Format::Haproxy
    }

    fn read(
        &mut self,
        _: &dyn super::Ledger,
        emit: &mut super::Emit<'_>,
    ) -> anyhow::Result<super::Round> {
        let mut round = super::Round::default();
        while round.lines < TAKE as u64 {
            let Ok(batch) = self.rx.try_recv() else {
                return Ok(round);
            };
            self.counts.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            for line in batch {
                self.lines += 1;
                round.lines += 1;
                match self.parser.parse(&line) {
                    Ok(ev) => emit(0, self.lines, &line, ev),
                    Err(_) => self.unparsed += 1,
                }
            }
        }
        round.more = self.counts.queued.load(Ordering::Relaxed) > 0;
        Ok(round)
    }

    fn status(&self) -> super::SourceStatus {
        super::SourceStatus {
            format: format!(
                "syslog listener ({} dropped)",
                self.counts.dropped.load(Ordering::Relaxed)
            ),
            lines: self.lines,
            unparsed: self.unparsed,
            too_long: 0,
            lag_bytes: 0,
            ..Default::default()
        }
    }

    fn reconfigure(&mut self, cfg: &super::SourceConfig) {
        self.parser = parser(cfg);
    }
}

impl Drop for SyslogSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! Upstream servers with the faults a proxy meets, on loopback, for the real-proxy tests: one
//! that answers, one that never answers, one that resets, one that speaks garbage, one that
//! sends an invalid header, a port nobody listens on, and a DNS server that knows no name.
//! Every loop is bounded by the test's lifetime (a stop flag) and by timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

#[derive(Clone, Copy)]
pub enum Behaviour {
    /// `200 OK` with a short body.
    Ok,
    /// Accepts and never answers.
    Hang,
    /// Accepts, reads the request, closes without a word.
    Close,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// Answers with a header line nginx and HAProxy refuse.
    InvalidHeader,
}

/// Running upstreams; they stop when this is dropped.
pub struct Upstreams {
    stop: Arc<AtomicBool>,
    pub ok: SocketAddr,
    pub hang: SocketAddr,
    pub close: SocketAddr,
    pub garbage: SocketAddr,
    pub invalid: SocketAddr,
    /// Ports where nothing listens.
    pub refused: [SocketAddr; 2],
    /// A DNS server that answers every question with NXDOMAIN.
    pub dns: SocketAddr,
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loops.
        for a in [self.ok, self.hang, self.close, self.garbage, self.invalid] {
            let _ = TcpStream::connect_timeout(&a, Duration::from_millis(200));
        }
    }
}

fn serve(behaviour: Behaviour, stop: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(s) = conn else { continue };
            let stop = stop.clone();
            thread::spawn(move || answer(behaviour, s, &stop));
        }
    });
    addr
}

/// Answers one connection the way `behaviour` says.
fn answer(behaviour: Behaviour, mut s: TcpStream, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    match behaviour {
        Behaviour::Ok => {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
        Behaviour::Hang => {
            // Hold the connection until the proxy gives up (bounded: 10 s).
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
                if s.peek(&mut buf).is_ok_and(|n| n == 0) {
                    break;
                }
            }
        }
        Behaviour::Close => {}
        Behaviour::Garbage => {
            let _ = s.write_all(b"this is not http at all\r\n\r\n");
        }
        Behaviour::InvalidHeader => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nBad Header: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            );
        }
    }
}

/// A healthy upstream that a test kills and brings back on the same address, as an
/// operator's service crashes and restarts. It listens on 127.0.0.4, where no other test
/// binds, so its port stays free (connections refused) while it is down.
pub struct Killable {
    pub addr: SocketAddr,
    running: Option<(Arc<AtomicBool>, thread::JoinHandle<()>)>,
}

impl Killable {
    pub fn start() -> Killable {
        let listener = TcpListener::bind("127.0.0.4:0").unwrap();
        let addr = listener.local_addr().unwrap();
        Killable {
            addr,
            running: Some(Killable::accept(listener)),
        }
    }

    fn accept(listener: TcpListener) -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let flag = flag.clone();
                        thread::spawn(move || answer(Behaviour::Ok, s, &flag));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            // The listener closes here: from now on connections are refused.
        });
        (stop, handle)
    }

    /// Stops listening; returns once connections are refused.
    pub fn kill(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            handle.join().unwrap();
        }
    }

    /// Listens again on the same address.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "the upstream is already running");
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if tries > 100 => panic!("binding {} again: {e}", self.addr),
                Err(_) => {
                    tries += 1;
                    thread::sleep(Duration::from_millis(20));
                }
            }
        };
        self.running = Some(Killable::accept(listener));
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An address nothing listens on, and nothing will: on 127.0.0.3, where no test binds (every
/// other test listens on 127.0.0.1), so a port reused by a parallel test cannot answer.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.3:0").unwrap();
    l.local_addr().unwrap()
}

fn dns(stop: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            // Same id and question; QR, RD, RA set; RCODE 3 (NXDOMAIN); no answers.
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x83;
            reply[6..12].fill(0);
            let _ = sock.send_to(&reply, peer);
        }
    });
    addr
}

pub fn start() -> Upstreams {
    let stop = Arc::new(AtomicBool::new(false));
    Upstreams {
        ok: serve(Behaviour::Ok, stop.clone()),
        hang: serve(Behaviour::Hang, stop.clone()),
        close: serve(Behaviour::Close, stop.clone()),
        garbage: serve(Behaviour::Garbage, stop.clone()),
        invalid: serve(Behaviour::InvalidHeader, stop.clone()),
        refused: [closed_port(), closed_port()],
        dns: dns(stop.clone()),
        stop,
    }
}

/// Sends one request and returns the status line's code (0 when there was no answer).
pub fn get(proxy: SocketAddr, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test.example\r\nUser-Agent: gatewatch-test\r\nConnection: close\r\n\r\n"
    );
    let mut resp = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Waits until a TCP port accepts connections (bounded).
pub fn wait_for_port(addr: SocketAddr) -> bool {
    for _ in 0..100 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A free loopback port for a proxy to listen on.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

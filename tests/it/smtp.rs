//! A real SMTP server on loopback for the email tests: Debian's aiosmtpd
//! (`tests/servers/smtp_server.py`), with STARTTLS or implicit TLS under a test CA, and AUTH.
//! Every accepted message is kept as a file.

use super::*;
use std::time::{Duration, Instant};

pub const PYTHON: &str = "/usr/bin/python3";
pub const USER: &str = "gatewatch";
pub const PASSWORD: &str = "correct horse";

/// Whether aiosmtpd and openssl are there (outside CI a missing one skips loudly).
pub fn have_smtp() -> bool {
    let aiosmtpd = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    available("python3-aiosmtpd (for /usr/bin/python3)", aiosmtpd) && available("openssl", openssl)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/smtp_server.py")
}

pub struct Smtp {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Running,
}

impl Smtp {
    /// Starts a server: `tls` is starttls, implicit or none; AUTH with [`USER`]/[`PASSWORD`];
    /// `reject` recipients are refused with 550.
    pub fn start(tls: &str, reject: &[&str]) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let o = Command::new(PYTHON)
            .arg(script())
            .arg("--make-cert")
            .arg(&certs)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::create_dir_all(dir.path().join("mail")).unwrap();
        for _ in 0..5 {
            let port = super::upstreams::free_port().port();
            let ready = dir.path().join("ready");
            let mut cmd = Command::new(PYTHON);
            cmd.arg(script())
                .args(["--port", &port.to_string(), "--tls", tls])
                .args(["--user", USER, "--password", PASSWORD])
                .arg("--maildir")
                .arg(dir.path().join("mail"))
                .arg("--ready-file")
                .arg(&ready)
                .stdout(std::process::Stdio::null())
                // The server's own log goes to a file beside the mail, not into the results.
                .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap());
            if tls != "none" {
                cmd.arg("--cert")
                    .arg(certs.join("cert.pem"))
                    .arg("--key")
                    .arg(certs.join("key.pem"));
            }
            for r in reject {
                cmd.args(["--reject-rcpt", r]);
            }
            let mut child = Running(cmd.spawn().unwrap());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if ready.exists() {
                    return Smtp { port, dir, child };
                }
                if child.0.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.0.kill();
        }
        panic!("the SMTP server did not start");
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    /// The files of the messages received so far (raw, one per message), in order.
    pub fn message_files(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
    }

    /// The messages received so far, raw, in order.
    pub fn messages(&self) -> Vec<String> {
        self.message_files()
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// The envelope of message `n` (from 1): sender, recipients, the authenticated user, TLS.
    pub fn envelope(&self, n: usize) -> serde_json::Value {
        let p = self.dir.path().join(format!("mail/{n:06}.json"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages within {timeout:?}",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status();
        let _ = self.child.0.wait();
    }
}

/// A header of a raw message: unfolded, its RFC 2047 encoded words (`=?utf-8?b?…?=`)
/// decoded.
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| decode_words(v.trim()))
    })
}

fn decode_words(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    let mut last_was_word = false;
    while let Some(i) = rest.find("=?") {
        let (before, word) = rest.split_at(i);
        let Some(end) = word[2..].find("?=").map(|e| e + 4) else {
            break;
        };
        // Whitespace between two encoded words is not part of the text.
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let parts: Vec<&str> = word[2..end - 2].splitn(3, '?').collect();
        match parts.as_slice() {
            [_, enc, text] if enc.eq_ignore_ascii_case("b") => {
                out.push_str(&String::from_utf8_lossy(&base64(text)));
            }
            _ => out.push_str(&word[..end]),
        }
        last_was_word = true;
        rest = &word[end..];
    }
    out.push_str(rest);
    out
}

fn base64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = A.iter().position(|&a| a == c) else {
            continue;
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

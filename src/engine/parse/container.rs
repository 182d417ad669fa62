//! Container runtimes' log framings, around the proxy's own lines: CRI (containerd, CRI-O:
//! `2024-05-01T12:00:00.123456789Z stdout F <line>`, `P` for a part of a longer line) and
//! docker's `json-file` (`{"log":"<line>\n","stream":"stderr","time":"…"}`, a part of a longer
//! line without the `\n`). Pure: a framed line in, the stream and the proxy's bytes out.
//!
//! The runtime's time stamp is when the line was received; the proxy's line carries its own,
//! which is the one used.

use crate::engine::event::Unparsed;

/// A container runtime's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Cri,
    Docker,
}

impl Framing {
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Cri => "cri",
            Framing::Docker => "docker",
        }
    }
}

/// Which of the container's outputs a line was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One framed line, unwrapped.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub stream: Stream,
    /// A part of a longer line: the rest follows in the next frames of the same stream.
    pub partial: bool,
    /// The proxy's bytes, without the newline.
    pub payload: &'a [u8],
}

/// The framing of a line, if it has one of the known framings.
pub fn framing(line: &[u8]) -> Option<Framing> {
    if line.starts_with(b"{") && docker_fast(line, &mut Vec::new()).is_ok() {
        return Some(Framing::Docker);
    }
    if line.starts_with(b"{") && docker_slow(line, &mut Vec::new()).is_ok() {
        return Some(Framing::Docker);
    }
    cri(line).ok().map(|_| Framing::Cri)
}

/// The framing of most of `samples` (at least one, and every sample that is neither framing
/// counted against it): a container log is framed on every line.
pub fn recognise(samples: &[&[u8]]) -> Option<Framing> {
    let (mut cri, mut docker, mut other) = (0, 0, 0);
    for s in samples {
        match framing(s) {
            Some(Framing::Cri) => cri += 1,
            Some(Framing::Docker) => docker += 1,
            None => other += 1,
        }
    }
    if cri > 0 && cri >= 4 * (docker + other) {
        Some(Framing::Cri)
    } else if docker > 0 && docker >= 4 * (cri + other) {
        Some(Framing::Docker)
    } else {
        None
    }
}

/// Unwraps a line of the given framing. `buf` holds the payload when it had to be unescaped
/// (docker's JSON), so nothing is allocated once it has grown.
pub fn decode<'a>(
    framing: Framing,
    line: &'a [u8],
    buf: &'a mut Vec<u8>,
) -> Result<Frame<'a>, Unparsed> {
    match framing {
        Framing::Cri => cri(line),
        Framing::Docker => {
            if docker_fast(line, buf).is_err() {
                docker_slow(line, buf)?;
            }
            let stream = match buf.first() {
                Some(b'o') => Stream::Stdout,
                _ => Stream::Stderr,
            };
            // `buf` = stream byte, then the unescaped log text.
            let text = &buf[1..];
            let (payload, partial) = match text.strip_suffix(b"\n") {
                Some(p) => (p.strip_suffix(b"\r").unwrap_or(p), false),
                None => (text, true),
            };
            Ok(Frame {
                stream,
                partial,
                payload,
            })
        }
    }
}

/// Whether a line is a Kubernetes component's own log line (klog: `I1206 05:00:00.123456 7
/// controller.go:190] …`), as ingress-nginx's controller writes to the same stderr as nginx's
/// error log: not an error-log line, not garbage either.
pub fn is_klog(line: &[u8]) -> bool {
    let d = |r: std::ops::Range<usize>| {
        line.get(r)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    line.len() > 22
        && matches!(line[0], b'I' | b'W' | b'E' | b'F')
        && d(1..5)
        && line[5] == b' '
        && d(6..8)
        && line[8] == b':'
        && d(9..11)
        && line[11] == b':'
        && d(12..14)
        && line[14] == b'.'
        && d(15..21)
}

/// `TIME STREAM TAG LINE`; TIME is RFC 3339 (checked for shape), TAG `F` or `P` (tags are
/// `:`-separated; the first is the one that matters).
fn cri(line: &[u8]) -> Result<Frame<'_>, Unparsed> {
    let sp = |from: usize| {
        line[from..]
            .iter()
            .position(|&b| b == b' ')
            .map(|i| from + i)
    };
    let t_end = sp(0).ok_or(Unparsed::Framing)?;
    let time = &line[..t_end];
    let shape = time.len() >= 20
        && time[..4].iter().all(u8::is_ascii_digit)
        && time[4] == b'-'
        && time[7] == b'-'
        && time[10] == b'T'
        && time[13] == b':'
        && (time.ends_with(b"Z") || time[time.len() - 6] == b'+' || time[time.len() - 6] == b'-');
    if !shape {
        return Err(Unparsed::Framing);
    }
    let s_end = sp(t_end + 1).ok_or(Unparsed::Framing)?;
    let stream = match &line[t_end + 1..s_end] {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(Unparsed::Framing),
    };
    // The tag, then the line (which may be empty: "… stdout F ").
    let rest = &line[s_end + 1..];
    let (tag, payload) = match rest.iter().position(|&b| b == b' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let partial = match tag.split(|&b| b == b':').next() {
        Some(b"F") => false,
        Some(b"P") => true,
        _ => return Err(Unparsed::Framing),
    };
    Ok(Frame {
        stream,
        partial,
        payload,
    })
}

/// Docker's own layout: `{"log":"…","stream":"stdout|stderr","time":"…"}` with optional
/// members after `time` (`attrs`). Writes the stream's first byte and the unescaped text to
/// `buf`.
fn docker_fast(line: &[u8], buf: &mut Vec<u8>) -> Result<(), Unparsed> {
    let bad = || Unparsed::Framing;
    let rest = line.strip_prefix(b"{\"log\":\"").ok_or_else(bad)?;
    buf.clear();
    buf.push(0);
    let n = unescape(rest, buf).ok_or_else(bad)?;
    let rest = &rest[n..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b",\"stream\":\"stdout\"") {
        (b'o', r)
    } else if let Some(r) = rest.strip_prefix(b",\"stream\":\"stderr\"") {
        (b'e', r)
    } else {
        return Err(bad());
    };
    let rest = rest.strip_prefix(b",\"time\":\"").ok_or_else(bad)?;
    let q = rest.iter().position(|&b| b == b'"').ok_or_else(bad)?;
    let rest = &rest[q + 1..];
    let end = rest.strip_suffix(b"}").ok_or_else(bad)?;
    if !(end.is_empty() || end.starts_with(b",")) {
        return Err(bad());
    }
    buf[0] = stream;
    Ok(())
}

/// Any JSON object with a string `log` and a `stream` of `stdout` or `stderr` (other writers
/// of the format order members differently).
fn docker_slow(line: &[u8], buf: &mut Vec<u8>) -> Result<(), Unparsed> {
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        #[serde(borrow)]
        log: std::borrow::Cow<'a, str>,
        stream: &'a str,
    }
    let e: Entry<'_> = serde_json::from_slice(line).map_err(|_| Unparsed::Framing)?;
    let stream = match e.stream {
        "stdout" => b'o',
        "stderr" => b'e',
        _ => return Err(Unparsed::Framing),
    };
    buf.clear();
    buf.push(stream);
    buf.extend_from_slice(e.log.as_bytes());
    Ok(())
}

/// Unescapes a JSON string's body from its start to its closing quote into `out`; returns the
/// bytes taken, the quote included. `None`: not a valid string.
fn unescape(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let mut i = 0;
    loop {
        let run = s[i..].iter().position(|&b| b == b'"' || b == b'\\')?;
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        if s[i] == b'"' {
            return Some(i + 1);
        }
        let e = *s.get(i + 1)?;
        i += 2;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hex = |at: usize| -> Option<u32> {
                    let h = s.get(at..at + 4)?;
                    u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
                };
                let mut c = hex(i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&c) && s.get(i..i + 2) == Some(b"\\u") {
                    let low = hex(i + 2)?;
                    if (0xDC00..0xE000).contains(&low) {
                        c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
                let mut b = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(framing: Framing, line: &str) -> Result<(Stream, bool, String), Unparsed> {
        let mut buf = Vec::new();
        decode(framing, line.as_bytes(), &mut buf).map(|f| {
            (
                f.stream,
                f.partial,
                String::from_utf8_lossy(f.payload).into_owned(),
            )
        })
    }

    #[test]
    fn cri_lines_full_partial_and_empty() {
        let l = "2024-05-01T12:00:00.123456789Z stdout F 10.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" 502 157";
        assert_eq!(framing(l.as_bytes()), Some(Framing::Cri));
        assert_eq!(
            dec(Framing::Cri, l).unwrap(),
            (
                Stream::Stdout,
                false,
                "10.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" 502 157".into()
            )
        );
        assert_eq!(
            dec(
                Framing::Cri,
                "2024-05-01T12:00:00.1+02:00 stderr P part one"
            )
            .unwrap(),
            (Stream::Stderr, true, "part one".into())
        );
        assert_eq!(
            dec(Framing::Cri, "2024-05-01T12:00:00Z stdout F").unwrap(),
            (Stream::Stdout, false, String::new())
        );
        for bad in [
            "10.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" 502 157",
            "2024-05-01T12:00:00Z stdin F x",
            "2024-05-01T12:00:00Z stdout X x",
            "2024/05/01 12:00:00 [error] 7#7: *1 connect() failed",
        ] {
            assert!(dec(Framing::Cri, bad).is_err(), "{bad}");
            assert_eq!(framing(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn docker_lines_unescaped_with_their_stream() {
        let l = r#"{"log":"2024/05/01 12:00:00 [error] 31#31: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://10.0.1.5:8080/\", host: \"a\"\n","stream":"stderr","time":"2024-05-01T12:00:00.123456789Z"}"#;
        assert_eq!(framing(l.as_bytes()), Some(Framing::Docker));
        let (stream, partial, text) = dec(Framing::Docker, l).unwrap();
        assert_eq!((stream, partial), (Stream::Stderr, false));
        assert!(text.starts_with("2024/05/01 12:00:00 [error]"), "{text}");
        assert!(text.contains(r#"request: "GET / HTTP/1.1", upstream: "http://10.0.1.5:8080/""#));
        // A part of a longer line has no newline; escapes of every kind; attrs after time.
        assert_eq!(
            dec(
                Framing::Docker,
                r#"{"log":"a\tb\\c\/d \u00e9\ud83d\ude00","stream":"stdout","time":"2024-05-01T12:00:00Z","attrs":{"tag":"x"}}"#
            )
            .unwrap(),
            (Stream::Stdout, true, "a\tb\\c/d é😀".into())
        );
        // Members in another order (another writer of the format).
        assert_eq!(
            dec(
                Framing::Docker,
                r#"{"stream":"stdout","time":"2024-05-01T12:00:00Z","log":"x\n"}"#
            )
            .unwrap(),
            (Stream::Stdout, false, "x".into())
        );
        // nginx's own JSON access lines, a Traefik JSON line: not docker's.
        for other in [
            r#"{"time":"2024-05-01T12:00:00+00:00","status":"502","upstream_addr":"10.0.1.5:8080"}"#,
            r#"{"ClientAddr":"10.0.0.1:5","DownstreamStatus":502,"RequestPath":"/","level":"info","msg":"","time":"2024-05-01T12:00:00Z"}"#,
            r#"{"log":"x","stream":"stdin","time":"t"}"#,
            r#"{"log":"unterminated"#,
        ] {
            assert_eq!(framing(other.as_bytes()), None, "{other}");
            assert!(dec(Framing::Docker, other).is_err(), "{other}");
        }
    }

    #[test]
    fn klog_lines_are_told_apart() {
        assert!(is_klog(
            br#"I1206 05:00:00.123456       7 controller.go:190] "Configuration changes detected, backend reload required""#
        ));
        assert!(is_klog(b"W0501 12:00:00.000001 1 queue.go:130] requeuing"));
        assert!(!is_klog(
            b"2024/05/01 12:00:00 [error] 31#31: *5 connect() failed (111: Connection refused)"
        ));
        assert!(!is_klog(b"I1206 05:00"));
    }

    #[test]
    fn recognition_wants_nearly_every_line_framed() {
        let cri = b"2024-05-01T12:00:00Z stdout F x".as_slice();
        let plain =
            b"10.0.0.1 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" 200 1".as_slice();
        assert_eq!(recognise(&[cri, cri, cri, cri]), Some(Framing::Cri));
        assert_eq!(recognise(&[cri, cri, cri, cri, plain]), Some(Framing::Cri));
        assert_eq!(recognise(&[cri, plain]), None);
        assert_eq!(recognise(&[plain, plain]), None);
        assert_eq!(recognise(&[]), None);
    }
}

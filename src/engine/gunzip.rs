//! Gzip (RFC 1952) decoded straight into the line reader's buffer.
//!
//! A streaming inflater keeps the last 32 KiB it wrote (the window a back-reference may reach
//! into) in a buffer of its own and copies what it decodes out of it: one more copy of every
//! byte, a tenth of the time `scan` spends on an ALB file. Here the caller's buffer is the
//! window: the caller keeps the bytes it was given last, at least [`HISTORY`] of them, right
//! before where the next ones go ([`crate::engine::lines::Source`]), and miniz_oxide's core
//! decodes into it in place. Members follow one another (`cat a.gz b.gz`); each one's CRC-32
//! and length are checked, and anything after a member that is not a member is an error, as
//! are a truncated or corrupt stream — never output cut short in silence.

use crate::engine::lines::Source;
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};
use miniz_oxide::inflate::core::{DecompressorOxide, decompress};
use std::io::{self, Read};

/// The bytes a back-reference may reach: what the caller keeps before the next read.
pub const HISTORY: usize = 32 * 1024;
const INPUT: usize = 64 * 1024;

/// A gzip stream of one or more members, decoded into the caller's buffer.
pub struct Gunzip<R> {
    inner: R,
    input: Box<[u8]>,
    pos: usize,
    end: usize,
    /// `inner` has no more bytes.
    eof: bool,
    inflate: Box<DecompressorOxide>,
    phase: Phase,
    crc: crc32fast::Hasher,
    /// Bytes of the current member decoded so far.
    out: u64,
    /// Members begun so far (an empty stream is not gzip: it has none).
    members: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before a member's header (the first, or after a trailer).
    Header,
    Body,
    Trailer,
    End,
    /// The stream is damaged (said once the bytes decoded before the damage are handed on).
    Failed(Damage),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Damage {
    Truncated,
    Corrupt,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {what}"))
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "gzip: the stream ends inside a member (a truncated file?)",
    )
}

impl<R: Read> Gunzip<R> {
    pub fn new(inner: R) -> Gunzip<R> {
        Gunzip {
            inner,
            input: vec![0; INPUT].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            inflate: Box::default(),
            phase: Phase::Header,
            crc: crc32fast::Hasher::new(),
            out: 0,
            members: 0,
        }
    }

    /// Reads more input when all of it is used; false at the end of `inner`.
    fn refill(&mut self) -> io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let n = loop {
            match self.inner.read(&mut self.input) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        (self.pos, self.end, self.eof) = (0, n, n == 0);
        Ok(n > 0)
    }

    /// The next input byte; `None` at the end of `inner`.
    fn byte(&mut self) -> io::Result<Option<u8>> {
        if !self.refill()? {
            return Ok(None);
        }
        self.pos += 1;
        Ok(Some(self.input[self.pos - 1]))
    }

    fn need(&mut self, header: &mut crc32fast::Hasher) -> io::Result<u8> {
        let b = self.byte()?.ok_or_else(truncated)?;
        header.update(&[b]);
        Ok(b)
    }

    /// Reads a member's header; false at the end of the stream (no more members).
    fn header(&mut self) -> io::Result<bool> {
        let mut crc = crc32fast::Hasher::new();
        let Some(id1) = self.byte()? else {
            return match self.members {
                0 => Err(truncated()),
                _ => Ok(false),
            };
        };
        self.members += 1;
        crc.update(&[id1]);
        let id2 = self.need(&mut crc)?;
        if (id1, id2) != (0x1f, 0x8b) {
            return Err(corrupt("bytes after a member that are not another member"));
        }
        if self.need(&mut crc)? != 8 {
            return Err(corrupt("a member compressed other than with deflate"));
        }
        let flags = self.need(&mut crc)?;
        if flags & 0xe0 != 0 {
            return Err(corrupt("reserved header flags set"));
        }
        // MTIME, XFL, OS.
        for _ in 0..6 {
            self.need(&mut crc)?;
        }
        if flags & 0x04 != 0 {
            let len = u16::from_le_bytes([self.need(&mut crc)?, self.need(&mut crc)?]);
            for _ in 0..len {
                self.need(&mut crc)?;
            }
        }
        // FNAME, FCOMMENT: zero-terminated.
        for flag in [0x08, 0x10] {
            if flags & flag != 0 {
                while self.need(&mut crc)? != 0 {}
            }
        }
        if flags & 0x02 != 0 {
            let want = crc.clone().finalize() as u16;
            let got = u16::from_le_bytes([self.need(&mut crc)?, self.need(&mut crc)?]);
            if got != want {
                return Err(corrupt("header checksum mismatch"));
            }
        }
        Ok(true)
    }

    /// Reads a member's trailer and checks the member against it.
    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        for b in &mut t {
            *b = self.byte()?.ok_or_else(truncated)?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        if u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != crc {
            return Err(corrupt("checksum mismatch (corrupt data)"));
        }
        if u32::from_le_bytes([t[4], t[5], t[6], t[7]]) != self.out as u32 {
            return Err(corrupt("length mismatch (corrupt data)"));
        }
        Ok(())
    }
}

impl<R: Read> Source for Gunzip<R> {
    fn history(&self) -> usize {
        HISTORY
    }

    /// Decodes into `buf[at..]`, `buf[..at]` ending with what this returned before (at least
    /// [`HISTORY`] bytes of it, or all); 0 at the end of the stream.
    fn read_after(&mut self, buf: &mut [u8], at: usize) -> io::Result<usize> {
        if at >= buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "gzip: no room to decode into",
            ));
        }
        loop {
            match self.phase {
                Phase::End => return Ok(0),
                Phase::Failed(Damage::Truncated) => return Err(truncated()),
                Phase::Failed(Damage::Corrupt) => return Err(corrupt("corrupt deflate data")),
                Phase::Header => {
                    if !self.header()? {
                        self.phase = Phase::End;
                        continue;
                    }
                    self.inflate.init();
                    self.out = 0;
                    self.phase = Phase::Body;
                }
                Phase::Trailer => {
                    self.trailer()?;
                    self.phase = Phase::Header;
                }
                Phase::Body => {
                    self.refill()?;
                    // The window is this member's bytes only: a reference before its start
                    // fails instead of reading what came before.
                    let window = (self.out as usize).min(HISTORY).min(at);
                    let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
                        | if self.eof {
                            0
                        } else {
                            TINFL_FLAG_HAS_MORE_INPUT
                        };
                    let (status, used, n) = decompress(
                        &mut self.inflate,
                        &self.input[self.pos..self.end],
                        &mut buf[at - window..],
                        window,
                        flags,
                    );
                    self.pos += used;
                    self.crc.update(&buf[at..at + n]);
                    self.out += n as u64;
                    match status {
                        TINFLStatus::Done => self.phase = Phase::Trailer,
                        // (Out of input with none to come: miniz says it cannot go on.)
                        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress
                            if self.eof =>
                        {
                            self.phase = Phase::Failed(Damage::Truncated);
                        }
                        TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput => {}
                        _ => self.phase = Phase::Failed(Damage::Corrupt),
                    }
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

/// A whole stream decoded the way the line reader decodes it: into a buffer of `cap` bytes
/// (more than [`HISTORY`]), the last [`HISTORY`] bytes kept before each read (for the tests and
/// the fuzz target, which compare it with flate2).
#[doc(hidden)]
pub fn decode_all(gz: &[u8], cap: usize) -> io::Result<Vec<u8>> {
    let mut g = Gunzip::new(gz);
    let mut buf = vec![0u8; cap];
    let (mut at, mut out) = (0, Vec::new());
    loop {
        if at == cap {
            buf.copy_within(cap - HISTORY..cap, 0);
            at = HISTORY;
        }
        let n = g.read_after(&mut buf, at)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[at..at + n]);
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Log-like text with long repeats (back-references reaching far) and some noise.
    fn text(lines: usize) -> Vec<u8> {
        let mut s = Vec::new();
        let mut x = 0x9e3779b97f4a7c15u64;
        for i in 0..lines {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let line = format!(
                "https 2024-05-01T12:00:{:02}.{:06}Z app/my-alb 10.0.{}.{}:{} 10.0.1.{}:8080 0.001 0.002 0.000 {} - {} \"GET https://example.com:443/{} HTTP/1.1\"\n",
                i % 60,
                x % 1_000_000,
                x % 7,
                x % 255,
                x % 65535,
                x % 3,
                [200, 404, 502][(x % 3) as usize],
                x % 10_000,
                "a".repeat((x % 300) as usize)
            );
            s.extend_from_slice(line.as_bytes());
        }
        s
    }

    #[test]
    fn decodes_what_flate2_encodes_at_every_level_into_any_buffer() {
        let data = text(3000);
        for level in [0, 1, 6, 9] {
            let gz = gzip(&data, level);
            for cap in [HISTORY + 1, HISTORY + 7, 64 * 1024, 256 * 1024] {
                assert!(
                    decode_all(&gz, cap).unwrap() == data,
                    "level {level}, buffer {cap}"
                );
            }
        }
        assert_eq!(decode_all(&gzip(b"", 6), HISTORY + 1).unwrap(), b"");
        // No member at all is no gzip stream.
        assert!(decode_all(b"", HISTORY + 1).is_err());
    }

    #[test]
    fn members_follow_one_another_and_headers_may_carry_a_name_a_comment_extra_and_crc() {
        let (a, b) = (text(500), text(700));
        let mut gz = gzip(&a, 6);
        let mut e = flate2::GzBuilder::new()
            .filename("access.log")
            .comment("rotated")
            .extra(vec![1, 2, 3, 4])
            .write(Vec::new(), Compression::fast());
        e.write_all(&b).unwrap();
        let second = e.finish().unwrap();
        gz.extend_from_slice(&second);
        gz.extend_from_slice(&gzip(b"", 6));
        gz.extend_from_slice(&gzip(b"last line without a newline", 6));
        let want = [&a[..], &b, b"last line without a newline"].concat();
        assert!(decode_all(&gz, 100_000).unwrap() == want);

        // A header checksum (FHCRC), right and wrong.
        let mut h = vec![0x1f, 0x8b, 8, 0x02, 0, 0, 0, 0, 0, 3];
        let crc = crc32fast::hash(&h) as u16;
        let body = &gzip(b"x\n", 6)[10..];
        let mut good = h.clone();
        good.extend_from_slice(&crc.to_le_bytes());
        good.extend_from_slice(body);
        assert_eq!(decode_all(&good, HISTORY + 1).unwrap(), b"x\n");
        h.extend_from_slice(&(crc ^ 1).to_le_bytes());
        h.extend_from_slice(body);
        let e = decode_all(&h, HISTORY + 1).unwrap_err();
        assert!(e.to_string().contains("header checksum"), "{e}");
    }

    #[test]
    fn damage_is_an_error_never_short_or_wrong_output() {
        let data = text(2000);
        let gz = gzip(&data, 6);
        // Cut anywhere: an error (not the bytes so far as if they were all).
        for cut in [1, 5, 10, 11, 100, gz.len() / 2, gz.len() - 8, gz.len() - 1] {
            let e = decode_all(&gz[..cut], 64 * 1024).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
        }
        // What was decoded before the cut is handed on before the error, as flate2 does.
        let before_error = |decode: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>| {
            let mut out = Vec::new();
            while let Ok(n) = decode(&mut out) {
                assert!(n > 0, "the end of a cut stream");
            }
            out
        };
        // (A buffer with little room: a copy left pending when the input runs out is likely.)
        for (cut, cap) in (20..gz.len() - 8)
            .step_by(331)
            .flat_map(|c| [(c, HISTORY + 7), (c, 2 * HISTORY)])
        {
            let mut ours = Gunzip::new(&gz[..cut]);
            let mut buf = vec![0u8; cap];
            let mut at = 0;
            let got = before_error(&mut |out| {
                if at == cap {
                    buf.copy_within(cap - HISTORY.., 0);
                    at = HISTORY;
                }
                let n = ours.read_after(&mut buf, at)?;
                out.extend_from_slice(&buf[at..at + n]);
                at += n;
                Ok(n)
            });
            let mut theirs = flate2::read::MultiGzDecoder::new(&gz[..cut]);
            let want = before_error(&mut |out| {
                let mut b = [0u8; 4096];
                let n = theirs.read(&mut b)?;
                out.extend_from_slice(&b[..n]);
                Ok(n)
            });
            assert!(
                got == want,
                "cut at {cut}: {} bytes, flate2 {}",
                got.len(),
                want.len()
            );
        }
        // A flipped bit in the data, the checksum or the length.
        for at in [gz.len() / 3, gz.len() - 8, gz.len() - 2] {
            let mut bad = gz.clone();
            bad[at] ^= 0x10;
            assert!(decode_all(&bad, 64 * 1024).is_err(), "bit flipped at {at}");
        }
        // Garbage after a member, a method other than deflate, reserved flags.
        let mut after = gz.clone();
        after.extend_from_slice(b"\nnot gzip");
        let e = decode_all(&after, 64 * 1024).unwrap_err();
        assert!(e.to_string().contains("not another member"), "{e}");
        let mut method = gz.clone();
        method[2] = 7;
        assert!(decode_all(&method, 64 * 1024).is_err());
        let mut reserved = gz.clone();
        reserved[3] = 0x20;
        assert!(decode_all(&reserved, 64 * 1024).is_err());
    }

    #[test]
    fn a_reference_before_the_member_start_is_refused() {
        // A fixed-Huffman block whose first symbol is a match (length 3, distance 1): nothing
        // before it to copy from, even though the caller's buffer has bytes there.
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        // BFINAL=1, BTYPE=01; literal/length code 257 (7 bits 0000001), distance code 0
        // (5 bits 00000), end of block 256 (7 bits 0000000).
        gz.extend_from_slice(&[0x03, 0x02, 0x00, 0x00]);
        gz.extend_from_slice(&[0; 8]);
        let mut g = Gunzip::new(&gz[..]);
        let mut buf = vec![b'z'; HISTORY * 2];
        let e = g.read_after(&mut buf, HISTORY).unwrap_err();
        assert!(e.to_string().contains("corrupt deflate data"), "{e}");
        // The same stream with a literal first ('a', code 0x30 + 97 in 8 bits) decodes.
        let mut ok = gz[..10].to_vec();
        let mut bits: Vec<u8> = vec![1, 1, 0];
        let lit = 0x30u32 + 97;
        bits.extend((0..8).rev().map(|i| ((lit >> i) & 1) as u8));
        bits.extend([0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            bytes[i / 8] |= b << (i % 8);
        }
        ok.extend_from_slice(&bytes);
        ok.extend_from_slice(&crc32fast::hash(b"aaaa").to_le_bytes());
        ok.extend_from_slice(&4u32.to_le_bytes());
        let mut g = Gunzip::new(&ok[..]);
        let n = g.read_after(&mut buf, HISTORY).unwrap();
        assert_eq!(&buf[HISTORY..HISTORY + n], b"aaaa");
    }
}

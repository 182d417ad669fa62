//! The summary's chart: failures per hour, stacked by cause, as a PNG for mail clients (which
//! do not show SVG). Drawn into an RGB buffer and encoded here — bars, grid lines and digits
//! need no plotting library, font or system library — with the PNG's zlib stream from flate2.

use crate::render::summary::{Report, color};
use std::io::Write;

pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 240;

/// Digits 0–9, 3×5 pixels, one row per 3 bits.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

struct Canvas {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![255; (w * h * 3) as usize],
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        let (x0, x1) = (x0.max(0) as u32, (x1.max(0) as u32).min(self.w));
        let (y0, y1) = (y0.max(0) as u32, (y1.max(0) as u32).min(self.h));
        for y in y0..y1 {
            for x in x0..x1 {
                let i = ((y * self.w + x) * 3) as usize;
                self.px[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// A number in the 3×5 digits, `scale` pixels per dot, its right edge at `right`.
    fn number(&mut self, n: u64, right: i64, top: i64, scale: i64, c: [u8; 3]) {
        let s = n.to_string();
        let width = s.len() as i64 * 4 * scale - scale;
        let mut x = right - width;
        for ch in s.bytes() {
            let g = DIGITS[(ch - b'0') as usize];
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        let (px, py) = (x + col * scale, top + row as i64 * scale);
                        self.rect(px, py, px + scale, py + scale, c);
                    }
                }
            }
            x += 4 * scale;
        }
    }
}

/// A round axis maximum at or above `max`: 1, 2 or 5 times a power of ten.
fn nice(max: u64) -> u64 {
    let mut p = 1;
    loop {
        for m in [1, 2, 5] {
            if m * p >= max {
                return m * p;
            }
        }
        p *= 10;
    }
}

/// The chart of a report: failures per hour, stacked by cause.
pub fn hourly_png(r: &Report) -> Vec<u8> {
    let mut c = Canvas::new(WIDTH, HEIGHT);
    let (left, right, top, bottom) = (48i64, WIDTH as i64 - 8, 10i64, HEIGHT as i64 - 22);
    let grey = [0xdd, 0xdd, 0xdd];
    let ink = [0x55, 0x55, 0x55];
    let max = nice(r.hours.iter().map(|h| h.failures).max().unwrap_or(0).max(1));
    // Grid: the axis maximum, its half, and zero.
    for (value, y) in [(max, top), (max / 2, (top + bottom) / 2), (0, bottom)] {
        c.rect(left, y, right, y + 1, grey);
        c.number(value, left - 6, y - 5, 2, ink);
    }
    let n = r.hours.len().max(1) as i64;
    let slot = (right - left) / n;
    for (i, h) in r.hours.iter().enumerate() {
        let x0 = left + i as i64 * slot + 2;
        let x1 = x0 + slot - 4;
        let mut y = bottom;
        for (k, count) in h.by_cause.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            let height = ((*count as i64) * (bottom - top) / max as i64).max(1);
            let colour = r
                .causes
                .get(k)
                .map_or([0x5f, 0x63, 0x68], |cc| color(&cc.cause));
            c.rect(x0, y - height, x1, y, colour);
            y -= height;
        }
        if i % 3 == 0 {
            let hour: u64 = h.label.parse().unwrap_or(0);
            let label_right = x0 + (slot - 4) / 2 + if hour < 10 { 3 } else { 7 };
            c.number(hour, label_right, bottom + 6, 2, ink);
        }
    }
    encode(&c)
}

fn crc32(data: &[u8], crc: u32) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(data, crc32(kind, 0));
    out.extend_from_slice(&crc.to_be_bytes());
}

/// 8-bit RGB PNG, no filtering.
fn encode(c: &Canvas) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&c.w.to_be_bytes());
    ihdr.extend_from_slice(&c.h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let row = (c.w * 3) as usize;
    for y in 0..c.h as usize {
        let _ = z.write_all(&[0]);
        let _ = z.write_all(&c.px[y * row..(y + 1) * row]);
    }
    let data = z.finish().unwrap_or_default();
    chunk(&mut out, b"IDAT", &data);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_png_one() {
        // The CRC of an empty IEND chunk, as every PNG ends.
        assert_eq!(crc32(b"IEND", 0), 0xae42_6082);
        assert_eq!(nice(0), 1);
        assert_eq!(nice(7), 10);
        assert_eq!(nice(130), 200);
        assert_eq!(nice(458), 500);
    }
}

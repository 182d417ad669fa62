//! Byte comparisons for the hot path. Log fields and the literals between them are short, and
//! for a few bytes a plain loop beats a call to `memcmp`.

/// `hay.starts_with(lit)`, inlined for short literals.
#[inline(always)]
pub fn has_prefix(hay: &[u8], lit: &[u8]) -> bool {
    hay.len() >= lit.len() && eq(&hay[..lit.len()], lit)
}

/// `a == b` for short slices: whole words compared without a branch per byte (the position of
/// the first difference is unpredictable, so a byte loop mispredicts its exit).
#[inline(always)]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1 => a[0] == b[0],
        2 | 3 => {
            let x = u16::from_le_bytes([a[0], a[1]]) ^ u16::from_le_bytes([b[0], b[1]]);
            x == 0 && a[n - 1] == b[n - 1]
        }
        4..=7 => {
            let w = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4"));
            (w(a, 0) ^ w(b, 0)) | (w(a, n - 4) ^ w(b, n - 4)) == 0
        }
        8..=16 => (load(a, 0) ^ load(b, 0)) | (load(a, n - 8) ^ load(b, n - 8)) == 0,
        // `$time_local` (26 bytes) among them: four words, no loop.
        17..=32 => {
            let d = |i: usize| load(a, i) ^ load(b, i);
            d(0) | d(8) | d(n - 16) | d(n - 8) == 0
        }
        33..=64 => {
            let mut diff = load(a, n - 8) ^ load(b, n - 8);
            let mut i = 0;
            while i + 8 <= n {
                diff |= load(a, i) ^ load(b, i);
                i += 8;
            }
            diff == 0
        }
        _ => a == b,
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline(always)]
fn splat(b: u8) -> u64 {
    LO * b as u64
}

/// High bit set in each byte of `v` that is zero. Bits above the lowest zero byte may be wrong
/// (borrows), so only the lowest set bit is meaningful.
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

#[inline(always)]
fn load(h: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"))
}

/// How far the word-at-a-time search goes before handing over to `memchr`.
const SHORT: usize = 32;

/// The position of `b` in `hay`. Fields are usually short: the first bytes are searched eight
/// at a time in a register (no call, few mispredicted branches), the rest with `memchr`.
#[inline(always)]
pub fn find_byte(b: u8, hay: &[u8]) -> Option<usize> {
    let s = splat(b);
    let mut i = 0;
    while i + 8 <= hay.len() && i < SHORT {
        let m = zero_bytes(load(hay, i) ^ s);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < SHORT {
        return hay[i..].iter().position(|&c| c == b).map(|k| k + i);
    }
    memchr::memchr(b, &hay[i..]).map(|k| k + i)
}

/// The position of the first `a` followed by `b` in `hay`.
#[inline]
pub fn find_pair(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = find_byte(a, &hay[from..]) {
        let p = from + i;
        if hay.get(p + 1) == Some(&b) {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// The position of the first of two bytes in `hay`.
#[inline(always)]
pub fn find_byte2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    find_byte3(a, b, b, hay)
}

/// The position of the first of three bytes in `hay`.
#[inline(always)]
pub fn find_byte3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    let (sa, sb, sc) = (splat(a), splat(b), splat(c));
    let mut i = 0;
    while i + 8 <= hay.len() && i < SHORT {
        let w = load(hay, i);
        let m = zero_bytes(w ^ sa) | zero_bytes(w ^ sb) | zero_bytes(w ^ sc);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < SHORT {
        return hay[i..]
            .iter()
            .position(|&x| x == a || x == b || x == c)
            .map(|k| k + i);
    }
    memchr::memchr3(a, b, c, &hay[i..]).map(|k| k + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_with_the_slice_methods() {
        let long = b"abcdefghijklmnopqrstuvwxyz0123456789abcdef";
        for (h, l) in [
            (&b"abc"[..], &b"ab"[..]),
            (b"abc", b"abd"),
            (b"a", b"ab"),
            (long, long),
            (long, &long[..20]),
        ] {
            assert_eq!(has_prefix(h, l), h.starts_with(l));
            assert_eq!(eq(h, l), h == l);
        }
        // Every length each branch of `eq` takes, a difference at every place.
        let a: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..a.len() {
            assert!(eq(&a[..n], &a[..n]), "{n}");
            for k in 0..n {
                let mut b = a[..n].to_vec();
                b[k] ^= 0x20;
                assert!(!eq(&a[..n], &b), "{n} {k}");
                assert!(!has_prefix(&b, &a[..n]), "{n} {k}");
            }
        }
        let mut hay = long.to_vec();
        hay.extend_from_slice(&[b'#'; 100]);
        hay.push(b'!');
        for n in 0..hay.len() {
            let h = &hay[..n];
            for b in [b'a', b'9', b'f', b'#', b'!', b'z'] {
                assert_eq!(find_byte(b, h), memchr::memchr(b, h), "{n} {b}");
                assert_eq!(
                    find_byte3(b, b'f', b'!', h),
                    memchr::memchr3(b, b'f', b'!', h)
                );
                for c in [b'a', b'#', b'!'] {
                    assert_eq!(find_pair(h, b, c), memchr::memmem::find(h, &[b, c]));
                }
            }
        }
    }
}

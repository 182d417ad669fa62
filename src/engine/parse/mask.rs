//! Where three chosen bytes are in a line, found 64 bytes at a time: each block of the line is
//! classified once into one bit mask per byte (AVX2 when the CPU has it, else SSE2 on x86-64,
//! whose baseline it is; a plain loop elsewhere — all give the same masks), and every later
//! search in that block is a shift and a count of trailing zeros. A tokenizer that walks a line
//! field by field (spaces, quotes, backslashes) then costs a few instructions per field instead
//! of a search each.
//!
//! Two sources of masks: [`Masks`] classifies a line's blocks as searches reach them, and
//! [`LineMasks`] views the masks a [`crate::engine::lines::LineReader`] computed for its whole
//! buffer as it read it (in the same pass as its newlines). [`Bytes`] classifies the 64 bytes
//! of a buffer from any place in a line: the windows nginx's quick walk reads, for which the
//! buffer needs only its newlines ([`Classes::Newlines`]: listed from the bytes by
//! [`newline_list_in`] as the lines are taken, no masks stored).

/// One of the three bytes a [`Masks`] looks for, by its place in the set, or several of them.
pub type Which = u8;
pub const FIRST: Which = 1;
pub const SECOND: Which = 2;
pub const THIRD: Which = 4;

pub const BLOCK: usize = 64;

/// The masks of one line, computed block by block as searches reach them.
pub struct Masks<'a> {
    line: &'a [u8],
    set: [u8; 3],
    /// The block `masks` belong to (`usize::MAX`: none yet).
    block: usize,
    masks: [u64; 3],
}

/// Searches through masks of three bytes (see [`select`]).
pub trait Find {
    /// The first position at or after `from` that holds one of the bytes `sel` selects.
    fn find_in(&mut self, sel: &[u64; 3], from: usize) -> Option<usize>;
    /// The last position of the line that holds one of the bytes `sel` selects.
    fn last_in(&mut self, sel: &[u64; 3]) -> Option<usize>;
    /// Where the line starts in the blocks of [`Find::block`] (0, or its place in a buffer),
    /// and where it ends.
    fn bounds(&self) -> (usize, usize);
    /// The mask of the bytes `sel` selects in block `w`, in the coordinates of
    /// [`Find::bounds`]: bit `i` is the line's byte `w * 64 + i - start`. Bits before the
    /// line's start or past its end may be set. `w * 64` must be below the line's end.
    fn block(&mut self, w: usize, sel: &[u64; 3]) -> u64;
    /// The masks of the set's three bytes in block `w`, as [`Find::block`] gives them one at
    /// a time.
    #[inline(always)]
    fn blocks(&mut self, w: usize) -> [u64; 3] {
        [FIRST, SECOND, THIRD].map(|k| self.block(w, &select(k)))
    }
}

/// The positions of a selection of bytes from a place in a line onwards, one after the other:
/// a field costs a count of trailing zeros, not a search. Every call passes the same selection.
#[derive(Clone, Copy, Debug)]
pub struct Scan {
    /// The block of `bits`, and its bits not yet returned (in block coordinates); `w` is
    /// [`Scan::DONE`] past the line's end.
    w: usize,
    bits: u64,
    start: usize,
    end: usize,
}

impl Scan {
    const DONE: usize = usize::MAX / BLOCK;

    /// The positions of `sel`'s bytes at or after `from`.
    #[inline(always)]
    pub fn new(masks: &mut impl Find, sel: &[u64; 3], from: usize) -> Scan {
        let (start, end) = masks.bounds();
        let mut s = Scan {
            w: Scan::DONE,
            bits: 0,
            start,
            end,
        };
        s.seek(masks, sel, from);
        s
    }

    /// Goes on from `from` instead (forwards or back).
    #[inline(always)]
    pub fn seek(&mut self, masks: &mut impl Find, sel: &[u64; 3], from: usize) {
        let at = self.start + from;
        if at >= self.end {
            self.w = Scan::DONE;
            self.bits = 0;
            return;
        }
        self.w = at / BLOCK;
        self.bits = masks.block(self.w, sel) >> (at % BLOCK) << (at % BLOCK);
    }

    /// The next position, or `None` at the line's end.
    #[inline(always)]
    pub fn next(&mut self, masks: &mut impl Find, sel: &[u64; 3]) -> Option<usize> {
        while self.bits == 0 {
            if self.w == Scan::DONE || (self.w + 1) * BLOCK >= self.end {
                self.w = Scan::DONE;
                return None;
            }
            self.w += 1;
            self.bits = masks.block(self.w, sel);
        }
        let p = self.w * BLOCK + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        if p >= self.end {
            self.w = Scan::DONE;
            self.bits = 0;
            return None;
        }
        Some(p - self.start)
    }
}

impl<'a> Masks<'a> {
    pub fn new(line: &'a [u8], set: [u8; 3]) -> Masks<'a> {
        Masks {
            line,
            set,
            block: usize::MAX,
            masks: [0; 3],
        }
    }

    /// The mask of the bytes `sel` selects in block `b`.
    #[inline(always)]
    fn block_mask(&mut self, b: usize, sel: &[u64; 3]) -> u64 {
        if self.block != b {
            self.load(b);
        }
        (self.masks[0] & sel[0]) | (self.masks[1] & sel[1]) | (self.masks[2] & sel[2])
    }

    #[inline(never)]
    fn load(&mut self, b: usize) {
        self.block = b;
        let (line, start) = (self.line, b * BLOCK);
        self.masks = if let Some(block) = line.get(start..).and_then(|r| r.first_chunk()) {
            classify(block, self.set)
        } else if start >= line.len() {
            [0; 3]
        } else if let Some(block) = line.last_chunk::<BLOCK>() {
            // The last, partial block: the line's last 64 bytes, shifted so that bit 0 is
            // `start` (the bits beyond the line's end come in as zeros).
            let shift = BLOCK - (line.len() - start);
            classify(block, self.set).map(|m| m >> shift)
        } else {
            let mut padded = [0u8; BLOCK];
            padded[..line.len() - start].copy_from_slice(&line[start..]);
            let keep = (1u64 << (line.len() - start)) - 1;
            classify(&padded, self.set).map(|m| m & keep)
        };
    }
}

impl Find for Masks<'_> {
    #[inline(always)]
    fn find_in(&mut self, sel: &[u64; 3], from: usize) -> Option<usize> {
        let mut b = from / BLOCK;
        if b * BLOCK >= self.line.len() {
            return None;
        }
        let mut m = self.block_mask(b, sel) >> (from % BLOCK) << (from % BLOCK);
        while m == 0 {
            b += 1;
            if b * BLOCK >= self.line.len() {
                return None;
            }
            m = self.block_mask(b, sel);
        }
        Some(b * BLOCK + m.trailing_zeros() as usize)
    }

    #[inline]
    fn last_in(&mut self, sel: &[u64; 3]) -> Option<usize> {
        let mut b = self.line.len().div_ceil(BLOCK);
        while b > 0 {
            b -= 1;
            let m = self.block_mask(b, sel);
            if m != 0 {
                return Some(b * BLOCK + 63 - m.leading_zeros() as usize);
            }
        }
        None
    }

    #[inline(always)]
    fn bounds(&self) -> (usize, usize) {
        (0, self.line.len())
    }

    #[inline(always)]
    fn block(&mut self, w: usize, sel: &[u64; 3]) -> u64 {
        self.block_mask(w, sel)
    }

    #[inline(always)]
    fn blocks(&mut self, w: usize) -> [u64; 3] {
        if self.block != w {
            self.load(w);
        }
        self.masks
    }
}

/// What a walk needs of its line's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classes {
    /// Its newlines only, listed from the bytes ([`newline_list_in`]), no masks stored: the
    /// walk reads windows of the bytes ([`Bytes`]).
    Newlines,
    /// Masks of its newlines and of the three bytes of a set, made in one pass
    /// ([`classify_all`]), for walks that search the buffer's masks ([`LineMasks`]).
    With([u8; 3]),
}

impl Classes {
    /// The buffer's masks, for a walk that searches them: only when they hold the set's bytes.
    pub fn searchable(self, words: &[[u64; 4]]) -> Option<&[[u64; 4]]> {
        matches!(self, Classes::With(_)).then_some(words)
    }
}

/// A line inside a buffer, for the short way ([`crate::engine::parse::Parser::answered_at`]):
/// the buffer, where the line starts in it, and the buffer's masks when they hold the bytes of
/// the parser's set ([`Classes::searchable`]).
#[derive(Clone, Copy)]
pub struct InBuffer<'a> {
    pub buf: &'a [u8],
    pub start: usize,
    pub words: Option<&'a [[u64; 4]]>,
}

/// The instructions the code that reads windows of the bytes ([`Bytes`]) is compiled for:
/// `Cpu<true>`, AVX2 and BMI1, is made only on a CPU that has them ([`Cpu::detect`]), and
/// given to line loops that [`on_cpu`] compiles for them: nginx's quick walk is then inlined
/// into the loop, its windows classified by AVX2 instructions. `Cpu<false>` ([`Cpu::ANY`]):
/// code compiled for every CPU, which calls the quick walk compiled for AVX2 when the CPU has
/// it (see `AccessParser::answered_quickly`).
#[derive(Clone, Copy, Debug)]
pub struct Cpu<const AVX2: bool>(());

impl Cpu<false> {
    /// Code compiled for every CPU.
    pub const ANY: Cpu<false> = Cpu(());
}

impl Cpu<true> {
    /// AVX2 and BMI1, when the CPU has them.
    pub fn detect() -> Option<Cpu<true>> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi1")
        {
            return Some(Cpu(()));
        }
        None
    }
}

impl<const AVX2: bool> Cpu<AVX2> {
    /// The windows of the line at `start` of `buf` (by AVX2 instructions with `Cpu<true>`).
    #[inline(always)]
    pub fn bytes(self, buf: &[u8], start: usize, set: [u8; 3]) -> Bytes<'_, AVX2> {
        Bytes { buf, start, set }
    }
}

/// A line loop, run for a [`Cpu`] by [`on_cpu`].
pub trait OnCpu {
    type Out;
    /// The loop (marked `#[inline(always)]`, to be compiled into [`on_cpu`]'s caller of it).
    fn run<const AVX2: bool>(self, cpu: Cpu<AVX2>) -> Self::Out;
}

/// Runs `job` compiled for AVX2 and BMI1 when the CPU has them (with [`Cpu<true>`]), else for
/// every CPU.
#[inline]
pub fn on_cpu<J: OnCpu>(job: J) -> J::Out {
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = Cpu::detect() {
        // SAFETY: the CPU has AVX2 and BMI1 (`Cpu<true>` is made only then).
        return unsafe { on_avx2(job, cpu) };
    }
    job.run(Cpu::ANY)
}

/// [`on_cpu`]'s job compiled for AVX2 and BMI1.
///
/// # Safety
/// The CPU must have them (`cpu` says it has).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1")]
unsafe fn on_avx2<J: OnCpu>(job: J, cpu: Cpu<true>) -> J::Out {
    job.run(cpu)
}

/// Windows of a line inside a buffer, classified from the buffer's bytes when read; with
/// `AVX2`, by AVX2 instructions (made by [`Cpu::bytes`]).
pub struct Bytes<'a, const AVX2: bool = false> {
    buf: &'a [u8],
    start: usize,
    set: [u8; 3],
}

impl<'a> Bytes<'a> {
    pub fn new(buf: &'a [u8], start: usize, set: [u8; 3]) -> Bytes<'a> {
        Bytes { buf, start, set }
    }
}

impl<const AVX2: bool> Bytes<'_, AVX2> {
    /// The bytes whose masks the windows hold.
    pub fn set(&self) -> [u8; 3] {
        self.set
    }

    /// The masks of the set's three bytes over the 64 bytes of the buffer from the line's
    /// byte `at`: bit `i` is byte `at + i`. Bits past the line's end are the buffer's next
    /// bytes': the caller checks what it finds against the line's length. `None` when the 64
    /// bytes run past the buffer's end (a line at the very end of a full buffer: the caller
    /// leaves it to a walk of its own — no call on this path, so the caller keeps its
    /// registers).
    #[inline(always)]
    pub fn window(&self, at: usize) -> Option<[u64; 3]> {
        let b: &[u8; BLOCK] = self.buf.get(self.start + at..)?.first_chunk()?;
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: a `Bytes<true>` is made only on a CPU with AVX2 (by a `Cpu<true>`).
            return Some(unsafe { classify_avx2(b, self.set) });
        }
        Some(classify(b, self.set))
    }
}

/// The places of the newlines `words` mark (each entry's first mask, see [`classify_all`])
/// from byte `pos` on, in `ends[..n]` (`n` returned): one word at a time, its first newline
/// written whether it has one or not (no branch that guesses where lines end: one that a loop
/// over each word's newlines took at nearly every line), the others, rare, after it.
#[inline(always)]
pub fn newline_list(words: &[[u64; 4]], pos: usize, ends: &mut Vec<usize>) -> usize {
    list_newlines(pos, words.len(), |w| words[w][0], ends)
}

/// The places of the newlines of `buf[pos..end]` in `ends[..n]` (`n` returned), as
/// [`newline_list`] finds them, from the bytes themselves: each word's mask made and used at
/// once, none stored (for a buffer whose masks would hold nothing else). `buf` holds the whole
/// 64-byte word `end` falls in (the newlines after `end` in it are left out).
pub fn newline_list_in(buf: &[u8], pos: usize, end: usize, ends: &mut Vec<usize>) -> usize {
    // (Not `words * 64 <= buf.len()`, which could wrap.)
    assert!(
        end.div_ceil(BLOCK) <= buf.len() / BLOCK,
        "the last word is in the buffer"
    );
    #[cfg(target_arch = "x86_64")]
    if Cpu::detect().is_some() {
        // SAFETY: the CPU has AVX2 and BMI1 (a `Cpu<true>` is made only then), and `buf`
        // holds the word `end` falls in (asserted above).
        return unsafe { newline_list_avx2(buf, pos, end, ends) };
    }
    newline_list_scalar(buf, pos, end, ends)
}

/// [`newline_list_in`] without AVX2.
fn newline_list_scalar(buf: &[u8], pos: usize, end: usize, ends: &mut Vec<usize>) -> usize {
    let n = list_newlines(pos, end.div_ceil(BLOCK), |w| newline_mask(buf, w), ends);
    below(end, ends, n)
}

/// [`newline_list_in`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2 and BMI1, and `buf` must hold the whole 64-byte word `end` falls in
/// (`end.div_ceil(64) * 64 <= buf.len()`): its words are loaded unchecked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1")]
unsafe fn newline_list_avx2(buf: &[u8], pos: usize, end: usize, ends: &mut Vec<usize>) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let nl = _mm256_set1_epi8(b'\n' as i8);
    let mask = |w: usize| {
        // SAFETY: word `w` (< `end.div_ceil(64)`) is in `buf` (this function's `# Safety`);
        // `loadu` needs no alignment.
        let (lo, hi) = unsafe {
            let p = buf.as_ptr().add(w * BLOCK).cast::<__m256i>();
            (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
        };
        let a = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, nl)) as u32 as u64;
        let b = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, nl)) as u32 as u64;
        a | b << 32
    };
    let n = list_newlines(pos, end.div_ceil(BLOCK), mask, ends);
    below(end, ends, n)
}

/// The newline mask of the 64-byte word `w` of `bytes`.
#[inline(always)]
fn newline_mask(bytes: &[u8], w: usize) -> u64 {
    let block = bytes[w * BLOCK..][..BLOCK].try_into().expect("64 bytes");
    classify(block, [b'\n'])[0]
}

/// The first `n` of `ends` less those from `end` on (in the last word, after the bytes).
fn below(end: usize, ends: &[usize], mut n: usize) -> usize {
    while n > 0 && ends[n - 1] >= end {
        n -= 1;
    }
    n
}

/// The loop of [`newline_list`] over words `pos / 64` up to `words` (not included), the mask
/// of word `w` being `mask(w)`.
#[inline(always)]
fn list_newlines(
    pos: usize,
    words: usize,
    mask: impl Fn(usize) -> u64,
    ends: &mut Vec<usize>,
) -> usize {
    // Room for a newline a word, and 64 more: the writes below need no other check.
    if ends.len() < words + 64 {
        ends.resize(words + 64, 0);
    }
    let mut w = pos / 64;
    if w >= words {
        return 0;
    }
    let mut n = 0;
    let mut m = mask(w) >> (pos % 64) << (pos % 64);
    let mut out = ends.as_mut_ptr();
    // Word `w`'s newlines (its mask `m`).
    let mut one = |m: u64, w: usize, n: &mut usize| {
        let base = w * 64;
        // SAFETY: `n < ends.len()`: at each word's start `ends.len() > n + words - w` (room for
        // a newline a word, kept by `more_newlines` for the words after its own), and
        // `words > w`. (Written through a pointer: the vector's length and place are not read
        // again at each word.)
        unsafe { *out.add(*n) = base + m.trailing_zeros() as usize };
        *n += (m != 0) as usize;
        let rest = m & m.wrapping_sub(1);
        if rest != 0 {
            *n = more_newlines(rest, base, *n, words - w, ends);
            out = ends.as_mut_ptr();
        }
    };
    // Two words a turn.
    loop {
        if w + 1 >= words {
            one(m, w, &mut n);
            return n;
        }
        let next = mask(w + 1);
        one(m, w, &mut n);
        one(next, w + 1, &mut n);
        w += 2;
        if w >= words {
            return n;
        }
        m = mask(w);
    }
}

/// [`newline_list`]'s newlines after a word's first (`m`), written from `ends[n]` on, with the
/// room kept for the `left` words after.
#[inline(never)]
fn more_newlines(
    mut m: u64,
    base: usize,
    mut n: usize,
    left: usize,
    ends: &mut Vec<usize>,
) -> usize {
    if ends.len() < n + 64 + left {
        ends.resize((n + 64 + left).max(2 * ends.len()), 0);
    }
    while m != 0 {
        ends[n] = base + m.trailing_zeros() as usize;
        n += 1;
        m &= m - 1;
    }
    n
}

/// The masks of one line inside a buffer classified as a whole: one entry per 64 bytes of the
/// buffer, the newline mask first and then the three bytes of the set.
pub struct LineMasks<'a> {
    words: &'a [[u64; 4]],
    /// Where the line starts in the buffer, and its length.
    start: usize,
    len: usize,
}

impl<'a> LineMasks<'a> {
    /// `words` must cover the buffer up to `start + len`.
    pub fn new(words: &'a [[u64; 4]], start: usize, len: usize) -> LineMasks<'a> {
        debug_assert!(words.len() * BLOCK >= start + len);
        LineMasks { words, start, len }
    }

    #[inline(always)]
    fn word(&self, w: usize, sel: &[u64; 3]) -> u64 {
        let m = &self.words[w];
        (m[1] & sel[0]) | (m[2] & sel[1]) | (m[3] & sel[2])
    }
}

impl Find for LineMasks<'_> {
    #[inline(always)]
    fn find_in(&mut self, sel: &[u64; 3], from: usize) -> Option<usize> {
        if from >= self.len {
            return None;
        }
        let at = self.start + from;
        let end = self.start + self.len;
        let mut w = at / BLOCK;
        let mut m = self.word(w, sel) >> (at % BLOCK) << (at % BLOCK);
        while m == 0 {
            w += 1;
            if w * BLOCK >= end {
                return None;
            }
            m = self.word(w, sel);
        }
        let p = w * BLOCK + m.trailing_zeros() as usize;
        (p < end).then(|| p - self.start)
    }

    #[inline]
    fn last_in(&mut self, sel: &[u64; 3]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let end = self.start + self.len;
        let mut w = (end - 1) / BLOCK;
        // Bits at or beyond the line's end belong to the next lines.
        let mut m = self.word(w, sel) & (u64::MAX >> (BLOCK - 1 - (end - 1) % BLOCK));
        loop {
            if m != 0 {
                let p = w * BLOCK + 63 - m.leading_zeros() as usize;
                return (p >= self.start).then(|| p - self.start);
            }
            if w * BLOCK <= self.start {
                return None;
            }
            w -= 1;
            m = self.word(w, sel);
        }
    }

    #[inline(always)]
    fn bounds(&self) -> (usize, usize) {
        (self.start, self.start + self.len)
    }

    #[inline(always)]
    fn block(&mut self, w: usize, sel: &[u64; 3]) -> u64 {
        self.word(w, sel)
    }

    #[inline(always)]
    fn blocks(&mut self, w: usize) -> [u64; 3] {
        let m = &self.words[w];
        [m[1], m[2], m[3]]
    }
}

/// [`classify_all`] of the newlines and `set`'s three bytes: a buffer's masks as line walks
/// read them ([`Classes::With`]; the newlines first).
pub fn classify_lines(bytes: &[u8], set: [u8; 3], out: &mut [[u64; 4]]) {
    classify_all(bytes, [b'\n', set[0], set[1], set[2]], out);
}

/// Classifies `bytes` (a multiple of 64 long) into `out`, one entry per 64 bytes: for each, the
/// masks of `set`'s four bytes.
pub fn classify_all(bytes: &[u8], set: [u8; 4], out: &mut [[u64; 4]]) {
    assert!(bytes.len().is_multiple_of(BLOCK) && out.len() * BLOCK >= bytes.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (detected just above).
        unsafe { classify_all_avx2(bytes, set, out) };
        return;
    }
    for (block, o) in bytes.chunks_exact(BLOCK).zip(out.iter_mut()) {
        *o = classify(block.try_into().expect("64 bytes"), set);
    }
}

/// [`classify`] by AVX2 instructions: inlined into callers compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn classify_avx2(block: &[u8; BLOCK], set: [u8; 3]) -> [u64; 3] {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    // SAFETY: the caller's CPU has AVX2; both 32-byte loads are inside `block`, and `loadu`
    // needs no alignment.
    unsafe {
        let p = block.as_ptr().cast::<__m256i>();
        let (lo, hi) = (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)));
        macro_rules! mask {
            ($c:expr) => {{
                let s = _mm256_set1_epi8($c as i8);
                let a = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, s)) as u32 as u64;
                let b = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, s)) as u32 as u64;
                a | b << 32
            }};
        }
        [mask!(set[0]), mask!(set[1]), mask!(set[2])]
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn classify_all_avx2(bytes: &[u8], set: [u8; 4], out: &mut [[u64; 4]]) {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let [s0, s1, s2, s3] = set.map(|b| _mm256_set1_epi8(b as i8));
    let n = bytes.len() / BLOCK;
    for (k, o) in out[..n].iter_mut().enumerate() {
        // SAFETY: both 32-byte loads are inside `bytes` (k < n, 64 bytes per block); `loadu`
        // needs no alignment.
        let (lo, hi) = unsafe {
            let p = bytes.as_ptr().add(k * BLOCK).cast::<__m256i>();
            (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
        };
        macro_rules! mask {
            ($s:expr) => {{
                let a = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, $s)) as u32 as u64;
                let b = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, $s)) as u32 as u64;
                a | b << 32
            }};
        }
        *o = [mask!(s0), mask!(s1), mask!(s2), mask!(s3)];
    }
}

/// Bit `i` set when bit `i` of `x` and the bits below it hold an odd number of ones: over the
/// mask of a block's quotes, the bytes from an opening quote (included) to its closing quote
/// (not included). Six shifts, on every CPU.
#[inline(always)]
pub fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes a backslash escapes in a block, given the block's backslashes and whether the
/// block before ended with an escape (`carry`, bit 0; updated for the next block): each run of
/// backslashes escapes every other one of its own and, when it is of odd length, the byte after
/// it — what a walk skipping the byte after each backslash finds (simdjson's escape scanner).
#[inline(always)]
pub fn escaped(backslashes: u64, carry: &mut u64) -> u64 {
    const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
    if backslashes == 0 {
        return std::mem::take(carry);
    }
    let potential = backslashes & !*carry;
    let code = ((potential << 1) | ODD).wrapping_sub(potential) ^ ODD;
    let escaped = code ^ (backslashes | *carry);
    *carry = (code & backslashes) >> 63;
    escaped
}

/// The selector of [`Find::find_in`] for the bytes of the set `which` names.
pub const fn select(which: Which) -> [u64; 3] {
    const fn bit(which: Which, k: u8) -> u64 {
        if which & (1 << k) != 0 { u64::MAX } else { 0 }
    }
    [bit(which, 0), bit(which, 1), bit(which, 2)]
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn classify<const N: usize>(block: &[u8; BLOCK], set: [u8; N]) -> [u64; N] {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of x86-64's baseline, so these intrinsics are always available;
    // each load reads 16 bytes inside `block` (k < 4) and `loadu` needs no alignment.
    unsafe {
        let splat = set.map(|b| _mm_set1_epi8(b as i8));
        let mut out = [0u64; N];
        for k in 0..BLOCK / 16 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
            for (o, s) in out.iter_mut().zip(&splat) {
                let bits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, *s)) as u32 as u64;
                *o |= bits << (16 * k);
            }
        }
        out
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn classify<const N: usize>(block: &[u8; BLOCK], set: [u8; N]) -> [u64; N] {
    classify_scalar(block, set)
}

/// The masks by a plain loop: what every other architecture uses, and what the SSE2 masks are
/// checked against.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn classify_scalar<const N: usize>(block: &[u8; BLOCK], set: [u8; N]) -> [u64; N] {
    let mut out = [0u64; N];
    for (i, &c) in block.iter().enumerate() {
        for (o, &s) in out.iter_mut().zip(&set) {
            *o |= u64::from(c == s) << i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// The escapes and quoted stretches of masks agree with a walk that skips the byte after
    /// each backslash and toggles at each quote it does not skip, across blocks.
    #[test]
    fn escapes_and_stretches_are_those_of_a_walk() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            // Four blocks, backslashes and quotes dense or sparse.
            let bytes: Vec<u8> = (0..256)
                .map(|_| match rand() % 8 {
                    0..=2 => b'\\',
                    3 => b'"',
                    _ => b'a',
                })
                .collect();
            let (mut want_escaped, mut want_inside) = (vec![false; 256], vec![false; 256]);
            let (mut skip, mut inside) = (false, false);
            for (i, &b) in bytes.iter().enumerate() {
                want_escaped[i] = skip;
                if skip {
                    skip = false;
                } else if b == b'\\' {
                    skip = true;
                } else if b == b'"' {
                    inside = !inside;
                }
                // From an opening quote (included) to its closing quote (not included).
                want_inside[i] = inside;
            }
            let (mut carry, mut open) = (0u64, 0u64);
            for w in 0..4 {
                let block = &bytes[w * 64..w * 64 + 64];
                let bits = |c: u8| (0..64).fold(0u64, |m, i| m | u64::from(block[i] == c) << i);
                let escaped = escaped(bits(b'\\'), &mut carry);
                let quotes = bits(b'"') & !escaped;
                let inside = prefix_xor(quotes) ^ open;
                open = ((inside as i64) >> 63) as u64;
                for (i, &c) in block.iter().enumerate() {
                    let k = w * 64 + i;
                    if c == b'\\' || c == b'"' || want_escaped[k] {
                        assert_eq!(escaped >> i & 1 == 1, want_escaped[k], "escape at {k}");
                    }
                    if c != b'\\' {
                        assert_eq!(inside >> i & 1 == 1, want_inside[k], "stretch at {k}");
                    }
                }
            }
        }
    }

    use super::*;

    #[test]
    fn the_newline_list_has_every_newline_from_where_it_starts() {
        // Lines of every length from none (64 newlines a word, past the list's first room)
        // to longer than a word, and no newline at all.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut text = Vec::new();
        for k in 0..600 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = match k / 100 {
                0 => 0,
                1 => (seed % 3) as usize,
                2 => (seed % 200) as usize,
                _ => (seed % 80) as usize,
            };
            text.extend(std::iter::repeat_n(b'x', len));
            text.push(b'\n');
        }
        text.extend([b'y'; 130]);
        let mut words = vec![[0u64; 4]; text.len().div_ceil(64)];
        let mut padded = text.clone();
        padded.resize(words.len() * 64, 0);
        classify_all(&padded, [b'\n', b' ', b'"', b','], &mut words);
        let mut ends = Vec::new();
        for pos in [0, 1, 63, 64, 65, 700, text.len() - 131, text.len() - 1] {
            let n = newline_list(&words, pos, &mut ends);
            let want: Vec<usize> = (pos..text.len()).filter(|&i| text[i] == b'\n').collect();
            assert_eq!(ends[..n], want[..], "from {pos}");
        }
        assert_eq!(newline_list(&words[..0], 0, &mut ends), 0);
        // From the bytes, up to every end (newlines after it in its word left out), the
        // bytes after the end newlines and not.
        for after in [b'\n', b'z'] {
            let mut buf = text.clone();
            buf.resize(text.len().next_multiple_of(64) + 64, after);
            for w in 0..buf.len() / 64 {
                let want = (0..64).fold(0u64, |m, i| m | u64::from(buf[64 * w + i] == b'\n') << i);
                assert_eq!(newline_mask(&buf, w), want, "word {w}");
            }
            for pos in [0, 1, 63, 64, 65, 700, text.len() - 131, text.len() - 1] {
                for end in [pos, pos + 1, pos + 63, pos + 64, pos + 130, text.len()] {
                    let end = end.min(text.len());
                    let want: Vec<usize> = (pos..end).filter(|&i| text[i] == b'\n').collect();
                    let n = newline_list_in(&buf, pos, end, &mut ends);
                    assert_eq!(ends[..n], want[..], "from {pos} to {end}");
                    let n = newline_list_scalar(&buf, pos, end, &mut ends);
                    assert_eq!(ends[..n], want[..], "from {pos} to {end}, without AVX2");
                }
            }
        }
    }

    #[test]
    fn windows_of_the_bytes_are_their_masks_up_to_the_buffers_end() {
        let set = [b' ', b'"', b','];
        let buf: Vec<u8> = (0..300u32)
            .map(|i| b" \",x\n"[(i * 7 % 5) as usize] ^ u8::from(i % 11 == 0))
            .collect();
        for start in [0, 1, 63, 64, 200] {
            let w = Bytes::new(&buf, start, set);
            for at in 0..buf.len() - start + 2 {
                // None where the 64 bytes run past the buffer.
                let want = (start + at + 64 <= buf.len()).then(|| {
                    std::array::from_fn::<u64, 3, _>(|k| {
                        (0..64)
                            .filter(|&i| buf.get(start + at + i) == Some(&set[k]))
                            .fold(0, |m, i| m | 1 << i)
                    })
                });
                assert_eq!(w.window(at), want, "{start} {at}");
                #[cfg(target_arch = "x86_64")]
                if let Some(cpu) = Cpu::detect() {
                    assert_eq!(
                        cpu.bytes(&buf, start, set).window(at),
                        want,
                        "AVX2 {start} {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn masks_agree_with_a_plain_search() {
        // Every length around the block size, every byte value, the bytes at both ends.
        let set = [b' ', b'"', b'\\'];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let line: Vec<u8> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    match seed % 5 {
                        0 => set[(seed >> 8) as usize % 3],
                        _ => (seed >> 16) as u8 ^ (i as u8),
                    }
                })
                .collect();
            let mut masks = Masks::new(&line, set);
            for which in 1..8u8 {
                for from in 0..=len {
                    let want = (from..len)
                        .find(|&i| (0..3).any(|k| which & (1 << k) != 0 && line[i] == set[k]));
                    let mut whole = vec![[0u64; 4]; len.div_ceil(64) + 1];
                    let mut padded = line.clone();
                    padded.resize(whole.len() * 64, 0);
                    classify_lines(&padded, set, &mut whole);
                    let mut view = LineMasks::new(&whole, 0, len);
                    assert_eq!(view.find_in(&select(which), from), want);
                    let got = masks.find_in(&select(which), from);
                    assert_eq!(got, want, "{len} {which} {from}");
                }
                let last = (0..len)
                    .rev()
                    .find(|&i| (0..3).any(|k| which & (1 << k) != 0 && line[i] == set[k]));
                assert_eq!(masks.last_in(&select(which)), last, "{len} {which}");
                // A line inside a buffer, not at its start: the view sees only its own bytes.
                for lead in [1usize, 63, 64, 70] {
                    let mut buf = vec![b' '; lead];
                    buf.extend_from_slice(&line);
                    buf.extend_from_slice(b" \" \"\\");
                    let mut words = vec![[0u64; 4]; buf.len().div_ceil(64)];
                    buf.resize(words.len() * 64, b'"');
                    classify_lines(&buf, set, &mut words);
                    let mut view = LineMasks::new(&words, lead, len);
                    assert_eq!(view.last_in(&select(which)), last, "{lead} {len} {which}");
                    let first = (0..len)
                        .find(|&i| (0..3).any(|k| which & (1 << k) != 0 && line[i] == set[k]));
                    assert_eq!(view.find_in(&select(which), 0), first);
                }
            }
        }
    }

    #[test]
    fn the_simd_masks_are_the_plain_ones() {
        let mut block = [0u8; BLOCK];
        for round in 0..256u32 {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (round as usize * 31 + i * 7) as u8 ^ (i as u8 >> 2);
            }
            for set in [
                [b' ', b'"', b'\\'],
                [0, 255, 128],
                [block[0], block[63], block[17]],
            ] {
                assert_eq!(classify(&block, set), classify_scalar(&block, set));
                let four = [set[0], set[1], set[2], b'\n'];
                let want = classify_scalar(&block, four);
                let mut out = [[0u64; 4]; 1];
                classify_all(&block, four, &mut out);
                assert_eq!(out[0], want);
                // Every path this CPU can run, not only the one it picks.
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has AVX2.
                        unsafe { classify_all_avx2(&block, four, &mut out) };
                        assert_eq!(out[0], want);
                    }
                }
            }
        }
    }
}

//! The short walk of an nginx access-log line whose request did not fail: the fields up to the
//! last one such a line needs, found through the line's masks of spaces, quotes and one more
//! separator ([`super::mask`]) instead of a search per field, and the quoted fields it does not
//! need (referer, user agent) jumped over.
//!
//! It reads exactly what [`LogFormat::extract`](super::nginx_access::LogFormat) reads for such a
//! line, or gives up (`None`) and leaves the line to it: anything unusual — a failed request, a
//! literal not where the first search finds it, a jump that does not land — is read the long
//! way. The tests and the `nginx_access` fuzz target compare the two on every line they see.

use super::bytes::{self, has_prefix};
use super::mask::{self, Find, Scan};
use super::nginx_access::{Escape, Field, Fields, Var, find_literal};
use super::upstream;
use crate::engine::event::Span;

/// A `log_format` compiled for the short walk.
#[derive(Clone, Debug)]
pub(super) struct Walk {
    lead: Box<[u8]>,
    /// The bytes the masks find: a space, a quote, and the commonest other first byte of the
    /// literals between fields — or, for the straight walk, the comma of upstream lists.
    set: [u8; 3],
    /// The fields up to the last one an answered request needs.
    steps: Box<[Step]>,
    /// After `$status`: the field whose literal holds the line's last quote, and the bytes of
    /// that literal after the quote.
    jump: Option<(usize, Box<[u8]>)>,
    /// Whether the format starts as `combined` does (`$remote_addr - $remote_user
    /// [$time_local] "$request" `): those four fields are read in one straight stretch.
    combined_start: bool,
    /// The straight walk, for formats that start as `combined` and go on with `$status `,
    /// then (when an answered request needs more) the quoted fields jumped over and fields
    /// separated by single spaces: what each of those fields is, in order.
    straight: Option<Straight>,
    /// The straight walk's commonest shape, read from windows of a buffer's bytes first.
    quick: Option<Quick>,
}

/// The bytes the masks of a straight walk find (see [`Walk::set`]), so those of every walk
/// with the quick shape: spaces, quotes and the comma of upstream lists.
pub(super) const STRAIGHT_SET: [u8; 3] = [b' ', b'"', b','];

/// A straight walk whose jump (if any) lands on `" "` and whose tail's fields each end at a
/// literal of one space, perhaps between brackets (`] [`, ` [`, `] `) — `combined`, `main`,
/// `gatewatch`, ingress-nginx's `upstreaminfo` — read from 64-byte windows of the buffer
/// ([`mask::Bytes::window`], classified as they are read): the spaces of each stretch of the
/// line found from one window, not by a search each, and only what an answered request is made of kept. Anything
/// the windows do not settle (a field running past one, a failed request) is left to the
/// straight walk, which reads the line as before.
#[derive(Clone, Debug)]
struct Quick {
    jump: bool,
    /// The tail's fields read (up to the last one needed).
    fields: usize,
    /// Which of them is `$host`, which `$upstream_addr` and which ingress-nginx's
    /// `$proxy_upstream_name` ([`Quick::NONE`] for none), and what each field is (one of
    /// [`Quick::HOST`], [`Quick::UPSTREAM`], [`Quick::SERVICE`], else 0).
    host: usize,
    upstream: usize,
    service: usize,
    roles: [u8; Quick::MAX],
    /// Which of them are upstream lists (bit `k` for field `k`): one item each, or left to
    /// the straight walk (see [`Tail::list`]).
    lists: u64,
    /// Which of them end at a literal other than one space (bit `k` for field `k`): field
    /// `k`'s literal is `literals[k]`, its space at `literals[k].space`.
    bracketed: u64,
    literals: [Literal; Quick::MAX],
    /// Whether a field ends at such a literal or is the service: the tail is read by
    /// [`quick_bracketed`].
    general: bool,
}

/// The literal after a field of a [`Quick`] tail: up to four bytes, one of them a space.
#[derive(Clone, Copy, Debug, Default)]
struct Literal {
    /// Its bytes, little-endian, and the mask of as many bytes.
    word: u32,
    mask: u32,
    len: u8,
    /// Where its space is.
    space: u8,
}

impl Literal {
    /// Whether `line` has the literal at `at`.
    #[inline(always)]
    fn at(&self, line: &[u8], at: usize) -> bool {
        let got = match line.get(at..at + 4) {
            Some(b) => u32::from_le_bytes(b.try_into().expect("4 bytes")),
            // (Near the line's end: as many bytes as there are.)
            None => line
                .get(at..)
                .unwrap_or_default()
                .iter()
                .rev()
                .fold(0, |w, &b| w << 8 | b as u32),
        };
        at + self.len as usize <= line.len() && got & self.mask == self.word
    }
}

impl Quick {
    const NONE: usize = usize::MAX;
    const HOST: u8 = 1;
    const UPSTREAM: u8 = 2;
    const SERVICE: u8 = 3;
    /// The most fields of a tail read so.
    const MAX: usize = 16;
}

/// What [`Walk::quick`] reads of a line: what an answered request is made of.
#[derive(Clone, Copy, Debug)]
pub(super) struct QuickLine {
    /// Where `$time_local`'s 26 bytes start.
    pub(super) time: usize,
    pub(super) status: u16,
    pub(super) host: Span,
    /// The one upstream of `$upstream_addr` (none for `-`, an empty field or no such field).
    /// (ingress-nginx's `$proxy_upstream_name` instead, when the format has it, it is
    /// written and an upstream was tried: see `upstream::of_fields`.)
    pub(super) upstream: Span,
    /// Whether `$upstream_addr` was written (not empty): the line names its upstream.
    pub(super) named: bool,
}

/// See [`Walk::straight`].
#[derive(Clone, Debug)]
struct Straight {
    /// Whether the quoted fields after `$status` are jumped over to the line's last quote,
    /// and the literal after that quote.
    jump: Option<Box<[u8]>>,
    /// The fields after `$status` (or after the jump), up to the last one needed.
    tail: Box<[Tail]>,
}

/// A field of [`Straight::tail`].
#[derive(Clone, Debug)]
struct Tail {
    slot: Slot,
    end: TailEnd,
    /// An upstream list (`$upstream_addr`, `$upstream_status`, …) followed by a space: one
    /// item, or left to the long walk.
    list: bool,
}

#[derive(Clone, Debug)]
enum TailEnd {
    /// At the next space (the literal after the field is one space).
    Space,
    /// Where the literal after the field, which holds a space, is first written: found from
    /// the next space, as the space is the literal's `space`th byte. With `more` spaces in it,
    /// the spaces are searched from after it.
    Literal {
        after: Box<[u8]>,
        space: usize,
        more: bool,
    },
    /// The last field: the rest of the line.
    Rest,
    /// The last field, an upstream list: measured as the long walk measures it.
    List,
}

#[derive(Clone, Debug)]
struct Step {
    end: End,
    /// The literal after the field.
    after: Box<[u8]>,
    /// Which masks hold the literal's first byte ([`mask::select`]).
    sel: [u64; 3],
    slot: Slot,
}

#[derive(Clone, Copy, Debug)]
enum End {
    /// `$time_local`: 26 bytes.
    Fixed(usize),
    /// An upstream list, ending at this byte or at a space or comma not followed by another item.
    List(u8),
    /// The last field: the rest of the line.
    Rest,
    /// At the first place the literal is written, found through the masks.
    Literal,
    /// The same, searched (the literal's first byte is not among the masks').
    Search,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Client,
    Time,
    Request,
    Status,
    Host,
    UpstreamAddr,
    UpstreamHost,
    Service,
    UpstreamStatus,
    ConnectTime,
    Skip,
}

impl Slot {
    /// Keeps a field's span where it goes (`$status`'s is kept by the walk, which decides on it).
    #[inline(always)]
    fn store(self, span: Span, out: &mut Fields) {
        match self {
            Slot::Client => out.client = span,
            Slot::Time => out.time = span,
            Slot::Request => out.request = span,
            Slot::Host => {
                if out.host.is_none() {
                    out.host = span;
                }
            }
            Slot::UpstreamAddr => out.upstream_addr = span,
            Slot::UpstreamHost => out.upstream_host = span,
            Slot::Service => out.service = span,
            Slot::UpstreamStatus => out.upstream_status = span,
            Slot::ConnectTime => out.connect_time = span,
            Slot::Status | Slot::Skip => {}
        }
    }
}

const SPACE: [u64; 3] = mask::select(mask::FIRST);
const QUOTE: [u64; 3] = mask::select(mask::SECOND);
/// The third byte of a straight walk's set (see [`Walk::compile`]).
const COMMA: [u64; 3] = mask::select(mask::THIRD);

impl Walk {
    /// The short walk of a format (none for `escape=json`, whose quotes may be escaped).
    pub(super) fn compile(
        lead: &[u8],
        fields: &[Field],
        escape: Escape,
        ok_last: usize,
        jump: Option<(usize, usize)>,
    ) -> Option<Walk> {
        if escape == Escape::Json || ok_last >= fields.len() {
            return None;
        }
        let fields = &fields[..=ok_last];
        // The commonest first byte of the other literals (`]` of `[$time_local]` by default).
        let mut counts = [0usize; 256];
        for f in fields {
            if let Some(&b) = f.after.first() {
                counts[b as usize] += 1;
            }
        }
        counts[b' ' as usize] = 0;
        counts[b'"' as usize] = 0;
        let third = (0..=255u8)
            .filter(|&b| b != b' ' && b != b'"')
            .max_by_key(|&b| (counts[b as usize], b == b']'))
            .unwrap_or(b']');
        let set = [b' ', b'"', third];
        let steps: Box<[Step]> = fields
            .iter()
            .map(|f| {
                let which = f
                    .after
                    .first()
                    .and_then(|b| set.iter().position(|s| s == b));
                let end = if f.var == Var::TimeLocal {
                    End::Fixed(26)
                } else if f.var.is_list() {
                    End::List(f.after.first().copied().unwrap_or(b'\n'))
                } else if f.after.is_empty() {
                    End::Rest
                } else if which.is_some() {
                    End::Literal
                } else {
                    End::Search
                };
                Step {
                    end,
                    after: f.after.clone(),
                    sel: mask::select(which.map_or(0, |k| 1 << k)),
                    slot: match f.var {
                        Var::RemoteAddr => Slot::Client,
                        Var::TimeLocal | Var::TimeIso8601 | Var::Msec => Slot::Time,
                        Var::Request => Slot::Request,
                        Var::Status => Slot::Status,
                        Var::Host => Slot::Host,
                        Var::UpstreamAddr => Slot::UpstreamAddr,
                        Var::UpstreamHost => Slot::UpstreamHost,
                        Var::ProxyUpstreamName => Slot::Service,
                        Var::UpstreamStatus => Slot::UpstreamStatus,
                        Var::UpstreamConnectTime => Slot::ConnectTime,
                        Var::UpstreamTime | Var::UpstreamOther | Var::Other => Slot::Skip,
                    },
                }
            })
            .collect();
        let combined_start = lead.is_empty()
            && fields.len() > 4
            && [
                (Var::RemoteAddr, &b" - "[..]),
                (Var::Other, b" ["),
                (Var::TimeLocal, b"] \""),
                (Var::Request, b"\" "),
            ]
            .iter()
            .zip(fields)
            .all(|((var, after), f)| f.var == *var && &f.after[..] == *after);
        let jump = jump.filter(|&(j, _)| j < ok_last).map(|(j, tail)| {
            let after = &fields[j].after;
            (j, Box::from(&after[after.len() - tail..]))
        });
        let straight = straight(&steps, combined_start, jump.as_ref());
        let quick = straight.as_ref().and_then(quick);
        // The straight walk reads only spaces and quotes through the masks (its steps are not
        // walked): the third byte is the comma of upstream lists, which it must not find in
        // the one item it reads.
        let set = match straight {
            Some(_) => STRAIGHT_SET,
            None => set,
        };
        Some(Walk {
            lead: Box::from(lead),
            set,
            steps,
            jump,
            combined_start,
            straight,
            quick,
        })
    }

    /// What an answered request is made of, read from windows of the line's buffer when the
    /// walk has the quick shape ([`Quick`]) and they settle it; `None` otherwise (then
    /// [`Walk::answered`] reads the line).
    #[inline(always)]
    pub(super) fn quick<const AVX2: bool>(
        &self,
        line: &[u8],
        m: &mask::Bytes<'_, AVX2>,
    ) -> Option<QuickLine> {
        let q = self.quick.as_ref()?;
        debug_assert_eq!(m.set(), STRAIGHT_SET);
        quick_answered(q, line, m)
    }

    /// Whether the walk has the quick shape (its buffers then need only their newlines,
    /// found from the bytes: [`mask::Classes::Newlines`]).
    pub(super) fn has_quick(&self) -> bool {
        self.quick.is_some()
    }

    /// Whether the walk of this format is the straight one (see [`Walk::straight`]).
    #[cfg(test)]
    pub(super) fn is_straight(&self) -> bool {
        self.straight.is_some()
    }

    /// The bytes the masks the walk reads find (see [`mask::Masks::new`]).
    pub(super) fn set(&self) -> [u8; 3] {
        self.set
    }

    /// Reads the fields of a line whose request did not fail into `out`, through masks of
    /// [`Walk::set`]; `None` when the line is anything else, or anything the long walk must
    /// decide.
    #[inline]
    pub(super) fn answered(
        &self,
        line: &[u8],
        masks: &mut impl Find,
        out: &mut Fields,
    ) -> Option<()> {
        if let Some(st) = &self.straight {
            return straight_answered(st, line, masks, out);
        }
        if !has_prefix(line, &self.lead) {
            return None;
        }
        let (mut pos, mut i) = if self.combined_start {
            (combined_start(line, masks, out)?, 4)
        } else {
            (self.lead.len(), 0)
        };
        while let Some(st) = self.steps.get(i) {
            let len = match st.end {
                End::Fixed(n) => {
                    if line.len() - pos < n {
                        return None;
                    }
                    n
                }
                End::List(stop) => {
                    // One item, as nearly always: it ends at the next space, with no comma in
                    // it and no ` : ` after it (else the list is measured item by item).
                    match masks.find_in(&SPACE, pos) {
                        Some(p)
                            if stop == b' '
                                && bytes::find_byte(b',', &line[pos..p]).is_none()
                                && !line[p..].starts_with(b" : ") =>
                        {
                            p - pos
                        }
                        _ => upstream::list_len(&line[pos..], stop),
                    }
                }
                End::Rest => line.len() - pos,
                End::Literal => {
                    // The first place the literal is written: a byte the masks find, then the
                    // literal's other bytes after it.
                    let mut from = pos;
                    loop {
                        let p = masks.find_in(&st.sel, from)?;
                        if has_prefix(&line[p + 1..], &st.after[1..]) {
                            break p - pos;
                        }
                        from = p + 1;
                    }
                }
                End::Search => find_literal(&line[pos..], &st.after, Escape::Default)?,
            };
            let end = pos + len;
            // The searches found the literal where the field ends; the other ends must be
            // followed by it.
            if matches!(st.end, End::Fixed(_) | End::List(_) | End::Rest)
                && !has_prefix(&line[end..], &st.after)
            {
                return None;
            }
            let span = Span::new(pos, end);
            match st.slot {
                Slot::Status => {
                    let v = &line[pos..end];
                    if v.first() == Some(&b'5') || v == b"009" {
                        return None;
                    }
                    out.status = span;
                    if let Some((j, tail)) = &self.jump
                        && *j > i
                    {
                        // The line's last quote ends the literal after field `j`: the quoted
                        // fields in between are not needed.
                        let q = masks.last_in(&QUOTE)?;
                        if q <= end || !has_prefix(&line[q + 1..], tail) {
                            return None;
                        }
                        pos = q + 1 + tail.len();
                        i = j + 1;
                        continue;
                    }
                }
                slot => slot.store(span, out),
            }
            pos = end + st.after.len();
            i += 1;
        }
        Some(())
    }
}

/// The straight walk of a format, when it has one (see [`Walk::straight`]).
fn straight(
    steps: &[Step],
    combined_start: bool,
    jump: Option<&(usize, Box<[u8]>)>,
) -> Option<Straight> {
    let status = steps.get(4)?;
    if !combined_start || status.slot != Slot::Status || &status.after[..] != b" " {
        return None;
    }
    let (first, jump) = match jump {
        Some((j, lit)) => (j + 1, Some(lit.clone())),
        None => (5, None),
    };
    let fields = steps.get(first..)?;
    let last = fields.len().checked_sub(1);
    let mut tail = Vec::with_capacity(fields.len());
    for (k, st) in fields.iter().enumerate() {
        if st.slot == Slot::Status {
            return None;
        }
        let space = st.after.iter().position(|&b| b == b' ');
        let is_last = Some(k) == last;
        let end = match (st.end, space) {
            (End::Rest, _) if is_last => TailEnd::Rest,
            (End::List(b'\n'), _) if is_last && st.after.is_empty() => TailEnd::List,
            (End::Literal | End::List(b' '), _) if &st.after[..] == b" " => TailEnd::Space,
            (End::Literal | End::Search, Some(space)) => TailEnd::Literal {
                after: st.after.clone(),
                space,
                more: st.after.iter().filter(|&&b| b == b' ').count() > 1,
            },
            _ => return None,
        };
        tail.push(Tail {
            slot: st.slot,
            list: matches!(st.end, End::List(b' ')),
            end,
        });
    }
    Some(Straight {
        jump,
        tail: tail.into(),
    })
}

/// The quick shape of a straight walk, when it has it (see [`Quick`]): besides the tail's
/// shape, no field of it that [`super::nginx_access::AccessParser::answered_in`] reads but
/// one `$host` and one `$upstream_addr`.
fn quick(st: &Straight) -> Option<Quick> {
    let jump = match st.jump.as_deref() {
        None => false,
        Some(b" ") => true,
        Some(_) => return None,
    };
    let mut q = Quick {
        jump,
        fields: st.tail.len(),
        host: Quick::NONE,
        upstream: Quick::NONE,
        service: Quick::NONE,
        roles: [0; Quick::MAX],
        lists: 0,
        bracketed: 0,
        literals: [Literal::default(); Quick::MAX],
        general: false,
    };
    if st.tail.len() > Quick::MAX {
        return None;
    }
    for (k, t) in st.tail.iter().enumerate() {
        match &t.end {
            TailEnd::Space => {}
            TailEnd::Literal {
                after,
                space,
                more: false,
            } if after.len() <= 4 => {
                let mut bytes = [0; 4];
                bytes[..after.len()].copy_from_slice(after);
                q.literals[k] = Literal {
                    word: u32::from_le_bytes(bytes),
                    mask: (u64::MAX >> (64 - 8 * after.len())) as u32,
                    len: after.len() as u8,
                    space: *space as u8,
                };
                q.bracketed |= 1 << k;
            }
            _ => return None,
        }
        q.lists |= u64::from(t.list) << k;
        let (at, role) = match t.slot {
            Slot::Host => (&mut q.host, Quick::HOST),
            Slot::UpstreamAddr => (&mut q.upstream, Quick::UPSTREAM),
            Slot::Service => (&mut q.service, Quick::SERVICE),
            Slot::UpstreamStatus | Slot::ConnectTime | Slot::Skip => continue,
            _ => return None,
        };
        // Written twice: which one counts is the straight walk's to say.
        if *at != Quick::NONE {
            return None;
        }
        *at = k;
        q.roles[k] = role;
    }
    q.general = q.bracketed != 0 || q.service != Quick::NONE;
    Some(q)
}

/// What [`straight_answered`] reads of a line, from windows of its buffer's masks, as
/// [`QuickLine`]; `None` when they do not settle it — including every line the straight walk
/// refuses.
#[inline(always)]
fn quick_answered<const AVX2: bool>(
    q: &Quick,
    line: &[u8],
    m: &mask::Bytes<'_, AVX2>,
) -> Option<QuickLine> {
    // `$remote_addr - $remote_user [$time_local] "`: the first two spaces from one window.
    let [head, ..] = m.window(0)?;
    let sp = head.trailing_zeros() as usize;
    if sp > 60 || line.get(sp + 1..sp + 3) != Some(b"- ") {
        return None;
    }
    let rest = head >> (sp + 3);
    if rest == 0 {
        return None;
    }
    let user_end = sp + 3 + rest.trailing_zeros() as usize;
    let time = user_end + 2;
    if line.get(user_end + 1) != Some(&b'[') || line.get(time + 26..time + 29)? != b"] \"" {
        return None;
    }
    let request = time + 29;
    let mut at = request;
    let q_end = loop {
        let quotes = m.window(at)?[1];
        if quotes != 0 {
            break at + quotes.trailing_zeros() as usize;
        }
        at += mask::BLOCK;
        if at >= line.len() {
            return None;
        }
    };
    // `" $status `: three digits, as nearly always (the first space after them ends them).
    let status = q_end + 2;
    let &[b' ', a, b, c, b' '] = line.get(q_end + 1..status + 4)? else {
        return None;
    };
    // A failed request, or a status above 599 (`answered_in` leaves it to the long way, as
    // it does every status from 500).
    if ![a, b, c].iter().all(u8::is_ascii_digit) || a >= b'5' || [a, b, c] == *b"009" {
        return None;
    }
    let mut out = QuickLine {
        time,
        status: (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16,
        host: Span::NONE,
        upstream: Span::NONE,
        named: false,
    };
    let mut pos = status + 4;
    // The spaces and commas from `pos` on, when the window of the last quote has them.
    let mut tail = None;
    if q.jump {
        // The line's last quote, from windows of 64 bytes back from its end, followed by a
        // space.
        let end = line.len().checked_sub(mask::BLOCK)?;
        let mut at = end;
        let (last, [spaces, _, commas]) = loop {
            let w = m.window(at)?;
            if w[1] != 0 {
                break (at + 63 - w[1].leading_zeros() as usize, w);
            }
            if at < pos {
                return None;
            }
            at = at.saturating_sub(mask::BLOCK);
        };
        if last < pos || line.get(last + 1) != Some(&b' ') {
            return None;
        }
        pos = last + 2;
        if at == end {
            // That window ends where the line does: the tail is in it.
            let shift = (pos - at) as u32;
            tail = Some((
                spaces.checked_shr(shift).unwrap_or(0),
                commas.checked_shr(shift).unwrap_or(0),
            ));
        }
    }
    if q.fields == 0 {
        return Some(out);
    }
    // The tail's fields, each to the next space of one window, with no comma in them (in
    // the lists, one item each) nor ` : ` after a list (else the straight walk measures them;
    // a `:` after the space is enough to leave it).
    let (mut spaces, commas) = match tail {
        Some(t) => t,
        None => {
            let [spaces, _, commas] = m.window(pos)?;
            (spaces, commas)
        }
    };
    if q.general {
        return quick_bracketed(q, line, m, pos, (spaces, commas), out);
    }
    let (mut from, mut host, mut upstream) = (0, (0, 0), (0, 0));
    for k in 0..q.fields {
        if spaces == 0 {
            return None;
        }
        let end = spaces.trailing_zeros() as usize;
        spaces &= spaces - 1;
        if q.lists >> k & 1 != 0 && line.get(pos + end + 1) == Some(&b':') {
            return None;
        }
        if k == q.host {
            host = (from, end);
        }
        if k == q.upstream {
            upstream = (from, end);
        }
        from = end + 1;
    }
    if pos + from > line.len() || commas & ((1u64 << (from - 1)) - 1) != 0 {
        return None;
    }
    if q.host != Quick::NONE {
        out.host = Span::new(pos + host.0, pos + host.1);
    }
    if q.upstream != Quick::NONE {
        let (a, b) = (pos + upstream.0, pos + upstream.1);
        out.named = b > a;
        if b > a && &line[a..b] != b"-" {
            out.upstream = Span::new(a, b);
        }
    }
    Some(out)
}

/// The tail of [`quick_answered`] when a field of it ends at a literal other than one space
/// or is ingress-nginx's service (`upstreaminfo`: `[$proxy_upstream_name]
/// [$proxy_alternative_upstream_name]`), from `pos`: `tail` has the spaces and commas of the
/// window from there.
#[inline(always)]
fn quick_bracketed<const AVX2: bool>(
    q: &Quick,
    line: &[u8],
    m: &mask::Bytes<'_, AVX2>,
    mut pos: usize,
    tail: (u64, u64),
    mut out: QuickLine,
) -> Option<QuickLine> {
    // The tail's fields, each to the next space, found in windows from `pos` on (the next
    // window when one has no more), with no comma in them (in the lists, one item each) nor
    // ` : ` after a list (else the straight walk measures them; a `:` after the space is
    // enough to leave it). A field that ends at a literal (`] [`) ends where the next space
    // is that literal's, as the straight walk reads it.
    let (mut base, (mut spaces, mut commas)) = (pos, tail);
    let (mut host, mut upstream, mut service) = (Span::NONE, Span::NONE, Span::NONE);
    let mut sp = 0;
    let mut k = 0;
    while k < q.fields {
        while spaces == 0 {
            // (The bytes of this window are all before the field's end: no comma in them.)
            if commas != 0 || base + mask::BLOCK >= line.len() {
                return None;
            }
            base += mask::BLOCK;
            let [s, _, c] = m.window(base)?;
            (spaces, commas) = (s, c);
        }
        sp = base + spaces.trailing_zeros() as usize;
        spaces &= spaces - 1;
        if q.lists >> k & 1 != 0 && line.get(sp + 1) == Some(&b':') {
            return None;
        }
        let (end, next) = match q.bracketed >> k & 1 {
            0 => (sp, sp + 1),
            _ => {
                let lit = &q.literals[k];
                let end = sp.checked_sub(lit.space as usize).filter(|&e| e >= pos)?;
                if !lit.at(line, end) {
                    return None;
                }
                (end, end + lit.len as usize)
            }
        };
        match q.roles[k] {
            0 => {}
            Quick::HOST => host = Span::new(pos, end),
            Quick::UPSTREAM => upstream = Span::new(pos, end),
            _ => service = Span::new(pos, end),
        }
        pos = next;
        k += 1;
    }
    // The last space is the line's, and no comma before it in its window.
    if sp >= line.len() || commas & ((1u64 << (sp - base)) - 1) != 0 {
        return None;
    }
    out.host = host;
    out.named = !upstream.is_none();
    if out.named && !(upstream.end - upstream.start == 1 && line[upstream.start as usize] == b'-') {
        out.upstream = upstream;
    }
    // ingress-nginx: the service is the upstream once a pod was tried.
    if !out.upstream.is_none() && service.get(line).is_some_and(|s| s != b"-") {
        out.upstream = service;
    }
    Some(out)
}

/// The straight walk: what [`Walk::answered`]'s steps read of such a format, field by field
/// from the masks of spaces.
#[inline(always)]
fn straight_answered(
    st: &Straight,
    line: &[u8],
    masks: &mut impl Find,
    out: &mut Fields,
) -> Option<()> {
    let pos = combined_start(line, masks, out)?;
    let mut spaces = Scan::new(masks, &SPACE, pos);
    let end = spaces.next(masks, &SPACE)?;
    let v = &line[pos..end];
    if v.first() == Some(&b'5') || v == b"009" {
        return None;
    }
    out.status = Span::new(pos, end);
    let mut pos = end + 1;
    if let Some(lit) = &st.jump {
        // The line's last quote ends the quoted fields jumped over; the literal follows it.
        let q = masks.last_in(&QUOTE)?;
        let follows = match &lit[..] {
            b" " => line.get(q + 1) == Some(&b' '),
            _ => has_prefix(&line[q + 1..], lit),
        };
        if q <= end || !follows {
            return None;
        }
        pos = q + 1 + lit.len();
        spaces.seek(masks, &SPACE, pos);
    }
    for f in &st.tail {
        let end = match &f.end {
            TailEnd::Space => spaces.next(masks, &SPACE)?,
            TailEnd::Literal { after, space, .. } => {
                // The first space at or after `pos` is the literal's, or the literal is not
                // where the long walk finds it first: no space can come before it in the field.
                let sp = spaces.next(masks, &SPACE)?;
                let end = sp.checked_sub(*space).filter(|&e| e >= pos)?;
                if !has_prefix(&line[end..], after) {
                    return None;
                }
                end
            }
            TailEnd::Rest => line.len(),
            TailEnd::List => pos + upstream::list_len(&line[pos..], b'\n'),
        };
        // One item, as nearly always (else the long walk measures the list).
        if f.list
            && (masks.find_in(&COMMA, pos).is_some_and(|c| c < end)
                || line[end..].starts_with(b" : "))
        {
            return None;
        }
        if f.slot == Slot::UpstreamAddr {
            // A list a space ends (see `Tail::list`) was checked just above: one item, with
            // neither a comma nor a space. (Set for every `$upstream_addr`, as the last one
            // stored is the one read.)
            out.single_upstream = f.list;
        }
        f.slot.store(Span::new(pos, end), out);
        pos = match &f.end {
            TailEnd::Space => end + 1,
            TailEnd::Literal { after, more, .. } => {
                if *more {
                    spaces.seek(masks, &SPACE, end + after.len());
                }
                end + after.len()
            }
            TailEnd::Rest | TailEnd::List => end,
        };
    }
    Some(())
}

/// `$remote_addr - $remote_user [$time_local] "$request" `, read as the walk reads it (each
/// literal where it is first written) or not at all: the position after it.
#[inline(always)]
fn combined_start(line: &[u8], masks: &mut impl Find, out: &mut Fields) -> Option<usize> {
    // The first ` - ` is at the first space, or the line is left to the long walk.
    let sp = masks.find_in(&SPACE, 0)?;
    if !line[sp..].starts_with(b" - ") {
        return None;
    }
    let user_end = masks.find_in(&SPACE, sp + 3)?;
    if !line[user_end..].starts_with(b" [") {
        return None;
    }
    let time = user_end + 2;
    if line.get(time + 26..time + 29)? != b"] \"" {
        return None;
    }
    let request = time + 29;
    let q = masks.find_in(&QUOTE, request)?;
    if line.get(q + 1) != Some(&b' ') {
        return None;
    }
    out.client = Span::new(0, sp);
    out.time = Span::new(time, time + 26);
    out.request = Span::new(request, q);
    Some(q + 2)
}

#[cfg(test)]
mod tests {
    use crate::engine::event::Format;
    use crate::engine::parse::nginx_access::{APACHE_KNOWN, AccessParser, Escape, KNOWN};
    use crate::engine::parse::{LogFormat, Parser, ParserOptions};
    use crate::engine::time::{Zone, ZoneClock};

    /// Lines of every built-in layout (real ones from the corpus, and one of each layout with
    /// upstream lists, ports, escaped quotes and failed requests), then mutated: separators
    /// moved, added and removed, statuses changed, lines cut anywhere.
    fn lines() -> Vec<Vec<u8>> {
        let mut base: Vec<Vec<u8>> = Vec::new();
        for file in [
            "nginx_access_real.log",
            "ingress_nginx_beats.log",
            "apache_access_real.log",
            "apache_access_vhost_combined_real.log",
        ] {
            let path = format!("{}/tests/data/corpus/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read(path).expect("corpus file");
            base.extend(text.split(|&b| b == b'\n').map(<[u8]>::to_vec));
        }
        let ua = r#""-" "Mozilla/5.0 (X11; Linux x86_64) \x22quoted\x22 Gecko""#;
        for (status, up) in [
            ("200", "10.0.1.5:8080"),
            ("404", "10.0.1.5:8080, 10.0.1.6:8080"),
            ("200", "10.0.1.5:8080 : 10.0.1.6:8080"),
            ("502", "10.0.1.5:8080"),
            ("200", "-"),
            ("009", "backend"),
            ("0200", "unix:/run/app.sock"),
            // Found by the fuzz target: a status above 599 is not an answered request's.
            ("702", "10.0.1.5:8080"),
        ] {
            base.push(
                format!(
                    "203.0.113.7 - alice [01/May/2024:12:00:00 +0200] \"GET /a?b=\\x22c HTTP/1.1\" {status} 12 {ua} api.example.com {up} {status} 0.001 0.002 0.003 0.004"
                )
                .into_bytes(),
            );
            base.push(
                format!(
                    "203.0.113.7 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/2.0\" {status} 5 {ua} 91 0.001 [ns-svc-80] [] {up} 59 0.000 {status} 529a0079"
                )
                .into_bytes(),
            );
            // The layouts of the custom formats of `the_short_way_reads_…` (`lists`, `mixed`,
            // `plain`, `twice`).
            let times = up
                .replace("10.0.1.5:8080", "0.001")
                .replace("10.0.1.6:8080", "0.002");
            for line in [
                format!(
                    "203.0.113.7 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" {status} 5 {ua} {times} {up} 0.003"
                ),
                format!(
                    "203.0.113.7 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" {status} 5 {ua} {times} 1714564800.123 rt=0.003 [api.example.com] ua=\"{up}\""
                ),
                format!(
                    "203.0.113.7 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" {status} 5 api.example.com {up}"
                ),
                format!(
                    "203.0.113.7 - - [01/May/2024:12:00:00 +0000] \"GET / HTTP/1.1\" {status} 5 {ua} 10.0.1.9:8080 api.example.com {up}"
                ),
            ] {
                base.push(line.into_bytes());
            }
        }
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = base.clone();
        for line in base.iter().filter(|l| !l.is_empty()) {
            for cut in (0..line.len()).step_by(7) {
                out.push(line[..cut].to_vec());
            }
            for _ in 0..150 {
                let mut l = line.clone();
                for _ in 0..1 + rand() % 3 {
                    let at = rand() as usize % l.len().max(1);
                    let b = b" \"5,:-[]\\x0\r"[rand() as usize % 12];
                    match rand() % 3 {
                        0 if at < l.len() => l[at] = b,
                        1 => l.insert(at.min(l.len()), b),
                        _ if at < l.len() => {
                            l.remove(at);
                        }
                        _ => {}
                    }
                }
                out.push(l);
            }
        }
        out
    }

    #[test]
    fn the_short_way_reads_every_line_it_reads_as_the_long_way() {
        let lines = lines();
        let mut parsers: Vec<Parser> = KNOWN
            .iter()
            .map(|(name, text)| {
                let opts = ParserOptions {
                    log_format: Some(LogFormat::compile(name, Escape::Default, text).unwrap()),
                    ..ParserOptions::default()
                };
                Parser::new(Format::NginxAccess, &opts, &[])
            })
            .collect();
        let none = ParserOptions {
            log_format: Some(
                LogFormat::from_directive(
                    r#"log_format n escape=none '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_user_agent" $upstream_addr';"#,
                )
                .unwrap(),
            ),
            ..ParserOptions::default()
        };
        parsers.push(Parser::new(Format::NginxAccess, &none, &[]));
        // Upstream lists before `$upstream_addr` (a retried request), a time after them, and
        // literals that are not single spaces.
        for (name, text) in [
            (
                "lists",
                r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $upstream_response_time $upstream_addr $request_time"#,
            ),
            (
                "mixed",
                r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $upstream_status $msec rt=$request_time [$host] ua="$upstream_addr""#,
            ),
            (
                "plain",
                r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent $host $upstream_addr"#,
            ),
            // `$upstream_addr` twice: the second, a list at the end, is the one read.
            (
                "twice",
                r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_user_agent" $upstream_addr $host $upstream_addr"#,
            ),
        ] {
            let opts = ParserOptions {
                log_format: Some(LogFormat::compile(name, Escape::Default, text).unwrap()),
                ..ParserOptions::default()
            };
            parsers.push(Parser::new(Format::NginxAccess, &opts, &[]));
        }
        // Apache's own layouts (`vhost_combined` starts `%v:%p `: a literal found by search).
        for (name, text) in APACHE_KNOWN {
            let format = LogFormat::compile(name, Escape::Default, text).unwrap();
            parsers.push(Parser::ApacheAccess(AccessParser::new(
                format,
                ZoneClock::new(Zone::Utc),
            )));
        }
        for p in &parsers {
            // Every layout has a short walk.
            assert!(p.mask_set().is_some(), "{}", p.describe());
            let (mut short, mut quick) = (0, 0);
            for line in &lines {
                assert!(
                    p.answered_agrees(line),
                    "{}: {:?}",
                    p.describe(),
                    String::from_utf8_lossy(line)
                );
                short += usize::from(p.clone().answered(line).is_some());
                quick += usize::from(match p {
                    Parser::NginxAccess(a) | Parser::ApacheAccess(a) => a.reads_quickly(line),
                    _ => false,
                });
            }
            // The short way is taken, not only refused, by the layouts the lines are written in,
            // and the commonest take the straight walk.
            let name = p.describe();
            let straight = match p {
                Parser::NginxAccess(a) | Parser::ApacheAccess(a) => a.walks_straight(),
                _ => false,
            };
            for l in [
                "combined",
                "gatewatch",
                "main",
                "upstreaminfo",
                "lists",
                "plain",
                "twice",
            ] {
                if name.ends_with(&format!("({l})")) {
                    assert!(straight, "{name} takes the straight walk");
                }
            }
            if [
                "combined",
                "gatewatch",
                "upstreaminfo",
                "vhost_combined",
                "twice",
            ]
            .iter()
            .any(|l| name.ends_with(&format!("({l})")))
            {
                assert!(short >= 20, "{name}: {short} of {}", lines.len());
            }
            // The quick shape reads most of what the straight walk reads in the commonest
            // layouts (a long request or user agent is left to the straight walk).
            if ["combined", "gatewatch", "main", "lists", "upstreaminfo"]
                .iter()
                .any(|l| name.ends_with(&format!("({l})")))
            {
                assert!(
                    quick >= 20 && quick * 2 >= short,
                    "{name}: {quick} of {short}"
                );
            } else if name.ends_with("(twice)") {
                assert_eq!(
                    quick, 0,
                    "{name}: `$upstream_addr` twice is not the quick shape"
                );
            }
        }
    }

    /// ingress-nginx's `upstreaminfo` takes the quick shape: its bracketed fields, a service
    /// name long enough that the fields read run past the first window, and the service as
    /// the upstream once a pod was tried — as the long way reads the line.
    #[test]
    fn upstreaminfo_is_read_quickly_with_its_service() {
        let (name, text) = KNOWN
            .iter()
            .find(|(n, _)| *n == "upstreaminfo")
            .expect("upstreaminfo is known");
        let opts = ParserOptions {
            log_format: Some(LogFormat::compile(name, Escape::Default, text).unwrap()),
            ..ParserOptions::default()
        };
        let p = Parser::new(Format::NginxAccess, &opts, &[]);
        let Parser::NginxAccess(a) = &p else {
            panic!("an nginx parser")
        };
        let head = r#"192.168.64.1 - - [07/Feb/2020:11:48:51 +0000] "POST /products HTTP/1.1" 200 59 "-" "curl/7.54.0" 89 0.001"#;
        let tail = "59 0.000 200 529a007902362a5f51385a5fa7049884";
        for (svc, addr, upstream) in [
            (
                "default-web-8080",
                "172.17.0.5:8080",
                Some("default-web-8080"),
            ),
            (
                "production-checkout-frontend-payments-http-8443",
                "10.244.13.117:8443",
                Some("production-checkout-frontend-payments-http-8443"),
            ),
            // No pod tried: no upstream; an empty service: the pod.
            ("upstream-default-backend", "-", None),
            ("", "172.17.0.5:8080", Some("172.17.0.5:8080")),
        ] {
            let line = format!("{head} [{svc}] [] {addr} {tail}");
            let line = line.as_bytes();
            assert!(a.reads_quickly(line), "{}", String::from_utf8_lossy(line));
            assert!(p.answered_agrees(line));
            let got = p.clone().answered(line).expect("an answered request");
            assert_eq!(
                got.upstream.get(line),
                upstream.map(str::as_bytes),
                "{svc} {addr}"
            );
        }
        // A bracket missing: not the quick shape's (nor the straight walk's) to read.
        let line = format!("{head} [default-web-8080 [] 172.17.0.5:8080 {tail}");
        assert!(!a.reads_quickly(line.as_bytes()));
        assert!(p.answered_agrees(line.as_bytes()));
    }
}

//! The short walk of an nginx access-log line whose request did not fail: the fields up to the
//! last one such a line needs, found through the line's masks of spaces, quotes and one more
//! separator ([`super::mask`]) instead of a search per field, and the quoted fields it does not
//! need (referer, user agent) jumped over.
//!
//! It reads exactly what [`LogFormat::extract`](super::nginx_access::LogFormat) reads for such a
//! line, or gives up (`None`) and leaves the line to it: anything unusual — a failed request, a
//! literal not where the first search finds it, a jump that does not land — is read the long
//! way. The tests and the `nginx_access` fuzz target compare the two on every line they see.

use super::bytes::has_prefix;
use super::mask::{self, Masks};
use super::nginx_access::{Escape, Field, Fields, Var, find_literal};
use super::upstream;
use crate::engine::event::Span;

/// A `log_format` compiled for the short walk.
#[derive(Clone, Debug)]
pub(super) struct Walk {
    lead: Box<[u8]>,
    /// The bytes the masks find: a space, a quote, and the commonest other first byte of the
    /// literals between fields.
    set: [u8; 3],
    /// The fields up to the last one an answered request needs.
    steps: Box<[Step]>,
    /// After `$status`: the field whose literal holds the line's last quote, and the bytes of
    /// that literal after the quote.
    jump: Option<(usize, Box<[u8]>)>,
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

const QUOTE: [u64; 3] = mask::select(mask::SECOND);

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
        let steps = fields
            .iter()
            .map(|f| {
                let which = f.after.first().and_then(|b| set.iter().position(|s| s == b));
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
        let jump = jump.filter(|&(j, _)| j < ok_last).map(|(j, tail)| {
            let after = &fields[j].after;
            (j, Box::from(&after[after.len() - tail..]))
        });
        Some(Walk {
            lead: Box::from(lead),
            set,
            steps,
            jump,
        })
    }

    /// Reads the fields of a line whose request did not fail into `out`; `None` when the line
    /// is anything else, or anything the long walk must decide.
    #[inline]
    pub(super) fn answered(&self, line: &[u8], out: &mut Fields) -> Option<()> {
        if !has_prefix(line, &self.lead) {
            return None;
        }
        let mut masks = Masks::new(line, self.set);
        let mut pos = self.lead.len();
        let mut i = 0;
        while let Some(st) = self.steps.get(i) {
            let len = match st.end {
                End::Fixed(n) => {
                    if line.len() - pos < n {
                        return None;
                    }
                    n
                }
                End::List(stop) => upstream::list_len(&line[pos..], stop),
                End::Rest => line.len() - pos,
                End::Literal => {
                    let mut from = pos;
                    loop {
                        let p = masks.find_in(&st.sel, from)?;
                        if has_prefix(&line[p..], &st.after) {
                            break p - pos;
                        }
                        from = p + 1;
                    }
                }
                End::Search => find_literal(&line[pos..], &st.after, Escape::Default)?,
            };
            let end = pos + len;
            if !has_prefix(&line[end..], &st.after) {
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
                Slot::Skip => {}
            }
            pos = end + st.after.len();
            i += 1;
        }
        Some(())
    }
}

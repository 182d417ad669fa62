//! A request that did not fail, as the pipeline counts it: its time, status, upstream and
//! virtual host, without an event ([`crate::engine::pipeline::Pipeline::push_answered`]).

use crate::engine::event::{Cause, Event, Kind, Span, Timestamp};

/// What a request that did not fail counts by: the fields of its event that the pipeline
/// reads (read the short way by [`super::nginx_access::AccessParser::answered`] and
/// [`super::alb::AlbParser::answered_in`], or taken from an event by [`Answered::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    pub time: Timestamp,
    pub status: u16,
    pub upstream: Span,
    pub vhost: Span,
    pub names_upstream: bool,
}

impl Answered {
    /// The request that did not fail an event is, when the pipeline counts it alike either
    /// way ([`crate::engine::pipeline::Pipeline::push_answered`]): a request with a time and
    /// a status, whose cause is `ok` and whose upstream no earlier line of its writer names.
    /// Formats without a short way of their own hand their answered requests on so.
    #[inline]
    pub fn of(ev: &Event) -> Option<Answered> {
        if ev.kind != Kind::Request || ev.cause != Cause::Ok || !ev.thread.is_none() {
            return None;
        }
        Some(Answered {
            time: ev.time?,
            status: ev.status?,
            upstream: ev.upstream,
            vhost: ev.vhost,
            names_upstream: ev.names_upstream,
        })
    }
}

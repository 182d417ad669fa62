//! Lines from gatewatch's own syslog listeners: parsed and counted like lines read from a file
//! (a datagram is received once: there is no position to save).

use super::*;

/// A syslog listener's lines, as the reader sees them.
pub(super) struct SyslogSource {
    pub(super) listen: Arc<str>,
    pub(super) source: u16,
    pub(super) parser: Parser,
    pub(super) lines: u64,
    pub(super) unparsed: u64,
    pub(super) counts: Arc<crate::source::syslog::Counts>,
}

impl Reader {
    /// Lines from a syslog listener: parsed, counted and fed to the pipeline like lines read
    /// from a file (there is no position to save: a datagram is received once).
    pub(super) fn take_datagrams(&mut self, listen: &str, lines: Vec<Vec<u8>>) {
        let Reader {
            syslogs,
            pipeline,
            counters,
            out,
            clock,
            ..
        } = self;
        let Some(src) = syslogs.iter_mut().find(|s| &*s.listen == listen) else {
            return;
        };
        src.counts
            .queued
            .fetch_sub(lines.len(), std::sync::atomic::Ordering::Relaxed);
        let mut sink = ReaderSink {
            counters,
            out,
            clock,
            count_settled: false,
        };
        for line in lines {
            src.lines += 1;
            match src.parser.parse(&line) {
                Ok(ev) => {
                    if let Some(t) = ev.time {
                        sink.counters
                            .add(t.ms, src.source, ev.upstream(&line), ev.cause);
                        if sink.clock.is_none_or(|(last, _)| t.ms > last) {
                            *sink.clock = Some((t.ms, Instant::now()));
                        }
                    }
                    pipeline.push(src.source, src.lines, &line, ev, &mut sink);
                }
                Err(_) => src.unparsed += 1,
            }
        }
    }
}

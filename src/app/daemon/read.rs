//! Reading, for every kind of source alike: the plans open sources, every source is read in
//! rounds, and its lines are counted and fed to the pipeline of its lane (the shared one, or
//! its own for sources whose lines come late).

use super::*;
use crate::source::{Clock, Plan, Source};

/// A source being read.
pub(super) struct Slot {
    pub(super) src: Box<dyn Source>,
    /// Its number in counters and incidents (an index into the reader's names): its first
    /// stream's.
    pub(super) id: u16,
    /// Its streams' numbers: the ones after `id`, then those of streams that appeared while it
    /// was read (see [`Source::new_streams`]), wherever the names then ended.
    pub(super) ids: Vec<u16>,
    /// The lane its lines go to.
    pub(super) lane: usize,
    /// The plan that opened it.
    pub(super) plan: usize,
    /// The checkpoint last committed (an unchanged one is not written again).
    pub(super) saved: Option<crate::source::Checkpoint>,
    /// Its recent parsing, for the format-drift alarm.
    pub(super) drift: super::drift::Drift,
}

/// A pipeline and the event clock its lines move.
pub(super) struct Lane {
    pub(super) pipeline: Pipeline,
    /// The latest event time seen, and when it was seen.
    pub(super) clock: Option<(i64, Instant)>,
    /// `None`: the clock moves on with the wall clock; `Some(quiet)`: only once no line has
    /// come for `quiet`.
    pub(super) quiet: Option<Duration>,
}

/// A plan and its sources, carried from one reader to the next by a reload.
pub(super) struct Kept {
    pub(super) plan: Box<dyn Plan>,
    pub(super) slots: Vec<Slot>,
}

impl Reader {
    /// Opens what the plans name that is not open yet (a glob's new files).
    pub(super) fn discover(&mut self) -> anyhow::Result<()> {
        let mut opened = Vec::new();
        for (p, plan) in self.plans.iter_mut().enumerate() {
            let state = &self.state;
            for src in plan.open(&|name| state.checkpoint(name))? {
                opened.push((p, src));
            }
        }
        for (p, src) in opened {
            self.add_new(src, p)?;
        }
        Ok(())
    }

    /// Starts reading a source, unless another plan already reads it (a glob and a path it
    /// also names: every line would count twice).
    pub(super) fn add_new(&mut self, src: Box<dyn Source>, plan: usize) -> anyhow::Result<()> {
        if self.slots.iter().any(|s| s.src.name() == src.name()) {
            log!(
                Info,
                "already followed by another source",
                file = src.name()
            );
            return Ok(());
        }
        self.add(src, plan, None)
    }

    /// Starts reading a source.
    pub(super) fn add(
        &mut self,
        src: Box<dyn Source>,
        plan: usize,
        saved: Option<crate::source::Checkpoint>,
    ) -> anyhow::Result<()> {
        let lane = match src.clock() {
            Clock::Shared => 0,
            Clock::Own { quiet } => {
                self.lanes.push(Lane {
                    pipeline: Pipeline::new(
                        self.out.kb.clone(),
                        PipelineConfig {
                            detect: self.detect.clone(),
                            join: None,
                        },
                    ),
                    clock: None,
                    quiet: Some(quiet),
                });
                self.lanes.len() - 1
            }
        };
        let id = self.names.len() as u16;
        let ids = register(&mut self.names, &mut self.formats, src.streams())?;
        self.slots.push(Slot {
            src,
            id,
            ids,
            lane,
            plan,
            saved,
            drift: Default::default(),
        });
        Ok(())
    }

    /// Reads every source once (about a megabyte per file, a slot of ALB objects, what a
    /// listener received). Returns the lines read, and whether more is waiting.
    pub(super) fn read_round(&mut self) -> (u64, bool) {
        let Reader {
            slots,
            lanes,
            counters,
            out,
            state,
            names,
            formats,
            ..
        } = self;
        let mut lines = 0;
        let mut more = false;
        for slot in slots.iter_mut() {
            let fresh = slot.src.new_streams();
            if !fresh.is_empty() {
                let n = fresh.len();
                match register(names, formats, fresh) {
                    Ok(ids) => slot.ids.extend(ids),
                    Err(e) => {
                        // Kept in their places, numbered by none: their lines are dropped.
                        slot.ids.extend(std::iter::repeat_n(NO_ID, n));
                        log!(
                            Error,
                            "reading a source",
                            source = slot.src.name(),
                            error = format!("{e:#}")
                        );
                    }
                }
            }
            let Lane {
                pipeline, clock, ..
            } = &mut lanes[slot.lane];
            let ids = &slot.ids;
            let mut sink = ReaderSink {
                counters,
                out,
                replaying: false,
            };
            let mut emit =
                |stream: usize, line_no: u64, line: &[u8], mut ev: crate::engine::event::Event| {
                    // A stream the reader could not number (too many): its lines are dropped.
                    let id = ids.get(stream).copied().unwrap_or(NO_ID);
                    if id == NO_ID {
                        return;
                    }
                    pipeline.correct(&mut ev);
                    // A line without a time of its own (HAProxy's server events on standard
                    // output) happened now: the event clock's present, not the last line's.
                    if ev.time.is_none() {
                        ev.time = clock.map(|(t, at)| {
                            let now = t + at.elapsed().as_millis() as i64;
                            crate::engine::event::Timestamp::new(now, 0)
                        });
                    }
                    if let Some(t) = ev.time {
                        // Counted as read, so the count is committed with the position; a join
                        // later moves it to the cause the error log gave (see `ReaderSink`). A
                        // line read again to rebuild the detector was counted by whoever read
                        // it first.
                        if line_no != crate::source::REPLAYED {
                            sink.counters
                                .add(t.ms, id, ev.counted_upstream(line), ev.cause);
                        }
                        // The event clock moves with every line read, also with lines the
                        // joiner holds back.
                        if clock.is_none_or(|(last, _)| t.ms > last) {
                            *clock = Some((t.ms, Instant::now()));
                        }
                    }
                    pipeline.push(id, line_no, line, ev, &mut sink);
                };
            match slot.src.read(&*state, &mut emit) {
                Ok(r) => {
                    lines += r.lines;
                    more |= r.more;
                }
                Err(e) => log!(
                    Error,
                    "reading a source",
                    source = slot.src.name(),
                    error = format!("{e:#}")
                ),
            }
        }
        (lines, more)
    }

    /// Whether a source finished items not committed yet.
    pub(super) fn items_done(&self) -> bool {
        self.slots.iter().any(|s| !s.src.done().is_empty())
    }

    /// Moves event time on by the wall-clock time since the last event, so bursts close and
    /// held lines settle when the logs go quiet — without trusting that the proxy's clock (or
    /// the configured zone of its lines) agrees with ours. A lane whose lines come late (ALB
    /// objects, every five minutes) moves only once none have come for its quiet period (the
    /// balancer has no traffic, or logging stopped), when incidents are allowed to close.
    pub(super) fn tick(&mut self) {
        let Reader {
            lanes,
            counters,
            out,
            ..
        } = self;
        for lane in lanes.iter_mut() {
            let Some((last, at)) = lane.clock else {
                continue;
            };
            let now = match lane.quiet {
                None => last + at.elapsed().as_millis() as i64,
                Some(q) if at.elapsed() > q => last + (at.elapsed() - q).as_millis() as i64,
                Some(_) => continue,
            };
            lane.pipeline.tick(
                now,
                &mut ReaderSink {
                    counters,
                    out,
                    replaying: false,
                },
            );
        }
    }

    /// The plans and their sources, for the next reader (see [`Reader::reload`]).
    pub(super) fn take_plans(&mut self) -> Vec<Kept> {
        let mut kept: Vec<Kept> = std::mem::take(&mut self.plans)
            .into_iter()
            .map(|plan| Kept {
                plan,
                slots: Vec::new(),
            })
            .collect();
        for s in std::mem::take(&mut self.slots) {
            kept[s.plan].slots.push(s);
        }
        kept
    }

    /// Puts back what [`take_plans`] took (a reload was refused).
    pub(super) fn put_back(&mut self, kept: Vec<Kept>) {
        for k in kept {
            let p = self.plans.len();
            self.plans.push(k.plan);
            for mut s in k.slots {
                s.plan = p;
                self.slots.push(s);
            }
        }
        self.slots.sort_by_key(|s| s.id);
    }

    /// Says, once, that the error log's times were found a zone away from the access log's
    /// (and are corrected from then on).
    pub(super) fn say_offset(&mut self) {
        if self.offset_said {
            return;
        }
        if let Some(off) = self.lanes[0]
            .pipeline
            .joiner()
            .and_then(|j| j.stats.error_offset_ms)
        {
            self.offset_said = true;
            // The error log's lines moved the event clock ahead by the offset: ticks would
            // move the joiner ahead again.
            if off > 0
                && let Some((t, at)) = &mut self.lanes[0].clock
            {
                *t -= off;
                *at = Instant::now();
            }
            log!(
                Warn,
                "the error log's times are a zone away from the access log's, so its lines never met their access-log lines: they are corrected from now on; set the error log's timezone in its [[source]] (its lines carry no zone)",
                error_log_ahead_by_minutes = off / 60_000
            );
        }
    }
}

/// The place of a stream the reader could not number (`register` keeps every number below).
const NO_ID: u16 = u16::MAX;

/// Numbers streams after the names known, and returns their numbers.
fn register(
    names: &mut Vec<String>,
    formats: &mut Vec<Format>,
    streams: Vec<(String, Format)>,
) -> anyhow::Result<Vec<u16>> {
    anyhow::ensure!(
        names.len() + streams.len() < NO_ID as usize,
        "too many sources to read"
    );
    let mut ids = Vec::with_capacity(streams.len());
    for (name, format) in streams {
        ids.push(names.len() as u16);
        names.push(name);
        formats.push(format);
    }
    Ok(ids)
}

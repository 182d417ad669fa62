//! The reader thread's loop: wake on file-system events and at least once a second, read,
//! move the event clock, remind, commit, publish; and reloads.

use super::*;

impl Reader {
    pub(super) fn run(mut self, rx: Receiver<Wake>) -> anyhow::Result<()> {
        let watchdog = sd_notify::watchdog_enabled();
        let mut last_ping = Instant::now();
        loop {
            let mut stop = false;
            let mut reload = None;
            let mut msgs = Vec::new();
            match rx.recv_timeout(RECHECK) {
                Ok(m) => msgs.push(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            // Many events may have queued up during one read: one more read covers them all.
            msgs.extend(rx.try_iter());
            for m in msgs {
                match m {
                    Wake::Stop => stop = true,
                    Wake::Reload(c, k) => reload = Some((c, k)),
                    Wake::Input => {}
                }
            }
            if let Some((cfg, kb)) = reload {
                self.reload(&cfg, kb)?;
            }
            if let Err(e) = self.discover() {
                log!(Error, "looking for new files", error = format!("{e:#}"));
            }
            // A failed round (the state file cannot be written: disk full, read-only, failing)
            // is retried in the next one; nothing read is lost meanwhile, it is held in memory,
            // and incident changes go to the sender from memory.
            let result = self.read_all().map(|_| ());
            self.tick();
            self.check_drift();
            self.say_offset();
            self.remind(now_ms());
            self.remind_fallback();
            self.check_state();
            // Incidents closed by the clock, and reminders, are written now, not with the next
            // lines (there may be none for a long time).
            let result = match result {
                Ok(()) if !self.out.notices.is_empty() => self.commit(),
                r => r,
            };
            let committed = match result {
                Ok(()) => {
                    if let Some((since, _)) = self.failing_since.take() {
                        log!(
                            Info,
                            "the state can be written again",
                            state = self.state.path().display(),
                            failed_for_s = since.elapsed().as_secs()
                        );
                    }
                    self.error = None;
                    true
                }
                Err(e) => {
                    self.state_failed(&e);
                    self.hand_over();
                    false
                }
            };
            self.publish(committed);
            if let Some(interval) = watchdog
                && last_ping.elapsed() >= interval / 2
            {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                last_ping = Instant::now();
            }
            if stop {
                match self.commit() {
                    Ok(()) => log!(
                        Info,
                        "stopped; reading positions saved",
                        state = self.state.path().display()
                    ),
                    // Nothing is lost: the positions were not saved either, so the lines
                    // since the last save are read (and counted) again at the next start.
                    Err(e) => log!(
                        Error,
                        "stopped without saving (the state cannot be written); the lines read since the last save will be read again at the next start",
                        state = self.state.path().display(),
                        error = format!("{e:#}")
                    ),
                }
                return Ok(());
            }
        }
    }

    /// Looks for damage to the state file every `[state] check_every` (a disk error, something
    /// writing into it): said on `/health` and logged once a minute until a restart moves the
    /// file aside.
    fn check_state(&mut self) {
        if self.checked.elapsed() < self.check_every {
            return;
        }
        self.checked = Instant::now();
        match (self.state.damage(), &mut self.damaged) {
            (None, _) => self.damaged = None,
            (Some(what), Some((_, said))) if said.elapsed() < FAULT_LOG_EVERY => {
                let said = *said;
                self.damaged = Some((what, said));
            }
            (Some(what), _) => {
                log!(
                    Error,
                    "the state file is damaged; restart gatewatch to move it aside and begin a fresh one",
                    state = self.state.path().display(),
                    found = what
                );
                self.damaged = Some((what, Instant::now()));
            }
        }
    }

    /// Reads everything new in every source (in rounds: about a megabyte per file, a slot of
    /// ALB objects), committing after each round. Returns the number of lines read.
    pub(super) fn read_all(&mut self) -> anyhow::Result<u64> {
        let mut total = 0;
        loop {
            let (lines, more) = self.read_round();
            total += lines;
            if lines > 0 || !self.counters.is_empty() || self.items_done() {
                self.commit()?;
            }
            if !more {
                return Ok(total);
            }
        }
    }

    /// Announces again the incidents open for longer than the renotify interval (wall clock:
    /// it is about people, not about log time).
    pub(super) fn remind(&mut self, now: i64) {
        let Some(every) = self.out.renotify_ms else {
            return;
        };
        if !self.out.announced.iter().any(|(_, _, t)| now - t >= every) {
            return;
        }
        let open = self.open_incidents();
        for (upstream, entry, at) in &mut self.out.announced {
            if now - *at < every {
                continue;
            }
            if let Some(inc) = open
                .iter()
                .find(|i| i.upstream == *upstream && i.entry == *entry)
            {
                *at = now;
                self.out.notices.push(crate::store::outbox::Notice::new(
                    AlertKind::Reminder,
                    inc.clone(),
                ));
            }
        }
    }

    /// Publishes what the daemon is doing.
    pub(super) fn publish(&self, committed: bool) {
        let det = self.lanes[0].pipeline.detector();
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        st.files = self
            .slots
            .iter()
            .map(|s| {
                let f = s.src.status();
                FileStatus {
                    path: s.src.name().to_string(),
                    format: f.format,
                    lines: f.lines,
                    unparsed: f.unparsed,
                    too_long: f.too_long,
                    lag_bytes: f.lag_bytes,
                    drift: s.drift.open.is_some(),
                    kafka: f.kafka,
                }
            })
            .collect();
        let mut causes = self.lanes[0].pipeline.counts().0;
        for lane in &self.lanes[1..] {
            for (total, n) in causes.iter_mut().zip(lane.pipeline.counts().0) {
                *total += n;
            }
        }
        st.causes = causes;
        st.open_incidents = self.open_incidents();
        st.incidents_opened = self.out.opened;
        st.incidents_closed = self.out.closed;
        st.upstreams_tracked = det.tracked();
        st.upstreams_evicted = det.stats.evicted;
        st.upstreams_pooled_lines = self.counters.pooled;
        st.late_events = det.stats.late;
        let now = std::time::SystemTime::now();
        st.round_at = Some(now);
        if committed {
            st.commit_at = Some(now);
        }
        st.error = self.error.clone().or_else(|| {
            self.damaged.as_ref().map(|(what, _)| {
                format!(
                    "the state file is damaged ({what}); restart gatewatch: it moves the file aside and begins a fresh one (the delivery journal keeps what was sent from being sent again)"
                )
            })
        });
        st.degraded = self.fallback.as_ref().map(|(f, _)| {
            format!(
                "the state folder cannot be written; running on a fallback state in {} that a restart with a writable state folder takes back",
                f.display()
            )
        });
        if st.kb.as_ref().is_none_or(|k| !Arc::ptr_eq(k, &self.out.kb)) {
            st.kb = Some(self.out.kb.clone());
        }
        if st.host != self.out.host {
            st.host = self.out.host.clone();
        }
        if st.state_path.is_none() {
            st.state_path = Some(self.state.path().to_path_buf());
        }
    }

    /// The folders to watch for file-system events.
    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = self.plans.iter().flat_map(|p| p.folders()).collect();
        d.sort();
        d.dedup();
        d
    }

    pub(super) fn reload(&mut self, cfg: &Config, kb: Arc<Kb>) -> anyhow::Result<()> {
        if let Err(e) = self.commit() {
            log!(
                Error,
                "reload postponed: the state cannot be saved; the old configuration keeps running",
                error = format!("{e:#}")
            );
            return Ok(());
        }
        let observers = self.out.observers.clone();
        let fallback = self.fallback.as_ref().map(|(f, _)| f.clone());
        // The new reader takes over the plans it keeps (a listener as it was, with its socket);
        // the others are dropped with the old reader, or put back if the reload is refused.
        let mut kept = self.take_plans();
        let fresh = Reader::new(
            cfg,
            kb,
            observers,
            fallback.as_deref(),
            self.wake.clone(),
            &mut kept,
        );
        match fresh {
            Ok(mut r) => {
                r.first_run = false;
                r.status = self.status.clone();
                // The links of the new configuration (another key or address, or none).
                r.status.lock().unwrap_or_else(|e| e.into_inner()).links = r.out.links.clone();
                r.out.opened = self.out.opened;
                r.out.closed = self.out.closed;
                r.out.sender = self.out.sender.clone();
                r.out.memory = self.out.memory.clone();
                // The sender follows the new channels (after the commit above, nothing of the
                // old configuration is left unwritten).
                drop(self.sender.take());
                if let Some(waker) = &r.out.sender {
                    match crate::delivery::sender::Sender::start(
                        &r.sender_config(cfg),
                        r.out.kb.clone(),
                        r.delivery(),
                        waker.clone(),
                        r.out.memory.clone(),
                    ) {
                        Ok(s) => r.sender = Some(s),
                        Err(e) => log!(Error, "restarting the sender", error = format!("{e:#}")),
                    }
                }
                *self = r;
                log!(Info, "configuration reloaded", sources = self.plans.len());
            }
            Err(e) => {
                self.put_back(kept);
                log!(
                    Error,
                    "reload refused; the old configuration keeps running",
                    error = format!("{e:#}")
                );
            }
        }
        Ok(())
    }

    /// What the sender records of its work (shared with the status).
    pub(super) fn delivery(&self) -> Arc<std::sync::Mutex<crate::delivery::sender::Tally>> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .delivery
            .clone()
    }
}

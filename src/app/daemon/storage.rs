//! Writing the state: one commit per round; when the state cannot be written (disk full,
//! read-only, failing), a fallback state, and alerts handed to the sender from memory.

use super::*;

/// While the state cannot be written, the fault is logged again this often.
pub(super) const FAULT_LOG_EVERY: Duration = Duration::from_secs(60);

/// Opens the state in the configured folder; when that fails (a read-only or full file system,
/// no permission), opens a fallback state in `$RUNTIME_DIRECTORY` or the temporary folder,
/// starting from a copy of the configured state when it can be read, and says so loudly.
/// `fallback` is the fallback already in use (a reload keeps it). Returns the state, whether it
/// is new, and the fallback folder if one is used.
pub(super) fn open_state(
    dir: &Path,
    fallback: Option<&Path>,
) -> anyhow::Result<(State, bool, Option<PathBuf>)> {
    if let Some(f) = fallback {
        let (state, new) = State::open(f)?;
        return Ok((state, new, Some(f.to_path_buf())));
    }
    let e = match State::open(dir) {
        Ok((state, new)) => return Ok((state, new, None)),
        Err(e) => e,
    };
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let fb = base.join("gatewatch-fallback-state");
    std::fs::create_dir_all(&fb).with_context(|| {
        format!(
            "{e:#}; and the fallback folder {} cannot be made",
            fb.display()
        )
    })?;
    for ext in ["", "-wal", "-shm"] {
        let name = format!("{}{ext}", crate::store::FILE_NAME);
        let _ = std::fs::remove_file(fb.join(&name));
        let from = dir.join(&name);
        if ext != "-shm" && from.exists() {
            let _ = std::fs::copy(&from, fb.join(&name));
        }
    }
    let (state, new) = State::open(&fb).with_context(|| {
        format!(
            "{e:#}; and the fallback state in {} cannot be opened",
            fb.display()
        )
    })?;
    log!(
        Error,
        "the state folder cannot be used; running on a fallback state (a copy, if the state could be read) that a restart with a writable state folder leaves behind",
        state = dir.display(),
        fallback = fb.display(),
        error = format!("{e:#}")
    );
    Ok((state, new, Some(fb)))
}

impl Reader {
    pub(super) fn commit(&mut self) -> anyhow::Result<()> {
        let paths: Vec<PathBuf> = self
            .files
            .iter()
            .map(|f| f.tailer.path().to_path_buf())
            .collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let checkpoints: Vec<_> = self
            .files
            .iter()
            .flat_map(|f| f.tailer.checkpoints())
            .collect();
        let open = if self.out.announced.is_empty() {
            Vec::new()
        } else {
            self.open_incidents()
        };
        if self.registered < self.names.len() {
            let mut formats: Vec<(String, Format)> = Vec::new();
            let mut add = |source: u16, format: Format| {
                if let Some(n) = self.names.get(source as usize) {
                    formats.push((n.clone(), format));
                }
            };
            for f in &self.files {
                add(f.source, f.format);
            }
            for a in &self.albs {
                add(a.source, Format::Alb);
            }
            for s in &self.syslogs {
                add(s.source, Format::Haproxy);
            }
            self.state.register_sources(&formats)?;
            self.registered = self.names.len();
        }
        let a = alerting(&self.out, &self.names, &open);
        self.state.commit(
            &refs,
            &checkpoints,
            &mut self.counters,
            &self.names,
            Some((&a, &self.out.notices)),
        )?;
        self.out.committed();
        Ok(())
    }

    /// The config the sender works with: the state folder actually in use.
    pub(super) fn sender_config(&self, cfg: &Config) -> Config {
        let mut c = cfg.clone();
        if let Some((f, _)) = &self.fallback {
            c.state_dir = f.clone();
        }
        c
    }

    /// Says again, once a minute, that a fallback state is in use.
    pub(super) fn remind_fallback(&mut self) {
        if let Some((f, said)) = &mut self.fallback
            && said.elapsed() >= FAULT_LOG_EVERY
        {
            log!(
                Error,
                "still running on a fallback state; restart gatewatch once the state folder is writable",
                fallback = f.display()
            );
            *said = Instant::now();
        }
    }

    /// Logs a failure to write the state: when it first happens, when the error changes, and
    /// once a minute while it lasts.
    pub(super) fn state_failed(&mut self, e: &anyhow::Error) {
        let mut msg = format!("{e:#}");
        if crate::store::is_corrupt(e) {
            msg.push_str(" (the state file is damaged: restart gatewatch to move it aside and start a fresh one)");
        }
        let now = Instant::now();
        let (since, logged) = self.failing_since.get_or_insert((now, now));
        let first = *logged == now;
        if first
            || self.error.as_deref() != Some(msg.as_str())
            || logged.elapsed() >= FAULT_LOG_EVERY
        {
            log!(
                Error,
                "cannot save the state; retrying, alerts go out from memory meanwhile",
                state = self.state.path().display(),
                failing_for_s = since.elapsed().as_secs(),
                error = msg
            );
            *logged = now;
        }
        self.error = Some(msg);
    }

    /// The state cannot be written: hands the incident changes not yet handed over to the
    /// sender directly, deciding as the outbox would. They stay in `notices`, marked
    /// delivered, and are recorded as sent once the state can be written.
    pub(super) fn hand_over(&mut self) {
        if self.out.notices.iter().all(|n| n.delivered.is_some()) {
            return;
        }
        let open = self.open_incidents();
        let now = now_ms();
        let mut messages: Vec<crate::store::outbox::MemoryMessage> = Vec::new();
        let mut opened: Vec<(String, bool)> = Vec::new();
        // Notices go out in messages grouped by kind (consecutive ones of the same kind share
        // one), the same groups on every channel. A group's time stamp, `now` plus its number,
        // makes its message id, which the notices keep for the outbox.
        let mut made: Vec<(usize, i64)> = Vec::new();
        let mut group: Option<(AlertKind, i64)> = None;
        {
            let mut a = alerting(&self.out, &self.names, &open);
            a.now_ms = now;
            for (i, n) in self.out.notices.iter().enumerate() {
                if n.delivered.is_some() {
                    continue;
                }
                let (send, silenced) = crate::store::outbox::decide(
                    self.state.conn(),
                    &a,
                    n,
                    &self.out.silenced_in_memory,
                );
                let key = crate::render::alert::incident_key(a.host, a.kb, &n.incident);
                if n.kind == AlertKind::Opened {
                    opened.push((key.clone(), silenced));
                }
                if !send {
                    made.push((i, now));
                    continue;
                }
                let stamp = match group {
                    Some((kind, stamp)) if kind == n.kind => stamp,
                    Some((_, stamp)) => stamp + 1,
                    None => now,
                };
                group = Some((n.kind, stamp));
                made.push((i, stamp));
                for (channel, lang) in a.channels {
                    let item =
                        crate::render::alert::item(&n.incident, a.kb, *lang, a.host, a.sources);
                    match messages
                        .iter_mut()
                        .rev()
                        .find(|m| m.channel == *channel && m.created == stamp)
                    {
                        Some(m) => {
                            m.keys.push(key.clone());
                            m.items.push(item);
                        }
                        None => messages.push(crate::store::outbox::MemoryMessage {
                            channel: channel.clone(),
                            kind: n.kind,
                            keys: vec![key.clone()],
                            items: vec![item],
                            created: stamp,
                            attempts: 0,
                            next_try: now,
                        }),
                    }
                }
            }
        }
        self.out.silenced_in_memory.extend(opened);
        for (i, stamp) in made {
            self.out.notices[i].delivered = Some(stamp);
        }
        if messages.is_empty() {
            return;
        }
        log!(
            Warn,
            "alerts handed to the sender from memory (the state cannot be written)",
            messages = messages.len()
        );
        self.out
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(messages);
        if let Some(s) = &self.out.sender {
            s.send_modify(|n| *n += 1);
        }
    }
}

//! Writing the state: one commit per round; when the state cannot be written (disk full,
//! read-only, failing), a fallback state, and alerts handed to the sender from memory.

use super::*;

/// While the state cannot be written, the fault is logged again this often.
pub(super) const FAULT_LOG_EVERY: Duration = Duration::from_secs(60);

/// The file in a fallback folder that names the state folder it stands in for, and whether it
/// began as a copy of that state (`copy`) or empty (`fresh`, the state could not be read).
const ORIGIN: &str = "origin";

/// Where a fallback state lives: `$RUNTIME_DIRECTORY` (systemd's, kept across restarts of the
/// service, not across reboots) or the temporary folder.
fn fallback_folder() -> PathBuf {
    crate::store::journal::runtime_dir().join("gatewatch-fallback-state")
}

/// The fallback folder's origin: (the state folder, began as a copy).
fn origin(fb: &Path) -> Option<(PathBuf, bool)> {
    let text = std::fs::read_to_string(fb.join(ORIGIN)).ok()?;
    let mut lines = text.lines();
    let dir = PathBuf::from(lines.next()?);
    Some((dir, lines.next() == Some("copy")))
}

/// Copies a state file (and its write-ahead log) from one folder to another, replacing what
/// is there.
fn copy_state(from: &Path, to: &Path) -> std::io::Result<()> {
    for ext in ["-wal", "-shm", ""] {
        let name = format!("{}{ext}", crate::store::FILE_NAME);
        match std::fs::remove_file(to.join(&name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    for ext in ["", "-wal"] {
        let name = format!("{}{ext}", crate::store::FILE_NAME);
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name))?;
        }
    }
    Ok(())
}

/// A fallback state left by an earlier run for `dir`, taken back now that `dir` can be
/// written: it began as a copy of the state and holds everything since, so it replaces it
/// (else the lines it read would be read again, and its messages sent again). A fallback that
/// began empty cannot replace the state (the state's history would go): it is moved aside,
/// loudly.
fn take_back(dir: &Path) {
    let fb = fallback_folder();
    let Some((of, copied)) = origin(&fb) else {
        return;
    };
    if of != dir || !fb.join(crate::store::FILE_NAME).exists() {
        return;
    }
    let probe = dir.join(".gatewatch-write-test");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !writable {
        return;
    }
    if copied {
        match copy_state(&fb, dir) {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&fb);
                log!(
                    Warn,
                    "the state folder can be written again; took back the fallback state",
                    state = dir.display(),
                    fallback = fb.display()
                );
            }
            Err(e) => log!(
                Error,
                "the fallback state could not be taken back; it stays where it is",
                fallback = fb.display(),
                error = e
            ),
        }
    } else {
        let aside = fb.with_file_name(format!(
            "gatewatch-fallback-state.left-{}",
            crate::clock::now_ms()
        ));
        let _ = std::fs::rename(&fb, &aside);
        log!(
            Warn,
            "a fallback state begun empty (the state could not be read then) is left aside; lines it read may be read again",
            left = aside.display()
        );
    }
}

/// Opens the state in the configured folder (taking back a fallback state an earlier run left,
/// see [`take_back`]); when that fails (a read-only or full file system, no permission), runs
/// on a fallback state in `$RUNTIME_DIRECTORY` or the temporary folder — the one an earlier
/// run left for this folder, else a copy of the configured state when it can be read — and
/// says so loudly. `fallback` is the fallback already in use (a reload keeps it). Returns the
/// state, whether it is new, and the fallback folder if one is used.
pub(super) fn open_state(
    dir: &Path,
    fallback: Option<&Path>,
) -> anyhow::Result<(State, bool, Option<PathBuf>)> {
    if let Some(f) = fallback {
        let (state, new) = State::open(f)?;
        return Ok((state, new, Some(f.to_path_buf())));
    }
    take_back(dir);
    let e = match State::open(dir) {
        Ok((state, new)) => return Ok((state, new, None)),
        Err(e) => e,
    };
    let fb = fallback_folder();
    let reuse =
        origin(&fb).is_some_and(|(of, _)| of == dir) && fb.join(crate::store::FILE_NAME).exists();
    if !reuse {
        std::fs::create_dir_all(&fb).with_context(|| {
            format!(
                "{e:#}; and the fallback folder {} cannot be made",
                fb.display()
            )
        })?;
        let copied = dir.join(crate::store::FILE_NAME).exists() && copy_state(dir, &fb).is_ok();
        std::fs::write(
            fb.join(ORIGIN),
            format!(
                "{}\n{}\n",
                dir.display(),
                if copied { "copy" } else { "fresh" }
            ),
        )
        .with_context(|| {
            format!(
                "{e:#}; and the fallback folder {} cannot be written",
                fb.display()
            )
        })?;
    }
    let (state, new) = State::open(&fb).with_context(|| {
        format!(
            "{e:#}; and the fallback state in {} cannot be opened",
            fb.display()
        )
    })?;
    log!(
        Error,
        if reuse {
            "the state folder cannot be used; running on the fallback state an earlier run left, which a restart with a writable state folder takes back"
        } else {
            "the state folder cannot be used; running on a fallback state (a copy, if the state could be read), which a restart with a writable state folder takes back"
        },
        state = dir.display(),
        fallback = fb.display(),
        error = format!("{e:#}")
    );
    Ok((state, new, Some(fb)))
}

impl Reader {
    /// Writes, in one transaction, where every source stands (the checkpoints that changed),
    /// the items they finished, the counts, and the incident changes as outbox rows.
    pub(super) fn commit(&mut self) -> anyhow::Result<()> {
        let checkpoints: Vec<(usize, crate::source::Checkpoint)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let c = s.src.checkpoint()?;
                (s.saved.as_ref() != Some(&c)).then_some((i, c))
            })
            .collect();
        for (i, _) in &checkpoints {
            self.slots[*i].src.before_commit();
        }
        let named: Vec<(&str, crate::source::Checkpoint)> = checkpoints
            .iter()
            .map(|(i, c)| (self.slots[*i].src.name(), c.clone()))
            .collect();
        let done: Vec<(&str, &[crate::source::Done])> = self
            .slots
            .iter()
            .filter(|s| !s.src.done().is_empty())
            .map(|s| (s.src.name(), s.src.done()))
            .collect();
        let open = if self.out.announced.is_empty() {
            Vec::new()
        } else {
            self.open_incidents()
        };
        if self.registered < self.names.len() {
            let formats: Vec<(String, Format)> = self.names[self.registered..]
                .iter()
                .cloned()
                .zip(self.formats[self.registered..].iter().copied())
                .collect();
            self.state.register_sources(&formats)?;
            self.registered = self.names.len();
        }
        let a = alerting(&self.out, &self.names, &open);
        self.state.commit(
            &named,
            &done,
            &mut self.counters,
            &self.names,
            Some((&a, &self.out.notices)),
        )?;
        drop(named);
        self.out.committed();
        for s in &mut self.slots {
            s.src.committed();
        }
        for (i, c) in checkpoints {
            self.slots[i].saved = Some(c);
        }
        Ok(())
    }

    /// The config the sender works with: the state folder actually in use.
    pub(super) fn sender_config(&self, cfg: &Config) -> crate::delivery::sender::Settings {
        let mut s = cfg.delivery();
        if let Some((f, _)) = &self.fallback {
            s.state_dir = f.clone();
            s.journal = crate::store::journal::files(&cfg.state_dir, Some(f));
        }
        s
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
                    // Delivered before this state knew of it: not again.
                    if a.delivered.contains_key(&(
                        channel.clone(),
                        n.kind.as_str().to_string(),
                        key.clone(),
                    )) {
                        continue;
                    }
                    // The state cannot be written: the local record is left out, the links
                    // are not (they work once the state can be written again).
                    let extra = crate::render::alert::Extra {
                        local: None,
                        links: a.links.map(|s| (s, n.kind, now)),
                    };
                    let item = crate::render::alert::item(
                        &n.incident,
                        a.kb,
                        *lang,
                        a.host,
                        a.sources,
                        extra,
                    );
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

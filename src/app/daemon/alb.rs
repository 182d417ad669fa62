//! ALB access-log objects, in a folder or an S3 bucket: listed every few seconds, each read
//! once, whole, a five-minute slot at a time, with a pipeline and an event clock of their own.

use super::*;

/// How often a folder of ALB objects is listed.
pub(super) const ALB_SCAN: Duration = Duration::from_secs(10);

/// How long without new ALB lines before ALB incidents may close on the wall clock.
pub(super) const ALB_SILENCE: Duration = Duration::from_secs(15 * 60);

/// A folder of ALB access-log objects (`*.log.gz`, as `aws s3 sync` leaves them). Every object
/// is read once, whole, and recorded in the state with the counts its lines added.
pub(super) struct AlbFolder {
    pub(super) location: AlbLocation,
    pub(super) source: u16,
    pub(super) skip_existing: bool,
    /// ALB logs arrive about five minutes late: they have their own pipeline and event clock,
    /// which moves only with their lines.
    pub(super) pipeline: Pipeline,
    pub(super) clock: Option<(i64, Instant)>,
    pub(super) last_scan: Option<Instant>,
    pub(super) objects: u64,
    pub(super) lines: u64,
    pub(super) unparsed: u64,
}

/// Where ALB objects are.
pub(super) enum AlbLocation {
    /// A folder, as `aws s3 sync` leaves it.
    Dir(PathBuf),
    /// A bucket and prefix, read directly.
    #[cfg(feature = "s3")]
    S3(Box<crate::source::s3::Bucket>),
}

impl AlbLocation {
    /// The finished `.log.gz` objects, by their end time: (path below the folder or prefix,
    /// size). For S3, listing starts after `offset`.
    pub(super) fn list(&self, offset: Option<&str>) -> anyhow::Result<Vec<(String, u64)>> {
        let mut v: Vec<(String, u64)> = match self {
            AlbLocation::Dir(d) => alb_objects(d).into_iter().map(|(o, s, _)| (o, s)).collect(),
            #[cfg(feature = "s3")]
            AlbLocation::S3(b) => b.list(offset)?,
        };
        let _ = offset;
        v.sort_by(|a, b| (alb_end_time(&a.0), &a.0).cmp(&(alb_end_time(&b.0), &b.0)));
        Ok(v)
    }

    /// A local file with the object's content: the object itself in a folder, a download
    /// (deleted after reading) for S3.
    pub(super) fn local(
        &self,
        object: &str,
        scratch: &Path,
        n: usize,
    ) -> anyhow::Result<(PathBuf, bool)> {
        let _ = (scratch, n);
        match self {
            AlbLocation::Dir(d) => Ok((d.join(object), false)),
            #[cfg(feature = "s3")]
            AlbLocation::S3(b) => {
                std::fs::create_dir_all(scratch)?;
                let to = scratch.join(format!("object-{n}.log.gz"));
                b.download(object, &to)?;
                Ok((to, true))
            }
        }
    }
}

/// The end of an ALB object's interval from its name (`…_20240501T1205Z_…`), for ordering.
pub(super) fn alb_end_time(name: &str) -> Option<&str> {
    name.split('_').find(|p| {
        let b = p.as_bytes();
        b.len() == 14
            && b[8] == b'T'
            && b[13] == b'Z'
            && b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    })
}

/// The `.log.gz` objects below a folder, finished (unchanged for two seconds): (path below the
/// folder, size).
pub(super) fn alb_objects(dir: &Path) -> Vec<(String, u64, PathBuf)> {
    pub(super) fn walk(d: &Path, root: &Path, depth: u32, out: &mut Vec<(String, u64, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() && depth < 12 {
                walk(&p, root, depth + 1, out);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            // Connection logs share the prefix; AWS's test object is not a log.
            if !m.is_file()
                || !name.ends_with(".log.gz")
                || name.starts_with("conn_log_")
                || name.contains("ELBAccessLogTestFile")
            {
                continue;
            }
            let settled = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= Duration::from_secs(2));
            if settled {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, m.len(), p));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, 0, &mut out);
    out.sort_by(|a, b| {
        let ka = (alb_end_time(&a.0), &a.0);
        let kb = (alb_end_time(&b.0), &b.0);
        ka.cmp(&kb)
    });
    out
}

impl Reader {
    /// Lists the ALB folders (every [`ALB_SCAN`]) and reads the objects not read yet, a slot
    /// of five minutes at a time, merged in time order; each slot is committed with its counts.
    pub(super) fn read_albs(&mut self) -> anyhow::Result<()> {
        let scratch = self.state.path().with_file_name("alb-download");
        let Reader {
            albs,
            state,
            counters,
            out,
            names,
            ..
        } = self;
        for a in albs.iter_mut() {
            if a.last_scan.is_some_and(|t| t.elapsed() < ALB_SCAN) {
                continue;
            }
            a.last_scan = Some(Instant::now());
            let source = names[a.source as usize].clone();
            let mut new = Vec::new();
            let offset = state.alb_offset(&source)?;
            for obj in a.location.list(offset.as_deref())? {
                if !state.alb_seen(&source, &obj.0)? {
                    new.push(obj);
                }
            }
            if a.skip_existing {
                // The first run starts from now: objects already there are history.
                a.skip_existing = false;
                if !new.is_empty() {
                    let skipped: Vec<(String, u64, i64)> =
                        new.iter().map(|(o, size)| (o.clone(), *size, -1)).collect();
                    state.commit_alb(
                        &source,
                        &skipped,
                        counters,
                        names,
                        Some((&alerting(out, names, &[]), &out.notices)),
                    )?;
                    out.committed();
                    log!(
                        Info,
                        "ALB objects there before the first run are not read",
                        source = source,
                        objects = skipped.len()
                    );
                }
                continue;
            }
            // One slot (same end time) at a time: its objects come from the balancer's nodes
            // and cover the same five minutes.
            let mut i = 0;
            while i < new.len() {
                let slot = alb_end_time(&new[i].0);
                let mut j = i + 1;
                while j < new.len()
                    && alb_end_time(&new[j].0) == slot
                    && slot.is_some()
                    && j - i < 256
                {
                    j += 1;
                }
                let batch = &new[i..j];
                let mut files = Vec::with_capacity(batch.len());
                let mut downloads = Vec::new();
                for (n, (o, _)) in batch.iter().enumerate() {
                    let (path, temporary) = a.location.local(o, &scratch, n)?;
                    files.push(path.display().to_string());
                    if temporary {
                        downloads.push(path);
                    }
                }
                let sources = vec![a.source; files.len()];
                let opts = crate::source::scan::ScanOptions {
                    format: Some(Format::Alb),
                    max_line: MAX_LINE,
                    ..Default::default()
                };
                let mut sink = ReaderSink {
                    counters,
                    out,
                    clock: &mut a.clock,
                    count_settled: true,
                };
                let reports = crate::source::scan::merge_into(
                    &files,
                    &sources,
                    &opts,
                    &mut a.pipeline,
                    &mut sink,
                );
                for d in &downloads {
                    let _ = std::fs::remove_file(d);
                }
                let reports = reports?;
                let done: Vec<(String, u64, i64)> = batch
                    .iter()
                    .zip(&reports)
                    .map(|((o, size), r)| (o.clone(), *size, r.lines as i64))
                    .collect();
                state.commit_alb(
                    &source,
                    &done,
                    counters,
                    names,
                    Some((&alerting(out, names, &[]), &out.notices)),
                )?;
                out.committed();
                for r in &reports {
                    a.lines += r.lines;
                    a.unparsed += r.unparsed;
                }
                a.objects += batch.len() as u64;
                log!(
                    Info,
                    "read ALB objects",
                    source = source,
                    objects = batch.len(),
                    slot = slot.unwrap_or("-")
                );
                i = j;
            }
        }
        Ok(())
    }
}

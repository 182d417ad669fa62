//! ALB access-log objects as a [`Source`]: a folder (as `aws s3 sync` leaves it) or an S3
//! bucket, listed every few seconds; every object read once, whole, a five-minute slot at a
//! time merged in time order, and recorded in the store's ledger with the counts of its lines.
//! Its lines arrive about five minutes late, so they move a clock of their own.

use super::{Clock, Context, Done, Emit, Ledger, Plan, Round, Source, SourceConfig, SourceStatus};
use crate::engine::event::Format;
use crate::log;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a folder or bucket of ALB objects is listed.
pub const ALB_SCAN: Duration = Duration::from_secs(10);

/// How long without new ALB lines before ALB incidents may close on the wall clock.
pub const ALB_SILENCE: Duration = Duration::from_secs(15 * 60);

/// Objects of one slot read together at most.
const MAX_SLOT: usize = 256;

/// Where ALB objects are.
pub enum AlbLocation {
    /// A folder, as `aws s3 sync` leaves it.
    Dir(PathBuf),
    /// A bucket and prefix, read directly.
    #[cfg(feature = "s3")]
    S3(Box<super::s3::Bucket>),
}

impl AlbLocation {
    /// `s3://bucket/prefix` or a folder.
    pub fn open(path: &str, cfg: &SourceConfig) -> anyhow::Result<AlbLocation> {
        if !path.starts_with("s3://") {
            return Ok(AlbLocation::Dir(PathBuf::from(path)));
        }
        #[cfg(feature = "s3")]
        {
            Ok(AlbLocation::S3(Box::new(super::s3::Bucket::open(
                path,
                cfg.endpoint.as_deref(),
                cfg.region.as_deref(),
            )?)))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = cfg;
            anyhow::bail!(
                "source {path}: this gatewatch was built without S3 support (cargo feature s3); sync the bucket to a folder and follow the folder"
            )
        }
    }

    /// The finished `.log.gz` objects, by their end time: (path below the folder or prefix,
    /// size). For S3, listing starts after `offset`.
    pub fn list(&self, offset: Option<&str>) -> anyhow::Result<Vec<(String, u64)>> {
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
    fn local(&self, object: &str, scratch: &Path, n: usize) -> anyhow::Result<(PathBuf, bool)> {
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
pub fn alb_end_time(name: &str) -> Option<&str> {
    name.split('_').find(|p| {
        let b = p.as_bytes();
        b.len() == 14
            && b[8] == b'T'
            && b[13] == b'Z'
            && b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
    })
}

/// The `.log.gz` objects below a folder, finished (unchanged for two seconds): (path below the
/// folder, size, path), by end time.
pub fn alb_objects(dir: &Path) -> Vec<(String, u64, PathBuf)> {
    fn walk(d: &Path, root: &Path, depth: u32, out: &mut Vec<(String, u64, PathBuf)>) {
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

/// An ALB `[[source]]`: one source, opened once.
pub struct AlbPlan(Option<AlbSource>);

impl AlbPlan {
    pub fn new(path: &str, cfg: &SourceConfig, ctx: &Context) -> anyhow::Result<AlbPlan> {
        Ok(AlbPlan(Some(AlbSource {
            name: path.to_string(),
            location: AlbLocation::open(path, cfg)?,
            scratch: ctx.scratch.clone(),
            skip_existing: cfg.start_at == super::StartAt::End && ctx.first_run,
            last_scan: None,
            queue: VecDeque::new(),
            done: Vec::new(),
            objects: 0,
            lines: 0,
            unparsed: 0,
            too_long: 0,
        })))
    }
}

impl Plan for AlbPlan {
    fn open(
        &mut self,
        _: &dyn Fn(&str) -> anyhow::Result<Option<super::Checkpoint>>,
    ) -> anyhow::Result<Vec<Box<dyn Source>>> {
        Ok(self
            .0
            .take()
            .map(|s| Box::new(s) as Box<dyn Source>)
            .into_iter()
            .collect())
    }
}

/// A folder or bucket of ALB objects.
pub struct AlbSource {
    name: String,
    location: AlbLocation,
    scratch: PathBuf,
    /// The first run starts from now: objects already there are history.
    skip_existing: bool,
    last_scan: Option<Instant>,
    /// Objects listed and not read yet, by end time.
    queue: VecDeque<(String, u64)>,
    /// Objects finished since the last commit.
    done: Vec<Done>,
    objects: u64,
    lines: u64,
    unparsed: u64,
    too_long: u64,
}

impl Source for AlbSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        Format::Alb
    }

    fn read(&mut self, ledger: &dyn Ledger, emit: &mut Emit<'_>) -> anyhow::Result<Round> {
        if self.queue.is_empty() {
            if self.last_scan.is_some_and(|t| t.elapsed() < ALB_SCAN) {
                return Ok(Round::default());
            }
            self.last_scan = Some(Instant::now());
            let offset = ledger.resume_after(&self.name)?;
            for obj in self.location.list(offset.as_deref())? {
                if !self.done.iter().any(|d| d.item == obj.0)
                    && !ledger.is_done(&self.name, &obj.0)?
                {
                    self.queue.push_back(obj);
                }
            }
            if self.skip_existing {
                self.skip_existing = false;
                if !self.queue.is_empty() {
                    log!(
                        Info,
                        "ALB objects there before the first run are not read",
                        source = self.name,
                        objects = self.queue.len()
                    );
                    self.done
                        .extend(self.queue.drain(..).map(|(item, size)| Done {
                            item,
                            size,
                            lines: -1,
                        }));
                }
                return Ok(Round::default());
            }
        }
        // One slot (same end time) at a time: its objects come from the balancer's nodes and
        // cover the same five minutes.
        let Some(first) = self.queue.front() else {
            return Ok(Round::default());
        };
        let slot = alb_end_time(&first.0).map(str::to_string);
        let mut n = 1;
        while n < self.queue.len()
            && slot.is_some()
            && alb_end_time(&self.queue[n].0) == slot.as_deref()
            && n < MAX_SLOT
        {
            n += 1;
        }
        let batch: Vec<(String, u64)> = self.queue.drain(..n).collect();
        let mut files = Vec::with_capacity(batch.len());
        let mut downloads = Vec::new();
        let fetched = (|| -> anyhow::Result<()> {
            for (i, (o, _)) in batch.iter().enumerate() {
                let (path, temporary) = self.location.local(o, &self.scratch, i)?;
                files.push(path.display().to_string());
                if temporary {
                    downloads.push(path);
                }
            }
            Ok(())
        })();
        if let Err(e) = fetched {
            for d in &downloads {
                let _ = std::fs::remove_file(d);
            }
            // Listed again, and fetched again, at the next scan.
            self.queue.clear();
            return Err(e);
        }
        // An object that cannot be opened (removed by `aws s3 sync --delete` meanwhile, say)
        // is recorded and said, not allowed to keep the rest of its slot from being read.
        let mut batch = batch;
        let mut i = 0;
        while i < files.len() {
            if let Err(e) = super::scan::open(&files[i]) {
                log!(
                    Error,
                    "an ALB object cannot be opened; it is not read",
                    source = self.name,
                    object = batch[i].0,
                    error = e
                );
                let (item, size) = batch.remove(i);
                self.done.push(Done {
                    item,
                    size,
                    lines: 0,
                });
                files.remove(i);
                continue;
            }
            i += 1;
        }
        let opts = super::scan::ScanOptions {
            format: Some(Format::Alb),
            max_line: super::file::MAX_LINE,
            ..Default::default()
        };
        let read = super::scan::read_merged(&files, &opts, emit);
        for d in &downloads {
            let _ = std::fs::remove_file(d);
        }
        let reports = match read {
            Ok(r) => r,
            Err(e) => {
                // Lines before the damage were counted: the slot is recorded as read, never
                // read (and counted) again.
                log!(
                    Error,
                    "an ALB object could not be read whole; the lines before the damage were counted and the slot is not read again",
                    source = self.name,
                    slot = slot.as_deref().unwrap_or("-"),
                    error = format!("{e:#}")
                );
                vec![Default::default(); batch.len()]
            }
        };
        let mut lines = 0;
        for ((item, size), r) in batch.iter().zip(&reports) {
            self.done.push(Done {
                item: item.clone(),
                size: *size,
                lines: r.lines as i64,
            });
            lines += r.lines;
            self.unparsed += r.unparsed;
            self.too_long += r.too_long;
        }
        self.lines += lines;
        self.objects += batch.len() as u64;
        log!(
            Info,
            "read ALB objects",
            source = self.name,
            objects = batch.len(),
            slot = slot.as_deref().unwrap_or("-")
        );
        Ok(Round {
            lines,
            more: !self.queue.is_empty(),
        })
    }

    fn done(&self) -> &[Done] {
        &self.done
    }

    fn committed(&mut self) {
        self.done.clear();
    }

    fn clock(&self) -> Clock {
        Clock::Own { quiet: ALB_SILENCE }
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            format: format!("alb ({} objects)", self.objects),
            lines: self.lines,
            unparsed: self.unparsed,
            too_long: self.too_long,
            lag_bytes: 0,
            ..Default::default()
        }
    }
}

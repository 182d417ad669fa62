//! Following one log file through rotation, truncation and restarts, delivering every line once.
//!
//! A file is identified by `(dev, inode)` **and** a fingerprint of its first bytes, so a reused
//! inode is not mistaken for the file it replaced (vector #23076). Reading resumes from a
//! [`Checkpoint`]: the offset just after the last complete line delivered.
//!
//! * **rename + create** (logrotate's default, nginx's Debian setup): the renamed file stays
//!   open and is read to its end (`draining`) while the new file is read from its start.
//! * **copytruncate**: the truncation is seen as a size below the offset; the unread end of the
//!   old content is taken from the copy (`access.log.1`, recognised by its fingerprint) before
//!   reading the truncated file from its start.
//! * **delete + re-create**: like a rename, the open file is read to its end.
//! * **restarts**: a checkpoint whose inode is no longer at the path is looked for among the
//!   rotated siblings (`access.log.1`, `access.log-20240501`), so lines written before a rotation
//!   that happened while gatewatch was down are still read (vector #22954).
//! * A partial last line waits for its newline; a line longer than the limit is skipped and
//!   reported, never kept whole in memory.
//!
//! This is IO code: it reads files and the clock. It delivers lines to a callback and never
//! decides what they mean.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes of a file's start that identify it.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// `(dev, inode)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A hash of a file's first `len` bytes (FNV-1a: stable across versions, so checkpoints stay
/// valid after an upgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint {
            len: bytes.len() as u32,
            hash: h,
        }
    }

    /// The fingerprint of an open file's first `len` bytes; `None` when it is shorter.
    fn read(file: &mut File, len: u32) -> io::Result<Option<Fingerprint>> {
        let mut buf = vec![0; len as usize];
        file.seek(SeekFrom::Start(0))?;
        let mut got = 0;
        while got < buf.len() {
            let n = file.read(&mut buf[got..])?;
            if n == 0 {
                return Ok(None);
            }
            got += n;
        }
        Ok(Some(Fingerprint::of(&buf)))
    }
}

/// Whether a checkpoint is for the file being followed at the path, or for a rotated-away file
/// still being read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Current,
    Draining,
}

/// Where reading stopped in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The configured path being followed.
    pub path: PathBuf,
    pub role: Role,
    pub id: FileId,
    pub fingerprint: Fingerprint,
    /// Just after the last complete line delivered.
    pub offset: u64,
    /// The file's length when the checkpoint was taken (`None`: not known, e.g. saved by an
    /// older gatewatch). Equal to `offset`: the file had been read to its end.
    pub size: Option<u64>,
}

/// What a tailer delivers.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<'a> {
    /// A complete line, without its newline.
    Line(&'a [u8]),
    /// A line longer than the limit was skipped.
    TooLong,
}

/// Notable things that happened to the file; counted and logged by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Opened {
        file: PathBuf,
        offset: u64,
    },
    Rotated {
        old: FileId,
    },
    Truncated {
        continued_in: Option<PathBuf>,
    },
    /// A checkpoint could not be matched to any file: its unread lines are gone.
    /// `read_to_end`: the file had been read to its end when the checkpoint was taken (a
    /// rotated file removed while gatewatch was stopped): nothing read was left behind.
    Lost {
        id: FileId,
        offset: u64,
        read_to_end: bool,
    },
    Closed {
        id: FileId,
    },
    Error(String),
}

/// Where reading starts in a file seen for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
}

#[derive(Debug)]
struct Reading {
    file: File,
    id: FileId,
    fp: Fingerprint,
    offset: u64,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    /// When a draining file last grew (or was opened).
    last_growth: Instant,
    /// The name it was found under, for messages.
    name: PathBuf,
}

/// Follows one configured path.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    max_line: usize,
    /// How long a rotated-away file is kept open after it stops growing (the proxy may still
    /// write to it until it reopens its log).
    rotate_wait: Duration,
    current: Option<Reading>,
    draining: Vec<Reading>,
    buf: Vec<u8>,
    /// Whether the next file found at the path is new (read from its start) or was there before
    /// gatewatch ever looked (read from `start`).
    first_look: bool,
    start: Start,
}

/// Most bytes read from one file per poll, so a large backlog is processed (and checkpointed) in
/// steps.
const CHUNK: usize = 1 << 20;

fn file_id(m: &fs::Metadata) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

impl Tailer {
    /// A tailer for `path`. `checkpoints` are the ones saved for this path; `start` applies to a
    /// file that exists when gatewatch first looks at the path and has no checkpoint.
    pub fn new(
        path: PathBuf,
        checkpoints: &[Checkpoint],
        start: Start,
        max_line: usize,
        rotate_wait: Duration,
        notices: &mut Vec<Notice>,
    ) -> Tailer {
        let mut t = Tailer {
            path,
            max_line,
            rotate_wait,
            current: None,
            draining: Vec::new(),
            buf: vec![0; CHUNK.max(max_line + 1)],
            first_look: checkpoints.is_empty(),
            start,
        };
        t.restore(checkpoints, notices);
        t
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoints to save: one per open file.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        let mut v = Vec::new();
        for (r, role) in self
            .current
            .iter()
            .map(|r| (r, Role::Current))
            .chain(self.draining.iter().map(|r| (r, Role::Draining)))
        {
            v.push(Checkpoint {
                path: self.path.clone(),
                role,
                id: r.id,
                fingerprint: r.fp,
                offset: r.offset,
                size: r.file.metadata().ok().map(|m| m.len()),
            });
        }
        v
    }

    /// Total bytes not yet read (the lag), across open files.
    pub fn lag_bytes(&self) -> u64 {
        self.current
            .iter()
            .chain(&self.draining)
            .map(|r| {
                r.file
                    .metadata()
                    .map_or(0, |m| m.len().saturating_sub(r.offset))
            })
            .sum()
    }

    /// Files a rotated or copied log may be found under: `access.log.1`, `access.log-20240501`,
    /// uncompressed, in the same folder.
    fn siblings(&self) -> Vec<PathBuf> {
        let (Some(dir), Some(base)) = (self.path.parent(), self.path.file_name()) else {
            return Vec::new();
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let base = base.to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix(&base)?;
                let compressed = [".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"]
                    .iter()
                    .any(|ext| rest.ends_with(ext));
                ((rest.starts_with('.') || rest.starts_with('-')) && !compressed).then(|| e.path())
            })
            .collect();
        v.sort();
        v
    }

    /// Finds the file a checkpoint was for: at the path, or among the siblings; by inode and
    /// fingerprint, or (for a copy) by fingerprint alone.
    fn locate(&self, cp: &Checkpoint, by_inode: bool) -> Option<(File, PathBuf, FileId)> {
        let candidates = std::iter::once(self.path.clone()).chain(self.siblings());
        for p in candidates {
            let Ok(mut f) = File::open(&p) else { continue };
            let Ok(m) = f.metadata() else { continue };
            if !m.is_file() {
                continue;
            }
            let id = file_id(&m);
            if by_inode && id != cp.id {
                continue;
            }
            if m.len() < cp.offset {
                continue;
            }
            if Fingerprint::read(&mut f, cp.fingerprint.len).ok().flatten() == Some(cp.fingerprint)
            {
                return Some((f, p, id));
            }
        }
        None
    }

    fn restore(&mut self, checkpoints: &[Checkpoint], notices: &mut Vec<Notice>) {
        for cp in checkpoints {
            // By inode first; then by content alone, for a copy made by copytruncate while
            // gatewatch was down (the original, truncated, no longer holds the offset).
            let found = self.locate(cp, true).or_else(|| self.locate(cp, false));
            match found {
                Some((file, name, id)) => {
                    let at_path = name == self.path;
                    let r = Reading {
                        file,
                        id,
                        fp: cp.fingerprint,
                        offset: cp.offset,
                        skipping: false,
                        last_growth: Instant::now(),
                        name: name.clone(),
                    };
                    notices.push(Notice::Opened {
                        file: name,
                        offset: cp.offset,
                    });
                    if cp.role == Role::Current && at_path && self.current.is_none() {
                        self.current = Some(r);
                    } else {
                        self.draining.push(r);
                    }
                }
                None => notices.push(Notice::Lost {
                    id: cp.id,
                    offset: cp.offset,
                    read_to_end: cp.size == Some(cp.offset),
                }),
            }
            // The file itself, truncated and written again while gatewatch was down, then
            // rotated: its new content is read from the start. (At the path, the first poll
            // does that.)
            if !self
                .current
                .iter()
                .chain(&self.draining)
                .any(|r| r.id == cp.id)
                && let Some((file, name)) = self.sibling_with_inode(cp.id)
            {
                notices.push(Notice::Opened {
                    file: name.clone(),
                    offset: 0,
                });
                let mut r = Reading {
                    file,
                    id: cp.id,
                    fp: Fingerprint::default(),
                    offset: 0,
                    skipping: false,
                    last_growth: Instant::now(),
                    name,
                };
                refresh_fingerprint(&mut r);
                self.draining.push(r);
            }
        }
        // The followed file was rotated while gatewatch was down: files rotated after it are
        // read too (the newest, at the path, by the first poll).
        let moved = checkpoints
            .iter()
            .filter(|cp| cp.role == Role::Current)
            .find_map(|cp| {
                self.draining
                    .iter()
                    .find(|r| r.id == cp.id || r.fp == cp.fingerprint && r.offset == cp.offset)
                    .and_then(|r| r.file.metadata().ok())
            });
        if let Some(anchor) = moved {
            self.rotated_since(&anchor, notices);
        }
    }

    /// A rotated sibling (not the path itself) with this inode.
    fn sibling_with_inode(&self, id: FileId) -> Option<(File, PathBuf)> {
        self.siblings().into_iter().find_map(|p| {
            let f = File::open(&p).ok()?;
            let m = f.metadata().ok()?;
            (m.is_file() && file_id(&m) == id).then_some((f, p))
        })
    }

    /// Rotated siblings (`access.log.1`, `access.log-20240501`) that came after `anchor` —
    /// the file whose content was being read, now rotated away — and are neither open nor the
    /// file at the path: a log rotated more than once between two looks (while gatewatch was
    /// down or busy) left them in between. They are read from their start, oldest first, after
    /// the files already draining.
    ///
    /// "Came after" is strict on both times: created after the anchor (an older rotated file,
    /// written late by the proxy, is not) and last written after it (a copy of the anchor's
    /// earlier content, made by copytruncate, is not). Without creation times (a file system
    /// that keeps none) nothing is added.
    fn rotated_since(&mut self, anchor: &fs::Metadata, notices: &mut Vec<Notice>) {
        let (Ok(born), Ok(written)) = (anchor.created(), anchor.modified()) else {
            return;
        };
        let path_id = fs::metadata(&self.path).ok().map(|m| file_id(&m));
        let known: Vec<FileId> = self
            .current
            .iter()
            .chain(&self.draining)
            .map(|r| r.id)
            .chain(path_id)
            .collect();
        let mut found: Vec<(std::time::SystemTime, Reading)> = self
            .siblings()
            .into_iter()
            .filter(|p| {
                // Only this log's own rotations: the base name and a suffix of digits and
                // separators (`.1`, `-20240501`, `.2024-05-01`), not `access.log-api.1`.
                let base = self
                    .path
                    .file_name()
                    .map(|b| b.to_string_lossy().into_owned());
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                let rest = base
                    .zip(name)
                    .and_then(|(b, n)| n.strip_prefix(b.as_str()).map(str::to_string));
                rest.is_some_and(|r| {
                    r.len() > 1
                        && r.starts_with(['.', '-'])
                        && r.bytes().any(|b| b.is_ascii_digit())
                        && r.bytes().all(|b| b.is_ascii_digit() || b"._-".contains(&b))
                })
            })
            .filter_map(|p| {
                let file = File::open(&p).ok()?;
                let m = file.metadata().ok()?;
                let modified = m.modified().ok()?;
                let later = m.created().ok()? > born && modified > written;
                let id = file_id(&m);
                (m.is_file() && !known.contains(&id) && later).then(|| {
                    let mut r = Reading {
                        file,
                        id,
                        fp: Fingerprint::default(),
                        offset: 0,
                        skipping: false,
                        last_growth: Instant::now(),
                        name: p,
                    };
                    refresh_fingerprint(&mut r);
                    (modified, r)
                })
            })
            .collect();
        found.sort_by_key(|(t, _)| *t);
        for (_, r) in found {
            notices.push(Notice::Opened {
                file: r.name.clone(),
                offset: 0,
            });
            self.draining.push(r);
        }
    }

    /// Reads what is new: checks the path for rotation and truncation, reads rotated-away files
    /// to their end, and delivers up to about a megabyte of lines per file. Returns true when
    /// more is already waiting (call again before sleeping).
    pub fn poll(
        &mut self,
        notices: &mut Vec<Notice>,
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) -> bool {
        let mut more = false;
        self.check_path(notices);
        // Rotated-away files first: their lines are older.
        let mut i = 0;
        while i < self.draining.len() {
            let r = &mut self.draining[i];
            match read_lines(r, &mut self.buf, self.max_line, deliver) {
                Ok(ReadResult::More) => {
                    // Its backlog first: the files after it hold later lines.
                    return true;
                }
                Ok(ReadResult::Grew) => i += 1,
                Ok(ReadResult::Idle) if r.last_growth.elapsed() < self.rotate_wait => i += 1,
                Ok(ReadResult::Idle) => {
                    let r = self.draining.remove(i);
                    notices.push(Notice::Closed { id: r.id });
                }
                Err(e) => {
                    let r = self.draining.remove(i);
                    notices.push(Notice::Error(format!("{}: {e}", r.name.display())));
                }
            }
        }

        if let Some(r) = &mut self.current {
            match read_lines(r, &mut self.buf, self.max_line, deliver) {
                Ok(ReadResult::More) => more = true,
                Ok(_) => {}
                Err(e) => {
                    notices.push(Notice::Error(format!("{}: {e}", self.path.display())));
                    self.current = None;
                }
            }
        }
        more
    }

    /// Looks at what is at the path now.
    fn check_path(&mut self, notices: &mut Vec<Notice>) {
        let first_look = std::mem::replace(&mut self.first_look, false);
        // The open file first: truncated (copytruncate) or rewritten in place, whatever now
        // stands at the path.
        self.check_truncation(notices);
        let meta = match fs::metadata(&self.path) {
            Ok(m) if m.is_file() => m,
            _ => {
                // Gone (deleted or renamed away): read what is left of the open file, and of
                // any rotated after it.
                if let Some(r) = self.current.take() {
                    notices.push(Notice::Rotated { old: r.id });
                    let anchor = r.file.metadata().ok();
                    self.draining.push(r);
                    if let Some(anchor) = anchor {
                        self.rotated_since(&anchor, notices);
                    }
                }
                return;
            }
        };
        let id = file_id(&meta);
        match &self.current {
            Some(r) if r.id == id => return,
            Some(_) => {
                // Rotated: the old file is read to its end, the new one from its start, and
                // any rotated in between (more than one rotation since the last look) too.
                let r = self.current.take().expect("current");
                notices.push(Notice::Rotated { old: r.id });
                let anchor = r.file.metadata().ok();
                self.draining.push(r);
                if let Some(anchor) = anchor {
                    self.rotated_since(&anchor, notices);
                }
            }
            None => {}
        }
        // Nothing open: a file has appeared (or was there at the first look). Its identity is
        // the opened file's (the path may have been rotated again since the look above).
        let Ok(file) = File::open(&self.path) else {
            return;
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        let id = file_id(&meta);
        let offset = if first_look && self.start == Start::End {
            meta.len()
        } else {
            0
        };
        let mut r = Reading {
            file,
            id,
            fp: Fingerprint::default(),
            offset,
            skipping: false,
            last_growth: Instant::now(),
            name: self.path.clone(),
        };
        refresh_fingerprint(&mut r);
        notices.push(Notice::Opened {
            file: self.path.clone(),
            offset,
        });
        self.current = Some(r);
    }

    /// When the open file is shorter than what was read, or no longer starts with the same
    /// bytes, its old content was truncated away: the unread end may be in a copy
    /// (copytruncate), which is then read from the offset; the file itself is read again from
    /// its start.
    fn check_truncation(&mut self, notices: &mut Vec<Notice>) {
        let Some(r) = &mut self.current else { return };
        let Ok(len) = r.file.metadata().map(|m| m.len()) else {
            return;
        };
        if len >= r.offset && same_start(r) {
            return;
        }
        let old = Checkpoint {
            path: self.path.clone(),
            role: Role::Draining,
            id: r.id,
            fingerprint: r.fp,
            offset: r.offset,
            size: None,
        };
        let copy = self
            .locate(&old, false)
            .filter(|(_, _, cid)| *cid != old.id);
        let continued_in = copy.as_ref().map(|(_, n, _)| n.clone());
        if let Some((file, name, cid)) = copy
            && !self.draining.iter().any(|d| d.id == cid)
        {
            let anchor = file.metadata().ok();
            self.draining.push(Reading {
                file,
                id: cid,
                fp: old.fingerprint,
                offset: old.offset,
                skipping: false,
                last_growth: Instant::now(),
                name,
            });
            // Copied and truncated more than once since the last look: the later copies.
            if let Some(anchor) = anchor {
                self.rotated_since(&anchor, notices);
            }
        }
        notices.push(Notice::Truncated { continued_in });
        let r = self.current.as_mut().expect("current");
        r.offset = 0;
        r.fp = Fingerprint::default();
        r.skipping = false;
    }
}

/// Whether the file still starts with the bytes it was fingerprinted by.
fn same_start(r: &mut Reading) -> bool {
    if r.fp.len == 0 {
        return true;
    }
    Fingerprint::read(&mut r.file, r.fp.len).ok().flatten() == Some(r.fp)
}

/// Extends the fingerprint while the file is shorter than [`FINGERPRINT_BYTES`].
fn refresh_fingerprint(r: &mut Reading) {
    if (r.fp.len as u64) >= FINGERPRINT_BYTES {
        return;
    }
    let Ok(m) = r.file.metadata() else { return };
    let len = m.len().min(FINGERPRINT_BYTES) as u32;
    if len > r.fp.len
        && let Ok(Some(fp)) = Fingerprint::read(&mut r.file, len)
    {
        r.fp = fp;
    }
}

enum ReadResult {
    /// Read a full chunk; there may be more.
    More,
    /// Read something.
    Grew,
    /// Nothing new.
    Idle,
}

/// Reads from the offset to the end (at most a chunk) and delivers the complete lines.
fn read_lines(
    r: &mut Reading,
    buf: &mut [u8],
    max_line: usize,
    deliver: &mut dyn FnMut(Delivery<'_>),
) -> io::Result<ReadResult> {
    let len = r.file.metadata()?.len();
    if len <= r.offset {
        return Ok(ReadResult::Idle);
    }
    refresh_fingerprint(r);
    r.file.seek(SeekFrom::Start(r.offset))?;
    let want = ((len - r.offset) as usize).min(buf.len());
    let mut got = 0;
    while got < want {
        match r.file.read(&mut buf[got..want]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let data = &buf[..got];
    let mut start = 0;
    while let Some(i) = memchr::memchr(b'\n', &data[start..]) {
        let line = &data[start..start + i];
        if r.skipping {
            r.skipping = false;
            deliver(Delivery::TooLong);
        } else if line.len() > max_line {
            deliver(Delivery::TooLong);
        } else {
            deliver(Delivery::Line(line));
        }
        start += i + 1;
    }
    let pending = got - start;
    if pending > max_line {
        // No newline within the limit: skip what we have, keep skipping to the next newline.
        r.skipping = true;
        start = got;
    }
    r.offset += start as u64;
    if start > 0 || got > 0 {
        r.last_growth = Instant::now();
    }
    Ok(if got == buf.len() {
        ReadResult::More
    } else if start > 0 {
        ReadResult::Grew
    } else {
        ReadResult::Idle
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(t: &mut Tailer) -> Vec<String> {
        let mut out = Vec::new();
        let mut notices = Vec::new();
        while t.poll(&mut notices, &mut |d| match d {
            Delivery::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
            Delivery::TooLong => out.push("<too long>".into()),
        }) {}
        out
    }

    fn append(p: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn tailer(p: &Path, cps: &[Checkpoint], start: Start) -> Tailer {
        Tailer::new(
            p.to_path_buf(),
            cps,
            start,
            100,
            Duration::ZERO,
            &mut Vec::new(),
        )
    }

    /// The notices of a tailer started from `cps` on a folder where the file is gone.
    fn notices_after_restart(p: &Path, cps: &[Checkpoint]) -> Vec<Notice> {
        let mut notices = Vec::new();
        Tailer::new(
            p.to_path_buf(),
            cps,
            Start::Beginning,
            100,
            Duration::ZERO,
            &mut notices,
        );
        notices
    }

    #[test]
    fn a_file_read_to_its_end_and_removed_is_not_reported_as_unread_lines_lost() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "one\ntwo\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["one", "two"]);
        let read_whole = t.checkpoints();
        assert_eq!(read_whole[0].size, Some(read_whole[0].offset));
        // Written after the checkpoint: the checkpoint knows the file held more.
        append(&p, "three\n");
        let behind = t.checkpoints();
        assert!(behind[0].size > Some(behind[0].offset));
        drop(t);
        // Rotated away and removed while gatewatch was stopped.
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        fs::remove_file(dir.path().join("access.log.1")).unwrap();
        let lost = |n: &[Notice]| {
            n.iter()
                .find_map(|n| match n {
                    Notice::Lost { read_to_end, .. } => Some(*read_to_end),
                    _ => None,
                })
                .expect("the checkpoint is reported")
        };
        assert!(lost(&notices_after_restart(&p, &read_whole)));
        assert!(!lost(&notices_after_restart(&p, &behind)));
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert!(lines(&mut t).is_empty());
        append(&p, "one\ntw");
        assert_eq!(lines(&mut t), ["one"]);
        append(&p, "o\nthree\n");
        assert_eq!(lines(&mut t), ["two", "three"]);
    }

    #[test]
    fn an_existing_file_is_read_from_its_end_on_the_first_run_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "old\n");
        let mut t = tailer(&p, &[], Start::End);
        assert!(lines(&mut t).is_empty());
        append(&p, "new\n");
        assert_eq!(lines(&mut t), ["new"]);
        // A file created later (after a rotation) is read from its start.
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        append(&p, "fresh\n");
        assert_eq!(lines(&mut t), ["fresh"]);
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "a\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["a"]);
        append(&p, "b\n");
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        append(&dir.path().join("access.log.1"), "c\n"); // the proxy has not reopened yet
        append(&p, "d\n");
        assert_eq!(lines(&mut t), ["b", "c", "d"]);
    }

    #[test]
    fn copytruncate_continues_in_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "a\nb\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["a", "b"]);
        append(&p, "c\nd\n");
        fs::copy(&p, dir.path().join("access.log.1")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        append(&p, "e\n");
        assert_eq!(lines(&mut t), ["c", "d", "e"]);
    }

    #[test]
    fn restart_resumes_and_finds_a_file_rotated_while_down() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "a\nb\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["a", "b"]);
        let cps = t.checkpoints();
        drop(t);
        append(&p, "c\n");
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        append(&p, "d\n");
        let mut t = tailer(&p, &cps, Start::End);
        assert_eq!(lines(&mut t), ["c", "d"]);
    }

    #[test]
    fn two_rotations_while_down_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        // An older rotated file and an unrelated log that only shares the prefix.
        append(&dir.path().join("access.log.3"), "old\n");
        append(&p, "a\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["a"]);
        let cps = t.checkpoints();
        drop(t);
        append(&p, "b\n");
        fs::rename(&p, dir.path().join("access.log.2")).unwrap();
        // File times are kept at the kernel's tick: the next file is written a tick later.
        std::thread::sleep(Duration::from_millis(20));
        append(&p, "c\n");
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        append(&p, "d\n");
        // Another log sharing the prefix, rotated in the same run: not this log's.
        for other in [
            "access.log-api",
            "access.log-api.1",
            "access.log-api-20240501",
        ] {
            append(&dir.path().join(other), "another log\n");
        }
        let mut t = tailer(&p, &cps, Start::End);
        assert_eq!(lines(&mut t), ["b", "c", "d"]);
    }

    #[test]
    fn two_rotations_between_two_looks_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "a\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["a"]);
        append(&p, "b\n");
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        append(&p, "c\n");
        fs::rename(
            dir.path().join("access.log.1"),
            dir.path().join("access.log.2"),
        )
        .unwrap();
        fs::rename(&p, dir.path().join("access.log.1")).unwrap();
        append(&p, "d\n");
        assert_eq!(lines(&mut t), ["b", "c", "d"]);
        // Nothing read twice afterwards.
        append(&p, "e\n");
        assert_eq!(lines(&mut t), ["e"]);
    }

    #[test]
    fn a_reused_inode_is_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        append(&p, "first file, first line\n");
        let mut t = tailer(&p, &[], Start::Beginning);
        assert_eq!(lines(&mut t).len(), 1);
        let mut cps = t.checkpoints();
        drop(t);
        // Same inode (as a reused one would be), other content, longer than the offset.
        fs::write(&p, "second file!! first line\nsecond line\n").unwrap();
        cps[0].id = file_id(&fs::metadata(&p).unwrap());
        let mut t = tailer(&p, &cps, Start::End);
        assert_eq!(lines(&mut t), ["second file!! first line", "second line"]);
    }

    #[test]
    fn a_symlink_switched_to_a_new_target_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("app-1.log");
        let b = dir.path().join("app-2.log");
        let link = dir.path().join("current.log");
        append(&a, "a1\n");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let mut t = tailer(&link, &[], Start::Beginning);
        assert_eq!(lines(&mut t), ["a1"]);
        append(&a, "a2\n");
        append(&b, "b1\n");
        let tmp = dir.path().join("current.tmp");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        fs::rename(&tmp, &link).unwrap();
        assert_eq!(lines(&mut t), ["a2", "b1"]);
    }

    #[test]
    fn overlong_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        let mut t = tailer(&p, &[], Start::Beginning);
        append(&p, &format!("ok\n{}\nok2\n", "x".repeat(5000)));
        assert_eq!(lines(&mut t), ["ok", "<too long>", "ok2"]);
        append(&p, &"y".repeat(3 * CHUNK));
        assert_eq!(lines(&mut t), Vec::<String>::new());
        append(&p, "\nok3\n");
        assert_eq!(lines(&mut t), ["<too long>", "ok3"]);
    }
}

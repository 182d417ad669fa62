//! The tailer against real files: random sequences of writes, rename rotations, copytruncate,
//! delete + re-create and restarts; every line written is delivered exactly once.

use gatewatch::source::tail::{Delivery, Start, Tailer};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    /// Append this many lines to the log (creating it if needed).
    Write(u8),
    /// logrotate's default: rename the log away (a new one appears with the next write).
    Rotate,
    /// The proxy, not yet told to reopen its log, writes on into the renamed file.
    WriteRotated(u8),
    /// Two rename rotations before the tailer looks again (or while it is stopped): the log
    /// in between, with this many lines, was never seen at the path.
    RotateTwice(u8),
    /// logrotate's copytruncate: copy the log, then truncate it.
    CopyTruncate,
    /// Delete the log (a new one appears with the next write).
    Delete,
    /// Let the tailer read.
    Poll,
    /// Save checkpoints, stop the tailer, start a new one from the checkpoints.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Write),
        1 => Just(Op::Rotate),
        1 => (1u8..4).prop_map(Op::RotateTwice),
        1 => (1u8..4).prop_map(Op::WriteRotated),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Delete),
        3 => Just(Op::Poll),
        1 => Just(Op::Restart),
    ]
}

struct Model<'a> {
    dir: &'a Path,
    log: std::path::PathBuf,
    next_id: u32,
    rotations: u32,
    tailer: Tailer,
    delivered: BTreeMap<u32, u32>,
    /// The tailer has looked at the current log since it was created (it holds it open).
    seen: bool,
    /// The tailer has read part of the current log (it knows its fingerprint).
    read_some: bool,
    /// A log was deleted and the tailer has not read it since: only its open descriptor keeps
    /// the lines, so a restart now would lose them (as it would for any reader).
    deleted_unread: bool,
    /// The file renamed away by the last rotation, while the tailer has not read since.
    rotated_unread: Option<std::path::PathBuf>,
}

impl Model<'_> {
    fn poll(&mut self) {
        let mut notices = Vec::new();
        let delivered = &mut self.delivered;
        loop {
            let more = self.tailer.poll(&mut notices, &mut |d| match d {
                Delivery::Line(l) => {
                    let id: u32 = std::str::from_utf8(l)
                        .unwrap()
                        .strip_prefix("line ")
                        .unwrap()
                        .parse()
                        .unwrap();
                    *delivered.entry(id).or_default() += 1;
                }
                Delivery::TooLong => panic!("no line is too long here"),
            });
            if !more {
                break;
            }
        }
        self.deleted_unread = false;
        self.rotated_unread = None;
        if self.log.exists() {
            self.seen = true;
            self.read_some |= fs::metadata(&self.log).unwrap().len() > 0;
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Write(n) => {
                if !self.log.exists() {
                    self.seen = false;
                    self.read_some = false;
                }
                let mut f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap();
                for _ in 0..*n {
                    writeln!(f, "line {}", self.next_id).unwrap();
                    self.next_id += 1;
                }
            }
            // Rotations of a file the tailer never looked at would lose lines in any tailer
            // (it cannot know the file existed); the model rotates files it has seen.
            Op::Rotate if self.log.exists() && self.seen => {
                self.rotations += 1;
                let to = self.dir.join(format!("access.log-{}", self.rotations));
                fs::rename(&self.log, &to).unwrap();
                self.rotated_unread = Some(to);
            }
            Op::RotateTwice(n) if self.log.exists() && self.seen => {
                // File times move at the kernel's tick: each file is written a tick after the
                // one before, as rotations a day (or a minute) apart are.
                let tick = || std::thread::sleep(Duration::from_millis(10));
                self.rotations += 1;
                fs::rename(
                    &self.log,
                    self.dir.join(format!("access.log-{}", self.rotations)),
                )
                .unwrap();
                tick();
                let mut f = fs::File::create(&self.log).unwrap();
                for _ in 0..*n {
                    writeln!(f, "line {}", self.next_id).unwrap();
                    self.next_id += 1;
                }
                drop(f);
                self.rotations += 1;
                let to = self.dir.join(format!("access.log-{}", self.rotations));
                fs::rename(&self.log, &to).unwrap();
                tick();
                self.rotated_unread = Some(to);
            }
            Op::WriteRotated(n) => {
                if let Some(old) = &self.rotated_unread {
                    let mut f = fs::OpenOptions::new().append(true).open(old).unwrap();
                    for _ in 0..*n {
                        writeln!(f, "line {}", self.next_id).unwrap();
                        self.next_id += 1;
                    }
                }
            }
            Op::CopyTruncate if self.log.exists() && self.read_some => {
                self.rotations += 1;
                let to = self.dir.join(format!("access.log-{}", self.rotations));
                fs::copy(&self.log, to).unwrap();
                fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.log)
                    .unwrap();
                self.read_some = false;
            }
            Op::Delete if self.log.exists() && self.seen => {
                fs::remove_file(&self.log).unwrap();
                self.deleted_unread = true;
            }
            Op::Poll => self.poll(),
            Op::Restart if !self.deleted_unread => {
                let cps = self.tailer.checkpoints();
                self.tailer = Tailer::new(
                    self.log.clone(),
                    &cps,
                    Start::Beginning,
                    1000,
                    Duration::ZERO,
                    &mut Vec::new(),
                );
                self.seen = false;
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_line_is_delivered_exactly_once(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let tailer = Tailer::new(log.clone(), &[], Start::Beginning, 1000, Duration::ZERO, &mut Vec::new());
        let mut m = Model {
            dir: dir.path(),
            log,
            next_id: 0,
            rotations: 0,
            tailer,
            delivered: BTreeMap::new(),
            seen: false,
            read_some: false,
            deleted_unread: false,
            rotated_unread: None,
        };
        for op in &ops {
            m.apply(op);
        }
        // Drain: read what is left, then once more so rotated files are read to their end.
        m.poll();
        m.poll();
        let missing: Vec<u32> = (0..m.next_id).filter(|id| !m.delivered.contains_key(id)).collect();
        let twice: Vec<(&u32, &u32)> = m.delivered.iter().filter(|(_, n)| **n > 1).collect();
        prop_assert!(missing.is_empty(), "lines never delivered: {:?} ({:?})", missing, ops);
        prop_assert!(twice.is_empty(), "lines delivered more than once: {:?} ({:?})", twice, ops);
        prop_assert_eq!(m.delivered.len() as u32, m.next_id);
    }
}

//! The delivery journal: one line per message a channel accepted — when, the channel, the
//! change (opened, reminder, resolved), its id and the incidents it was about — appended to a
//! small file beside the state file, and to the runtime folder when that cannot be written.
//! It outlives a state file that is damaged, replaced or full: a fresh state that reads the
//! logs again finds those changes already delivered and records them as sent under the ids they
//! went out with, instead of announcing them a second time.
//!
//! Lines are tab-separated: `ms channel kind id key,key,…`. Entries older than the outbox's
//! retention are dropped when the journal is read.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's file name, in the state folder and in the runtime folder.
pub const FILE_NAME: &str = "gatewatch-delivered.journal";

/// What was delivered: (channel, kind, incident key) → the message's id.
pub type Delivered = HashMap<(String, String, String), String>;

/// The runtime folder: systemd's `$RUNTIME_DIRECTORY` (kept across restarts of the service,
/// on another file system than the state), else the temporary folder.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// The journal files of a state folder, in the order they are tried: beside the state file in
/// use (`in_use`, a fallback folder, when it is not the configured one), beside the configured
/// one, and in the runtime folder under a name of the configured folder's own (gatewatch
/// instances with other state folders keep their own journals there).
pub fn files(configured: &Path, in_use: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = in_use.filter(|d| *d != configured) {
        v.push(d.join(FILE_NAME));
    }
    v.push(configured.join(FILE_NAME));
    let tag = crate::source::tail::Fingerprint::of(configured.as_os_str().as_encoded_bytes()).hash;
    v.push(runtime_dir().join(format!("gatewatch-delivered-{tag:016x}.journal")));
    v
}

/// Records a delivered message in the first file where that works (the line is flushed to the
/// disk before this returns). False when none worked.
pub fn append(
    files: &[PathBuf],
    now_ms: i64,
    channel: &str,
    kind: &str,
    id: &str,
    keys: &[String],
) -> bool {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let line = format!(
        "{now_ms}\t{}\t{kind}\t{}\t{}\n",
        clean(channel),
        clean(id),
        keys.iter().map(|k| clean(k)).collect::<Vec<_>>().join(",")
    );
    files.iter().any(|f| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.sync_data()
            })
            .is_ok()
    })
}

/// What the journal files say was delivered since `since_ms`.
pub fn load(files: &[PathBuf], since_ms: i64) -> Delivered {
    let mut out = Delivered::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(ms), Some(channel), Some(kind), Some(id), Some(keys)) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if ms.parse::<i64>().is_ok_and(|ms| ms >= since_ms) {
                for key in keys.split(',').filter(|k| !k.is_empty()) {
                    out.insert(
                        (channel.to_string(), kind.to_string(), key.to_string()),
                        id.to_string(),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_appended_is_loaded_until_it_is_old() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().join(FILE_NAME), b.path().join(FILE_NAME)];
        assert!(append(
            &dirs,
            1_000,
            "hook",
            "opened",
            "gw-1-hook",
            &["k1".into(), "k2".into()]
        ));
        assert!(append(
            &dirs,
            5_000,
            "mail",
            "resolved",
            "gw-5-mail",
            &["k1".into()]
        ));
        let d = load(&dirs, 0);
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[&("hook".into(), "opened".into(), "k2".into())],
            "gw-1-hook"
        );
        assert_eq!(load(&dirs, 2_000).len(), 1, "older entries are dropped");
        // The first folder unusable: the second takes the line.
        let gone = vec![
            a.path().join("missing").join(FILE_NAME),
            b.path().join(FILE_NAME),
        ];
        assert!(append(
            &gone,
            6_000,
            "hook",
            "resolved",
            "gw-6-hook",
            &["k2".into()]
        ));
        assert!(b.path().join(FILE_NAME).exists());
        assert_eq!(load(&gone, 0).len(), 1);
        // Each configured folder has its own file in the runtime folder.
        let one = files(Path::new("/var/lib/a"), None);
        let two = files(Path::new("/var/lib/b"), Some(Path::new("/run/x")));
        assert_eq!(one.len(), 2);
        assert_eq!(two.len(), 3);
        assert_ne!(one.last(), two.last());
    }
}

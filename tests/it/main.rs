//! gatewatch's integration tests: one test binary, one module per area.
//!
//! Tests that need a real nginx or HAProxy start them on loopback; outside CI they are skipped
//! with a loud message when the server is not installed, in CI (`CI=true`) that is a failure.

mod alerts;
mod channels;
mod cli;
mod corpus;
mod daemon;
mod delivery;
mod delivery_faults;
mod delivery_model;
mod detect;
mod e2e;
mod e2e_proxies;
mod errors;
#[cfg(feature = "kafka")]
mod fleet;
mod fuzz_regressions;
mod golden;
#[cfg(feature = "kafka")]
mod kafka;
mod kb;
mod layers;
mod links;
mod outcomes;
mod props;
mod proxies;
mod real_haproxy;
mod real_nginx;
mod receiver;
mod s3;
mod smtp;
mod status_page;
mod storage;
mod summary;
mod systemd;
mod tail_model;
mod upstreams;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The gatewatch binary built for these tests.
pub fn gatewatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatewatch"));
    c.env_remove("RUST_LOG");
    // CI runs the tests as root; `gatewatch run` refuses root unless told (tests/it/errors.rs
    // proves the refusal).
    c.env("GATEWATCH_ALLOW_ROOT", "1");
    c
}

/// Runs gatewatch and returns its output.
pub fn run(args: &[&str]) -> Output {
    gatewatch().args(args).output().expect("gatewatch runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file of the test data.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `scan --events --json` over files, parsed into JSON values.
pub fn events(files: &[&Path], extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args: Vec<String> = vec!["scan".into(), "--events".into(), "--json".into()];
    args.extend(["--timezone".into(), "UTC".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|p| p.display().to_string()));
    let o = gatewatch().args(&args).output().expect("gatewatch runs");
    assert!(o.status.success(), "scan failed: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `scan --json` with these arguments: the incidents found.
pub fn incidents(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["scan", "--json", "--timezone", "UTC"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "scan failed: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A server process started by a test; killed when the test ends, however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a real server binary is available; outside CI a missing one skips the test loudly,
/// in CI it fails the test.
pub fn require(program: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists());
    available(program, found.is_some());
    found
}

/// A daemon run inside the test process logs on the process's standard error, which the test
/// harness does not capture: such tests keep it to errors, unless GATEWATCH_LOG asks for more.
pub fn quiet_in_process_logs() {
    if std::env::var_os("GATEWATCH_LOG").is_none() {
        gatewatch::log::set_max_level(gatewatch::log::Level::Error);
    }
}

/// Outside CI, a missing real server skips the test loudly; in CI it fails the test.
pub fn available(what: &str, present: bool) -> bool {
    if !present {
        skip_or_fail(&format!(
            "{what} is not installed (scripts/test.sh installs it)"
        ));
    }
    present
}

/// A test that needs something of the machine other than an installed program (root, a
/// `mount` that may mount): outside CI it is skipped loudly, in CI it fails, saying `why`.
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: the real-server tests must run in CI");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {why}; this real-server test did not run. !!!!!!!!!!\n");
}

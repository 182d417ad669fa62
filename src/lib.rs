//! gatewatch reads reverse-proxy logs (nginx, HAProxy, AWS ALB), names the cause of every
//! failed request, finds bursts of upstream failures, and matches each burst to a
//! knowledge-base entry that says what to do about it.
//!
//! The crate, in the order a line travels through it:
//!
//! - [`lines`] splits a byte stream into lines with one reusable buffer.
//! - [`parse`] turns a line into an [`event::Event`]: one parser per format, pure.
//! - [`event`] holds the shared vocabulary: formats, causes, events.
//! - [`time`] parses the time stamps proxies write, and time zones.
//! - [`kb`] loads and checks the knowledge base (`patterns/`) and matches events to entries.
//! - [`join`] gives access-log 5xx lines the cause written in the error log.
//! - [`detect`] finds bursts per (entry, upstream) over event time: incidents.
//! - [`pipeline`] chains matching, joining and detection for a set of sources.
//! - [`scan`] drives the pipeline over old files (`gatewatch scan`).
//! - [`synth`] generates realistic traffic for benchmarks, tests and the demo.
//! - [`report`] renders events, incidents and entries as text and JSON.
//! - [`config`] reads and checks the configuration file.
//! - [`tail`] follows a log file through rotation, truncation and restarts.
//! - [`state`] keeps reading positions and counters in one SQLite file.
//! - [`daemon`] follows the configured logs live (`gatewatch run`).
//! - [`alert`] says what a message says, in every channel's form (pure).
//! - [`outbox`] keeps incidents, messages to send and silences in the state file.
//! - [`send`] delivers the outbox through email, webhooks and the console.
//! - [`page`] is the status page of the HTTP endpoint.
//! - [`summary`] reports a day from the state (`gatewatch summary`); [`chart`] draws its PNG.
//! - [`demo`] shows the daemon at work on generated traffic (`gatewatch demo`).
//! - [`discover`] finds the logs to follow without a config (`nginx -T`, standard paths).
//! - [`listen`] receives HAProxy's syslog datagrams (UDP, unix sockets).
//! - `s3` reads ALB objects straight from a bucket (cargo feature `s3`).
//! - [`log`] writes the daemon's own log for journald or a terminal.
//! - [`cli`] is the command line.
//!
//! Everything up to [`pipeline`] and [`report`] is pure: bytes and times in, values out; no IO,
//! no clock. [`scan`], [`config`] file reading and [`cli`] are the shell around it.

pub mod alert;
pub mod chart;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod detect;
pub mod discover;
pub mod error;
pub mod event;
pub mod http;
pub mod join;
pub mod kb;
pub mod lines;
pub mod listen;
pub mod log;
pub mod outbox;
pub mod page;
pub mod parse;
pub mod pipeline;
pub mod report;
#[cfg(feature = "s3")]
pub mod s3;
pub mod scan;
pub mod send;
pub mod state;
pub mod summary;
pub mod synth;
pub mod tail;
pub mod time;

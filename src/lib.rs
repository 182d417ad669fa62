//! gatewatch reads reverse-proxy logs (nginx, HAProxy, AWS ALB), names the cause of every
//! failed request, finds bursts of upstream failures, and matches each burst to a
//! knowledge-base entry that says what to do about it.
//!
//! The folders are the layers, in the one direction a line travels; a layer uses those above
//! it and never one below (`tests/it/layers.rs` fails the build of the test suite otherwise):
//!
//! - [`engine`] — the pure core: parse, match the knowledge base, join, detect. No IO, no clock.
//! - [`source`] — where lines come from: each kind of input a `Source` (followed files, ALB
//!   objects, syslog), and old files read whole.
//! - [`render`] — what alerts, summaries, the status page and `scan` say (pure).
//! - [`store`] — the SQLite state: reading positions, counters, incidents, the outbox.
//! - [`delivery`] — the sender and its channels (email, webhooks, console).
//! - [`app`] — the configuration, the daemon, the HTTP endpoint, the command line.
//!
//! [`log`] is the daemon's own log and [`clock`] the wall clock, used by every layer but the
//! engine; [`table`] reads a table of the configuration file key by key, for the modules that
//! own settings.

pub mod app;
pub mod clock;
pub mod delivery;
pub mod engine;
pub mod log;
pub mod render;
pub mod source;
pub mod store;
pub mod table;

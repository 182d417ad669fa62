//! The pure core: bytes and times in, values out. No file, socket, clock or runtime here —
//! everything is an argument, so a replay of old logs gives the same incidents as a live run.
//!
//! In the order a line travels: [`lines`] splits bytes into lines, [`parse`] turns a line into
//! an [`event::Event`] (one parser per format, times by [`time`]), [`kb`] matches it to a
//! knowledge-base entry, [`join`] gives access-log failures the cause the error log wrote,
//! [`detect`] finds bursts per (entry, upstream), and [`pipeline`] chains the three.

pub mod detect;
pub mod error;
pub mod event;
pub mod glob;
pub mod gunzip;
pub mod join;
pub mod kb;
pub mod lines;
pub mod parse;
pub mod pipeline;
pub mod policy;
pub mod recovery;
pub mod synth;
pub mod time;

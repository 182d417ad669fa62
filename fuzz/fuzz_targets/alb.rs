//! AWS ALB access-log lines (their times carry their own zone, so UTC only), and the masked
//! tokenizer against the plain one.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::parse::Parser;
use gatewatch_fuzz::{lines, options, parse_lines, zones};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = lines(data);
    let opts = options(zones().swap_remove(0));
    parse_lines(&Parser::new(Format::Alb, &opts, &[]), &lines);
    // The tokenizer that reads 64 bytes at a time splits every line as a byte-by-byte walk.
    for line in &lines {
        assert!(gatewatch::engine::parse::alb::tokens_agree(line));
    }
});

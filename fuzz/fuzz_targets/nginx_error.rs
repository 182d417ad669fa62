//! nginx error-log lines in every zone.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::parse::Parser;
use gatewatch_fuzz::{lines, options, parse_lines, zones};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = lines(data);
    for zone in zones() {
        let opts = options(zone);
        parse_lines(&Parser::new(Format::NginxError, &opts, &[]), &lines);
    }
});

//! HAProxy lines (httplog, tcplog, server events; every syslog framing) in every zone. The
//! parser keeps the year of RFC 3164 headers from line to line, so lines are fed in order.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::parse::Parser;
use gatewatch_fuzz::{lines, options, parse_lines, zones};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = lines(data);
    for zone in zones() {
        let opts = options(zone);
        parse_lines(&Parser::new(Format::Haproxy, &opts, &[]), &lines);
    }
});

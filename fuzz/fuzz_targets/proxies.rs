//! The other proxies' lines (Apache httpd's error and access logs, Caddy, Envoy, Traefik), each
//! line parsed by every one of their parsers in a zone with daylight saving time, and the first
//! line compiled as an httpd `LogFormat`: no panic, every span inside its line.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::parse::{Parser, apache_access};
use gatewatch_fuzz::{lines, options, parse_lines, zones};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lines = lines(data);
    let opts = options(zones().swap_remove(2));
    for format in [
        Format::ApacheError,
        Format::ApacheAccess,
        Format::Caddy,
        Format::Envoy,
        Format::Traefik,
    ] {
        parse_lines(&Parser::new(format, &opts, &lines), &lines);
    }
    if let Some(first) = lines.first()
        && let Ok(text) = std::str::from_utf8(first)
        && let Ok(f) = apache_access::log_format(text)
    {
        let mut opts = opts.clone();
        opts.log_format = Some(f);
        parse_lines(&Parser::new(Format::ApacheAccess, &opts, &[]), &lines[1..]);
    }
});

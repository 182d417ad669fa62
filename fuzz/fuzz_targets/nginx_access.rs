//! nginx access-log lines through every built-in layout (combined, main, gatewatch,
//! upstreaminfo, JSON lines, an `escape=json` format) and through the layout recognised from the
//! input's own lines, in a zone with daylight saving time too.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::parse::nginx_access::{AccessParser, Escape, KNOWN};
use gatewatch::engine::parse::{LogFormat, Parser, ParserOptions};
use gatewatch::engine::time::ZoneClock;
use gatewatch_fuzz::{lines, options, parse_lines, zones};
use libfuzzer_sys::fuzz_target;

const JSON_FORMAT: &str = r#"log_format j escape=json '{"t":"$time_iso8601","s":$status,"u":"$upstream_addr","us":"$upstream_status","c":"$upstream_connect_time","r":"$request","h":"$host"}';"#;

fuzz_target!(|data: &[u8]| {
    let lines = lines(data);
    let zones = zones();
    // Every built-in layout, in UTC.
    for (name, text) in KNOWN {
        let format = LogFormat::compile(name, Escape::Default, text).expect("built-ins compile");
        let opts = ParserOptions {
            log_format: Some(format),
            ..options(zones[0].clone())
        };
        parse_lines(&Parser::new(Format::NginxAccess, &opts, &[]), &lines);
    }
    let json_format = ParserOptions {
        log_format: Some(LogFormat::from_directive(JSON_FORMAT).expect("compiles")),
        ..options(zones[0].clone())
    };
    parse_lines(&Parser::new(Format::NginxAccess, &json_format, &[]), &lines);
    // JSON lines and the recognised layout, in every zone (`$time_iso8601` may lack an offset).
    for zone in zones {
        parse_lines(
            &Parser::NginxAccess(AccessParser::json(ZoneClock::new(zone.clone()))),
            &lines,
        );
        let opts = options(zone);
        parse_lines(&Parser::new(Format::NginxAccess, &opts, &lines), &lines);
    }
});

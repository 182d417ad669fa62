//! A `log_format` compiled from arbitrary text (the input's first line: the bare format, quoted
//! strings or the whole directive), then the remaining lines parsed with it, and with the same
//! text compiled under each escaping. A format that compiles must parse any line without panicking.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::parse::nginx_access::Escape;
use gatewatch::engine::parse::{LogFormat, Parser, ParserOptions};
use gatewatch_fuzz::{lines, options, parse_lines, zones};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return;
    };
    let lines = lines(rest);
    let zone = zones().swap_remove(2);

    let directive = LogFormat::from_directive(text);
    // Compiling is deterministic, and a refusal says why.
    assert_eq!(
        directive.as_ref().map(|f| f.name().to_string()).ok(),
        LogFormat::from_directive(text)
            .map(|f| f.name().to_string())
            .ok()
    );
    if let Err(e) = &directive {
        assert!(!e.to_string().is_empty());
    }
    let mut formats: Vec<LogFormat> = directive.into_iter().collect();
    for escape in [Escape::Default, Escape::Json, Escape::None] {
        if let Ok(f) = LogFormat::compile("fuzz", escape, text) {
            formats.push(f);
        }
    }
    for format in formats {
        let opts = ParserOptions {
            log_format: Some(format),
            ..options(zone.clone())
        };
        parse_lines(&Parser::new(Format::NginxAccess, &opts, &[]), &lines);
    }
});

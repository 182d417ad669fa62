//! Helpers shared by the fuzz targets: how an input becomes lines, the zones lines are read in,
//! and the checks every parsed event must pass besides "no panic".

use gatewatch::engine::event::{Event, Span, Unparsed};
use gatewatch::engine::parse::{Parser, ParserOptions};
use gatewatch::engine::time::Zone;

/// Lines longer than this are not split further; libFuzzer's `-max_len` keeps inputs small anyway.
pub const MAX_LINES: usize = 64;

/// The input split into lines the way the line reader hands them to parsers (without `\n`).
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n').take(MAX_LINES).collect()
}

/// Zones a parser may be configured with: UTC, a fixed offset, and named zones with daylight
/// saving time (a gap and a fold every year) and a half-hour shift.
pub fn zones() -> Vec<Zone> {
    ["UTC", "+05:30", "America/New_York", "Australia/Lord_Howe"]
        .iter()
        .map(|z| z.parse().expect("a known zone"))
        .collect()
}

/// Parser options for a zone.
pub fn options(zone: Zone) -> ParserOptions {
    ParserOptions {
        zone,
        year: 2024,
        log_format: None,
    }
}

/// Every span of an event lies inside the line and is well-formed, and reading the event's
/// parts through the public accessors cannot panic.
pub fn check_event(line: &[u8], ev: &Event) {
    for (name, s) in [
        ("upstream", ev.upstream),
        ("upstreams", ev.upstreams),
        ("client", ev.client),
        ("request", ev.request),
        ("vhost", ev.vhost),
        ("thread", ev.thread),
    ] {
        check_span(name, line, s);
    }
    let _ = ev.upstream(line);
    let _ = ev.client(line);
    let _ = ev.request(line);
    let _ = ev.vhost(line);
    let _ = ev.path(line);
    if let Some(t) = ev.time {
        let _ = t.to_rfc3339();
    }
    if let Some(ups) = ev.upstreams.get(line) {
        for u in gatewatch::engine::parse::upstream::UpstreamList::new(ups) {
            let _ = u;
        }
    }
}

fn check_span(name: &str, line: &[u8], s: Span) {
    assert!(
        s.start <= s.end && s.end as usize <= line.len(),
        "{name} span {s:?} outside a line of {} bytes",
        line.len()
    );
}

/// Parses `line` with `p`, checks the event, and returns the result for comparisons.
pub fn parse_checked(p: &mut Parser, line: &[u8]) -> Result<Event, Unparsed> {
    let r = p.parse(line);
    if let Ok(ev) = &r {
        check_event(line, ev);
    }
    r
}

/// Parses every line with a copy of the fresh parser `fresh` (in order, as a file is read) and checks that the short
/// way of answered requests agrees with `parse` on every line, that a parser
/// that has seen earlier lines gives the same answer as a fresh one when the format is stateless
/// (the threaded scan relies on that), and that a second run over the same lines gives the same
/// answers (parsing is deterministic).
pub fn parse_lines(fresh: &Parser, lines: &[&[u8]]) {
    let mut warm = fresh.clone();
    let first: Vec<_> = lines.iter().map(|l| parse_checked(&mut warm, l)).collect();
    // The short way of requests that did not fail reads every line it reads as `parse` does.
    for line in lines {
        assert!(
            fresh.answered_agrees(line),
            "the short way and parse disagree on {:?}",
            String::from_utf8_lossy(line)
        );
    }
    if warm.is_stateless() {
        for (line, got) in lines.iter().zip(&first) {
            let alone = fresh.clone().parse(line);
            assert_eq!(
                &alone,
                got,
                "a fresh parser and one that saw earlier lines disagree on {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
    let mut again = fresh.clone();
    for (line, got) in lines.iter().zip(&first) {
        assert_eq!(
            &again.parse(line),
            got,
            "parsing is not deterministic on {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

//! Properties over arbitrary input: no parser, loader or reader panics, whatever the bytes.

use gatewatch::engine::event::Format;
use gatewatch::engine::lines::{LineReader, Next};
use gatewatch::engine::parse::{LogFormat, Parser, ParserOptions, detect};
use proptest::prelude::*;

fn parsers() -> Vec<Parser> {
    let mut v: Vec<Parser> = Format::ALL
        .iter()
        .map(|f| Parser::new(*f, &ParserOptions::default(), &[]))
        .collect();
    for lf in [
        gatewatch::engine::parse::nginx_access::GATEWATCH,
        r#"log_format j escape=json '{"t":"$time_iso8601","s":$status,"u":"$upstream_addr","c":"$upstream_connect_time"}';"#,
    ] {
        let opts = ParserOptions {
            log_format: Some(LogFormat::from_directive(lf).unwrap()),
            ..ParserOptions::default()
        };
        v.push(Parser::new(Format::NginxAccess, &opts, &[]));
    }
    v.push(Parser::NginxAccess(
        gatewatch::engine::parse::nginx_access::AccessParser::json(
            gatewatch::engine::time::ZoneClock::new(gatewatch::engine::time::Zone::Utc),
        ),
    ));
    v
}

/// Real lines with bytes flipped, cut or repeated reach deep into the parsers.
fn mutated_line() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<&'static str> = vec![
        r#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "ua" api 10.0.1.5:8080, 10.0.1.6:8080 502, 502 -, - -, - 0.000, 0.000 0.001"#,
        r#"2024/05/01 12:00:00 [error] 1#1: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://unix:/run/a.sock:/", host: "x""#,
        r#"<134>1 2024-05-01T12:00:00+02:00 lb haproxy 1 - [a b="c"] 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] fe be/<NOSRV> 0/-1/-1/-1/0 503 0 - - SC-- 1/1/0/0/0 0/0 {h} {} "GET / HTTP/1.1""#,
        r#"http 2018-07-02T22:23:00.186641Z app/x/1 1.2.3.4:5 10.0.0.1:80 -1 -1 -1 502 - 34 366 "GET http://x:80/ HTTP/1.1" "ua" - - arn:aws:elasticloadbalancing:r:1:targetgroup/t/1 "Root" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "-" "-" "-" TID_1"#,
        r#"{"time":"2024-05-01T12:00:00+02:00","status":009,"upstream_addr":"a:1 : b:2","upstream_connect_time":"-"}"#,
    ];
    (
        prop::sample::select(seeds),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..8),
    )
        .prop_map(|(seed, edits)| {
            let mut b = seed.as_bytes().to_vec();
            for (pos, byte, op) in edits {
                if b.is_empty() {
                    break;
                }
                let p = pos % b.len();
                match op {
                    0 => b[p] = byte,
                    1 => b.truncate(p),
                    2 => b.insert(p, byte),
                    _ => {
                        let tail = b[p..].to_vec();
                        b.extend(tail);
                    }
                }
            }
            b
        })
}

/// A knowledge-base entry with characters replaced, removed or repeated.
fn damaged_entry() -> impl Strategy<Value = gatewatch::engine::kb::Source> {
    let sources = gatewatch::app::patterns::embedded_sources();
    (
        prop::sample::select(sources),
        prop::collection::vec((any::<usize>(), any::<char>(), 0u8..3), 0..6),
    )
        .prop_map(|(mut src, edits)| {
            let mut chars: Vec<char> = src.text.chars().collect();
            for (pos, c, op) in edits {
                if chars.is_empty() {
                    break;
                }
                let p = pos % chars.len();
                match op {
                    0 => chars[p] = c,
                    1 => {
                        chars.remove(p);
                    }
                    _ => chars.insert(p, c),
                }
            }
            src.text = chars.into_iter().collect();
            src
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn pattern_loader_never_panics_on_damaged_entries(src in damaged_entry()) {
        let lines = src.text.split('\n').count();
        if let Err(errors) = gatewatch::engine::kb::Kb::load(std::slice::from_ref(&src)) {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(e.line <= lines, "{}", e);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(line in prop::collection::vec(any::<u8>(), 0..400)) {
        for mut p in parsers() {
            let _ = p.parse(&line);
        }
        let _ = detect(&[&line], &ParserOptions::default());
    }

    #[test]
    fn parsers_never_panic_on_damaged_real_lines(line in mutated_line()) {
        for mut p in parsers() {
            if let Ok(ev) = p.parse(&line) {
                // Spans always lie inside the line.
                for s in [ev.upstream, ev.upstreams, ev.client, ev.request, ev.vhost] {
                    prop_assert!(s.end as usize <= line.len() && s.start <= s.end);
                }
                let _ = ev.path(&line);
            }
        }
    }

    #[test]
    fn log_format_compiler_and_config_never_panic(text in "\\PC{0,120}") {
        let _ = LogFormat::from_directive(&text);
        let _ = gatewatch::app::config::Config::parse("x.toml", &text);
        let _ = text.parse::<gatewatch::engine::time::Zone>();
    }

    #[test]
    fn stateless_parsers_do_not_depend_on_earlier_lines(
        lines in prop::collection::vec(mutated_line(), 1..6),
    ) {
        // The threaded scan parses a file's blocks out of order for these formats.
        for fresh in parsers().into_iter().filter(Parser::is_stateless) {
            let mut warm = fresh.clone();
            for line in &lines {
                prop_assert_eq!(warm.parse(line), fresh.clone().parse(line));
            }
        }
    }

    #[test]
    fn line_reader_returns_every_line_once(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..50), 0..50),
        max in 1usize..60,
    ) {
        let mut input = Vec::new();
        for l in &lines {
            input.extend_from_slice(l);
            input.push(b'\n');
        }
        let mut r = LineReader::new(&input[..], max);
        let mut got = Vec::new();
        loop {
            match r.next_line().unwrap() {
                Next::Line(l) => got.push(Some(r.bytes(l).to_vec())),
                Next::TooLong => got.push(None),
                Next::Eof => break,
            }
        }
        let want: Vec<Option<Vec<u8>>> = lines
            .iter()
            .map(|l| if l.len() > max { None } else { Some(l.clone()) })
            .collect();
        prop_assert_eq!(got, want);
    }
}

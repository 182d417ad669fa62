//! Parser and pipeline throughput on realistic lines (`cargo bench`).
//!
//! The whole-process figure (`gatewatch scan` over a 2,000,000-line file, compared with
//! ripgrep) comes from `scripts/bench.sh`; this measures the pieces.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatewatch::engine::detect::Change;
use gatewatch::engine::event::Format;
use gatewatch::engine::parse::{LogFormat, Parser, ParserOptions};
use gatewatch::engine::pipeline::{Pipeline, PipelineConfig, Settled, Sink};
use gatewatch::engine::synth::{Burst, LOG_FORMAT, Synth, SynthConfig};
use std::hint::black_box;
use std::sync::Arc;

fn access_lines(n: usize) -> Vec<String> {
    let mut s = Synth::new(SynthConfig {
        burst: Some(Burst {
            start_secs: 2,
            duration_secs: 2,
            upstream: 0,
            share: 0.9,
        }),
        ..SynthConfig::default()
    });
    (0..n).map(|_| s.next_request().access).collect()
}

fn bench_parsers(c: &mut Criterion) {
    let lines = access_lines(10_000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(bytes as u64));

    let opts = ParserOptions {
        log_format: Some(LogFormat::from_directive(LOG_FORMAT).unwrap()),
        ..ParserOptions::default()
    };
    let mut p = Parser::new(Format::NginxAccess, &opts, &[]);
    g.bench_function("nginx_access_upstream_fields", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(p.parse(black_box(l.as_bytes())));
            }
        })
    });

    let combined: Vec<String> = lines
        .iter()
        .map(|l| l.split(" api.example.com ").next().unwrap().to_string())
        .collect();
    let mut p = Parser::new(Format::NginxAccess, &ParserOptions::default(), &[]);
    g.bench_function("nginx_access_combined", |b| {
        b.iter(|| {
            for l in &combined {
                let _ = black_box(p.parse(black_box(l.as_bytes())));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("other_formats");
    let error = r#"2024/05/01 12:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: api.example.com, request: "GET /api/v1/resource HTTP/1.1", upstream: "http://10.0.1.5:8080/api/v1/resource", host: "api.example.com""#;
    let haproxy = r#"May  1 12:00:00 lb1 haproxy[1234]: 10.0.0.1:33317 [01/May/2024:12:00:00.655] http-in api/web1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /api/v1/resource HTTP/1.1""#;
    let alb = r#"http 2024-05-01T12:00:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.1.5:8080 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/8.5.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2024-05-01T12:00:00.184000Z "forward" "-" "-" "10.0.1.5:8080" "200" "-" "-" TID_37acbe0641d1c34287fee137ef3a5286"#;
    for (name, format, line) in [
        ("nginx_error", Format::NginxError, error),
        ("haproxy", Format::Haproxy, haproxy),
        ("alb", Format::Alb, alb),
    ] {
        let mut p = Parser::new(format, &ParserOptions::default(), &[]);
        g.throughput(Throughput::Bytes(line.len() as u64 + 1));
        g.bench_function(name, |b| {
            b.iter(|| black_box(p.parse(black_box(line.as_bytes()))))
        });
    }
    g.finish();
}

struct Null(u64);
impl Sink for Null {
    fn event(&mut self, s: &Settled<'_>) {
        self.0 += s.line_no & 1;
    }
    fn change(&mut self, _: Change) {
        self.0 += 1;
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let lines = access_lines(100_000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let kb = Arc::new(gatewatch::app::patterns::load_kb(&[]).unwrap());
    let opts = ParserOptions {
        log_format: Some(LogFormat::from_directive(LOG_FORMAT).unwrap()),
        ..ParserOptions::default()
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(20);
    g.bench_function("parse_match_detect", |b| {
        b.iter(|| {
            let mut p = Parser::new(Format::NginxAccess, &opts, &[]);
            let mut pipe = Pipeline::new(kb.clone(), PipelineConfig::default());
            let mut sink = Null(0);
            for (i, l) in lines.iter().enumerate() {
                if let Ok(ev) = p.parse(l.as_bytes()) {
                    pipe.push(0, i as u64 + 1, l.as_bytes(), ev, &mut sink);
                }
            }
            pipe.finish(&mut sink);
            black_box(sink.0)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parsers, bench_pipeline);
criterion_main!(benches);

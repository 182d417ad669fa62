//! Writes a synthetic nginx access log (gatewatch's recommended `log_format`, with upstream
//! fields) for benchmarks and tests, optionally with a burst of unreachable-upstream 502s and
//! the matching error log; or the same traffic as another proxy writes it (`--format
//! nginx_error | haproxy | alb | ingress`).
//!
//! ```text
//! cargo run --release --example genlog -- --lines 2000000 > access.log
//! cargo run --release --example genlog -- --lines 60000 --burst-at 10 --burst-for 15 \
//!     --error-log error.log > access.log
//! ```

use clap::Parser;
use gatewatch::engine::synth::{Burst, Synth, SynthConfig, SynthFormat};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Access-log lines to write.
    #[arg(long, default_value_t = 2_000_000)]
    lines: u64,
    /// Requests per second of log time.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// Start a burst of unreachable-upstream 502s this many seconds into the log.
    #[arg(long)]
    burst_at: Option<u32>,
    /// How long the burst lasts, in seconds.
    #[arg(long, default_value_t = 30)]
    burst_for: u32,
    /// The share of the failing upstream's requests that fail during the burst.
    #[arg(long, default_value_t = 0.9)]
    burst_share: f64,
    /// Also write the error-log lines nginx writes for the failed connections.
    #[arg(long)]
    error_log: Option<PathBuf>,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// The format: nginx (access log), nginx_error (every request as a refused connection),
    /// haproxy (HTTP log in a syslog header), alb, or ingress (ingress-nginx's upstreaminfo).
    #[arg(long, default_value = "nginx", value_parser = ["nginx", "nginx_error", "haproxy", "alb", "ingress"])]
    format: String,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let mut synth = Synth::new(SynthConfig {
        seed: args.seed,
        requests_per_sec: args.rate,
        burst: args.burst_at.map(|start_secs| Burst {
            start_secs,
            duration_secs: args.burst_for,
            upstream: 0,
            share: args.burst_share,
        }),
        ..SynthConfig::default()
    });
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut errors = match &args.error_log {
        Some(p) => Some(BufWriter::new(File::create(p)?)),
        None => None,
    };
    let format = match args.format.as_str() {
        "nginx_error" => Some(SynthFormat::NginxError),
        "haproxy" => Some(SynthFormat::Haproxy),
        "alb" => Some(SynthFormat::Alb),
        "ingress" => Some(SynthFormat::Ingress),
        _ => None,
    };
    if let Some(format) = format {
        let mut line = String::with_capacity(512);
        for _ in 0..args.lines {
            line.clear();
            synth.next_line(format, &mut line);
            writeln!(out, "{line}")?;
        }
        return out.flush();
    }
    for _ in 0..args.lines {
        let g = synth.next_request();
        writeln!(out, "{}", g.access)?;
        if let (Some(e), Some(line)) = (&mut errors, &g.error) {
            writeln!(e, "{line}")?;
        }
    }
    out.flush()?;
    if let Some(mut e) = errors {
        e.flush()?;
    }
    Ok(())
}

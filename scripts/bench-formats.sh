#!/usr/bin/env bash
# `gatewatch scan` against ripgrep, format by format, on the same generated traffic (2,000,000
# requests with a burst of unreachable-upstream failures; `examples/genlog.rs`): the nginx
# access log, the nginx error log, HAProxy's HTTP log in a syslog header, ALB's gzip files and
# ingress-nginx's `upstreaminfo`.
# Per format, the commands taking turns round by round (scripts/alternate.py): ripgrep's count
# (`rg -z -c` for gzip) pinned to one core, `scan --threads 1` pinned to the same core, and
# `scan` with all threads; then peak memory.
# Needs python3 and ripgrep (apt-get install ripgrep). LINES, RUNS and BENCH_DIR
# change the defaults; FORMATS picks formats (nginx nginx_error haproxy alb ingress).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-files.sh
lines=${LINES:-2000000}
runs=${RUNS:-10}
dir=${BENCH_DIR:-target/bench}
formats=${FORMATS:-nginx nginx_error haproxy alb ingress}
mkdir -p "$dir"
cargo build --release --quiet --bin gatewatch --example genlog
gw=target/release/gatewatch
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

printf '| format | file | rg -c (1 core) | scan, 1 thread (1 core) | scan, all threads | peak RSS |\n'
printf '|---|---|---|---|---|---|\n'
for f in $formats; do
    bench_file "$f"
    if [ ! -s "$file" ]; then
        if [ "$f" = alb ]; then
            target/release/examples/genlog --format alb --lines "$lines" --burst-at 300 --burst-for 60 \
                | gzip -6 > "$file"
        else
            target/release/examples/genlog --format "$f" --lines "$lines" --burst-at 300 --burst-for 60 > "$file"
        fi
    fi
    fresh_in_cache "$file"   # in the page cache, as a log just written is
    json="$dir/formats-$f.json"
    scripts/alternate.py --runs "$runs" --json "$json" \
        "taskset -c 1 ${grep[*]@Q} $file" \
        "taskset -c 1 $gw scan --threads 1 --timezone UTC $file" \
        "$gw scan --timezone UTC $file" >/dev/null
    mem=$(rss "$gw" scan --timezone UTC "$file")
    python3 - "$json" "$f" "$file" "$lines" "$mem" <<'PY'
import json, os, sys
runs = json.load(open(sys.argv[1]))["results"]
fmt, path, lines, mem = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rg, one, all_ = (r["median"] for r in runs)
def cell(t, base=None):
    s = f"{t*1000:.0f} ms, {lines/t/1e6:.2f} M lines/s"
    return s + (f", {base/t:.2f} of rg" if base else "")
size = os.path.getsize(path) / 1e6
print(f"| {fmt} | {size:.0f} MB | {cell(rg)} | {cell(one, rg)} | {cell(all_, rg)} | {mem/1024:.1f} MiB |")
PY
done

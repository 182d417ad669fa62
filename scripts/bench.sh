#!/usr/bin/env bash
# Whole-process benchmark of `gatewatch scan` on a generated 2,000,000-line nginx access log
# (gatewatch's log_format, with upstream fields and a burst of 502s), compared with
# `rg -c ' 502 '` on the same file, plus peak memory on that file and on one four times larger.
# ripgrep and the one-thread scan run pinned to one core (`taskset -c ${PIN_CPU:-0}`).
# With valgrind installed, also the instructions a line costs (the figure that does not move
# with the machine's load: ripgrep's time on this file has varied threefold in one day).
# Needs python3 and ripgrep (apt-get install ripgrep; valgrind optional).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-files.sh
lines=${LINES:-2000000}
dir=${BENCH_DIR:-target/bench}
mkdir -p "$dir"
cargo build --release --quiet --bin gatewatch --example genlog
gw=target/release/gatewatch
log="$dir/access-$lines.log"
if [ ! -s "$log" ]; then
    target/release/examples/genlog --lines "$lines" --burst-at 300 --burst-for 60 > "$log"
fi
bytes=$(stat -c %s "$log")
fresh_in_cache "$log"   # in the page cache, as a log just written is
echo "file: $log ($lines lines, $((bytes / 1000000)) MB)"

# `wc -l` only reads the file and counts newlines: the floor for anything that looks at every
# line through read(2).
pin="taskset -c ${PIN_CPU:-0}"
# The commands take turns, round by round (scripts/alternate.py): the shared machine's drift
# within the minutes falls on all of them alike, and so does not bend their ratios.
# `cat` to /dev/null is `read(2)`'s copy alone: the part of `scan`'s time that ripgrep, which
# maps the file, does not pay.
scripts/alternate.py --runs "${RUNS:-10}" --json "$dir/bench.json" \
    "$gw scan --timezone UTC $log" "$pin rg -c ' 502 ' $log" "$pin wc -l $log" \
    "$pin $gw scan --threads 1 --timezone UTC $log" "$pin cat $log" >/dev/null

python3 - "$dir/bench.json" "$lines" "$bytes" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["results"]
lines, size = int(sys.argv[2]), int(sys.argv[3])
gw, rg, wc, one, cat = runs[0], runs[1], runs[2], runs[3], runs[4]
names = ["gatewatch", "rg", "wc", "gw 1 thr", "cat"]
for name, r in zip(names, runs):
    m = r["median"]
    print(f"{name:>10}: median {m*1000:7.1f} ms  "
          f"{lines/m/1e6:6.2f} M lines/s  {size/m/1e6:7.0f} MB/s  (min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms)")
print(f"gatewatch scan runs at {rg['median']/gw['median']:.3f} of ripgrep's count speed "
      f"(1/{gw['median']/rg['median']:.1f}); with --threads 1 at {rg['median']/one['median']:.3f} "
      f"(1/{one['median']/rg['median']:.1f}); wc -l (reading and counting lines only) at "
      f"{rg['median']/wc['median']:.3f} of it; read(2)'s copy alone (cat) takes "
      f"{cat['median']*1000:.1f} ms, {cat['median']/rg['median']:.2f} of ripgrep's whole run")
PY

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
echo "peak RSS of gatewatch scan: $(rss "$gw" scan --timezone UTC "$log") KiB (--threads 1: $(rss "$gw" scan --threads 1 --timezone UTC "$log") KiB)"
big="$dir/access-x4.log"
if [ ! -s "$big" ]; then
    target/release/examples/genlog --lines $((lines * 4)) --burst-at 300 --burst-for 60 > "$big"
fi
echo "peak RSS on a file 4x larger ($(( $(stat -c %s "$big") / 1000000 )) MB): $(rss "$gw" scan --timezone UTC "$big") KiB"

if command -v valgrind >/dev/null; then
    # Instructions a line: a 200,000-line slice, less the start-up (a one-line file).
    slice="$dir/access-200000.log"
    head -n 200000 "$log" > "$slice"
    head -n 1 "$log" > "$dir/access-1.log"
    ir() {
        valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
            awk '/I *refs/ { gsub(",", "", $NF); print $NF }'
    }
    for t in 1 2; do
        start=$(ir "$gw" scan --threads "$t" --timezone UTC "$dir/access-1.log")
        all=$(ir "$gw" scan --threads "$t" --timezone UTC "$slice")
        echo "instructions a line, --threads $t: $(( (all - start) / 200000 )) (start-up, a one-line file: $(awk "BEGIN { printf \"%.1f\", $start / 1e6 }") M)"
    done
fi

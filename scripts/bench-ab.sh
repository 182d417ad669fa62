#!/usr/bin/env bash
# Two builds of gatewatch against each other, format by format, the commands taking turns
# (scripts/alternate.py: round by round, so the shared machine's drift falls on both alike):
# ripgrep's count and `scan --threads 1` pinned to one core, and `scan` with all threads.
#
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY
#
# The files are scripts/bench-formats.sh's (generated if missing). RUNS (8), FORMATS (nginx
# nginx_error haproxy alb ingress), BENCH_DIR and PIN_CPU (0) change the defaults. Needs python3 and ripgrep.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-files.sh
old=${1:?usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY}
new=${2:?usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY}
lines=${LINES:-2000000}
dir=${BENCH_DIR:-target/bench}
for f in ${FORMATS:-nginx nginx_error haproxy alb ingress}; do
    bench_file "$f"
    if [ ! -s "$file" ]; then
        RUNS=1 FORMATS=$f scripts/bench-formats.sh >/dev/null
    fi
    fresh_in_cache "$file"   # in the page cache, as a log just written is
    json="$dir/ab-$f.json"
    scripts/alternate.py --runs "${RUNS:-8}" --json "$json" \
        "taskset -c ${PIN_CPU:-0} ${grep[*]@Q} $file" \
        "taskset -c ${PIN_CPU:-0} $old scan --threads 1 --timezone UTC $file" \
        "taskset -c ${PIN_CPU:-0} $new scan --threads 1 --timezone UTC $file" \
        "$old scan --timezone UTC $file" \
        "$new scan --timezone UTC $file" >/dev/null
    python3 - "$json" "$f" <<'PY'
import json, sys
rg, o1, n1, oa, na = (r["median"] * 1000 for r in json.load(open(sys.argv[1]))["results"])
print(f"| {sys.argv[2]} | {rg:.0f} ms | {o1:.0f} → {n1:.0f} ms ({o1/n1:.2f}×; {rg/n1:.2f} of rg) "
      f"| {oa:.0f} → {na:.0f} ms ({oa/na:.2f}×; {rg/na:.2f} of rg) |")
PY
done

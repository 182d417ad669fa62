#!/usr/bin/env bash
# CI: builds the fuzz targets (fuzz/) and runs each for FUZZ_SECONDS (default 60) from the
# committed seed corpus; fails if any target crashes, panics or times out.
#
# Works on the stable toolchain: cargo-fuzz needs nightly-only flags (-Zsanitizer, sancov), which
# RUSTC_BOOTSTRAP=1 allows on stable. The input that broke a target is kept in
# fuzz/artifacts/<target>/ and printed in base64 so it can be taken from the CI log.
#
#   FUZZ_SECONDS=60       seconds per target (the slowest targets get half as long, see below)
#   FUZZ_TARGETS="a b"    only these targets (default: every target in fuzz/Cargo.toml)
#   FUZZ_SANITIZER=none   cargo fuzz --sanitizer (address, none, …)
#   FUZZ_TARGET_DIR=DIR   where the fuzz build goes (default fuzz/target)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
target_dir=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

targets=${FUZZ_TARGETS:-$(cd fuzz && cargo fuzz list)}
# These parse a whole file (a config, a knowledge-base entry) or compile a log_format per input,
# and reach their depth quickly: half the time keeps the whole run short.
half="config patterns nginx_access_format alb gunzip"

start=$(date +%s)
echo "fuzz: building $(echo "$targets" | wc -w) targets (sanitizer: $sanitizer)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if ! (cd fuzz && cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir") >"$scratch/build.log" 2>&1; then
    echo "fuzz: the fuzz targets do not build:" >&2
    tail -n 60 "$scratch/build.log" >&2
    exit 1
fi
echo "fuzz: built in $(($(date +%s) - start)) s"

failed=()
for t in $targets; do
    s=$seconds
    case " $half " in *" $t "*) s=$(((seconds + 1) / 2)) ;; esac
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    # New inputs go to the scratch folder: the committed seed corpus is only read.
    if (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" \
        "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$s" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
        >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz: $t ok: ${runs:-?} runs in $s s, corpus $(find "$scratch/$t" -type f | wc -l) new inputs"
    else
        failed+=("$t")
        echo "fuzz: $t FAILED; the end of its log:" >&2
        grep -v -E '^#[0-9]+' "$log" | tail -n 40 >&2
        for a in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            echo "fuzz: $t: the input ($a), base64:" >&2
            base64 -w0 "$a" >&2 || true
            echo >&2
            echo "fuzz: reproduce with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $t $a)" >&2
        done
    fi
done
echo "fuzz: done in $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi

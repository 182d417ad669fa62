#!/usr/bin/env bash
# End-to-end alert latency (README, Performance): real nginx in front of upstreams killed one
# after the other under steady traffic, `gatewatch run` (release build) with default settings,
# a webhook receiver and aiosmtpd; prints p50/p99/max from the first failed request to each
# receiver. E2EBENCH_KILLS=N sets the number of kills (default 20). Needs nginx and
# python3-aiosmtpd (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test it e2e::bench_time_from_first_failed_request_to_alert \
    -- --ignored --exact --nocapture --test-threads 1 2>&1 | grep -E '^e2ebench:|test result|panicked|SKIPPED|^error'

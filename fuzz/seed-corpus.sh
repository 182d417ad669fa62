#!/usr/bin/env bash
# Rebuilds the committed seed corpus (fuzz/corpus/<target>/) from the test fixtures, the example
# logs, the knowledge base and the example config. Files are named by the SHA-1 of their content,
# as libFuzzer names them, so running this again adds nothing twice.
set -eu  # no pipefail: `head` closing a pipe early is fine here
cd "$(dirname "$0")/.."
corpus=fuzz/corpus

# put TARGET: stdin becomes one corpus file.
put() {
    local tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -s "$tmp" ]; then
        mkdir -p "$corpus/$1"
        mv "$tmp" "$corpus/$1/$(sha1sum <"$tmp" | cut -c1-40)"
    else
        rm -f "$tmp"
    fi
}

# per_line TARGET: every line of stdin becomes one corpus file.
per_line() {
    while IFS= read -r line; do
        printf '%s' "$line" | put "$1"
    done
}

# The example lines of the knowledge base for one format (single-quoted TOML literals).
kb_lines() {
    awk -v want="$1" '
        /^format = / { fmt = $3; gsub(/"/, "", fmt) }
        /^line = \x27/ && fmt == want { l = $0; sub(/^line = \x27/, "", l); sub(/\x27$/, "", l); print l }
    ' patterns/*/*.toml
}

# A spread of the example logs: every 25th line and the first few failures.
sample_access() {
    zcat examples/logs/access.log.gz | awk 'NR % 400 == 1'
    { zcat examples/logs/access.log.gz || true; } | grep -E '" 50[0-9] ' | head -n 15
}
sample_error() {
    awk 'NR % 25 == 1' examples/logs/error.log
    { grep -v 'Connection refused' examples/logs/error.log || true; } | head -n 15
}

rm -rf "$corpus"

{ cat tests/data/nginx_access_up.log; sample_access; kb_lines nginx_access; } | per_line nginx_access
{ cat tests/data/nginx_error.log tests/data/nginx_error_up.log; sample_error; kb_lines nginx_error; } | per_line nginx_error
{ cat tests/data/haproxy.log; kb_lines haproxy; } | per_line haproxy
{ cat tests/data/alb.log; kb_lines alb; } | per_line alb
{ for f in apache_error caddy envoy traefik; do kb_lines $f; done
  cat tests/data/corpus/apache_*.log tests/data/corpus/caddy_*.log tests/data/corpus/envoy_*.log tests/data/corpus/traefik_*.log; } | per_line proxies

# nginx_access_format: the log_format on the first line, then lines written with it.
up_format=$(tr '\n' ' ' <tests/data/nginx_access_up.log_format)
for n in 1 9 17 25 33; do
    { printf '%s\n' "$up_format"; sed -n "${n},$((n + 2))p" tests/data/nginx_access_up.log; } | put nginx_access_format
done
cat >"$corpus/nginx_access_format/combined" <<'LINES'
$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
203.0.113.7 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.0"
LINES
cat >"$corpus/nginx_access_format/gatewatch" <<'LINES'
log_format gatewatch '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $host $upstream_addr $upstream_status $upstream_connect_time $upstream_header_time $upstream_response_time $request_time';
10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET / HTTP/1.1" 502 157 "-" "ua" api 10.0.1.5:8080, 10.0.1.6:8080 502, 502 -, - -, - 0.000, 0.000 0.001
203.0.113.123 - - [01/May/2024:12:00:00 +0000] "GET /api/v1/users/me HTTP/1.1" 200 2740 "-" "curl/8.5.0" api.example.com 10.0.1.7:8080 200 0.001 0.083 0.083 0.084
LINES
cat >"$corpus/nginx_access_format/json" <<'LINES'
log_format j escape=json '{"t":"$time_iso8601","s":$status,"u":"$upstream_addr","c":"$upstream_connect_time","r":"$request"}';
{"t":"2024-05-01T12:00:00+02:00","s":502,"u":"10.0.1.5:8080","c":"-","r":"GET /x?a=\"b\" HTTP/1.1"}
LINES
cat >"$corpus/nginx_access_format/msec_braces" <<'LINES'
log_format m escape=none "${msec}|${status}|${upstream_addr}|${upstream_status}|${upstream_connect_time}|${host}";
1714564800.123|503|backend|-|-|api.example.com
1714564800.456|502|10.0.1.5:8080 : 10.0.1.6:8080|502 : 502|- : -|api.example.com
LINES

# detect: the first lines of each kind of file, three at a time.
for f in tests/data/nginx_access_up.log tests/data/nginx_error.log tests/data/nginx_error_up.log \
    tests/data/haproxy.log tests/data/alb.log examples/logs/error.log; do
    for n in 1 4 7; do sed -n "${n},$((n + 2))p" "$f" | put detect; done
done
{ zcat examples/logs/access.log.gz || true; } | head -n 3 | put detect
printf '%s\n' '{"time_iso8601":"2024-05-01T12:00:00+00:00","status":"502","upstream_addr":"10.0.0.1:80","upstream_connect_time":"-"}' | put detect

# config: the packaged config, the same with every commented-out key switched on, and a config
# that uses every table.
put config <packaging/gatewatch.toml
sed -E 's/^# ?(\[|[a-z_]+ = )/\1/' packaging/gatewatch.toml | put config
put config <<'TOML'
[[source]]
path = "/var/log/nginx/*.access.log"
format = "nginx_access"
log_format = 'log_format up escape=json '{"t":"$time_iso8601","s":$status,"u":"$upstream_addr"}';'
timezone = "Europe/Berlin"
start_at = "beginning"

[[source]]
format = "syslog"
listen = "udp://127.0.0.1:5514"

[[source]]
path = "s3://bucket/prefix"
format = "alb"
endpoint = "http://127.0.0.1:9000"
region = "us-east-1"

[http]
listen = "127.0.0.1:9502"

[detect]
window = "60s"
open_failures = 10
open_share = 0.2
close_failures = 3
quiet = "60s"
max_upstreams = 1000
join_before = "2s"
join_after = "1s"

[[channel]]
name = "hook"
kind = "webhook"
format = "alertmanager"
url = "http://127.0.0.1:9093/api/v2/alerts"
timeout = "10s"

[alerts]
group_wait = "5s"
renotify = "off"

[[maintenance]]
upstream = "10.0.1.*"
days = ["sun", "sat"]
start = "02:00"
end = "24:00"
timezone = "+05:30"

[[maintenance]]
from = "2024-05-01T00:00:00Z"
until = "2024-05-02T00:00:00+02:00"
reason = "move"

[summary]
at = "08:30"
timezone = "Asia/Shanghai"
channels = ["hook"]
TOML

# A duration too long for i64 milliseconds (once accepted and wrapped; see README.md).
printf '[detect]\nwindow = "9223372036854776s"\n\n[alerts]\ngroup_wait = "9223372036854775s"\n' | put config

# patterns: every knowledge-base entry.
for f in patterns/*/*.toml; do put patterns <"$f"; done

# gunzip: the first byte is the mode (see fuzz_targets/gunzip.rs): 0 takes the rest as a gzip
# stream (the ALB fixture, and two members), 1 and 0x93 compress the rest first (and damage it).
{ printf '\000'; gzip -c tests/data/alb.log; } | put gunzip
{ printf '\000'; printf 'a\n%.0s' $(seq 3000) | gzip -c; printf 'second member\n' | gzip -9 -n -c; } | put gunzip
{ printf '\001'; head -c 3000 tests/data/alb.log; } | put gunzip
{ printf '\223'; head -c 3000 tests/data/alb.log; } | put gunzip

du -sh "$corpus"
for d in "$corpus"/*; do echo "$(basename "$d"): $(find "$d" -type f | wc -l) files"; done

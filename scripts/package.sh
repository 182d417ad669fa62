#!/usr/bin/env bash
# Builds the Debian package (target/debian/gatewatch_*.deb) with cargo-deb and checks what is
# inside: the binary, the systemd unit, the commented default config (a conffile) and the
# knowledge base and the alert templates (to copy and change).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
cargo deb --strip
deb=$(ls -t target/debian/gatewatch_*.deb | head -1)
contents=$(dpkg-deb -c "$deb")
for want in ./usr/bin/gatewatch ./usr/lib/systemd/system/gatewatch.service \
    ./etc/gatewatch/gatewatch.toml \
    ./usr/share/gatewatch/patterns/api/http-502-bad-gateway-upstream-unreachable.toml \
    ./usr/share/gatewatch/templates/email.html.j2; do
    grep -q " $want\$" <<<"$contents" || { echo "package.sh: $want is missing from $deb" >&2; exit 1; }
done
dpkg-deb -f "$deb" Depends | grep -q adduser
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/gatewatch/gatewatch.toml
# The shipped configuration is valid.
target/release/gatewatch check --no-access --config packaging/gatewatch.toml --patterns patterns >/dev/null
echo "package.sh: $deb ($(du -h "$deb" | cut -f1)) is complete"

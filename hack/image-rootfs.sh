#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/image-rootfs.sh DIR writes the files the tierscaler image holds
# besides the binary, for an empty (scratch) base:
#
#   etc/passwd, etc/group      root and nonroot (65532), the user it runs as
#   etc/nsswitch.conf          hosts from files, then DNS (Go's resolver reads it)
#   etc/ssl/certs/ca-certificates.crt
#                              the CA bundle of the machine that builds it
#                              (Debian's ca-certificates package; so is the
#                              golang image's), for Prometheus, Alertmanager
#                              and the API server over TLS
#   tmp/                       mode 1777 (the chart mounts an emptyDir there)
#   home/nonroot/              the user's home
#   usr/share/doc/tierscaler/LICENSE
#
# The Dockerfile's compile stage runs it in the build image, and `make image`
# on the host for the context build (docs/building.md): one script, so the
# two images hold the same files. CA_BUNDLE overrides the bundle's path.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$1
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [[ ! -s "$ca" ]]; then
  echo "hack/image-rootfs.sh: no CA bundle at $ca: install the ca-certificates package (apt-get install -y ca-certificates) or set CA_BUNDLE" >&2
  exit 1
fi

rm -rf "$dir"
mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" "$dir/home/nonroot" "$dir/usr/share/doc/tierscaler"
cat > "$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat > "$dir/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
echo "hosts: files dns" > "$dir/etc/nsswitch.conf"
cp "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"
cp "$root/LICENSE" "$dir/usr/share/doc/tierscaler/LICENSE"
chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/nsswitch.conf" \
  "$dir/etc/ssl/certs/ca-certificates.crt" "$dir/usr/share/doc/tierscaler/LICENSE"
chmod 0755 "$dir" "$dir/etc" "$dir/etc/ssl" "$dir/etc/ssl/certs" "$dir/home" "$dir/home/nonroot" \
  "$dir/usr" "$dir/usr/share" "$dir/usr/share/doc" "$dir/usr/share/doc/tierscaler"
chmod 1777 "$dir/tmp"
# Identical content gives identical layers: fix the times too.
find "$dir" -exec touch -h -d @0 {} +

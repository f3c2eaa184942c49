#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/report-screenshot.sh runs `tierscaler simulate` on a short scenario
# and takes a screenshot of its HTML report with headless Chromium, to look
# at the page as a reader would. It is not part of `make test`.
#
# Usage: hack/report-screenshot.sh [SCENARIO] [OUT_DIR]
#
#   SCENARIO  a built-in scenario or a file (default: nightly, 2 hours)
#   OUT_DIR   where the report and report.png go
#             (default: out/report-screenshot-<scenario>)
#
# Environment: CHROMIUM (default: chromium or chromium-browser on the
# PATH), WINDOW (default 1600,2400), SIM_ARGS (more flags for simulate,
# e.g. "--days 0.5 --seed 3").
#
# Chromium is the Debian package `chromium` (apt-get install chromium).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
scenario=${1:-nightly}
name=$(basename "$scenario" .yaml)
out=${2:-$root/out/report-screenshot-$name}
window=${WINDOW:-1600,2400}

chromium=${CHROMIUM:-}
if [[ -z "$chromium" ]]; then
  chromium=$(command -v chromium || command -v chromium-browser || true)
fi
if [[ -z "$chromium" ]]; then
  echo "hack/report-screenshot.sh: no chromium on the PATH: install the Debian package (apt-get install chromium) or set CHROMIUM" >&2
  exit 2
fi

mkdir -p "$out"
bin="$out/tierscaler"
"$here/build.sh" "$bin" >/dev/null
# shellcheck disable=SC2086 # SIM_ARGS is a list of flags
"$bin" simulate --scenario "$scenario" --out "$out" -q ${SIM_ARGS:-}
rm -f "$bin"

# --no-sandbox: Chromium refuses to run as root with its sandbox on (as in
# containers and CI); the page is our own, self-contained, with no script.
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="$window" --screenshot="$out/report.png" "file://$out/report.html" 2>/dev/null
echo "$out/report.png ($(wc -c <"$out/report.png") bytes) from $out/report.html"

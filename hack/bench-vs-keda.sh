#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/bench-vs-keda.sh runs tierscaler and KEDA side by side on the local
# cluster and prints, at 100 and 1,000 functions per controller, what each
# costs (Prometheus queries per minute while idle, CPU seconds) and how fast
# each reacts (activation from zero, burst of 429s), with the ratios
# KEDA / tierscaler: the table docs/benchmarks.md records. `make
# bench-vs-keda` runs it; it takes about half an hour (most of it at 1,000).
# See hack/benchvskeda/main.go for what is measured and how.
#
# Usage: hack/bench-vs-keda.sh [flags of hack/benchvskeda]
#   e.g. hack/bench-vs-keda.sh --sizes 100 --trials 10 --idle 2m --keep
# Environment: GO (default go).
#
# KEDA v2.21.0 is built by hack/keda.sh the first time (minutes) and cached.
# The machine's load average is printed before and after: the figures
# depend on what else runs.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}

load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then
  commit="$commit (with uncommitted changes)"
fi
echo "== tierscaler vs KEDA, commit $commit, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "\$ hack/bench-vs-keda.sh $*"
load

keda=$(hack/keda.sh)
# Named like the test environments' directories, so that
# hack/check-leftovers.sh would list anything left behind.
bin=$(mktemp -d "${TMPDIR:-/tmp}/tierscaler-testenv-bench-vs-keda-XXXXXX")
trap 'rm -rf "$bin"' EXIT
"$GO" build -o "$bin/benchvskeda" ./hack/benchvskeda
"$GO" build -o "$bin/tierscaler" ./cmd/tierscaler

"$bin/benchvskeda" --keda-dir "$keda" --tierscaler "$bin/tierscaler" "$@"
echo
load

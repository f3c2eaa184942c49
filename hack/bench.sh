#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/bench.sh measures the controller on the local cluster (real
# kube-apiserver, scheduler, controller-manager, kwok nodes, Prometheus) and
# prints the figures docs/benchmarks.md records. `make bench-cluster` runs it.
#
#   1. BenchmarkReconcileLocalCluster (scaler/bench_integration_test.go):
#      Reconcile at FUNCTIONS (10,000) functions through the informer cache and the real
#      Prometheus: p50/p99 over CYCLES cycles and the breakdown (k8s,
#      Prometheus, decide, other) and the median of each query.
#   2. TestSyncBurstIsScaledUpAndThe429sStop (scaler/integration_test.go),
#      REACTION_RUNS times: the reaction time from the first 429s Prometheus
#      reports to the scale patch (its "reaction:" log line).
#
# Usage: hack/bench.sh
# Environment: CYCLES (default 30), REACTION_RUNS (default 5), GO (default go),
#              FUNCTIONS (default 10000),
#              KEEP_LOGS=1 keeps the full logs (always kept on failure).
#
# The machine's load average is printed before and after each step: the
# figures depend on what else runs (other builds and tests).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
cycles=${CYCLES:-30}
runs=${REACTION_RUNS:-5}
functions=${FUNCTIONS:-10000}
logs=$(mktemp -d "${TMPDIR:-/tmp}/tierscaler-bench-XXXXXX")

load() { echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"; }

# run LOG CMD...: runs CMD with its output in LOG; on failure prints the end
# of LOG and exits.
run() {
  local log=$1
  shift
  echo "  \$ $*"
  if ! "$@" >"$log" 2>&1; then
    echo "FAILED; the last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

echo "== Reconcile at $functions functions on the local cluster ($cycles cycles)"
load
run "$logs/reconcile.log" env TIERSCALER_BENCH_FUNCTIONS="$functions" "$GO" test -tags integration -count=1 -run '^$' \
  -bench '^BenchmarkReconcileLocalCluster$' -benchtime "${cycles}x" -timeout 30m ./scaler/
load
grep -E '^BenchmarkReconcileLocalCluster' "$logs/reconcile.log" | sed 's/^/  /'
grep -E 'Deployments created|cycles: reconcile|median of each request' "$logs/reconcile.log" | sed -E 's/^ *bench_integration_test.go:[0-9]+: /  /'

echo
echo "== Reaction time: first 429s in Prometheus to the scale patch ($runs runs)"
load
# One `go test` per run, each with a fresh cluster: with -count=N the runs
# share one Prometheus, and the previous run's traffic still shows in the
# next run's first rate window (see docs/benchmarks.md).
for i in $(seq "$runs"); do
  run "$logs/reaction-$i.log" "$GO" test -tags integration -count=1 -v \
    -run '^TestSyncBurstIsScaledUpAndThe429sStop$' -timeout 10m ./scaler/
done
cat "$logs"/reaction-*.log >"$logs/reaction.log"
load
grep -E 'reaction: ' "$logs/reaction.log" | sed -E 's/^ *integration_test.go:[0-9]+: /  /'
# The reactions in milliseconds ("850ms", "1.234s"), sorted (POSIX awk: mawk
# has no asort).
grep -oE 'visible [0-9.]+(ms|s) later' "$logs/reaction.log" |
  awk '{ v = $2; if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 } else { sub(/s$/, "", v); print v * 1000 } }' |
  sort -n |
  awk '{ ms[NR] = $1 }
    END {
      if (NR == 0) { print "  no reaction line found"; exit 1 }
      printf "  reaction over %d runs: min %.0f ms, median %.0f ms, max %.0f ms\n", NR, ms[1], ms[int((NR + 1) / 2)], ms[NR]
    }'

if [[ "${KEEP_LOGS:-}" == 1 ]]; then
  echo "Full logs in $logs"
else
  rm -rf "$logs"
fi

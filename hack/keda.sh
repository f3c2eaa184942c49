#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/keda.sh builds KEDA from the Go module proxy and caches it outside the
# work tree, for the side-by-side benchmark (hack/bench-vs-keda.sh) and its
# smoke test (hack/benchvskeda):
#
#   <dir>/keda-operator   the operator (github.com/kedacore/keda/v2/cmd/operator):
#                         polls the triggers, activates from and deactivates to zero
#   <dir>/keda-adapter    the metrics adapter (cmd/adapter): serves
#                         external.metrics.k8s.io to the HPAs KEDA creates, which
#                         do every scaling step above one replica
#   <dir>/crds/*.yaml     its CRDs, copied from the module's config/crd/bases
#
# The build is a throwaway module that requires KEDA (as hack/tools.sh builds
# kube-apiserver), with the one replace KEDA's own go.mod carries. No KEDA
# code or binary enters the repository. A second run finds the cache and
# takes well under a second.
#
# Usage: hack/keda.sh          build what is missing, print <dir>
#        hack/keda.sh --dir    print <dir> only
#
# The cache root is $TIERSCALER_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/tierscaler;
# <dir> is <root>/keda-$KEDA_VERSION. Concurrent runs wait for one another
# (a lock file in the cache root); the caller decides whether to hold the
# machine-wide heavy-build lock, since this script may run inside a command
# that already holds it (make test).
set -euo pipefail

KEDA_VERSION=${KEDA_VERSION:-v2.21.0}
# KEDA's go.mod replaces this module (its v0.1.0 has no licence); a replace
# in a dependency's go.mod does not apply to the main module, so repeat it.
NEXUS_REPLACE="github.com/nexus-rpc/nexus-proto-annotations v0.1.0 => github.com/nexus-rpc/nexus-proto-annotations v0.1.1-0.20260629224316-835bd8d49cb4"

cache=${TIERSCALER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierscaler}
dir="$cache/keda-${KEDA_VERSION}"
logs="$cache/build-logs"

if [[ "${1:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi
if [[ $# -gt 0 ]]; then
  echo "usage: hack/keda.sh [--dir]" >&2
  exit 2
fi

log() { printf '[keda] %s\n' "$*" >&2; }
fail() { printf '[keda] FAILED: %s\n' "$*" >&2; exit 1; }

cached() { [[ -x "$dir/keda-operator" && -x "$dir/keda-adapter" && -f "$dir/crds/keda.sh_scaledobjects.yaml" ]]; }

if cached; then
  echo "$dir"
  exit 0
fi

mkdir -p "$cache" "$logs"
if command -v flock >/dev/null; then
  exec 9>"$cache/keda-${KEDA_VERSION}.lock"
  flock 9
  if cached; then # built by the run we waited for
    echo "$dir"
    exit 0
  fi
fi

build_keda() {
  local mod="$cache/src/keda-${KEDA_VERSION}"
  mkdir -p "$mod" "$dir"
  (
    cd "$mod"
    {
      echo "module tierscaler.local/kedabuild"
      echo
      echo "go 1.26"
      echo
      echo "require github.com/kedacore/keda/v2 ${KEDA_VERSION}"
      echo
      echo "replace ${NEXUS_REPLACE}"
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package kedabuild

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
GO
    echo "[$(date +%T)] go mod tidy (downloads KEDA's dependencies)"
    go mod tidy
    local ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
    local c
    for c in operator adapter; do
      echo "[$(date +%T)] go build cmd/$c"
      go build -ldflags "$ldflags" -o "$dir/keda-$c.tmp" "github.com/kedacore/keda/v2/cmd/$c"
    done
    echo "[$(date +%T)] built"
    local src
    src=$(go list -m -f '{{.Dir}}' "github.com/kedacore/keda/v2")
    [[ -d "$src/config/crd/bases" ]] || { echo "no config/crd/bases in $src"; exit 1; }
    rm -rf "$dir/crds.tmp"
    mkdir -p "$dir/crds.tmp"
    cp "$src"/config/crd/bases/*.yaml "$dir/crds.tmp/"
    chmod u+w "$dir"/crds.tmp/*.yaml
    rm -rf "$dir/crds"
    mv "$dir/crds.tmp" "$dir/crds"
    mv "$dir/keda-adapter.tmp" "$dir/keda-adapter"
    mv "$dir/keda-operator.tmp" "$dir/keda-operator"
  )
}

logf="$logs/keda-${KEDA_VERSION}.log"
start=$SECONDS
log "building the KEDA operator and metrics adapter ${KEDA_VERSION} (log: $logf); a cold build takes minutes"
if ! build_keda >"$logf" 2>&1; then
  tail -n 20 "$logf" >&2 || true
  fail "KEDA did not build; read $logf"
fi
log "built KEDA in $((SECONDS - start))s"
echo "$dir"

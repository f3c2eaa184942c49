#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/tools.sh builds, from the Go module proxy, the binaries the local
# cluster needs and caches them outside the work tree:
#
#   etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok, helm
#
# and makes sure prometheus, promtool, alertmanager and amtool, an image
# builder (podman) and CA certificates for the image are installed (Debian
# packages). A second run finds everything cached and takes seconds.
#
# Usage: hack/tools.sh            build what is missing, print the bin dir
#        hack/tools.sh --bin-dir  print the bin dir only
#        hack/tools.sh helm       build helm only (make release), print the bin dir
#
# The cache root is $TIERSCALER_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/tierscaler.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${TIERSCALER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierscaler}
bin="$cache/bin/k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
logs="$cache/build-logs"

if [[ "${1:-}" == "--bin-dir" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin" "$logs"
log() { printf '[tools] %s\n' "$*" >&2; }
fail() { printf '[tools] FAILED: %s\n' "$*" >&2; exit 1; }

# build NAME CMD...: runs CMD with its output in a log file; on failure names
# the component and the log to read.
build() {
  local name=$1; shift
  local logf="$logs/$name.log"
  local start=$SECONDS
  log "building $name (log: $logf)"
  if ! "$@" >"$logf" 2>&1; then
    tail -n 20 "$logf" >&2 || true
    fail "$name did not build; read $logf"
  fi
  log "built $name in $((SECONDS - start))s"
}

build_kubernetes() {
  local mod="$cache/src/kubernetes-${KUBERNETES_VERSION}"
  mkdir -p "$mod"
  (
    cd "$mod"
    # The kubernetes module replaces its k8s.io/* staging modules with
    # ./staging paths that its module zip lacks; point each at the published
    # v0.x.y module of the same release instead.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [[ -f "$gomod" ]] || { echo "no go.mod for k8s.io/kubernetes@${KUBERNETES_VERSION}"; exit 1; }
    local staging="v0.${KUBERNETES_VERSION#v1.}"
    {
      echo "module tierscaler.local/kubebuild"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
      echo
      grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
    } > go.mod
    cat > tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
    go mod tidy
    local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
    for c in kube-apiserver kube-scheduler kube-controller-manager; do
      go build -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
      mv "$bin/$c.tmp" "$bin/$c"
    done
  )
}

build_etcd() {
  local mod="$cache/src/etcd-${ETCD_VERSION}"
  mkdir -p "$mod"
  (
    cd "$mod"
    printf 'module tierscaler.local/etcdbuild\n\ngo 1.26\n' > go.mod
    cat > tools.go <<'GO'
//go:build tools

package etcdbuild

import _ "go.etcd.io/etcd/server/v3"
GO
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
    go mod tidy
    go build -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$bin/etcd.tmp" "$bin/etcd"
  )
}

build_kwok() {
  GOBIN="$bin" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  # kwok refuses to start without stages: ship the ones in its module.
  local src
  src=$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  local out="$bin/kwok-stages.yaml.tmp"
  : > "$out"
  local f
  for f in "$src"/kustomize/stage/node/fast/node-initialize.yaml \
           "$src"/kustomize/stage/node/heartbeat-with-lease/*.yaml \
           "$src"/kustomize/stage/pod/fast/pod-ready.yaml \
           "$src"/kustomize/stage/pod/fast/pod-complete.yaml \
           "$src"/kustomize/stage/pod/fast/pod-delete.yaml; do
    [[ -f "$f" ]] || { echo "missing kwok stage $f"; exit 1; }
    printf -- '---\n' >> "$out"
    cat "$f" >> "$out"
    printf '\n' >> "$out"
  done
  mv "$out" "$bin/kwok-stages.yaml"
}

build_helm() {
  GOBIN="$bin" go install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
}

if [[ "${1:-}" == "helm" ]]; then
  [[ -x "$bin/helm" ]] || build helm build_helm
  echo "$bin"
  exit 0
fi

[[ -x "$bin/etcd" ]] || build etcd build_etcd
if [[ ! -x "$bin/kube-apiserver" || ! -x "$bin/kube-scheduler" || ! -x "$bin/kube-controller-manager" ]]; then
  build kubernetes build_kubernetes
fi
[[ -x "$bin/kwok" && -f "$bin/kwok-stages.yaml" ]] || build kwok build_kwok
[[ -x "$bin/helm" ]] || build helm build_helm

# Prometheus and Alertmanager come from Debian packages.
need_pkgs=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_pkgs+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need_pkgs+=(prometheus-alertmanager)
# make image (and so make test) builds the image with podman, buildah or a
# running Docker daemon; a fresh machine gets podman.
if ! command -v podman >/dev/null && ! command -v buildah >/dev/null && ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  need_pkgs+=(podman)
fi
[[ -s /etc/ssl/certs/ca-certificates.crt ]] || need_pkgs+=(ca-certificates)
if (( ${#need_pkgs[@]} > 0 )); then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    fail "missing ${need_pkgs[*]}: install the Debian packages with 'apt-get install -y --no-install-recommends ${need_pkgs[*]}' as root"
  fi
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
  log "installing Debian packages: ${need_pkgs[*]} (log: $logs/apt.log)"
  if ! { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need_pkgs[@]}"; } >"$logs/apt.log" 2>&1; then
    tail -n 20 "$logs/apt.log" >&2 || true
    fail "apt-get could not install ${need_pkgs[*]}; read $logs/apt.log, or install them yourself with 'apt-get install -y --no-install-recommends ${need_pkgs[*]}'"
  fi
  # The Debian packages start their services where an init system exists;
  # the local cluster runs its own on free ports, so stop those if present.
  command -v systemctl >/dev/null && $SUDO systemctl disable --now prometheus prometheus-alertmanager prometheus-node-exporter >/dev/null 2>&1 || true
fi

echo "$bin"

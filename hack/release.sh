#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/release.sh fills dist/ with what a release publishes (`make release`;
# docs/building.md):
#
#   tierscaler_<version>_<os>_<arch>.tar.gz   the binary, LICENSE and README.md,
#                                             for each of $PLATFORMS
#   tierscaler-<chart version>.tgz            the packaged chart (helm package),
#                                             pushable to an OCI registry
#   sha256sums.txt                            the checksums of the above
#
# A release build is one whose version is a plain X.Y.Z (the commit is tagged
# vX.Y.Z and the tree is clean): then the chart's version and appVersion must
# both be X.Y.Z, or it fails. Any other build packages the chart as
# <chart version>-dev.<commit> with appVersion <version>, so that its default
# image tag is the one `make image` gives.
#
# Environment:
#   DIST              output directory (default dist)
#   PLATFORMS         default "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"
#   IMAGE_REGISTRY, IMAGE_REPOSITORY, IMAGE_DIGEST
#                     written into the packaged chart's image.registry,
#                     image.repository and image.digest defaults: the release
#                     workflow gives the registry and repository it pushed the
#                     image to, and its digest
#   HELM              the helm binary (default: the one hack/tools.sh builds)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

dist=${DIST:-dist}
platforms=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
chart_src=deploy/chart/tierscaler

log() { printf '[release] %s\n' "$*" >&2; }
fail() { printf '[release] %s\n' "$*" >&2; exit 1; }

read -r version commit date < <(hack/build.sh --print-version)
export VERSION=$version COMMIT=$commit BUILD_DATE=$date
epoch=$(date -u -d "$date" +%s)

helm=${HELM:-}
if [[ -z "$helm" ]]; then
  helm="$(hack/tools.sh --bin-dir)/helm"
  [[ -x "$helm" ]] || helm="$(hack/tools.sh helm)/helm"
fi
[[ -x "$helm" ]] || fail "helm not found at $helm: run make tools"

chart_field() { sed -n "s/^$1: *\"\{0,1\}\([^\"]*\)\"\{0,1\} *$/\1/p" "$chart_src/Chart.yaml"; }
chart_version=$(chart_field version)
app_version=$(chart_field appVersion)
[[ -n "$chart_version" && -n "$app_version" ]] || fail "$chart_src/Chart.yaml: no version or appVersion"

if [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  release=true
  [[ "$chart_version" == "$version" && "$app_version" == "$version" ]] ||
    fail "releasing $version, but $chart_src/Chart.yaml has version $chart_version and appVersion $app_version: set both to $version"
  pkg_version=$version
else
  release=false
  pkg_version="$chart_version-dev.$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
fi
log "version $version (commit $commit, built $date), chart $pkg_version, release: $release"

rm -rf "$dist"
mkdir -p "$dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# reproducible_tar OUT DIR: a gzipped tar of DIR's files, identical for
# identical content.
reproducible_tar() {
  local out=$1 dir=$2
  tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' -C "$dir" -cf - . | gzip -n -9 > "$out"
}

for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  name="tierscaler_${version}_${os}_${arch}"
  start=$SECONDS
  mkdir -p "$work/$name"
  GOOS=$os GOARCH=$arch hack/build.sh "$work/$name/tierscaler"
  cp LICENSE README.md "$work/$name/"
  reproducible_tar "$dist/$name.tar.gz" "$work/$name"
  log "$name.tar.gz in $((SECONDS - start))s"
done

# The chart, with the image defaults of this release when given.
cp -R "$chart_src" "$work/chart"
values="$work/chart/values.yaml"
set_image_default() {
  local key=$1 value=$2
  [[ -n "$value" ]] || return 0
  [[ "$value" =~ ^[A-Za-z0-9._/:@-]+$ ]] || fail "$key: refusing '$value'"
  # Only in the top-level "image:" block, whose keys are indented by two.
  awk -v key="$key" -v value="$value" '
    /^[^ #]/ { in_image = ($0 == "image:") }
    in_image && $0 ~ "^  " key ":" { print "  " key ": \"" value "\""; done = 1; next }
    { print }
    END { exit done ? 0 : 1 }
  ' "$values" > "$values.new" || fail "$chart_src/values.yaml: no image.$key to set"
  mv "$values.new" "$values"
}
set_image_default registry "${IMAGE_REGISTRY:-}"
set_image_default repository "${IMAGE_REPOSITORY:-}"
set_image_default digest "${IMAGE_DIGEST:-}"
"$helm" lint "$work/chart" >/dev/null || fail "helm lint of the packaged chart failed"
"$helm" package "$work/chart" --destination "$dist" --version "$pkg_version" --app-version "$version" >/dev/null
log "tierscaler-$pkg_version.tgz"

(cd "$dist" && sha256sum -- *.tar.gz *.tgz > sha256sums.txt)
log "$(wc -l < "$dist/sha256sums.txt") files in $dist, checksums in $dist/sha256sums.txt"

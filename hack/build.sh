#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/build.sh builds the tierscaler binary the way every artifact is built:
# `make build`, `make release`, `make image` and the Dockerfile all call it,
# so that they cannot drift apart.
#
#   static:   CGO_ENABLED=0, -trimpath, stripped (-s -w)
#   stamped:  -X of the version, commit and build date (`tierscaler version`,
#             tierscaler_build_info)
#
# Usage: hack/build.sh OUTPUT            for the host, or GOOS/GOARCH if set
#        hack/build.sh --print-version   print VERSION COMMIT BUILD_DATE
#
# VERSION, COMMIT and BUILD_DATE come from the environment when set (the
# Dockerfile passes them as build arguments: its context has no .git), else
# from git:
#
#   VERSION     the nearest v* tag without its "v" (0.1.0, or
#               0.1.0-3-gabc1234 three commits later), else 0.0.0-<commit>;
#               "-dirty" when the work tree has changes
#   COMMIT      the full commit hash
#   BUILD_DATE  $SOURCE_DATE_EPOCH if set, else the commit's date, in UTC
#               (RFC 3339): two builds of one commit are then identical, and
#               the image layer holding the binary stays cached
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

in_git() { git rev-parse --is-inside-work-tree >/dev/null 2>&1; }

if [[ -z "${VERSION:-}" ]]; then
  VERSION=0.0.0-dev
  if in_git; then
    if desc=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
      VERSION=${desc#v}
    else
      VERSION=0.0.0-$(git rev-parse --short=12 HEAD)
      [[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] || VERSION+=-dirty
    fi
  fi
fi
if [[ -z "${COMMIT:-}" ]]; then
  COMMIT=unknown
  in_git && COMMIT=$(git rev-parse HEAD)
fi
if [[ -z "${BUILD_DATE:-}" ]]; then
  if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
    BUILD_DATE=$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)
  elif in_git; then
    BUILD_DATE=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
  else
    BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  fi
fi

if [[ "${1:-}" == "--print-version" ]]; then
  echo "$VERSION $COMMIT $BUILD_DATE"
  exit 0
fi
if [[ $# -ne 1 || "$1" == -* ]]; then
  echo "usage: $0 OUTPUT | --print-version" >&2
  exit 2
fi
out=$1

# A version with spaces or quotes would break -ldflags; refuse it.
for v in "$VERSION" "$COMMIT" "$BUILD_DATE"; do
  [[ "$v" =~ ^[A-Za-z0-9._:+-]+$ ]] || { echo "hack/build.sh: refusing the version string '$v'" >&2; exit 2; }
done

mod=github.com/tierscaler/tierscaler
ldflags="-s -w"
ldflags+=" -X ${mod}/scaler.Version=${VERSION}"
ldflags+=" -X ${mod}/scaler.Revision=${COMMIT}"
ldflags+=" -X main.buildDate=${BUILD_DATE}"

CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out" ./cmd/tierscaler

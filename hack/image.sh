#!/usr/bin/env bash
# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# hack/image.sh builds and exports the tierscaler image on this machine
# (`make image`; docs/building.md). It needs no registry: the Dockerfile's
# "context" build takes the binary and the root files from out/image/, which
# it fills with hack/build.sh and hack/image-rootfs.sh.
#
# Usage: hack/image.sh tool        print the builder it would use
#        hack/image.sh build       build IMAGE:VERSION for linux/<host arch>
#        hack/image.sh save FILE   write the last build as an OCI archive
#
# The builder is podman, else buildah, else docker (with a running daemon);
# IMAGE_TOOL=podman|buildah|docker chooses. podman and buildah use the storage
# driver $CONTAINER_STORAGE_DRIVER (default vfs, which needs no kernel
# support and no daemon; set it empty to use your configured driver).
#
# The build writes out/image/iid (the image ID) and out/image/ref
# (IMAGE:VERSION), which `save` and the tests read.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

IMAGE=${IMAGE:-localhost/tierscaler}
out=${IMAGE_DIR:-$root/out/image}
driver=${CONTAINER_STORAGE_DRIVER-vfs}

log() { printf '[image] %s\n' "$*" >&2; }
fail() { printf '[image] %s\n' "$*" >&2; exit 1; }

detect_tool() {
  if [[ -n "${IMAGE_TOOL:-}" ]]; then
    command -v "$IMAGE_TOOL" >/dev/null || fail "IMAGE_TOOL=$IMAGE_TOOL: not found"
    echo "$IMAGE_TOOL"
    return
  fi
  if command -v podman >/dev/null; then echo podman; return; fi
  if command -v buildah >/dev/null; then echo buildah; return; fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  fail "no image builder: install podman (apt-get install -y --no-install-recommends podman; make tools does it) or buildah, or start a Docker daemon"
}

# tool_cmd TOOL: the builder command with its storage options.
tool_cmd() {
  case "$1" in
    podman|buildah)
      if [[ -n "$driver" ]]; then echo "$1 --storage-driver=$driver"; else echo "$1"; fi ;;
    *) echo "$1" ;;
  esac
}

cmd_build() {
  local tool cmd
  tool=$(detect_tool)
  cmd=$(tool_cmd "$tool")
  local version commit date
  read -r version commit date < <(hack/build.sh --print-version)
  local arch
  arch=$(go env GOARCH)
  local ref="$IMAGE:$version"

  local start=$SECONDS
  rm -rf "$out/linux_"* "$out/rootfs"
  mkdir -p "$out/linux_$arch"
  GOOS=linux GOARCH=$arch VERSION=$version COMMIT=$commit BUILD_DATE=$date hack/build.sh "$out/linux_$arch/tierscaler"
  hack/image-rootfs.sh "$out/rootfs"
  log "binary and root files in $((SECONDS - start))s"

  start=$SECONDS
  # Reproducible: the image's dates are the build date (the commit's), so
  # that two builds of one commit give the same image ID.
  local epoch
  epoch=$(date -u -d "$date" +%s)
  local build=(build --timestamp "$epoch")
  case "$tool" in
    buildah) build=(bud --timestamp "$epoch") ;;
    docker) build=(build --build-arg SOURCE_DATE_EPOCH="$epoch") ;;
  esac
  rm -f "$out/iid"
  # shellcheck disable=SC2086 # $cmd is the tool and its options
  $cmd "${build[@]}" \
    --platform "linux/$arch" \
    --build-arg BINARY=context \
    --build-arg VERSION="$version" \
    --build-arg COMMIT="$commit" \
    --build-arg BUILD_DATE="$date" \
    --iidfile "$out/iid" \
    -t "$ref" \
    -f "$root/Dockerfile" \
    "$out" >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; fail "$tool build failed; read $out/build.log"; }
  echo "$ref" > "$out/ref"
  echo "$tool" > "$out/tool"
  log "built $ref ($(cat "$out/iid")) with $tool in $((SECONDS - start))s"

  # Every step is a COPY that takes a second, while with the vfs driver each
  # intermediate image is a full copy of the file system: remove this
  # build's intermediate images (dangling, labelled by the Dockerfile) and
  # keep only the last build of the default local name, so that a build at
  # every commit does not fill the disk. What is worth caching, the Go
  # build, is cached by Go.
  if [[ "$tool" != docker ]]; then
    # shellcheck disable=SC2086
    $cmd image prune -f --filter label=org.opencontainers.image.title=tierscaler >/dev/null 2>&1 || true
  fi
  if [[ "$IMAGE" == localhost/tierscaler && "$tool" != docker ]]; then
    local id tag
    while read -r id tag; do
      [[ "sha256:$id" == "$(cat "$out/iid")" || "$id" == "$(cat "$out/iid")" ]] && continue
      # shellcheck disable=SC2086
      $cmd rmi "$IMAGE:$tag" >/dev/null 2>&1 || true
    done < <($cmd images --no-trunc --format '{{.ID}} {{.Tag}}' "$IMAGE" 2>/dev/null | sed 's/^sha256://')
  fi
}

cmd_save() {
  local file=$1
  [[ -s "$out/iid" && -s "$out/tool" ]] || fail "no image built in $out: run make image"
  local tool cmd id
  tool=$(cat "$out/tool")
  cmd=$(tool_cmd "$tool")
  id=$(cat "$out/iid")
  rm -f "$file"
  case "$tool" in
    # shellcheck disable=SC2086
    podman) $cmd save --format oci-archive -o "$file" "$id" ;;
    # shellcheck disable=SC2086
    buildah) $cmd push "$id" "oci-archive:$file" ;;
    # docker save writes an OCI image layout (Docker 25 and later).
    docker) docker save -o "$file" "$(cat "$out/ref")" ;;
  esac
}

case "${1:-}" in
  tool) detect_tool ;;
  build) cmd_build ;;
  save) [[ $# -eq 2 ]] || fail "usage: $0 save FILE"; cmd_save "$2" ;;
  *) echo "usage: $0 tool | build | save FILE" >&2; exit 2 ;;
esac

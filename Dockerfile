# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# The tierscaler image: one static binary on an empty (scratch) base, with CA
# certificates, a passwd entry for UID 65532 and nothing else. docs/building.md
# explains the two ways it is built; in short:
#
#   BINARY=compile (default; the release workflow, any machine with a registry)
#     The "compile" stage compiles in GO_IMAGE on the build platform and
#     cross-compiles for each target platform (no emulation):
#       docker buildx build --platform linux/amd64,linux/arm64 --build-arg BINARY=compile \
#         --build-arg VERSION=... --build-arg COMMIT=... --build-arg BUILD_DATE=... .
#
#   BINARY=context (`make image`; machines that reach no container registry)
#     `make image` runs the same scripts on the host (hack/build.sh,
#     hack/image-rootfs.sh) into out/image/ and builds with that directory
#     as the context; no base image is pulled:
#       podman build --build-arg BINARY=context -f Dockerfile out/image
#
# Both ways run hack/build.sh (CGO_ENABLED=0, -trimpath, version stamped with
# -ldflags -X) and hack/image-rootfs.sh, so they produce the same files.

# The Go toolchain image of the compile stage. Short names resolve to the
# builder's default registry; pin a digest in CI (GO_IMAGE=name@sha256:...).
ARG GO_IMAGE=golang:1.26-bookworm
# compile or context: where the binary and the root files come from. Pass it
# explicitly: podman and buildah (4.3) do not resolve a stage named by an
# ARG's default value.
ARG BINARY=compile

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS compile
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION COMMIT BUILD_DATE
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH hack/build.sh /out/${TARGETOS}_${TARGETARCH}/tierscaler \
    && hack/image-rootfs.sh /out/rootfs

# The context build: out/image/ holds <os>_<arch>/tierscaler and rootfs/,
# made by `make image`.
FROM scratch AS context
ARG TARGETOS TARGETARCH
# Marks the intermediate images of this build, which hack/image.sh prunes.
LABEL org.opencontainers.image.title="tierscaler"
COPY ${TARGETOS}_${TARGETARCH}/tierscaler /out/${TARGETOS}_${TARGETARCH}/tierscaler
COPY rootfs/ /out/rootfs/

FROM ${BINARY} AS binary

FROM scratch
ARG TARGETOS TARGETARCH
ARG VERSION=unknown
ARG COMMIT=unknown
ARG BUILD_DATE
ARG SOURCE=https://github.com/tierscaler/tierscaler
LABEL org.opencontainers.image.title="tierscaler" \
      org.opencontainers.image.description="Tiered autoscaler for OpenFaaS functions on Kubernetes" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="The tierscaler Authors"
COPY --from=binary /out/rootfs/ /
COPY --from=binary --chown=65532:65532 /out/rootfs/home/ /home/
COPY --from=binary /out/${TARGETOS}_${TARGETARCH}/tierscaler /usr/local/bin/tierscaler
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/tierscaler"]

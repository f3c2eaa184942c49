# Copyright The tierscaler Authors.
# SPDX-License-Identifier: Apache-2.0

# tierscaler: make help lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin
PKGS      := ./...
# actionlint checks the GitHub workflows (make lint).
ACTIONLINT_VERSION ?= v1.7.12
# The binaries hack/tools.sh builds and caches (etcd, kube-*, kwok, helm).
TOOLS_BIN  = $(shell hack/tools.sh --bin-dir)
export TIERSCALER_BIN_DIR ?= $(TOOLS_BIN)

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/tierscaler: static, stamped with version, commit and build date (hack/build.sh).
	hack/build.sh $(BIN)/tierscaler

.PHONY: version
version: ## Print the version, commit and build date the artifacts are stamped with.
	@hack/build.sh --print-version

.PHONY: image
image: ## Build the image localhost/tierscaler:<version> for this machine with podman, buildah or docker (docs/building.md).
	hack/image.sh build

.PHONY: release
release: ## dist/: binaries for linux and darwin (amd64, arm64), the packaged chart, sha256sums.txt (docs/building.md).
	hack/release.sh

.PHONY: tools
tools: ## Build and cache etcd, kube-*, kwok and helm; install prometheus, alertmanager and podman.
	hack/tools.sh >/dev/null

.PHONY: lint
lint: ## gofmt, go vet, licence headers, actionlint on the workflows.
	hack/check-headers.sh
	$(GO) run github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [[ -n "$$out" ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)

.PHONY: test-unit
test-unit: ## Fast tests: no external processes (-short skips the helm and promtool ones).
	$(GO) test -short -count=1 $(PKGS)

.PHONY: test-fuzz
test-fuzz: ## Run every fuzz target for FUZZTIME (default 15s) each (hack/fuzz.sh); a failing input becomes a seed in testdata/fuzz.
	hack/fuzz.sh

.PHONY: test-integration
test-integration: tools image ## Tests against a real apiserver, scheduler, controller-manager, kwok, Prometheus and Alertmanager; the image's tests.
	$(GO) test -count=1 -tags integration -timeout 40m $(PKGS)

.PHONY: test
test: lint test-unit test-fuzz test-integration ## Every test: lint, unit, fuzzing, integration, end-to-end and the image.
	hack/check-leftovers.sh

.PHONY: bench
bench: ## Benchmarks (figures go to docs/benchmarks.md).
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: demo
demo: tools build ## Run tierscaler on a local cluster with the mixed-small scenario; Ctrl-C stops everything (flags: DEMO_FLAGS='--duration 5m').
	$(GO) build -o $(BIN)/demo ./hack/demo
	$(BIN)/demo --tierscaler $(BIN)/tierscaler $(DEMO_FLAGS)

.PHONY: bench-cluster
bench-cluster: tools ## Benchmarks on the local cluster: Reconcile at 10,000 functions, reaction time to 429s (hack/bench.sh).
	hack/bench.sh

bench-vs-keda: tools ## tierscaler and KEDA side by side at 100 and 1,000 functions (hack/bench-vs-keda.sh; ~30 min).
	hack/bench-vs-keda.sh

.PHONY: cluster-up
cluster-up: tools ## Start the local cluster (state and kubeconfig in .cluster/).
	$(GO) run ./hack/cluster up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster.
	$(GO) run ./hack/cluster down

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package e2e holds tierscaler's end-to-end tests. They need the build tag
// integration, the binaries of `make tools` and the image of `make image`;
// `make test` builds both and runs them:
//
//	make tools image && go test -tags integration -count=1 -v ./hack/e2e/
//
// On one local cluster (hack/testenv: a real kube-apiserver with RBAC,
// scheduler, controller-manager, kwok nodes, Prometheus loaded with the
// chart's rules/activation.rules.yaml, and Alertmanager), each test:
//
//   - installs the Helm chart (deploy/chart/tierscaler) with helm into the
//     namespace openfaas, with values pointing at the local Prometheus and
//     Alertmanager, test-sized intervals and webhook.auth required;
//   - runs the tierscaler binary taken out of the image `make image` built
//     (kwok pods run no containers, and no container can run here) on the
//     host, as the image's user (UID 65532) and the chart's ServiceAccount
//     (a TokenRequest token), with the policy, the arguments and the
//     environment the chart rendered, read back from the cluster, the
//     in-cluster paths replaced by local copies of the mounted ConfigMap and
//     Secret;
//   - drives a workload with the traffic emulator (hack/emulator), which
//     Prometheus scrapes, and checks what tierscaler did through the
//     cluster, the emulator, Alertmanager and tierscaler's own metrics.
//
// TestChartEndToEnd is the full scenario: RBAC sufficient and no broader
// than needed, a sync burst served by evicting the oldest idle cron function
// first, a cron function prewarmed and run every minute without a miss, a
// busy async function never evicted, a capacity shortfall alert in
// Alertmanager that resolves once a node is added, and a helm uninstall
// that leaves nothing behind. TestActivationThroughAlertmanager follows a
// real Prometheus alert through a real Alertmanager webhook receiver to
// tierscaler activating an async function from zero, and measures the time
// from the webhook to the scale.
//
// The tierscaler process gets SIGKILL if the test binary dies (Linux), and
// its command line holds the environment's directory, so
// hack/check-leftovers.sh finds it if anything survives.
package e2e

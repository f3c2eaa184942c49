// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package openfaas is tierscaler's model of the OpenFaaS parts it meets:
// what faas-netes makes of a function, what the gateway exports about it,
// and what the Community Edition provider and the gateway do to its
// replicas. The emulator (hack/emulator, on a local cluster) and the
// simulator (simulate) both use it, so that they cannot drift apart. It is
// pure: no I/O, no clock, no goroutines.
//
// The real gateway and faas-netes cannot run in tierscaler's tests, and
// their code is not copied here: this package reproduces their documented
// and observed behaviour, each rule naming the upstream source it was read
// in (openfaas/faas and openfaas/faas-netes).
//
//   - The Deployment faas-netes creates (NewDeployment, from the deploy
//     request FunctionDeployment; pkg/handlers/deploy.go): name, the
//     faas_function label on the Deployment, its selector and its pod
//     template; the function's labels (com.openfaas.scale.min and .max
//     among them) on the pod template only; the function's annotations on
//     both, with prometheus.io.scrape defaulted to "false"; replicas at
//     com.openfaas.scale.min when it is a positive integer, else 1; rollout
//     maxUnavailable 0, maxSurge 1.
//   - faas-cli deploy of an existing function (Redeploy;
//     pkg/handlers/update.go): spec.replicas is reset to
//     com.openfaas.scale.min when that label is a positive integer; the
//     Deployment's and the pod template's annotations are replaced
//     wholesale by the function's own, so anything another controller
//     wrote there is gone; the pod template's labels are replaced too, with
//     a fresh "uid" label that starts a rollout.
//   - The Community Edition provider (CEWatcherReplicas, CEScaleRequest;
//     pkg/handlers/informers.go and replica_updater.go): a Deployment
//     watcher puts every faas_function Deployment at 0 back to 1 and above
//     5 back to 5; the scale API refuses 0 and caps at 5.
//   - Scale from zero (ScaleFromZeroReplicas; gateway/scaling and
//     gateway/plugin): an invocation of a function whose desired replicas
//     are 0 makes the gateway ask the provider for its minimum (or 1) and
//     hold the request, polling every 100ms up to 1000 times, until a
//     replica is available. The gateway counts the request as started only
//     once it is forwarded, after the hold (gateway/main.go wraps the
//     forwarding proxy, which notifies "started", in the scaling handler).
//   - The gateway's function metrics (Gateway; gateway/handlers/notifiers.go,
//     gateway/metrics): see Gateway for their lifecycles.
//
// Every write faas-netes makes to a Deployment (a redeploy, the CE
// watcher, a scale request from the gateway) is a full update by the
// field manager FieldManager.
package openfaas

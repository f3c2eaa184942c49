// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package simulate runs tierscaler and two baselines on a workload in
// virtual time and compares what each reserves and what each costs the
// functions. It backs `tierscaler simulate`; docs/simulate.md is its
// user's guide.
//
// Three strategies run on the same scenario and seed, each on its own
// workload.Model, Cluster and Querier:
//
//   - static: every function at its initialReplicas, on a cluster grown
//     until every pod has a node;
//   - idle-only: scale-to-zero after a cooldown and activation on demand,
//     as KEDA or OpenFaaS Pro do, without tiers or preemption;
//   - tierscaler: the real scaler.Controller (and so policy.Decide),
//     built with scaler.New on the simulated Cluster (a scaler.Cluster),
//     the simulated Querier (a scaler.Querier) and the virtual clock, its
//     Reconcile called every policy interval. Nothing of the controller or
//     the engine is copied.
//
// Between reconciles the model advances in steps of Config.Step, split
// where a pod becomes Ready so that the model always sees the exact Ready
// count; the querier samples it on the Step grid, as Prometheus scrapes
// the emulator (hack/emulator) on a real cluster. Everything is
// deterministic: the same Config gives the same Report.
//
// A backtest replays recorded gateway metrics instead of the scenario's
// load: ReadTrace reads them from Prometheus, Trace.Scenario builds the
// scenario (function metadata from an optional scenario) and Trace.Load
// replays the recorded rates (Config.Load).
//
// Run returns a Report: WriteSummary (the comparison table), JSON and
// WriteHTML (a self-contained page with inline SVG charts), or WriteFiles
// for all three.
package simulate

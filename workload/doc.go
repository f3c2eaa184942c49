// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package workload is tierscaler's workload model: the scenario file that
// describes a cluster's functions and their load, and a deterministic,
// closed-loop state machine that turns that load and the number of Ready
// replicas into what OpenFaaS would count. The traffic emulator
// (hack/emulator) and the virtual-time simulator both step the same Model,
// so they agree.
//
// The package is pure: no I/O except Load reading a file, no clock (the
// caller passes the time in), and randomness only from a seeded generator.
//
// # Scenario
//
// A scenario is a YAML document (apiVersion tierscaler.io/v1alpha1, kind
// Scenario) decoded strictly by Parse or Load, defaulted, and validated with
// every problem reported at once, each naming its field. Built-in scenarios
// are embedded (Builtin, BuiltinNames); Resolve takes a file name or a
// built-in name.
//
// # Time
//
// The model's clock starts at the first Step's now (its origin); burst
// offsets and async burst trains count from there. Step(now, dt, ready)
// advances the model over [now, now+dt) with ready held constant, and
// Observe then reports the state just before now+dt (a run or job that ends
// exactly at now+dt is still in flight; the next step completes it first). Steps are contiguous: a Step
// whose now is not the previous step's end is taken to start at that end.
// Discrete events (cron fires, job arrivals, job and run completions) are
// processed at their exact times within a step, so with constant ready the
// result does not depend on the step size; the sync fluid is split at burst
// edges and at least every minute.
//
// # Sync functions (fluid model)
//
// The offered rate at time t is
//
//	λ(t) = base + (peak−base)·(1+cos(2π(h(t)−peakHour)/24))/2 + Σ rps of active bursts
//
// with h(t) the hour of day in the scenario's time zone (without a diurnal
// curve, λ(t) = base + bursts). A control override replaces λ(t) entirely.
// With r Ready replicas, maxInflight m and request duration d, the
// concurrency capacity is C = r·m and the throughput capacity μ = C/d
// requests per second. Over each segment of length L:
//
//	offered  = λ·L            (counted in Started at once)
//	accepted = min(λ, μ)·L
//	rejected = offered − accepted  (answered 429 at once: Rejected429)
//
// Accepted requests complete d later (Completed200), spread over the
// segment as they arrived, so in steady state
//
//	Inflight = min(λ·d, C) = Started − Completed200 − Rejected429
//
// exactly as OpenFaaS' gateway counters relate. With r = 0 every request is
// rejected (a real gateway would answer 5xx; the model counts a 429 so the
// unmet demand shows as rejections), unless the gateway holds it for scale
// from zero (see below). More Ready replicas mean fewer 429s:
// the rejected rate is max(0, λ − r·m/d). Requests accepted before r drops
// still complete (pods drain in-flight work when terminated).
//
// # Cron functions
//
// Fire times come from the schedule (robfig/cron standard parser, the
// scenario's time zone). At each fire (CronFires):
//
//   - synchronous (default): if r ≥ 1 and fewer than r·m runs are in
//     flight, a run starts (CronRuns, Started) and completes RunDuration
//     later (Completed200); otherwise the fire is a missed run (CronMissed),
//     which the gateway counts as a started invocation answered 429.
//   - async: true: the message is queued (Pending) and starts, FIFO, once
//     a slot is free on a Ready replica (CronRuns, Started). Its wait is
//     recorded in AsyncWait. A run is late (CronLate) when it starts
//     strictly after its fire time (wait > 0). Only async cron runs can be
//     late: a synchronous fire either starts at its fire time or is missed.
//
// Fire (the control API) adds a fire at the start of the next step.
//
// # Scale from zero
//
// With Model.SetHoldAtZero(timeout), the gateway's scale from zero: a
// synchronous invocation (a sync request or a synchronous cron fire) of a
// function with no Ready replica is held (Held), not refused and not yet
// Started, as the OpenFaaS gateway holds it until a replica is available.
// At the first step with a Ready replica the held work is forwarded
// (Started): what the free slots take runs (a cron run started so is
// late), the rest is refused with 429. Work held for the timeout is
// forwarded to no replica and fails at once (Failed, Started; a missed
// cron run). Queued work (async jobs, async cron runs) waits in its queue
// either way. Making a replica Ready is the caller's part: the emulator
// and the simulator scale a function at zero when it has demand, as the
// gateway asks the provider to.
//
// # Async functions
//
// Jobs arrive in burst trains (Jobs jobs at origin + First + k·Every + U_k,
// U_k uniform in [0, Jitter) from the seed) and as a Poisson stream of Rate
// jobs per second (exponential inter-arrival times from the seed); Enqueue
// adds jobs at the start of the next step. They queue (Pending) and r·m
// workers take them FIFO, each for JobDuration: a job starts at the first
// moment a worker is free (Started) and completes JobDuration later
// (Completed200). Each job's wait (start − arrival) goes into AsyncWait.
// Arrival times depend only on the seed and the function's key, never on
// ready or the step size.
//
// # Resource usage
//
// One Ready pod uses
//
//	CPUPerPod    = usage.pod.cpu    + usage.perRequest.cpu    · Inflight / max(r, 1)
//	MemoryPerPod = usage.pod.memory + usage.perRequest.memory · Inflight / max(r, 1)
//
// (cores and bytes), each capped at the container limit when one is set
// (CPU is throttled; memory beyond the limit would be an OOM kill, which the
// model does not simulate).
//
// # Activity
//
// LastActivity is the latest time the function was offered work (a
// request, fire or job arrival), started, ran or completed work; for sync
// functions and for work still in flight it is resolved to the end of the
// step.
package workload

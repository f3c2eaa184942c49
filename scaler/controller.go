// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tierscaler/tierscaler/policy"
)

// ShortfallSink receives, every cycle, the full set of shortfalls that are
// active now; the alerts package turns them into firing and resolved alerts.
type ShortfallSink interface {
	Sync(ctx context.Context, now time.Time, shortfalls []policy.Shortfall)
}

// Options configure a Controller.
type Options struct {
	Policy   *policy.Policy
	Cluster  Cluster
	Querier  Querier
	Recorder EventRecorder
	Metrics  *Metrics
	Sink     ShortfallSink
	// DryRun decides and reports but never patches.
	DryRun bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log logr.Logger
	// RevertBackoff is how long tierscaler leaves a function alone after
	// another actor reverted its replicas; it doubles on each repeat up to
	// 8 times. Default 10m.
	RevertBackoff time.Duration
	// RevertWatch is how long after a patch a change by another actor counts
	// as a revert. Default 5m.
	RevertWatch time.Duration
	// RevertSettle is how long a change back up toward the old count with
	// no demand in sight waits for Prometheus to show the demand that may
	// have caused it (a scale from zero), holding the function meanwhile,
	// before it counts as a reversal. Default: the larger of two intervals
	// and 30s.
	RevertSettle time.Duration
	// InflightResetHold is how long, at least, in-flight work reads as
	// unknown after it fell to 0 with no completion seen, for a function
	// whose duration was never learned (see inflight.go). Default 1h.
	InflightResetHold time.Duration
	// RevertsBeforeHold is how many reversals within RevertBackoff make a
	// revert: tierscaler tries that many times, then holds. Default 2.
	RevertsBeforeHold int
	// State keeps the last runs of the cron and async functions across
	// restarts, failovers and redeploys (state.go). Default: in memory
	// (NewMemoryStore), as the simulator wants; tierscaler run uses a
	// ConfigMapStore.
	State LastRunStore
	// LastRunResolution is how far a last run must move before it is
	// written to State again. Default 1m.
	LastRunResolution time.Duration
	// MissedHold is how long a missed readiness check stays a shortfall
	// when the function does not become Ready. Default 15m.
	MissedHold time.Duration
	// CycleTimeout bounds one reconcile cycle: gather, decide, act, report
	// and persist. Default: the largest of 4/5 of the policy interval, the
	// Prometheus timeout plus 5s, and 10s. A cycle cut short is counted as
	// tierscaler_reconciles_total{result="timeout"}; what it did not do is
	// decided again next cycle.
	CycleTimeout time.Duration
	// WriteTimeout bounds each write to the API server (a scale, an
	// annotation, the state object), retries included. Default 5s.
	WriteTimeout time.Duration
}

// Controller gathers, decides and acts, one cycle at a time.
type Controller struct {
	o       Options
	trigger chan struct{}
	// fast asks for a fast-path cycle (see ReconcileFast).
	fast chan struct{}

	mu      sync.Mutex
	leader  bool
	lastRun map[string]time.Time
	// persisted is what State holds; stateLoaded and migrated say whether
	// it was loaded and whether the annotations were migrated into it.
	persisted   map[string]time.Time
	stateLoaded bool
	migrated    bool
	lastScale   map[string]time.Time
	activation  map[string]time.Time
	scaledUpAt  map[string]time.Time
	startups    map[string][]time.Duration
	runs        map[string]learnedRun
	expect      map[string]expectation
	reversals   map[string]reversal
	holds       map[string]hold
	checks      map[string]policy.ReadinessCheck
	missed      map[string]missed
	invalid     map[string]string
	shortfalls  map[string]bool
	lastAction  map[string]string
	metas       map[string]metaEntry
	series      map[[2]string]gaugePair
	// revertSeries are the functions with a tierscaler_provider_reverts_total
	// series, deleted with the function.
	revertSeries map[string]bool
	// inflight remembers each function's in-flight figure, to tell a
	// counter reset from a finished run (inflight.go).
	inflight map[string]inflightMemo
	// steps are the usage-driven scale-ups applied, given back to the
	// engine (Function.CPUStep, MemoryStep) so that usage that does not
	// respond to replicas never drives scaling twice.
	steps  map[string]usageSteps
	last   lastCycle
	cycles int
	// leadingSince is when this process started leading; lastFinished is
	// when a cycle last finished. Healthy compares them with the clock.
	leadingSince time.Time
	lastFinished time.Time
}

// gaugePair is a function's desired and observed replica gauges, kept
// across cycles.
type gaugePair struct{ desired, replicas prometheus.Gauge }

// lastCycle is what the last cycle saw and decided; Status is built from it
// when asked for.
type lastCycle struct {
	plan       *policy.Plan
	shortfalls []policy.Shortfall
	snap       *policy.Snapshot
	desired    map[string]int32
	now        time.Time
}

// metaEntry caches a Deployment's parsed metadata for one resourceVersion.
type metaEntry struct {
	uid, resourceVersion string
	meta                 policy.Meta
	err                  error
}

// usageSteps are the last usage-driven scale-ups of one Deployment.
type usageSteps struct {
	uid      string
	cpu, mem *policy.UsageStep
}

type missed struct {
	shortfall policy.Shortfall
	until     time.Time
}

// ErrUnknownFunction is returned by Activate for a function tierscaler does
// not watch.
var ErrUnknownFunction = errors.New("unknown function")

// New returns a controller.
func New(o Options) (*Controller, error) {
	if o.Policy == nil || o.Cluster == nil || o.Querier == nil {
		return nil, errors.New("scaler: a policy, a cluster and a querier are required")
	}
	if o.Metrics == nil {
		return nil, errors.New("scaler: metrics are required")
	}
	if o.Recorder == nil {
		o.Recorder = nopRecorder{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RevertBackoff <= 0 {
		o.RevertBackoff = 10 * time.Minute
	}
	if o.RevertWatch <= 0 {
		o.RevertWatch = 5 * time.Minute
	}
	if o.RevertSettle <= 0 {
		o.RevertSettle = max(2*o.Policy.Interval.Duration, 30*time.Second)
	}
	if o.InflightResetHold <= 0 {
		o.InflightResetHold = time.Hour
	}
	if o.RevertsBeforeHold <= 0 {
		o.RevertsBeforeHold = 2
	}
	if o.LastRunResolution <= 0 {
		o.LastRunResolution = time.Minute
	}
	if o.State == nil {
		o.State = NewMemoryStore()
	}
	if o.MissedHold <= 0 {
		o.MissedHold = 15 * time.Minute
	}
	if o.CycleTimeout <= 0 {
		o.CycleTimeout = max(o.Policy.Interval.Duration*4/5, o.Policy.Prometheus.Timeout.Duration+5*time.Second, 10*time.Second)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	return &Controller{
		o: o, trigger: make(chan struct{}, 1), fast: make(chan struct{}, 1),
		lastRun: map[string]time.Time{}, persisted: map[string]time.Time{}, lastScale: map[string]time.Time{}, activation: map[string]time.Time{},
		scaledUpAt: map[string]time.Time{}, startups: map[string][]time.Duration{}, runs: map[string]learnedRun{}, expect: map[string]expectation{}, reversals: map[string]reversal{},
		holds: map[string]hold{}, checks: map[string]policy.ReadinessCheck{}, missed: map[string]missed{},
		invalid: map[string]string{}, shortfalls: map[string]bool{}, lastAction: map[string]string{},
		metas: map[string]metaEntry{}, revertSeries: map[string]bool{}, steps: map[string]usageSteps{}, inflight: map[string]inflightMemo{},
	}, nil
}

// NeedLeaderElection makes the manager run the loop only on the leader.
func (c *Controller) NeedLeaderElection() bool { return true }

// Leader reports whether this process runs the loop.
func (c *Controller) Leader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Start runs the reconcile loop until ctx ends: every policy interval, and at
// once when Trigger is called. A failing or panicking cycle is logged and
// counted; the loop goes on. Every cycle is bounded by CycleTimeout; a
// watchdog sets tierscaler_reconcile_stalled while no cycle finishes (see
// Healthy).
func (c *Controller) Start(ctx context.Context) error {
	c.startLeading()
	c.o.Metrics.Leader.Set(1)
	defer c.o.Metrics.Leader.Set(0)
	c.o.Log.Info("leading: reconciling", "interval", c.o.Policy.Interval.Duration, "cycleTimeout", c.o.CycleTimeout,
		"writeTimeout", c.o.WriteTimeout, "dryRun", c.o.DryRun)
	watchdog := time.NewTicker(c.o.Policy.Interval.Duration)
	defer watchdog.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-watchdog.C:
				c.watch()
			}
		}
	}()
	ticker := time.NewTicker(c.o.Policy.Interval.Duration)
	defer ticker.Stop()
	var lastFast time.Time
	for {
		c.safeReconcile(ctx, false)
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
				break wait
			case <-c.trigger:
				break wait
			case <-c.fast:
				// Between full cycles, at most one fast cycle a
				// FastMinInterval; the full cycle keeps its ticks.
				if d := FastMinInterval - time.Since(lastFast); d > 0 {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(d):
					}
				}
				lastFast = time.Now()
				c.safeReconcile(ctx, true)
			}
		}
	}
}

// FastMinInterval is the least time between two fast-path cycles.
const FastMinInterval = time.Second

func (c *Controller) startLeading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = true
	c.leadingSince = c.o.Now()
}

// stallAfter is how long a leader may go without finishing a cycle before
// it counts as stuck: three intervals plus one cycle timeout.
func (c *Controller) stallAfter() time.Duration {
	return 3*c.o.Policy.Interval.Duration + c.o.CycleTimeout
}

// Healthy returns an error when this process leads and no reconcile cycle
// has finished for three intervals plus the cycle timeout: the loop is
// stuck while the lease keeps renewing. /healthz serves it, so that the
// kubelet restarts a stuck leader and another replica takes over. A
// follower is healthy.
func (c *Controller) Healthy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leader {
		return nil
	}
	since := latest(c.leadingSince, c.lastFinished)
	if age := c.o.Now().Sub(since); age > c.stallAfter() {
		return fmt.Errorf("leading, but no reconcile cycle has finished for %s (interval %s, cycle timeout %s)",
			age.Round(time.Second), c.o.Policy.Interval.Duration, c.o.CycleTimeout)
	}
	return nil
}

// watch sets tierscaler_reconcile_stalled from Healthy.
func (c *Controller) watch() {
	if err := c.Healthy(); err != nil {
		c.o.Metrics.Stalled.Set(1)
		c.o.Log.Error(err, "the reconcile loop is stuck")
		return
	}
	c.o.Metrics.Stalled.Set(0)
}

// writeContext bounds one write to the API server by WriteTimeout, within
// the cycle's deadline.
func (c *Controller) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.o.WriteTimeout)
}

func (c *Controller) safeReconcile(ctx context.Context, fast bool) {
	defer func() {
		if r := recover(); r != nil {
			c.o.Metrics.Reconciles.WithLabelValues("error").Inc()
			c.o.Log.Error(fmt.Errorf("panic: %v", r), "reconcile panicked; holding until the next cycle", "stack", string(debug.Stack()))
		}
	}()
	if _, err := c.reconcile(ctx, fast); err != nil && ctx.Err() == nil {
		c.o.Log.Error(err, "reconcile failed; nothing was changed", "fast", fast)
	}
}

// Trigger asks for a reconcile now, without waiting for the interval.
func (c *Controller) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// TriggerFast asks for a fast-path cycle now (see ReconcileFast).
func (c *Controller) TriggerFast() {
	select {
	case c.fast <- struct{}{}:
	default:
	}
}

// FunctionRef names a function: Name in Namespace.
type FunctionRef struct{ Namespace, Name string }

// Key is the function's OpenFaaS function_name, name.namespace.
func (r FunctionRef) Key() string { return r.Name + "." + r.Namespace }

// Activate records an activation (or scale-up) request for one function;
// see ActivateAll.
func (c *Controller) Activate(ctx context.Context, namespace, name string) error {
	return c.ActivateAll(ctx, []FunctionRef{{Namespace: namespace, Name: name}})[0]
}

// ActivateAll records activation (or scale-up) requests for functions, as
// an Alertmanager webhook makes them, and triggers one reconcile. It reads
// the cluster state once, whatever the number of functions, and returns one
// error per function, in order: nil, one wrapping ErrUnknownFunction for a
// function tierscaler does not watch, or the reason it failed. The leader
// keeps the requests in memory; another replica writes each to its
// Deployment's tierscaler.io/activation-requested annotation, where the
// leader's informer sees it, and stops writing when ctx ends.
func (c *Controller) ActivateAll(ctx context.Context, fns []FunctionRef) []error {
	errs := make([]error, len(fns))
	fail := func(from int, err error) {
		for i := from; i < len(fns); i++ {
			if errs[i] == nil {
				errs[i] = err
				c.o.Metrics.ActivationRequests.WithLabelValues("error").Inc()
			}
		}
	}
	if len(fns) == 0 {
		return errs
	}
	if err := ctx.Err(); err != nil {
		fail(0, err)
		return errs
	}
	st, err := c.o.Cluster.State(ctx)
	if err != nil {
		fail(0, err)
		return errs
	}
	want := make(map[string]*appsv1.Deployment, len(fns))
	for _, f := range fns {
		want[f.Key()] = nil
	}
	for i := range st.Deployments {
		d := &st.Deployments[i]
		if _, ok := want[d.Name+"."+d.Namespace]; ok {
			want[d.Name+"."+d.Namespace] = d
		}
	}
	now := c.o.Now()
	c.mu.Lock()
	leader := c.leader
	for i, f := range fns {
		if want[f.Key()] == nil {
			errs[i] = fmt.Errorf("%w %s", ErrUnknownFunction, f.Key())
			c.o.Metrics.ActivationRequests.WithLabelValues("unknown-function").Inc()
			continue
		}
		c.activation[f.Key()] = now
	}
	c.mu.Unlock()
	accepted := 0
	for i, f := range fns {
		if errs[i] != nil {
			continue
		}
		if !leader && !c.o.DryRun {
			if err := ctx.Err(); err != nil {
				fail(i, err)
				break
			}
			wctx, cancel := c.writeContext(ctx)
			err := c.o.Cluster.Annotate(wctx, want[f.Key()], map[string]string{policy.AnnotationActivationRequested: now.UTC().Format(time.RFC3339)})
			cancel()
			if err != nil {
				errs[i] = fmt.Errorf("record the activation request on %s: %w", f.Key(), err)
				c.o.Metrics.ActivationRequests.WithLabelValues("error").Inc()
				continue
			}
		}
		accepted++
		c.o.Metrics.ActivationRequests.WithLabelValues("accepted").Inc()
	}
	if accepted > 0 {
		c.TriggerFast()
	}
	return errs
}

// ObserveDeployment is called by the informer on every Deployment update. It
// learns startup times (from a scale-up from zero to the first Ready replica)
// and triggers a reconcile when an activation request was recorded.
func (c *Controller) ObserveDeployment(old, cur *appsv1.Deployment, at time.Time) {
	key := cur.Name + "." + cur.Namespace
	c.mu.Lock()
	if old.Status.ReadyReplicas == 0 && cur.Status.ReadyReplicas > 0 {
		if t, ok := c.scaledUpAt[key]; ok {
			s := append(c.startups[key], at.Sub(t))
			if len(s) > 5 {
				s = s[len(s)-5:]
			}
			c.startups[key] = s
			delete(c.scaledUpAt, key)
		}
	}
	c.mu.Unlock()
	if old.Annotations[policy.AnnotationActivationRequested] != cur.Annotations[policy.AnnotationActivationRequested] {
		c.TriggerFast()
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// learnedRun remembers the longest mean duration of a function's
// invocations in the current and the previous RunMemory window.
type learnedRun struct {
	cur, prev time.Duration
	since     time.Time
}

// RunMemory is how long the longest observed mean duration of a function's
// invocations is remembered as its run duration (between one and two
// windows).
const RunMemory = time.Hour

// learnRunDuration returns the function's run duration for the engine: the
// longest mean duration of its invocations seen in the last one to two
// RunMemory windows (the duration query shows the mean over its rate
// window, and nothing between runs). An async replica admitted now is
// expected to hold its room that long; a running cron job to end within it.
// Called with c.mu held.
func (c *Controller) learnRunDuration(key string, mean policy.Metric, now time.Time) time.Duration {
	r := c.runs[key]
	if r.since.IsZero() {
		r.since = now
	}
	if now.Sub(r.since) >= RunMemory {
		r.prev, r.cur, r.since = r.cur, 0, now
	}
	if mean.Known && mean.Value > 0 {
		r.cur = max(r.cur, time.Duration(mean.Value*float64(time.Second)))
	}
	if r.cur > 0 || r.prev > 0 {
		c.runs[key] = r
	}
	return max(r.cur, r.prev)
}

// learnedStartup is the slowest of the last few observed startups.
func (c *Controller) learnedStartup(key string) time.Duration {
	var m time.Duration
	for _, d := range c.startups[key] {
		m = max(m, d)
	}
	return m
}

// Result is what one cycle did.
type Result struct {
	Plan     *policy.Plan
	Snapshot *policy.Snapshot
	// Applied are the actions carried out (all of them in a dry run).
	Applied []policy.Action
	// Shortfalls are the plan's and the readiness checks'.
	Shortfalls []policy.Shortfall
}

// inputs is one cycle's gathered state.
type inputs struct {
	snap    *policy.Snapshot
	deps    map[string]*appsv1.Deployment
	metrics *metricSet
}

// Reconcile runs one cycle: gather, decide, drop no-ops, act; then verify
// readiness, report shortfalls and persist last runs. The cycle is bounded
// by CycleTimeout: once it passes, the writes not yet made are left to the
// next cycle.
func (c *Controller) Reconcile(ctx context.Context) (*Result, error) {
	return c.reconcile(ctx, false)
}

// ReconcileFast runs a fast-path cycle: what an activation request (an
// Alertmanager webhook carrying evidence of demand: 429s, queued work)
// triggers at once, between full cycles. It gathers as a full cycle does,
// but its plan only adds replicas (policy.Snapshot.Fast): scale-downs,
// zeroing and evictions stay on the full cycle, with its windows. It
// reports no shortfalls (the next full cycle does) and writes no state.
func (c *Controller) ReconcileFast(ctx context.Context) (*Result, error) {
	return c.reconcile(ctx, true)
}

func (c *Controller) reconcile(ctx context.Context, fast bool) (*Result, error) {
	start := time.Now()
	counter := c.o.Metrics.Reconciles
	if fast {
		counter = c.o.Metrics.FastCycles
	}
	now := c.o.Now()
	ctx, cancel := context.WithTimeout(ctx, c.o.CycleTimeout)
	defer cancel()
	stateErr := c.loadState(ctx)
	if stateErr != nil {
		c.o.Log.Error(stateErr, "cannot read tierscaler's state (the last runs that order evictions): nothing is evicted until it can be read; scaling goes on",
			"hint", "the chart creates the state ConfigMap and grants get and patch on it")
	}
	in, err := c.gather(ctx, now)
	if err != nil {
		counter.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("gather: %w", err)
	}
	in.snap.Fast = fast
	plan := c.decide(in, now, stateErr == nil)
	actions := DropNoops(plan.Actions)
	applied := c.act(ctx, actions, in, now)
	missedChecks := c.verify(ctx, plan.Checks, in, now)
	shortfalls := append(append([]policy.Shortfall(nil), plan.Shortfalls...), missedChecks...)
	if !fast {
		// The fast path adds replicas only: shortfalls, status and the
		// last runs are the full cycle's.
		c.report(ctx, plan, shortfalls, in, now)
		c.persistLastRuns(ctx, in)
		c.o.Metrics.ReconcileDuration.Observe(time.Since(start).Seconds())
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		counter.WithLabelValues("timeout").Inc()
		c.o.Log.Info("the cycle reached its deadline; what it did not do is decided again next cycle", "cycleTimeout", c.o.CycleTimeout, "fast", fast)
	} else {
		counter.WithLabelValues("success").Inc()
	}
	if !fast {
		c.mu.Lock()
		c.lastFinished = c.o.Now()
		c.mu.Unlock()
		c.o.Metrics.LastReconcile.Set(float64(c.o.Now().Unix()))
	}
	return &Result{Plan: plan, Snapshot: in.snap, Applied: applied, Shortfalls: shortfalls}, nil
}

// Plan gathers and decides once, changing nothing: `tierscaler plan`.
func (c *Controller) Plan(ctx context.Context) (*Result, error) {
	now := c.o.Now()
	if err := c.loadState(ctx); err != nil {
		return nil, err
	}
	in, err := c.gather(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("gather: %w", err)
	}
	plan := c.decide(in, now, true)
	plan.Actions = DropNoops(plan.Actions)
	return &Result{Plan: plan, Snapshot: in.snap, Shortfalls: plan.Shortfalls}, nil
}

// decide is the policy engine.
func (c *Controller) decide(in *inputs, now time.Time, evict bool) *policy.Plan {
	if !evict {
		// Without the last runs the eviction order is unknown: no eviction
		// this cycle.
		p := *c.o.Policy
		none := 0
		p.Preemption.MaxEvictionsPerCycle = &none
		return policy.Decide(in.snap, &p, now)
	}
	return policy.Decide(in.snap, c.o.Policy, now)
}

// DropNoops removes actions that change nothing.
func DropNoops(actions []policy.Action) []policy.Action {
	out := actions[:0:0]
	for _, a := range actions {
		if a.From != a.To {
			out = append(out, a)
		}
	}
	return out
}

// gather reads the cluster and Prometheus and builds the snapshot.
func (c *Controller) gather(ctx context.Context, now time.Time) (*inputs, error) {
	st, err := c.o.Cluster.State(ctx)
	if err != nil {
		return nil, err
	}
	ms := gatherMetrics(ctx, c.o.Querier, c.o.Policy, now, c.o.Metrics)
	if ms.available && len(ms.seen) == 0 && len(st.Deployments) > 0 {
		ms.fail("query functions returned no series while function Deployments exist: is the gateway scraped?")
	}
	switch {
	case ms.available && !ms.partial:
		c.o.Metrics.MetricsAvailable.Set(1)
	case ms.available:
		c.o.Metrics.MetricsAvailable.Set(0)
		c.o.Log.Info("metrics partial: scaling up on what Prometheus answered, but no scale-down, zeroing or eviction", "problems", ms.problems)
	default:
		c.o.Metrics.MetricsAvailable.Set(0)
		c.o.Log.Info("metrics unavailable: failing static (no scale-down, zeroing or eviction)", "problems", ms.problems)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	in := &inputs{
		snap:    &policy.Snapshot{MetricsAvailable: ms.available && !ms.partial},
		deps:    make(map[string]*appsv1.Deployment, len(st.Deployments)),
		metrics: ms,
	}
	in.snap.Quotas = quotaHeadroom(st.Quotas)

	type podKey struct{ ns, fn string }
	bound := map[podKey][]*corev1.Pod{}
	pendingPods := map[podKey]int32{}
	for i := range st.Pods {
		p := &st.Pods[i]
		fn, ok := p.Labels[policy.LabelFunction]
		if !ok || terminal(p) || p.DeletionTimestamp != nil {
			continue
		}
		k := podKey{p.Namespace, fn}
		if p.Spec.NodeName == "" {
			pendingPods[k]++
		} else {
			bound[k] = append(bound[k], p)
		}
	}

	// Pods a scale-down has yet to remove are leaving: the ReplicaSet removes
	// pending pods first, then not-Ready ones. Their room is counted as free,
	// so that a claim already served by an eviction is not served again by
	// another while the evicted pods terminate.
	leaving := map[*corev1.Pod]bool{}
	for i := range st.Deployments {
		d := &st.Deployments[i]
		k := podKey{d.Namespace, d.Name}
		surplus := int32(len(bound[k])) + pendingPods[k] - replicasOf(d)
		if surplus <= 0 {
			continue
		}
		gone := min(surplus, pendingPods[k])
		pendingPods[k] -= gone
		surplus -= gone
		pods := bound[k]
		slices.SortStableFunc(pods, func(a, b *corev1.Pod) int {
			ra, rb := podReady(a), podReady(b)
			switch {
			case ra == rb:
				return 0
			case !ra:
				return -1
			default:
				return 1
			}
		})
		for _, p := range pods[:surplus] {
			leaving[p] = true
		}
		bound[k] = pods[surplus:]
	}
	in.snap.Nodes = buildNodes(st, leaving)

	invalid := 0
	in.snap.Functions = make([]policy.Function, 0, len(st.Deployments))
	for i := range st.Deployments {
		d := &st.Deployments[i]
		key := d.Name + "." + d.Namespace
		in.deps[key] = d
		meta, merr := c.meta(d)
		f := policy.Function{
			Name: d.Name, Namespace: d.Namespace, Tier: meta.Tier,
			Schedule: meta.Schedule, ScheduleSpec: meta.ScheduleSpec,
			Replicas: replicasOf(d), ReadyReplicas: d.Status.ReadyReplicas,
			MinReplicas: meta.MinReplicas, MaxReplicas: meta.MaxReplicas, MaxInflight: meta.MaxInflight,
			Requests: podRequests(&d.Spec.Template.Spec), Limits: podLimits(&d.Spec.Template.Spec),
			PendingPods: max(0, replicasOf(d)-int32(len(bound[podKey{d.Namespace, d.Name}]))),
			StartupTime: meta.StartupTime,
		}
		if f.StartupTime == 0 {
			f.StartupTime = c.learnedStartup(key)
		}
		f.Rejections, f.Invocations, f.Duration, f.Inflight, f.Pending = ms.function(key)
		if ms.available {
			f.Inflight = c.readInflight(&f, d, now)
		}
		f.RunDuration = c.learnRunDuration(key, f.Duration, now)
		for _, p := range bound[podKey{d.Namespace, d.Name}] {
			cpu, mem := ms.pod(p.Namespace, p.Name)
			f.Pods = append(f.Pods, policy.Pod{Name: p.Name, Node: p.Spec.NodeName, Ready: podReady(p), CPU: cpu, Memory: mem})
		}

		// The tierscaler.io/last-run annotations of earlier versions are
		// read once, into State (migrated in the first cycle's write).
		if !c.migrated && !meta.LastRun.IsZero() && (merr != nil || meta.Tier != policy.TierSync) {
			c.lastRun[key] = latest(c.lastRun[key], meta.LastRun)
		}
		// Activity now moves the last run.
		if f.Invocations.Value > 0 || f.Inflight.Value > 0 || f.Pending.Value > 0 {
			c.lastRun[key] = now
		}
		f.LastRun = c.lastRun[key]
		f.LastScale = latest(lastReplicaChange(d), c.lastScale[key])
		if st, ok := c.steps[key]; ok && st.uid == string(d.UID) {
			f.CPUStep, f.MemoryStep = st.cpu, st.mem
		}
		f.ActivationRequested = latest(meta.ActivationRequested, c.activation[key])

		if merr != nil {
			f.Hold = true
			invalid++
			if c.invalid[key] != merr.Error() {
				c.invalid[key] = merr.Error()
				c.o.Log.Info("invalid function metadata: holding the function where it is", "function", key, "error", merr.Error())
				c.o.Recorder.Eventf(d, nil, corev1.EventTypeWarning, EventInvalidMetadata, actionRead, "tierscaler holds this function where it is: %s", merr.Error())
			}
		} else {
			delete(c.invalid, key)
		}
		in.snap.Functions = append(in.snap.Functions, f)
	}
	c.o.Metrics.InvalidFunctions.Set(float64(invalid))
	c.detectReverts(in, now)
	for i := range in.snap.Functions {
		f := &in.snap.Functions[i]
		if c.held(f, in.deps[f.Key()], now) {
			f.Hold = true
		}
	}
	// Deleted functions are rare: look for them every few cycles.
	if c.cycles++; c.cycles%16 == 0 {
		c.forget(in.deps)
	}
	return in, nil
}

// forget drops what the controller remembers of functions that no longer
// exist. Called with c.mu held.
func (c *Controller) forget(exist map[string]*appsv1.Deployment) {
	for _, m := range []map[string]time.Time{c.lastRun, c.lastScale, c.activation, c.scaledUpAt} {
		prune(m, exist)
	}
	prune(c.metas, exist)
	prune(c.startups, exist)
	prune(c.runs, exist)
	prune(c.invalid, exist)
	prune(c.lastAction, exist)
	prune(c.holds, exist)
	prune(c.steps, exist)
	prune(c.reversals, exist)
	prune(c.inflight, exist)
	for k := range c.revertSeries {
		if exist[k] == nil {
			c.o.Metrics.ProviderReverts.DeleteLabelValues(k)
			delete(c.revertSeries, k)
		}
	}
}

func prune[V any](m map[string]V, exist map[string]*appsv1.Deployment) {
	for k := range m {
		if exist[k] == nil {
			delete(m, k)
		}
	}
}

// replicasOf is a Deployment's desired replicas (1 when unset).
func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// meta parses d's labels, annotations and environment, once per
// resourceVersion. Called with c.mu held.
func (c *Controller) meta(d *appsv1.Deployment) (policy.Meta, error) {
	key := d.Name + "." + d.Namespace
	if e, ok := c.metas[key]; ok && e.uid == string(d.UID) && e.resourceVersion == d.ResourceVersion && d.ResourceVersion != "" {
		return e.meta, e.err
	}
	m, err := c.o.Policy.ParseMeta(functionLabels(d), d.Annotations, containerEnv(d))
	c.metas[key] = metaEntry{uid: string(d.UID), resourceVersion: d.ResourceVersion, meta: m, err: err}
	return m, err
}

// functionLabels are a function's labels: faas-netes writes them
// (com.openfaas.scale.min and .max among them) on the pod template only,
// and reads them from there; the Deployment's own labels fill in what the
// template lacks.
func functionLabels(d *appsv1.Deployment) map[string]string {
	if len(d.Spec.Template.Labels) == 0 {
		return d.Labels
	}
	l := make(map[string]string, len(d.Labels)+len(d.Spec.Template.Labels))
	maps.Copy(l, d.Labels)
	maps.Copy(l, d.Spec.Template.Labels)
	return l
}

// buildNodes computes each node's allocatable and requested resources from
// the pods bound to it, leaving out terminal and terminating pods and the
// pods a scale-down is about to remove: their room is on its way back.
func buildNodes(st *ClusterState, leaving map[*corev1.Pod]bool) []policy.Node {
	nodes := make([]policy.Node, len(st.Nodes))
	idx := make(map[string]int, len(st.Nodes))
	for i := range st.Nodes {
		n := &st.Nodes[i]
		nodes[i] = policy.Node{Name: n.Name, Allocatable: nodeResources(n.Status.Allocatable), Schedulable: nodeSchedulable(n)}
		idx[n.Name] = i
	}
	for i := range st.Pods {
		p := &st.Pods[i]
		if p.Spec.NodeName == "" || terminal(p) || p.DeletionTimestamp != nil || leaving[p] {
			continue
		}
		if j, ok := idx[p.Spec.NodeName]; ok {
			nodes[j].Requested = nodes[j].Requested.Add(podRequests(&p.Spec))
		}
	}
	return nodes
}

// act applies the actions in plan order: evictions first, then the scale-ups
// they make room for. A scale-up whose claim an eviction failed to serve is
// not applied: the room it counted on is not there, and its pods would stay
// Pending. The next cycle decides again.
func (c *Controller) act(ctx context.Context, actions []policy.Action, in *inputs, now time.Time) []policy.Action {
	var applied []policy.Action
	// failedFor maps a claim to the eviction that failed to serve it.
	failedFor := map[string]string{}
	for _, a := range actions {
		key := a.Key()
		d := in.deps[key]
		if d == nil {
			if a.Claim != "" {
				failedFor[a.Claim] = key
			}
			continue
		}
		log := c.o.Log.WithValues("function", key, "tier", a.Tier, "from", a.From, "to", a.To, "reason", a.Reason)
		if a.Claim != "" {
			log = log.WithValues("claim", a.Claim)
		}
		if evicted, ok := failedFor[key]; ok && a.To > a.From {
			log.Info("scale-up cancelled: the eviction that made room for it failed; deciding again next cycle", "eviction", evicted)
			c.o.Recorder.Eventf(d, nil, corev1.EventTypeWarning, EventScaleUpCancelled, actionScale,
				"scale-up %d -> %d (%s) cancelled: evicting %s to make room for it failed; deciding again next cycle", a.From, a.To, a.Reason, evicted)
			continue
		}
		if c.o.DryRun {
			log.Info("dry run: would scale", "explanation", a.Explanation)
			applied = append(applied, a)
			c.recordAction(key, "would "+describe(a), now)
			continue
		}
		if ctx.Err() != nil {
			// The cycle's deadline has passed: the rest waits for the next.
			if a.Claim != "" {
				failedFor[a.Claim] = key
			}
			continue
		}
		wctx, cancel := c.writeContext(ctx)
		err := c.o.Cluster.Scale(wctx, d, a.From, a.To)
		cancel()
		if err != nil && a.Claim != "" {
			failedFor[a.Claim] = key
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrChanged):
			log.Info("replicas changed since the plan was made; deciding again next cycle")
			c.o.Metrics.PatchErrors.WithLabelValues("changed").Inc()
			continue
		default:
			reason := patchErrorReason(err)
			c.o.Metrics.PatchErrors.WithLabelValues(reason).Inc()
			log.Error(err, "scale failed", "errorReason", reason)
			c.o.Recorder.Eventf(d, nil, corev1.EventTypeWarning, EventScaleFailed, actionScale, "scaling from %d to %d (%s) failed: %v", a.From, a.To, a.Reason, err)
			if reason == "forbidden" || reason == "not-found" {
				c.mu.Lock()
				c.holds[key] = hold{uid: string(d.UID), kind: holdError, until: now.Add(c.o.RevertBackoff), why: err.Error()}
				c.mu.Unlock()
			}
			continue
		}
		applied = append(applied, a)
		c.o.Metrics.Actions.WithLabelValues(string(a.Tier), string(a.Reason)).Inc()
		var related *appsv1.Deployment
		if a.Reason == policy.ReasonEvictForCapacity {
			related = in.deps[a.Claim]
			claimTier := ""
			for i := range in.snap.Functions {
				if in.snap.Functions[i].Key() == a.Claim {
					claimTier = string(in.snap.Functions[i].Tier)
				}
			}
			c.o.Metrics.Evictions.WithLabelValues(string(a.Tier), claimTier).Inc()
		}
		note := fmt.Sprintf("%s: %d -> %d: %s", a.Reason, a.From, a.To, a.Explanation)
		if related != nil {
			c.o.Recorder.Eventf(d, related, corev1.EventTypeNormal, eventReason(a.Reason), actionEvict, "%s", note)
		} else {
			c.o.Recorder.Eventf(d, nil, corev1.EventTypeNormal, eventReason(a.Reason), actionScale, "%s", note)
		}
		log.Info("scaled", "explanation", a.Explanation)
		c.mu.Lock()
		c.lastScale[key] = now
		c.expect[key] = expectation{uid: string(d.UID), from: a.From, to: a.To, generation: d.Generation, spec: specPrint(d), at: now}
		if u := a.UsageStep; u != nil {
			st := c.steps[key]
			if st.uid != string(d.UID) {
				st = usageSteps{uid: string(d.UID)}
			}
			if u.Resource == policy.UsageCPU {
				st.cpu = u
			} else {
				st.mem = u
			}
			c.steps[key] = st
		}
		if a.From == 0 && a.To > 0 {
			c.scaledUpAt[key] = now
		}
		c.mu.Unlock()
		c.recordAction(key, describe(a), now)
	}
	return applied
}

func describe(a policy.Action) string {
	s := fmt.Sprintf("%s %d->%d", a.Reason, a.From, a.To)
	if a.Claim != "" {
		s += " for " + a.Claim
	}
	return s
}

func (c *Controller) recordAction(key, what string, now time.Time) {
	c.mu.Lock()
	c.lastAction[key] = now.UTC().Format(time.RFC3339) + " " + what
	c.mu.Unlock()
}

func patchErrorReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err):
		return "timeout"
	case apierrors.IsConflict(err):
		return "conflict"
	case apierrors.IsForbidden(err):
		return "forbidden"
	case apierrors.IsNotFound(err):
		return "not-found"
	default:
		return "other"
	}
}

// verify tracks the plan's readiness checks. A check whose function has the
// Ready replicas it asks for is done; one whose deadline passes without them
// becomes a shortfall (prewarm missed, activation timeout) until the function
// is Ready or MissedHold passes.
func (c *Controller) verify(ctx context.Context, checks []policy.ReadinessCheck, in *inputs, now time.Time) []policy.Shortfall {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range checks {
		k := ch.Key() + "/" + string(ch.Kind)
		if old, ok := c.checks[k]; !ok || !old.Deadline.Equal(ch.Deadline) {
			c.checks[k] = ch
		}
	}
	ready := func(key string, n int32) bool {
		d := in.deps[key]
		return d != nil && d.Status.ReadyReplicas >= n
	}
	for k, ch := range c.checks {
		d := in.deps[ch.Key()]
		if d == nil {
			delete(c.checks, k)
			continue
		}
		if ready(ch.Key(), ch.MinReady) {
			delete(c.checks, k)
			delete(c.missed, k)
			continue
		}
		if now.Before(ch.Deadline) {
			continue
		}
		delete(c.checks, k)
		reason, event, alertReason := policy.ShortfallPrewarmMissed, EventPrewarmMissed, "was not Ready by its fire time"
		if ch.Kind == policy.CheckActivation {
			reason, event, alertReason = policy.ShortfallActivationTimeout, EventActivationTimeout, "was not Ready within the activation timeout"
		}
		sf := policy.Shortfall{Function: ch.Function, Namespace: ch.Namespace, Tier: ch.Tier, Reason: reason,
			Deadline: ch.Deadline, Missing: policy.Resources{Pods: int64(ch.MinReady - d.Status.ReadyReplicas)},
			Message: fmt.Sprintf("%s %s (deadline %s, %d of %d Ready)", ch.Key(), alertReason, ch.Deadline.UTC().Format(time.RFC3339), d.Status.ReadyReplicas, ch.MinReady)}
		c.missed[k] = missed{shortfall: sf, until: now.Add(c.o.MissedHold)}
		c.o.Metrics.ReadinessMissed.WithLabelValues(string(ch.Kind)).Inc()
		c.o.Log.Info("readiness check missed", "function", ch.Key(), "kind", ch.Kind, "deadline", ch.Deadline)
		c.o.Recorder.Eventf(d, nil, corev1.EventTypeWarning, event, actionVerify, "%s", sf.Message)
	}
	var out []policy.Shortfall
	for k, m := range c.missed {
		if ready(m.shortfall.Key(), 1) || now.After(m.until) {
			delete(c.missed, k)
			continue
		}
		out = append(out, m.shortfall)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// report updates the metrics and status and hands the shortfalls to the sink.
// A capacity shortfall gets one Warning event when it starts.
func (c *Controller) report(ctx context.Context, plan *policy.Plan, shortfalls []policy.Shortfall, in *inputs, now time.Time) {
	m := c.o.Metrics
	m.Shortfalls.Reset()
	current := map[string]bool{}
	for _, sf := range shortfalls {
		m.Shortfalls.WithLabelValues(string(sf.Tier), string(sf.Reason)).Inc()
		k := sf.Key() + "/" + string(sf.Reason)
		current[k] = true
		c.mu.Lock()
		seen := c.shortfalls[k]
		c.mu.Unlock()
		if !seen && sf.Function != "" && !c.o.DryRun {
			switch sf.Reason {
			case policy.ShortfallCapacity, policy.ShortfallQuota, policy.ShortfallBudget:
				if d := in.deps[sf.Key()]; d != nil {
					c.o.Recorder.Eventf(d, nil, corev1.EventTypeWarning, EventShortfall, actionScale, "%s", sf.Message)
				}
			}
		}
	}
	c.mu.Lock()
	c.shortfalls = current
	c.mu.Unlock()

	desired := map[string]int32{}
	for _, a := range plan.Actions {
		desired[a.Key()] = a.To
	}
	// Per-function gauges: set every cycle, and deleted only for functions
	// that went away or changed tier (recreating every child each cycle
	// would cost more than the rest of the report).
	c.mu.Lock()
	series := make(map[[2]string]gaugePair, len(in.snap.Functions))
	for i := range in.snap.Functions {
		f := &in.snap.Functions[i]
		want, ok := desired[f.Key()]
		if !ok {
			want = f.Replicas
		}
		labels := [2]string{f.Key(), string(f.Tier)}
		g, ok := c.series[labels]
		if !ok {
			g = gaugePair{m.DesiredReplicas.WithLabelValues(labels[0], labels[1]), m.Replicas.WithLabelValues(labels[0], labels[1])}
		}
		series[labels] = g
		g.desired.Set(float64(want))
		g.replicas.Set(float64(f.Replicas))
	}
	for labels := range c.series {
		if _, ok := series[labels]; !ok {
			m.DesiredReplicas.DeleteLabelValues(labels[0], labels[1])
			m.Replicas.DeleteLabelValues(labels[0], labels[1])
		}
	}
	c.series = series
	c.last = lastCycle{plan: plan, shortfalls: shortfalls, snap: in.snap, desired: desired, now: now}
	c.mu.Unlock()
	if c.o.Sink != nil {
		c.o.Sink.Sync(ctx, now, shortfalls)
	}
}

// persistLastRuns writes to State, in one write, the last runs of the cron
// and async functions that moved by at least LastRunResolution, and drops
// the entries of deleted functions and of functions that became sync; the
// first write after loading marks the annotation migration done. Sync
// functions are never written: nothing orders them.
func (c *Controller) persistLastRuns(ctx context.Context, in *inputs) {
	c.mu.Lock()
	if c.o.DryRun || ctx.Err() != nil || !c.stateLoaded {
		// Never write a state that could not be read first.
		c.mu.Unlock()
		return
	}
	ch := LastRunChanges{Set: map[string]time.Time{}, Migrated: !c.migrated}
	for i := range in.snap.Functions {
		f := &in.snap.Functions[i]
		key := f.Key()
		switch f.Tier {
		case policy.TierCron, policy.TierAsync:
			if t := c.lastRun[key]; !t.IsZero() && t.Sub(c.persisted[key]) >= c.o.LastRunResolution {
				ch.Set[key] = t
			}
		case policy.TierSync:
			if _, ok := c.persisted[key]; ok {
				ch.Delete = append(ch.Delete, key)
			}
		}
	}
	for key := range c.persisted {
		if in.deps[key] == nil {
			ch.Delete = append(ch.Delete, key)
		}
	}
	c.mu.Unlock()
	if ch.empty() {
		return
	}
	sort.Strings(ch.Delete)
	wctx, cancel := c.writeContext(ctx)
	err := c.o.State.Save(wctx, ch)
	cancel()
	if err != nil {
		c.o.Metrics.PatchErrors.WithLabelValues(patchErrorReason(err)).Inc()
		c.o.Log.Error(err, "could not write the last runs; trying again next cycle", "set", len(ch.Set), "delete", len(ch.Delete))
		return
	}
	c.o.Metrics.LastRunWrites.Inc()
	c.mu.Lock()
	defer c.mu.Unlock()
	apply(c.persisted, ch)
	if ch.Migrated {
		c.migrated = true
		c.o.Log.Info("the last runs are kept in tierscaler's state; the tierscaler.io/last-run annotations are no longer read")
	}
}

// loadState reads State once, when the controller starts acting. Until it
// succeeds, every cycle tries again and evicts nothing (the last runs order
// evictions), and nothing is written to State.
func (c *Controller) loadState(ctx context.Context) error {
	c.mu.Lock()
	loaded := c.stateLoaded
	c.mu.Unlock()
	if loaded {
		return nil
	}
	st, err := c.o.State.Load(ctx)
	if err != nil {
		c.o.Metrics.StateLoaded.Set(0)
		return fmt.Errorf("load the last runs: %w", err)
	}
	c.o.Metrics.StateLoaded.Set(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range st.Times {
		c.lastRun[k] = latest(c.lastRun[k], t)
		c.persisted[k] = t
	}
	c.migrated, c.stateLoaded = st.Migrated, true
	c.o.Log.Info("loaded the last runs", "functions", len(st.Times), "annotationsMigrated", st.Migrated)
	return nil
}

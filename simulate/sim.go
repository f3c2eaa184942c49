// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
	"github.com/tierscaler/tierscaler/workload"
)

// The strategies a simulation compares.
const (
	// StrategyStatic keeps every function at its initialReplicas.
	StrategyStatic = "static"
	// StrategyIdleOnly zeroes idle functions and activates them on demand,
	// as KEDA or OpenFaaS Pro's scale-to-zero do: no tiers, no preemption.
	StrategyIdleOnly = "idle-only"
	// StrategyTierscaler is the real controller.
	StrategyTierscaler = "tierscaler"
)

// Strategies lists every strategy, in report order.
var Strategies = []string{StrategyStatic, StrategyIdleOnly, StrategyTierscaler}

// Defaults of a Config.
const (
	DefaultStep     = 5 * time.Second
	DefaultWindow   = time.Minute
	DefaultCooldown = 300 * time.Second
	// DefaultTargetProportion is the share of max_inflight the idle-only
	// strategy targets per replica (OpenFaaS Pro's
	// com.openfaas.scale.target-proportion default).
	DefaultTargetProportion = 0.9
	// maxStaticNodes bounds the nodes the static strategy may add.
	maxStaticNodes = 10000
	// timelinePoints is about how many points the timeline has.
	timelinePoints = 600
	// rejectedEpsilon is the refused requests in one sample interval that
	// make it count as a second with 429s: the fluid model counts fractions
	// of requests.
	rejectedEpsilon = 0.5
)

// Load drives part of the workload from outside the scenario, for
// backtests: Apply is called before every model step over [from, to).
type Load interface {
	Apply(m *workload.Model, from, to time.Time) error
}

// Config is one simulation.
type Config struct {
	// Scenario is the workload and cluster (required), defaulted and
	// validated as workload.Parse, Load or Builtin return it.
	Scenario *workload.Scenario
	// Policy is tierscaler's policy. Default: policy.Default().
	Policy *policy.Policy
	// Seed of the workload model's random arrivals; the same seed gives the
	// same report.
	Seed int64
	// Duration of the simulation. Default: the scenario's.
	Duration time.Duration
	// Strategies to run. Default: Strategies.
	Strategies []string
	// Step is the model step and the simulated scrape interval. Default 5s.
	Step time.Duration
	// Window is the rate window of the simulated queries. Default 1m, the
	// default queries'.
	Window time.Duration
	// Cooldown is how long the idle-only strategy waits before zeroing an
	// idle function, and its scale-down stabilisation. Default 300s.
	Cooldown time.Duration
	// Load, if set, replays recorded load (a backtest).
	Load Load
	// GatewayReplicas is the number of OpenFaaS gateway replicas, each
	// exporting its own series (default 1).
	GatewayReplicas int
	// GatewayRestarts are the times, from the start, at which the gateway
	// (every replica) restarts: its counters reset to nothing
	// (openfaas.Gateway).
	GatewayRestarts []time.Duration
	// GatewayColdStart starts the gateway with the simulation, with no
	// counter at all, as if it had just restarted. By default it has run
	// long before, and every function's started and 200 series exist.
	GatewayColdStart bool
	// ScaleFromZero turns the gateway's scale from zero on, for every
	// strategy: a synchronous invocation of a function without a Ready
	// replica is held (up to openfaas.ScaleFromZeroTimeout), and new
	// invocations (or waiting messages) of a function at zero scale it to
	// its minimum, or 1, at the next sample.
	ScaleFromZero bool
	// CEProvider puts the OpenFaaS CE provider's watcher in every
	// strategy's cluster: a function at 0 goes back to 1, above 5 back to 5.
	CEProvider bool
	// Progress, if set, is called after each strategy finishes.
	Progress func(strategy string, wall time.Duration)
}

func (c *Config) defaults() error {
	if c.Scenario == nil {
		return errors.New("simulate: Config.Scenario is required")
	}
	if c.Policy == nil {
		c.Policy = policy.Default()
	}
	if c.Duration == 0 {
		c.Duration = c.Scenario.Duration.Duration
	}
	if c.Duration <= 0 {
		return fmt.Errorf("simulate: duration %s: want a positive duration", c.Duration)
	}
	if len(c.Strategies) == 0 {
		c.Strategies = slices.Clone(Strategies)
	}
	for _, s := range c.Strategies {
		if !slices.Contains(Strategies, s) {
			return fmt.Errorf("simulate: unknown strategy %q (want %s)", s, strings.Join(Strategies, ", "))
		}
	}
	if c.Step == 0 {
		c.Step = DefaultStep
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.Step < 0 || c.Window < 0 || c.Cooldown < 0 {
		return fmt.Errorf("simulate: step %s, window %s and cooldown %s must be positive", c.Step, c.Window, c.Cooldown)
	}
	if c.GatewayReplicas < 0 {
		return fmt.Errorf("simulate: %d gateway replicas: want at least 1", c.GatewayReplicas)
	}
	c.GatewayRestarts = slices.Clone(c.GatewayRestarts)
	slices.Sort(c.GatewayRestarts)
	for _, r := range c.GatewayRestarts {
		if r < 0 || r > c.Duration {
			return fmt.Errorf("simulate: a gateway restart at %s is outside the simulation (0 to %s)", r, c.Duration)
		}
	}
	if c.Policy.Interval.Duration <= 0 {
		return fmt.Errorf("simulate: the policy's interval %s must be positive (was the policy defaulted?)", c.Policy.Interval.Duration)
	}
	return nil
}

// Run simulates every configured strategy on the same workload (the same
// scenario and seed), concurrently, and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := cfg.Scenario.Validate(); err != nil {
		return nil, fmt.Errorf("simulate: scenario %q: %w", cfg.Scenario.Name, err)
	}
	start, err := cfg.Scenario.StartTime()
	if err != nil {
		return nil, fmt.Errorf("simulate: scenario %q: %w", cfg.Scenario.Name, err)
	}
	rep := newReport(&cfg, start)
	results := make([]*StrategyReport, len(cfg.Strategies))
	errs := make([]error, len(cfg.Strategies))
	var wg sync.WaitGroup
	for i, name := range cfg.Strategies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			results[i], errs[i] = runStrategy(ctx, &cfg, name, start)
			if cfg.Progress != nil && errs[i] == nil {
				cfg.Progress(name, time.Since(began))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rep.Strategies = results
	rep.finish()
	return rep, nil
}

// strategy decides, every policy interval, on a simulated cluster.
type strategy interface {
	reconcile(ctx context.Context, now time.Time) error
}

// world is one strategy's simulation: the model, cluster and querier.
type world struct {
	cfg     *Config
	name    string
	now     time.Time
	model   *workload.Model
	cluster *Cluster
	querier *Querier
	acct    *accountant
	// keys are the model's functions; obs their observations at the last
	// sample, in that order; deps their Deployments, and replicas their
	// desired replicas after the last reconcile.
	keys     []string
	obs      []workload.Observation
	deps     []*simDeployment
	replicas []int32
	// scrape: the strategy reads the querier, which must scrape.
	scrape bool
	// restarts are the gateway restarts still to come.
	restarts []time.Duration
}

// sample restarts the gateway when a restart is due, reads every
// function's counters at t, scales the functions at zero the gateway would
// scale, has the querier scrape (when the strategy reads it) and the
// accountant count them.
func (w *world) sample(t time.Time) error {
	for len(w.restarts) > 0 && !t.Before(w.acct.start.Add(w.restarts[0])) {
		w.restarts = w.restarts[1:]
		for i := range w.querier.GatewayReplicas() {
			if err := w.querier.RestartGateway(i, t); err != nil {
				return err
			}
		}
	}
	missed := 0
	for i, k := range w.keys {
		offered := w.obs[i].Offered
		w.obs[i] = w.model.Counters(k)
		o := &w.obs[i]
		missed += o.CronMissed
		if w.cfg.ScaleFromZero && *w.deps[i].obj.Spec.Replicas == 0 {
			// A new synchronous invocation, or a message the queue-worker
			// keeps invoking, asks the gateway to scale it up.
			if o.Pending > 0 || (o.Offered > offered && o.Held > 0) {
				if _, err := w.cluster.ScaleFromZero(k); err != nil {
					return err
				}
			}
		}
	}
	if w.scrape {
		q := w.querier
		q.mu.Lock()
		q.record(t, w.obs)
		q.cronMissed = missed
		q.mu.Unlock()
	}
	w.acct.sampled(t, w.obs, missed)
	return nil
}

// reconciled counts the functions the strategy's reconcile at t scaled to
// zero while they had work in flight.
func (w *world) reconciled(t time.Time) {
	for i, d := range w.deps {
		cur := *d.obj.Spec.Replicas
		if cur == 0 && w.replicas[i] > 0 {
			if o := w.model.Counters(w.keys[i]); o.Inflight > 0 {
				w.acct.zeroedInFlight(t, w.keys[i])
			}
		}
		w.replicas[i] = cur
	}
}

func (w *world) clock() time.Time { return w.now }

func runStrategy(ctx context.Context, cfg *Config, name string, start time.Time) (*StrategyReport, error) {
	w := &world{cfg: cfg, name: name, now: start, scrape: name != StrategyStatic}
	w.model = workload.NewModel(cfg.Scenario, cfg.Seed)
	if err := w.model.Err(); err != nil {
		return nil, fmt.Errorf("simulate: scenario %q: %w", cfg.Scenario.Name, err)
	}
	w.keys = w.model.Keys()
	w.obs = make([]workload.Observation, len(w.keys))
	w.restarts = cfg.GatewayRestarts
	if cfg.ScaleFromZero {
		w.model.SetHoldAtZero(openfaas.ScaleFromZeroTimeout)
	}
	w.model.Step(start, 0, nil)
	co := ClusterOptions{Now: w.clock, Manager: name, CEProvider: cfg.CEProvider}
	if name == StrategyTierscaler {
		co.Manager, co.Namespaces = scaler.FieldManager, cfg.Policy.Namespaces
	}
	var err error
	if w.cluster, err = NewCluster(cfg.Scenario, co); err != nil {
		return nil, err
	}
	if name == StrategyStatic {
		// Static provisioning is accounted in full: the cluster grows (same
		// node shape) until every pod has a node.
		for w.cluster.Pending() > 0 {
			if w.cluster.Nodes() >= maxStaticNodes {
				return nil, fmt.Errorf("simulate: static: %d pods fit on no node of %d even after adding nodes: is a function's request larger than a node (%s CPU, %s)?",
					w.cluster.Pending(), w.cluster.Nodes(), cfg.Scenario.Nodes.CPU, cfg.Scenario.Nodes.Memory)
			}
			w.cluster.AddNode()
		}
	}
	if w.querier, err = NewQuerier(cfg.Policy, w.model, w.cluster, QuerierOptions{Window: cfg.Window, Step: cfg.Step,
		GatewayReplicas: cfg.GatewayReplicas, ColdGateway: cfg.GatewayColdStart}); err != nil {
		return nil, err
	}
	for _, k := range w.keys {
		d := w.cluster.byKey[k]
		w.deps = append(w.deps, d)
		w.replicas = append(w.replicas, *d.obj.Spec.Replicas)
	}
	w.acct = newAccountant(cfg, w, start)
	var st strategy
	switch name {
	case StrategyStatic:
		st = staticStrategy{}
	case StrategyIdleOnly:
		st = newIdleOnly(w)
	case StrategyTierscaler:
		ts, err := newTierscaler(w)
		if err != nil {
			return nil, err
		}
		st = ts
	}
	if err := w.loop(ctx, st, start, start.Add(cfg.Duration)); err != nil {
		return nil, fmt.Errorf("simulate: %s: %w", name, err)
	}
	return w.acct.report(name), nil
}

// loop advances virtual time from start to end: samples every Step,
// reconciles every policy interval, and steps the model in between,
// splitting steps where a pod becomes Ready so that the model always sees
// the exact Ready count.
func (w *world) loop(ctx context.Context, st strategy, start, end time.Time) error {
	interval := w.cfg.Policy.Interval.Duration
	nextGrid, nextRec := start, start
	for i := 0; ; i++ {
		t := w.now
		if !t.Before(nextGrid) {
			if err := w.sample(t); err != nil {
				return err
			}
			nextGrid = nextGrid.Add(w.cfg.Step)
		}
		if !t.Before(end) {
			break
		}
		if !t.Before(nextRec) {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := st.reconcile(ctx, t); err != nil {
				return fmt.Errorf("at %s: %w", t.UTC().Format(time.RFC3339), err)
			}
			w.reconciled(t)
			w.acct.reconciles++
			nextRec = nextRec.Add(interval)
		}
		next := minTime(nextGrid, nextRec, end)
		if r := w.cluster.NextReady(); !r.IsZero() && r.After(t) && r.Before(next) {
			next = r
		}
		if w.cfg.Load != nil {
			if err := w.cfg.Load.Apply(w.model, t, next); err != nil {
				return err
			}
		}
		w.model.Step(t, next.Sub(t), w.cluster.ReadyCounts())
		w.acct.span(t, next)
		w.now = next
		w.cluster.Advance(next)
	}
	return nil
}

func minTime(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.Before(m) {
			m = t
		}
	}
	return m
}

// staticStrategy changes nothing: every function stays at its
// initialReplicas.
type staticStrategy struct{}

func (staticStrategy) reconcile(context.Context, time.Time) error { return nil }

// tierscalerStrategy is the real controller on the simulated cluster.
type tierscalerStrategy struct {
	w    *world
	ctl  *scaler.Controller
	sink *episodeSink
}

func newTierscaler(w *world) (*tierscalerStrategy, error) {
	sink := &episodeSink{acct: w.acct, active: map[string]bool{}}
	ctl, err := scaler.New(scaler.Options{
		Policy: w.cfg.Policy, Cluster: w.cluster, Querier: w.querier, Sink: sink,
		Metrics: scaler.NewMetrics(prometheus.NewRegistry()), Now: w.clock, Log: logr.Discard(),
	})
	if err != nil {
		return nil, err
	}
	w.cluster.OnUpdate(ctl.ObserveDeployment)
	return &tierscalerStrategy{w: w, ctl: ctl, sink: sink}, nil
}

func (s *tierscalerStrategy) reconcile(ctx context.Context, now time.Time) error {
	res, err := s.ctl.Reconcile(ctx)
	if err != nil {
		return err
	}
	s.w.acct.planned(now, res.Plan)
	for _, a := range res.Applied {
		if a.Reason == policy.ReasonEvictForCapacity {
			s.w.acct.evicted(now, a)
		}
	}
	return nil
}

// episodeSink counts shortfall episodes: a shortfall (function and reason)
// active in a cycle that was not active in the previous one.
type episodeSink struct {
	acct   *accountant
	active map[string]bool
}

// Sync receives the cycle's active shortfalls.
func (s *episodeSink) Sync(_ context.Context, now time.Time, shortfalls []policy.Shortfall) {
	cur := make(map[string]bool, len(shortfalls))
	for _, sf := range shortfalls {
		k := sf.Key() + "/" + string(sf.Reason)
		if cur[k] {
			continue
		}
		cur[k] = true
		if !s.active[k] {
			s.acct.shortfall(now, sf)
		}
	}
	s.active = cur
}

// idleOnly is scale-to-zero without tiers or preemption, as KEDA or
// OpenFaaS Pro do it: a function with no invocation, nothing in flight and
// nothing queued for the cooldown goes to zero; a function at zero is
// activated as soon as demand shows (an invocation, including a cron fire
// or a request refused at zero, work in flight, or queued messages); an
// active function is scaled on load to ceil(in-flight / (max_inflight ×
// 0.9)) and, if queued, ceil(pending / pendingPerReplica), within
// [1, max]. Scale-ups apply at once, scale-downs after the cooldown since
// the last scale. Pods that do not fit stay Pending: nothing is evicted.
type idleOnly struct {
	w   *world
	fns []*idleFn
}

type idleFn struct {
	key         string
	maxInflight float64
	maxReplicas int32
	queued      bool
	lastActive  time.Time
	lastScale   time.Time
}

func newIdleOnly(w *world) *idleOnly {
	s := &idleOnly{w: w}
	for _, key := range w.model.Keys() {
		f, _ := w.model.Function(key)
		s.fns = append(s.fns, &idleFn{key: key, maxInflight: float64(max(f.MaxInflight, 1)), maxReplicas: max(f.MaxReplicas, 1),
			queued:     f.Tier == policy.TierAsync || (f.Tier == policy.TierCron && f.Cron != nil && f.Cron.Async),
			lastActive: w.now, lastScale: w.now})
	}
	return s
}

func (s *idleOnly) reconcile(ctx context.Context, now time.Time) error {
	cooldown := s.w.cfg.Cooldown
	perReplica := float64(max(s.w.cfg.Policy.Tiers.Async.PendingPerReplica, 1))
	for _, f := range s.fns {
		fig, ok := s.w.querier.Figures(f.key, now)
		if !ok {
			continue
		}
		active := fig.Invocations > 0 || fig.Inflight > 0 || fig.Pending > 0
		if active {
			f.lastActive = now
		}
		cur := s.w.cluster.Replicas(f.key)
		need := int32(math.Ceil(fig.Inflight/(f.maxInflight*DefaultTargetProportion) - 1e-9))
		if f.queued {
			need = max(need, int32(math.Ceil(fig.Pending/perReplica-1e-9)))
		}
		need = min(max(need, 1), f.maxReplicas)
		want := cur
		switch {
		case cur == 0:
			if active {
				want = need
			}
		case now.Sub(f.lastActive) >= cooldown:
			want = 0
		case need > cur:
			want = need
		case need < cur && now.Sub(f.lastScale) >= cooldown:
			want = need
		}
		if want == cur {
			continue
		}
		if err := s.w.cluster.Scale(ctx, s.w.cluster.Deployment(f.key), cur, want); err != nil {
			return err
		}
		f.lastScale = now
	}
	return nil
}

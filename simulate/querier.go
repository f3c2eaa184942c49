// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// queryKind is which of the policy's queries an expression is.
type queryKind int

const (
	qFunctions queryKind = iota
	qRejections
	qInvocations
	qDuration
	qInflight
	qPending
	qCPU
	qMemory
	numQueries
)

var queryNames = [numQueries]string{"functions", "rejections", "invocations", "duration", "inflight", "pending", "cpu", "memory"}

// legacyInflightQuery is the default in-flight query before issue 10 item
// 1: it reads a function whose started invocations have no _total series
// (its only invocation since the gateway started still runs) as absent,
// and its "or" branch then as 0 in flight. The querier answers it with that
// meaning, so that a simulation can show the defect.
const legacyInflightQuery = `max_over_time((sum by (function_name) (gateway_function_invocation_started) - sum by (function_name) (gateway_function_invocation_total))[1m:5s]) or (0 * max by (function_name) (gateway_service_count))`

// lookback is Prometheus' default lookback delta of an instant selector.
const lookback = 5 * time.Minute

// policyQueries lists the policy's query texts in queryKind order, with the
// defaults they are compared with.
func policyQueries(p *policy.Policy) (exprs, defaults [numQueries]string) {
	q := p.Queries
	exprs = [numQueries]string{q.Functions, q.Rejections, q.Invocations, q.Duration, q.Inflight, q.Pending, q.CPU, q.Memory}
	defaults = [numQueries]string{policy.DefaultFunctionsQuery, policy.DefaultRejectionsQuery, policy.DefaultInvocationsQuery,
		policy.DefaultDurationQuery, policy.DefaultInflightQuery, policy.DefaultPendingQuery, policy.DefaultCPUQuery, policy.DefaultMemoryQuery}
	return exprs, defaults
}

// The flags of a gateway point: which of its series exist.
const (
	hasStarted uint8 = 1 << iota
	has200
	has429
	has502
	hasService
)

// gwPoint is what one gateway replica exported for one function at one
// scrape.
type gwPoint struct {
	started, ok, rejected, failed, service float64
	flags                                  uint8
}

// fnSeries is one function's scraped series, in rings aligned with the
// querier's ring of scrape times.
type fnSeries struct {
	key      string
	labels   model.Metric
	queued   bool
	duration float64
	// gw are the gateway replicas' points, by replica ID; gwf is the
	// function's handle in the querier's gateway; dep its Deployment.
	gw  [][]gwPoint
	gwf *openfaas.FunctionMetrics
	dep *simDeployment
	// pending is queue_worker_pending_messages (queued functions); cpuAcc
	// the CPU seconds one pod Ready since the start would have used;
	// memory one Ready pod's working set.
	pending, cpuAcc, memory []float64
}

// QuerierOptions configure a Querier.
type QuerierOptions struct {
	// Window is the range of the rate windows: the default queries' 1m.
	Window time.Duration
	// Step is the time between samples (the simulated scrape interval).
	Step time.Duration
	// GatewayReplicas is the number of gateway replicas (default 1).
	GatewayReplicas int
	// ColdGateway starts the gateway with the first scrape, with no
	// counter at all. By default it has run long before: every function's
	// started and 200 series exist from the first scrape (openfaas.Gateway.Warm),
	// as in a settled cluster.
	ColdGateway bool
}

// Querier is a simulated Prometheus: it scrapes what the emulator
// (hack/emulator) would export for the workload model, with the same
// OpenFaaS model (openfaas.Gateway: series that appear at the first start
// or completion and vanish at a gateway restart, one set per gateway
// replica), and answers the policy's eight queries as a real Prometheus
// would. It implements scaler.Querier. The simulation calls Record at
// every sample time after stepping the model there; Query then answers
// from the samples.
//
// Each query is recognised by its text, which must be one of the policy's
// Queries; it is answered with the meaning of the default query of that
// name, whatever its text (see Warnings). The in-flight query has two
// meanings: that of the query before issue 10 item 1 (legacyInflightQuery,
// exactly that text), which reads a function whose started invocations
// have no _total series as nothing (and its "or" branch as 0), and for
// any other text started − (total or 0): a started invocation without any
// _total series is in flight.
//
// Every query follows PromQL's rules (checked against the PromQL engine by
// TestQuerierAgreesWithPrometheus): a range selector takes the samples in
// (t−W, t]; rate() needs two of them, adds the values before a counter
// reset, and extrapolates to the window's edges as Prometheus does; an
// instant selector takes the last scrape at or before t, and a series
// missing from that scrape is stale; the in-flight subquery is evaluated
// at multiples of its step in (t−range, t]; "sum by" of nothing is
// nothing. What is modelled rather than scraped:
//
//   - cadvisor CPU: one pod's counter grows at CPUPerPod of its function
//     (in-flight work spread over the Ready pods), from its first scrape as
//     Ready on; a pod has memory from its first scrape as Ready. Pods not
//     yet Ready have no series (the emulator's kwok pods are Running and
//     Ready at once).
//   - pending (queue_worker_pending_messages) exists for async functions
//     and async cron functions, as the emulator exports it.
//   - the gateway: it has run long before the first scrape (every
//     function's started and 200 series exist, as in a settled cluster;
//     openfaas.Gateway.Warm), or starts with it (QuerierOptions.ColdGateway).
//     Either way it has polled: gateway_service_count lists the functions
//     from the first scrape, and its polls see the desired replicas of the
//     scrape time.
type Querier struct {
	mu       sync.Mutex
	model    *workload.Model
	cluster  *Cluster
	window   time.Duration
	step     time.Duration
	kinds    map[string]queryKind
	warnings []string
	// legacy: the in-flight query has legacyInflightQuery's meaning.
	legacy bool
	// subRange and subStep are the in-flight query's subquery's.
	subRange, subStep time.Duration

	gw   *openfaas.Gateway
	cold bool
	// times is the ring of scrape times (ms); head is the oldest, n the
	// count.
	times   []int64
	head, n int
	series  []*fnSeries
	byKey   map[string]*fnSeries
	lastT   time.Time
	// cronMissed is the total of the model's missed cron runs at the last
	// sample.
	cronMissed int

	vecAt   time.Time
	vectors [numQueries]model.Vector
	// view is the scrapes a query at viewT reads (valid: computed since the
	// last scrape).
	view      view
	viewT     time.Time
	viewValid bool
}

// NewQuerier returns the simulated Prometheus of model m on cluster c for
// policy p's queries.
func NewQuerier(p *policy.Policy, m *workload.Model, c *Cluster, o QuerierOptions) (*Querier, error) {
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.Step <= 0 {
		o.Step = 5 * time.Second
	}
	if o.Step > o.Window {
		return nil, fmt.Errorf("simulate: the sample step %s is longer than the rate window %s", o.Step, o.Window)
	}
	q := &Querier{model: m, cluster: c, window: o.Window, step: o.Step, kinds: map[string]queryKind{}, byKey: map[string]*fnSeries{}, cold: o.ColdGateway}
	exprs, defaults := policyQueries(p)
	for k := range numQueries {
		e := strings.TrimSpace(exprs[k])
		if e == "" {
			e = defaults[k]
		}
		if prev, dup := q.kinds[e]; dup {
			return nil, fmt.Errorf("simulate: queries.%s and queries.%s have the same text; the simulated Prometheus tells queries apart by their text", queryNames[prev], queryNames[k])
		}
		q.kinds[e] = k
		switch {
		case e == defaults[k] || (k == qInflight && e == legacyInflightQuery):
		case k == qInflight:
			q.warnings = append(q.warnings, "queries.inflight differs from the default; the simulated Prometheus answers it as the peak of started minus completed invocations, a started invocation without any _total series in flight")
		default:
			q.warnings = append(q.warnings, fmt.Sprintf("queries.%s differs from the default; the simulated Prometheus answers it with the default query's meaning", queryNames[k]))
		}
		if k == qInflight {
			q.legacy = e == legacyInflightQuery
			q.subRange, q.subStep = subquery(e, o.Window, o.Step)
			if q.subRange > policy.MaxWindow {
				// The querier keeps every scrape of the range: refuse
				// rather than run out of memory.
				return nil, fmt.Errorf("simulate: queries.inflight looks back %s; the simulated Prometheus keeps at most %s", q.subRange, policy.MaxWindow)
			}
		}
	}
	// Room for the rate window, the subquery's first step's lookback of
	// one scrape, and a sample more.
	size := int(max(o.Window, q.subRange)/o.Step) + 3
	q.times = make([]int64, size)
	for _, key := range m.Keys() {
		f, _ := m.Function(key)
		s := &fnSeries{key: key, labels: model.Metric{"function_name": model.LabelValue(key)},
			queued:   f.Tier == policy.TierAsync || (f.Tier == policy.TierCron && f.Cron != nil && f.Cron.Async),
			duration: m.Duration(key).Seconds(), pending: make([]float64, size), cpuAcc: make([]float64, size), memory: make([]float64, size)}
		q.series = append(q.series, s)
		q.byKey[key] = s
	}
	q.gw = openfaas.NewGateway(max(o.GatewayReplicas, 1), time.Time{})
	return q, nil
}

// subquery returns the range and step of the first subquery of expr
// (window and step when it has none or does not parse).
func subquery(expr string, window, step time.Duration) (time.Duration, time.Duration) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return window, step
	}
	rng, st := window, step
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if sq, ok := n.(*parser.SubqueryExpr); ok && !found {
			found = true
			rng = sq.Range
			if sq.Step > 0 {
				st = sq.Step
			}
		}
		return nil
	})
	return rng, st
}

// Warnings are the notes about queries answered approximately.
func (q *Querier) Warnings() []string { return q.warnings }

// Record scrapes every function at t, after the model was stepped to t.
// The CPU seconds of the interval since the previous sample accrue at the
// per-pod usage the model reports now.
func (q *Querier) Record(t time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	missed := 0
	obs := make([]workload.Observation, len(q.series))
	for i, s := range q.series {
		obs[i] = q.model.Counters(s.key)
		missed += obs[i].CronMissed
	}
	q.record(t, obs)
	q.cronMissed = missed
}

// record scrapes at t the observations of every function (in q.series
// order). Called with the lock held.
func (q *Querier) record(t time.Time, obs []workload.Observation) {
	if q.n == 0 {
		// The gateway has been up a poll interval: it lists the functions.
		q.gw = openfaas.NewGateway(len(q.gw.Replicas()), t.Add(-openfaas.ServicePollInterval))
		for _, s := range q.series {
			s.gwf = q.gw.Function(s.key)
			if !q.cold {
				q.gw.Warm(s.key)
			}
			if q.cluster != nil {
				s.dep = q.cluster.byKey[s.key]
			}
		}
	}
	q.viewValid = false
	dt := 0.0
	if !q.lastT.IsZero() {
		dt = t.Sub(q.lastT).Seconds()
	}
	q.lastT = t
	size := len(q.times)
	var slot, prev int
	if q.n < size {
		slot = (q.head + q.n) % size
		q.n++
	} else {
		slot = q.head
		q.head = (q.head + 1) % size
	}
	prev = (slot + size - 1) % size
	q.times[slot] = t.UnixMilli()
	for i, s := range q.series {
		o := &obs[i]
		q.gw.ObserveFunction(s.gwf, openfaas.Counters{Started: o.Started, Completed: o.Completed200, Rejected: o.Rejected429, Failed: o.Failed})
	}
	var desired map[string]int32
	if q.cluster != nil {
		desired = q.cluster.desiredMap()
	}
	q.gw.Poll(t, desired)
	nreps := 0
	for _, r := range q.gw.Replicas() {
		nreps = max(nreps, r.ID+1)
	}
	for i, s := range q.series {
		o := &obs[i]
		for len(s.gw) < nreps {
			s.gw = append(s.gw, make([]gwPoint, size))
		}
		for _, ring := range s.gw {
			ring[slot] = gwPoint{}
		}
		q.gw.EachOf(s.gwf, func(r openfaas.Replica, x openfaas.Series) {
			p := &s.gw[r.ID][slot]
			p.started, p.ok, p.rejected, p.failed = x.Started, x.Completed, x.Rejected, x.Failed
			if x.HasStarted {
				p.flags |= hasStarted
			}
			if x.HasCompleted {
				p.flags |= has200
			}
			if x.HasRejected {
				p.flags |= has429
			}
			if x.HasFailed {
				p.flags |= has502
			}
		})
		s.pending[slot] = o.Pending
		s.memory[slot] = o.MemoryPerPod
		if q.n > 1 {
			s.cpuAcc[slot] = s.cpuAcc[prev] + o.CPUPerPod*dt
		} else {
			s.cpuAcc[slot] = 0
		}
	}
	// The replicas that have polled list every Deployment, with its
	// desired replicas now (the poll sees the cluster of the scrape time).
	q.gw.Services(func(r openfaas.Replica, _ map[string]int32) {
		for _, s := range q.series {
			if s.dep != nil && r.ID < len(s.gw) {
				p := &s.gw[r.ID][slot]
				p.service, p.flags = float64(*s.dep.obj.Spec.Replicas), p.flags|hasService
			}
		}
	})
}

// RestartGateway restarts gateway replica i at t: its counters reset to
// nothing (see openfaas.Gateway). The model must have been stepped to t.
func (q *Querier) RestartGateway(i int, t time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.observeAll()
	return q.gw.Restart(i, t)
}

// SetGatewayReplicas scales the gateway to n replicas at t.
func (q *Querier) SetGatewayReplicas(n int, t time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.observeAll()
	return q.gw.SetReplicas(n, t)
}

// GatewayReplicas lists the gateway's replicas.
func (q *Querier) GatewayReplicas() []openfaas.Replica {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.gw.Replicas()
}

func (q *Querier) observeAll() {
	for _, s := range q.series {
		o := q.model.Counters(s.key)
		q.gw.Observe(s.key, openfaas.Counters{Started: o.Started, Completed: o.Completed200, Rejected: o.Rejected429, Failed: o.Failed})
	}
}

// viewOf returns the view at t, computed once per scrape and time.
func (q *Querier) viewOf(t time.Time) *view {
	if !q.viewValid || !q.viewT.Equal(t) {
		q.view, q.viewT, q.viewValid = q.viewAt(t), t, true
	}
	return &q.view
}

// Figures are what the policy's function queries return for one function
// at one time. A figure whose Known flag is false has no sample.
type Figures struct {
	// Known: the functions query has the function (the gateway lists it).
	Known bool
	// Rejections and Invocations are per second over the window (all codes
	// for Invocations, 429s included).
	Rejections, Invocations           float64
	RejectionsKnown, InvocationsKnown bool
	// Duration is the mean seconds of a successful invocation.
	Duration      float64
	DurationKnown bool
	// Inflight is the peak in flight over the window.
	Inflight      float64
	InflightKnown bool
	// Pending is the queued messages now (queued functions only).
	Pending      float64
	PendingKnown bool
	// Scraped is the time of the scrape the functions query returns.
	Scraped time.Time
}

// view is the scrape indices a query at t reads, oldest first: the
// window's samples, the instant sample, and each in-flight subquery
// step's instant sample.
type view struct {
	end, rng int64 // the rate window (ms)
	from, to int   // logical indices of the window's samples: [from, to)
	instant  int   // logical index of the instant sample, -1: none
	steps    []int // logical index of each subquery step's instant sample, -1: none
}

// idx maps a logical index (0 oldest) to a ring slot.
func (q *Querier) idx(i int) int { return (q.head + i) % len(q.times) }

// lastAtOrBefore is the logical index of the last scrape at or before t
// (ms) within the lookback, -1 if none.
func (q *Querier) lastAtOrBefore(t int64) int {
	for i := q.n - 1; i >= 0; i-- {
		if ts := q.times[q.idx(i)]; ts <= t {
			if ts > t-lookback.Milliseconds() {
				return i
			}
			return -1
		}
	}
	return -1
}

func (q *Querier) viewAt(t time.Time) view {
	end := t.UnixMilli()
	v := view{end: end, rng: q.window.Milliseconds(), from: q.n, to: q.n, instant: q.lastAtOrBefore(end)}
	for i := 0; i < q.n; i++ {
		ts := q.times[q.idx(i)]
		if ts > end-v.rng && ts <= end && v.from == q.n {
			v.from = i
		}
		if ts > end {
			v.to = i
			break
		}
	}
	if v.from > v.to {
		v.from = v.to
	}
	st := q.subStep.Milliseconds()
	start := st * ((end - q.subRange.Milliseconds()) / st)
	if start <= end-q.subRange.Milliseconds() {
		start += st
	}
	for tau := start; tau <= end; tau += st {
		v.steps = append(v.steps, q.lastAtOrBefore(tau))
	}
	return v
}

// rateAcc accumulates a counter's samples, oldest first, for rate().
type rateAcc struct {
	n             int
	firstT, lastT int64
	first, last   float64
	resets        float64
}

func (a *rateAcc) add(t int64, v float64) {
	if a.n == 0 {
		a.firstT, a.first = t, v
	} else if v < a.last {
		a.resets += a.last // a counter reset: the value before it counts
	}
	a.lastT, a.last = t, v
	a.n++
}

// rate is PromQL's rate() over a window of rng ms ending at end: the
// increase (resets included) extrapolated towards the window's edges by
// at most half the mean sample interval beyond the samples (all the way
// when the gap is within 1.1 intervals), never below the counter's zero.
// ok is false with fewer than two samples.
func (a *rateAcc) rate(end, rng int64) (float64, bool) {
	if a.n < 2 {
		return 0, false
	}
	result := a.last - a.first + a.resets
	toStart := float64(a.firstT-(end-rng)) / 1000
	toEnd := float64(end-a.lastT) / 1000
	sampled := float64(a.lastT-a.firstT) / 1000
	avg := sampled / float64(a.n-1)
	threshold := avg * 1.1
	if toStart >= threshold {
		toStart = avg / 2
	}
	if result > 0 && a.first >= 0 {
		if z := sampled * (a.first / result); z < toStart {
			toStart = z
		}
	}
	if toEnd >= threshold {
		toEnd = avg / 2
	}
	factor := (sampled + toStart + toEnd) / sampled / (float64(rng) / 1000)
	return result * factor, true
}

// figures computes the function queries' answers for s over v.
func (q *Querier) figures(s *fnSeries, v *view) Figures {
	var f Figures
	if v.instant >= 0 {
		slot := q.idx(v.instant)
		for _, ring := range s.gw {
			if ring[slot].flags&hasService != 0 {
				f.Known = true
				f.Scraped = time.UnixMilli(q.times[slot])
			}
		}
		if s.queued {
			f.Pending, f.PendingKnown = s.pending[slot], true
		}
	}
	// Rates: per series (replica and code), then summed.
	var okSum, okCount float64
	for _, ring := range s.gw {
		var ok, rej, fail, cnt rateAcc
		for i := v.from; i < v.to; i++ {
			slot := q.idx(i)
			p := &ring[slot]
			t := q.times[slot]
			if p.flags&has200 != 0 {
				ok.add(t, p.ok)
				cnt.add(t, math.Floor(p.ok))
			}
			if p.flags&has429 != 0 {
				rej.add(t, p.rejected)
			}
			if p.flags&has502 != 0 {
				fail.add(t, p.failed)
			}
		}
		if r, known := rej.rate(v.end, v.rng); known {
			f.Rejections += r
			f.RejectionsKnown = true
			f.Invocations += r
			f.InvocationsKnown = true
		}
		for _, a := range []*rateAcc{&ok, &fail} {
			if r, known := a.rate(v.end, v.rng); known {
				f.Invocations += r
				f.InvocationsKnown = true
			}
		}
		if r, known := cnt.rate(v.end, v.rng); known {
			// _sum is _count × the duration: the same resets and
			// extrapolation.
			okCount += r
			okSum += r * s.duration
			f.DurationKnown = true
		}
	}
	if f.DurationKnown {
		if okCount > 0 {
			f.Duration = okSum / okCount
		} else {
			f.DurationKnown = false
		}
	}
	// In flight: the peak over the subquery's steps of started minus
	// completed (a missing _total read as 0, or, legacy, as nothing).
	for _, i := range v.steps {
		if i < 0 {
			continue
		}
		slot := q.idx(i)
		var started, total float64
		var hasS, hasT bool
		for _, ring := range s.gw {
			p := &ring[slot]
			if p.flags&hasStarted != 0 {
				started += p.started
				hasS = true
			}
			if p.flags&has200 != 0 {
				total += p.ok
				hasT = true
			}
			if p.flags&has429 != 0 {
				total += p.rejected
				hasT = true
			}
			if p.flags&has502 != 0 {
				total += p.failed
				hasT = true
			}
		}
		if !hasS || (q.legacy && !hasT) {
			continue
		}
		if x := started - total; !f.InflightKnown || x > f.Inflight {
			f.Inflight, f.InflightKnown = x, true
		}
	}
	if !f.InflightKnown && f.Known {
		f.Inflight, f.InflightKnown = 0, true // the "or (0 * gateway_service_count)" branch
	}
	return f
}

// Figures returns the function queries' answers for key at t (the
// vectors' values for the function); false for an unknown key or before
// the first sample.
func (q *Querier) Figures(key string, t time.Time) (Figures, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.byKey[key]
	if !ok || q.n == 0 {
		return Figures{}, false
	}
	return q.figures(s, q.viewOf(t)), true
}

// scrapedAsReady reports whether a scrape at ms saw pod p Ready: at or
// after its readyAt, before its removal.
func scrapedAsReady(p *simPod, ms int64) bool {
	return ms >= p.readyAt.UnixMilli() && (p.goneAt.IsZero() || ms < p.goneAt.UnixMilli())
}

// podCPU is the CPU rate of pod p (of function s) over v: its counter is
// its function's cpuAcc minus the value at its first scrape as Ready, over
// the scrapes that saw it Ready; false with fewer than two samples.
func (q *Querier) podCPU(s *fnSeries, p *simPod, v *view) (float64, bool) {
	if !p.hasCPUBase {
		for i := 0; i < q.n; i++ {
			if slot := q.idx(i); scrapedAsReady(p, q.times[slot]) {
				p.cpuBase, p.hasCPUBase = s.cpuAcc[slot], true
				break
			}
		}
		if !p.hasCPUBase {
			return 0, false
		}
	}
	base := p.cpuBase
	var a rateAcc
	for i := v.from; i < v.to; i++ {
		if slot := q.idx(i); scrapedAsReady(p, q.times[slot]) {
			a.add(q.times[slot], s.cpuAcc[slot]-base)
		}
	}
	return a.rate(v.end, v.rng)
}

// Query answers one of the policy's queries at t. It is safe for
// concurrent use, as the controller runs its queries concurrently.
// The simulated Prometheus always answers completely: no warnings.
func (q *Querier) Query(_ context.Context, promql string, at time.Time) (model.Vector, []string, error) {
	k, ok := q.kinds[strings.TrimSpace(promql)]
	if !ok {
		return nil, nil, fmt.Errorf("simulate: the simulated Prometheus answers only the policy's eight queries, not %q", promql)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.vecAt.Equal(at) || q.vectors[qFunctions] == nil {
		q.build(at)
	}
	return q.vectors[k], nil, nil
}

// build computes every query's vector at t. Called with the lock held.
func (q *Querier) build(t time.Time) {
	q.vecAt = t
	n := len(q.series)
	ts := model.TimeFromUnixNano(t.UnixNano())
	vals := make([][]model.Sample, numQueries)
	for k := range qCPU {
		vals[k] = make([]model.Sample, 0, n)
	}
	add := func(k queryKind, m model.Metric, v float64) {
		vals[k] = append(vals[k], model.Sample{Metric: m, Value: model.SampleValue(v), Timestamp: ts})
	}
	if q.n > 0 {
		v := q.viewOf(t)
		for _, s := range q.series {
			f := q.figures(s, v)
			if f.Known {
				add(qFunctions, s.labels, float64(f.Scraped.UnixMilli())/1000)
			}
			// The default rejections and invocations queries end in "> 0":
			// Prometheus drops a function whose rate is 0 from their answers.
			if f.RejectionsKnown && f.Rejections > 0 {
				add(qRejections, s.labels, f.Rejections)
			}
			if f.InvocationsKnown && f.Invocations > 0 {
				add(qInvocations, s.labels, f.Invocations)
			}
			if f.DurationKnown {
				add(qDuration, s.labels, f.Duration)
			}
			if f.InflightKnown {
				add(qInflight, s.labels, f.Inflight)
			}
			if f.PendingKnown {
				add(qPending, s.labels, f.Pending)
			}
		}
		if q.cluster != nil {
			q.cluster.forEachScrapedPod(func(d *simDeployment, p *simPod) {
				s := q.byKey[d.key]
				if s == nil {
					return
				}
				m := model.Metric{"namespace": model.LabelValue(d.namespace), "pod": model.LabelValue(p.name)}
				if cpu, ok := q.podCPU(s, p, v); ok {
					add(qCPU, m, cpu)
				}
				if v.instant >= 0 {
					if slot := q.idx(v.instant); scrapedAsReady(p, q.times[slot]) {
						add(qMemory, m, s.memory[slot])
					}
				}
			})
		}
	}
	for k := range numQueries {
		v := make(model.Vector, len(vals[k]))
		for i := range vals[k] {
			v[i] = &vals[k][i]
		}
		q.vectors[k] = v
	}
}

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

// policyQueries lists the policy's query texts in queryKind order, with the
// defaults they are compared with.
func policyQueries(p *policy.Policy) (exprs, defaults [numQueries]string) {
	q := p.Queries
	exprs = [numQueries]string{q.Functions, q.Rejections, q.Invocations, q.Duration, q.Inflight, q.Pending, q.CPU, q.Memory}
	defaults = [numQueries]string{policy.DefaultFunctionsQuery, policy.DefaultRejectionsQuery, policy.DefaultInvocationsQuery,
		policy.DefaultDurationQuery, policy.DefaultInflightQuery, policy.DefaultPendingQuery, policy.DefaultCPUQuery, policy.DefaultMemoryQuery}
	return exprs, defaults
}

// sample is one function's state at a sample time: the gateway counters,
// the gauges, and the CPU seconds one pod Ready since the start would have
// used.
type sample struct {
	t                   time.Time
	completed, rejected float64
	inflight, pending   float64
	cpuAcc, memory      float64
}

// fnSeries is one function's recent samples, oldest first, in a ring.
type fnSeries struct {
	key      string
	labels   model.Metric
	queued   bool
	duration float64
	ring     []sample
	head, n  int
}

func (s *fnSeries) push(x sample) {
	if s.n < len(s.ring) {
		s.ring[(s.head+s.n)%len(s.ring)] = x
		s.n++
		return
	}
	s.ring[s.head] = x
	s.head = (s.head + 1) % len(s.ring)
}

// at returns the i-th sample, oldest first.
func (s *fnSeries) at(i int) *sample { return &s.ring[(s.head+i)%len(s.ring)] }

// QuerierOptions configure a Querier.
type QuerierOptions struct {
	// Window is the range of the rate and max_over_time windows: the
	// default queries' 1m.
	Window time.Duration
	// Step is the time between samples (the simulated scrape interval).
	Step time.Duration
}

// Querier is a simulated Prometheus holding what the emulator
// (hack/emulator) would export for the workload model and a real
// Prometheus would return for the policy's eight queries. It implements
// scaler.Querier. The simulation calls Record at every sample time after
// stepping the model there; Query then answers from the samples.
//
// Each query is recognised by its text, which must be one of the policy's
// Queries; it is answered with the meaning of the default query of that
// name, whatever its text (see Warnings).
//
// Approximations of PromQL (window W, the default 1m; samples every Step):
//
//   - rate(x[W]) at t is (x(t) − x(t−W)) / W with x read exactly from the
//     model at the two sample times, where Prometheus takes the samples
//     inside (t−W, t] and extrapolates to the window's edges: the same
//     figure for a steady rate, without the scrape jitter. Before W has
//     passed since the start the window is what there is.
//   - the in-flight query's max_over_time over [W:5s] is the largest
//     in-flight count of the samples in (t−W, t].
//   - the duration query has a sample when the floor of the 200 count grew
//     over the window (the emulator exports whole counts), and its value is
//     the function's request, run or job duration.
//   - cadvisor CPU: one pod's usage is CPUPerPod of its function (in-flight
//     work spread over the Ready pods) integrated at the sample times; a pod
//     has a CPU sample once it was Ready at two sample times (rate needs two
//     points), a memory sample as soon as it is Ready. Pods not yet Ready
//     have no series (the emulator's kwok pods are Running and Ready at
//     once).
//   - pending (queue_worker_pending_messages) exists only for async
//     functions and async cron functions, as the emulator exports it.
type Querier struct {
	mu       sync.Mutex
	model    *workload.Model
	cluster  *Cluster
	window   time.Duration
	step     time.Duration
	kinds    map[string]queryKind
	warnings []string

	series     []*fnSeries
	byKey      map[string]*fnSeries
	lastRecord time.Time
	// cronMissed is the total of the model's missed cron runs at the last
	// sample.
	cronMissed int

	vecAt   time.Time
	vectors [numQueries]model.Vector
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
	q := &Querier{model: m, cluster: c, window: o.Window, step: o.Step, kinds: map[string]queryKind{}, byKey: map[string]*fnSeries{}}
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
		if e != defaults[k] {
			q.warnings = append(q.warnings, fmt.Sprintf("queries.%s differs from the default; the simulated Prometheus answers it with the default query's meaning", queryNames[k]))
		}
	}
	size := int(o.Window/o.Step) + 2
	for _, key := range m.Keys() {
		f, _ := m.Function(key)
		s := &fnSeries{key: key, labels: model.Metric{"function_name": model.LabelValue(key)},
			queued:   f.Tier == policy.TierAsync || (f.Tier == policy.TierCron && f.Cron != nil && f.Cron.Async),
			duration: m.Duration(key).Seconds(), ring: make([]sample, size)}
		q.series = append(q.series, s)
		q.byKey[key] = s
	}
	return q, nil
}

// Warnings are the notes about queries answered approximately.
func (q *Querier) Warnings() []string { return q.warnings }

// Record samples every function at t, after the model was stepped to t.
// The CPU seconds of the interval since the previous sample accrue at the
// per-pod usage the model reports now.
func (q *Querier) Record(t time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dt := 0.0
	if !q.lastRecord.IsZero() {
		dt = t.Sub(q.lastRecord).Seconds()
	}
	q.lastRecord = t
	q.cronMissed = 0
	for _, s := range q.series {
		o := q.model.Counters(s.key)
		q.cronMissed += o.CronMissed
		var cpu float64
		if s.n > 0 {
			cpu = s.at(s.n - 1).cpuAcc
		}
		s.push(sample{t: t, completed: o.Completed200, rejected: o.Rejected429, inflight: o.Inflight, pending: o.Pending,
			cpuAcc: cpu + o.CPUPerPod*dt, memory: o.MemoryPerPod})
	}
}

// Figures are what the policy's function queries return for one function
// at one time. A figure whose Known flag is false has no sample.
type Figures struct {
	// Rejections and Invocations are per second over the window (all codes
	// for Invocations, 429s included).
	Rejections, Invocations float64
	// Duration is the mean seconds of a successful invocation.
	Duration      float64
	DurationKnown bool
	// Inflight is the peak in flight over the window.
	Inflight float64
	// Pending is the queued messages now (queued functions only).
	Pending      float64
	PendingKnown bool
}

// window returns the newest sample at or before t and the base of the
// window ending there: the newest sample at or before t−W, else the
// oldest. ok is false with no sample at or before t.
func (q *Querier) windowOf(s *fnSeries, t time.Time) (cur, base *sample, first int, ok bool) {
	last := -1
	for i := s.n - 1; i >= 0; i-- {
		if !s.at(i).t.After(t) {
			last = i
			break
		}
	}
	if last < 0 {
		return nil, nil, 0, false
	}
	from := t.Add(-q.window)
	b := 0
	for i := last; i >= 0; i-- {
		if !s.at(i).t.After(from) {
			b = i
			break
		}
	}
	return s.at(last), s.at(b), b, true
}

func (q *Querier) figures(s *fnSeries, t time.Time) (Figures, bool) {
	cur, base, b, ok := q.windowOf(s, t)
	if !ok {
		return Figures{}, false
	}
	var f Figures
	if span := cur.t.Sub(base.t).Seconds(); span > 0 {
		f.Rejections = math.Max(0, (cur.rejected-base.rejected)/span)
		f.Invocations = math.Max(0, (cur.completed+cur.rejected-base.completed-base.rejected)/span)
		if math.Floor(cur.completed) > math.Floor(base.completed) {
			f.Duration, f.DurationKnown = s.duration, true
		}
	}
	from := t.Add(-q.window)
	f.Inflight = cur.inflight
	for i := b; i < s.n; i++ {
		x := s.at(i)
		if x.t.After(from) && !x.t.After(t) && x.inflight > f.Inflight {
			f.Inflight = x.inflight
		}
	}
	if s.queued {
		f.Pending, f.PendingKnown = cur.pending, true
	}
	return f, true
}

// Figures returns the function queries' figures for key at t; false for an
// unknown key or before the first sample.
func (q *Querier) Figures(key string, t time.Time) (Figures, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.byKey[key]
	if !ok {
		return Figures{}, false
	}
	return q.figures(s, t)
}

// podCPU is the CPU rate of a pod Ready since readyAt, over the window
// ending at t; false when it has fewer than two samples.
func (q *Querier) podCPU(s *fnSeries, readyAt, t time.Time) (float64, bool) {
	cur, base, b, ok := q.windowOf(s, t)
	if !ok {
		return 0, false
	}
	if base.t.Before(readyAt) {
		base = nil
		for i := b; i < s.n; i++ {
			if x := s.at(i); !x.t.Before(readyAt) {
				base = x
				break
			}
		}
	}
	if base == nil || !cur.t.After(base.t) {
		return 0, false
	}
	return math.Max(0, (cur.cpuAcc-base.cpuAcc)/cur.t.Sub(base.t).Seconds()), true
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
	for _, s := range q.series {
		f, ok := q.figures(s, t)
		if !ok {
			continue
		}
		// The scrape time: the functions query is timestamp(gateway_service_count).
		add(qFunctions, s.labels, float64(t.UnixNano())/1e9)
		add(qRejections, s.labels, f.Rejections)
		add(qInvocations, s.labels, f.Invocations)
		if f.DurationKnown {
			add(qDuration, s.labels, f.Duration)
		}
		add(qInflight, s.labels, f.Inflight)
		if f.PendingKnown {
			add(qPending, s.labels, f.Pending)
		}
	}
	if q.cluster != nil {
		q.cluster.forEachReadyPod(func(d *simDeployment, p *simPod) {
			s := q.byKey[d.key]
			if s == nil || s.n == 0 {
				return
			}
			m := model.Metric{"namespace": model.LabelValue(d.namespace), "pod": model.LabelValue(p.name)}
			if cpu, ok := q.podCPU(s, p.readyAt, t); ok {
				add(qCPU, m, cpu)
			}
			if cur, _, _, ok := q.windowOf(s, t); ok {
				add(qMemory, m, cur.memory)
			}
		})
	}
	for k := range numQueries {
		v := make(model.Vector, len(vals[k]))
		for i := range vals[k] {
			v[i] = &vals[k][i]
		}
		q.vectors[k] = v
	}
}

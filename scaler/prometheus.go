// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/tierscaler/tierscaler/policy"
)

// Querier runs one PromQL instant query and returns its instant vector and
// the warnings that came with it. It is the narrow seam between the
// controller and Prometheus: tests use a fake, integration tests the real
// server, the simulator a model.
//
// Warnings mean a partial answer: Thanos, Cortex and Mimir answer with
// warnings when some of their stores did not answer, and the vector may
// lack a busy function. The controller then scales up on what the answer
// shows but never scales down, zeroes or evicts on it.
type Querier interface {
	Query(ctx context.Context, promql string, at time.Time) (model.Vector, []string, error)
}

// PrometheusQuerier is a Querier backed by the Prometheus HTTP API.
type PrometheusQuerier struct {
	api promv1.API
	url string
}

// NewPrometheusQuerier returns a Querier for the Prometheus at url.
func NewPrometheusQuerier(url string, rt http.RoundTripper) (*PrometheusQuerier, error) {
	if err := policy.CheckURL(url); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	c, err := promapi.NewClient(promapi.Config{Address: url, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	return &PrometheusQuerier{api: promv1.NewAPI(c), url: url}, nil
}

// NewPolicyQuerier returns the Querier for the policy's Prometheus: url
// (the policy's prometheus.url when empty), reached with the policy's
// prometheus.httpConfig, Prometheus' own HTTP client configuration (basic
// auth, bearer tokens and TLS from files, headers, proxies).
func NewPolicyQuerier(p *policy.Policy, url string) (*PrometheusQuerier, error) {
	if url == "" {
		url = p.Prometheus.URL
	}
	var rt http.RoundTripper
	if cfg := p.Prometheus.HTTPConfig; cfg != nil {
		var err error
		if rt, err = promconfig.NewRoundTripperFromConfig(*cfg, "prometheus"); err != nil {
			return nil, fmt.Errorf("prometheus.httpConfig: %w", err)
		}
	}
	return NewPrometheusQuerier(url, rt)
}

// Query runs promql at the given time and insists on a vector result. It
// returns the answer's warnings with it.
func (q *PrometheusQuerier) Query(ctx context.Context, promql string, at time.Time) (model.Vector, []string, error) {
	v, warnings, _, err := q.api.Query(ctx, promql, at)
	if err != nil {
		return nil, nil, q.explain(err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, nil, fmt.Errorf("want an instant vector, got a %s", v.Type())
	}
	return vec, warnings, nil
}

// explain names the Prometheus in an error answer that lacks it: the
// client's own says only "client error: 401" for an answer that is not the
// API's JSON, such as the 401 of a Prometheus behind basic auth. A 401 or a
// 403 says which setting to check.
func (q *PrometheusQuerier) explain(err error) error {
	var apiErr *promv1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != promv1.ErrClient {
		return err
	}
	var code int
	if _, scanErr := fmt.Sscanf(apiErr.Msg, "client error: %d", &code); scanErr != nil {
		return fmt.Errorf("prometheus at %s: %w", q.url, err)
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	switch code {
	case http.StatusUnauthorized:
		return fmt.Errorf("prometheus at %s answered %s: the credentials of prometheus.httpConfig are missing or wrong: %w", q.url, status, err)
	case http.StatusForbidden:
		return fmt.Errorf("prometheus at %s answered %s: the credentials of prometheus.httpConfig are not allowed to query: %w", q.url, status, err)
	}
	return fmt.Errorf("prometheus at %s answered %s: %w", q.url, status, err)
}

// queryKey says how a query's samples are joined to functions.
type queryKey int

const (
	byFunction queryKey = iota // label function_name (name.namespace)
	byPod                      // labels namespace and pod
)

// namedQuery is one of the policy's queries.
type namedQuery struct {
	name  string
	expr  string
	key   queryKey
	dest  func(*metricSet) *map[string]float64
	check func(float64) bool
}

func nonNegative(v float64) bool { return v >= 0 }

// queries lists the policy's queries in a fixed order: the number of queries
// per cycle does not depend on the number of functions.
func queries(p *policy.Policy) []namedQuery {
	q := p.Queries
	all := []namedQuery{
		{"functions", q.Functions, byFunction, func(m *metricSet) *map[string]float64 { return &m.seen }, func(v float64) bool { return v > 0 }},
		{"rejections", q.Rejections, byFunction, func(m *metricSet) *map[string]float64 { return &m.rejections }, nonNegative},
		{"invocations", q.Invocations, byFunction, func(m *metricSet) *map[string]float64 { return &m.invocations }, nonNegative},
		{"duration", q.Duration, byFunction, func(m *metricSet) *map[string]float64 { return &m.duration }, nonNegative},
		// In-flight is a difference of counters: a scrape race can make it
		// slightly negative, which is read as zero below.
		{"inflight", q.Inflight, byFunction, func(m *metricSet) *map[string]float64 { return &m.inflight }, func(float64) bool { return true }},
		{"pending", q.Pending, byFunction, func(m *metricSet) *map[string]float64 { return &m.pending }, nonNegative},
		{"cpu", q.CPU, byPod, func(m *metricSet) *map[string]float64 { return &m.cpu }, nonNegative},
		{"memory", q.Memory, byPod, func(m *metricSet) *map[string]float64 { return &m.memory }, nonNegative},
	}
	// A usage signal turned off is not queried: its usage stays unknown,
	// and the engine does not use it.
	out := all[:0]
	for _, nq := range all {
		if nq.name == "cpu" && !p.CPUSignal() || nq.name == "memory" && !p.MemorySignal() {
			continue
		}
		out = append(out, nq)
	}
	return out
}

// metricSet is one cycle's Prometheus data, keyed by function_name
// (name.namespace) or by namespace/pod.
type metricSet struct {
	// available is false when any query failed, was invalid, or the gateway
	// data is stale: the controller then fails static.
	available bool
	// partial is true when a query answered with warnings: its values are
	// read (they may justify a scale-up) but the snapshot says metrics are
	// unavailable, so that nothing is scaled down, zeroed or evicted.
	partial bool
	// problems says why it is not available, or which samples were dropped.
	problems []string
	// newest is the newest gateway scrape time seen.
	newest time.Time

	seen        map[string]float64
	rejections  map[string]float64
	invocations map[string]float64
	duration    map[string]float64
	inflight    map[string]float64
	pending     map[string]float64
	cpu         map[string]float64
	memory      map[string]float64
}

func newMetricSet() *metricSet {
	return &metricSet{
		seen: map[string]float64{}, rejections: map[string]float64{}, invocations: map[string]float64{}, duration: map[string]float64{},
		inflight: map[string]float64{}, pending: map[string]float64{}, cpu: map[string]float64{}, memory: map[string]float64{},
	}
}

// function returns the metrics of the function key (name.namespace), as
// docs/policy-file.md sets out. A function the gateway does not report has
// unknown metrics. For one it reports, a missing rate sample means no
// traffic (the counters do not exist yet), while a missing duration,
// in-flight or pending sample means unknown: absence is no proof that nothing is running
// or queued.
func (m *metricSet) function(key string) (rej, inv, dur, infl, pend policy.Metric) {
	u := policy.Unknown
	if !m.available {
		return u, u, u, u, u
	}
	if _, ok := m.seen[key]; !ok {
		return u, u, u, u, u
	}
	optional := func(src map[string]float64) policy.Metric {
		if v, ok := src[key]; ok {
			return policy.Known(v)
		}
		return policy.Unknown
	}
	infl = optional(m.inflight)
	if infl.Known && infl.Value < 0 {
		infl.Value = 0
	}
	return policy.Known(m.rejections[key]), policy.Known(m.invocations[key]), optional(m.duration), infl, optional(m.pending)
}

// pod returns the CPU and memory of a pod; absent samples are unknown.
func (m *metricSet) pod(namespace, name string) (cpu, mem policy.Metric) {
	if !m.available {
		return policy.Unknown, policy.Unknown
	}
	k := namespace + "/" + name
	cpu, mem = policy.Unknown, policy.Unknown
	if v, ok := m.cpu[k]; ok {
		cpu = policy.Known(v)
	}
	if v, ok := m.memory[k]; ok {
		mem = policy.Known(v)
	}
	return cpu, mem
}

// Batcher is a Querier whose round trips cost more than its queries, such
// as the Prometheus HTTP API. The controller sends it the policy's queries
// in a few batches (queryBatches), each one PromQL expression (batchExpr),
// so that the requests per cycle stay few and fixed: 4, or 3 with the usage
// signals off. A Querier that is not a Batcher (the simulator, test fakes)
// gets each query on its own. Both read the same answers: TestBatchExpr
// checks the batch against Prometheus' own engine.
type Batcher interface {
	Querier
	BatchesQueries() bool
}

// BatchesQueries reports that the HTTP API is worth batching for.
func (q *PrometheusQuerier) BatchesQueries() bool { return true }

// batchLabel tags each sample of a batch with the query it answers.
const batchLabel = "tierscaler_query"

// queryBatches groups the queries for a Batcher. The answers that list
// every function (functions, in-flight) go alone: at thousands of functions
// the cost of a request is mostly encoding and decoding its samples, and
// alone they are decoded in parallel. The other gateway and queue queries
// (rates above zero, queue depth) go together, and so do the cadvisor usage
// queries. The batches run concurrently: a cycle waits for the slowest, not
// for the sum.
func queryBatches(qs []namedQuery) [][]int {
	var functions, inflight, usage, rest []int
	for i, q := range qs {
		switch {
		case q.name == "functions":
			functions = append(functions, i)
		case q.name == "inflight":
			inflight = append(inflight, i)
		case q.key == byPod:
			usage = append(usage, i)
		default:
			rest = append(rest, i)
		}
	}
	var out [][]int
	for _, b := range [][]int{functions, rest, inflight, usage} {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// batchExpr is one PromQL expression that answers every query of members,
// each sample tagged with its query's name in batchLabel. The tags differ,
// so "or" keeps every sample of every member.
func batchExpr(members []namedQuery) string {
	if len(members) == 1 {
		return members[0].expr
	}
	var b strings.Builder
	for i, q := range members {
		if i > 0 {
			b.WriteString(" or ")
		}
		fmt.Fprintf(&b, "label_replace((%s), %q, %q, \"\", \"\")", q.expr, batchLabel, q.name)
	}
	return b.String()
}

// answer is what one query got back.
type answer struct {
	vec      model.Vector
	warnings []string
	err      error
	took     time.Duration
}

// ask runs one expression, time-boxed by the policy's timeout.
func ask(ctx context.Context, q Querier, p *policy.Policy, expr string, now time.Time) answer {
	qctx, cancel := context.WithTimeout(ctx, p.Prometheus.Timeout.Duration)
	defer cancel()
	start := time.Now()
	vec, warnings, err := q.Query(qctx, expr, now)
	return answer{vec: vec, warnings: warnings, err: err, took: time.Since(start)}
}

// askBatch runs a batch and splits its answer by query. When the batch
// fails for another reason than time, each member is asked on its own, so
// that the error names the query at fault (extra requests only then).
func askBatch(ctx context.Context, q Querier, p *policy.Policy, members []namedQuery, now time.Time) []answer {
	out := make([]answer, len(members))
	a := ask(ctx, q, p, batchExpr(members), now)
	if len(members) == 1 {
		out[0] = a
		return out
	}
	if a.err != nil && !errors.Is(a.err, context.DeadlineExceeded) && ctx.Err() == nil {
		var wg sync.WaitGroup
		for i := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = ask(ctx, q, p, members[i].expr, now)
			}()
		}
		wg.Wait()
		return out
	}
	index := make(map[string]int, len(members))
	for i, m := range members {
		index[m.name] = i
		out[i] = answer{vec: model.Vector{}, warnings: a.warnings, err: a.err, took: a.took}
	}
	if a.err != nil {
		return out
	}
	for _, smp := range a.vec {
		name := string(smp.Metric[batchLabel])
		i, ok := index[name]
		if !ok {
			err := fmt.Errorf("%w: the batch answered a sample %s tagged for no query", errInvalid, smp.Metric)
			for j := range out {
				out[j].err = err
			}
			return out
		}
		delete(smp.Metric, batchLabel)
		out[i].vec = append(out[i].vec, smp)
	}
	return out
}

// gatherMetrics runs the policy's queries, concurrently and each time-boxed
// by the policy's timeout (in batches for a Batcher), and validates every
// result: an instant vector, the required labels, finite values in range.
// Any failure marks the set unavailable, so the controller fails static.
func gatherMetrics(ctx context.Context, q Querier, p *policy.Policy, now time.Time, m *Metrics) *metricSet {
	set := newMetricSet()
	set.available = true
	qs := queries(p)
	answers := make([]answer, len(qs))
	var wg sync.WaitGroup
	if b, ok := q.(Batcher); ok && b.BatchesQueries() {
		for _, batch := range queryBatches(qs) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				members := make([]namedQuery, len(batch))
				for j, i := range batch {
					members[j] = qs[i]
				}
				for j, a := range askBatch(ctx, q, p, members, now) {
					answers[batch[j]] = a
				}
			}()
		}
	} else {
		for i := range qs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = ask(ctx, q, p, qs[i].expr, now)
			}()
		}
	}
	wg.Wait()
	for i, nq := range qs {
		a := answers[i]
		m.QueryDuration.WithLabelValues(nq.name).Observe(a.took.Seconds())
		result := "success"
		switch {
		case errors.Is(a.err, context.DeadlineExceeded):
			result = "timeout"
			set.fail(fmt.Sprintf("query %s: no answer within %s", nq.name, p.Prometheus.Timeout.Duration))
		case errors.Is(a.err, errInvalid):
			result = "invalid"
			set.fail(fmt.Sprintf("query %s: %v", nq.name, a.err))
		case a.err != nil:
			result = "error"
			set.fail(fmt.Sprintf("query %s: %v", nq.name, a.err))
		default:
			if err := set.load(nq, a.vec); err != nil {
				result = "invalid"
				set.fail(fmt.Sprintf("query %s: %v", nq.name, err))
			} else if len(a.warnings) > 0 {
				result = "warnings"
				set.partial = true
				set.problems = append(set.problems, fmt.Sprintf("query %s answered with warnings (a partial answer): %s", nq.name, strings.Join(a.warnings, "; ")))
			}
		}
		m.Queries.WithLabelValues(nq.name, result).Inc()
	}
	if set.available && !set.newest.IsZero() {
		if age := now.Sub(set.newest); age > p.Prometheus.MaxStaleness.Duration {
			set.fail(fmt.Sprintf("the newest gateway sample is %s old, over maxStaleness %s", age.Round(time.Second), p.Prometheus.MaxStaleness.Duration))
		}
	}
	return set
}

func (s *metricSet) fail(problem string) {
	s.available = false
	s.problems = append(s.problems, problem)
}

// errInvalid marks a result that breaks the query contract.
var errInvalid = errors.New("invalid result")

// load validates a vector and stores it. A sample with a missing label, a
// duplicate key, or a non-finite or out-of-range value makes the whole result
// invalid: a partial join could hide a busy function.
func (s *metricSet) load(nq namedQuery, vec model.Vector) error {
	dst := make(map[string]float64, len(vec))
	*nq.dest(s) = dst
	for _, smp := range vec {
		v := float64(smp.Value)
		if math.IsNaN(v) || math.IsInf(v, 0) || !nq.check(v) {
			return fmt.Errorf("%w: value %v out of range for %s", errInvalid, v, smp.Metric)
		}
		var key string
		switch nq.key {
		case byFunction:
			fn := string(smp.Metric["function_name"])
			if fn == "" || !strings.Contains(fn, ".") {
				return fmt.Errorf("%w: sample %s lacks a function_name label of the form name.namespace", errInvalid, smp.Metric)
			}
			key = fn
		case byPod:
			ns, pod := string(smp.Metric["namespace"]), string(smp.Metric["pod"])
			if ns == "" || pod == "" {
				return fmt.Errorf("%w: sample %s lacks the namespace and pod labels", errInvalid, smp.Metric)
			}
			key = ns + "/" + pod
		}
		if _, dup := dst[key]; dup {
			return fmt.Errorf("%w: more than one sample for %s; aggregate by its key labels", errInvalid, key)
		}
		dst[key] = v
		if nq.name == "functions" {
			if t := time.Unix(0, int64(v*1e9)); t.After(s.newest) {
				s.newest = t
			}
		}
	}
	return nil
}

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
}

// NewPrometheusQuerier returns a Querier for the Prometheus at url.
func NewPrometheusQuerier(url string, rt http.RoundTripper) (*PrometheusQuerier, error) {
	c, err := promapi.NewClient(promapi.Config{Address: url, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	return &PrometheusQuerier{api: promv1.NewAPI(c)}, nil
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
		return nil, nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, nil, fmt.Errorf("want an instant vector, got a %s", v.Type())
	}
	return vec, warnings, nil
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

// gatherMetrics runs the policy's queries concurrently, each time-boxed by the
// policy's timeout, and validates every result: an instant vector, the
// required labels, finite values in range. Any failure marks the set
// unavailable, so the controller fails static.
func gatherMetrics(ctx context.Context, q Querier, p *policy.Policy, now time.Time, m *Metrics) *metricSet {
	set := newMetricSet()
	set.available = true
	qs := queries(p)
	errs := make([]error, len(qs))
	results := make([]model.Vector, len(qs))
	warnings := make([][]string, len(qs))
	var wg sync.WaitGroup
	for i := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, p.Prometheus.Timeout.Duration)
			defer cancel()
			start := time.Now()
			results[i], warnings[i], errs[i] = q.Query(qctx, qs[i].expr, now)
			m.QueryDuration.WithLabelValues(qs[i].name).Observe(time.Since(start).Seconds())
		}()
	}
	wg.Wait()
	for i, nq := range qs {
		result := "success"
		switch {
		case errors.Is(errs[i], context.DeadlineExceeded):
			result = "timeout"
			set.fail(fmt.Sprintf("query %s: no answer within %s", nq.name, p.Prometheus.Timeout.Duration))
		case errs[i] != nil:
			result = "error"
			set.fail(fmt.Sprintf("query %s: %v", nq.name, errs[i]))
		default:
			if err := set.load(nq, results[i]); err != nil {
				result = "invalid"
				set.fail(fmt.Sprintf("query %s: %v", nq.name, err))
			} else if len(warnings[i]) > 0 {
				result = "warnings"
				set.partial = true
				set.problems = append(set.problems, fmt.Sprintf("query %s answered with warnings (a partial answer): %s", nq.name, strings.Join(warnings[i], "; ")))
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

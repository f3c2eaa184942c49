// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// BacktestOptions say where and what to read for a backtest.
type BacktestOptions struct {
	// URL of the Prometheus that scraped the OpenFaaS gateway (required).
	URL string
	// End of the recorded range (default: now) and its length (required).
	End   time.Time
	Range time.Duration
	// Step of the recorded trace; also the rate window. It must be at
	// least twice the gateway's scrape interval. Default 1m.
	Step time.Duration
	// RoundTripper for the Prometheus client (default: http.DefaultTransport).
	RoundTripper http.RoundTripper
	// Timeout of each query. Default 1m.
	Timeout time.Duration
}

// Backtest queries. function_name is name.namespace, as the gateway labels
// it.
const (
	traceFunctionsQuery = `max by (function_name) (gateway_service_count)`
	traceRateQuery      = `sum by (function_name) (rate(gateway_function_invocation_total[%s]))`
	traceDurationQuery  = `sum by (function_name) (increase(gateway_functions_seconds_sum{code="200"}[%[1]s])) / (sum by (function_name) (increase(gateway_functions_seconds_count{code="200"}[%[1]s])) > 0)`
)

// Trace is recorded gateway load: for each function, its invocation rate
// (all codes: 200s, 429s and errors, the load that was offered) at each
// step of a range, and its mean successful duration over the range.
type Trace struct {
	// Start and End of the range; Step between samples.
	Start, End time.Time
	Step       time.Duration
	// Functions are the function keys (name.namespace) the gateway
	// reported during the range, sorted.
	Functions []string
	// Rates[key][i] is the mean invocation rate, per second, over
	// (Start+(i-1)·Step, Start+i·Step]; index 0 is before the range.
	// Missing samples are 0.
	Rates map[string][]float64
	// Durations[key] is the mean seconds of a successful invocation over
	// the range, for the functions that had any.
	Durations map[string]float64
}

// ReadTrace reads a trace from Prometheus: the function list from
// gateway_service_count, the invocation rates from
// gateway_function_invocation_total (query_range, rate over one step) and
// the mean durations from gateway_functions_seconds over the whole range.
func ReadTrace(ctx context.Context, o BacktestOptions) (*Trace, error) {
	if o.URL == "" {
		return nil, errors.New("backtest: a Prometheus URL is required")
	}
	if o.Range <= 0 {
		return nil, fmt.Errorf("backtest: range %s: want a positive duration such as 24h", o.Range)
	}
	if o.Step == 0 {
		o.Step = time.Minute
	}
	if o.Step < time.Second || o.Step > o.Range {
		return nil, fmt.Errorf("backtest: step %s: want at least 1s and at most the range %s", o.Step, o.Range)
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	client, err := promapi.NewClient(promapi.Config{Address: o.URL, RoundTripper: o.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("backtest: Prometheus client for %s: %w", o.URL, err)
	}
	api := promv1.NewAPI(client)
	end := o.End.Truncate(o.Step)
	start := end.Add(-o.Range).Truncate(o.Step)
	tr := &Trace{Start: start, End: end, Step: o.Step, Rates: map[string][]float64{}, Durations: map[string]float64{}}
	n := int(end.Sub(start)/o.Step) + 1
	rng := promv1.Range{Start: start, End: end, Step: o.Step}
	window := model.Duration(o.Step).String()

	query := func(what, q string, f func(ctx context.Context) (model.Value, promv1.Warnings, promv1.Infos, error)) (model.Value, error) {
		qctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		v, _, _, err := f(qctx)
		if err != nil {
			return nil, fmt.Errorf("backtest: reading %s from %s with %s: %w", what, o.URL, q, err)
		}
		return v, nil
	}
	rangeQuery := func(what, q string) (model.Matrix, error) {
		v, err := query(what, q, func(ctx context.Context) (model.Value, promv1.Warnings, promv1.Infos, error) {
			return api.QueryRange(ctx, q, rng)
		})
		if err != nil {
			return nil, err
		}
		m, ok := v.(model.Matrix)
		if !ok {
			return nil, fmt.Errorf("backtest: reading %s: want a range vector, got a %s", what, v.Type())
		}
		return m, nil
	}

	fns, err := rangeQuery("the function list", traceFunctionsQuery)
	if err != nil {
		return nil, err
	}
	for _, ss := range fns {
		key := string(ss.Metric["function_name"])
		if !validKey(key) {
			continue
		}
		if _, ok := tr.Rates[key]; !ok {
			tr.Functions = append(tr.Functions, key)
			tr.Rates[key] = make([]float64, n)
		}
	}
	if len(tr.Functions) == 0 {
		return nil, fmt.Errorf("backtest: %s has no gateway_service_count series with a function_name label between %s and %s: is the OpenFaaS gateway scraped?",
			o.URL, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	slices.Sort(tr.Functions)

	rateQ := fmt.Sprintf(traceRateQuery, window)
	rates, err := rangeQuery("the invocation rates", rateQ)
	if err != nil {
		return nil, err
	}
	for _, ss := range rates {
		v, ok := tr.Rates[string(ss.Metric["function_name"])]
		if !ok {
			continue
		}
		for _, p := range ss.Values {
			i := int(p.Timestamp.Time().Sub(start) / o.Step)
			if x := float64(p.Value); i >= 0 && i < n && !math.IsNaN(x) && !math.IsInf(x, 0) && x > 0 {
				v[i] = x
			}
		}
	}

	durQ := fmt.Sprintf(traceDurationQuery, model.Duration(end.Sub(start)).String())
	dv, err := query("the mean durations", durQ, func(ctx context.Context) (model.Value, promv1.Warnings, promv1.Infos, error) {
		return api.Query(ctx, durQ, end)
	})
	if err != nil {
		return nil, err
	}
	vec, ok := dv.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("backtest: reading the mean durations: want an instant vector, got a %s", dv.Type())
	}
	for _, s := range vec {
		key := string(s.Metric["function_name"])
		if x := float64(s.Value); tr.Rates[key] != nil && x > 0 && !math.IsNaN(x) && !math.IsInf(x, 0) {
			tr.Durations[key] = x
		}
	}
	return tr, nil
}

func validKey(key string) bool {
	i := strings.LastIndexByte(key, '.')
	return i > 0 && i < len(key)-1
}

// Rate is key's recorded rate over the step holding t (0 outside the
// range or for an unknown key).
func (t *Trace) Rate(key string, at time.Time) float64 {
	v := t.Rates[key]
	if at.Before(t.Start) || !at.Before(t.End) {
		return 0
	}
	i := int(at.Sub(t.Start)/t.Step) + 1
	if i >= len(v) {
		return 0
	}
	return v[i]
}

// Scenario builds the scenario a backtest simulates: the recorded range
// (start and duration) and functions, with meta's nodes, pod start latency
// and the metadata of the functions it has (tier, schedule, replicas,
// requests, usage). A recorded function meta lacks is a sync function with
// the scenario defaults (the cluster's tier annotations are not in
// Prometheus). The recorded load replaces the scenario's: sync functions
// are offered their recorded rate (see Load) and async functions get their
// recorded invocations as job arrivals, with no bursts of their own; cron
// functions fire on their schedule. Recorded mean durations replace the
// request, run and job durations. Functions of meta absent from the
// recording are left out. It returns the scenario and notes saying what
// was assumed.
func (t *Trace) Scenario(meta *workload.Scenario) (*workload.Scenario, []string, error) {
	s := &workload.Scenario{APIVersion: workload.APIVersion, Kind: workload.Kind, Name: "backtest"}
	byKey := map[string]workload.Function{}
	if meta != nil {
		s.Name = meta.Name + "-backtest"
		s.Description = meta.Description
		s.TimeZone, s.Nodes, s.PodStartLatency = meta.TimeZone, meta.Nodes, meta.PodStartLatency
		for _, f := range meta.Functions {
			byKey[f.Key()] = f
		}
	}
	s.Start = t.Start.UTC().Format(time.RFC3339)
	s.Duration = policy.Duration{Duration: t.End.Sub(t.Start)}
	var notes, defaulted []string
	for _, key := range t.Functions {
		name, ns := key[:strings.LastIndexByte(key, '.')], key[strings.LastIndexByte(key, '.')+1:]
		f, ok := byKey[key]
		if !ok {
			f = workload.Function{Name: name, Namespace: ns, Tier: policy.TierSync}
			defaulted = append(defaulted, key)
		}
		delete(byKey, key)
		dur, known := t.Durations[key]
		d := policy.Duration{Duration: time.Duration(dur * 1e9)}
		switch f.Tier {
		case policy.TierCron:
			if known && d.Duration > 0 {
				c := workload.CronLoad{}
				if f.Cron != nil {
					c = *f.Cron
				}
				c.RunDuration = d
				f.Cron = &c
			}
		case policy.TierAsync:
			a := workload.AsyncLoad{}
			if f.Async != nil {
				a.JobDuration = f.Async.JobDuration
			}
			if known && d.Duration > 0 {
				a.JobDuration = d
			}
			f.Async = &a
		default:
			sl := workload.SyncLoad{}
			if f.Sync != nil {
				sl.RequestDuration = f.Sync.RequestDuration
			}
			if known && d.Duration > 0 {
				sl.RequestDuration = d
			}
			f.Sync = &sl
		}
		s.Functions = append(s.Functions, f)
	}
	if len(defaulted) > 0 {
		notes = append(notes, fmt.Sprintf("%d recorded functions are not in the scenario and are simulated as sync functions with the scenario defaults: %s",
			len(defaulted), strings.Join(defaulted, ", ")))
	}
	if len(byKey) > 0 {
		var left []string
		for k := range byKey {
			left = append(left, k)
		}
		slices.Sort(left)
		notes = append(notes, fmt.Sprintf("%d scenario functions were not recorded and are left out: %s", len(left), strings.Join(left, ", ")))
	}
	s.Default()
	if err := s.Validate(); err != nil {
		return nil, notes, fmt.Errorf("backtest: the scenario built from the recording is invalid: %w", err)
	}
	return s, notes, nil
}

// Load returns the replay of the trace for scenario s (as Scenario built
// it): before each model step, every sync function's offered rate is set
// to its recorded rate for the step's start, and every async function is
// enqueued its recorded invocations of the step (fractions carry over).
func (t *Trace) Load(s *workload.Scenario) Load {
	l := &traceLoad{tr: t, acc: map[string]float64{}}
	for _, f := range s.Functions {
		switch f.Tier {
		case policy.TierSync:
			l.sync = append(l.sync, f.Key())
		case policy.TierAsync:
			l.async = append(l.async, f.Key())
		}
	}
	return l
}

type traceLoad struct {
	tr          *Trace
	sync, async []string
	acc         map[string]float64
}

func (l *traceLoad) Apply(m *workload.Model, from, to time.Time) error {
	for _, k := range l.sync {
		if err := m.SetRate(k, l.tr.Rate(k, from)); err != nil {
			return fmt.Errorf("backtest: replaying %s: %w", k, err)
		}
	}
	dt := to.Sub(from).Seconds()
	for _, k := range l.async {
		l.acc[k] += l.tr.Rate(k, from) * dt
		if n := int(l.acc[k]); n >= 1 {
			if err := m.Enqueue(k, n); err != nil {
				return fmt.Errorf("backtest: replaying %s: %w", k, err)
			}
			l.acc[k] -= float64(n)
		}
	}
	return nil
}

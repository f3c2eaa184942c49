// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
)

func TestGatherMetrics(t *testing.T) {
	fresh := float64(t0.Unix())
	cases := []struct {
		name        string
		set         map[string]model.Vector
		fail        map[string]error
		warn        map[string][]string
		delay       time.Duration
		wantOK      bool
		wantProblem string
		wantResult  map[string]string // query -> result label counted
		check       func(t *testing.T, m *metricSet)
	}{
		{name: "empty input: no functions, no samples", wantOK: true},
		{name: "a function the gateway reports without rate samples had no traffic; without in-flight or pending samples those are unknown",
			set:    map[string]model.Vector{"functions": {fnSample("api.openfaas-fn", fresh)}},
			wantOK: true,
			check: func(t *testing.T, m *metricSet) {
				rej, inv, _, infl, pend := m.function("api.openfaas-fn")
				require.Equal(t, []policy.Metric{policy.Known(0), policy.Known(0), policy.Unknown, policy.Unknown}, []policy.Metric{rej, inv, infl, pend})
			}},
		{name: "explicit zero in-flight and pending samples are known zeros",
			set: map[string]model.Vector{"functions": {fnSample("api.openfaas-fn", fresh)},
				"inflight": {fnSample("api.openfaas-fn", 0)}, "pending": {fnSample("api.openfaas-fn", 0)}},
			wantOK: true,
			check: func(t *testing.T, m *metricSet) {
				_, _, _, infl, pend := m.function("api.openfaas-fn")
				require.Equal(t, []policy.Metric{policy.Known(0), policy.Known(0)}, []policy.Metric{infl, pend})
			}},
		{name: "a function the gateway does not report has unknown metrics",
			set:    map[string]model.Vector{"functions": {fnSample("api.openfaas-fn", fresh)}},
			wantOK: true,
			check: func(t *testing.T, m *metricSet) {
				rej, _, _, infl, _ := m.function("other.openfaas-fn")
				require.False(t, rej.Known)
				require.False(t, infl.Known)
			}},
		{name: "values are joined by function_name and by namespace/pod",
			set: map[string]model.Vector{
				"functions":  {fnSample("api.openfaas-fn", fresh)},
				"rejections": {fnSample("api.openfaas-fn", 2.5)},
				"inflight":   {fnSample("api.openfaas-fn", -0.0001)},
				"cpu":        {podSample("openfaas-fn", "api-1", 0.4)},
			},
			wantOK: true,
			check: func(t *testing.T, m *metricSet) {
				rej, _, _, infl, _ := m.function("api.openfaas-fn")
				require.Equal(t, policy.Known(2.5), rej)
				require.Equal(t, policy.Known(0), infl, "a counter race reads as zero in flight")
				cpu, mem := m.pod("openfaas-fn", "api-1")
				require.Equal(t, policy.Known(0.4), cpu)
				require.False(t, mem.Known)
			}},
		{name: "a sample without function_name makes the result invalid",
			set:         map[string]model.Vector{"rejections": {&model.Sample{Metric: model.Metric{"job": "gw"}, Value: 1}}},
			wantProblem: "lacks a function_name label",
			wantResult:  map[string]string{"rejections": "invalid"}},
		{name: "a function_name that is not name.namespace is invalid",
			set:         map[string]model.Vector{"pending": {fnSample("api", 1)}},
			wantProblem: "of the form name.namespace",
			wantResult:  map[string]string{"pending": "invalid"}},
		{name: "a pod sample without namespace and pod is invalid",
			set:         map[string]model.Vector{"memory": {fnSample("api.openfaas-fn", 1)}},
			wantProblem: "lacks the namespace and pod labels",
			wantResult:  map[string]string{"memory": "invalid"}},
		{name: "NaN is invalid",
			set:         map[string]model.Vector{"invocations": {fnSample("api.openfaas-fn", math.NaN())}},
			wantProblem: "out of range",
			wantResult:  map[string]string{"invocations": "invalid"}},
		{name: "a negative rate is invalid",
			set:         map[string]model.Vector{"rejections": {fnSample("api.openfaas-fn", -1)}},
			wantProblem: "out of range"},
		{name: "two samples for one function are invalid",
			set:         map[string]model.Vector{"rejections": {fnSample("api.openfaas-fn", 1), fnSample("api.openfaas-fn", 2)}},
			wantProblem: "more than one sample for api.openfaas-fn"},
		{name: "a result with warnings is partial: its values are read, and the set is marked partial",
			set:         map[string]model.Vector{"functions": {fnSample("api.openfaas-fn", fresh)}, "inflight": {fnSample("api.openfaas-fn", 3)}},
			warn:        map[string][]string{"inflight": {"store 2 of 3 did not answer"}},
			wantOK:      true,
			wantProblem: "query inflight answered with warnings (a partial answer): store 2 of 3 did not answer",
			wantResult:  map[string]string{"inflight": "warnings", "functions": "success"},
			check: func(t *testing.T, m *metricSet) {
				require.True(t, m.partial)
				_, _, _, infl, _ := m.function("api.openfaas-fn")
				require.Equal(t, policy.Known(3), infl)
			}},
		{name: "a query error fails static",
			fail:        map[string]error{"cpu": errors.New("server error")},
			wantProblem: "query cpu: server error",
			wantResult:  map[string]string{"cpu": "error", "memory": "success"}},
		{name: "a slow Prometheus times out",
			delay:       200 * time.Millisecond,
			wantProblem: "no answer within 50ms",
			wantResult:  map[string]string{"functions": "timeout"}},
		{name: "stale gateway data fails static",
			set:         map[string]model.Vector{"functions": {fnSample("api.openfaas-fn", float64(t0.Add(-3*time.Minute).Unix()))}},
			wantProblem: "the newest gateway sample is 3m0s old, over maxStaleness 2m0s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			p.Prometheus.Timeout = policy.Duration{Duration: 50 * time.Millisecond}
			q := newFakeQuerier(p)
			for k, v := range tc.set {
				q.set(k, v)
			}
			for k, err := range tc.fail {
				q.fail(k, err)
			}
			for k, w := range tc.warn {
				q.warn(k, w...)
			}
			q.delay = tc.delay
			m := NewMetrics(prometheus.NewRegistry())
			set := gatherMetrics(context.Background(), q, p, t0, m)
			require.Equal(t, 8, q.callCount(), "one query per policy query, every cycle")
			require.Equal(t, tc.wantOK, set.available, "problems: %v", set.problems)
			if tc.wantProblem != "" {
				require.Contains(t, set.problems[0], tc.wantProblem)
			}
			for query, result := range tc.wantResult {
				require.Equal(t, 1.0, testutil.ToFloat64(m.Queries.WithLabelValues(query, result)), "%s %s", query, result)
			}
			if !set.available {
				rej, _, _, _, _ := set.function("api.openfaas-fn")
				require.False(t, rej.Known, "nothing is known while metrics are unavailable")
			}
			if tc.warn == nil {
				require.False(t, set.partial)
			}
			if tc.check != nil {
				tc.check(t, set)
			}
		})
	}
}

// A usage signal turned off in the policy is not queried (signals.cpu,
// signals.memory: a Prometheus without cadvisor).
func TestSignalsOffAreNotQueried(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cpu, mem bool
		want     int
	}{
		{"both on", true, true, 8},
		{"cpu off", false, true, 7},
		{"both off", false, false, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			p.Signals.CPU, p.Signals.Memory = &tc.cpu, &tc.mem
			q := newFakeQuerier(p)
			set := gatherMetrics(context.Background(), q, p, time.Now(), NewMetrics(prometheus.NewRegistry()))
			require.Equal(t, tc.want, q.calls)
			require.True(t, set.available, "%v", set.problems)
		})
	}
}

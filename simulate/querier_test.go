// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// vectorOf indexes a vector by its function_name, or namespace/pod.
func vectorOf(v model.Vector) map[string]float64 {
	out := map[string]float64{}
	for _, s := range v {
		if fn, ok := s.Metric["function_name"]; ok {
			out[string(fn)] = float64(s.Value)
		} else {
			out[string(s.Metric["namespace"])+"/"+string(s.Metric["pod"])] = float64(s.Value)
		}
	}
	return out
}

func TestQuerierMatchesTheModel(t *testing.T) {
	s := scenario(t, "nodes: {count: 2, cpu: \"4\", memory: 8Gi}",
		// 10 rps of 200ms on one replica of 10 slots: 2 in flight, no 429.
		fn("calm", "sync", "100m", "64Mi", 1, "maxInflight: 10\nusage: {pod: {cpu: 2m, memory: 16Mi}, perRequest: {cpu: 10m, memory: 1Mi}}\nsync: {rate: 10, requestDuration: 200ms}"),
		// 100 rps of 100ms on one replica of 2 slots: 20 rps accepted, 80 refused.
		fn("busy", "sync", "100m", "64Mi", 1, "maxInflight: 2\nsync: {rate: 100, requestDuration: 100ms}"),
		// 25 jobs at 30s, no replica: 25 pending.
		fn("queue", "async", "100m", "64Mi", 0, "async: {bursts: [{every: 1h, jobs: 25, first: 30s}]}"),
		// A synchronous cron function: no pending series.
		fn("tick", "cron", "100m", "64Mi", 1, `schedule: "0 * * * *"`),
	)
	clk := &clock{now: t0}
	c, err := NewCluster(s, ClusterOptions{Now: clk.Now})
	require.NoError(t, err)
	m := workload.NewModel(s, 1)
	p := policy.Default()
	q, err := NewQuerier(p, m, c, QuerierOptions{})
	require.NoError(t, err)
	m.Step(t0, 0, nil)
	q.Record(t0)
	for at := t0; at.Before(t0.Add(2 * time.Minute)); at = at.Add(5 * time.Second) {
		m.Step(at, 5*time.Second, c.ReadyCounts())
		q.Record(at.Add(5 * time.Second))
	}
	now := t0.Add(2 * time.Minute)
	get := func(expr string) map[string]float64 {
		v, _, err := q.Query(context.Background(), expr, now)
		require.NoError(t, err)
		return vectorOf(v)
	}
	cases := []struct {
		name  string
		expr  string
		want  map[string]float64
		delta float64
	}{
		// Only the functions with a 429 series: the gateway creates it at
		// the first 429.
		{"rejections per second", p.Queries.Rejections, map[string]float64{"busy.openfaas-fn": 80}, 0.01},
		// The gateway ran before: every function has its 200 series, but
		// the query's "> 0" drops the functions without invocations.
		{"invocations per second, 429s included", p.Queries.Invocations, map[string]float64{"calm.openfaas-fn": 10, "busy.openfaas-fn": 100}, 0.01},
		{"mean duration of the functions that completed work", p.Queries.Duration, map[string]float64{"calm.openfaas-fn": 0.2, "busy.openfaas-fn": 0.1}, 1e-9},
		{"peak in flight", p.Queries.Inflight, map[string]float64{"calm.openfaas-fn": 2, "busy.openfaas-fn": 2, "queue.openfaas-fn": 0, "tick.openfaas-fn": 0}, 1e-6},
		{"pending of queued functions only", p.Queries.Pending, map[string]float64{"queue.openfaas-fn": 25}, 0},
		{"CPU per Ready pod", p.Queries.CPU, map[string]float64{"openfaas-fn/calm-1": 0.022, "openfaas-fn/busy-1": 0.022, "openfaas-fn/tick-1": 0.002}, 1e-6},
		{"memory per Ready pod", p.Queries.Memory, map[string]float64{"openfaas-fn/calm-1": 18 << 20, "openfaas-fn/busy-1": 18 << 20, "openfaas-fn/tick-1": 16 << 20}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := get(tc.expr)
			require.Len(t, got, len(tc.want), "%v", got)
			for k, v := range tc.want {
				assert.InDelta(t, v, got[k], tc.delta, k)
			}
		})
	}
	t.Run("functions: every function at the scrape time", func(t *testing.T) {
		got := get(p.Queries.Functions)
		assert.Len(t, got, 4)
		assert.InDelta(t, float64(now.Unix()), got["calm.openfaas-fn"], 1e-3)
	})
	t.Run("figures agree with the vectors", func(t *testing.T) {
		f, ok := q.Figures("busy.openfaas-fn", now)
		require.True(t, ok)
		assert.InDelta(t, 80, f.Rejections, 0.01)
		assert.False(t, f.PendingKnown)
	})
	t.Run("a query that is not the policy's is an error naming it", func(t *testing.T) {
		_, _, err := q.Query(context.Background(), "up", now)
		assert.ErrorContains(t, err, `not "up"`)
	})
}

func TestQuerierWindowAndNewPods(t *testing.T) {
	// A pod Ready for less than two samples has memory but no CPU sample.
	s := scenario(t, "nodes: {count: 1}\npodStartLatency: 2s", fn("w", "sync", "100m", "64Mi", 1, "sync: {rate: 1}"))
	clk := &clock{now: t0}
	c, err := NewCluster(s, ClusterOptions{Now: clk.Now})
	require.NoError(t, err)
	m := workload.NewModel(s, 1)
	q, err := NewQuerier(policy.Default(), m, c, QuerierOptions{})
	require.NoError(t, err)
	m.Step(t0, 0, nil)
	q.Record(t0)
	advance := func(to time.Time) {
		for at := m.Now(); at.Before(to); at = at.Add(5 * time.Second) {
			m.Step(at, 5*time.Second, c.ReadyCounts())
			q.Record(at.Add(5 * time.Second))
			c.Advance(at.Add(5 * time.Second))
		}
	}
	advance(t0.Add(time.Minute))
	clk.now = t0.Add(time.Minute)
	require.NoError(t, c.Scale(context.Background(), c.Deployment("w.openfaas-fn"), 1, 2))
	advance(t0.Add(time.Minute + 5*time.Second))
	p := policy.Default()
	at := t0.Add(time.Minute + 5*time.Second)
	cpu, _, err := q.Query(context.Background(), p.Queries.CPU, at)
	require.NoError(t, err)
	mem, _, err := q.Query(context.Background(), p.Queries.Memory, at)
	require.NoError(t, err)
	assert.Contains(t, vectorOf(cpu), "openfaas-fn/w-1")
	assert.NotContains(t, vectorOf(cpu), "openfaas-fn/w-2", "one sample only: rate has nothing yet")
	assert.Contains(t, vectorOf(mem), "openfaas-fn/w-2")
	advance(t0.Add(time.Minute + 10*time.Second))
	cpu, _, err = q.Query(context.Background(), p.Queries.CPU, t0.Add(time.Minute+10*time.Second))
	require.NoError(t, err)
	assert.Contains(t, vectorOf(cpu), "openfaas-fn/w-2")
}

func TestQuerierRefusesAnInflightRangeItCannotHold(t *testing.T) {
	p := policy.Default()
	p.Queries.Inflight = `max_over_time((sum by (function_name) (gateway_function_invocation_started))[20y:5s])`
	_, err := NewQuerier(p, workload.NewModel(&workload.Scenario{}, 1), nil, QuerierOptions{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "queries.inflight looks back")
}

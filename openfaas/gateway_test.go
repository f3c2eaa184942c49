// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

const fn = "nightly.openfaas-fn"

// seriesOf returns every replica's series of key, by pod.
func seriesOf(g *Gateway, key string) map[string]Series {
	out := map[string]Series{}
	g.Each(key, func(r Replica, s Series) { out[r.Pod] = s })
	return out
}

func TestGatewaySeriesLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		// steps are applied in order to a one-replica gateway.
		steps []Counters
		// restartBefore restarts the gateway before that step (-1: never).
		restartBefore int
		want          Series
	}{
		{name: "never invoked: no series at all", steps: []Counters{{}}, restartBefore: -1, want: Series{}},
		{name: "first start: started only, no _total",
			steps: []Counters{{Started: 1}}, restartBefore: -1,
			want: Series{Started: 1, HasStarted: true}},
		{name: "first completion creates the 200 series only",
			steps: []Counters{{Started: 1}, {Started: 1, Completed: 1}}, restartBefore: -1,
			want: Series{Started: 1, HasStarted: true, Completed: 1, HasCompleted: true}},
		{name: "a rejection creates the 429 series",
			steps: []Counters{{Started: 2, Rejected: 1}}, restartBefore: -1,
			want: Series{Started: 2, HasStarted: true, Rejected: 1, HasRejected: true}},
		{name: "a failed held request creates the 502 series",
			steps: []Counters{{Started: 1, Failed: 1}}, restartBefore: -1,
			want: Series{Started: 1, HasStarted: true, Failed: 1, HasFailed: true}},
		{name: "a restart resets everything to nothing",
			steps: []Counters{{Started: 5, Completed: 4, Rejected: 1}, {Started: 5, Completed: 4, Rejected: 1}}, restartBefore: 1,
			want: Series{}},
		{name: "a run in flight at the restart completes unseen",
			steps: []Counters{{Started: 3, Completed: 2}, {Started: 3, Completed: 3}}, restartBefore: 1,
			want: Series{}},
		{name: "restart, then a long run starts: started 1 and no _total (issue 10 item 1)",
			steps: []Counters{{Started: 3, Completed: 3}, {Started: 4, Completed: 3}}, restartBefore: 1,
			want: Series{Started: 1, HasStarted: true}},
		{name: "restart with a run in flight, then a new run: the old completion is not the new one's",
			steps: []Counters{{Started: 3, Completed: 2}, {Started: 4, Completed: 3}}, restartBefore: 1,
			want: Series{Started: 1, HasStarted: true}},
		{name: "after the restart, the new run completes",
			steps: []Counters{{Started: 3, Completed: 2}, {Started: 4, Completed: 4}}, restartBefore: 1,
			want: Series{Started: 1, HasStarted: true, Completed: 1, HasCompleted: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGateway(1, t0)
			for i, c := range tc.steps {
				if i == tc.restartBefore {
					require.NoError(t, g.Restart(0, t0.Add(time.Minute)))
				}
				g.Observe(fn, c)
			}
			got := seriesOf(g, fn)
			require.Len(t, got, 1)
			assert.Equal(t, tc.want, got["gateway-0"])
		})
	}
}

func TestGatewayReplicasRouteRoundRobin(t *testing.T) {
	g := NewGateway(2, t0)
	assert.Equal(t, []Replica{{ID: 0, Pod: "gateway-0", Start: t0}, {ID: 1, Pod: "gateway-1", Start: t0}}, g.Replicas())
	// Three runs started, the first two completed: runs 0 and 2 went
	// through gateway-0, run 1 through gateway-1.
	g.Observe(fn, Counters{Started: 3, Completed: 2})
	s := seriesOf(g, fn)
	assert.Equal(t, Series{Started: 2, HasStarted: true, Completed: 1, HasCompleted: true}, s["gateway-0"])
	assert.Equal(t, Series{Started: 1, HasStarted: true, Completed: 1, HasCompleted: true}, s["gateway-1"])

	// gateway-1 restarts: gateway-0 keeps its counters; run 3 goes to
	// gateway-1 and is the only thing it has.
	require.NoError(t, g.Restart(1, t0.Add(time.Minute)))
	g.Observe(fn, Counters{Started: 4, Completed: 3})
	s = seriesOf(g, fn)
	assert.Equal(t, Series{Started: 2, HasStarted: true, Completed: 2, HasCompleted: true}, s["gateway-0"])
	assert.Equal(t, Series{Started: 1, HasStarted: true}, s["gateway-1"])
	assert.Equal(t, 1, g.Replicas()[1].Restarts)

	assert.ErrorContains(t, g.Restart(2, t0), "gateway replica 2: want 0 to 1")
	assert.ErrorContains(t, g.SetReplicas(0, t0), "want at least 1")
}

func TestGatewayFluidSplit(t *testing.T) {
	g := NewGateway(2, t0)
	g.Observe(fn, Counters{Started: 10.5, Completed: 7.25, Rejected: 0})
	s := seriesOf(g, fn)
	assert.InDelta(t, 5.5, s["gateway-0"].Started, 1e-12)
	assert.InDelta(t, 5, s["gateway-1"].Started, 1e-12)
	assert.InDelta(t, 7.25, s["gateway-0"].Completed+s["gateway-1"].Completed, 1e-12)
}

func TestGatewayScaling(t *testing.T) {
	g := NewGateway(1, t0)
	g.Observe(fn, Counters{Started: 3, Completed: 1}) // 2 in flight through gateway-0
	require.NoError(t, g.SetReplicas(2, t0.Add(time.Minute)))
	g.Observe(fn, Counters{Started: 5, Completed: 3}) // the old 2 completed; 2 new, one each
	s := seriesOf(g, fn)
	assert.Equal(t, Series{Started: 4, HasStarted: true, Completed: 3, HasCompleted: true}, s["gateway-0"])
	assert.Equal(t, Series{Started: 1, HasStarted: true}, s["gateway-1"], "a new replica starts with nothing")

	// Back to one: gateway-1 goes with its series and its run in flight.
	require.NoError(t, g.SetReplicas(1, t0.Add(2*time.Minute)))
	g.Observe(fn, Counters{Started: 6, Completed: 5})
	s = seriesOf(g, fn)
	require.Len(t, s, 1)
	assert.Equal(t, Series{Started: 5, HasStarted: true, Completed: 4, HasCompleted: true}, s["gateway-0"],
		"gateway-0 counts its own run and the new one; gateway-1's completion is lost")
	require.NoError(t, g.SetReplicas(1, t0), "no change")
	require.NoError(t, g.SetReplicas(3, t0.Add(3*time.Minute)))
	assert.Equal(t, "gateway-3", g.Replicas()[2].Pod, "replica IDs are never reused")
}

func TestGatewayServiceCount(t *testing.T) {
	g := NewGateway(2, t0)
	services := func() map[string]map[string]int32 {
		out := map[string]map[string]int32{}
		g.Services(func(r Replica, d map[string]int32) { out[r.Pod] = d })
		return out
	}
	desired := map[string]int32{fn: 2, "api.openfaas-fn": 0}
	g.Poll(t0.Add(4*time.Second), desired)
	assert.Empty(t, services(), "nothing before the first poll, an interval after the start")
	g.Poll(t0.Add(5*time.Second), desired)
	assert.Equal(t, map[string]map[string]int32{"gateway-0": desired, "gateway-1": desired}, services())

	require.NoError(t, g.Restart(0, t0.Add(7*time.Second)))
	g.Poll(t0.Add(10*time.Second), desired)
	assert.Equal(t, []string{"gateway-1"}, keys(services()), "the restarted replica has not polled yet")
	g.Poll(t0.Add(12*time.Second), desired)
	assert.Len(t, services(), 2)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGatewayInvariants drives random counters, restarts and scalings and
// checks what must hold whatever happens: without a restart or a scaling
// the replicas' series add up to the function's counters; a replica never
// completes more than it started; a series exists exactly when positive.
func TestGatewayInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		g := NewGateway(1+rng.IntN(3), t0)
		var c Counters
		disturbed := false
		at := t0
		for range 50 {
			at = at.Add(time.Second)
			// Start some, complete some in order, reject and fail some.
			inflight := c.accepted() - c.Completed
			c.Completed += math.Floor(rng.Float64() * (inflight + 1))
			c.Completed = math.Min(c.Completed, c.accepted())
			n := float64(rng.IntN(4))
			if rng.IntN(3) == 0 {
				n += rng.Float64()
			}
			rej := float64(rng.IntN(2))
			fail := float64(rng.IntN(2) * rng.IntN(2))
			c.Started += n + rej + fail
			c.Rejected += rej
			c.Failed += fail
			g.Observe(fn, c)
			switch rng.IntN(20) {
			case 0:
				require.NoError(t, g.Restart(rng.IntN(len(g.Replicas())), at))
				disturbed = true
			case 1:
				require.NoError(t, g.SetReplicas(1+rng.IntN(3), at))
				disturbed = true
			}
			var sum Series
			g.Each(fn, func(r Replica, s Series) {
				assert.Equal(t, s.Started > 0, s.HasStarted, "run %d", run)
				assert.Equal(t, s.Completed > 0, s.HasCompleted, "run %d", run)
				assert.Equal(t, s.Rejected > 0, s.HasRejected, "run %d", run)
				assert.LessOrEqual(t, s.Completed+s.Rejected+s.Failed, s.Started+1e-9, "run %d: %s completes more than it started", run, r.Pod)
				sum.Started += s.Started
				sum.Completed += s.Completed
				sum.Rejected += s.Rejected
				sum.Failed += s.Failed
			})
			if !disturbed {
				assert.InDelta(t, c.Started, sum.Started, 1e-9, "run %d", run)
				assert.InDelta(t, c.Completed, sum.Completed, 1e-9, "run %d", run)
				assert.InDelta(t, c.Rejected, sum.Rejected, 1e-9, "run %d", run)
				assert.InDelta(t, c.Failed, sum.Failed, 1e-9, "run %d", run)
			}
			assert.LessOrEqual(t, sum.Started, c.Started+1e-9)
		}
	}
}

func TestGatewayWarm(t *testing.T) {
	g := NewGateway(2, t0)
	g.Warm(fn)
	g.Observe(fn, Counters{})
	s := seriesOf(g, fn)
	assert.Equal(t, Series{HasStarted: true, HasCompleted: true}, s["gateway-0"], "the started and 200 series exist, at the counts since")
	assert.Equal(t, Series{HasStarted: true, HasCompleted: true}, s["gateway-1"])
	require.NoError(t, g.Restart(1, t0.Add(time.Minute)))
	require.NoError(t, g.SetReplicas(3, t0.Add(time.Minute)))
	g.Observe(fn, Counters{Started: 1})
	s = seriesOf(g, fn)
	assert.Equal(t, Series{Started: 1, HasStarted: true, HasCompleted: true}, s["gateway-0"])
	assert.Equal(t, Series{}, s["gateway-1"], "a restarted replica starts with nothing")
	assert.Equal(t, Series{}, s["gateway-2"], "so does a new one")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// hangingCluster hangs every Scale of the functions named in hang until its
// context ends, as a write to an API server that stopped answering does
// (rest.Config.Timeout is 0 by default).
type hangingCluster struct {
	*fakeCluster
	hang map[string]bool
}

func (c *hangingCluster) Scale(ctx context.Context, d *appsv1.Deployment, from, to int32) error {
	if c.hang[d.Name] {
		c.mu.Lock()
		c.calls = append(c.calls, "hung scale "+d.Name)
		c.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	return c.fakeCluster.Scale(ctx, d, from, to)
}

// TestAHungWriteDoesNotStallTheCycle: every cycle is bounded by a deadline,
// and every write by its own, shorter one: a hung scale patch fails, the
// cycle's other actions go ahead, and the cycle ends.
func TestAHungWriteDoesNotStallTheCycle(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2), deployment("web", 2)}, bigNode(), func(o *Options) {
		o.CycleTimeout, o.WriteTimeout = 2*time.Second, 50*time.Millisecond
	})
	hc := &hangingCluster{fakeCluster: h.cl, hang: map[string]bool{"api": true}}
	h.c.o.Cluster = hc
	h.burst("api", 10, 20, 8)
	h.q.set("rejections", append(h.q.results["rejections"], fnSample("web.openfaas-fn", 10)))
	h.q.set("invocations", append(h.q.results["invocations"], fnSample("web.openfaas-fn", 20)))
	h.q.set("inflight", append(h.q.results["inflight"], fnSample("web.openfaas-fn", 8)))

	done := make(chan *Result, 1)
	go func() { done <- h.reconcile() }()
	select {
	case res := <-done:
		require.Len(t, res.Applied, 1, "web's scale-up went ahead")
		require.Equal(t, "web", res.Applied[0].Function)
	case <-time.After(10 * time.Second):
		t.Fatal("a hung write stalled the cycle")
	}
	require.Contains(t, h.cl.allCalls(), "hung scale api")
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.PatchErrors.WithLabelValues("timeout")))
}

// TestACycleIsBoundedByItsDeadline: when the cycle's own deadline passes,
// the remaining writes are not attempted and the cycle is counted as timed
// out; the loop goes on.
func TestACycleIsBoundedByItsDeadline(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2), deployment("web", 2)}, bigNode(), func(o *Options) {
		o.CycleTimeout, o.WriteTimeout = 100*time.Millisecond, time.Minute
	})
	h.c.o.Cluster = &hangingCluster{fakeCluster: h.cl, hang: map[string]bool{"api": true, "web": true}}
	h.burst("api", 10, 20, 8)
	h.q.set("rejections", append(h.q.results["rejections"], fnSample("web.openfaas-fn", 10)))
	h.q.set("invocations", append(h.q.results["invocations"], fnSample("web.openfaas-fn", 20)))
	h.q.set("inflight", append(h.q.results["inflight"], fnSample("web.openfaas-fn", 8)))
	start := time.Now()
	res := h.reconcile()
	require.Less(t, time.Since(start), 5*time.Second)
	require.Empty(t, res.Applied)
	require.Len(t, h.cl.allCalls(), 1, "after the first write hung until the deadline, the second is not attempted")
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Reconciles.WithLabelValues("timeout")))
}

// TestAStuckLeaderIsUnhealthy: /healthz fails while this process leads and
// no cycle has finished for three intervals plus the cycle timeout; a
// follower is healthy.
func TestAStuckLeaderIsUnhealthy(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 1)}, bigNode(), func(o *Options) { o.CycleTimeout = 10 * time.Second })
	require.NoError(t, h.c.Healthy(), "a follower is healthy")
	h.c.startLeading()
	require.NoError(t, h.c.Healthy(), "a new leader has time for its first cycle")
	h.reconcile()
	require.Equal(t, float64(t0.Unix()), testutil.ToFloat64(h.m.LastReconcile))
	h.now = h.now.Add(3*h.p.Interval.Duration + 10*time.Second)
	require.NoError(t, h.c.Healthy())
	h.c.watch()
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.Stalled))

	h.now = h.now.Add(time.Second)
	err := h.c.Healthy()
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "no reconcile cycle has finished for 56s"), err.Error())
	h.c.watch()
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Stalled))

	h.reconcile()
	require.NoError(t, h.c.Healthy())
	h.c.watch()
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.Stalled))
}

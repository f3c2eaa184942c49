// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// redeploy does what faas-netes does on faas-cli deploy: it sets replicas
// to com.openfaas.scale.min (here min) and replaces the annotations of the
// Deployment and its pod template with the function's own.
func (c *fakeCluster) redeploy(name string, min int32, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Deployments {
		d := &c.st.Deployments[i]
		if d.Name != name {
			continue
		}
		keep := map[string]string{}
		for _, k := range []string{"tierscaler.io/tier", "topic", "schedule"} {
			if v, ok := d.Annotations[k]; ok {
				keep[k] = v
			}
		}
		keep["com.openfaas.function.version"] = version
		d.Annotations = keep
		d.Spec.Template.Annotations = map[string]string{"com.openfaas.function.version": version}
		d.Spec.Replicas = &min
		d.Generation++
	}
}

// TestLegitimateReplicaChangesAreNotReverts: only a change back toward the
// old count, with no demand, not by a redeploy, and repeated, is a provider
// revert; a function with work is never held (issue 10 item 14, issue 11).
func TestLegitimateReplicaChangesAreNotReverts(t *testing.T) {
	idleJobs := func() appsv1.Deployment {
		return deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T10:00:00Z"))
	}
	cases := []struct {
		name string
		deps []appsv1.Deployment
		// first is the cycle in which tierscaler scales; then change is what
		// another actor does, and after describes the cycles that follow.
		first  func(h *harness)
		change func(h *harness)
		// settles: the change is judged a cycle later, the function held
		// meanwhile.
		settles bool
		after   func(t *testing.T, h *harness)
	}{
		{
			name: "scale from zero with queued work",
			deps: []appsv1.Deployment{idleJobs()},
			change: func(h *harness) {
				// The gateway's scale-from-zero: an invocation of jobs at
				// zero, and 200 messages queued behind it.
				h.cl.setReplicas("jobs", 1)
				h.q.set("pending", model.Vector{fnSample("jobs.openfaas-fn", 200)})
			},
			after: func(t *testing.T, h *harness) {
				require.Equal(t, []string{"scale jobs 1->0", "scale jobs 1->20"}, h.cl.scaleCalls(), "replicas follow the queue")
			},
		},
		{
			name: "scale from zero whose demand Prometheus shows a cycle later",
			deps: []appsv1.Deployment{idleJobs()},
			change: func(h *harness) {
				h.cl.setReplicas("jobs", 1)
			},
			settles: true,
			after: func(t *testing.T, h *harness) {
				require.Equal(t, []string{"scale jobs 1->0"}, h.cl.scaleCalls(), "not zeroed again before the demand could show")
				h.q.set("inflight", model.Vector{fnSample("jobs.openfaas-fn", 1)})
				h.q.set("pending", model.Vector{fnSample("jobs.openfaas-fn", 30)})
				h.now = h.now.Add(15 * time.Second)
				h.reconcile()
				require.Equal(t, []string{"scale jobs 1->0", "scale jobs 1->3"}, h.cl.scaleCalls())
			},
		},
		{
			name: "a faas-cli deploy that resets replicas to the minimum",
			deps: []appsv1.Deployment{idleJobs()},
			change: func(h *harness) {
				h.cl.redeploy("jobs", 1, "2")
			},
			after: func(t *testing.T, h *harness) {
				require.Equal(t, []string{"scale jobs 1->0"}, h.cl.scaleCalls()[:1])
			},
		},
		{
			name: "another controller scales past what tierscaler set",
			deps: []appsv1.Deployment{deployment("api", 2)},
			first: func(h *harness) {
				h.burst("api", 10, 20, 8)
			},
			change: func(h *harness) {
				// The burst is over; an HPA scales api to 9.
				h.q.set("rejections", nil)
				h.q.set("invocations", nil)
				h.q.set("inflight", nil)
				h.cl.setReplicas("api", 9)
			},
			after: func(t *testing.T, h *harness) {
				require.Equal(t, "scale api 2->6", h.cl.scaleCalls()[0])
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.deps, bigNode())
			if tc.first != nil {
				tc.first(h)
			}
			h.reconcile()
			require.Len(t, h.cl.scaleCalls(), 1)
			tc.change(h)
			h.now = h.now.Add(15 * time.Second)
			h.reconcile()
			if tc.settles {
				require.Equal(t, "held", h.c.Status().Functions[0].State, "held while the change settles")
			} else {
				require.NotEqual(t, "held", h.c.Status().Functions[0].State, "judged at once: not a revert")
				for k, e := range h.c.expect {
					require.True(t, e.settling.IsZero(), "%s: the change is judged at once", k)
				}
			}
			tc.after(t, h)
			require.Empty(t, h.c.reversals, "not even one reversal")
			for range 8 {
				h.now = h.now.Add(15 * time.Second)
				h.reconcile()
			}
			name := tc.deps[0].Name
			require.NotContains(t, h.rec.reasons(name), EventProviderReverted)
			require.Equal(t, 0, testutil.CollectAndCount(h.m.ProviderReverts))
			require.NotEqual(t, "held", h.c.Status().Functions[0].State)
		})
	}
}

// TestOpenFaaSCEIsDetectedAndNotFought: OpenFaaS CE's provider puts 0 back
// to 1 and caps at 5. tierscaler tries twice, then reports it (a Warning
// event, the metric, a log line) and leaves the function alone, while it
// goes on scaling the others; a held function that gets work is scaled.
func TestOpenFaaSCEIsDetectedAndNotFought(t *testing.T) {
	t.Run("zero is put back to one", func(t *testing.T) {
		deps := []appsv1.Deployment{
			deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T10:00:00Z")),
			deployment("api", 2),
		}
		h := newHarness(t, deps, bigNode())
		ceProvider(h, "jobs", 40)
		require.Equal(t, []string{"scale jobs 1->0", "scale jobs 1->0"}, h.cl.scaleCalls(), "two attempts, then no more")
		require.Equal(t, []string{EventZeroedIdle, EventZeroedIdle, EventProviderReverted}, h.rec.reasons("jobs"))
		require.Equal(t, 1.0, testutil.ToFloat64(h.m.ProviderReverts.WithLabelValues("jobs.openfaas-fn")))
		require.Equal(t, "held", statusOf(h, "jobs.openfaas-fn").State)

		// Other functions are still scaled.
		h.burst("api", 10, 20, 8)
		h.reconcile()
		require.Equal(t, "scale api 2->6", h.cl.scaleCalls()[2])

		// The held function gets work: it is scaled for it.
		h.q.set("pending", model.Vector{fnSample("jobs.openfaas-fn", 40)})
		h.now = h.now.Add(15 * time.Second)
		h.reconcile()
		require.Equal(t, "scale jobs 1->4", h.cl.scaleCalls()[3])
	})
	t.Run("more than five is capped at five", func(t *testing.T) {
		h := newHarness(t, []appsv1.Deployment{deployment("api", 2)}, bigNode())
		h.burst("api", 10, 20, 8)
		for range 20 {
			h.reconcile()
			if h.cl.replicas("api") > 5 {
				h.cl.setReplicas("api", 5)
			}
			h.now = h.now.Add(15 * time.Second)
		}
		require.Equal(t, []string{"scale api 2->6", "scale api 5->6"}, h.cl.scaleCalls(), "two attempts, then no more")
		require.Equal(t, []string{EventScaledUp, EventScaledUp, EventProviderReverted}, h.rec.reasons("api"))
	})
}

func statusOf(h *harness, key string) FunctionStatus {
	for _, f := range h.c.Status().Functions {
		if f.Function == key {
			return f
		}
	}
	h.t.Fatalf("no status for %s", key)
	return FunctionStatus{}
}

// ceProvider runs cycles (15s apart) with OpenFaaS CE's provider putting
// name back to 1 whenever tierscaler zeroes it.
func ceProvider(h *harness, name string, cycles int) {
	for range cycles {
		h.reconcile()
		if h.cl.replicas(name) == 0 {
			h.cl.setReplicas(name, 1) // the CE provider's Deployment watcher
		}
		h.now = h.now.Add(15 * time.Second)
	}
}

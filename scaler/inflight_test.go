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

// TestAnInflightFigureThatFallsToZeroWithoutACompletionIsUnknown: a gateway
// restart resets its counters: a cron run that goes on reads 0 in flight
// (or nothing) although no completion was seen. That is a reset, not a
// finished run: in-flight is unknown, and the function is neither zeroed
// nor evicted, until a completion is seen or the bound passes (twice the
// learned duration, at least the grace period; an hour when no duration was
// ever learned). Issue 10 item 1, the controller's side.
func TestAnInflightFigureThatFallsToZeroWithoutACompletionIsUnknown(t *testing.T) {
	cases := []struct {
		name string
		// learned is a mean duration seen before the run (0: none).
		learned time.Duration
		// restart is what the in-flight query answers after the restart:
		// 0, or nothing (-1).
		restart float64
		// completion: the invocation rate shows a completion after the
		// restart (the run finished as far as the gateway knows).
		completion bool
		// wantZeroedAfter: the run is zeroed after this long, and not
		// before.
		wantZeroedAfter time.Duration
	}{
		{name: "falls to zero with no completion and no learned duration: held for an hour", restart: 0, wantZeroedAfter: time.Hour},
		{name: "becomes absent, then zero: held for an hour", restart: -1, wantZeroedAfter: time.Hour},
		{name: "falls to zero with a learned duration of 20m: held for twice it", learned: 20 * time.Minute, restart: 0, wantZeroedAfter: 40 * time.Minute},
		{name: "falls to zero with a learned duration of 10s: held for the grace period", learned: 10 * time.Second, restart: 0, wantZeroedAfter: 2 * time.Minute},
		{name: "falls to zero with a completion: the run is over", restart: 0, completion: true, wantZeroedAfter: 2 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			deps := []appsv1.Deployment{deployment("report", 1, annotated("topic", "cron-function"), annotated("schedule", "0 3 * * *"))}
			h := newHarness(t, deps, bigNode())
			key := "report.openfaas-fn"
			if tc.learned > 0 {
				h.q.set("duration", model.Vector{fnSample(key, tc.learned.Seconds())})
			}
			// The run is in flight.
			h.q.set("inflight", model.Vector{fnSample(key, 1)})
			h.reconcile()
			h.q.set("duration", nil)

			// The gateway restarts.
			start := h.now
			if tc.restart < 0 {
				h.q.set("inflight", model.Vector{})
				h.frozen = true
				h.q.set("functions", model.Vector{fnSample(key, float64(h.now.Add(15*time.Second).Unix()))})
				h.now = h.now.Add(15 * time.Second)
				h.c.Reconcile(t.Context())
				h.frozen = false
			}
			h.q.set("inflight", model.Vector{fnSample(key, 0)})
			if tc.completion {
				h.q.set("invocations", model.Vector{fnSample(key, 1.0/60)})
			}
			zeroed := time.Duration(0)
			for h.now.Sub(start) < 3*time.Hour && zeroed == 0 {
				h.now = h.now.Add(15 * time.Second)
				h.reconcile()
				if tc.completion {
					h.q.set("invocations", nil) // one completion, then quiet
				}
				if len(h.cl.scaleCalls()) > 0 {
					zeroed = h.now.Sub(start)
				}
			}
			require.Equal(t, []string{"scale report 1->0"}, h.cl.scaleCalls())
			require.GreaterOrEqual(t, zeroed, tc.wantZeroedAfter, "not zeroed before the bound")
			require.Less(t, zeroed, tc.wantZeroedAfter+time.Minute, "zeroed once the bound has passed")
			if !tc.completion {
				require.Equal(t, 1.0, testutil.ToFloat64(h.m.InflightResets))
			}
		})
	}
}

// TestARunThatCompletesIsNotTakenForAReset: the default queries' windows
// are a minute: after a run completes, the completion rate falls back to 0
// a scrape before the in-flight peak does. That is a finished run, not a
// reset: the function is zeroed after the grace period as usual.
func TestARunThatCompletesIsNotTakenForAReset(t *testing.T) {
	deps := []appsv1.Deployment{deployment("report", 1, annotated("topic", "cron-function"), annotated("schedule", "0 3 * * *"))}
	h := newHarness(t, deps, bigNode())
	key := "report.openfaas-fn"
	steps := []struct{ inflight, rate float64 }{
		{1, 0},       // running
		{1, 1. / 60}, // completed: the in-flight peak and the rate both show it
		{1, 1. / 60},
		{1, 0}, // the rate's window has passed the completion
		{0, 0}, // and then the in-flight peak's
	}
	for _, s := range steps {
		h.q.set("inflight", model.Vector{fnSample(key, s.inflight)})
		h.q.set("invocations", model.Vector{fnSample(key, s.rate)})
		h.reconcile()
		h.now = h.now.Add(15 * time.Second)
	}
	lastRun := h.now.Add(-2 * 15 * time.Second)
	for h.now.Sub(lastRun) < 3*time.Minute {
		h.reconcile()
		h.now = h.now.Add(15 * time.Second)
	}
	require.Equal(t, []string{"scale report 1->0"}, h.cl.scaleCalls())
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.InflightResets))
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/scaler"
)

// One 1-CPU node holds api and resize (500m each). api's burst (8 req/s of
// 0.5s: 4 concurrent, ceil(4 / 2.8) = 2 replicas) needs resize's room.
// resize's jobs take a minute, two at a time per replica, 10 pending per
// replica, at most 5 replicas.
const scaleFromZeroScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-scale-from-zero
functions:
- {name: api, tier: sync, maxReplicas: 2, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 0, requestDuration: 500ms}}
- {name: resize, tier: async, minReplicas: 0, initialReplicas: 1, maxReplicas: 5, maxInflight: 2, requests: {cpu: 500m, memory: 64Mi}, async: {jobDuration: 60s}}
`

// Issue 11, test 3: tierscaler evicts an idle async function, then the
// gateway (the queue-worker invoking it) scales it from zero because work
// is queued. That change of the replicas back up toward what they were is
// demand, not a provider revert: there is no ProviderReverted event, the
// function is not held, and tierscaler sizes it by its queue at once
// (before the revert settle period, 30s, would have passed).
func TestScaleFromZeroAfterEviction(t *testing.T) {
	began := time.Now()
	e, fns, c := startOpenFaaS(t, chartValues(env(t)), scaleFromZeroScenario, "1", func(f *functions) {
		f.em.SetScaleFromZero(true)
	})
	ctx := testContext(t)

	step(t, "api's burst evicts the idle async function", func(t *testing.T) {
		require.NoError(t, fns.em.SetRate("api", 8))
		eventually(t, 60*time.Second, "api has 2 Ready replicas", func() (bool, string) {
			st := fns.state("api")
			return st.Ready == 2 && fns.replicas("resize") == 0, fmt.Sprintf("api %d Ready, resize at %d", st.Ready, fns.replicas("resize"))
		})
		ev := fns.eventually(scaler.EventEvicted, "resize")
		require.NotNil(t, ev.Related)
		require.Equal(t, "api", ev.Related.Name)
		require.Len(t, fns.events(scaler.EventEvicted), 1)
	})

	replicas := watchReplicas(t, e, "resize")
	require.NoError(t, e.AddNodes(ctx, fnPool, 1, "3", "8Gi")) // room for resize's 5 replicas
	var queued time.Time
	step(t, "queued work: the gateway scales it from zero and tierscaler sizes it by its queue", func(t *testing.T) {
		require.NoError(t, fns.em.Enqueue("resize", 30))
		queued = time.Now()
		// 30 queued, 2 running per replica: ceil(28 / 10) = 3 with one
		// replica running, ceil(24 / 10) = 3 with three.
		eventually(t, 20*time.Second, "resize has 3 replicas", func() (bool, string) {
			return fns.replicas("resize") == 3, fmt.Sprintf("%d replicas, %.0f pending", fns.replicas("resize"), fns.state("resize").Pending)
		})
		t.Logf("resize at 3 replicas %s after its jobs were queued", time.Since(queued).Round(time.Millisecond))
		require.Equal(t, 1, fns.em.State().Gateway.Writes[emulator.WriteScaleFromZero], "the gateway scaled it from zero (the test's premise)")
		require.Equal(t, []int32{0, 1, 3}, replicas.seen(), "0, the gateway's 1, tierscaler's 3")
	})

	step(t, "replicas follow the queue", func(t *testing.T) {
		eventually(t, 30*time.Second, "6 jobs running", func() (bool, string) {
			st := fns.state("resize")
			return st.Inflight == 6, fmt.Sprintf("%.0f in flight, %.0f pending", st.Inflight, st.Pending)
		})
		// 24 pending + 20 = 44: ceil(44 / 10) = 5, the maximum.
		require.NoError(t, fns.em.Enqueue("resize", 20))
		eventually(t, 20*time.Second, "resize has 5 replicas", func() (bool, string) {
			return fns.replicas("resize") == 5, fmt.Sprintf("%d replicas, %.0f pending", fns.replicas("resize"), fns.state("resize").Pending)
		})
		waitCycles(t, c, 2)
		require.Equal(t, []int32{0, 1, 3, 5}, replicas.seen())
		require.EqualValues(t, 5, c.desired("resize"))
	})

	step(t, "no ProviderReverted, no hold", func(t *testing.T) {
		noEvents(t, fns, scaler.EventProviderReverted)
		v, _ := metric(c.metricsURL, "tierscaler_provider_reverts_total", nil)
		require.Zero(t, v)
		for _, r := range c.logRecords() {
			require.NotContains(t, r.Msg, "changed the replicas back", "a reversal was counted: %s", r.Line)
		}
	})
	t.Logf("TestScaleFromZeroAfterEviction: %s", time.Since(began).Round(time.Second))
}

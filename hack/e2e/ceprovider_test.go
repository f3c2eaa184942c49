// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/scaler"
)

// thumbs is an idle async function, zeroed after 4s idle; api a sync
// function that needs ceil(20 × 0.5 / 2.8) = 4 replicas when it bursts,
// within OpenFaaS CE's cap of 5.
const ceProviderScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-ce-provider
functions:
- {name: api, tier: sync, maxReplicas: 8, maxInflight: 4, requests: {cpu: 250m, memory: 64Mi}, sync: {rate: 0, requestDuration: 500ms}}
- {name: thumbs, tier: async, minReplicas: 0, initialReplicas: 1, maxInflight: 2, requests: {cpu: 250m, memory: 64Mi}, async: {jobDuration: 1s}}
`

// revertsBeforeHold is scaler.Options.RevertsBeforeHold's default: the
// reversals that make a provider revert.
const revertsBeforeHold = 2

// Issue 11, test 5: OpenFaaS CE's provider puts a function Deployment at 0
// back to 1. tierscaler, told nothing about the edition (the policy's
// default, pro), zeroes the idle async function; the provider reverts it;
// tierscaler tries again once, then reports a Warning ProviderReverted
// event and leaves the function alone: two attempts in all, however long
// it runs. It still scales the other functions.
func TestCEProviderRevertReportedNotFought(t *testing.T) {
	began := time.Now()
	values := valuesWith(t, env(t), "", "async: {idleAfter: 10m,", "async: {idleAfter: 4s,")
	var replicas *replicaLog
	_, fns, c := startOpenFaaS(t, values, ceProviderScenario, "4", func(f *functions) {
		f.em.SetCEProvider(true)
		// Before tierscaler starts: it zeroes thumbs in its first cycles.
		replicas = watchReplicas(t, f.env, "thumbs")
	})
	reverts := func() int { return fns.em.State().Gateway.Writes[emulator.WriteCEProvider] }

	step(t, "zeroed, put back by the provider, reported with a Warning", func(t *testing.T) {
		var ev = func() (bool, string) {
			n := len(fns.events(scaler.EventProviderReverted))
			return n > 0, fmt.Sprintf("%d ProviderReverted, replicas %v, %d provider writes", n, replicas.seen(), reverts())
		}
		// Two attempts, each reverted and left to settle (30s) first.
		eventually(t, 2*time.Minute, "a ProviderReverted Event", ev)
		got := fns.eventually(scaler.EventProviderReverted, "thumbs")
		require.Equal(t, corev1.EventTypeWarning, got.Type)
		require.Contains(t, got.Note, "changed them back to 1")
		require.Equal(t, revertsBeforeHold, reverts(), "the provider put it back after each of tierscaler's attempts")
	})

	step(t, "other functions are still scaled", func(t *testing.T) {
		require.NoError(t, fns.em.SetRate("api", 20))
		eventually(t, 60*time.Second, "api has 4 Ready replicas", func() (bool, string) {
			st := fns.state("api")
			return st.Ready == 4 && fns.replicas("api") == 4, fmt.Sprintf("%d Ready, %d replicas", st.Ready, fns.replicas("api"))
		})
	})

	step(t, "not fought: no further attempt", func(t *testing.T) {
		// Without the hold, tierscaler would zero thumbs again in the cycle
		// that counts the second reversal (idleAfter 4s passed during the
		// settle period).
		waitCycles(t, c, 4)
		require.Equal(t, []int32{1, 0, 1, 0, 1}, replicas.seen(), "thumbs: two attempts, each put back")
		require.Equal(t, revertsBeforeHold, reverts())
		require.Len(t, fns.events(scaler.EventProviderReverted), 1)
		v, _ := metric(c.metricsURL, "tierscaler_provider_reverts_total", map[string]string{"function": "thumbs." + fnNamespace})
		require.Equal(t, 1.0, v)
		require.EqualValues(t, 4, fns.replicas("api"))
	})
	t.Logf("TestCEProviderRevertReportedNotFought: %s", time.Since(began).Round(time.Second))
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/tierscaler/tierscaler/scaler"
)

// One 2.5-CPU node holds api and the two reports (500m each) with room for
// the two pods of the reports' rollouts. api's burst (20 req/s of 0.5s: 10
// concurrent, ceil(10 / 2.8) = 4 replicas) needs three more pods, one more
// than the node has room for: one eviction. z-report ran first; sorted by
// name (as when the last runs are lost), a-report would go first.
const redeployScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-redeploy
functions:
- {name: api, tier: sync, maxReplicas: 4, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 0, requestDuration: 500ms}}
- {name: a-report, schedule: "%[1]s", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 2s}}
- {name: z-report, schedule: "%[1]s", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 2s}}
`

// Issue 11, test 4: tierscaler knows the last runs of two cron functions
// (one from its state, one it saw run),
// faas-cli deploys both (faas-netes replaces the Deployments' annotations,
// so anything kept there is gone), tierscaler restarts, and a claim needs
// one eviction: the function with the older last run, z-report, goes, not
// a-report, which comes first by name. tierscaler keeps the last runs in
// its state ConfigMap, which nothing else writes.
func TestRedeployRestartEvictsOlderLastRun(t *testing.T) {
	began := time.Now()
	// z-report's run was two hours ago, before this tierscaler; tierscaler
	// keeps last runs to the minute, so a-report's is learned in this one.
	values := chartValues(env(t))
	e, fns, c := startOpenFaaS(t, values, fmt.Sprintf(redeployScenario, farSchedule()), "2500m", func(*functions) {
		seedLastRuns(t, env(t), map[string]time.Duration{"z-report": 2 * time.Hour})
	})
	ctx := testContext(t)
	stateName := flagValue(c.args, "--state-name")
	require.NotEmpty(t, stateName)
	store := &scaler.ConfigMapStore{Client: e.Client, Namespace: releaseNamespace, Name: stateName}
	lastRun := func(name string) time.Time {
		runs, err := store.Load(ctx)
		if err != nil {
			return time.Time{}
		}
		return runs.Times[name+"."+fnNamespace]
	}

	var zRun, aRun time.Time
	step(t, "tierscaler records a-report's run", func(t *testing.T) {
		zRun = lastRun("z-report")
		require.False(t, zRun.IsZero())
		require.NoError(t, fns.em.Fire("a-report"))
		eventually(t, 30*time.Second, "tierscaler's state has a-report's last run", func() (bool, string) {
			return !lastRun("a-report").IsZero(), "not yet"
		})
		aRun = lastRun("a-report")
		require.True(t, zRun.Before(aRun), "z-report ran first: %s, a-report %s", zRun, aRun)
		require.EqualValues(t, 1, fns.state("a-report").CronRuns)
		// Once the run is out of the queries' windows, only the state
		// tells a tierscaler that starts now that a-report ran.
		inflight, invocations := chartQuery(t, values, "inflight"), chartQuery(t, values, "invocations")
		key := "a-report." + fnNamespace
		eventually(t, 30*time.Second, "Prometheus shows no activity of a-report", func() (bool, string) {
			n, _ := promValue(t, e, inflight, key)
			r, ok := promValue(t, e, invocations, key)
			return n == 0 && (!ok || r == 0), fmt.Sprintf("%v in flight, %v/s", n, r)
		})
	})

	step(t, "faas-cli deploy of both replaces their annotations", func(t *testing.T) {
		for _, name := range []string{"a-report", "z-report"} {
			before := fns.deployment(name)
			require.NoError(t, fns.em.Redeploy(ctx, name))
			eventually(t, 60*time.Second, name+" rolled out", func() (bool, string) {
				d := fns.deployment(name)
				return rolledOut(&d) && d.Generation > before.Generation, fmt.Sprintf("generation %d, %+v", d.Generation, d.Status)
			})
			d := fns.deployment(name)
			for k := range d.Annotations {
				require.False(t, strings.HasPrefix(k, "tierscaler.io/") && k != "tierscaler.io/tier" && k != "tierscaler.io/emulator-scenario",
					"%s: annotation %s survived the redeploy", name, k)
			}
			require.EqualValues(t, 1, *d.Spec.Replicas, "com.openfaas.scale.min 0: faas-netes leaves the replicas")
		}
	})

	step(t, "tierscaler restarts", func(t *testing.T) {
		require.NoError(t, c.stop())
	})

	// The second tierscaler lives in this subtest (its clean-up stops it).
	step(t, "a claim needing one eviction evicts the older last run", func(t *testing.T) {
		c2 := runChartController(t, e)
		waitFunctionsSeen(t, c2, fns)
		require.Equal(t, zRun, lastRun("z-report"), "the state kept z-report's run")
		require.Equal(t, aRun, lastRun("a-report"), "the state kept a-report's run")
		require.Empty(t, fns.events(scaler.EventEvicted))

		require.NoError(t, fns.em.SetRate("api", 20))
		eventually(t, 60*time.Second, "api has 4 Ready replicas", func() (bool, string) {
			st := fns.state("api")
			return st.Ready == 4, fmt.Sprintf("%d Ready, %.1f 429/s", st.Ready, st.RejectionRate)
		})
		var got [][2]string
		for _, ev := range fns.events(scaler.EventEvicted) {
			related := ""
			if ev.Related != nil {
				related = ev.Related.Name
			}
			got = append(got, [2]string{ev.Regarding.Name, related})
		}
		require.Equal(t, [][2]string{{"z-report", "api"}}, got, "EvictedForCapacity: the older last run, for api")
		require.EqualValues(t, 0, fns.replicas("z-report"))
		require.EqualValues(t, 1, fns.replicas("a-report"))
	})
	t.Logf("TestRedeployRestartEvictsOlderLastRun: %s", time.Since(began).Round(time.Second))
}

// rolledOut: the Deployment controller has seen the latest spec and every
// replica runs it, Ready, with no old pod left.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.ReadyReplicas == want
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/scaler"
)

// longRunGrace is the cron grace period of TestGatewayRestartLongCronRun.
const longRunGrace = 6 * time.Second

// nightly runs once a day, hours away from the test, for half an hour when
// fired: the test fires it by hand.
const longCronScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-long-cron
functions:
- {name: nightly, schedule: "%s", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 30m}}
`

// Issue 11, test 1: a long cron run in flight across a gateway restart.
// The gateway creates a function's _total series only at its first
// completion, so while the run goes on only `started` is exported; a
// restart then resets both to nothing. tierscaler, with cron functions
// zeroed when idle and a grace period of 6s, must zero the function
// neither before the restart (started = 1 and no _total is one in flight,
// not "nothing": the in-flight query before issue 10 read it as 0) nor
// after it, past the grace period (in-flight work that vanishes with no
// completion seen is unknown, not zero).
func TestGatewayRestartLongCronRun(t *testing.T) {
	began := time.Now()
	key := "nightly." + fnNamespace
	values := valuesWith(t, env(t), "", "gracePeriod: 20s, zeroWhenIdle: false", fmt.Sprintf("gracePeriod: %s, zeroWhenIdle: true", longRunGrace))
	var fired time.Time
	var replicas *replicaLog
	_, fns, c := startOpenFaaS(t, values, fmt.Sprintf(longCronScenario, farSchedule()), "2", func(f *functions) {
		replicas = watchReplicas(t, f.env, "nightly")
		// The run starts before tierscaler does: idle, the function
		// would be zeroed at once.
		require.NoError(t, f.em.Fire("nightly"))
		eventually(t, 10*time.Second, "nightly runs", func() (bool, string) {
			st := f.state("nightly")
			return st.CronRuns == 1 && st.Inflight == 1, fmt.Sprintf("%d runs, %.0f in flight", st.CronRuns, st.Inflight)
		})
		fired = time.Now()
		// The policy's in-flight query reads a subquery at aligned steps:
		// a sample newer than its last step is not in it yet.
		q := chartQuery(t, values, "inflight")
		eventually(t, 15*time.Second, "the policy's in-flight query reads the run", func() (bool, string) {
			v, ok := promValue(t, env(t), q, key)
			return ok && v == 1, fmt.Sprintf("%v %v", v, ok)
		})
	})

	step(t, "only started is exported while the run goes on", func(t *testing.T) {
		require.True(t, gatewaySeries(fns, openfaas.MetricInvocationStarted, key, "gateway-0"))
		require.False(t, gatewaySeries(fns, openfaas.MetricInvocationTotal, key, "gateway-0"), "no completion yet: no _total series")
	})

	step(t, "not zeroed while it runs, past the grace period", func(t *testing.T) {
		time.Sleep(time.Until(fired.Add(longRunGrace))) // scheduling: the assertions follow cycles after it
		waitCycles(t, c, 3)
		require.Equal(t, []int32{1}, replicas.seen())
		require.EqualValues(t, 1, c.desired("nightly"))
		require.Equal(t, 1.0, fns.state("nightly").Inflight, "the run goes on")
	})

	var restarted time.Time
	step(t, "a gateway restart resets the counters; tierscaler holds in-flight as unknown", func(t *testing.T) {
		require.NoError(t, fns.em.RestartGateway(0))
		restarted = time.Now()
		require.False(t, gatewaySeries(fns, openfaas.MetricInvocationStarted, key, "gateway-0"), "started reset to nothing")
		eventually(t, 30*time.Second, "tierscaler sees the in-flight figure vanish with no completion", func() (bool, string) {
			v, _ := metric(c.metricsURL, "tierscaler_inflight_resets_total", nil)
			return v == 1, fmt.Sprintf("%v resets", v)
		})
	})

	step(t, "not zeroed after the restart, past the grace period", func(t *testing.T) {
		// The in-flight query's window (5s) and the grace period both pass.
		time.Sleep(time.Until(restarted.Add(longRunGrace + 5*time.Second)))
		waitCycles(t, c, 4)
		require.Equal(t, []int32{1}, replicas.seen(), "nightly's replicas over the whole test")
		require.EqualValues(t, 1, c.desired("nightly"))
		noEvents(t, fns, scaler.EventZeroedIdle)
		v, _ := metric(c.metricsURL, "tierscaler_inflight_resets_total", nil)
		require.Equal(t, 1.0, v, "one reset")
		st := fns.state("nightly")
		require.Equal(t, 1.0, st.Inflight, "the run still goes on")
		require.Zero(t, st.Completed)
	})
	t.Logf("TestGatewayRestartLongCronRun: %s", time.Since(began).Round(time.Second))
}

// farSchedule is a daily schedule six hours away: never due in a test.
func farSchedule() string {
	return fmt.Sprintf("0 %d * * *", (time.Now().UTC().Hour()+6)%24)
}

// api needs ceil(20 req/s × 0.5s / (4 × 0.7)) = 4 replicas, its maximum.
const twoGatewaysScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-two-gateways
functions:
- {name: api, tier: sync, maxReplicas: 4, maxInflight: 4, requests: {cpu: 250m, memory: 64Mi}, sync: {rate: 0, requestDuration: 500ms}}
`

// Issue 11, test 2: two gateway replicas, each exporting its own series,
// and one of them restarted. tierscaler must sum the replicas' rates and
// in-flight figures (one replica's alone would need 2 replicas), and the
// restart (one replica's counters reset to nothing, its in-flight
// invocations lost to the metrics) must not scale the function down,
// though the scale-down window (6s) allows it.
func TestTwoGatewayReplicasOneRestarted(t *testing.T) {
	began := time.Now()
	key := "api." + fnNamespace
	values := valuesWith(t, env(t), "", "sync: {scaleDownWindow: 10m}", "sync: {scaleDownWindow: 6s}")
	e, fns, c := startOpenFaaS(t, values, twoGatewaysScenario, "4", func(f *functions) {
		require.NoError(t, f.em.SetGatewayReplicas(2))
	})

	step(t, "both gateway replicas' rates are summed: 4 replicas", func(t *testing.T) {
		require.NoError(t, fns.em.SetRate("api", 20))
		eventually(t, 60*time.Second, "api has 4 Ready replicas without 429s", func() (bool, string) {
			st := fns.state("api")
			return st.Ready == 4 && st.RejectionRate == 0, fmt.Sprintf("%d Ready, %.1f 429/s", st.Ready, st.RejectionRate)
		})
		for _, pod := range []string{"gateway-0", "gateway-1"} {
			require.True(t, gatewaySeries(fns, openfaas.MetricInvocationTotal, key, pod), "%s exports api's invocations", pod)
		}
		require.EqualValues(t, 4, fns.replicas("api"))
		require.EqualValues(t, 4, c.desired("api"))
		ev := fns.eventually(scaler.EventScaledUp, "api")
		t.Logf("scaled up: %s", ev.Note)
	})

	replicas := watchReplicas(t, e, "api")
	step(t, "the scale-down window passes", func(t *testing.T) {
		ups := fns.events(scaler.EventScaledUp)
		up := ups[len(ups)-1].EventTime.Time
		time.Sleep(time.Until(up.Add(6 * time.Second))) // scheduling: the checks follow cycles after it
		waitCycles(t, c, 2)
		require.Equal(t, []int32{4}, replicas.seen())
	})

	step(t, "one gateway replica restarts: no scale-down", func(t *testing.T) {
		restarted := time.Now()
		require.NoError(t, fns.em.RestartGateway(1))
		eventually(t, 10*time.Second, "gateway-1 counts api's invocations again", func() (bool, string) {
			return gatewaySeries(fns, openfaas.MetricInvocationTotal, key, "gateway-1"), "no _total on gateway-1 yet"
		})
		// The queries' windows (5s) pass over the restart, then tierscaler
		// decides several times.
		time.Sleep(time.Until(restarted.Add(6 * time.Second)))
		waitCycles(t, c, 4)
		require.Equal(t, []int32{4}, replicas.seen(), "api's replicas since the scale-up")
		require.EqualValues(t, 4, c.desired("api"))
		noEvents(t, fns, scaler.EventScaledDown)
		v, _ := metric(c.metricsURL, "tierscaler_inflight_resets_total", nil)
		require.Zero(t, v, "the in-flight figure never fell to 0")
	})

	step(t, "the policy's queries read the whole gateway", func(t *testing.T) {
		// irate over 1s scrapes of 0.5s emulator ticks: one reading may
		// catch one tick more or less.
		eventually(t, 10*time.Second, "20 invocations per second and 10 in flight over both replicas", func() (bool, string) {
			rate, rok := promValue(t, e, c.policy.Queries.Invocations, key)
			inflight, iok := promValue(t, e, c.policy.Queries.Inflight, key)
			return rok && iok && rate > 18 && rate < 22 && inflight > 9 && inflight < 11,
				fmt.Sprintf("%.2f/s (%v), %.2f in flight (%v)", rate, rok, inflight, iok)
		})
	})
	t.Logf("TestTwoGatewayReplicasOneRestarted: %s", time.Since(began).Round(time.Second))
}

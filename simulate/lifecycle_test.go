// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// TestGatewayRestartLetsTheOldInflightQueryZeroARunningJob is issue 10
// item 1 in a simulation of the real controller: etl runs for 30 minutes
// at 01:00 and at 03:00. When the gateway restarts between the two, the
// second run is the only invocation it has seen: started = 1 and no _total
// series. So is the first when the gateway starts with the simulation
// (GatewayColdStart). With the old in-flight query tierscaler reads such a
// run as 0 in flight and zeroes the function while it runs; with a query
// that reads a missing _total as 0 completions it never does.
func TestGatewayRestartLetsTheOldInflightQueryZeroARunningJob(t *testing.T) {
	s, err := workload.Parse([]byte(`apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: long-runs
start: "2026-01-05T00:30:00Z"
duration: 3h30m
nodes: {count: 1, cpu: "4", memory: 8Gi}
functions:
  - {name: etl, schedule: "0 1,3 * * *", minReplicas: 0, initialReplicas: 0, requests: {cpu: 500m, memory: 256Mi}, cron: {runDuration: 30m}}
`))
	require.NoError(t, err)
	for _, tc := range []struct {
		name          string
		inflight      string
		restart, cold bool
		// zeroed is the zeroings during the first and the second run.
		zeroed [2]int
	}{
		{"old query, gateway restart: the second run zeroed while running", oldInflightQuery, true, false, [2]int{0, 1}},
		{"fixed query, gateway restart: never", fixedInflightQuery, true, false, [2]int{0, 0}},
		{"old query, no restart: never", oldInflightQuery, false, false, [2]int{0, 0}},
		{"old query, the gateway starts with the simulation: the first run zeroed", oldInflightQuery, false, true, [2]int{1, 0}},
		{"fixed query, cold start and restart: never", fixedInflightQuery, true, true, [2]int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			p.Queries.Inflight = tc.inflight
			cfg := Config{Scenario: s, Policy: p, Seed: 1, Strategies: []string{StrategyTierscaler}, GatewayColdStart: tc.cold}
			if tc.restart {
				cfg.GatewayRestarts = []time.Duration{90 * time.Minute} // 02:00
			}
			rep, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			st := rep.Strategy(StrategyTierscaler)
			require.Equal(t, 2, st.CronRuns, "both runs started")
			var zeroed [2]int
			for _, m := range st.Marks {
				if m.Kind == "zeroed-in-flight" {
					zeroed[m.T.Hour()/3]++ // 01:xx or 03:xx
				}
			}
			assert.Equal(t, tc.zeroed, zeroed, "%+v", st.Marks)
			assert.Equal(t, tc.zeroed[0]+tc.zeroed[1], st.ZeroedInFlight)
		})
	}
}

func TestConfigGatewayOptions(t *testing.T) {
	s := scenario(t, "nodes: {count: 1}", fn("a", "sync", "100m", "64Mi", 1, "sync: {rate: 1}"))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative replicas", Config{GatewayReplicas: -1}, "-1 gateway replicas"},
		{"restart after the end", Config{GatewayRestarts: []time.Duration{2 * time.Hour}}, "gateway restart at 2h0m0s is outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Scenario = s
			_, err := Run(context.Background(), tc.cfg)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestScaleFromZeroInASimulation: with the gateway's scale from zero, an
// idle-only baseline that zeroed a sync function gets it back by the
// gateway at its next request, which is held rather than refused.
func TestScaleFromZeroInASimulation(t *testing.T) {
	s := scenario(t, "nodes: {count: 1, cpu: \"4\", memory: 8Gi}\nduration: 30m",
		fn("api", "sync", "100m", "64Mi", 1, "maxInflight: 50\nsync: {rate: 0, requestDuration: 100ms, bursts: [{at: 20m, for: 1m, rps: 2}]}"))
	run := func(fromZero bool) *StrategyReport {
		rep, err := Run(context.Background(), Config{Scenario: s, Seed: 1, Strategies: []string{StrategyIdleOnly}, ScaleFromZero: fromZero, Cooldown: 5 * time.Minute})
		require.NoError(t, err)
		return rep.Strategy(StrategyIdleOnly)
	}
	off, on := run(false), run(true)
	assert.Positive(t, off.Sync429Count, "without scale from zero the burst meets a function at zero")
	assert.Zero(t, on.Sync429Count, "the gateway holds the first requests and scales the function up")
	assert.InDelta(t, off.SyncRequests, on.SyncRequests, 1e-6)
}

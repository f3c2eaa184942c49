// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

func run(t *testing.T, s *workload.Scenario, strategies ...string) *Report {
	t.Helper()
	rep, err := Run(context.Background(), Config{Scenario: s, Seed: 1, Strategies: strategies})
	require.NoError(t, err)
	return rep
}

// oneCron is one hourly cron function of 100m and 256Mi whose run takes a
// minute, for 6 hours on one node.
func oneCron(t *testing.T) *workload.Scenario {
	return scenario(t, "duration: 6h\nnodes: {count: 1, cpu: \"2\", memory: 4Gi}\npodStartLatency: 2s",
		fn("hourly", "cron", "100m", "256Mi", 1, "schedule: \"0 * * * *\"\nmaxReplicas: 1\nmaxInflight: 1\ncron: {runDuration: 1m}"))
}

func TestStrategiesOnOneCronFunction(t *testing.T) {
	rep := run(t, oneCron(t))
	static, idle, ts := rep.Strategy(StrategyStatic), rep.Strategy(StrategyIdleOnly), rep.Strategy(StrategyTierscaler)
	require.NotNil(t, static)
	require.NotNil(t, idle)
	require.NotNil(t, ts)

	t.Run("static reserves the whole 6 hours", func(t *testing.T) {
		assert.InDelta(t, 0.6, static.ReservedCPUHours, 1e-9)
		assert.InDelta(t, 1.5, static.ReservedMemoryGiBHours, 1e-9)
		assert.Equal(t, 6, static.CronFires)
		assert.Equal(t, 0, static.CronMissed)
		assert.Equal(t, 1, static.PeakNodesNeeded)
	})
	t.Run("tierscaler reserves around the fire windows and misses nothing", func(t *testing.T) {
		assert.Equal(t, 6, ts.CronFires)
		assert.Equal(t, 0, ts.CronMissed, "prewarmed before every fire")
		assert.Equal(t, 6, ts.CronRuns)
		// Each fire holds the pod from the prewarm (startup + 30s margin +
		// 15s interval before it) to the end of the grace period after the
		// run: a few minutes of every hour.
		assert.Less(t, *ts.CPUPercentOfStatic, 15.0)
		assert.Greater(t, *ts.CPUPercentOfStatic, 3.0)
		assert.Equal(t, 0, ts.Evictions)
		assert.Equal(t, 0, ts.ShortfallEpisodes)
	})
	t.Run("idle-only zeroes it after the cooldown and misses every later fire", func(t *testing.T) {
		assert.Equal(t, 6, idle.CronFires)
		assert.Equal(t, 5, idle.CronMissed, "the fires at 01:00 to 05:00 find no replica")
		assert.Equal(t, map[string]int{"hourly.openfaas-fn": 5}, idle.CronMissedBy)
		assert.Less(t, *idle.CPUPercentOfStatic, 20.0)
	})
}

func TestStrategiesOnASyncSurgeOnAFullCluster(t *testing.T) {
	// One node of 1 CPU: the API (1 replica of 250m) and three async
	// workers (250m each) that get a job every two minutes, so they are
	// never idle for 5 minutes, fill it. At 20m the API's traffic needs 3
	// replicas for 15 minutes.
	worker := func(name string) string {
		return fn(name, "async", "250m", "64Mi", 1, "maxReplicas: 1\nasync: {bursts: [{every: 2m, jobs: 1}], jobDuration: 1s}")
	}
	s := scenario(t, "duration: 1h\nnodes: {count: 1, cpu: \"1\", memory: 4Gi}\npodStartLatency: 2s",
		fn("api", "sync", "250m", "64Mi", 1, "minReplicas: 1\nmaxReplicas: 4\nmaxInflight: 4\nsync: {rate: 5, requestDuration: 200ms, bursts: [{at: 20m, for: 15m, rps: 30}]}"),
		worker("w1"), worker("w2"), worker("w3"))
	rep := run(t, s, StrategyIdleOnly, StrategyTierscaler)
	idle, ts := rep.Strategy(StrategyIdleOnly), rep.Strategy(StrategyTierscaler)
	assert.Positive(t, ts.Evictions, "tierscaler evicts idle workers for the API")
	assert.Zero(t, idle.Evictions)
	assert.Less(t, ts.Sync429Seconds, idle.Sync429Seconds/2, "without preemption the API's new pods stay pending")
	assert.Positive(t, idle.PendingPodHours)
	// The first eviction makes room for the API. (A worker may report a
	// shortfall before it: the API's 429 series is new at the surge, and
	// rate() cannot see a new series' first increase, so the API's claim
	// shows a cycle later than its first 429s.)
	var first *Mark
	for i := range ts.Marks {
		if ts.Marks[i].Kind == "eviction" {
			first = &ts.Marks[i]
			break
		}
	}
	require.NotNil(t, first, "%+v", ts.Marks)
	assert.Equal(t, "api.openfaas-fn", first.Detail, "the first eviction serves the API")
}

func TestDeterminism(t *testing.T) {
	s, err := workload.Builtin("mixed-small")
	require.NoError(t, err)
	cfg := Config{Scenario: s, Seed: 7, Duration: 2 * time.Hour}
	var outs [][]byte
	for range 2 {
		rep, err := Run(context.Background(), cfg)
		require.NoError(t, err)
		js, err := rep.JSON()
		require.NoError(t, err)
		outs = append(outs, js)
	}
	if diff := cmp.Diff(string(outs[0]), string(outs[1])); diff != "" {
		t.Fatalf("the same seed gave different reports (-first +second):\n%s", diff)
	}
	other, err := Run(context.Background(), Config{Scenario: s, Seed: 8, Duration: 2 * time.Hour})
	require.NoError(t, err)
	js, err := other.JSON()
	require.NoError(t, err)
	assert.NotEqual(t, string(outs[0]), string(js), "another seed, other arrivals")
}

func TestReportFiles(t *testing.T) {
	rep := run(t, oneCron(t))
	dir := t.TempDir()
	paths, err := rep.WriteFiles(dir)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "summary.txt"), filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")}, paths)

	summary, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	for _, want := range []string{"static", "idle-only", "tierscaler", "reserved CPU-hours", "cron fires / missed / late", "6 / 0 / 0", "6 / 5 / 0"} {
		assert.Contains(t, string(summary), want)
	}

	page, err := os.ReadFile(paths[2])
	require.NoError(t, err)
	for _, bad := range []string{"<script", "<link", "src=", "href=", "@import", "url("} {
		assert.False(t, strings.Contains(string(page), bad), "self-contained: the page has %q", bad)
	}
	// Well-formed: the page parses as XML, every element closed.
	dec := xml.NewDecoder(bytes.NewReader(page))
	dec.Strict = true
	svgs, titles := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "svg":
				svgs++
			case "h2":
				titles++
			}
		}
	}
	assert.Equal(t, 10, svgs, "the comparison chart and three charts per strategy")
	assert.Equal(t, 4, titles, "a panel per strategy and the glossary")
	for _, want := range []string{"Pods on nodes by tier", "Reserved CPU vs allocatable", "Reserved memory vs allocatable", "time (UTC)", "allocatable (1 node)"} {
		assert.True(t, strings.Contains(string(page), want), "the page has no %q", want)
	}
}

func TestConfigErrors(t *testing.T) {
	s := oneCron(t)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no scenario", Config{}, "Config.Scenario is required"},
		{"unknown strategy", Config{Scenario: s, Strategies: []string{"hpa"}}, `unknown strategy "hpa"`},
		{"negative duration", Config{Scenario: s, Duration: -time.Hour}, "want a positive duration"},
		{"duplicate query texts", Config{Scenario: s, Policy: func() *policy.Policy {
			p := policy.Default()
			p.Queries.Pending = p.Queries.Inflight
			return p
		}()}, "queries.inflight and queries.pending have the same text"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestStaticGrowsTheClusterToFit(t *testing.T) {
	// 5 pods of 1 CPU on nodes of 2 CPU: static needs 3 nodes, and they are
	// accounted in full.
	s := scenario(t, "duration: 1h\nnodes: {count: 1, cpu: \"2\", memory: 4Gi}",
		fn("a", "sync", "1", "64Mi", 5, "maxReplicas: 5\nsync: {rate: 0.1}"))
	rep := run(t, s, StrategyStatic)
	st := rep.Strategy(StrategyStatic)
	assert.Equal(t, 3, st.Nodes)
	assert.InDelta(t, 5.0, st.ReservedCPUHours, 1e-9)
	assert.Equal(t, 3, st.PeakNodesNeeded)
	assert.Zero(t, st.PendingPodHours)
}

func TestSummaryMentionsNotes(t *testing.T) {
	p := policy.Default()
	p.Queries.CPU = strings.Replace(p.Queries.CPU, "[1m]", "[2m]", 1)
	rep, err := Run(context.Background(), Config{Scenario: oneCron(t), Policy: p, Strategies: []string{StrategyStatic}, Duration: time.Hour})
	require.NoError(t, err)
	assert.Contains(t, rep.Summary(), "queries.cpu differs from the default")
}

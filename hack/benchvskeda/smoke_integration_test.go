// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

// TestBenchVsKEDASmoke runs the side-by-side benchmark in miniature so that
// `make bench-vs-keda` cannot rot: N = 5 functions per controller, one
// activation and one burst trial each, short idle windows. It builds KEDA
// with hack/keda.sh when it is not cached (6 to 11 minutes on a fresh
// machine; docs/benchmarks.md).
// It checks that every figure was measured, not what the figures are:
// performance goals are for the benchmark's output, not for assertions.
func TestBenchVsKEDASmoke(t *testing.T) {
	cfg := defaultConfig()
	cfg.Sizes = []int{5}
	cfg.Trials = 1
	cfg.Idle = 5 * time.Second
	cfg.Settle = 0
	cfg.GapMin, cfg.GapMax = 0, time.Second
	// KEDA polls every 30s and its HPA syncs every 15s: a trial ends
	// within a minute.
	cfg.TrialTimeout = 90 * time.Second
	cfg.Logf = t.Logf

	// KEDA first, with a budget of its own: a cold build takes 6 minutes
	// on an idle 2-core machine and 11 beside other jobs.
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancelBuild()
	start := time.Now()
	if cfg.KedaDir, err = kedaDir(buildCtx, root); err != nil {
		t.Fatal(err)
	}
	t.Logf("KEDA in %s (%s)", cfg.KedaDir, time.Since(start).Round(10*time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start = time.Now()
	results, err := bench(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the smoke run took %s", time.Since(start).Round(time.Second))
	if len(results) != 1 {
		t.Fatalf("%d results, want 1", len(results))
	}
	r := results[0]
	var out bytes.Buffer
	writeTable(&out, r)
	t.Log(out.String())

	for _, name := range []string{ctlKEDA, ctlTierscaler} {
		c := r.Ctl[name]
		if len(c.Failed) > 0 {
			t.Errorf("%s: failed trials: %s", name, strings.Join(c.Failed, "; "))
		}
		if len(c.ActScaled) != 1 || len(c.ActReady) != 1 || len(c.Burst) != 1 {
			t.Errorf("%s: %d activations (%d Ready) and %d bursts measured, want 1 each", name, len(c.ActScaled), len(c.ActReady), len(c.Burst))
		}
		for _, d := range append(append(append([]time.Duration(nil), c.ActScaled...), c.ActReady...), c.Burst...) {
			if d <= 0 || d > cfg.TrialTimeout {
				t.Errorf("%s: reaction %s outside (0, %s]", name, d, cfg.TrialTimeout)
			}
		}
		if c.QueriesPerMin < 0 || c.IdleCPU < 0 {
			t.Errorf("%s: idle window not measured: %.1f queries/min, %.2f CPU s", name, c.QueriesPerMin, c.IdleCPU)
		}
		if c.TotalCPU <= 0 {
			t.Errorf("%s: its processes used %.2f CPU s, want > 0", name, c.TotalCPU)
		}
		if c.SelfQueriesPerMin < 0 {
			t.Errorf("%s: its own query counter was not read", name)
		}
	}
	// The push path: the chart's activation rules, Alertmanager's route
	// and tierscaler's webhook are wired up.
	if r.TierscalerWebhooks <= 0 {
		t.Errorf("tierscaler's webhook got %v activation requests from Alertmanager, want some", r.TierscalerWebhooks)
	}
	if !strings.Contains(out.String(), "| Prometheus queries per minute, idle |") {
		t.Errorf("the table lacks the query row:\n%s", out.String())
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"runtime/debug"
	"testing"
	"time"

	"github.com/tierscaler/tierscaler/workload"
)

// benchmarkSeedLike simulates days of the seed-like scenario under the
// given strategies (all three when none) and reports simulated days per
// second of wall time. GC runs at GOGC=400, as `tierscaler simulate` sets
// it.
func benchmarkSeedLike(b *testing.B, days float64, strategies ...string) {
	s, err := workload.Builtin("seed-like")
	if err != nil {
		b.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	cfg := Config{Scenario: s, Seed: 1, Duration: time.Duration(days * 24 * float64(time.Hour)), Strategies: strategies}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := Run(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(days*float64(b.N)/time.Since(start).Seconds(), "sim-days/s")
}

// BenchmarkSeedLike7Days is the reference figure: 7 days of seed-like, all
// three strategies (run with -benchtime 1x).
func BenchmarkSeedLike7Days(b *testing.B) { benchmarkSeedLike(b, 7) }

// BenchmarkSeedLike1DayTierscaler isolates the real controller's run.
func BenchmarkSeedLike1DayTierscaler(b *testing.B) { benchmarkSeedLike(b, 1, StrategyTierscaler) }

// BenchmarkSeedLike1DayBaselines is the model, cluster and querier alone
// (static and idle-only).
func BenchmarkSeedLike1DayBaselines(b *testing.B) {
	benchmarkSeedLike(b, 1, StrategyStatic, StrategyIdleOnly)
}

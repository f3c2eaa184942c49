// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestMetricsGatherWithoutConflicts: /metrics serves tierscaler's registry
// and controller-runtime's together; a metric in both would make every
// scrape fail.
func TestMetricsGatherWithoutConflicts(t *testing.T) {
	p := &Process{Registry: prometheus.NewRegistry()}
	p.Metrics = NewMetrics(p.Registry)
	p.Metrics.Leader.Set(1)
	families, err := p.Gatherer().Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"tierscaler_leader", "tierscaler_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		require.True(t, names[want], "%s is served", want)
	}
}

// TestMetricsAreLinted: tierscaler's own metrics pass Prometheus' metric
// lint (names, units, _total on counters, help) and are all tierscaler_*.
func TestMetricsAreLinted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// Give every vector a child, so that it is gathered.
	m.Reconciles.WithLabelValues("success")
	m.Queries.WithLabelValues("inflight", "warnings")
	m.QueryDuration.WithLabelValues("inflight")
	m.Actions.WithLabelValues("sync", "scale-up-rejections")
	m.Evictions.WithLabelValues("async", "sync")
	m.Shortfalls.WithLabelValues("sync", "insufficient-capacity")
	m.DesiredReplicas.WithLabelValues("api.openfaas-fn", "sync")
	m.Replicas.WithLabelValues("api.openfaas-fn", "sync")
	m.PatchErrors.WithLabelValues("timeout")
	m.ProviderReverts.WithLabelValues("api.openfaas-fn")
	m.ReadinessMissed.WithLabelValues("prewarm")
	m.ActivationRequests.WithLabelValues("accepted")
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 22, "every metric is gathered")
	for _, f := range families {
		require.True(t, strings.HasPrefix(f.GetName(), "tierscaler_"), f.GetName())
	}
}

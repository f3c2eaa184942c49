package scaler

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

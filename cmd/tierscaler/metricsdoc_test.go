// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/alerts"
	"github.com/tierscaler/tierscaler/docs"
	"github.com/tierscaler/tierscaler/scaler"
)

// MetricInfo is a metric as registered.
type MetricInfo struct {
	Name, Type, Help string
	Labels           []string // sorted
}

// recordingRegisterer keeps what is registered through it.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]*)"`)
	descHelp   = regexp.MustCompile(`help: "((?:[^"\\]|\\.)*)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// registeredMetrics returns the metrics `tierscaler run` registers: the
// controller's (scaler.NewMetrics) and the alerting's (alerts.Metrics), as
// scaler.NewProcess and run's addAlerting register them.
func registeredMetrics(t *testing.T) []MetricInfo {
	t.Helper()
	rec := &recordingRegisterer{Registerer: prometheus.NewPedanticRegistry()}
	scaler.NewMetrics(rec)
	require.NoError(t, alerts.NewMetrics().Register(rec))
	var out []MetricInfo
	for _, c := range rec.collectors {
		typ := collectorType(t, c)
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			s := d.String()
			name := descName.FindStringSubmatch(s)
			require.NotNil(t, name, "descriptor %s", s)
			m := MetricInfo{Name: name[1], Type: typ}
			if h := descHelp.FindStringSubmatch(s); h != nil {
				m.Help = h[1]
			}
			if l := descLabels.FindStringSubmatch(s); l != nil {
				for _, v := range strings.Split(l[1], ",") {
					if v = strings.TrimSpace(v); v != "" {
						m.Labels = append(m.Labels, v)
					}
				}
			}
			sort.Strings(m.Labels)
			out = append(out, m)
		}
	}
	require.NotEmpty(t, out)
	return out
}

// collectorType is the Prometheus type of a collector's metrics.
func collectorType(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		var d dto.Metric
		require.NoError(t, m.Write(&d))
		for range ch {
		}
		switch {
		case d.Counter != nil:
			return "counter"
		case d.Gauge != nil:
			return "gauge"
		case d.Histogram != nil:
			return "histogram"
		case d.Summary != nil:
			return "summary"
		}
	}
	return "untyped"
}

// TestMetricsDocumented compares docs/metrics.md with the metrics the binary
// registers (type and label names), checks that every documented metric
// still exists in the source, and runs promlint on the registered ones.
// The live /metrics of the image's binary is compared the same way in the
// chart end-to-end test (hack/e2e).
func TestMetricsDocumented(t *testing.T) {
	doc, err := docs.Metrics()
	require.NoError(t, err)
	reg := registeredMetrics(t)

	t.Run("every registered metric is documented", func(t *testing.T) {
		var missing, wrong []string
		for _, m := range reg {
			d, ok := doc[m.Name]
			if !ok {
				missing = append(missing, docs.Row(m.Name, m.Type, m.Labels, m.Help))
				continue
			}
			if d.Type != m.Type || !slices.Equal(d.Labels, m.Labels) {
				wrong = append(wrong, fmt.Sprintf("%s: documented as %s with labels %v, registered as %s with labels %v", m.Name, d.Type, d.Labels, m.Type, m.Labels))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%d metric(s) not in docs/metrics.md; add these rows (and say what they mean):\n%s", len(missing), strings.Join(missing, "\n"))
		}
		if len(wrong) > 0 {
			t.Errorf("docs/metrics.md disagrees with the code:\n%s", strings.Join(wrong, "\n"))
		}
	})

	t.Run("every documented metric exists", func(t *testing.T) {
		source := productSource(t)
		for name := range doc {
			if !slices.ContainsFunc(reg, func(m MetricInfo) bool { return m.Name == name }) {
				assert.Truef(t, strings.Contains(source, `"`+name+`"`),
					"docs/metrics.md documents %s, which no Go file outside hack/ names: remove the row", name)
			}
		}
	})

	t.Run("promlint", func(t *testing.T) {
		var fams []*dto.MetricFamily
		for _, m := range reg {
			name, help := m.Name, m.Help
			typ := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE,
				"histogram": dto.MetricType_HISTOGRAM, "summary": dto.MetricType_SUMMARY}[m.Type]
			fams = append(fams, &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: []*dto.Metric{{}}})
		}
		problems, err := promlint.NewWithMetricFamilies(fams).Lint()
		require.NoError(t, err)
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	})
}

// productSource is the text of every non-test Go file of the module outside
// hack/.
func productSource(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	root := filepath.Join("..", "..")
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "hack" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	}))
	return b.String()
}

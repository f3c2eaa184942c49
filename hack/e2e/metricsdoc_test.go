// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/docs"
)

// checkLiveMetricsDocumented reads the live /metrics of the controller and
// checks, as kube-state-metrics checks its documentation, that every
// tierscaler_* family there is in docs/metrics.md with its type and label
// names, and runs promlint on them. Families that have not been touched
// yet (a vector without a child) are not exposed: the unit test
// TestMetricsDocumented covers those from the registry.
func checkLiveMetricsDocumented(t *testing.T, metricsURL string) {
	t.Helper()
	resp, err := httpClient.Get(metricsURL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)

	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	doc, err := docs.Metrics()
	require.NoError(t, err)
	var seen, missing, wrong []string
	for name, f := range fams {
		if !strings.HasPrefix(name, "tierscaler_") {
			continue
		}
		seen = append(seen, name)
		typ := strings.ToLower(f.GetType().String())
		var labels []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		sort.Strings(labels)
		d, ok := doc[name]
		switch {
		case !ok:
			missing = append(missing, docs.Row(name, typ, labels, f.GetHelp()))
		case d.Type != typ || !slices.Equal(d.Labels, labels):
			wrong = append(wrong, fmt.Sprintf("%s: documented as %s %v, served as %s %v", name, d.Type, d.Labels, typ, labels))
		}
	}
	sort.Strings(seen)
	t.Logf("%d tierscaler_* families served, %d documented: %s", len(seen), len(doc), strings.Join(seen, " "))
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("the live /metrics serve %d metric(s) docs/metrics.md lacks; add these rows:\n%s", len(missing), strings.Join(missing, "\n"))
	}
	if len(wrong) > 0 {
		t.Errorf("docs/metrics.md disagrees with the live /metrics:\n%s", strings.Join(wrong, "\n"))
	}

	var ours []*dto.MetricFamily
	for name, f := range fams {
		if strings.HasPrefix(name, "tierscaler_") {
			ours = append(ours, f)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	require.NoError(t, err)
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

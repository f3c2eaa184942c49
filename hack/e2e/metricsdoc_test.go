// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// documentedMetric is a row of docs/metrics.md.
type documentedMetric struct {
	typ    string
	labels []string // sorted
}

var metricsDocRow = regexp.MustCompile("^\\| `(tierscaler_[a-z0-9_]+)` \\| ([a-z]+) \\| ([^|]*) \\|")

func readMetricsDoc(t *testing.T) map[string]documentedMetric {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "metrics.md"))
	require.NoError(t, err)
	out := map[string]documentedMetric{}
	for _, line := range strings.Split(string(b), "\n") {
		m := metricsDocRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "—" {
				labels = append(labels, l)
			}
		}
		sort.Strings(labels)
		out[m[1]] = documentedMetric{typ: m[2], labels: labels}
	}
	require.NotEmpty(t, out)
	return out
}

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
	doc := readMetricsDoc(t)
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
			l := "—"
			if len(labels) > 0 {
				l = "`" + strings.Join(labels, "`, `") + "`"
			}
			missing = append(missing, fmt.Sprintf("| `%s` | %s | %s | %s |", name, typ, l, f.GetHelp()))
		case d.typ != typ || !slices.Equal(d.labels, labels):
			wrong = append(wrong, fmt.Sprintf("%s: documented as %s %v, served as %s %v", name, d.typ, d.labels, typ, labels))
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

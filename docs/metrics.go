// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
)

// Metric is a metric documented in metrics.md.
type Metric struct {
	Name string
	// Type is counter, gauge, histogram or summary.
	Type string
	// Labels are its label names, sorted.
	Labels []string
}

var metricRow = regexp.MustCompile("^\\| `(tierscaler_[a-z0-9_]+)` \\| ([a-z]+) \\| ([^|]*) \\|")

// MetricsFile is the path of metrics.md.
func MetricsFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "metrics.md")
}

// Metrics parses the tables of metrics.md: rows
// "| `name` | type | `label`, `label` | meaning |" ("—" for no label).
func Metrics() (map[string]Metric, error) {
	b, err := os.ReadFile(MetricsFile())
	if err != nil {
		return nil, err
	}
	out := map[string]Metric{}
	for _, line := range strings.Split(string(b), "\n") {
		m := metricRow.FindStringSubmatch(line)
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
		if _, dup := out[m[1]]; dup {
			return nil, fmt.Errorf("metrics.md documents %s twice", m[1])
		}
		out[m[1]] = Metric{Name: m[1], Type: m[2], Labels: labels}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no metric rows in %s", MetricsFile())
	}
	return out, nil
}

// Row is the metrics.md table row for a metric, to paste; help is its
// meaning.
func Row(name, typ string, labels []string, help string) string {
	l := "—"
	if len(labels) > 0 {
		l = "`" + strings.Join(labels, "`, `") + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s | %s |", name, typ, l, help)
}

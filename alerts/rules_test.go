// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// rulesDir holds the chart's Prometheus rule files and their promtool tests.
var rulesDir = filepath.Join("..", "deploy", "chart", "tierscaler", "rules")

// promtool finds promtool ($PROMTOOL, else PATH). -short runs skip the
// rule tests.
func promtool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the rule tests run promtool, an external process: skipped by make test-unit (-short), run by make test")
	}
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		if testing.Short() {
			t.Skip("promtool is not installed (Debian: apt-get install prometheus); the rule tests need it and are skipped in -short mode")
		}
		t.Fatalf("the rule tests need promtool: %v (Debian: apt-get install prometheus, or set $PROMTOOL)", err)
	}
	return p
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = rulesDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
}

func ruleFiles(t *testing.T) (rules, tests []string) {
	t.Helper()
	rules, err := filepath.Glob(filepath.Join(rulesDir, "*.rules.yaml"))
	require.NoError(t, err)
	tests, err = filepath.Glob(filepath.Join(rulesDir, "*_test.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, rules, "no rule files in %s", rulesDir)
	require.NotEmpty(t, tests, "no promtool tests in %s", rulesDir)
	return rules, tests
}

// TestPrometheusRules checks the rule files and runs their promtool unit
// tests.
func TestPrometheusRules(t *testing.T) {
	bin := promtool(t)
	rules, tests := ruleFiles(t)
	base := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = filepath.Base(p)
		}
		return out
	}
	runPromtool(t, bin, append([]string{"check", "rules"}, base(rules)...)...)
	runPromtool(t, bin, append([]string{"test", "rules"}, base(tests)...)...)
}

// TestPrometheusRulesCoverage checks that every alerting rule has a promtool
// case where it fires and one where it does not, and that no rule reuses
// the names of the alerts the Notifier posts (its startup clean-up resolves
// those).
func TestPrometheusRulesCoverage(t *testing.T) {
	rules, tests := ruleFiles(t)
	type ruleFile struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	type testFile struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	read := func(path string, v any) {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(data, v), path)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	tested := map[string]bool{}
	for _, p := range tests {
		var tf testFile
		read(p, &tf)
		for _, rf := range tf.RuleFiles {
			tested[rf] = true
		}
		for _, tc := range tf.Tests {
			for _, at := range tc.AlertRuleTest {
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname] = true
				} else {
					quiet[at.Alertname] = true
				}
			}
		}
	}
	for _, p := range rules {
		if !tested[filepath.Base(p)] {
			t.Errorf("%s is not loaded by any promtool test", p)
		}
		var rf ruleFile
		read(p, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if slices.Contains(AlertNames, r.Alert) {
					t.Errorf("%s: rule %s reuses the name of an alert the notifier posts", p, r.Alert)
				}
				if !fires[r.Alert] {
					t.Errorf("%s: rule %s has no promtool case where it fires", p, r.Alert)
				}
				if !quiet[r.Alert] {
					t.Errorf("%s: rule %s has no promtool case where it does not fire", p, r.Alert)
				}
			}
		}
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The labels every alert of the chart carries, and the one none may carry.
const (
	labelComponent    = "component"
	componentName     = "tierscaler"
	labelService      = "service"
	labelSeverity     = "severity"
	labelFunctionName = "function_name"
)

// TestAlertLabelsAreSafeNextToOpenFaaSCE checks the labels of the chart's
// alerting rules (rules/*.rules.yaml) and of the alerts their promtool tests
// expect (rules/*_test.yaml; promtool compares the labels exactly, so what
// is checked here is what the rules produce):
//
//   - every alert carries component: tierscaler and a service label;
//   - none carries function_name: OpenFaaS CE's Alertmanager sends every
//     alert to the gateway's /system/alert, which scales any function named
//     in a firing alert's function_name and sets it back to its minimum on
//     resolve;
//   - a rule whose severity depends on its labels (critical or warning)
//     puts them in its service label too: CE's inhibit rule mutes a warning
//     while a critical alert with the same alertname, cluster and service
//     fires.
func TestAlertLabelsAreSafeNextToOpenFaaSCE(t *testing.T) {
	rules, err := filepath.Glob(filepath.Join(chartDir, "rules", "*.rules.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	alerts := 0
	for _, p := range rules {
		var file struct {
			Groups []struct {
				Rules []struct {
					Alert  string            `json:"alert"`
					Labels map[string]string `json:"labels"`
				} `json:"rules"`
			} `json:"groups"`
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &file), p)
		for _, g := range file.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts++
				where := filepath.Base(p) + ": " + r.Alert
				assert.Equal(t, componentName, r.Labels[labelComponent], "%s: label %s", where, labelComponent)
				assert.NotEmpty(t, r.Labels[labelService], "%s: no %s label", where, labelService)
				assert.NotContains(t, r.Labels, labelFunctionName, "%s: carries function_name", where)
				if strings.Contains(r.Labels[labelSeverity], "{{") {
					assert.Contains(t, r.Labels[labelService], "{{",
						"%s: its severity depends on its labels but its service does not: CE's inhibit rule would let a critical alert mute a warning one", where)
				}
			}
		}
	}
	require.NotZero(t, alerts, "no alerting rules in %v", rules)

	tests, err := filepath.Glob(filepath.Join(chartDir, "rules", "*_test.yaml"))
	require.NoError(t, err)
	expected := 0
	for _, p := range tests {
		var file struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `json:"alertname"`
					ExpAlerts []struct {
						ExpLabels map[string]string `json:"exp_labels"`
					} `json:"exp_alerts"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &file), p)
		for _, tc := range file.Tests {
			for _, at := range tc.AlertRuleTest {
				for _, a := range at.ExpAlerts {
					expected++
					where := filepath.Base(p) + ": " + at.Alertname
					assert.Equal(t, componentName, a.ExpLabels[labelComponent], "%s: expected alert without component: tierscaler", where)
					assert.NotEmpty(t, a.ExpLabels[labelService], "%s: expected alert without service", where)
					assert.NotContains(t, a.ExpLabels, labelFunctionName, "%s: expected alert carries function_name", where)
				}
			}
		}
	}
	require.NotZero(t, expected, "no expected alerts in %v", tests)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/policy"
)

// recordingGroup is the name of the group of rules/recording.rules.yaml.
const recordingGroup = "tierscaler-recording"

// TestRecordingRules renders the chart with recordingRules.enabled on and
// off: on, the PrometheusRule carries rules/recording.rules.yaml unchanged
// and the policy reads the recorded series with exactly the binary's
// policy.Recorded*Query (docs/policy-file.md, "Recording rules"), a query
// set in the values still winning; off, neither.
func TestRecordingRules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "rules", "recording.rules.yaml"))
	require.NoError(t, err)
	var file ruleGroups
	require.NoError(t, yaml.Unmarshal(data, &file))
	require.Len(t, file.Groups, 1)
	require.Equal(t, recordingGroup, file.Groups[0].Name)

	recorded := policy.Queries{
		Functions:   policy.RecordedFunctionsQuery,
		Rejections:  policy.RecordedRejectionsQuery,
		Invocations: policy.RecordedInvocationsQuery,
		Duration:    policy.RecordedDurationQuery,
		Inflight:    policy.RecordedInflightQuery,
		Pending:     policy.DefaultPendingQuery,
		CPU:         policy.DefaultCPUQuery,
		Memory:      policy.DefaultMemoryQuery,
	}
	defaults := policy.Default().Queries
	// custom is a valid inflight query of the values (the Pro gauge).
	const custom = `max_over_time(sum by (function_name) (gateway_function_invocation_inflight)[1m:5s])`
	withCustom := recorded
	withCustom.Inflight = custom

	cases := []struct {
		name string
		args []string
		// rule: the PrometheusRule is rendered; recording: with the group.
		rule, recording bool
		want            policy.Queries
	}{
		{name: "off", args: []string{"--set", "prometheusRule.enabled=true"}, rule: true, want: defaults},
		{name: "on", args: []string{"--set", "prometheusRule.enabled=true", "--set", "recordingRules.enabled=true"},
			rule: true, recording: true, want: recorded},
		{name: "on, a query of the values wins", args: []string{"--set", "prometheusRule.enabled=true", "--set", "recordingRules.enabled=true",
			"--set-string", "policy.queries.inflight=" + custom}, rule: true, recording: true, want: withCustom},
		{name: "on without the PrometheusRule (rules loaded by hand)", args: []string{"--set", "recordingRules.enabled=true"}, want: recorded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := template(t, tc.args...)
			p := renderedPolicy(t, m)
			assert.Equal(t, tc.want, p.Queries)

			o, ok := m.find("PrometheusRule", "")
			require.Equal(t, tc.rule, ok, "PrometheusRule rendered")
			if !ok {
				return
			}
			var pr struct {
				Spec ruleGroups `json:"spec"`
			}
			require.NoError(t, yaml.Unmarshal(o.JSON, &pr))
			var got []map[string]any
			for _, g := range pr.Spec.Groups {
				if g.Name == recordingGroup {
					require.Nil(t, got, "group %s twice", recordingGroup)
					got = g.Rules
				}
			}
			if !tc.recording {
				assert.Nil(t, got, "group %s rendered with recordingRules.enabled off", recordingGroup)
				return
			}
			assert.Equal(t, file.Groups[0].Rules, got, "the PrometheusRule carries rules/recording.rules.yaml unchanged")
		})
	}
}

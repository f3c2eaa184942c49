// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tierscaler/tierscaler/policy"
)

func TestAlert(t *testing.T) {
	deadline := time.Date(2026, 11, 24, 10, 30, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name            string
		sf              policy.Shortfall
		extra           map[string]string
		wantLabels      map[string]string
		wantAnnotations map[string]string
	}{
		{
			name: "sync capacity shortfall is critical",
			sf: policy.Shortfall{Function: "figlet", Namespace: "openfaas-fn", Tier: policy.TierSync, Reason: policy.ShortfallCapacity,
				Missing: policy.Resources{MilliCPU: 1500, Memory: 256 << 20, Pods: 3}, Message: "3 of 5 pod(s) of figlet.openfaas-fn do not fit"},
			wantLabels: map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "figlet.openfaas-fn", "severity": "critical",
				"function": "figlet.openfaas-fn", "namespace": "openfaas-fn", "tier": "sync", "reason": "insufficient-capacity"},
			wantAnnotations: map[string]string{"summary": "figlet.openfaas-fn (sync): 3 pod(s) do not fit on any node",
				"description": "3 of 5 pod(s) of figlet.openfaas-fn do not fit", "missing_cpu": "1500m", "missing_memory": "256Mi", "missing_pods": "3"},
		},
		{
			name: "async quota shortfall is a warning",
			sf: policy.Shortfall{Function: "resize", Namespace: "team-a", Tier: policy.TierAsync, Reason: policy.ShortfallQuota,
				Missing: policy.Resources{MilliCPU: 2000, Memory: 1 << 30, Pods: 2}, Message: "quota"},
			wantLabels: map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "resize.team-a", "severity": "warning",
				"function": "resize.team-a", "namespace": "team-a", "tier": "async", "reason": "quota-exceeded"},
			wantAnnotations: map[string]string{"summary": "resize.team-a (async): 2 pod(s) exceed the ResourceQuota of namespace team-a",
				"description": "quota", "missing_cpu": "2", "missing_memory": "1Gi", "missing_pods": "2"},
		},
		{
			name: "cron budget shortfall with a deadline",
			sf: policy.Shortfall{Function: "report", Namespace: "openfaas-fn", Tier: policy.TierCron, Reason: policy.ShortfallBudget,
				Missing: policy.Resources{MilliCPU: 100, Memory: 128 << 20, Pods: 1}, Deadline: deadline, Message: "budget"},
			wantLabels: map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "report.openfaas-fn", "severity": "warning",
				"function": "report.openfaas-fn", "namespace": "openfaas-fn", "tier": "cron", "reason": "eviction-budget-exhausted"},
			wantAnnotations: map[string]string{"summary": "report.openfaas-fn (cron): 1 pod(s) wait for the eviction budget",
				"description": "budget", "missing_cpu": "100m", "missing_memory": "128Mi", "missing_pods": "1", "deadline": "2026-11-24T09:30:00Z"},
		},
		{
			name: "prewarm missed is critical",
			sf: policy.Shortfall{Function: "report", Namespace: "openfaas-fn", Tier: policy.TierCron, Reason: policy.ShortfallPrewarmMissed,
				Missing: policy.Resources{Pods: 1}, Deadline: deadline, Message: "report.openfaas-fn was not Ready by its fire time"},
			wantLabels: map[string]string{"alertname": AlertPrewarmMissed, "component": "tierscaler", "service": "report.openfaas-fn", "severity": "critical",
				"function": "report.openfaas-fn", "namespace": "openfaas-fn", "tier": "cron", "reason": "prewarm-missed"},
			wantAnnotations: map[string]string{"summary": "report.openfaas-fn (cron): not Ready by its fire time",
				"description": "report.openfaas-fn was not Ready by its fire time", "missing_cpu": "0", "missing_memory": "0",
				"missing_pods": "1", "deadline": "2026-11-24T09:30:00Z"},
		},
		{
			name: "async activation timeout is a warning",
			sf: policy.Shortfall{Function: "ingest", Namespace: "openfaas-fn", Tier: policy.TierAsync, Reason: policy.ShortfallActivationTimeout,
				Missing: policy.Resources{Pods: 1}, Deadline: deadline, Message: "late"},
			wantLabels: map[string]string{"alertname": AlertActivationTimeout, "component": "tierscaler", "service": "ingest.openfaas-fn", "severity": "warning",
				"function": "ingest.openfaas-fn", "namespace": "openfaas-fn", "tier": "async", "reason": "activation-timeout"},
			wantAnnotations: map[string]string{"summary": "ingest.openfaas-fn (async): not Ready within the activation timeout",
				"description": "late", "missing_cpu": "0", "missing_memory": "0", "missing_pods": "1", "deadline": "2026-11-24T09:30:00Z"},
		},
		{
			name: "metrics unavailable is cluster-wide with a placeholder tier",
			sf:   policy.Shortfall{Reason: policy.ShortfallMetricsUnavailable, Message: "Prometheus data is unavailable"},
			wantLabels: map[string]string{"alertname": AlertMetricsUnavailable, "component": "tierscaler", "service": "tierscaler", "severity": "warning",
				"tier": TierClusterWide, "reason": "metrics-unavailable"},
			wantAnnotations: map[string]string{"summary": "tierscaler is failing static: Prometheus data is unavailable, stale or invalid",
				"description": "Prometheus data is unavailable", "missing_cpu": "0", "missing_memory": "0", "missing_pods": "0"},
		},
		{
			name:  "extra labels are added but never replace the alert's own",
			sf:    policy.Shortfall{Reason: policy.ShortfallMetricsUnavailable},
			extra: map[string]string{"cluster": "prod", "severity": "info", "empty": ""},
			wantLabels: map[string]string{"alertname": AlertMetricsUnavailable, "component": "tierscaler", "service": "tierscaler", "severity": "warning",
				"tier": TierClusterWide, "reason": "metrics-unavailable", "cluster": "prod"},
			wantAnnotations: map[string]string{"summary": "tierscaler is failing static: Prometheus data is unavailable, stale or invalid",
				"description": "tierscaler is failing static: Prometheus data is unavailable, stale or invalid",
				"missing_cpu": "0", "missing_memory": "0", "missing_pods": "0"},
		},
		{
			name: "a cron function at risk is a warning with its fire time",
			sf: policy.Shortfall{Function: "report", Namespace: "openfaas-fn", Tier: policy.TierCron, Reason: policy.ShortfallCronAtRisk,
				Missing: policy.Resources{MilliCPU: 500, Memory: 256 << 20, Pods: 1}, Deadline: deadline, Message: "will not fit"},
			wantLabels: map[string]string{"alertname": AlertCronAtRisk, "component": "tierscaler", "service": "report.openfaas-fn", "severity": "warning",
				"function": "report.openfaas-fn", "namespace": "openfaas-fn", "tier": "cron", "reason": "cron-at-risk"},
			wantAnnotations: map[string]string{"summary": "report.openfaas-fn (cron): 1 pod(s) will not fit at its prewarm for the run at 2026-11-24T09:30:00Z",
				"description": "will not fit", "missing_cpu": "500m", "missing_memory": "256Mi", "missing_pods": "1", "deadline": "2026-11-24T09:30:00Z"},
		},
		{
			name:  "an extra function_name label is never added",
			sf:    policy.Shortfall{Function: "x", Namespace: "y", Tier: policy.TierAsync, Reason: policy.ShortfallCapacity, Message: "m"},
			extra: map[string]string{"function_name": "x.y", "cluster": "prod"},
			wantLabels: map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "x.y", "severity": "warning",
				"function": "x.y", "namespace": "y", "tier": "async", "reason": "insufficient-capacity", "cluster": "prod"},
			wantAnnotations: map[string]string{"summary": "x.y (async): 0 pod(s) do not fit on any node", "description": "m",
				"missing_cpu": "0", "missing_memory": "0", "missing_pods": "0"},
		},
		{
			name: "an unknown reason still raises an alert",
			sf:   policy.Shortfall{Function: "x", Namespace: "y", Tier: policy.TierSync, Reason: "something-new", Message: "m"},
			wantLabels: map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "x.y", "severity": "warning",
				"function": "x.y", "namespace": "y", "tier": "sync", "reason": "something-new"},
			wantAnnotations: map[string]string{"summary": "x.y (sync): shortfall: something-new", "description": "m",
				"missing_cpu": "0", "missing_memory": "0", "missing_pods": "0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Alert(tt.sf, tt.extra)
			if d := cmp.Diff(tt.wantLabels, got.Labels); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantAnnotations, got.Annotations); d != "" {
				t.Errorf("annotations (-want +got):\n%s", d)
			}
			if !got.StartsAt.IsZero() || !got.EndsAt.IsZero() {
				t.Errorf("Alert set times: %v %v", got.StartsAt, got.EndsAt)
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		reason policy.ShortfallReason
		tier   policy.Tier
		want   string
	}{
		{policy.ShortfallCapacity, policy.TierSync, SeverityCritical},
		{policy.ShortfallQuota, policy.TierSync, SeverityCritical},
		{policy.ShortfallBudget, policy.TierSync, SeverityCritical},
		{policy.ShortfallCapacity, policy.TierCron, SeverityWarning},
		{policy.ShortfallCapacity, policy.TierAsync, SeverityWarning},
		{policy.ShortfallPrewarmMissed, policy.TierCron, SeverityCritical},
		{policy.ShortfallActivationTimeout, policy.TierSync, SeverityCritical},
		{policy.ShortfallActivationTimeout, policy.TierAsync, SeverityWarning},
		{policy.ShortfallMetricsUnavailable, "", SeverityWarning},
		{policy.ShortfallCronAtRisk, policy.TierCron, SeverityWarning},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason)+"/"+string(tt.tier), func(t *testing.T) {
			if got := Severity(policy.Shortfall{Reason: tt.reason, Tier: tt.tier}); got != tt.want {
				t.Errorf("Severity = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAlertName(t *testing.T) {
	for reason, want := range map[policy.ShortfallReason]string{
		policy.ShortfallCapacity: AlertCapacityShortfall, policy.ShortfallQuota: AlertCapacityShortfall,
		policy.ShortfallBudget: AlertCapacityShortfall, policy.ShortfallPrewarmMissed: AlertPrewarmMissed,
		policy.ShortfallActivationTimeout: AlertActivationTimeout, policy.ShortfallMetricsUnavailable: AlertMetricsUnavailable,
		policy.ShortfallCronAtRisk: AlertCronAtRisk, "nope": "",
	} {
		if got := AlertName(reason); got != want {
			t.Errorf("AlertName(%q) = %q, want %q", reason, got, want)
		}
	}
}

// TestAlertsAreSafeNextToOpenFaaSCE: OpenFaaS CE's Alertmanager sends every
// alert to the gateway's /system/alert, which scales any function named in
// a firing alert's function_name label; and it inhibits warnings while a
// critical alert with the same alertname, cluster and service fires. So no
// alert of tierscaler carries function_name, and no two alerts about
// different functions share the service label (a critical shortfall of one
// sync function must not mute the warning of a cron or async one).
func TestAlertsAreSafeNextToOpenFaaSCE(t *testing.T) {
	reasons := []policy.ShortfallReason{policy.ShortfallCapacity, policy.ShortfallQuota, policy.ShortfallBudget,
		policy.ShortfallPrewarmMissed, policy.ShortfallActivationTimeout, policy.ShortfallMetricsUnavailable,
		policy.ShortfallCronAtRisk, "something-new"}
	tiers := []policy.Tier{policy.TierSync, policy.TierCron, policy.TierAsync}
	type key struct{ alertname, cluster, service string }
	severities := map[key]map[string]string{} // inhibit group -> severity -> function
	for _, r := range reasons {
		for _, tier := range tiers {
			for _, fn := range []string{"a", "b", ""} {
				sf := policy.Shortfall{Function: fn, Namespace: "openfaas-fn", Tier: tier, Reason: r}
				if fn == "" {
					sf.Namespace, sf.Tier = "", ""
				}
				a := Alert(sf, map[string]string{"cluster": "prod", LabelFunctionName: "x.y"})
				if v, ok := a.Labels[LabelFunctionName]; ok {
					t.Fatalf("%s/%s/%q: the alert carries function_name=%q", r, tier, fn, v)
				}
				if a.Labels[LabelComponent] != ComponentName {
					t.Fatalf("%s/%s/%q: component label %q", r, tier, fn, a.Labels[LabelComponent])
				}
				k := key{a.Labels[LabelAlertName], a.Labels["cluster"], a.Labels[LabelService]}
				if severities[k] == nil {
					severities[k] = map[string]string{}
				}
				who := a.Labels[LabelFunction]
				if prev, ok := severities[k][a.Labels[LabelSeverity]]; ok && prev != who {
					t.Fatalf("%v: functions %q and %q share an inhibit group", k, prev, who)
				}
				severities[k][a.Labels[LabelSeverity]] = who
			}
		}
	}
	// Within one group (one function), a critical alert and a warning can
	// only both exist if the function is both; a function has one tier, so
	// check that each group's severities come from one tier's rule.
	for k, bySeverity := range severities {
		if len(bySeverity) > 1 && k.service == ServiceName {
			t.Errorf("%v: the cluster-wide group mixes severities %v", k, bySeverity)
		}
	}
}

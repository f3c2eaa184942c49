// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("apiVersion: tierscaler.io/v1alpha1\nkind: Policy\ninterval: soon\nthresholds: {cpu: 2}\nbogus: 1\n"), 0o600))
	cases := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "no arguments", wantCode: 2, wantStderr: []string{"Usage: tierscaler <command>"}},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStderr: []string{"run", "plan", "validate", "status"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`}},
		{name: "validate the example", args: []string{"validate", "../../deploy/policy.example.yaml"}, wantCode: 0,
			wantStdout: []string{"apiVersion: tierscaler.io/v1alpha1", "kind: Policy", "defaultTier: sync"}},
		{name: "validate reports every error", args: []string{"validate", bad}, wantCode: 1,
			wantStderr: []string{"interval", "thresholds.cpu", "bogus"}},
		{name: "validate a missing file", args: []string{"validate", filepath.Join(dir, "nope.yaml")}, wantCode: 1,
			wantStderr: []string{"nope.yaml"}},
		{name: "validate needs a file", args: []string{"validate"}, wantCode: 2, wantStderr: []string{"want exactly one policy file"}},
		{name: "plan refuses an unknown output", args: []string{"plan", "-o", "yaml"}, wantCode: 2, wantStderr: []string{`-o "yaml": want table or json`}},
		{name: "run refuses an unknown flag", args: []string{"run", "--frob"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -frob"}},
		{name: "run checks the alerts' generator URL", args: []string{"run", "--policy", "../../deploy/policy.example.yaml", "--webhook-addr", "",
			"--alert-generator-url", "/status"}, wantCode: 1, wantStderr: []string{`generator URL "/status" is not an absolute URL`}},
		{name: "run checks --prometheus-url", args: []string{"run", "--policy", "../../deploy/policy.example.yaml", "--webhook-addr", "",
			"--prometheus-url", "localhost:9090"}, wantCode: 2, wantStderr: []string{`--prometheus-url: must be an http or https URL, got "localhost:9090"`}},
		{name: "run checks every --alertmanager-url", args: []string{"run", "--policy", "../../deploy/policy.example.yaml", "--webhook-addr", "",
			"--alertmanager-url", "http://am-0:9093, am-1:9093"}, wantCode: 2, wantStderr: []string{`--alertmanager-url: must be an http or https URL, got "am-1:9093"`}},
		{name: "run refuses credentials in --prometheus-url, without printing them", args: []string{"run", "--policy", "../../deploy/policy.example.yaml", "--webhook-addr", "",
			"--prometheus-url", "http://admin:s3cret@prometheus:9090"}, wantCode: 2, wantStderr: []string{`--prometheus-url: URL "http://admin:xxxxx@prometheus:9090" holds credentials`}},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: []string{"tierscaler dev"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			require.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, w := range tc.wantStdout {
				require.Contains(t, stdout.String(), w)
			}
			for _, w := range tc.wantStderr {
				require.Contains(t, stderr.String(), w)
			}
		})
	}
}

func TestPrintPlan(t *testing.T) {
	deadline := time.Date(2026, 11, 24, 12, 1, 0, 0, time.UTC)
	p := &policy.Plan{
		MetricsAvailable: true,
		Actions: []policy.Action{
			{Function: "thumbnails", Namespace: "openfaas-fn", Tier: policy.TierAsync, From: 1, To: 0, Reason: policy.ReasonEvictForCapacity, Claim: "checkout.openfaas-fn", Explanation: "idle"},
			{Function: "checkout", Namespace: "openfaas-fn", Tier: policy.TierSync, From: 2, To: 6, Reason: policy.ReasonScaleUpRejections, Explanation: "429s"},
		},
		Shortfalls: []policy.Shortfall{{Function: "report", Namespace: "openfaas-fn", Tier: policy.TierCron, Reason: policy.ShortfallCapacity,
			Missing: policy.Resources{MilliCPU: 500, Memory: 256 << 20, Pods: 1}, Deadline: deadline, Message: "no room"}},
		Checks: []policy.ReadinessCheck{{Function: "report", Namespace: "openfaas-fn", Kind: policy.CheckPrewarm, Deadline: deadline}},
	}
	var out bytes.Buffer
	require.NoError(t, printPlan(&out, p))
	for _, want := range []string{
		"FUNCTION", "thumbnails.openfaas-fn", "1 → 0", "evict-for-capacity (for checkout.openfaas-fn)",
		"checkout.openfaas-fn", "2 → 6", "scale-up-rejections",
		"report.openfaas-fn", "insufficient-capacity", "cpu=500m memory=256Mi pods=1",
		"prewarm", "2026-11-24T12:01:00Z",
	} {
		require.Contains(t, out.String(), want)
	}
	out.Reset()
	require.NoError(t, printPlan(&out, &policy.Plan{}))
	require.Contains(t, out.String(), "Metrics are unavailable")
	require.Contains(t, out.String(), "No actions.")
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st := &scaler.Status{Time: now, Leader: true, MetricsAvailable: true, Functions: []scaler.FunctionStatus{
		{Function: "report.openfaas-fn", Tier: policy.TierCron, Replicas: 1, Ready: 0, Desired: 1, LastRun: now.Add(-time.Hour),
			NextFire: now.Add(time.Minute), State: "starting", LastAction: "prewarm-cron 0->1"},
	}}
	var out bytes.Buffer
	require.NoError(t, printStatus(&out, st))
	for _, want := range []string{"tierscaler leader", "metrics available", "report.openfaas-fn", "cron", "1h0m0s ago", "in 1m0s", "starting", "prewarm-cron 0->1"} {
		require.Contains(t, out.String(), want)
	}
}

func TestOverrideURLs(t *testing.T) {
	pol := policy.Default()
	require.NoError(t, overrideURLs(pol, "", ""))
	require.Equal(t, policy.Default().Prometheus.URL, pol.Prometheus.URL, "no flag: the policy's")
	require.Equal(t, policy.Default().Alertmanager.URLs, pol.Alertmanager.URLs)
	require.NoError(t, overrideURLs(pol, "http://127.0.0.1:9090", "http://127.0.0.1:9093, https://am.example:9093"))
	require.Equal(t, "http://127.0.0.1:9090", pol.Prometheus.URL)
	require.Equal(t, []string{"http://127.0.0.1:9093", "https://am.example:9093"}, pol.Alertmanager.URLs)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
	"github.com/tierscaler/tierscaler/workload"
)

func TestDemoPolicyIsValidForEveryInterval(t *testing.T) {
	for interval, window := range map[time.Duration]string{time.Second: "10s", 5 * time.Second: "10s", 30 * time.Second: "1m"} {
		text := renderPolicy(policyParams{PrometheusURL: "http://127.0.0.1:9090", AlertmanagerURL: "http://127.0.0.1:9093",
			Namespaces: []string{"openfaas-fn"}, TimeZone: "UTC", Interval: interval})
		p, err := policy.Parse([]byte(text))
		require.NoError(t, err, "interval %s:\n%s", interval, text)
		require.Equal(t, interval, p.Interval.Duration)
		require.Less(t, p.Prometheus.Timeout.Duration, interval)
		require.Equal(t, []string{"http://127.0.0.1:9093"}, p.AlertmanagerURLs())
		require.Contains(t, p.Queries.Rejections, "["+window+"]")
		require.Contains(t, p.Queries.Inflight, "["+window+":1s]")
	}
}

func TestAlertmanagerConfigRoutesActivationsToTheWebhook(t *testing.T) {
	var cfg struct {
		Route struct {
			Receiver string `json:"receiver"`
			Routes   []struct {
				Receiver string   `json:"receiver"`
				Matchers []string `json:"matchers"`
			} `json:"routes"`
		} `json:"route"`
		Receivers []struct {
			Name           string `json:"name"`
			WebhookConfigs []struct {
				URL        string `json:"url"`
				HTTPConfig struct {
					Authorization struct {
						Type            string `json:"type"`
						CredentialsFile string `json:"credentials_file"`
					} `json:"authorization"`
				} `json:"http_config"`
			} `json:"webhook_configs"`
		} `json:"receivers"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(alertmanagerConfig("http://127.0.0.1:8081/webhook/alertmanager", "/tmp/x/webhook-token")), &cfg))
	require.Equal(t, "null", cfg.Route.Receiver)
	require.Equal(t, "tierscaler-webhook", cfg.Route.Routes[0].Receiver)
	require.Equal(t, []string{`tierscaler="activate"`}, cfg.Route.Routes[0].Matchers)
	var hook bool
	for _, r := range cfg.Receivers {
		if r.Name == "tierscaler-webhook" {
			hook = true
			require.Equal(t, "http://127.0.0.1:8081/webhook/alertmanager", r.WebhookConfigs[0].URL)
			require.Equal(t, "Bearer", r.WebhookConfigs[0].HTTPConfig.Authorization.Type)
			require.Equal(t, "/tmp/x/webhook-token", r.WebhookConfigs[0].HTTPConfig.Authorization.CredentialsFile)
		}
	}
	require.True(t, hook)
}

// TestConfigsPassTheRealCheckers runs amtool (when installed) on the
// Alertmanager configuration. The demo loads the chart's rule files
// unchanged; alerts/rules_test.go runs promtool on them.
func TestConfigsPassTheRealCheckers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs amtool")
	}
	dir := t.TempDir()
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		amtool, err = exec.LookPath("prometheus-alertmanager-amtool")
	}
	if err != nil {
		t.Log("amtool is not installed: the Alertmanager configuration is checked by the integration test")
		return
	}
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("x\n"), 0o600))
	am := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(am, []byte(alertmanagerConfig("http://127.0.0.1:8081/webhook/alertmanager", token)), 0o644))
	out, err := exec.Command(amtool, "check-config", am).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func TestBurstExampleOffersFourReplicasWorth(t *testing.T) {
	s, err := workload.Builtin("mixed-small")
	require.NoError(t, err)
	fn, rps, ok := burstExample(s)
	require.True(t, ok)
	require.Equal(t, "api", fn)
	require.Equal(t, 200, rps, "4 replicas × 5 in flight / 100ms")
	name, ok := firstOf(s, policy.TierAsync)
	require.True(t, ok)
	require.Equal(t, "resize", name)
}

func TestRenderStatus(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 3, 0, 0, time.UTC)
	st := &scaler.Status{Time: now, Leader: true, MetricsAvailable: true,
		Functions: []scaler.FunctionStatus{
			{Function: "api.openfaas-fn", Tier: policy.TierSync, Replicas: 1, Ready: 1, Desired: 5, LastRun: now.Add(-2 * time.Second),
				State: "ready", LastAction: "2026-01-05T09:02:48Z scale-up-rejections 1->5"},
			{Function: "report.openfaas-fn", Tier: policy.TierCron, NextFire: now.Add(2 * time.Minute), State: "zero"},
		},
		Shortfalls: []policy.Shortfall{{Function: "big", Reason: policy.ShortfallCapacity, Message: "big needs 3 CPU"}},
	}
	var b bytes.Buffer
	require.NoError(t, renderStatus(&b, st, 5*time.Second))
	out := b.String()
	require.Contains(t, out, "tierscaler leader; metrics available; last cycle at")
	require.Regexp(t, `api\.openfaas-fn\s+sync\s+1\s+1\s+5\s+2s ago\s+-\s+ready\s+scale-up-rejections 1->5, 12s ago`, out)
	require.Regexp(t, `report\.openfaas-fn\s+cron\s+0\s+0\s+0\s+never\s+in 2m0s\s+zero\s+-`, out)
	require.Contains(t, out, "SHORTFALL insufficient-capacity: big needs 3 CPU")
	require.Equal(t, 1, actions(st))

	b.Reset()
	require.NoError(t, renderStatus(&b, &scaler.Status{}, 5*time.Second))
	require.Contains(t, b.String(), "STANDBY")
	require.Contains(t, b.String(), "metrics UNAVAILABLE")
	require.Contains(t, b.String(), "(no functions yet)")
}

func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "mixed-small", o.scenario)
	require.Equal(t, 5*time.Second, o.interval)
	for _, bad := range [][]string{{"--interval", "500ms"}, {"--duration", "-1s"}, {"--nodes", "-2"}, {"extra"}} {
		_, err := parseFlags(bad, io.Discard)
		require.Error(t, err, "%q", bad)
	}
	require.Equal(t, 2, run([]string{"--interval", "1ms"}, io.Discard, io.Discard))
	var stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"--tierscaler", filepath.Join(t.TempDir(), "missing")}, io.Discard, &stderr))
	require.Contains(t, stderr.String(), "make build")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/tierscaler/tierscaler/policy"
)

// presetGlob finds the chart's presets: values files for a kind of
// installation (values-openfaas-ce.yaml, ...), shipped in the chart.
const presetGlob = "values-*.yaml"

// tierscalerBinary builds cmd/tierscaler once per test run.
var tierscalerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tierscaler-deploy-test-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "tierscaler")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/tierscaler")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, b)
	}
	return out, nil
})

// TestPresets renders the chart with each preset, checks it with helm lint,
// and validates the rendered policy with the binary (`tierscaler validate
// -`), as an operator would before installing it. The chart README must
// document each preset.
func TestPresets(t *testing.T) {
	helmBinary(t) // skips in -short
	presets, err := filepath.Glob(filepath.Join(chartDir, presetGlob))
	require.NoError(t, err)
	if len(presets) == 0 {
		t.Skipf("no presets (%s) in %s yet", presetGlob, chartDir)
	}
	bin, err := tierscalerBinary()
	require.NoError(t, err, "go build ./cmd/tierscaler")
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bin)) })
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	for _, preset := range presets {
		name := filepath.Base(preset)
		t.Run(name, func(t *testing.T) {
			assert.Truef(t, strings.Contains(string(readme), name), "the chart README does not mention %s: document what it assumes", name)
			out, err := runHelm(t, "lint", "--strict", chartDir, "--namespace", namespace, "-f", preset)
			require.NoError(t, err)
			assert.Contains(t, out, "0 chart(s) failed")

			m := template(t, "-f", preset)
			cm := get[corev1.ConfigMap](t, m, "ConfigMap", release+"-policy")
			cmd := exec.Command(bin, "validate", "-")
			cmd.Stdin = strings.NewReader(cm.Data["policy.yaml"])
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), "tierscaler validate - of the policy %s renders:\n%s\n%s", name, stderr.String(), cm.Data["policy.yaml"])
			assert.Contains(t, stdout.String(), "kind: Policy")
		})
	}
}

// presetFile is the -f argument of a preset shipped in the chart.
func presetFile(name string) []string {
	return []string{"-f", filepath.Join(chartDir, name)}
}

// labelsOf decodes the metadata labels of the one object of kind.
func labelsOf(t *testing.T, m manifests, kind string) map[string]string {
	t.Helper()
	o, ok := m.find(kind, "")
	require.Truef(t, ok, "no %s rendered", kind)
	var meta struct {
		Metadata struct {
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	require.NoError(t, json.Unmarshal(o.JSON, &meta))
	return meta.Metadata.Labels
}

// TestPresetContents checks that each preset, alone and combined as the
// chart README says (an edition preset, then values-kube-prometheus-stack.yaml),
// renders what the README says it assumes, read back through the binary's
// policy parser.
func TestPresetContents(t *testing.T) {
	helmBinary(t) // skips in -short
	const (
		ce  = "values-openfaas-ce.yaml"
		pro = "values-openfaas-pro.yaml"
		kps = "values-kube-prometheus-stack.yaml"

		proPending    = `avg by (function_name) (queue_worker_pending_messages)`
		kubeletCPU    = `sum by (namespace, pod) (rate(pod_cpu_usage_seconds_total[1m]))`
		kubeletMemory = `sum by (namespace, pod) (pod_memory_working_set_bytes)`
		kpsPrometheus = "http://kube-prometheus-stack-prometheus.monitoring:9090"
		kpsAM         = "http://kube-prometheus-stack-alertmanager.monitoring:9093"
	)
	openfaasBasicAuth := func(t *testing.T, m manifests, want bool) {
		t.Helper()
		args := container(t, m).Args
		assert.Equal(t, want, slices.Contains(args, "--webhook-basic-auth-password-file=/etc/tierscaler/openfaas-basic-auth/basic-auth-password"), "OpenFaaS basic auth in %v", args)
		if want {
			assert.Contains(t, args, "--webhook-basic-auth-user=admin")
		}
	}
	kubePrometheusStack := func(t *testing.T, m manifests, p *policy.Policy) {
		t.Helper()
		assert.Equal(t, kpsPrometheus, p.Prometheus.URL)
		assert.Equal(t, []string{kpsAM}, p.AlertmanagerURLs())
		assert.True(t, p.CPUSignal())
		assert.True(t, p.MemorySignal())
		assert.Equal(t, policy.DefaultCPUQuery, p.Queries.CPU, "cadvisor")
		assert.Equal(t, policy.DefaultMemoryQuery, p.Queries.Memory, "cadvisor")
		assert.Equal(t, "kube-prometheus-stack", labelsOf(t, m, "ServiceMonitor")["release"])
		assert.Equal(t, "kube-prometheus-stack", labelsOf(t, m, "PrometheusRule")["release"])
		cm := get[corev1.ConfigMap](t, m, "ConfigMap", release+"-dashboard")
		assert.Equal(t, "monitoring", cm.Namespace)
	}
	cases := []struct {
		name  string
		files []string
		check func(t *testing.T, m manifests, p *policy.Policy)
	}{
		{name: ce, files: []string{ce}, check: func(t *testing.T, m manifests, p *policy.Policy) {
			assert.True(t, p.CE(), "openfaas.edition ce: never zero, never evict, at most 5")
			assert.False(t, p.CPUSignal(), "no cadvisor in CE's Prometheus")
			assert.False(t, p.MemorySignal(), "no cadvisor in CE's Prometheus")
			assert.Equal(t, "http://prometheus.openfaas:9090", p.Prometheus.URL)
			assert.Equal(t, []string{"http://alertmanager.openfaas:9093"}, p.AlertmanagerURLs())
			openfaasBasicAuth(t, m, true)
			_, rule := m.find("PrometheusRule", "")
			assert.False(t, rule, "no Prometheus Operator on a stock CE")
		}},
		{name: pro, files: []string{pro}, check: func(t *testing.T, m manifests, p *policy.Policy) {
			assert.False(t, p.CE())
			assert.True(t, p.ZeroCronWhenIdle(), "scale to zero")
			assert.NotEmpty(t, p.Preemption.Order, "eviction")
			assert.Positive(t, p.MaxEvictions(), "eviction")
			assert.Equal(t, proPending, p.Queries.Pending, "queue depth as OpenFaaS Pro's rule reads it")
			assert.Equal(t, kubeletCPU, p.Queries.CPU, "Pro's Prometheus scrapes the kubelet's resource metrics")
			assert.Equal(t, kubeletMemory, p.Queries.Memory)
			assert.True(t, p.CPUSignal())
			assert.False(t, p.AlertingEnabled(), "the Pro chart deploys no Alertmanager")
			openfaasBasicAuth(t, m, false)
		}},
		{name: kps, files: []string{kps}, check: func(t *testing.T, m manifests, p *policy.Policy) {
			kubePrometheusStack(t, m, p)
		}},
		{name: "CE, then kube-prometheus-stack", files: []string{ce, kps}, check: func(t *testing.T, m manifests, p *policy.Policy) {
			kubePrometheusStack(t, m, p)
			assert.True(t, p.CE(), "the edition stays")
			openfaasBasicAuth(t, m, true)
		}},
		{name: "Pro, then kube-prometheus-stack", files: []string{pro, kps}, check: func(t *testing.T, m manifests, p *policy.Policy) {
			kubePrometheusStack(t, m, p)
			assert.False(t, p.CE())
			assert.Equal(t, proPending, p.Queries.Pending, "the queue depth stays")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, f := range tc.files {
				args = append(args, presetFile(f)...)
			}
			m := template(t, args...)
			tc.check(t, m, renderedPolicy(t, m))
		})
	}
}

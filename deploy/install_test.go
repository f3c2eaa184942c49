// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

func appVersion(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &chart))
	return chart.AppVersion
}

func TestImageReference(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	v := appVersion(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "defaults: the appVersion", want: "tierscaler/tierscaler:" + v},
		{name: "a registry", args: []string{"--set", "image.registry=localhost:5000"}, want: "localhost:5000/tierscaler/tierscaler:" + v},
		{name: "a tag", args: []string{"--set", "image.tag=0.9.9"}, want: "tierscaler/tierscaler:0.9.9"},
		{name: "a digest pins the image", args: []string{"--set", "image.digest=" + digest}, want: "tierscaler/tierscaler:" + v + "@" + digest},
		{name: "all of them", args: []string{"--set", "image.registry=localhost:5000", "--set", "image.repository=acme/ts", "--set", "image.tag=1.0.0", "--set", "image.digest=" + digest},
			want: "localhost:5000/acme/ts:1.0.0@" + digest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := template(t, tc.args...)
			assert.Equal(t, tc.want, container(t, m).Image)
		})
	}
	t.Run("pull secrets", func(t *testing.T) {
		pod := deployment(t, template(t, "--set", "imagePullSecrets[0].name=regcred")).Spec.Template.Spec
		assert.Equal(t, []corev1.LocalObjectReference{{Name: "regcred"}}, pod.ImagePullSecrets)
	})
	for _, bad := range []string{"image.digest=sha256:short", "image.digest=latest", "image.registry=https://localhost:5000"} {
		t.Run("refused: "+bad, func(t *testing.T) {
			_, err := tryTemplate(t, "--set", bad)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "/image/")
		})
	}
}

func TestExtraEnvAndVolumes(t *testing.T) {
	m := template(t, "-f", "testdata/values-extras.yaml")
	c := container(t, m)
	pod := deployment(t, m).Spec.Template.Spec
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	assert.Equal(t, []string{"POD_NAMESPACE", "POD_NAME", "HTTPS_PROXY", "PROMETHEUS_TOKEN"}, names, "the chart's variables first, then extraEnv")
	for _, e := range c.Env {
		if e.Name == "PROMETHEUS_TOKEN" {
			require.NotNil(t, e.ValueFrom)
			require.NotNil(t, e.ValueFrom.SecretKeyRef)
			assert.Equal(t, "prometheus-token", e.ValueFrom.SecretKeyRef.Name)
		}
	}
	var vols []string
	for _, v := range pod.Volumes {
		vols = append(vols, v.Name)
	}
	assert.Contains(t, vols, "prometheus-ca")
	assert.Contains(t, vols, "policy", "the chart's own volumes stay")
	var mounts []string
	for _, vm := range c.VolumeMounts {
		mounts = append(mounts, vm.Name+"="+vm.MountPath)
	}
	assert.Contains(t, mounts, "prometheus-ca=/etc/tierscaler/prometheus-ca")
	assert.Contains(t, mounts, "tmp=/tmp")

	_, err := tryTemplate(t, "--set", "extraVolumeMounts[0].name=x")
	require.Error(t, err, "a mount without mountPath")
	assert.Contains(t, err.Error(), "mountPath")
}

func TestNetworkPolicy(t *testing.T) {
	_, ok := template(t).find("NetworkPolicy", "")
	assert.False(t, ok, "no NetworkPolicy by default")

	m := template(t, "--set", "networkPolicy.enabled=true")
	np := get[networkingv1.NetworkPolicy](t, m, "NetworkPolicy", release)
	d := deployment(t, m)
	assert.Equal(t, d.Spec.Selector.MatchLabels, np.Spec.PodSelector.MatchLabels, "it selects tierscaler's pods")
	assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes, "egress is not restricted")
	byPort := map[string]networkingv1.NetworkPolicyIngressRule{}
	for _, r := range np.Spec.Ingress {
		require.Len(t, r.Ports, 1)
		byPort[r.Ports[0].Port.String()] = r
	}
	require.Contains(t, byPort, "metrics")
	assert.Empty(t, byPort["metrics"].From, "the metrics port admits anyone by default")
	require.Contains(t, byPort, "webhook")
	var selectors []map[string]string
	for _, p := range byPort["webhook"].From {
		require.NotNil(t, p.PodSelector)
		require.NotNil(t, p.NamespaceSelector, "Alertmanager runs in another namespace")
		selectors = append(selectors, p.PodSelector.MatchLabels)
	}
	assert.ElementsMatch(t, []map[string]string{{"app": "alertmanager"}, {"app.kubernetes.io/name": "alertmanager"}}, selectors)
	// The named ports exist on the container.
	var ports []string
	for _, p := range container(t, m).Ports {
		ports = append(ports, p.Name)
	}
	assert.ElementsMatch(t, []string{"metrics", "webhook"}, ports)

	closed := get[networkingv1.NetworkPolicy](t, template(t, "--set", "networkPolicy.enabled=true", "--set-json", "networkPolicy.webhookFrom=[]"), "NetworkPolicy", release)
	require.Len(t, closed.Spec.Ingress, 1, "webhookFrom [] closes the webhook port")
	assert.Equal(t, "metrics", closed.Spec.Ingress[0].Ports[0].Port.String())

	narrowed := get[networkingv1.NetworkPolicy](t, template(t, "--set", "networkPolicy.enabled=true",
		"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`), "NetworkPolicy", release)
	for _, r := range narrowed.Spec.Ingress {
		if r.Ports[0].Port.String() == "metrics" {
			require.Len(t, r.From, 1)
			assert.Equal(t, "monitoring", r.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
		}
	}
}

// ruleGroups are the groups of the rendered PrometheusRule, each rule as
// rendered (alert or record, expr, for, labels, annotations).
type ruleGroups struct {
	Groups []struct {
		Name  string           `json:"name"`
		Rules []map[string]any `json:"rules"`
	} `json:"groups"`
}

func renderedRules(t *testing.T, args ...string) (ruleGroups, string) {
	t.Helper()
	m := template(t, append([]string{"--set", "prometheusRule.enabled=true"}, args...)...)
	o, ok := m.find("PrometheusRule", "")
	require.True(t, ok)
	var pr struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec ruleGroups `json:"spec"`
	}
	require.NoError(t, json.Unmarshal(o.JSON, &pr))
	return pr.Spec, pr.Metadata.Namespace
}

// tierscalerSelectors returns the matchers of every selector of a
// tierscaler_* metric or of up in the rules.
func tierscalerSelectors(t *testing.T, g ruleGroups) map[string][]*labels.Matcher {
	t.Helper()
	out := map[string][]*labels.Matcher{}
	for _, grp := range g.Groups {
		for _, rule := range grp.Rules {
			var r struct{ Alert, Record, Expr string }
			r.Alert, _ = rule["alert"].(string)
			r.Record, _ = rule["record"].(string)
			r.Expr, _ = rule["expr"].(string)
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			require.NoError(t, err, "rule %s%s: %s", r.Alert, r.Record, r.Expr)
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok || !(strings.HasPrefix(vs.Name, "tierscaler_") || vs.Name == "up") {
					return nil
				}
				var ms []*labels.Matcher
				for _, m := range vs.LabelMatchers {
					if m.Name != labels.MetricName {
						ms = append(ms, m)
					}
				}
				out[r.Alert+r.Record+": "+vs.String()] = ms
				return nil
			})
		}
	}
	return out
}

// TestRulesSelectTheScrape: every selector of tierscaler's series in the
// rule files carries the scrape matcher job!="", and the chart replaces it
// with prometheusRule.selector, by default the ServiceMonitor's job and
// namespace.
func TestRulesSelectTheScrape(t *testing.T) {
	requireRuleFiles(t)
	anyJob := []string{`job!=""`}
	cases := []struct {
		name string
		args []string
		want []string // the matchers (besides the query's own) of every selector
		ns   string
	}{
		{name: "no ServiceMonitor: any job (the pod annotations' scrape)", want: anyJob, ns: namespace},
		{name: "ServiceMonitor: its job and namespace", args: []string{"--set", "serviceMonitor.enabled=true"},
			want: []string{`job="tierscaler"`, `namespace="openfaas"`}, ns: namespace},
		{name: "ServiceMonitor of another release name", args: []string{"--set", "serviceMonitor.enabled=true", "--set", "fullnameOverride=autoscaler"},
			want: []string{`job="autoscaler"`, `namespace="openfaas"`}, ns: namespace},
		{name: "an explicit selector, the rule in the operator's namespace",
			args: []string{"--set", "serviceMonitor.enabled=true", "--set", `prometheusRule.selector=cluster="eu-1"`, "--set", "prometheusRule.namespace=monitoring"},
			want: []string{`cluster="eu-1"`}, ns: "monitoring"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, ns := renderedRules(t, tc.args...)
			assert.Equal(t, tc.ns, ns)
			sels := tierscalerSelectors(t, g)
			require.NotEmpty(t, sels)
			for where, ms := range sels {
				var got []string
				for _, m := range ms {
					if m.Name == "job" || m.Name == "namespace" || m.Name == "cluster" {
						got = append(got, m.String())
					}
				}
				assert.ElementsMatchf(t, tc.want, got, "%s", where)
			}
		})
	}
	t.Run("a selector that is not label matchers is refused", func(t *testing.T) {
		_, err := tryTemplate(t, "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.selector=tierscaler")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "/prometheusRule/selector")
	})
}

// TestRenderedRulesWithPromtool runs promtool's rule tests on the rendered
// PrometheusRule with series labelled as each scrape labels them: the
// chart's rules must not make TierscalerDown fire for ever while tierscaler
// is up, and must fire when it is down.
func TestRenderedRulesWithPromtool(t *testing.T) {
	helmBinary(t) // skips in -short, like every test that runs a tool
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install the Debian package prometheus (make tools does)")
	}
	requireRuleFiles(t)
	cases := []struct {
		name string
		args []string
		// target are the labels of tierscaler's scrape target.
		target string
		// labels the TierscalerDown alert carries besides severity and
		// service (absent() keeps the selector's equality matchers).
		downLabels map[string]string
	}{
		{name: "the ServiceMonitor's scrape", args: []string{"--set", "serviceMonitor.enabled=true"},
			target:     `job="tierscaler", namespace="openfaas", service="tierscaler", endpoint="metrics"`,
			downLabels: map[string]string{"job": "tierscaler", "namespace": "openfaas"}},
		{name: "the OpenFaaS Prometheus's scrape of the annotated pods",
			target: `job="kubernetes-pods", kubernetes_namespace="openfaas", app_kubernetes_io_name="tierscaler"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := renderedRules(t, tc.args...)
			dir := t.TempDir()
			b, err := yaml.Marshal(g)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "rendered.rules.yaml"), b, 0o600))
			instance := func(i string) string { return tc.target + `, instance="10.0.0.` + i + `:8080"` }
			var downAnnotations map[string]any
			for _, grp := range g.Groups {
				for _, r := range grp.Rules {
					if r["alert"] == "TierscalerDown" {
						downAnnotations, _ = r["annotations"].(map[string]any)
					}
				}
			}
			require.NotEmpty(t, downAnnotations, "no TierscalerDown rule rendered")
			downLabels := map[string]string{"severity": "critical", "service": "tierscaler", "component": "tierscaler"}
			for k, v := range tc.downLabels {
				downLabels[k] = v
			}
			none := []any{}
			doc := map[string]any{
				"rule_files":          []string{"rendered.rules.yaml"},
				"evaluation_interval": "1m",
				"tests": []any{map[string]any{
					"name":     "up for an hour, then down",
					"interval": "1m",
					"input_series": []any{
						map[string]string{"series": "up{" + instance("1") + "}", "values": "1x60 0x30"},
						map[string]string{"series": "tierscaler_build_info{" + instance("1") + `, version="0.1.0", revision="abc", goversion="go1.26"}`, "values": "1x60 stale"},
						map[string]string{"series": "tierscaler_leader{" + instance("1") + "}", "values": "1x60 stale"},
					},
					"alert_rule_test": []any{
						map[string]any{"eval_time": "59m", "alertname": "TierscalerDown", "exp_alerts": none},
						map[string]any{"eval_time": "59m", "alertname": "TierscalerNoLeader", "exp_alerts": none},
						map[string]any{"eval_time": "59m", "alertname": "TierscalerReplicaDown", "exp_alerts": none},
						map[string]any{"eval_time": "70m", "alertname": "TierscalerDown", "exp_alerts": []any{
							map[string]any{"exp_labels": downLabels, "exp_annotations": downAnnotations},
						}},
					},
				}},
			}
			tb, err := yaml.Marshal(doc)
			require.NoError(t, err)
			test := string(tb)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "rendered_test.yaml"), []byte(test), 0o600))
			cmd := exec.Command(promtool, "test", "rules", "rendered_test.yaml")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "promtool test rules:\n%s\nthe test:\n%s", out, test)
		})
	}
}

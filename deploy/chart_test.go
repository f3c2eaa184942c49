// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package deploy holds the deployment artifacts of tierscaler: the example
// policy and the Helm chart in chart/tierscaler. Its tests render the chart
// with the real helm binary (hack/tools.sh builds it) and check what the
// cluster would receive: least-privilege RBAC, a policy the binary accepts,
// the hardening of the pods and the optional parts.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/policy"
)

const (
	release   = "tierscaler"
	namespace = "openfaas"
)

// chartDir is the chart under test; $TIERSCALER_CHART_DIR points the tests
// at another copy (an unpacked `helm package`, a work in progress).
var chartDir = func() string {
	if d := os.Getenv("TIERSCALER_CHART_DIR"); d != "" {
		return d
	}
	return filepath.Join("chart", "tierscaler")
}()

// helmBinary finds the helm that hack/tools.sh builds: $TIERSCALER_BIN_DIR/helm,
// else <hack/tools.sh --bin-dir>/helm. Without it the test fails (run
// `make tools`), except with -short, where it is skipped.
func helmBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the chart tests run helm, an external process: skipped by make test-unit (-short), run by make test")
	}
	p, err := findHelm()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var findHelm = sync.OnceValues(func() (string, error) {
	var tried []string
	if dir := os.Getenv("TIERSCALER_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, "helm")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if out, err := exec.Command("bash", filepath.Join("..", "hack", "tools.sh"), "--bin-dir").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "helm")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	} else {
		tried = append(tried, "hack/tools.sh --bin-dir: "+err.Error())
	}
	return "", fmt.Errorf("helm not found (tried %s): run `make tools` to build it", strings.Join(tried, ", "))
})

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// runHelm runs helm with its config, cache and data in a temporary
// directory, so that the user's helm setup plays no part.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes inline values to a file and returns the -f arguments.
func valuesFile(t *testing.T, values string) []string {
	t.Helper()
	if values == "" {
		return nil
	}
	p := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(p, []byte(values), 0o600))
	return []string{"-f", p}
}

// object is one rendered manifest.
type object struct {
	Kind      string
	Name      string
	Namespace string
	JSON      []byte
}

// manifests is the output of helm template.
type manifests []object

func (m manifests) find(kind, name string) (object, bool) {
	for _, o := range m {
		if o.Kind == kind && (name == "" || o.Name == name) {
			return o, true
		}
	}
	return object{}, false
}

func (m manifests) all(kind string) []object {
	var out []object
	for _, o := range m {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// get decodes the one object of kind and name into T; it fails the test
// when the object is missing.
func get[T any](t *testing.T, m manifests, kind, name string) T {
	t.Helper()
	o, ok := m.find(kind, name)
	require.Truef(t, ok, "no %s %q rendered", kind, name)
	var v T
	require.NoError(t, json.Unmarshal(o.JSON, &v), "decode %s %s", kind, name)
	return v
}

// template renders the chart as release "tierscaler" in namespace
// "openfaas" with extra helm arguments (-f, --set) and fails on an error.
func template(t *testing.T, args ...string) manifests {
	t.Helper()
	m, err := tryTemplate(t, args...)
	require.NoError(t, err)
	return m
}

func tryTemplate(t *testing.T, args ...string) (manifests, error) {
	t.Helper()
	return templateChart(t, chartDir, args...)
}

// kubeVersion is the Kubernetes version the tests render for: the local
// cluster's (hack/versions.env). helm built from source (hack/tools.sh)
// assumes v1.20 otherwise, below the chart's kubeVersion.
var kubeVersion = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(filepath.Join("..", "hack", "versions.env"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KUBERNETES_VERSION="); ok {
			return v, nil
		}
	}
	return "", errors.New("hack/versions.env has no KUBERNETES_VERSION")
})

func templateChart(t *testing.T, chart string, args ...string) (manifests, error) {
	t.Helper()
	kv, err := kubeVersion()
	require.NoError(t, err)
	out, err := runHelm(t, append([]string{"template", release, chart, "--namespace", namespace, "--kube-version", kv}, args...)...)
	if err != nil {
		return nil, err
	}
	var m manifests
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		js, err := yaml.YAMLToJSON(doc)
		require.NoError(t, err, "rendered YAML:\n%s", doc)
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(js, &meta))
		require.NotEmpty(t, meta.Kind, "a rendered document has no kind:\n%s", doc)
		m = append(m, object{Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, JSON: js})
	}
	return m, nil
}

// ruleFiles are the Prometheus rule files the PrometheusRule is made of.
var ruleFiles = []string{"rules/tierscaler.rules.yaml", "rules/activation.rules.yaml"}

func requireRuleFiles(t *testing.T) {
	t.Helper()
	for _, f := range ruleFiles {
		_, err := os.Stat(filepath.Join(chartDir, f))
		require.NoErrorf(t, err, "%s/%s is missing: the PrometheusRule (prometheusRule.enabled) is built from it", chartDir, f)
	}
}

func TestLint(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{name: "defaults"},
		{name: "every optional part on", args: []string{"-f", "testdata/values-all-toggles.yaml"}},
		{name: "policy overrides", args: []string{"-f", "testdata/values-policy.yaml"}},
		{name: "namespace-scoped pods", args: []string{"--set", "rbac.clusterWidePods=false"}},
		{name: "existing webhook secret", args: []string{"--set", "webhook.existingSecret=my-token"}},
		{name: "single replica without leader election", args: []string{"--set", "replicaCount=1", "--set", "leaderElection.enabled=false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.args, "testdata/values-all-toggles.yaml") {
				requireRuleFiles(t)
			}
			out, err := runHelm(t, append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, tc.args...)...)
			require.NoError(t, err)
			assert.Contains(t, out, "0 chart(s) failed")
		})
	}
}

// ruleKey names what a rule grants: "group/resource" (core is "core"),
// with "[names]" when resourceNames restrict it.
func ruleKeys(r rbacv1.PolicyRule) []string {
	var keys []string
	for _, g := range r.APIGroups {
		if g == "" {
			g = "core"
		}
		for _, res := range r.Resources {
			k := g + "/" + res
			if len(r.ResourceNames) > 0 {
				names := slices.Clone(r.ResourceNames)
				sort.Strings(names)
				k += "[" + strings.Join(names, ",") + "]"
			}
			keys = append(keys, k)
		}
	}
	return keys
}

// rbacMatrix is what every rendered Role and ClusterRole grants, keyed by
// "Role <namespace>/<name>" or "ClusterRole <name>", then by ruleKey, with
// the verbs sorted and joined. It fails the test on a wildcard.
func rbacMatrix(t *testing.T, m manifests) map[string]map[string]string {
	t.Helper()
	matrix := map[string]map[string]string{}
	add := func(role string, rules []rbacv1.PolicyRule) {
		grants := map[string][]string{}
		for _, r := range rules {
			assertNoWildcard(t, role, r)
			assert.Emptyf(t, r.NonResourceURLs, "%s grants non-resource URLs", role)
			for _, k := range ruleKeys(r) {
				grants[k] = append(grants[k], r.Verbs...)
			}
		}
		out := map[string]string{}
		for k, verbs := range grants {
			sort.Strings(verbs)
			out[k] = strings.Join(slices.Compact(verbs), ",")
		}
		matrix[role] = out
	}
	for _, o := range m.all("Role") {
		var r rbacv1.Role
		require.NoError(t, json.Unmarshal(o.JSON, &r))
		add("Role "+o.Namespace+"/"+o.Name, r.Rules)
	}
	for _, o := range m.all("ClusterRole") {
		var r rbacv1.ClusterRole
		require.NoError(t, json.Unmarshal(o.JSON, &r))
		assert.Nilf(t, r.AggregationRule, "ClusterRole %s aggregates other roles", o.Name)
		add("ClusterRole "+o.Name, r.Rules)
	}
	return matrix
}

func assertNoWildcard(t *testing.T, role string, r rbacv1.PolicyRule) {
	t.Helper()
	for field, values := range map[string][]string{
		"apiGroups": r.APIGroups, "resources": r.Resources, "verbs": r.Verbs, "resourceNames": r.ResourceNames,
	} {
		for _, v := range values {
			assert.NotContainsf(t, v, "*", "%s: wildcard in %s: %v", role, field, r)
		}
	}
}

// bindings checks that every Role and ClusterRole is bound to the chart's
// ServiceAccount (and only to it) and returns the bound role keys.
func bindings(t *testing.T, m manifests, sa string) []string {
	t.Helper()
	var bound []string
	check := func(kind string, o object, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
		require.Lenf(t, subjects, 1, "%s %s", kind, o.Name)
		assert.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: namespace}, subjects[0], "%s %s", kind, o.Name)
		if ref.Kind == "Role" {
			bound = append(bound, "Role "+o.Namespace+"/"+ref.Name)
		} else {
			bound = append(bound, "ClusterRole "+ref.Name)
		}
	}
	for _, o := range m.all("RoleBinding") {
		var b rbacv1.RoleBinding
		require.NoError(t, json.Unmarshal(o.JSON, &b))
		check("RoleBinding", o, b.RoleRef, b.Subjects)
	}
	for _, o := range m.all("ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		require.NoError(t, json.Unmarshal(o.JSON, &b))
		assert.Equal(t, "ClusterRole", b.RoleRef.Kind)
		check("ClusterRoleBinding", o, b.RoleRef, b.Subjects)
	}
	sort.Strings(bound)
	return bound
}

func deployment(t *testing.T, m manifests) appsv1.Deployment {
	t.Helper()
	return get[appsv1.Deployment](t, m, "Deployment", release)
}

func container(t *testing.T, m manifests) corev1.Container {
	t.Helper()
	d := deployment(t, m)
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	return d.Spec.Template.Spec.Containers[0]
}

// functionNamespaceGrants is the exact Role of a function namespace.
var functionNamespaceGrants = map[string]string{
	"apps/deployments":       "get,list,patch,watch", // patch: tierscaler's own annotations only
	"apps/deployments/scale": "get,patch",
	"core/pods":              "get,list,watch",
	"core/resourcequotas":    "list,watch",
	"events.k8s.io/events":   "create,patch",
}

// stateGrants is the exact Role of tierscaler's state ConfigMap.
var stateGrants = map[string]string{
	"core/configmaps":                   "create",
	"core/configmaps[tierscaler-state]": "get,patch",
}

func leaderElectionGrants(id string) map[string]string {
	return map[string]string{
		"coordination.k8s.io/leases":             "create",
		"coordination.k8s.io/leases[" + id + "]": "get,update",
		"core/events":                            "create,patch",
	}
}

func TestRBAC(t *testing.T) {
	const clusterRole = "ClusterRole openfaas-tierscaler"
	nodesAndPods := map[string]string{"core/nodes": "get,list,watch", "core/pods": "get,list,watch"}
	nodesOnly := map[string]string{"core/nodes": "get,list,watch"}
	cases := []struct {
		name    string
		args    []string
		want    map[string]map[string]string
		allPods string
	}{
		{
			name: "defaults",
			want: map[string]map[string]string{
				"Role openfaas-fn/tierscaler":              functionNamespaceGrants,
				"Role openfaas/tierscaler-leader-election": leaderElectionGrants("tierscaler"),
				clusterRole:                      nodesAndPods,
				"Role openfaas/tierscaler-state": stateGrants,
			},
			allPods: "true",
		},
		{
			name: "rbac.clusterWidePods=false reads pods in the function namespaces only",
			args: []string{"--set", "rbac.clusterWidePods=false"},
			want: map[string]map[string]string{
				"Role openfaas-fn/tierscaler":              functionNamespaceGrants,
				"Role openfaas/tierscaler-leader-election": leaderElectionGrants("tierscaler"),
				clusterRole:                      nodesOnly,
				"Role openfaas/tierscaler-state": stateGrants,
			},
			allPods: "false",
		},
		{
			name: "a Role in every function namespace",
			args: valuesFileArgs("policy:\n  namespaces: [openfaas-fn, team-a, team-b]\n"),
			want: map[string]map[string]string{
				"Role openfaas-fn/tierscaler":              functionNamespaceGrants,
				"Role team-a/tierscaler":                   functionNamespaceGrants,
				"Role team-b/tierscaler":                   functionNamespaceGrants,
				"Role openfaas/tierscaler-leader-election": leaderElectionGrants("tierscaler"),
				clusterRole:                      nodesAndPods,
				"Role openfaas/tierscaler-state": stateGrants,
			},
			allPods: "true",
		},
		{
			name: "the Lease name restricts get and update",
			args: []string{"--set", "leaderElection.id=my-lease"},
			want: map[string]map[string]string{
				"Role openfaas-fn/tierscaler":              functionNamespaceGrants,
				"Role openfaas/tierscaler-leader-election": leaderElectionGrants("my-lease"),
				clusterRole:                      nodesAndPods,
				"Role openfaas/tierscaler-state": stateGrants,
			},
			allPods: "true",
		},
		{
			name: "no leader election, no Lease access",
			args: []string{"--set", "replicaCount=1", "--set", "leaderElection.enabled=false"},
			want: map[string]map[string]string{
				"Role openfaas-fn/tierscaler":    functionNamespaceGrants,
				clusterRole:                      nodesAndPods,
				"Role openfaas/tierscaler-state": stateGrants,
			},
			allPods: "true",
		},
		{
			name: "every optional part on adds no access",
			args: []string{"-f", "testdata/values-all-toggles.yaml"},
			want: map[string]map[string]string{
				"Role openfaas-fn/tierscaler":              functionNamespaceGrants,
				"Role openfaas/tierscaler-leader-election": leaderElectionGrants("tierscaler"),
				clusterRole:                      nodesAndPods,
				"Role openfaas/tierscaler-state": stateGrants,
			},
			allPods: "true",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.args, "testdata/values-all-toggles.yaml") {
				requireRuleFiles(t)
			}
			m := template(t, resolveArgs(t, tc.args)...)
			got := rbacMatrix(t, m)
			assert.Equal(t, tc.want, got, "the RBAC matrix changed: update README.md (RBAC) and this test together")

			var wantBound []string
			for role := range tc.want {
				wantBound = append(wantBound, role)
			}
			sort.Strings(wantBound)
			assert.Equal(t, wantBound, bindings(t, m, release), "every role is bound to the ServiceAccount, once")

			assert.Contains(t, container(t, m).Args, "--all-pods="+tc.allPods)

			// The policy watches exactly the namespaces the Roles grant.
			p := renderedPolicy(t, m)
			var roleNamespaces []string
			for role, grants := range got {
				if strings.HasPrefix(role, "Role ") && grants["apps/deployments/scale"] != "" {
					roleNamespaces = append(roleNamespaces, strings.SplitN(strings.TrimPrefix(role, "Role "), "/", 2)[0])
				}
			}
			sort.Strings(roleNamespaces)
			ns := slices.Clone(p.Namespaces)
			sort.Strings(ns)
			assert.Equal(t, ns, roleNamespaces)
		})
	}
	t.Run("another release name: its own state ConfigMap", func(t *testing.T) {
		m := template(t, "--set", "fullnameOverride=autoscaler")
		assert.Equal(t, map[string]string{"core/configmaps": "create", "core/configmaps[autoscaler-state]": "get,patch"},
			rbacMatrix(t, m)["Role openfaas/autoscaler-state"])
		d := get[appsv1.Deployment](t, m, "Deployment", "autoscaler")
		assert.Contains(t, d.Spec.Template.Spec.Containers[0].Args, "--state-name=autoscaler-state")
	})
	t.Run("rbac.create=false renders no RBAC", func(t *testing.T) {
		m := template(t, "--set", "rbac.create=false")
		for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
			assert.Empty(t, m.all(kind), kind)
		}
	})
}

// valuesFileArgs marks inline values for resolveArgs: the file is written in
// the subtest's temporary directory.
func valuesFileArgs(values string) []string { return []string{"--inline-values", values} }

func resolveArgs(t *testing.T, args []string) []string {
	t.Helper()
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--inline-values" {
			out = append(out, valuesFile(t, args[i+1])...)
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// renderedPolicy parses the ConfigMap's policy.yaml with the binary's own
// parser.
func renderedPolicy(t *testing.T, m manifests) *policy.Policy {
	t.Helper()
	p, err := parseRenderedPolicy(t, m)
	require.NoError(t, err)
	return p
}

func parseRenderedPolicy(t *testing.T, m manifests) (*policy.Policy, error) {
	t.Helper()
	cm := get[corev1.ConfigMap](t, m, "ConfigMap", release+"-policy")
	data, ok := cm.Data["policy.yaml"]
	require.True(t, ok, "the policy ConfigMap has no policy.yaml")
	return policy.Parse([]byte(data))
}

func TestPolicyConfigMap(t *testing.T) {
	t.Run("defaults give the binary's defaults, OpenFaaS URLs", func(t *testing.T) {
		m := template(t)
		p := renderedPolicy(t, m)
		assert.Equal(t, policy.Default(), p)
		assert.Equal(t, []string{"openfaas-fn"}, p.Namespaces)
		assert.Equal(t, "http://prometheus.openfaas:9090", p.Prometheus.URL)
		assert.Equal(t, []string{"http://alertmanager.openfaas:9093"}, p.AlertmanagerURLs())
	})

	t.Run("every field overridden", func(t *testing.T) {
		m := template(t, "-f", "testdata/values-policy.yaml")
		p := renderedPolicy(t, m)
		assert.Equal(t, []string{"openfaas-fn", "team-a"}, p.Namespaces)
		assert.Equal(t, 30*time.Second, p.Interval.Duration)
		assert.Equal(t, "Europe/Berlin", p.TimeZone)
		assert.Equal(t, policy.TierAsync, p.DefaultTier)
		assert.Equal(t, "http://kube-prometheus-stack-prometheus.monitoring:9090/prometheus", p.Prometheus.URL)
		assert.Equal(t, 10*time.Second, p.Prometheus.Timeout.Duration)
		assert.Equal(t, 3*time.Minute, p.Prometheus.MaxStaleness.Duration)
		assert.False(t, p.AlertingEnabled(), "alertmanager.urls: [] turns alerting off")
		assert.Equal(t, 2*time.Minute, p.Alertmanager.ResendInterval.Duration)
		assert.InDelta(t, 0.75, p.Thresholds.CPU, 1e-9)
		assert.InDelta(t, 0.9, p.Thresholds.Memory, 1e-9)
		assert.Zero(t, p.RejectionRate(), "rejectionRate: 0 is kept")
		assert.InDelta(t, 0.5, p.Thresholds.TargetUtilization, 1e-9)
		assert.Equal(t, 10*time.Minute, p.Tiers.Sync.ScaleDownWindow.Duration)
		assert.Equal(t, 15*time.Minute, p.Tiers.Cron.Lookahead.Duration)
		assert.Equal(t, 45*time.Second, p.Tiers.Cron.StartupTime.Duration)
		assert.Equal(t, time.Minute, p.Tiers.Cron.Margin.Duration)
		assert.Equal(t, 5*time.Minute, p.Tiers.Cron.GracePeriod.Duration)
		assert.False(t, p.ZeroCronWhenIdle(), "zeroWhenIdle: false is kept")
		assert.Equal(t, 10*time.Minute, p.Tiers.Async.IdleAfter.Duration)
		assert.Equal(t, 3*time.Minute, p.Tiers.Async.ActivationTimeout.Duration)
		assert.Equal(t, int32(1000000), p.Tiers.Async.PendingPerReplica, "a large integer survives helm's number handling")
		assert.Equal(t, []policy.Tier{policy.TierAsync}, p.Preemption.Order)
		assert.Zero(t, p.MaxEvictions(), "maxEvictionsPerCycle: 0 is kept")
		assert.Equal(t, 10*time.Minute, p.Preemption.MinResidency.Duration)
		assert.Equal(t, "max_over_time(sum by (function_name) (gateway_function_invocation_inflight)[1m:5s])", p.Queries.Inflight)
		assert.Equal(t, "sum by (namespace, pod) (pod_memory_working_set_bytes)", p.Queries.Memory)
		assert.Equal(t, policy.DefaultRejectionsQuery, p.Queries.Rejections, "a query left out takes the binary's default")
	})

	t.Run("a policy change rolls the pods, other values do not", func(t *testing.T) {
		checksum := func(args ...string) string {
			return deployment(t, template(t, args...)).Spec.Template.Annotations["checksum/policy"]
		}
		base := checksum()
		require.NotEmpty(t, base)
		assert.NotEqual(t, base, checksum("--set", "policy.interval=30s"))
		assert.Equal(t, base, checksum("--set", "logLevel=debug"))
	})

	// Invalid values are caught by the chart's values.schema.json when the
	// schema can tell (helm refuses to render), else by the binary's parser
	// (what the ConfigMap holds would stop tierscaler at start-up).
	invalid := []struct {
		name   string
		values string
		// schema: the path helm's schema validation reports; empty when the
		// schema accepts the value and parse must catch it.
		schema string
		// parse: the field policy.Parse reports.
		parse string
	}{
		{name: "fraction above 1", values: "policy:\n  thresholds:\n    cpu: 1.5\n", schema: "/policy/thresholds/cpu", parse: "thresholds.cpu"},
		{name: "misspelt field", values: "policy:\n  tiers:\n    cron:\n      lookahed: 10m\n", schema: "lookahed", parse: "tiers.cron.lookahed"},
		{name: "duration without a unit", values: "policy:\n  interval: \"15\"\n", schema: "/policy/interval", parse: "interval"},
		{name: "sync is never evicted", values: "policy:\n  preemption:\n    order: [sync, cron]\n", schema: "/policy/preemption/order/0", parse: "preemption.order[0]"},
		{name: "no namespaces", values: "policy:\n  namespaces: []\n", schema: "/policy/namespaces", parse: "namespaces"},
		{name: "namespace not a DNS label", values: "policy:\n  namespaces: [OpenFaaS_fn]\n", schema: "/policy/namespaces/0", parse: "namespaces[0]"},
		{name: "URL without scheme", values: "policy:\n  prometheus:\n    url: prometheus.openfaas:9090\n", schema: "/policy/prometheus/url", parse: "prometheus.url"},
		{name: "negative eviction budget", values: "policy:\n  preemption:\n    maxEvictionsPerCycle: -1\n", schema: "/policy/preemption/maxEvictionsPerCycle", parse: "preemption.maxEvictionsPerCycle"},
		{name: "wrong type", values: "policy:\n  tiers:\n    cron:\n      zeroWhenIdle: \"no\"\n", schema: "/policy/tiers/cron/zeroWhenIdle", parse: "tiers.cron.zeroWhenIdle"},
		{name: "unknown edition", values: "policy:\n  openfaas:\n    edition: enterprise\n", schema: "/policy/openfaas/edition", parse: "openfaas.edition"},
		{name: "signal not a boolean", values: "policy:\n  signals:\n    cpu: \"off\"\n", schema: "/policy/signals/cpu", parse: "signals.cpu"},
		// Beyond what a JSON schema can tell: the parser catches them.
		{name: "timeout not shorter than interval", values: "policy:\n  interval: 15s\n  prometheus:\n    timeout: 20s\n", parse: "prometheus.timeout"},
		{name: "staleness below interval", values: "policy:\n  interval: 1m\n  prometheus:\n    maxStaleness: 30s\n", parse: "prometheus.maxStaleness"},
		{name: "zero duration", values: "policy:\n  tiers:\n    async:\n      idleAfter: 0s\n", parse: "tiers.async.idleAfter"},
		{name: "unknown time zone", values: "policy:\n  timeZone: Mars/Olympus_Mons\n", parse: "timeZone"},
		{name: "query loses its key label", values: "policy:\n  queries:\n    rejections: 'sum(rate(gateway_function_invocation_total{code=\"429\"}[1m]))'\n", parse: "queries.rejections"},
		{name: "query is not PromQL", values: "policy:\n  queries:\n    cpu: 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[1m])'\n", parse: "queries.cpu"},
	}
	for _, tc := range invalid {
		t.Run("invalid: "+tc.name, func(t *testing.T) {
			if tc.schema != "" {
				_, err := tryTemplate(t, valuesFile(t, tc.values)...)
				require.Error(t, err, "values.schema.json accepted it")
				assert.Contains(t, err.Error(), "schema")
				assert.Contains(t, err.Error(), tc.schema)
			} else {
				m := template(t, valuesFile(t, tc.values)...)
				_, err := parseRenderedPolicy(t, m)
				require.Error(t, err, "policy.Parse accepted the rendered policy")
				assertFieldError(t, err, tc.parse)
			}
			// The parser refuses the same value on its own, so the schema
			// never hides a value the binary would accept, nor the reverse.
			_, err := policy.Parse(policyFromValues(t, tc.values))
			require.Error(t, err, "policy.Parse accepted it")
			assertFieldError(t, err, tc.parse)
		})
	}
}

func assertFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *policy.FieldError
	var fields []string
	for _, e := range unwrapAll(err) {
		if errors.As(e, &fe) {
			fields = append(fields, fe.Field)
		}
	}
	assert.Containsf(t, fields, field, "policy.Parse: %v", err)
}

func unwrapAll(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return []error{err}
}

// policyFromValues builds the policy file the chart would render from the
// values' policy section on top of the chart defaults, without helm: the
// second, independent layer of the invalid-value cases.
func policyFromValues(t *testing.T, values string) []byte {
	t.Helper()
	var v struct {
		Policy map[string]any `json:"policy"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(values), &v))
	doc := map[string]any{
		"apiVersion": policy.APIVersion, "kind": policy.Kind,
		"namespaces": []any{"openfaas-fn"},
	}
	for k, val := range v.Policy {
		doc[k] = val
	}
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	return out
}

func TestOptionalParts(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		m := template(t)
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
			_, ok := m.find(kind, "")
			assert.Falsef(t, ok, "%s rendered by default", kind)
		}
		_, ok := m.find("ConfigMap", release+"-dashboard")
		assert.False(t, ok, "dashboard rendered by default")
		for _, o := range m.all("ConfigMap") {
			assert.NotContains(t, string(o.JSON), "grafana_dashboard")
		}
	})

	t.Run("ServiceMonitor", func(t *testing.T) {
		m := template(t, "--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.labels.release=kube-prometheus-stack")
		var sm struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				Endpoints []struct {
					Port     string `json:"port"`
					Path     string `json:"path"`
					Interval string `json:"interval"`
				} `json:"endpoints"`
			} `json:"spec"`
		}
		o, ok := m.find("ServiceMonitor", release)
		require.True(t, ok)
		require.NoError(t, json.Unmarshal(o.JSON, &sm))
		assert.Equal(t, "kube-prometheus-stack", sm.Metadata.Labels["release"])
		require.Len(t, sm.Spec.Endpoints, 1)
		assert.Equal(t, "metrics", sm.Spec.Endpoints[0].Port)
		assert.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
		svc := get[corev1.Service](t, m, "Service", release)
		for k, v := range sm.Spec.Selector.MatchLabels {
			assert.Equal(t, v, svc.Labels[k], "the ServiceMonitor selects the Service")
		}
	})

	t.Run("PrometheusRule holds the rule files' groups", func(t *testing.T) {
		requireRuleFiles(t)
		m := template(t, "--set", "prometheusRule.enabled=true")
		var pr struct {
			Spec struct {
				Groups []struct {
					Name  string           `json:"name"`
					Rules []map[string]any `json:"rules"`
				} `json:"groups"`
			} `json:"spec"`
		}
		o, ok := m.find("PrometheusRule", release)
		require.True(t, ok)
		require.NoError(t, json.Unmarshal(o.JSON, &pr))
		type group struct {
			Name  string
			Rules int
		}
		var want, got []group
		for _, f := range ruleFiles {
			data, err := os.ReadFile(filepath.Join(chartDir, f))
			require.NoError(t, err)
			var file struct {
				Groups []struct {
					Name  string           `json:"name"`
					Rules []map[string]any `json:"rules"`
				} `json:"groups"`
			}
			require.NoError(t, yaml.Unmarshal(data, &file), f)
			require.NotEmpty(t, file.Groups, "%s has no groups", f)
			for _, g := range file.Groups {
				want = append(want, group{g.Name, len(g.Rules)})
			}
		}
		for _, g := range pr.Spec.Groups {
			got = append(got, group{g.Name, len(g.Rules)})
			for _, r := range g.Rules {
				assert.NotEmpty(t, r["expr"], "group %s: a rule without expr", g.Name)
			}
		}
		assert.Equal(t, want, got)
	})

	t.Run("Grafana dashboard", func(t *testing.T) {
		m := template(t, "--set", "dashboard.enabled=true", "--set", "dashboard.namespace=monitoring")
		cm := get[corev1.ConfigMap](t, m, "ConfigMap", release+"-dashboard")
		assert.Equal(t, "1", cm.Labels["grafana_dashboard"])
		assert.Equal(t, "monitoring", cm.Namespace)
		raw, ok := cm.Data["tierscaler.json"]
		require.True(t, ok)
		file, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "tierscaler.json"))
		require.NoError(t, err)
		assert.JSONEq(t, string(file), raw, "the ConfigMap holds dashboards/tierscaler.json unchanged (TestDashboard checks its queries)")
	})
}

func TestWebhookAuth(t *testing.T) {
	volumeSecret := func(d appsv1.Deployment, volume string) *corev1.SecretVolumeSource {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == volume {
				return v.Secret
			}
		}
		return nil
	}

	t.Run("a generated token by default", func(t *testing.T) {
		m := template(t)
		s := get[corev1.Secret](t, m, "Secret", release+"-webhook")
		token := s.Data["token"]
		assert.GreaterOrEqual(t, len(token), 32, "token too short")
		c := container(t, m)
		assert.Contains(t, c.Args, "--webhook-auth=required")
		assert.Contains(t, c.Args, "--webhook-addr=:8081")
		assert.Contains(t, c.Args, "--webhook-token-file=/etc/tierscaler/webhook-token/token")
		src := volumeSecret(deployment(t, m), "webhook-token")
		require.NotNil(t, src)
		assert.Equal(t, release+"-webhook", src.SecretName)

		// helm template cannot look up the installed Secret: every render
		// generates a new token (README.md says so; helm install/upgrade
		// keep the installed one).
		again := get[corev1.Secret](t, template(t), "Secret", release+"-webhook")
		assert.NotEqual(t, base64.StdEncoding.EncodeToString(token), base64.StdEncoding.EncodeToString(again.Data["token"]))
	})

	t.Run("webhook.existingSecret is used and nothing is generated", func(t *testing.T) {
		m := template(t, "--set", "webhook.existingSecret=my-token", "--set", "webhook.existingSecretKey=bearer")
		assert.Empty(t, m.all("Secret"), "a Secret was generated")
		src := volumeSecret(deployment(t, m), "webhook-token")
		require.NotNil(t, src)
		assert.Equal(t, "my-token", src.SecretName)
		require.Len(t, src.Items, 1)
		assert.Equal(t, "bearer", src.Items[0].Key)
		assert.Contains(t, container(t, m).Args, "--webhook-token-file=/etc/tierscaler/webhook-token/bearer")
	})

	t.Run("basic auth file from an existing Secret", func(t *testing.T) {
		m := template(t, "--set", "webhook.basicAuth.existingSecret=am-basic-auth")
		src := volumeSecret(deployment(t, m), "webhook-basic-auth")
		require.NotNil(t, src)
		assert.Equal(t, "am-basic-auth", src.SecretName)
		assert.Contains(t, container(t, m).Args, "--webhook-basic-auth-file=/etc/tierscaler/webhook-basic-auth/basic-auth")
	})

	// secretFileOf follows a file flag of the container to the Secret and
	// key mounted at its path.
	secretFileOf := func(t *testing.T, m manifests, flag string) (secret, key string) {
		t.Helper()
		c := container(t, m)
		var path string
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				path = v
			}
		}
		require.NotEmptyf(t, path, "no %s in %v", flag, c.Args)
		for _, vm := range c.VolumeMounts {
			rel, ok := strings.CutPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/")
			if !ok {
				continue
			}
			src := volumeSecret(deployment(t, m), vm.Name)
			require.NotNilf(t, src, "%s is not mounted from a Secret", path)
			for _, it := range src.Items {
				if it.Path == rel {
					return src.SecretName, it.Key
				}
			}
			t.Fatalf("%s: the Secret %s mounted at %s has no item %s", flag, src.SecretName, vm.MountPath, rel)
		}
		t.Fatalf("%s=%s: nothing is mounted there", flag, path)
		return "", ""
	}

	t.Run("OpenFaaS's basic-auth Secret, as CE's Alertmanager sends it", func(t *testing.T) {
		m := template(t, "--set", "webhook.openfaasBasicAuth.enabled=true")
		secret, key := secretFileOf(t, m, "--webhook-basic-auth-password-file")
		assert.Equal(t, "basic-auth", secret, "OpenFaaS's Secret")
		assert.Equal(t, "basic-auth-password", key)
		c := container(t, m)
		assert.Contains(t, c.Args, "--webhook-basic-auth-user=admin")
		// The bearer token stays: either credential is accepted.
		secret, key = secretFileOf(t, m, "--webhook-token-file")
		assert.Equal(t, release+"-webhook", secret)
		assert.Equal(t, "token", key)
		assert.NotContains(t, strings.Join(c.Args, " "), "--webhook-basic-auth-file")
	})

	t.Run("OpenFaaS's basic-auth Secret under other names", func(t *testing.T) {
		m := template(t, "--set", "webhook.openfaasBasicAuth.enabled=true", "--set", "webhook.openfaasBasicAuth.secretName=of-auth",
			"--set", "webhook.openfaasBasicAuth.passwordKey=pw", "--set", "webhook.openfaasBasicAuth.user=ops")
		secret, key := secretFileOf(t, m, "--webhook-basic-auth-password-file")
		assert.Equal(t, "of-auth", secret)
		assert.Equal(t, "pw", key)
		assert.Contains(t, container(t, m).Args, "--webhook-basic-auth-user=ops")
	})

	t.Run("off by default", func(t *testing.T) {
		m := template(t)
		args := strings.Join(container(t, m).Args, " ")
		assert.NotContains(t, args, "--webhook-basic-auth")
		assert.Nil(t, volumeSecret(deployment(t, m), "openfaas-basic-auth"))
	})

	for _, tc := range []struct{ name, set, want string }{
		{name: "OpenFaaS's basic auth needs webhook.auth required", set: "webhook.auth=none", want: "needs webhook.auth: required"},
		{name: "OpenFaaS's basic auth or a basic-auth file, not both", set: "webhook.basicAuth.existingSecret=am-basic-auth", want: "exclusive"},
		{name: "a user with a colon is refused", set: "webhook.openfaasBasicAuth.user=a:b", want: "/webhook/openfaasBasicAuth/user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryTemplate(t, "--set", "webhook.openfaasBasicAuth.enabled=true", "--set", tc.set)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	t.Run("webhook.auth=none: no token", func(t *testing.T) {
		m := template(t, "--set", "webhook.auth=none")
		assert.Empty(t, m.all("Secret"))
		c := container(t, m)
		assert.Contains(t, c.Args, "--webhook-auth=none")
		for _, a := range c.Args {
			assert.NotContains(t, a, "--webhook-token-file")
		}
		assert.Nil(t, volumeSecret(deployment(t, m), "webhook-token"))
	})

	t.Run("an unknown auth mode is refused", func(t *testing.T) {
		_, err := tryTemplate(t, "--set", "webhook.auth=maybe")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "/webhook/auth")
	})
}

// TestAlertGeneratorURL: alertGeneratorURL becomes --alert-generator-url;
// the schema refuses a URL that is not absolute, which the binary would
// refuse at start-up.
func TestAlertGeneratorURL(t *testing.T) {
	m := template(t, "--set", "alertGeneratorURL=https://grafana.example.com/d/tierscaler")
	assert.Contains(t, container(t, m).Args, "--alert-generator-url=https://grafana.example.com/d/tierscaler")
	for _, a := range container(t, template(t)).Args {
		assert.NotContains(t, a, "--alert-generator-url", "set by default")
	}
	_, err := tryTemplate(t, "--set", "alertGeneratorURL=/status")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/alertGeneratorURL")
}

func TestSecurityContext(t *testing.T) {
	cases := []struct {
		name string
		args []string
		uid  *int64 // nil: no runAsUser at all (OpenShift assigns one)
	}{
		{name: "defaults", uid: ptr(int64(65532))},
		{name: "another uid", args: []string{
			"--set", "podSecurityContext.runAsUser=1000", "--set", "podSecurityContext.runAsGroup=1000", "--set", "podSecurityContext.fsGroup=1000",
			"--set", "securityContext.runAsUser=1000", "--set", "securityContext.runAsGroup=1000"}, uid: ptr(int64(1000))},
		{name: "every optional part on", args: []string{"-f", "testdata/values-all-toggles.yaml"}, uid: ptr(int64(65532))},
		// OpenShift's restricted SCC assigns a UID and GID from the
		// namespace's range and refuses pods that ask for another.
		{name: "OpenShift: no fixed uid, gid or fsGroup", args: []string{"-f", "testdata/values-openshift.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if slices.Contains(tc.args, "testdata/values-all-toggles.yaml") {
				requireRuleFiles(t)
			}
			m := template(t, tc.args...)
			pod := deployment(t, m).Spec.Template.Spec
			require.NotNil(t, pod.SecurityContext)
			ps := pod.SecurityContext
			assert.Equal(t, ptr(true), ps.RunAsNonRoot)
			assert.Equal(t, tc.uid, ps.RunAsUser)
			if tc.uid == nil {
				assert.Nil(t, ps.RunAsGroup)
				assert.Nil(t, ps.FSGroup)
			}
			require.NotNil(t, ps.SeccompProfile)
			assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, ps.SeccompProfile.Type)
			assert.False(t, pod.HostNetwork || pod.HostPID || pod.HostIPC)

			c := container(t, m)
			require.NotNil(t, c.SecurityContext)
			sc := c.SecurityContext
			assert.Equal(t, ptr(true), sc.RunAsNonRoot)
			assert.Equal(t, tc.uid, sc.RunAsUser)
			if tc.uid == nil {
				assert.Nil(t, sc.RunAsGroup)
			}
			assert.Equal(t, ptr(true), sc.ReadOnlyRootFilesystem)
			assert.Equal(t, ptr(false), sc.AllowPrivilegeEscalation)
			assert.NotEqual(t, ptr(true), sc.Privileged)
			require.NotNil(t, sc.Capabilities)
			assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
			assert.Empty(t, sc.Capabilities.Add)
		})
	}
	for _, tc := range []struct{ name, set, field string }{
		{"root is refused", "securityContext.runAsUser=0", "/securityContext/runAsUser"},
		{"root is refused in the pod's context", "podSecurityContext.runAsUser=0", "/podSecurityContext/runAsUser"},
		{"privileged is refused", "securityContext.privileged=true", "/securityContext/privileged"},
		{"privilege escalation is refused", "securityContext.allowPrivilegeEscalation=true", "/securityContext/allowPrivilegeEscalation"},
		{"runAsNonRoot false is refused", "podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryTemplate(t, "--set", tc.set)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDeployment(t *testing.T) {
	m := template(t)
	d := deployment(t, m)
	pod := d.Spec.Template.Spec
	c := container(t, m)

	t.Run("two replicas with leader election in the release namespace", func(t *testing.T) {
		assert.Equal(t, ptr(int32(2)), d.Spec.Replicas)
		assert.Equal(t, namespace, d.Namespace)
		assert.Equal(t, "run", c.Args[0])
		for _, a := range []string{"--leader-elect=true", "--leader-election-namespace=$(POD_NAMESPACE)",
			"--leader-election-id=tierscaler", "--policy=/etc/tierscaler/policy/policy.yaml", "--metrics-addr=:8080",
			"--state-name=tierscaler-state"} {
			assert.Contains(t, c.Args, a)
		}
		var podNamespace *corev1.EnvVar
		for i := range c.Env {
			if c.Env[i].Name == "POD_NAMESPACE" {
				podNamespace = &c.Env[i]
			}
		}
		require.NotNil(t, podNamespace, "POD_NAMESPACE is not set")
		require.NotNil(t, podNamespace.ValueFrom)
		require.NotNil(t, podNamespace.ValueFrom.FieldRef)
		assert.Equal(t, "metadata.namespace", podNamespace.ValueFrom.FieldRef.FieldPath)
	})

	t.Run("the policy ConfigMap is mounted where --policy points", func(t *testing.T) {
		var mount string
		for _, vm := range c.VolumeMounts {
			if vm.Name == "policy" {
				mount = vm.MountPath
			}
		}
		assert.Equal(t, "/etc/tierscaler/policy", mount)
		var cm string
		for _, v := range pod.Volumes {
			if v.Name == "policy" && v.ConfigMap != nil {
				cm = v.ConfigMap.Name
			}
		}
		assert.Equal(t, release+"-policy", cm)
	})

	t.Run("probes on the metrics port", func(t *testing.T) {
		require.NotNil(t, c.LivenessProbe)
		require.NotNil(t, c.ReadinessProbe)
		assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
		assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		assert.Equal(t, map[string]int32{"metrics": 8080, "webhook": 8081}, ports)
		assert.Equal(t, "metrics", c.LivenessProbe.HTTPGet.Port.String())
		assert.Equal(t, "metrics", c.ReadinessProbe.HTTPGet.Port.String())
	})

	t.Run("resources, image and spread", func(t *testing.T) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			assert.Contains(t, c.Resources.Requests, r)
			assert.Contains(t, c.Resources.Limits, r)
		}
		var chart struct {
			AppVersion string `json:"appVersion"`
		}
		data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(data, &chart))
		assert.Equal(t, "tierscaler/tierscaler:"+chart.AppVersion, c.Image)
		require.Len(t, pod.TopologySpreadConstraints, 1)
		tsc := pod.TopologySpreadConstraints[0]
		assert.Equal(t, "kubernetes.io/hostname", tsc.TopologyKey)
		assert.Equal(t, corev1.DoNotSchedule, tsc.WhenUnsatisfiable)
		assert.Equal(t, d.Spec.Selector.MatchLabels, tsc.LabelSelector.MatchLabels)
		assert.Equal(t, ptr(corev1.NodeInclusionPolicyHonor), tsc.NodeTaintsPolicy)
		assert.Equal(t, ptr(corev1.NodeInclusionPolicyHonor), tsc.NodeAffinityPolicy)
	})

	t.Run("Service ports and PodDisruptionBudget", func(t *testing.T) {
		svc := get[corev1.Service](t, m, "Service", release)
		ports := map[string]string{}
		for _, p := range svc.Spec.Ports {
			ports[p.Name] = fmt.Sprintf("%d->%s", p.Port, p.TargetPort.String())
		}
		assert.Equal(t, map[string]string{"metrics": "8080->metrics", "webhook": "8081->webhook"}, ports)
		assert.Equal(t, d.Spec.Selector.MatchLabels, svc.Spec.Selector)

		_, ok := m.find("PodDisruptionBudget", "")
		assert.False(t, ok, "no PodDisruptionBudget by default (TestDrain)")

		on := template(t, "--set", "podDisruptionBudget.enabled=true")
		pdb := get[policyv1.PodDisruptionBudget](t, on, "PodDisruptionBudget", release)
		assert.Nil(t, pdb.Spec.MinAvailable)
		require.NotNil(t, pdb.Spec.MaxUnavailable)
		assert.Equal(t, "1", pdb.Spec.MaxUnavailable.String())
		require.NotNil(t, pdb.Spec.UnhealthyPodEvictionPolicy)
		assert.Equal(t, policyv1.AlwaysAllow, *pdb.Spec.UnhealthyPodEvictionPolicy)
		assert.Equal(t, d.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels)

		min := get[policyv1.PodDisruptionBudget](t, template(t, "--set", "podDisruptionBudget.enabled=true", "--set", "podDisruptionBudget.minAvailable=1"), "PodDisruptionBudget", release)
		require.NotNil(t, min.Spec.MinAvailable)
		assert.Equal(t, "1", min.Spec.MinAvailable.String())
		assert.Nil(t, min.Spec.MaxUnavailable, "one of minAvailable and maxUnavailable")

		_, ok = template(t, "--set", "podDisruptionBudget.enabled=true", "--set", "replicaCount=1").find("PodDisruptionBudget", "")
		assert.False(t, ok, "a PodDisruptionBudget over one replica would block node drains")
	})

	t.Run("dry run and logging flags", func(t *testing.T) {
		c := container(t, template(t, "--set", "dryRun=true", "--set", "logFormat=text", "--set", "logLevel=debug"))
		for _, a := range []string{"--dry-run", "--log-format=text", "--log-level=debug"} {
			assert.Contains(t, c.Args, a)
		}
		assert.NotContains(t, container(t, m).Args, "--dry-run")
	})

	t.Run("alert labels", func(t *testing.T) {
		c := container(t, template(t, "--set", "alertLabels.env=prod", "--set", "alertLabels.cluster=eu-1"))
		assert.Contains(t, c.Args, "--alert-labels=cluster=eu-1,env=prod")
		for _, a := range container(t, m).Args {
			assert.NotContains(t, a, "--alert-labels", "no labels, no flag")
		}
		_, err := tryTemplate(t, "--set", "alertLabels.bad-name=x")
		require.Error(t, err, "a label name Prometheus refuses")
	})

	t.Run("several replicas need leader election", func(t *testing.T) {
		_, err := tryTemplate(t, "--set", "leaderElection.enabled=false")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "leaderElection.enabled")
	})
}

// TestReadmeValues checks that the chart README's values table lists every
// value of values.yaml.
func TestReadmeValues(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(data, &values))
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		// Free-form maps (labels, annotations, resources, the security
		// contexts) are one value.
		if !ok || len(m) == 0 || strings.HasSuffix(prefix, "labels") || prefix == "resources" ||
			prefix == "podSecurityContext" || prefix == "securityContext" {
			keys = append(keys, prefix)
			return
		}
		for k, sub := range m {
			if prefix != "" {
				k = prefix + "." + k
			}
			walk(k, sub)
		}
	}
	walk("", values)
	require.NotEmpty(t, keys)
	// The table's rows: "| `key` | default | description |".
	var rows []string
	for _, line := range strings.Split(string(readme), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if k, _, ok := strings.Cut(rest, "` |"); ok && !strings.ContainsAny(k, " `") {
				rows = append(rows, k)
			}
		}
	}
	var missing, stale []string
	for _, k := range keys {
		if !slices.Contains(rows, k) {
			missing = append(missing, k)
		}
	}
	// A row may also document a value that values.yaml leaves out (the
	// policy fields commented there): the schema knows it.
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	var inSchema []string
	var props func(prefix string, node map[string]any)
	props = func(prefix string, node map[string]any) {
		p, _ := node["properties"].(map[string]any)
		for k, sub := range p {
			if prefix != "" {
				k = prefix + "." + k
			}
			inSchema = append(inSchema, k)
			if m, ok := sub.(map[string]any); ok {
				props(k, m)
			}
		}
	}
	props("", schema)
	for _, r := range rows {
		known := slices.Contains(keys, r) || slices.Contains(inSchema, r) ||
			slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, r+".") })
		if !known {
			stale = append(stale, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	assert.Empty(t, missing, "values.yaml keys without a row in README.md's values table")
	assert.Empty(t, stale, "rows of README.md's values table that are no value in values.yaml")
}

// TestSchemaListsEveryPolicyQuery keeps the chart's values schema in step
// with the policy file: a query the binary knows but the schema refuses
// could not be set through the chart.
func TestSchemaListsEveryPolicyQuery(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var schema struct {
		Properties struct {
			Policy struct {
				Properties struct {
					Queries struct {
						Properties map[string]json.RawMessage `json:"properties"`
					} `json:"queries"`
				} `json:"properties"`
			} `json:"policy"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(raw, &schema))
	var inSchema []string
	for k := range schema.Properties.Policy.Properties.Queries.Properties {
		inSchema = append(inSchema, k)
	}
	var inPolicy []string
	typ := reflect.TypeOf(policy.Queries{})
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		inPolicy = append(inPolicy, name)
	}
	require.ElementsMatch(t, inPolicy, inSchema)
}

// TestSchemaListsEveryPolicyField keeps the chart's values schema in step
// with every field of the policy file, at every depth: the schema refuses
// unknown fields, so a field it does not list (openfaas.edition, say)
// could not be set through the chart at all. A Prometheus http_config
// (httpConfig) is one value: the binary's strict loader checks inside it.
func TestSchemaListsEveryPolicyField(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	props := func(node map[string]any, path string) map[string]any {
		for _, k := range strings.Split(path, ".") {
			p, _ := node["properties"].(map[string]any)
			node, _ = p[k].(map[string]any)
		}
		return node
	}
	var missing []string
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "" || name == "-" || (path == "" && (name == "apiVersion" || name == "kind")) {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			if props(schema, "policy."+p) == nil {
				missing = append(missing, p)
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() && ft.Name() != "Duration" {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeOf(policy.Policy{}), "")
	assert.Empty(t, missing, "policy fields values.schema.json does not list (so the chart refuses them)")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

// alwaysFiring is an alert rule loaded into the environment's Prometheus,
// to prove the path rule → Alertmanager → webhook.
const alwaysFiring = `groups:
  - name: testenv-smoke
    rules:
      - alert: TestenvSmokeAlwaysFiring
        expr: vector(1)
        labels:
          severity: none
`

func TestMain(m *testing.M) {
	if os.Getenv("TESTENV_CRASH_HELPER_DIR") != "" {
		// A helper process of a unit test: no environment.
		os.Exit(m.Run())
	}
	rules, err := os.CreateTemp("", "testenv-smoke-rules-*.yml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, err = rules.WriteString(alwaysFiring)
	rules.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	code := testenv.Run(m, testenv.Options{RuleFiles: []string{rules.Name()}})
	os.Remove(rules.Name())

	// Run has stopped the environment: none of its processes may be left.
	if env := testenv.Current(); env != nil {
		for _, p := range env.State().Processes {
			if syscall.Kill(p.PID, 0) == nil && p.Alive(env.Dir) {
				fmt.Fprintf(os.Stderr, "testenv: %s (pid %d) still runs after Run\n", p.Name, p.PID)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// eventually calls f every 100ms until it returns nil, and fails the test
// with f's last error if that does not happen within timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "timed out", "%s: not done after %s: %v", what, timeout, err)
		}
		select {
		case <-t.Context().Done():
			require.FailNow(t, "test cancelled while waiting for "+what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func env(t *testing.T) *testenv.Env {
	t.Helper()
	e := testenv.Current()
	require.NotNil(t, e, "TestMain did not start the environment")
	return e
}

// figlet is an OpenFaaS-shaped function Deployment as faas-netes creates it.
func figlet(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"faas_function": "figlet"}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("500m"),
		corev1.ResourceMemory: resource.MustParse("256Mi"),
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "figlet", Namespace: testenv.FunctionNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:      "figlet",
					Image:     "openfaas/figlet:latest",
					Env:       []corev1.EnvVar{{Name: "max_inflight", Value: "4"}},
					Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
				}}},
			},
		},
	}
}

// podCounts tells how the figlet pods fare: running and ready on a kwok
// node, or pending because of insufficient CPU.
type podCounts struct{ total, ready, insufficientCPU int }

func countFigletPods(ctx context.Context, cs kubernetes.Interface) (podCounts, []corev1.Pod, error) {
	var c podCounts
	pods, err := cs.CoreV1().Pods(testenv.FunctionNamespace).List(ctx, metav1.ListOptions{LabelSelector: "faas_function=figlet"})
	if err != nil {
		return c, nil, err
	}
	var pending []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		c.total++
		if p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning && podReady(&p) {
			c.ready++
		}
		for _, cond := range p.Status.Conditions {
			if p.Status.Phase == corev1.PodPending && cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse &&
				cond.Reason == corev1.PodReasonUnschedulable && strings.Contains(cond.Message, "Insufficient cpu") {
				c.insufficientCPU++
				pending = append(pending, p)
			}
		}
	}
	return c, pending, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitPods(t *testing.T, cs kubernetes.Interface, want podCounts) []corev1.Pod {
	t.Helper()
	var pending []corev1.Pod
	eventually(t, time.Minute, fmt.Sprintf("figlet pods %+v", want), func() error {
		got, p, err := countFigletPods(t.Context(), cs)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %+v", got)
		}
		pending = p
		return nil
	})
	return pending
}

func TestFunctionSchedulingOnKwokNodes(t *testing.T) {
	e := env(t)
	ctx := t.Context()
	cs := e.Clientset
	deployments := cs.AppsV1().Deployments(testenv.FunctionNamespace)

	// The default pool's capacity in figlet pods (500m each).
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: testenv.NodePoolLabel + "=" + testenv.DefaultNodePool})
	require.NoError(t, err)
	require.Len(t, nodes.Items, testenv.DefaultNodes)
	capacity := 0
	for _, n := range nodes.Items {
		require.Equal(t, "fake", n.Annotations["kwok.x-k8s.io/node"])
		for _, taint := range n.Spec.Taints {
			require.NotEqual(t, "node.kubernetes.io/not-ready", taint.Key, "node %s still tainted", n.Name)
		}
		capacity += int(n.Status.Allocatable.Cpu().MilliValue() / 500)
	}
	require.Equal(t, 32, capacity)

	_, err = deployments.Create(ctx, figlet(2), metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = deployments.Delete(ctx, "figlet", metav1.DeleteOptions{})
	})

	t.Log("two replicas run on kwok nodes")
	waitPods(t, cs, podCounts{total: 2, ready: 2})
	pods, err := cs.CoreV1().Pods(testenv.FunctionNamespace).List(ctx, metav1.ListOptions{LabelSelector: "faas_function=figlet"})
	require.NoError(t, err)
	for _, p := range pods.Items {
		require.True(t, strings.HasPrefix(p.Spec.NodeName, testenv.DefaultNodePool+"-"), "pod %s on %q", p.Name, p.Spec.NodeName)
		require.Equal(t, "4", p.Spec.Containers[0].Env[0].Value)
	}

	t.Log("scaling past capacity through the scale subresource leaves the overflow Pending")
	scale, err := deployments.GetScale(ctx, "figlet", metav1.GetOptions{})
	require.NoError(t, err)
	scale.Spec.Replicas = int32(capacity + 2)
	_, err = deployments.UpdateScale(ctx, "figlet", scale, metav1.UpdateOptions{})
	require.NoError(t, err)
	pending := waitPods(t, cs, podCounts{total: capacity + 2, ready: capacity, insufficientCPU: 2})

	eventually(t, 30*time.Second, "a FailedScheduling event mentioning Insufficient cpu", func() error {
		events, err := cs.CoreV1().Events(testenv.FunctionNamespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": pending[0].Name, "reason": "FailedScheduling"}.String(),
		})
		if err != nil {
			return err
		}
		for _, ev := range events.Items {
			if strings.Contains(ev.Message, "Insufficient cpu") {
				return nil
			}
		}
		return fmt.Errorf("%d FailedScheduling events, none about cpu", len(events.Items))
	})

	t.Log("a node added later takes the overflow")
	require.NoError(t, e.AddNodes(ctx, "extra", 1, "1", "2Gi"))
	t.Cleanup(func() { _ = e.DeleteNodes(context.Background(), "extra") })
	waitPods(t, cs, podCounts{total: capacity + 2, ready: capacity + 2})

	t.Log("deleting that node sends its pods back to Pending")
	require.NoError(t, e.DeleteNodes(ctx, "extra"))
	waitPods(t, cs, podCounts{total: capacity + 2, ready: capacity, insufficientCPU: 2})
}

// metricsServer serves one gauge, tierscaler_smoke_value, on 127.0.0.1.
func metricsServer(t *testing.T, v float64) (prometheus.Gauge, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tierscaler_smoke_value", Help: "A value for the testenv smoke test."})
	g.Set(v)
	reg.MustRegister(g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return g, strings.TrimPrefix(srv.URL, "http://")
}

// waitQueryValue waits until the PromQL query q returns one sample with
// value want.
func waitQueryValue(t *testing.T, e *testenv.Env, q string, want float64) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s == %v", q, want), func() error {
		res, _, _, err := e.PrometheusAPI().Query(t.Context(), q, time.Now())
		if err != nil {
			return err
		}
		vec, ok := res.(model.Vector)
		if !ok || len(vec) != 1 {
			return fmt.Errorf("result %v", res)
		}
		if float64(vec[0].Value) != want {
			return fmt.Errorf("value %v", vec[0].Value)
		}
		return nil
	})
}

func TestPrometheusScrapesAddedTarget(t *testing.T) {
	e := env(t)
	gauge, target := metricsServer(t, 42)
	require.NoError(t, e.AddScrapeTarget("smoke", target))
	t.Cleanup(func() { _ = e.RemoveScrapeTarget("smoke", target) })
	q := fmt.Sprintf(`tierscaler_smoke_value{job="smoke",instance=%q}`, target)
	waitQueryValue(t, e, q, 42)

	t.Log("Prometheus restarts on the same URL and keeps its targets")
	url := e.PrometheusURL
	require.NoError(t, e.StopPrometheus())
	_, err := http.Get(url + "/-/ready")
	require.Error(t, err, "Prometheus still answers after StopPrometheus")
	gauge.Set(43)
	require.NoError(t, e.StartPrometheus())
	require.Equal(t, url, e.PrometheusURL)
	waitQueryValue(t, e, q, 43)
}

func TestAlertmanager(t *testing.T) {
	e := env(t)

	t.Log("GET /api/v2/status answers")
	resp, err := http.Get(e.AlertmanagerURL + "/api/v2/status")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var status struct {
		Cluster struct{ Status string }   `json:"cluster"`
		Config  struct{ Original string } `json:"config"`
	}
	require.NoError(t, json.Unmarshal(body, &status))
	require.Equal(t, "disabled", status.Cluster.Status, "gossip must be off (--cluster.listen-address=)")
	require.Contains(t, status.Config.Original, `null`)

	t.Log("the always-firing rule reaches a webhook receiver, also after an Alertmanager restart")
	var mu sync.Mutex
	var received []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct{ Labels map[string]string } `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err == nil {
			mu.Lock()
			for _, a := range msg.Alerts {
				received = append(received, a.Labels["alertname"])
			}
			mu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)
	require.NoError(t, e.SetAlertmanagerConfig(fmt.Sprintf(`route:
  receiver: hook
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: false
`, hook.URL)))
	t.Cleanup(func() { _ = e.SetAlertmanagerConfig(testenv.DefaultAlertmanagerConfig) })
	gotAlert := func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, name := range received {
			if name == "TestenvSmokeAlwaysFiring" {
				received = nil
				return nil
			}
		}
		return fmt.Errorf("webhook received %v", received)
	}
	eventually(t, 30*time.Second, "the alert at the webhook", gotAlert)

	require.NoError(t, e.StopAlertmanager())
	_, err = http.Get(e.AlertmanagerURL + "/-/ready")
	require.Error(t, err, "Alertmanager still answers after StopAlertmanager")
	require.NoError(t, e.StartAlertmanager())
	eventually(t, 30*time.Second, "the alert at the webhook after a restart", gotAlert)
}

func TestServiceAccountIsSubjectToRBAC(t *testing.T) {
	e := env(t)
	ctx := t.Context()
	ns := testenv.FunctionNamespace
	const sa = "smoke-reader"
	_, err := e.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	require.NoError(t, err)

	token, err := e.ServiceAccountToken(ctx, ns, sa)
	require.NoError(t, err)
	cfg := &rest.Config{Host: e.APIServerURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: e.RESTConfig.CAData}}
	saClient, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = saClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "want Forbidden without a RoleBinding, got %v", err)

	_, err = e.Clientset.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = e.Clientset.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	kubeconfig, err := e.ServiceAccountKubeconfig(ctx, ns, sa)
	require.NoError(t, err)
	fromFile, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	fileClient, err := kubernetes.NewForConfig(fromFile)
	require.NoError(t, err)
	eventually(t, 30*time.Second, "the ServiceAccount may list pods", func() error {
		_, err := fileClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err
	})
	_, err = fileClient.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "want Forbidden for secrets, got %v", err)
}

// TestSecondEnvironment starts another environment beside the shared one
// (free ports: they coexist), stops it, and checks that none of its
// processes and nothing of its directory is left.
func TestSecondEnvironment(t *testing.T) {
	first := env(t)
	second, err := testenv.Start(t.Context(), testenv.Options{Nodes: 1})
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = second.Stop()
		}
	})

	require.NotEqual(t, first.APIServerURL, second.APIServerURL)
	require.NotEqual(t, first.PrometheusURL, second.PrometheusURL)
	require.True(t, strings.HasPrefix(filepath.Base(second.Dir), testenv.TempDirPrefix), second.Dir)
	nodes, err := second.Clientset.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, nodes.Items, 1)
	for _, u := range []string{second.PrometheusURL + "/-/ready", second.AlertmanagerURL + "/-/ready"} {
		resp, err := http.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
	}

	procs := second.State().Processes
	require.Len(t, procs, 7)
	for _, p := range procs {
		require.True(t, p.Alive(second.Dir), "%s (pid %d) not running", p.Name, p.PID)
	}
	require.NoError(t, second.Stop())
	stopped = true
	for _, p := range procs {
		err := syscall.Kill(p.PID, 0)
		require.True(t, errors.Is(err, syscall.ESRCH), "%s (pid %d) still exists after Stop: %v", p.Name, p.PID, err)
	}
	_, err = os.Stat(second.Dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "%s still exists: %v", second.Dir, err)
	_, err = http.Get(second.PrometheusURL)
	var uerr *url.Error
	require.ErrorAs(t, err, &uerr)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

func TestNewDeployment(t *testing.T) {
	s, err := workload.Builtin("mixed-small")
	if err != nil {
		t.Fatal(err)
	}
	fns := map[string]workload.Function{}
	for _, f := range s.Functions {
		fns[f.Name] = f
	}
	for _, tc := range []struct {
		name        string
		fn          string
		replicas    int32
		labels      map[string]string
		annotations map[string]string
		env         []corev1.EnvVar
		requests    corev1.ResourceList
		limits      corev1.ResourceList
	}{
		{
			name: "sync", fn: "api", replicas: 1,
			labels: map[string]string{"faas_function": "api", "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "8"},
			annotations: map[string]string{"prometheus.io.scrape": "false", "tierscaler.io/tier": "sync",
				AnnotationScenario: "mixed-small"},
			env:      []corev1.EnvVar{{Name: "max_inflight", Value: "5"}},
			requests: corev1.ResourceList{"cpu": resource.MustParse("250m"), "memory": resource.MustParse("128Mi")},
			limits:   corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("256Mi")},
		},
		{
			name: "cron at zero", fn: "report", replicas: 0,
			labels: map[string]string{"faas_function": "report", "com.openfaas.scale.min": "0", "com.openfaas.scale.max": "1"},
			annotations: map[string]string{"prometheus.io.scrape": "false", "tierscaler.io/tier": "cron",
				"topic": "cron-function", "schedule": "*/5 * * * *", AnnotationScenario: "mixed-small"},
			env:      []corev1.EnvVar{{Name: "max_inflight", Value: "1"}},
			requests: corev1.ResourceList{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("256Mi")},
			limits:   corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("512Mi")},
		},
		{
			name: "async without limits", fn: "notify", replicas: 1,
			labels: map[string]string{"faas_function": "notify", "com.openfaas.scale.min": "0", "com.openfaas.scale.max": "3"},
			annotations: map[string]string{"prometheus.io.scrape": "false", "tierscaler.io/tier": "async",
				AnnotationScenario: "mixed-small"},
			env:      []corev1.EnvVar{{Name: "max_inflight", Value: "10"}},
			requests: corev1.ResourceList{"cpu": resource.MustParse("100m"), "memory": resource.MustParse("64Mi")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDeployment("mixed-small", fns[tc.fn])
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != tc.fn || d.Namespace != "openfaas-fn" || *d.Spec.Replicas != tc.replicas {
				t.Errorf("%s/%s replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
			}
			tmpl := d.Spec.Template
			for what, got := range map[string]map[string]string{"labels": d.Labels, "template labels": tmpl.Labels} {
				if diff := cmp.Diff(tc.labels, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", what, diff)
				}
			}
			for what, got := range map[string]map[string]string{"annotations": d.Annotations, "template annotations": tmpl.Annotations} {
				if diff := cmp.Diff(tc.annotations, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", what, diff)
				}
			}
			if diff := cmp.Diff(map[string]string{"faas_function": tc.fn}, d.Spec.Selector.MatchLabels); diff != "" {
				t.Errorf("selector (-want +got):\n%s", diff)
			}
			c := tmpl.Spec.Containers[0]
			if c.Name != tc.fn || c.Image != Image {
				t.Errorf("container %s image %s", c.Name, c.Image)
			}
			if diff := cmp.Diff(tc.env, c.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			if !equalResources(tc.requests, c.Resources.Requests) || !equalResources(tc.limits, c.Resources.Limits) {
				t.Errorf("resources %v", c.Resources)
			}
			ru := d.Spec.Strategy.RollingUpdate
			if ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
				t.Errorf("strategy %+v", d.Spec.Strategy)
			}
			// What tierscaler reads back from it.
			var env = map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			meta, err := (&policy.Policy{}).ParseMeta(d.Labels, d.Annotations, env)
			if err != nil {
				t.Fatalf("tierscaler cannot read the Deployment: %v", err)
			}
			if string(meta.Tier) != string(fns[tc.fn].Tier) {
				t.Errorf("tierscaler reads tier %s, want %s", meta.Tier, fns[tc.fn].Tier)
			}
		})
	}
	bad := workload.Function{Name: "x", Requests: workload.Resources{CPU: "lots"}}
	if _, err := NewDeployment("s", bad); err == nil {
		t.Error("NewDeployment with a bad quantity succeeded")
	}
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

func TestCreateFunctions(t *testing.T) {
	ctx := context.Background()
	s, err := workload.Parse([]byte(`apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: create
functions:
  - name: a
  - name: b
    namespace: team-b
`))
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	created, err := CreateFunctions(ctx, client, s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a.openfaas-fn", "b.team-b"}, created); diff != "" {
		t.Fatalf("created (-want +got):\n%s", diff)
	}
	for _, ns := range []string{"openfaas-fn", "team-b"} {
		if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
	// tierscaler scales a to 4; a second run must not touch it.
	d, _ := client.AppsV1().Deployments("openfaas-fn").Get(ctx, "a", metav1.GetOptions{})
	d.Spec.Replicas = ptrTo(int32(4))
	if _, err := client.AppsV1().Deployments("openfaas-fn").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err = CreateFunctions(ctx, client, s)
	if err != nil || len(created) != 0 {
		t.Fatalf("second run created %v, %v; want nothing", created, err)
	}
	d, _ = client.AppsV1().Deployments("openfaas-fn").Get(ctx, "a", metav1.GetOptions{})
	if *d.Spec.Replicas != 4 {
		t.Fatalf("replicas changed to %d", *d.Spec.Replicas)
	}
}

func TestKubeSource(t *testing.T) {
	ctx := t.Context()
	now := metav1.Now()
	pod := func(name, fn string, phase corev1.PodPhase, ready bool, deleting bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openfaas-fn", Labels: map[string]string{"faas_function": fn}},
			Status:     corev1.PodStatus{Phase: phase},
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
		if deleting {
			p.DeletionTimestamp = &now
			p.Finalizers = []string{"x"}
		}
		return p
	}
	client := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "openfaas-fn", Labels: map[string]string{"faas_function": "api"}},
			Spec: appsv1.DeploymentSpec{Replicas: ptrTo(int32(3))}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "openfaas-fn"}},
		pod("api-1", "api", corev1.PodRunning, true, false),
		pod("api-2", "api", corev1.PodRunning, false, false),
		pod("api-3", "api", corev1.PodPending, false, false),
		pod("api-4", "api", corev1.PodRunning, true, true),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "openfaas-fn"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	)
	ks, err := NewKubeSource(ctx, client, []string{"openfaas-fn", "openfaas-fn"})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Stop()
	want := Cluster{
		Deployments: map[string]int32{"api.openfaas-fn": 3},
		Pods: []Pod{
			{Namespace: "openfaas-fn", Name: "api-1", Function: "api", Running: true, Ready: true},
			{Namespace: "openfaas-fn", Name: "api-2", Function: "api", Running: true},
			{Namespace: "openfaas-fn", Name: "api-3", Function: "api"},
			{Namespace: "openfaas-fn", Name: "api-4", Function: "api", Running: true},
		},
	}
	// The fake clientset ignores label selectors; Snapshot filters too.
	if diff := cmp.Diff(want, ks.Snapshot()); diff != "" {
		t.Fatalf("snapshot (-want +got):\n%s", diff)
	}
	if got := ks.Snapshot().ReadyCounts(); got["api.openfaas-fn"] != 1 {
		t.Fatalf("ready counts %v", got)
	}
	// Changes arrive through the watch.
	if _, err := client.CoreV1().Pods("openfaas-fn").Create(ctx, pod("api-5", "api", corev1.PodRunning, true, false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ks.Snapshot().ReadyCounts()["api.openfaas-fn"] != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the new Ready pod did not show up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		key, name, ns string
		ok            bool
	}{
		{"api.openfaas-fn", "api", "openfaas-fn", true},
		{"a.b.c", "a.b", "c", true},
		{"api", "", "", false},
		{".ns", "", "", false},
		{"api.", "", "", false},
	} {
		name, ns, ok := SplitKey(tc.key)
		if name != tc.name || ns != tc.ns || ok != tc.ok {
			t.Errorf("SplitKey(%q) = %q, %q, %v", tc.key, name, ns, ok)
		}
	}
	if err := NewStaticSource().SetReady("nodot", 1); err == nil {
		t.Error("SetReady(nodot) succeeded")
	}
	if err := NewStaticSource().SetReady("a.b", -1); err == nil {
		t.Error("SetReady(-1) succeeded")
	}
}

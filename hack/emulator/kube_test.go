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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tierscaler/tierscaler/workload"
)

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

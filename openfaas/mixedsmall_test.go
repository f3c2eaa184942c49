// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

func TestWorkloadDeploymentOfMixedSmall(t *testing.T) {
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
			d, err := WorkloadDeployment("mixed-small", fns[tc.fn])
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != tc.fn || d.Namespace != "openfaas-fn" || *d.Spec.Replicas != tc.replicas {
				t.Errorf("%s/%s replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
			}
			tmpl := d.Spec.Template
			if diff := cmp.Diff(tc.labels, tmpl.Labels); diff != "" {
				t.Errorf("template labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]string{"faas_function": tc.fn}, d.Labels); diff != "" {
				t.Errorf("Deployment labels (-want +got):\n%s", diff)
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
			meta, err := (&policy.Policy{}).ParseMeta(FunctionLabels(d), d.Annotations, env)
			if err != nil {
				t.Fatalf("tierscaler cannot read the Deployment: %v", err)
			}
			if string(meta.Tier) != string(fns[tc.fn].Tier) {
				t.Errorf("tierscaler reads tier %s, want %s", meta.Tier, fns[tc.fn].Tier)
			}
			if want := *fns[tc.fn].MinReplicas; meta.MinReplicas != want {
				t.Errorf("tierscaler reads min %d, want %d", meta.MinReplicas, want)
			}
		})
	}
	bad := workload.Function{Name: "x", Requests: workload.Resources{CPU: "lots"}}
	if _, err := WorkloadDeployment("s", bad); err == nil {
		t.Error("WorkloadDeployment with a bad quantity succeeded")
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

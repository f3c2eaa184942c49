// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

func request() FunctionDeployment {
	return FunctionDeployment{
		Service: "nightly", Namespace: "openfaas-fn", Image: "ghcr.io/acme/nightly:1",
		Labels:      map[string]string{LabelScaleMin: "2", "com.openfaas.scale.max": "4", "team": "data"},
		Annotations: map[string]string{"topic": "cron-function", "schedule": "0 2 * * *"},
		EnvVars:     map[string]string{"write_timeout": "30m", "max_inflight": "1"},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
	}
}

func TestNewDeploymentIsFaasNetesShape(t *testing.T) {
	r := request()
	d := NewDeployment(r)
	assert.Equal(t, "nightly", d.Name)
	assert.Equal(t, "openfaas-fn", d.Namespace)
	assert.Equal(t, map[string]string{LabelFunction: "nightly"}, d.Labels, "the function's labels are not on the Deployment")
	assert.Equal(t, map[string]string{LabelFunction: "nightly"}, d.Spec.Selector.MatchLabels)
	assert.Equal(t, map[string]string{LabelFunction: "nightly", LabelScaleMin: "2", "com.openfaas.scale.max": "4", "team": "data"},
		d.Spec.Template.Labels, "the function's labels are on the pod template")
	assert.Equal(t, FunctionLabels(d), d.Spec.Template.Labels)
	want := map[string]string{"topic": "cron-function", "schedule": "0 2 * * *", AnnotationPrometheusScrape: "false"}
	assert.Equal(t, want, d.Annotations)
	assert.Equal(t, want, d.Spec.Template.Annotations)
	assert.Equal(t, int32(2), *d.Spec.Replicas, "created at com.openfaas.scale.min")
	assert.Equal(t, int32(0), d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntVal)
	assert.Equal(t, int32(1), d.Spec.Strategy.RollingUpdate.MaxSurge.IntVal)
	c := d.Spec.Template.Spec.Containers[0]
	assert.Equal(t, []corev1.EnvVar{{Name: "max_inflight", Value: "1"}, {Name: "write_timeout", Value: "30m"}}, c.Env, "sorted by name")
	assert.Equal(t, "100m", c.Resources.Requests.Cpu().String())
	assert.Equal(t, "/_/health", c.ReadinessProbe.HTTPGet.Path)
	assert.True(t, IsFunction(d))

	// The request's maps are not shared with the object.
	r.Annotations["x"] = "y"
	r.Labels["y"] = "z"
	assert.NotContains(t, d.Annotations, "x")
	assert.NotContains(t, d.Spec.Template.Labels, "y")
}

func TestNewDeploymentReplicas(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   int32
	}{
		{"no labels", nil, 1},
		{"min 3", map[string]string{LabelScaleMin: "3"}, 3},
		{"min 0 is not positive: 1", map[string]string{LabelScaleMin: "0"}, 1},
		{"min not a number: 1", map[string]string{LabelScaleMin: "two"}, 1},
		{"min negative: 1", map[string]string{LabelScaleMin: "-2"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDeployment(FunctionDeployment{Service: "f", Namespace: "ns", Labels: tc.labels})
			assert.Equal(t, tc.want, *d.Spec.Replicas)
			assert.Equal(t, tc.want, ScaleFromZeroReplicas(tc.labels), "the gateway scales from zero to the same")
		})
	}
}

func TestRedeployReplacesAnnotationsAndResetsReplicas(t *testing.T) {
	d := NewDeployment(request())
	// What others did since: tierscaler scaled it and wrote an annotation on
	// both, someone labelled the Deployment.
	n := int32(7)
	d.Spec.Replicas = &n
	d.Annotations["tierscaler.io/last-run"] = "2026-01-05T02:00:00Z"
	d.Spec.Template.Annotations["tierscaler.io/last-run"] = "2026-01-05T02:00:00Z"
	d.Labels["owner"] = "ops"
	before := d.DeepCopy()

	at := time.Date(2026, 1, 6, 9, 0, 0, 123456789, time.UTC)
	nd := Redeploy(d, request(), at)
	assert.Equal(t, before, d, "Redeploy does not modify its argument")
	assert.Equal(t, int32(2), *nd.Spec.Replicas, "reset to com.openfaas.scale.min")
	assert.NotContains(t, nd.Annotations, "tierscaler.io/last-run", "the annotations are replaced wholesale")
	assert.NotContains(t, nd.Spec.Template.Annotations, "tierscaler.io/last-run")
	assert.Equal(t, Annotations(request()), nd.Annotations)
	assert.Equal(t, "ops", nd.Labels["owner"], "the Deployment's own labels are kept")
	assert.Equal(t, "123456789", nd.Spec.Template.Labels[LabelUID], "a fresh uid starts a rollout")
	assert.Equal(t, "data", nd.Spec.Template.Labels["team"])

	t.Run("without a positive minimum the replicas stay", func(t *testing.T) {
		r := request()
		r.Labels[LabelScaleMin] = "0"
		assert.Equal(t, int32(7), *Redeploy(d, r, at).Spec.Replicas)
		delete(r.Labels, LabelScaleMin)
		assert.Equal(t, int32(7), *Redeploy(d, r, at).Spec.Replicas)
	})
	t.Run("a Deployment without containers gets one", func(t *testing.T) {
		e := &appsv1.Deployment{}
		assert.Len(t, Redeploy(e, request(), at).Spec.Template.Spec.Containers, 1)
	})
}

func TestCEProvider(t *testing.T) {
	for _, tc := range []struct {
		replicas, target int32
		revert           bool
	}{
		{0, 1, true}, {1, 1, false}, {5, 5, false}, {6, 5, true}, {20, 5, true},
	} {
		got, revert := CEWatcherReplicas(tc.replicas)
		assert.Equal(t, tc.target, got, "watcher at %d", tc.replicas)
		assert.Equal(t, tc.revert, revert, "watcher at %d", tc.replicas)
	}
	_, err := CEScaleRequest(0)
	assert.ErrorContains(t, err, "cannot be set to 0")
	n, err := CEScaleRequest(9)
	require.NoError(t, err)
	assert.Equal(t, int32(5), n)
	n, err = CEScaleRequest(3)
	require.NoError(t, err)
	assert.Equal(t, int32(3), n)
	assert.Equal(t, 100*time.Second, ScaleFromZeroTimeout)
}

func TestWorkloadDeployment(t *testing.T) {
	s, err := workload.Parse([]byte(`apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: shape
functions:
  - {name: api, maxInflight: 5, requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 128Mi}, sync: {rate: 1}}
  - {name: job, schedule: "*/5 * * * *", minReplicas: 0, cron: {runDuration: 1m}}
  - {name: q, tier: async, initialReplicas: 3, maxReplicas: 8, async: {rate: 1}}
`))
	require.NoError(t, err)
	byName := map[string]*appsv1.Deployment{}
	for _, f := range s.Functions {
		d, err := WorkloadDeployment(s.Name, f)
		require.NoError(t, err)
		byName[f.Name] = d
	}
	api := byName["api"]
	assert.Equal(t, "sync", api.Annotations[policy.AnnotationTier])
	assert.Equal(t, "shape", api.Annotations[AnnotationScenario])
	assert.Equal(t, "1", api.Spec.Template.Labels[policy.LabelScaleMin])
	assert.Equal(t, "20", api.Spec.Template.Labels[policy.LabelScaleMax])
	assert.Equal(t, []corev1.EnvVar{{Name: policy.EnvMaxInflight, Value: "5"}}, api.Spec.Template.Spec.Containers[0].Env)
	assert.Equal(t, "128Mi", api.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String())
	assert.Equal(t, Image, api.Spec.Template.Spec.Containers[0].Image)

	job := byName["job"]
	assert.Equal(t, policy.TopicCron, job.Annotations[policy.AnnotationTopic])
	assert.Equal(t, "*/5 * * * *", job.Spec.Template.Annotations[policy.AnnotationSchedule])
	assert.Equal(t, int32(0), *job.Spec.Replicas, "a scenario's initialReplicas (defaulted to its minimum)")

	q := byName["q"]
	assert.Equal(t, int32(3), *q.Spec.Replicas)
	assert.Equal(t, "8", q.Spec.Template.Labels[policy.LabelScaleMax])

	bad := s.Functions[0]
	bad.Requests.CPU = "lots"
	_, err = WorkloadDeployment(s.Name, bad)
	assert.ErrorContains(t, err, `function api: requests.cpu "lots"`)
}

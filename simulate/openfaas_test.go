// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/tierscaler/tierscaler/openfaas"
)

// managers lists the managedFields entries as manager/subresource.
func managers(d *appsv1.Deployment) []string {
	var out []string
	for _, e := range d.ManagedFields {
		out = append(out, e.Manager+"/"+e.Subresource)
	}
	return out
}

func TestClusterRedeploy(t *testing.T) {
	s := scenario(t, "nodes: {count: 1, cpu: \"4\", memory: 4Gi}", fn("api", "sync", "100m", "64Mi", 1, "minReplicas: 2"))
	c, clk := newTestCluster(t, s)
	const key = "api.openfaas-fn"
	ctx := context.Background()
	scale(t, c, key, 5)
	require.NoError(t, c.Annotate(ctx, c.Deployment(key), map[string]string{"tierscaler.io/last-run": "2026-01-05T00:00:00Z"}))
	clk.now = t0.Add(time.Hour)
	var updates int
	c.OnUpdate(func(_, _ *appsv1.Deployment, _ time.Time) { updates++ })

	require.NoError(t, c.Redeploy(key))
	d := c.Deployment(key)
	assert.Equal(t, int32(2), *d.Spec.Replicas, "back to com.openfaas.scale.min")
	assert.Len(t, c.Pods(key), 2)
	assert.NotContains(t, d.Annotations, "tierscaler.io/last-run", "faas-netes replaces the annotations")
	assert.Equal(t, "sync", d.Annotations["tierscaler.io/tier"])
	assert.NotEmpty(t, d.Spec.Template.Labels[openfaas.LabelUID])
	assert.Equal(t, []string{"faas-netes/"}, managers(d), "faas-netes now owns the replicas")
	assert.Equal(t, t0.Add(time.Hour), d.ManagedFields[0].Time.Time)
	c.Advance(clk.now)
	assert.Positive(t, updates, "the controller hears of it")
	assert.ErrorContains(t, c.Redeploy("nope.openfaas-fn"), "no such Deployment")
}

func TestClusterCEProvider(t *testing.T) {
	s := scenario(t, "nodes: {count: 1, cpu: \"8\", memory: 8Gi}",
		fn("api", "sync", "100m", "64Mi", 7, "minReplicas: 1\nmaxReplicas: 10"),
		fn("job", "cron", "100m", "64Mi", 0, `schedule: "0 3 * * *"`))
	t.Run("off: anything goes", func(t *testing.T) {
		c, _ := newTestCluster(t, s)
		assert.Equal(t, int32(7), c.Replicas("api.openfaas-fn"))
		assert.Equal(t, int32(0), c.Replicas("job.openfaas-fn"))
	})
	t.Run("on: 0 back to 1, above 5 back to 5, at once", func(t *testing.T) {
		clk := &clock{now: t0}
		c, err := NewCluster(s, ClusterOptions{Now: clk.Now, CEProvider: true})
		require.NoError(t, err)
		assert.Equal(t, int32(5), c.Replicas("api.openfaas-fn"), "the watcher's first list")
		assert.Equal(t, int32(1), c.Replicas("job.openfaas-fn"))
		assert.Equal(t, 1, c.ReadyCounts()["job.openfaas-fn"], "settled")
		scale(t, c, "job.openfaas-fn", 0)
		assert.Equal(t, int32(1), c.Replicas("job.openfaas-fn"), "tierscaler's zero is reverted")
		assert.Equal(t, []string{"faas-netes/"}, managers(c.Deployment("job.openfaas-fn")))
		scale(t, c, "api.openfaas-fn", 3)
		assert.Equal(t, int32(3), c.Replicas("api.openfaas-fn"))
		assert.Equal(t, 3, c.CEReverts())
		c.SetCEProvider(false)
		scale(t, c, "job.openfaas-fn", 0)
		assert.Equal(t, int32(0), c.Replicas("job.openfaas-fn"))
	})
}

func TestClusterScaleFromZero(t *testing.T) {
	s := scenario(t, "nodes: {count: 1, cpu: \"8\", memory: 8Gi}",
		fn("q", "async", "100m", "64Mi", 0, "async: {rate: 1}"),
		fn("big", "sync", "100m", "64Mi", 0, "minReplicas: 7\nmaxReplicas: 10"))
	c, _ := newTestCluster(t, s)
	scaled, err := c.ScaleFromZero("q.openfaas-fn")
	require.NoError(t, err)
	assert.True(t, scaled)
	assert.Equal(t, int32(1), c.Replicas("q.openfaas-fn"), "minimum 0: 1")
	scaled, err = c.ScaleFromZero("q.openfaas-fn")
	require.NoError(t, err)
	assert.False(t, scaled, "not at zero: the gateway only waits")
	scaled, err = c.ScaleFromZero("big.openfaas-fn")
	require.NoError(t, err)
	assert.True(t, scaled)
	assert.Equal(t, int32(7), c.Replicas("big.openfaas-fn"), "its minimum")
	assert.Equal(t, 2, c.ScaledFromZero())
	assert.Equal(t, []string{"faas-netes/"}, managers(c.Deployment("big.openfaas-fn")))
	_, err = c.ScaleFromZero("nope.openfaas-fn")
	assert.Error(t, err)

	t.Run("CE caps the request at 5", func(t *testing.T) {
		c, _ := newTestCluster(t, s)
		c.mu.Lock()
		c.ce = true // the watcher would have put it at 1 already; the scale API's cap alone
		c.mu.Unlock()
		_, err := c.ScaleFromZero("big.openfaas-fn")
		require.NoError(t, err)
		assert.Equal(t, int32(5), c.Replicas("big.openfaas-fn"))
	})
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
	"github.com/tierscaler/tierscaler/workload"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// scenario parses a scenario from its nodes line(s) and functions.
func scenario(t testing.TB, header string, functions ...string) *workload.Scenario {
	t.Helper()
	doc := "apiVersion: tierscaler.io/v1alpha1\nkind: Scenario\nname: test\nstart: \"2026-01-05T00:00:00Z\"\n" + header + "\nfunctions:\n"
	for _, f := range functions {
		doc += "  - " + strings.ReplaceAll(strings.TrimSpace(f), "\n", "\n    ") + "\n"
	}
	s, err := workload.Parse([]byte(doc))
	require.NoError(t, err, doc)
	return s
}

// fn is a function of a test scenario with one container's requests.
func fn(name, tier, cpu, mem string, initial int, extra string) string {
	s := fmt.Sprintf("name: %s\ntier: %s\ninitialReplicas: %d\nrequests: {cpu: %s, memory: %s}", name, tier, initial, cpu, mem)
	if !strings.Contains(extra, "minReplicas") {
		s += "\nminReplicas: 0"
	}
	if extra != "" {
		s += "\n" + extra
	}
	return s
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newTestCluster(t *testing.T, s *workload.Scenario) (*Cluster, *clock) {
	t.Helper()
	clk := &clock{now: t0}
	c, err := NewCluster(s, ClusterOptions{Now: clk.Now})
	require.NoError(t, err)
	return c, clk
}

func scale(t *testing.T, c *Cluster, key string, to int32) {
	t.Helper()
	require.NoError(t, c.Scale(context.Background(), c.Deployment(key), c.Replicas(key), to))
}

func nodesOf(pods []PodInfo) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Node)
	}
	return out
}

func TestClusterScheduling(t *testing.T) {
	cases := []struct {
		name      string
		nodes     string
		functions []string
		scale     map[string]int32
		wantNodes map[string][]string // function key -> node of each pod ("" pending)
	}{
		{
			name:      "spreads to the node with the most free CPU",
			nodes:     "nodes: {count: 2, cpu: \"2\", memory: 4Gi, pods: 10}",
			functions: []string{fn("a", "sync", "500m", "64Mi", 3, "")},
			wantNodes: map[string][]string{"a.openfaas-fn": {"node-00", "node-01", "node-00"}},
		},
		{
			name:  "fragmentation: two nodes with 500m free each cannot take a 1-CPU pod",
			nodes: "nodes: {count: 2, cpu: \"1\", memory: 4Gi, pods: 10}",
			functions: []string{
				fn("small", "sync", "500m", "64Mi", 2, ""),
				fn("big", "sync", "1", "64Mi", 1, ""),
			},
			wantNodes: map[string][]string{"small.openfaas-fn": {"node-00", "node-01"}, "big.openfaas-fn": {""}},
		},
		{
			name:      "memory and pod slots count too",
			nodes:     "nodes: {count: 1, cpu: \"8\", memory: 1Gi, pods: 3}",
			functions: []string{fn("m", "sync", "10m", "400Mi", 3, ""), fn("p", "sync", "10m", "10Mi", 2, "")},
			// m: two fit in memory; the third does not. p: one slot left.
			wantNodes: map[string][]string{"m.openfaas-fn": {"node-00", "node-00", ""}, "p.openfaas-fn": {"node-00", ""}},
		},
		{
			name:      "a smaller pod behind an unschedulable one still gets a node",
			nodes:     "nodes: {count: 1, cpu: \"1\", memory: 4Gi, pods: 10}",
			functions: []string{fn("a", "sync", "800m", "64Mi", 1, ""), fn("b", "sync", "800m", "64Mi", 1, ""), fn("c", "sync", "100m", "64Mi", 1, "")},
			wantNodes: map[string][]string{"a.openfaas-fn": {"node-00"}, "b.openfaas-fn": {""}, "c.openfaas-fn": {"node-00"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestCluster(t, scenario(t, tc.nodes, tc.functions...))
			for key, want := range tc.wantNodes {
				assert.Equal(t, want, nodesOf(c.Pods(key)), key)
			}
		})
	}
}

func TestClusterStartLatencyAndReadiness(t *testing.T) {
	s := scenario(t, "nodes: {count: 1, cpu: \"4\", memory: 4Gi}\npodStartLatency: 10s", fn("a", "async", "100m", "64Mi", 1, ""))
	c, clk := newTestCluster(t, s)
	key := "a.openfaas-fn"
	var updates []string
	c.OnUpdate(func(old, cur *appsv1.Deployment, at time.Time) {
		updates = append(updates, fmt.Sprintf("%d->%d@%s", old.Status.ReadyReplicas, cur.Status.ReadyReplicas, at.Sub(t0)))
	})
	require.Equal(t, 1, c.ReadyCounts()[key], "the initial pods are Ready at once: the cluster starts settled")

	clk.now = t0.Add(time.Minute)
	scale(t, c, key, 3)
	assert.Equal(t, 1, c.ReadyCounts()[key], "new pods are not Ready inside Scale")
	assert.Equal(t, t0.Add(70*time.Second), c.NextReady())
	c.Advance(t0.Add(69 * time.Second))
	assert.Equal(t, 1, c.ReadyCounts()[key])
	c.Advance(t0.Add(70 * time.Second))
	assert.Equal(t, 3, c.ReadyCounts()[key])
	assert.True(t, c.NextReady().IsZero())
	assert.Equal(t, int32(3), c.Deployment(key).Status.ReadyReplicas)
	assert.Contains(t, updates, "1->3@1m0s", "the update handler sees the readiness change")

	st, err := c.State(context.Background())
	require.NoError(t, err)
	ready := 0
	for _, p := range st.Pods {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready++
				assert.Equal(t, corev1.PodRunning, p.Status.Phase)
			}
		}
	}
	assert.Equal(t, 3, ready)
}

func TestClusterScaleDownOrder(t *testing.T) {
	// One node with room for 3 pods of 1 CPU: pods 1-3 bound (1 Ready from
	// the start, 2 and 3 starting), pod 4 pending.
	s := scenario(t, "nodes: {count: 1, cpu: \"3\", memory: 4Gi}\npodStartLatency: 10s", fn("a", "sync", "1", "64Mi", 1, ""))
	c, clk := newTestCluster(t, s)
	key := "a.openfaas-fn"
	clk.now = t0.Add(time.Second)
	scale(t, c, key, 2)
	c.Advance(t0.Add(11 * time.Second)) // a-2 Ready
	clk.now = t0.Add(20 * time.Second)
	scale(t, c, key, 4) // a-3 starting, a-4 pending
	names := func() []string {
		var out []string
		for _, p := range c.Pods(key) {
			state := "ready"
			switch {
			case p.Node == "":
				state = "pending"
			case !p.Ready:
				state = "starting"
			}
			out = append(out, p.Name+":"+state)
		}
		return out
	}
	require.Equal(t, []string{"a-1:ready", "a-2:ready", "a-3:starting", "a-4:pending"}, names())
	steps := []struct {
		to   int32
		want []string
	}{
		{3, []string{"a-1:ready", "a-2:ready", "a-3:starting"}}, // pending first
		{2, []string{"a-1:ready", "a-2:ready"}},                 // then not Ready
		{1, []string{"a-1:ready"}},                              // then the newest
		{0, nil},
	}
	for _, st := range steps {
		scale(t, c, key, st.to)
		assert.Equal(t, st.want, names(), "scaled to %d", st.to)
	}
	u := c.Usage()
	assert.Equal(t, policy.Resources{}, u.Reserved[0], "every pod's room is back")
	assert.Equal(t, 0, c.ReadyCounts()[key])
}

func TestClusterScaleRecordsManagedFieldsAndConflicts(t *testing.T) {
	s := scenario(t, "nodes: {count: 1}", fn("a", "cron", "100m", "64Mi", 1, `schedule: "0 * * * *"`))
	c, clk := newTestCluster(t, s)
	key := "a.openfaas-fn"
	d := c.Deployment(key)
	clk.now = t0.Add(42 * time.Minute)
	require.NoError(t, c.Scale(context.Background(), d, 1, 0))
	cur := c.Deployment(key)
	require.Len(t, cur.ManagedFields, 1)
	mf := cur.ManagedFields[0]
	assert.Equal(t, scaler.FieldManager, mf.Manager)
	assert.Equal(t, "scale", mf.Subresource)
	assert.Equal(t, t0.Add(42*time.Minute), mf.Time.Time)
	assert.Contains(t, string(mf.FieldsV1.Raw), `"f:replicas"`)
	assert.Greater(t, cur.Generation, d.Generation)
	assert.NotEqual(t, d.ResourceVersion, cur.ResourceVersion)
	assert.Equal(t, int32(1), *d.Spec.Replicas, "objects handed out are never modified")

	clk.now = t0.Add(50 * time.Minute)
	require.NoError(t, c.Scale(context.Background(), cur, 0, 1))
	require.Len(t, c.Deployment(key).ManagedFields, 1, "one entry per manager, its time updated")
	assert.Equal(t, t0.Add(50*time.Minute), c.Deployment(key).ManagedFields[0].Time.Time)

	err := c.Scale(context.Background(), d, 5, 2)
	assert.ErrorIs(t, err, scaler.ErrChanged)

	require.NoError(t, c.Annotate(context.Background(), d, map[string]string{policy.AnnotationLastRun: "2026-01-05T00:50:00Z"}))
	assert.Equal(t, "2026-01-05T00:50:00Z", c.Deployment(key).Annotations[policy.AnnotationLastRun])
	assert.Equal(t, "cron", c.Deployment(key).Annotations[policy.AnnotationTier], "annotations are merged")
}

func TestClusterStateFiltersNamespaces(t *testing.T) {
	s := scenario(t, "nodes: {count: 1}", fn("a", "sync", "100m", "64Mi", 1, ""), fn("b", "sync", "100m", "64Mi", 1, "namespace: other"))
	c, err := NewCluster(s, ClusterOptions{Now: func() time.Time { return t0 }, Namespaces: []string{"openfaas-fn"}})
	require.NoError(t, err)
	st, err := c.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.Deployments, 1)
	assert.Equal(t, "a", st.Deployments[0].Name)
	assert.Len(t, st.Pods, 2, "pods of every namespace count for node room")
	assert.Len(t, st.Nodes, 1)
}

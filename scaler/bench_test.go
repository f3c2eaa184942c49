// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tierscaler/tierscaler/policy"
)

// benchCluster is a Cluster for benchmarks. State hands out the same
// objects every cycle without copying them, as the informer cache does
// (KubeCluster lists with UnsafeDisableDeepCopy), so that the figures are
// the controller's and not the fake's. Scale and Annotate only count: the
// world does not follow the patches, so every cycle sees the same inputs
// and makes the same decisions.
type benchCluster struct {
	st                  ClusterState
	scales, annotations atomic.Int64
}

func (c *benchCluster) State(context.Context) (*ClusterState, error) {
	st := c.st
	return &st, nil
}

func (c *benchCluster) Scale(context.Context, *appsv1.Deployment, int32, int32) error {
	c.scales.Add(1)
	return nil
}

func (c *benchCluster) Annotate(context.Context, *appsv1.Deployment, map[string]string) error {
	c.annotations.Add(1)
	return nil
}

// benchLabel sets a label on a benchmark Deployment.
func benchLabel(k, v string) depOpt {
	return func(d *appsv1.Deployment) { d.Labels[k] = v }
}

// benchWorld builds a cluster of n functions, as the informer cache would
// hold it, and a fake Prometheus that reports on all of them at now:
//
//   - 10% sync functions with 2 Ready replicas and traffic; one in ten of
//     them refuses requests (429s) and wants more replicas;
//   - 60% cron functions on a few shared schedules, idle at 0 replicas or
//     at 1 after a recent run; one in ten is due within the lookahead and
//     wants a prewarm;
//   - 30% async functions at 0 or 1 replica; one in ten has queued work and
//     wants an activation.
//
// So about 10% of the functions want a change every cycle. Pods are spread
// over nodes of 16 CPU and 64Gi (32 pods of 500m each), with room to spare.
// Every object has a resourceVersion, so the controller parses each
// Deployment's metadata once, as it does in production.
func benchWorld(n int, now time.Time) (*benchCluster, *fakeQuerier, *policy.Policy) {
	p := policy.Default()
	q := newFakeQuerier(p)
	c := &benchCluster{}
	schedules := []string{"*/5 * * * *", "0 * * * *", "30 2 * * *", "*/15 * * * *", "0 3 * * 1"}
	// Fires at 12:01, within the default prewarm lead (startup time 30s,
	// margin 30s, interval 15s) of t0 (12:00): a prewarm is wanted.
	const dueSchedule = "1 12 * * *"
	var deps []appsv1.Deployment
	var seen, rejections, invocations, durations, inflight, pending, cpu, memory model.Vector
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("fn-%05d", i)
		key := name + ".openfaas-fn"
		change := (i/10)%10 == 0 // one function in ten of each tier
		var d appsv1.Deployment
		switch {
		case i%10 == 0: // sync
			d = deployment(name, 2)
			rate, refused, infl := 10.0, 0.0, 3.0
			if change {
				rate, refused, infl = 40, 15, 4*2
			}
			invocations = append(invocations, fnSample(key, rate))
			rejections = append(rejections, fnSample(key, refused))
			durations = append(durations, fnSample(key, 0.2))
			inflight = append(inflight, fnSample(key, infl))
		case i%10 < 7: // cron
			spec, replicas := schedules[i%len(schedules)], int32(i%2)
			if change {
				spec, replicas = dueSchedule, 0
			}
			d = deployment(name, replicas, annotated(policy.AnnotationTopic, policy.TopicCron),
				annotated(policy.AnnotationSchedule, spec), benchLabel(policy.LabelScaleMin, "0"),
				annotated(policy.AnnotationLastRun, now.Add(-time.Duration(i%7)*time.Minute).UTC().Format(time.RFC3339)))
			inflight = append(inflight, fnSample(key, 0))
		default: // async
			replicas, queued := int32(i%2), 0.0
			if change {
				replicas, queued = 0, 25
			}
			d = deployment(name, replicas, annotated(policy.AnnotationTier, string(policy.TierAsync)),
				benchLabel(policy.LabelScaleMin, "0"),
				annotated(policy.AnnotationLastRun, now.Add(-time.Duration(i%4)*time.Minute).UTC().Format(time.RFC3339)))
			inflight = append(inflight, fnSample(key, 0))
			pending = append(pending, fnSample(key, queued))
		}
		d.ResourceVersion = "1"
		d.UID = types.UID("uid-" + name)
		deps = append(deps, d)
		seen = append(seen, fnSample(key, float64(now.Unix())))
	}
	nodes := make([]corev1.Node, n/20+1)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("node-%04d", i), "16", "64Gi")
	}
	var allPods []corev1.Pod
	for i := range deps {
		ps := pods(deps[i], nodes[i%len(nodes)].Name)
		for j := range ps {
			ps[j].ResourceVersion = "1"
			cpu = append(cpu, podSample(ps[j].Namespace, ps[j].Name, 0.1))
			memory = append(memory, podSample(ps[j].Namespace, ps[j].Name, 64<<20))
		}
		allPods = append(allPods, ps...)
	}
	c.st = ClusterState{Deployments: deps, Pods: allPods, Nodes: nodes}
	for name, v := range map[string]model.Vector{"functions": seen, "rejections": rejections, "invocations": invocations,
		"duration": durations, "inflight": inflight, "pending": pending, "cpu": cpu, "memory": memory} {
		q.set(name, v)
	}
	return c, q, p
}

// newBenchController returns a controller over benchWorld(n) with a fixed
// clock.
func newBenchController(tb testing.TB, n int) (*Controller, *benchCluster, *fakeQuerier) {
	tb.Helper()
	c, q, p := benchWorld(n, t0)
	ctrl, err := New(Options{Policy: p, Cluster: c, Querier: q, Metrics: NewMetrics(prometheus.NewRegistry()),
		Now: func() time.Time { return t0 }, Log: logr.Discard()})
	if err != nil {
		tb.Fatal(err)
	}
	return ctrl, c, q
}

// TestQueriesPerCycleAreTheSameAt10And5000Functions: the Prometheus load of
// a cycle is the policy's eight queries, whatever the number of functions.
func TestQueriesPerCycleAreTheSameAt10And5000Functions(t *testing.T) {
	want := len(queries(policy.Default()))
	if want != 8 {
		t.Fatalf("the policy has %d queries, want 8", want)
	}
	for _, n := range []int{10, 5000} {
		ctrl, c, q := newBenchController(t, n)
		for cycle := 1; cycle <= 3; cycle++ {
			res, err := ctrl.Reconcile(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !res.Snapshot.MetricsAvailable {
				t.Fatalf("%d functions: metrics unavailable", n)
			}
			if got := q.callCount(); got != want*cycle {
				t.Fatalf("%d functions: %d queries after %d cycles, want %d per cycle", n, got, cycle, want)
			}
		}
		if c.scales.Load() == 0 {
			t.Fatalf("%d functions: no action: the benchmark world should want changes", n)
		}
	}
}

// BenchmarkReconcile measures one controller cycle (gather from the cluster
// and Prometheus, build the snapshot, decide, act, report) against
// benchWorld with 10, 1,000 and 5,000 functions. The cluster and Prometheus
// are in-memory fakes: the figures are the controller's own CPU time, not
// the API server's or Prometheus'. Besides ns/op it reports ns/reconcile
// (the same mean), the median and 99th percentile in milliseconds, the
// PromQL queries per cycle, and the scale patches per cycle.
func BenchmarkReconcile(b *testing.B) {
	for _, n := range []int{10, 1000, 5000} {
		b.Run(fmt.Sprintf("functions=%d", n), func(b *testing.B) {
			ctrl, c, q := newBenchController(b, n)
			ctx := context.Background()
			// One cycle outside the measurement fills the metadata cache,
			// as a running controller's is.
			if _, err := ctrl.Reconcile(ctx); err != nil {
				b.Fatal(err)
			}
			queriesBefore, scalesBefore := q.callCount(), c.scales.Load()
			durations := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := ctrl.Reconcile(ctx); err != nil {
					b.Fatal(err)
				}
				durations = append(durations, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
			var total time.Duration
			for _, d := range durations {
				total += d
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/reconcile")
			b.ReportMetric(ms(durations[len(durations)/2]), "p50-ms")
			b.ReportMetric(ms(durations[len(durations)*99/100]), "p99-ms")
			b.ReportMetric(float64(q.callCount()-queriesBefore)/float64(b.N), "queries/cycle")
			b.ReportMetric(float64(c.scales.Load()-scalesBefore)/float64(b.N), "scales/cycle")
			b.ReportMetric(float64(len(c.st.Pods)), "pods")
		})
	}
}

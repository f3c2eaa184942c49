// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tierscaler/tierscaler/policy"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type harness struct {
	t    *testing.T
	p    *policy.Policy
	c    *Controller
	cl   *fakeCluster
	q    *fakeQuerier
	rec  *fakeRecorder
	sink *fakeSink
	m    *Metrics
	now  time.Time
	// frozen stops reconcile from refreshing the gateway's scrape times.
	frozen bool
}

// newHarness builds a controller over a fake cluster holding deps (their
// pods bound to n1) and the given nodes, and a fake Prometheus that knows
// every function and reports no traffic.
// patientPolicy is the default policy with the windows these tests were
// written for (a 2m grace period, 5m idleAfter and residency, a 30s margin),
// so that they test the controller, not the defaults.
func patientPolicy() *policy.Policy {
	p := policy.Default()
	p.Tiers.Cron.GracePeriod.Duration = 2 * time.Minute
	p.Tiers.Cron.Margin.Duration = 30 * time.Second
	p.Tiers.Async.IdleAfter.Duration = 5 * time.Minute
	p.Preemption.MinResidency.Duration = 5 * time.Minute
	return p
}

func newHarness(t *testing.T, deps []appsv1.Deployment, nodes []corev1.Node, mods ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, p: patientPolicy(), rec: &fakeRecorder{}, sink: &fakeSink{}, now: t0}
	h.cl = &fakeCluster{st: ClusterState{Nodes: nodes}}
	for _, d := range deps {
		h.cl.st.Deployments = append(h.cl.st.Deployments, *d.DeepCopy())
		h.cl.st.Pods = append(h.cl.st.Pods, pods(d, "n1")...)
	}
	h.q = newFakeQuerier(h.p)
	h.m = NewMetrics(prometheus.NewRegistry())
	o := Options{Policy: h.p, Cluster: h.cl, Querier: h.q, Recorder: h.rec, Metrics: h.m, Sink: h.sink,
		Now: func() time.Time { return h.now }, Log: logr.Discard()}
	for _, m := range mods {
		m(&o)
	}
	c, err := New(o)
	require.NoError(t, err)
	h.c = c
	return h
}

func (h *harness) reconcile() *Result {
	h.t.Helper()
	h.prepare()
	res, err := h.c.Reconcile(context.Background())
	require.NoError(h.t, err)
	return res
}

// prepare sets what the gateway reports before a cycle.
func (h *harness) prepare() {
	if !h.frozen {
		// The gateway reports every function, scraped just now, and as the
		// default in-flight query and a Pro queue-worker do, a zero
		// in-flight and pending sample for every function without one.
		var seen model.Vector
		for _, d := range h.cl.st.Deployments {
			seen = append(seen, fnSample(d.Name+"."+d.Namespace, float64(h.now.Unix())))
		}
		h.q.set("functions", seen)
		for _, name := range []string{"inflight", "pending"} {
			h.q.mu.Lock()
			v := h.q.results[name]
			have := map[string]bool{}
			for _, smp := range v {
				have[string(smp.Metric["function_name"])] = true
			}
			for _, d := range h.cl.st.Deployments {
				if k := d.Name + "." + d.Namespace; !have[k] {
					v = append(v, fnSample(k, 0))
				}
			}
			h.q.results[name] = v
			h.q.mu.Unlock()
		}
	}
}

// burst makes the fake Prometheus report 429s for fn.
func (h *harness) burst(fn string, rejections, invocations, inflight float64) {
	key := fn + ".openfaas-fn"
	h.q.set("rejections", model.Vector{fnSample(key, rejections)})
	h.q.set("invocations", model.Vector{fnSample(key, invocations)})
	h.q.set("inflight", model.Vector{fnSample(key, inflight)})
}

func bigNode() []corev1.Node { return []corev1.Node{node("n1", "16", "32Gi")} }

func TestReconcileScalesUpOn429s(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2)}, bigNode())
	h.burst("api", 10, 20, 8)
	res := h.reconcile()
	require.Equal(t, []string{"scale api 2->6"}, h.cl.scaleCalls())
	require.Len(t, res.Applied, 1)
	require.Equal(t, []string{EventScaledUp}, h.rec.reasons("api"))
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Actions.WithLabelValues("sync", "scale-up-rejections")))
	require.Equal(t, 6.0, testutil.ToFloat64(h.m.DesiredReplicas.WithLabelValues("api.openfaas-fn", "sync")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.MetricsAvailable))
	// api is sync: nothing orders it, its last run is never written.
	require.Equal(t, []string{"scale api 2->6"}, h.cl.allCalls())
}

func TestReconcileEvictsBeforeTheScaleUpItMakesRoomFor(t *testing.T) {
	// n1 has 2 CPU: api (2 × 500m), web (500m) and the idle async jobs (500m).
	deps := []appsv1.Deployment{
		deployment("api", 2),
		deployment("web", 1),
		deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T11:58:00Z")),
	}
	h := newHarness(t, deps, []corev1.Node{node("n1", "2", "8Gi")})
	// 6 in flight while half of 20 req/s are refused: api needs 5 replicas.
	h.burst("api", 10, 20, 6)
	h.q.set("inflight", model.Vector{fnSample("api.openfaas-fn", 6), fnSample("web.openfaas-fn", 2)})
	h.reconcile()
	require.Equal(t, []string{"scale jobs 1->0", "scale api 2->3"}, h.cl.scaleCalls())
	require.Equal(t, []string{EventEvicted}, h.rec.reasons("jobs"))
	require.Equal(t, "api", h.rec.events[0].related, "the eviction event names the claim it served")
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Evictions.WithLabelValues("async", "sync")))
	// Two of api's three pods still do not fit: a shortfall is reported.
	require.Len(t, h.sink.last, 1)
	require.Equal(t, policy.ShortfallCapacity, h.sink.last[0].Reason)
	require.Equal(t, int64(2), h.sink.last[0].Missing.Pods)
	require.Contains(t, h.rec.reasons("api"), EventShortfall)
}

func TestAFailedEvictionCancelsTheScaleUpItMadeRoomFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"the eviction fails", errors.New("connection reset")},
		{"the evicted function changed since the plan", ErrChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps := []appsv1.Deployment{
				deployment("api", 2),
				deployment("web", 1),
				deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T11:58:00Z")),
			}
			h := newHarness(t, deps, []corev1.Node{node("n1", "2", "8Gi")})
			h.cl.scaleErr = map[string]error{"jobs.openfaas-fn": tc.err}
			h.burst("api", 10, 20, 6)
			res := h.reconcile()
			require.Equal(t, []string{"scale jobs 1->0"}, h.cl.scaleCalls(),
				"api's scale-up needed the room jobs would free: it is not applied, its pods would stay Pending")
			require.Empty(t, res.Applied)
			require.Contains(t, h.rec.reasons("api"), EventScaleUpCancelled)
		})
	}
}

func TestAClaimServedByAnEvictionIsNotServedAgainWhileThePodsTerminate(t *testing.T) {
	deps := []appsv1.Deployment{
		deployment("api", 2),
		deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T11:57:00Z")),
		deployment("jobs2", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T11:59:00Z")),
	}
	h := newHarness(t, deps, []corev1.Node{node("n1", "2", "8Gi")})
	// 4 in flight while half of 20 req/s are refused: api needs 3 replicas.
	h.burst("api", 10, 20, 4)
	h.reconcile()
	require.Equal(t, []string{"scale jobs 1->0", "scale api 2->3"}, h.cl.scaleCalls())

	// Next cycle: jobs' pod is still there, api's third pod not yet
	// created. The room jobs is giving back is api's; jobs2 stays.
	h.now = h.now.Add(interval)
	res := h.reconcile()
	require.Equal(t, []string{"scale jobs 1->0", "scale api 2->3"}, h.cl.scaleCalls())
	require.Empty(t, res.Shortfalls)
}

const interval = 15 * time.Second

func TestReconcileDryRunNeverPatches(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2)}, bigNode(), func(o *Options) { o.DryRun = true })
	h.burst("api", 10, 20, 8)
	res := h.reconcile()
	require.Empty(t, h.cl.allCalls(), "a dry run neither scales nor annotates")
	require.Len(t, res.Applied, 1)
	require.Equal(t, int32(6), res.Applied[0].To)
	require.Empty(t, h.rec.events)
	require.Contains(t, h.c.Status().Functions[0].LastAction, "would scale-up-rejections 2->6")
}

func TestReconcileFailsStaticWithoutPrometheus(t *testing.T) {
	deps := []appsv1.Deployment{
		deployment("api", 5), // idle: would scale down with metrics
		deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T10:00:00Z")),
		deployment("report", 0, annotated("topic", "cron-function"), annotated("schedule", "1 12 * * *")),
	}
	for _, tc := range []struct {
		name   string
		break_ func(*harness)
	}{
		{"prometheus unreachable", func(h *harness) {
			for _, nq := range queries(h.p) {
				h.q.fail(nq.name, errors.New("connection refused"))
			}
		}},
		{"one query fails", func(h *harness) { h.q.fail("pending", errors.New("bad gateway")) }},
		{"stale gateway data", func(h *harness) {
			h.frozen = true
			h.q.set("functions", model.Vector{fnSample("api.openfaas-fn", float64(t0.Add(-10*time.Minute).Unix()))})
		}},
		{"gateway not scraped", func(h *harness) { h.frozen = true; h.q.set("functions", nil) }},
		{"invalid result", func(h *harness) {
			h.q.set("inflight", model.Vector{&model.Sample{Metric: model.Metric{"job": "gateway"}, Value: 1}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, deps, bigNode())
			tc.break_(h)
			res := h.reconcile()
			// Only the prewarm, which needs just the clock, goes ahead.
			require.Equal(t, []string{"scale report 0->1"}, h.cl.scaleCalls())
			require.False(t, res.Plan.MetricsAvailable)
			require.Equal(t, 0.0, testutil.ToFloat64(h.m.MetricsAvailable))
			require.NotEmpty(t, h.sink.last)
			require.Equal(t, policy.ShortfallMetricsUnavailable, h.sink.last[0].Reason)
		})
	}
}

func TestQueriesPerCycleDoNotGrowWithFunctions(t *testing.T) {
	counts := map[int]int{}
	for _, n := range []int{10, 500} {
		var deps []appsv1.Deployment
		for i := 0; i < n; i++ {
			deps = append(deps, deployment(fmt.Sprintf("fn%d", i), 1))
		}
		h := newHarness(t, deps, bigNode())
		h.reconcile()
		counts[n] = h.q.callCount()
	}
	require.Equal(t, counts[10], counts[500])
	require.Equal(t, 8, counts[10])
}

// TestAUsageStepIsRememberedSoThatBaselineMemoryDoesNotRunAway: the
// engine records a usage-driven scale-up in Action.UsageStep and relies on
// the controller to give the applied one back (Function.MemoryStep): after
// a memory step whose new pods report the same per-pod usage, memory is a
// baseline and drives no further step (issue 10 item 2b, controller side).
func TestAUsageStepIsRememberedSoThatBaselineMemoryDoesNotRunAway(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2)}, bigNode())
	// Loaded (one request a second, one in flight), and every pod's working
	// set at 90% of its 512Mi limit, whatever the number of pods.
	h.q.set("invocations", model.Vector{fnSample("api.openfaas-fn", 1)})
	h.q.set("inflight", model.Vector{fnSample("api.openfaas-fn", 1)})
	memory := func() {
		var v model.Vector
		for _, p := range h.cl.st.Pods {
			v = append(v, podSample(p.Namespace, p.Name, 0.9*512*(1<<20)))
		}
		h.q.set("memory", v)
	}
	memory()
	res := h.reconcile()
	require.Len(t, res.Applied, 1)
	require.Equal(t, policy.ReasonScaleUpMemory, res.Applied[0].Reason)
	to := res.Applied[0].To

	// The new pods come up Ready and report the same per-pod usage.
	h.cl.mu.Lock()
	h.cl.st.Pods = pods(h.cl.st.Deployments[0], "n1")
	h.cl.st.Deployments[0].Status.ReadyReplicas = to
	h.cl.mu.Unlock()
	memory()
	for range 4 {
		h.now = h.now.Add(15 * time.Second)
		res = h.reconcile()
		require.NotNil(t, res.Snapshot.Functions[0].MemoryStep, "the applied step is given back to the engine")
		require.Empty(t, res.Applied, "usage that did not fall after a step is a baseline: no further step")
	}
	require.Len(t, h.cl.scaleCalls(), 1)
}

func TestScaleErrors(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments/scale"}, "api", errors.New("no"))
	cases := []struct {
		name       string
		err        error
		wantReason string
		wantHeld   bool
	}{
		{"changed since the plan", ErrChanged, "changed", false},
		{"forbidden", forbidden, "forbidden", true},
		{"other", errors.New("connection reset"), "other", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []appsv1.Deployment{deployment("api", 2)}, bigNode())
			h.cl.scaleErr = map[string]error{"api.openfaas-fn": tc.err}
			h.burst("api", 10, 20, 8)
			res := h.reconcile()
			require.Empty(t, res.Applied)
			require.Equal(t, 1.0, testutil.ToFloat64(h.m.PatchErrors.WithLabelValues(tc.wantReason)))
			h.now = h.now.Add(15 * time.Second)
			h.reconcile()
			calls := 2
			if tc.wantHeld {
				calls = 1
				require.Contains(t, h.rec.reasons("api"), EventScaleFailed)
			}
			require.Len(t, h.cl.scaleCalls(), calls)
		})
	}
}

func TestPrewarmReadinessIsVerified(t *testing.T) {
	deps := []appsv1.Deployment{deployment("report", 0, annotated("topic", "cron-function"), annotated("schedule", "1 12 * * *"))}
	h := newHarness(t, deps, bigNode())
	res := h.reconcile()
	require.Equal(t, []string{"scale report 0->1"}, h.cl.scaleCalls())
	require.Len(t, res.Plan.Checks, 1)
	require.Empty(t, h.sink.last)

	// The pod never becomes Ready; the fire time passes.
	h.now = t0.Add(61 * time.Second)
	h.reconcile()
	require.Len(t, h.sink.last, 1)
	require.Equal(t, policy.ShortfallPrewarmMissed, h.sink.last[0].Reason)
	require.Equal(t, t0.Add(time.Minute), h.sink.last[0].Deadline)
	require.Contains(t, h.rec.reasons("report"), EventPrewarmMissed)
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.ReadinessMissed.WithLabelValues("prewarm")))

	// It stays a shortfall until the function is Ready, then clears.
	h.now = h.now.Add(15 * time.Second)
	h.reconcile()
	require.Len(t, h.sink.last, 1)
	h.cl.setReady("report", 1)
	h.now = h.now.Add(15 * time.Second)
	h.reconcile()
	require.Empty(t, h.sink.last)
}

func TestPrewarmReadyInTimeIsNotAShortfall(t *testing.T) {
	deps := []appsv1.Deployment{deployment("report", 0, annotated("topic", "cron-function"), annotated("schedule", "1 12 * * *"))}
	h := newHarness(t, deps, bigNode())
	h.reconcile()
	h.cl.setReady("report", 1)
	h.now = t0.Add(61 * time.Second)
	h.reconcile()
	require.Empty(t, h.sink.last)
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.ReadinessMissed.WithLabelValues("prewarm")))
}

func TestInvalidMetadataHoldsTheFunction(t *testing.T) {
	deps := []appsv1.Deployment{deployment("api", 0, annotated("tierscaler.io/tier", "batch"))}
	h := newHarness(t, deps, bigNode())
	h.reconcile()
	h.now = h.now.Add(15 * time.Second)
	h.reconcile()
	require.Empty(t, h.cl.scaleCalls(), "a function with bad metadata is held, not scaled")
	require.Equal(t, []string{EventInvalidMetadata}, h.rec.reasons("api"), "one event, not one per cycle")
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.InvalidFunctions))
}

func TestActivate(t *testing.T) {
	deps := []appsv1.Deployment{deployment("jobs", 0, annotated("tierscaler.io/tier", "async"))}
	h := newHarness(t, deps, bigNode())
	ctx := context.Background()
	err := h.c.Activate(ctx, "openfaas-fn", "nope")
	require.ErrorIs(t, err, ErrUnknownFunction)
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.ActivationRequests.WithLabelValues("unknown-function")))

	require.NoError(t, h.c.Activate(ctx, "openfaas-fn", "jobs"))
	// Not the leader: the request is recorded on the Deployment for the leader.
	require.Contains(t, h.cl.allCalls()[0], "annotate jobs map[tierscaler.io/activation-requested:2026-11-24T12:00:00Z]")
	select {
	case <-h.c.fast:
	default:
		t.Fatal("Activate did not trigger a fast-path cycle")
	}
	h.reconcile()
	require.Equal(t, []string{"scale jobs 0->1"}, h.cl.scaleCalls())
}

// An activation request is evidence of its own: it activates the function
// even while Prometheus does not answer (a loaded Prometheus timing out),
// on the fast path and on the full cycle alike. Failing static holds back
// scale-downs, zeroing and evictions, never an activation.
func TestActivationWhilePrometheusTimesOut(t *testing.T) {
	for _, fast := range []bool{true, false} {
		t.Run(map[bool]string{true: "fast path", false: "full cycle"}[fast], func(t *testing.T) {
			deps := []appsv1.Deployment{deployment("jobs", 0, annotated("tierscaler.io/tier", "async"))}
			h := newHarness(t, deps, bigNode())
			for _, nq := range queries(h.c.o.Policy) {
				h.q.fail(nq.name, context.DeadlineExceeded)
			}
			require.NoError(t, h.c.Activate(context.Background(), "openfaas-fn", "jobs"))
			h.prepare()
			var res *Result
			var err error
			if fast {
				res, err = h.c.ReconcileFast(context.Background())
			} else {
				res, err = h.c.Reconcile(context.Background())
			}
			require.NoError(t, err)
			require.False(t, res.Plan.MetricsAvailable)
			require.Equal(t, []string{"scale jobs 0->1"}, h.cl.scaleCalls())
		})
	}
}

// The fast path (issue 13): a cycle run at once on an activation request
// only adds replicas; scale-downs, zeroing and evictions wait for the full
// cycle, and it reports no shortfall.
func TestReconcileFastOnlyAdds(t *testing.T) {
	deps := []appsv1.Deployment{
		deployment("api", 2),
		deployment("idle", 5, annotated("tierscaler.io/tier", "async")),
		deployment("jobs", 0, annotated("tierscaler.io/tier", "async")),
	}
	h := newHarness(t, deps, bigNode())
	h.burst("api", 10, 20, 8)
	h.q.set("inflight", model.Vector{fnSample("api.openfaas-fn", 8)})
	h.q.set("pending", model.Vector{fnSample("jobs.openfaas-fn", 25)})
	h.prepare()
	res, err := h.c.ReconcileFast(context.Background())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"scale api 2->6", "scale jobs 0->3"}, h.cl.scaleCalls(), "idle is not zeroed on the fast path")
	require.True(t, res.Snapshot.Fast)
	require.Nil(t, h.sink.last, "the fast path reports no shortfalls")
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.FastCycles.WithLabelValues("success")))
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.Reconciles.WithLabelValues("success")))
	// The full cycle zeroes idle.
	h.reconcile()
	require.Contains(t, h.cl.scaleCalls(), "scale idle 5->0")
}

func TestActivateAllReadsTheClusterOnce(t *testing.T) {
	deps := []appsv1.Deployment{deployment("a", 0, annotated("tierscaler.io/tier", "async")), deployment("b", 0, annotated("tierscaler.io/tier", "async"))}
	h := newHarness(t, deps, bigNode())
	errs := h.c.ActivateAll(context.Background(), []FunctionRef{{"openfaas-fn", "a"}, {"openfaas-fn", "ghost"}, {"openfaas-fn", "b"}})
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], ErrUnknownFunction)
	require.NoError(t, errs[2])
	require.Equal(t, 1, h.cl.reads)
	require.Len(t, h.cl.allCalls(), 2, "one annotation per known function (not the leader)")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs = h.c.ActivateAll(ctx, []FunctionRef{{"openfaas-fn", "a"}})
	require.ErrorIs(t, errs[0], context.Canceled)
	require.Equal(t, 1, h.cl.reads, "nothing is read once the context has ended")
	require.Len(t, h.cl.allCalls(), 2)
}

func TestObserveDeploymentLearnsStartupTime(t *testing.T) {
	deps := []appsv1.Deployment{deployment("jobs", 0, annotated("tierscaler.io/tier", "async"))}
	h := newHarness(t, deps, bigNode())
	h.q.set("pending", model.Vector{fnSample("jobs.openfaas-fn", 3)})
	h.reconcile()
	require.Equal(t, []string{"scale jobs 0->1"}, h.cl.scaleCalls())
	old := deployment("jobs", 1)
	old.Status.ReadyReplicas = 0
	cur := deployment("jobs", 1)
	h.c.ObserveDeployment(&old, &cur, t0.Add(40*time.Second))
	require.Equal(t, 40*time.Second, h.c.learnedStartup("jobs.openfaas-fn"))
}

func TestReconcileSurvivesAPanickingCycle(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 1)}, bigNode())
	h.c.o.Cluster = panicCluster{}
	require.NotPanics(t, func() { h.c.safeReconcile(context.Background(), false) })
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Reconciles.WithLabelValues("error")))
}

type panicCluster struct{ Cluster }

func (panicCluster) State(context.Context) (*ClusterState, error) { panic("boom") }

func TestControllerForgetsDeletedFunctions(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("api", 1), deployment("gone", 1)}, bigNode())
	h.q.set("invocations", model.Vector{fnSample("gone.openfaas-fn", 1)})
	h.reconcile()
	require.Contains(t, h.c.lastRun, "gone.openfaas-fn")
	require.Len(t, h.c.series, 2)

	h.cl.mu.Lock()
	h.cl.st.Deployments = h.cl.st.Deployments[:1]
	h.cl.mu.Unlock()
	h.q.set("invocations", nil)
	for i := 0; i < 16; i++ {
		h.now = h.now.Add(15 * time.Second)
		h.reconcile()
	}
	require.NotContains(t, h.c.lastRun, "gone.openfaas-fn")
	require.NotContains(t, h.c.metas, "gone.openfaas-fn")
	require.Len(t, h.c.series, 1, "the gone function's gauges are deleted")
	require.Equal(t, 1, testutil.CollectAndCount(h.m.DesiredReplicas), "one desired-replicas series left")
}

func TestTheRevertSeriesOfADeletedFunctionIsDeleted(t *testing.T) {
	deps := []appsv1.Deployment{deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T10:00:00Z"))}
	h := newHarness(t, deps, bigNode())
	ceProvider(h, "jobs", 40)
	require.Equal(t, 1, testutil.CollectAndCount(h.m.ProviderReverts))

	h.cl.mu.Lock()
	h.cl.st.Deployments, h.cl.st.Pods = nil, nil
	h.cl.mu.Unlock()
	for range 16 {
		h.now = h.now.Add(15 * time.Second)
		h.reconcile()
	}
	require.Equal(t, 0, testutil.CollectAndCount(h.m.ProviderReverts), "tierscaler_provider_reverts_total{function} of a deleted function is deleted")
}

func TestANotFoundHoldDoesNotCarryOverToARecreatedDeployment(t *testing.T) {
	d := deployment("api", 2)
	d.UID = "uid-1"
	h := newHarness(t, []appsv1.Deployment{d}, bigNode())
	h.cl.scaleErr = map[string]error{"api.openfaas-fn": apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "api")}
	h.burst("api", 10, 20, 8)
	h.reconcile()
	require.Len(t, h.cl.scaleCalls(), 1)
	h.now = h.now.Add(15 * time.Second)
	h.reconcile()
	require.Len(t, h.cl.scaleCalls(), 1, "the vanished Deployment is held")

	// The function is deleted and deployed again under the same name.
	h.cl.mu.Lock()
	h.cl.scaleErr = nil
	h.cl.st.Deployments[0].UID = "uid-2"
	h.cl.mu.Unlock()
	h.now = h.now.Add(15 * time.Second)
	h.reconcile()
	require.Equal(t, []string{"scale api 2->6", "scale api 2->6"}, h.cl.scaleCalls(), "the new Deployment is not held")
}

// The engine gets each function's run duration: the longest mean duration
// of its invocations seen in the last one to two hours (issue 14).
func TestRunDurationsAreLearned(t *testing.T) {
	h := newHarness(t, []appsv1.Deployment{deployment("jobs", 1, annotated("tierscaler.io/tier", "async"))}, bigNode())
	dur := func(seconds float64) {
		if seconds == 0 {
			h.q.set("duration", model.Vector{})
			return
		}
		h.q.set("duration", model.Vector{fnSample("jobs.openfaas-fn", seconds)})
	}
	run := func() time.Duration {
		res := h.reconcile()
		return res.Snapshot.Functions[0].RunDuration
	}
	dur(30)
	require.Equal(t, 30*time.Second, run())
	h.now = h.now.Add(interval)
	dur(10)
	require.Equal(t, 30*time.Second, run(), "the longest is kept")
	h.now = h.now.Add(interval)
	dur(0)
	require.Equal(t, 30*time.Second, run(), "nothing between runs: still known")
	h.now = h.now.Add(RunMemory)
	dur(10)
	require.Equal(t, 30*time.Second, run(), "the previous window is remembered")
	h.now = h.now.Add(RunMemory)
	require.Equal(t, 10*time.Second, run(), "after two windows the old longest is forgotten")
}

// The status shows the room held for the next cron fires (issue 14), in
// JSON and in `tierscaler status`'s table.
func TestStatusShowsReservations(t *testing.T) {
	deps := []appsv1.Deployment{deployment("report", 0, annotated("topic", "cron-function"), annotated("schedule", "5 12 * * *"))}
	h := newHarness(t, deps, bigNode())
	h.reconcile()
	st := h.c.Status()
	require.Len(t, st.Reservations, 1, "%+v", st.Reservations)
	r := st.Reservations[0]
	require.Equal(t, "report.openfaas-fn", r.Key())
	require.Equal(t, t0.Add(5*time.Minute), r.Fire)
	require.EqualValues(t, 1, r.Pods)
	var b strings.Builder
	require.NoError(t, st.WriteTable(&b))
	require.Contains(t, b.String(), "RESERVATION")
	require.Regexp(t, `report\.openfaas-fn\s+in 5m0s\s+in 3m45s\s+1\s+n1×1`, b.String())
}

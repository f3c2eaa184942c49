// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

// Integration tests of the controller against a real kube-apiserver,
// scheduler, controller-manager and kwok nodes, a real Prometheus scraping
// the traffic emulator, and the controller wired exactly as `tierscaler run`
// wires it (scaler.NewProcess).
package scaler_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
	"github.com/tierscaler/tierscaler/workload"
)

func TestMain(m *testing.M) {
	// Each controller logs through its own logger; controller-runtime's
	// global one (client-go's reflectors) is silenced.
	ctrllog.SetLogger(logr.Discard())
	// No default nodes: every test brings its own pool.
	os.Exit(testenv.Run(m, testenv.Options{Nodes: -1}))
}

const ns = testenv.FunctionNamespace

// interval is the test policy's reconcile interval.
const interval = 2 * time.Second

// testPolicy is a policy scaled down to test time: a 2s interval, and irate
// over 5s windows of the 1s scrapes of the test Prometheus, so that a burst
// is seen at its full rate at once.
const testPolicy = `apiVersion: tierscaler.io/v1alpha1
kind: Policy
prometheus: {url: "%s", timeout: 1500ms, maxStaleness: 30s}
alertmanager: {urls: []}
interval: 2s
tiers:
  sync: {scaleDownWindow: 5s}
  cron: {lookahead: 2m, startupTime: 3s, margin: 5s, gracePeriod: 20s, zeroWhenIdle: %t}
  async: {idleAfter: %s, activationTimeout: 30s, pendingPerReplica: 10}
preemption: {minResidency: 5s}
queries:
  rejections: 'sum by (function_name) (irate(gateway_function_invocation_total{code="429"}[5s]))'
  invocations: 'sum by (function_name) (irate(gateway_function_invocation_total[5s]))'
  duration: 'sum by (function_name) (rate(gateway_functions_seconds_sum{code="200"}[5s])) / (sum by (function_name) (rate(gateway_functions_seconds_count{code="200"}[5s])) > 0)'
  inflight: 'max_over_time((sum by (function_name) (gateway_function_invocation_started) - (sum by (function_name) (gateway_function_invocation_total) or 0 * sum by (function_name) (gateway_function_invocation_started)))[5s:1s]) or (0 * max by (function_name) (gateway_service_count))'
  cpu: 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[5s]))'
`

type policyOpts struct {
	zeroCron  bool
	idleAfter string
}

func (o policyOpts) render(promURL string) string {
	if o.idleAfter == "" {
		o.idleAfter = "15s"
	}
	return fmt.Sprintf(testPolicy, promURL, o.zeroCron, o.idleAfter)
}

// fixture is one test's functions, nodes, emulator and controller.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	env  *testenv.Env
	em   *emulator.Emulator
	proc *scaler.Process
	pol  *policy.Policy
	// start is when the test began: earlier Events are other tests'.
	start time.Time
	// pool names the test's nodes and its state ConfigMap.
	pool string
}

type setupOpts struct {
	scenario string
	policy   policyOpts
	nodes    int
	cpu, mem string
	// annotate is applied to the created Deployments before the controller
	// starts (for example a persisted last run).
	annotate map[string]map[string]string
	// noController leaves starting the controller to the test.
	noController bool
}

func setup(t *testing.T, o setupOpts) *fixture {
	t.Helper()
	env := testenv.Current()
	require.NotNil(t, env, "no test environment")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, env: env, start: time.Now()}

	pool := "p-" + strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(pool) > 40 {
		pool = pool[:40]
	}
	f.pool = pool
	require.NoError(t, env.AddNodes(ctx, pool, o.nodes, o.cpu, o.mem))
	t.Cleanup(func() { _ = env.DeleteNodes(context.Background(), pool) })

	sc, err := workload.Parse([]byte(o.scenario))
	require.NoError(t, err)
	_, err = emulator.CreateFunctions(ctx, env.Clientset, sc)
	require.NoError(t, err)
	t.Cleanup(func() { f.deleteFunctions(sc) })
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "state-" + pool}})
	})
	for name, ann := range o.annotate {
		patch := fmt.Sprintf(`{"metadata":{"annotations":%s}}`, jsonMap(ann))
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		require.NoError(t, env.Client.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(patch))))
	}

	src, err := emulator.NewKubeSource(ctx, env.Clientset, emulator.Namespaces(sc))
	require.NoError(t, err)
	t.Cleanup(src.Stop)
	f.em, err = emulator.New(emulator.Options{Scenario: sc, Source: src, Tick: 500 * time.Millisecond, Seed: 1})
	require.NoError(t, err)
	require.NoError(t, f.em.Start(ctx))
	t.Cleanup(f.em.Stop)
	require.NoError(t, env.AddScrapeTarget("emulator", f.em.Addr()))
	t.Cleanup(func() {
		_ = env.RemoveScrapeTarget("emulator", f.em.Addr())
		// The next test must not see this emulator's series in its rate
		// windows: wait until Prometheus has marked them stale.
		q := fmt.Sprintf(`count(gateway_service_count{instance=%q})`, f.em.Addr())
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && f.query(q) > 0; {
			time.Sleep(200 * time.Millisecond)
		}
	})

	f.pol, err = policy.Parse([]byte(o.policy.render(env.PrometheusURL)))
	require.NoError(t, err)
	if !o.noController {
		f.startController()
	}
	return f
}

// startController runs the controller in-process, as `tierscaler run` would.
func (f *fixture) startController() {
	f.t.Helper()
	proc, err := scaler.NewProcess(scaler.ProcessOptions{
		Policy: f.pol, RESTConfig: f.env.RESTConfig, MetricsAddr: "127.0.0.1:0", AllPods: true,
		// Each test has a state of its own (and migrates its annotations).
		StateNamespace: "default", StateName: "state-" + f.pool,
		Log: logr.FromSlogHandler(slog.NewTextHandler(testWriter{f.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(f.t, err)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := proc.Start(ctx); err != nil {
			f.t.Logf("controller stopped: %v", err)
		}
	}()
	f.t.Cleanup(func() { cancel(); <-done })
	f.proc = proc
	f.eventually(30*time.Second, "the controller has fresh metrics", func() bool {
		return proc.Controller.Status().MetricsAvailable
	})
}

func (f *fixture) deleteFunctions(sc *workload.Scenario) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, fn := range sc.Functions {
		_ = f.env.Client.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: fn.Name, Namespace: ns}},
			client.PropagationPolicy(metav1.DeletePropagationForeground))
	}
	for _, fn := range sc.Functions {
		for ctx.Err() == nil {
			var d appsv1.Deployment
			if err := f.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: fn.Name}, &d); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func jsonMap(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%q:%q", k, v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// eventually polls cond every 100ms until it holds or timeout passes.
func (f *fixture) eventually(timeout time.Duration, what string, cond func() bool) time.Time {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("timed out after %s waiting until %s", timeout, what)
	return time.Time{}
}

func (f *fixture) deployment(name string) appsv1.Deployment {
	f.t.Helper()
	var d appsv1.Deployment
	require.NoError(f.t, f.env.Client.Get(f.ctx, client.ObjectKey{Namespace: ns, Name: name}, &d))
	return d
}

func (f *fixture) replicas(name string) int32 {
	d := f.deployment(name)
	return *d.Spec.Replicas
}

// query runs an instant PromQL query and returns the value of its only
// sample, or -1 when there is none.
func (f *fixture) query(q string) float64 {
	v, _, _, err := f.env.PrometheusAPI().Query(f.ctx, q, time.Now())
	if err != nil {
		return -1
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) == 0 {
		return -1
	}
	return float64(vec[0].Value)
}

func (f *fixture) state(fn string) emulator.FunctionState {
	f.t.Helper()
	st, err := f.em.FunctionState(fn)
	require.NoError(f.t, err)
	return st
}

// evictions returns the functions tierscaler evicted, in order, with the
// function whose claim each served.
func (f *fixture) evictions() [][2]string {
	var list eventsv1.EventList
	require.NoError(f.t, f.env.Client.List(f.ctx, &list, client.InNamespace(ns)))
	var evs []eventsv1.Event
	for _, e := range list.Items {
		if e.Reason == scaler.EventEvicted && !e.EventTime.Time.Before(f.start) {
			evs = append(evs, e)
		}
	}
	slices.SortFunc(evs, func(a, b eventsv1.Event) int { return a.EventTime.Time.Compare(b.EventTime.Time) })
	var out [][2]string
	for _, e := range evs {
		related := ""
		if e.Related != nil {
			related = e.Related.Name
		}
		out = append(out, [2]string{e.Regarding.Name, related})
	}
	return out
}

func TestSyncBurstIsScaledUpAndThe429sStop(t *testing.T) {
	f := setup(t, setupOpts{nodes: 2, cpu: "4", mem: "8Gi", scenario: `
apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: it-sync
functions:
- name: burst-api
  tier: sync
  minReplicas: 1
  maxReplicas: 10
  maxInflight: 4
  requests: {cpu: 250m, memory: 64Mi}
  limits: {cpu: "1", memory: 256Mi}
  sync: {rate: 5, requestDuration: 200ms}
`})
	require.EqualValues(t, 1, f.replicas("burst-api"))
	// 60 req/s of 200ms are 12 concurrent requests; one replica takes 4.
	require.NoError(t, f.em.SetRate("burst-api", 60))
	rejections := `sum by (function_name) (irate(gateway_function_invocation_total{code="429",function_name="burst-api.openfaas-fn"}[5s]))`
	seen := f.eventually(30*time.Second, "Prometheus sees the 429s", func() bool { return f.query(rejections) > f.pol.RejectionRate() })
	scaled := f.eventually(30*time.Second, "burst-api is scaled up", func() bool { return f.replicas("burst-api") > 1 })
	reaction := scaled.Sub(seen)
	t.Logf("reaction: Prometheus saw the 429s, the scale patch was visible %s later (interval %s); replicas now %d",
		reaction.Round(time.Millisecond), interval, f.replicas("burst-api"))
	require.LessOrEqual(t, reaction, 2*interval, "scaled within two reconcile intervals of Prometheus seeing the 429s")
	// Not +1: 60 req/s × 0.2s = 12 concurrent requests need
	// ceil(12 / (4 × 0.7)) = 5 replicas, in one step.
	require.EqualValues(t, 5, f.replicas("burst-api"), "scaled to what the demand needs, not +1")

	f.eventually(60*time.Second, "the 429s stop", func() bool {
		st := f.state("burst-api")
		return st.Ready >= 3 && st.RejectionRate == 0 && f.query(rejections) == 0
	})
	require.GreaterOrEqual(t, f.replicas("burst-api"), int32(4), "12 concurrent requests need at least 3 full replicas of 4")
	require.Contains(t, f.eventReasons("burst-api"), scaler.EventScaledUp)
}

func (f *fixture) eventReasons(name string) []string {
	var list eventsv1.EventList
	require.NoError(f.t, f.env.Client.List(f.ctx, &list, client.InNamespace(ns)))
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && !e.EventTime.Time.Before(f.start) {
			out = append(out, e.Reason)
		}
	}
	return out
}

func TestFullClusterBurstEvictsOldestIdleCronThenAsyncNeverSync(t *testing.T) {
	ago := func(d time.Duration) map[string]string {
		return map[string]string{policy.AnnotationLastRun: time.Now().Add(-d).UTC().Format(time.RFC3339)}
	}
	// One 3-CPU node holds six 500m pods: it is full.
	f := setup(t, setupOpts{nodes: 1, cpu: "3", mem: "8Gi",
		policy: policyOpts{zeroCron: false, idleAfter: "10m"},
		annotate: map[string]map[string]string{
			"cron-old": ago(3 * time.Hour), "cron-new": ago(time.Hour),
			"async-a": ago(8 * time.Minute), "async-b": ago(2 * time.Minute),
		},
		noController: true,
		scenario: `
apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: it-evict
functions:
- {name: api, tier: sync, maxReplicas: 8, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 5, requestDuration: 200ms}}
- {name: web, tier: sync, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 5, requestDuration: 200ms}}
- {name: cron-old, schedule: "0 3 * * *", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 10s}}
- {name: cron-new, schedule: "0 4 * * *", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 10s}}
- {name: async-a, tier: async, minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, async: {jobDuration: 1s}}
- {name: async-b, tier: async, minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, async: {jobDuration: 1s}}
`})
	f.eventually(60*time.Second, "every function has its pod Running", func() bool {
		for _, n := range []string{"api", "web", "cron-old", "cron-new", "async-a", "async-b"} {
			if f.state(n).Ready != 1 {
				return false
			}
		}
		return true
	})
	f.startController()
	time.Sleep(3 * interval) // the full cluster is stable: nothing moves
	require.Empty(t, f.evictions())

	// 50 req/s of 200ms need ceil(10 / 2.8) = 4 replicas of api: 3 more pods.
	require.NoError(t, f.em.SetRate("api", 50))
	f.eventually(60*time.Second, "api has 4 Ready replicas", func() bool { return f.state("api").Ready == 4 })
	require.Equal(t, [][2]string{{"cron-old", "api"}, {"cron-new", "api"}, {"async-a", "api"}}, f.evictions(),
		"evicted: the idle cron functions, oldest last run first, then the oldest idle async function, each for api")
	for name, want := range map[string]int32{"cron-old": 0, "cron-new": 0, "async-a": 0, "async-b": 1, "web": 1, "api": 4} {
		require.Equal(t, want, f.replicas(name), name)
	}
	require.Equal(t, 3.0, testutil.ToFloat64(f.proc.Metrics.Evictions.WithLabelValues("cron", "sync"))+
		testutil.ToFloat64(f.proc.Metrics.Evictions.WithLabelValues("async", "sync")))
}

func TestCronIsPrewarmedBeforeItFiresAndAShortfallIsRecordedBeforeTheFireTime(t *testing.T) {
	// Start well before a minute boundary, so that the controller runs
	// before the first fire.
	if s := time.Now().Second(); s > 35 {
		time.Sleep(time.Duration(62-s) * time.Second)
	}
	f := setup(t, setupOpts{nodes: 1, cpu: "2", mem: "4Gi", policy: policyOpts{zeroCron: true}, scenario: `
apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: it-cron
functions:
- {name: tick, schedule: "* * * * *", minReplicas: 0, initialReplicas: 0, requests: {cpu: 250m, memory: 64Mi}, cron: {runDuration: 5s}}
- {name: blocked, schedule: "* * * * *", minReplicas: 0, initialReplicas: 0, requests: {cpu: "3", memory: 64Mi}, cron: {runDuration: 5s}}
`})
	fire := time.Now().Truncate(time.Minute).Add(time.Minute)
	require.EqualValues(t, 0, f.replicas("tick"))

	// The shortfall of the function that cannot fit is known before it fires.
	shortfallSeen := f.eventually(time.Until(fire)+5*time.Second, "blocked's shortfall is reported", func() bool {
		for _, s := range f.proc.Controller.Status().Shortfalls {
			if s.Function == "blocked" && s.Reason == policy.ShortfallCapacity && s.Deadline.Equal(fire) {
				return true
			}
		}
		return false
	})
	require.True(t, shortfallSeen.Before(fire), "shortfall reported at %s, fire time %s", shortfallSeen, fire)

	ready := f.eventually(time.Until(fire)+5*time.Second, "tick is Ready", func() bool { return f.state("tick").Ready >= 1 })
	require.True(t, ready.Before(fire), "tick Ready at %s, after its fire time %s", ready, fire)
	t.Logf("tick was Ready %s before its fire time; blocked's shortfall was reported %s before", fire.Sub(ready).Round(time.Millisecond), fire.Sub(shortfallSeen).Round(time.Millisecond))

	f.eventually(15*time.Second, "tick ran", func() bool { return f.state("tick").CronRuns >= 1 })
	st := f.state("tick")
	require.Zero(t, st.CronMissed, "no missed run")
	require.Zero(t, st.CronLate)
	require.GreaterOrEqual(t, f.state("blocked").CronMissed, 1, "the emulator is honest: blocked could not run")
}

func TestAsyncIsActivatedByPendingWorkAndReturnsToZero(t *testing.T) {
	f := setup(t, setupOpts{nodes: 1, cpu: "4", mem: "8Gi", policy: policyOpts{idleAfter: "15s"}, scenario: `
apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: it-async
functions:
- {name: jobs, tier: async, minReplicas: 0, initialReplicas: 0, maxInflight: 2, requests: {cpu: 250m, memory: 64Mi}, async: {jobDuration: 1s}}
`})
	require.EqualValues(t, 0, f.replicas("jobs"))
	queued := time.Now()
	require.NoError(t, f.em.Enqueue("jobs", 25))
	activated := f.eventually(30*time.Second, "jobs is activated", func() bool { return f.replicas("jobs") > 0 })
	t.Logf("activation: %s from enqueueing to the scale patch; replicas %d", activated.Sub(queued).Round(time.Millisecond), f.replicas("jobs"))
	// ceil(25 pending / 10 per replica) = 3.
	require.EqualValues(t, 3, f.replicas("jobs"))

	drained := f.eventually(60*time.Second, "the queue is drained", func() bool {
		st := f.state("jobs")
		return st.Pending == 0 && st.Inflight == 0 && st.AsyncWaits == 25
	})
	zero := f.eventually(60*time.Second, "jobs is back at zero", func() bool { return f.replicas("jobs") == 0 })
	idle := zero.Sub(drained)
	t.Logf("back to zero %s after the queue drained (idleAfter 15s)", idle.Round(time.Millisecond))
	require.GreaterOrEqual(t, idle, 10*time.Second, "not zeroed before it was idle")
	require.Contains(t, f.eventReasons("jobs"), scaler.EventActivated)
	require.Contains(t, f.eventReasons("jobs"), scaler.EventZeroedIdle)
}

func TestPrometheusOutageFailsStaticAndNormalBehaviourResumes(t *testing.T) {
	f := setup(t, setupOpts{nodes: 1, cpu: "4", mem: "8Gi", scenario: `
apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: it-outage
functions:
- {name: steady, tier: sync, initialReplicas: 3, maxReplicas: 8, maxInflight: 4, requests: {cpu: 250m, memory: 64Mi}, sync: {rate: 40, requestDuration: 200ms}}
- {name: worker, tier: async, minReplicas: 0, initialReplicas: 1, maxInflight: 2, requests: {cpu: 250m, memory: 64Mi}, async: {jobDuration: 1s}}
`})
	// With traffic, steady needs its 3 replicas; worker gets a queue.
	require.NoError(t, f.em.Enqueue("worker", 200))
	f.eventually(30*time.Second, "worker is scaled up for its queue", func() bool { return f.replicas("worker") > 1 })
	time.Sleep(3 * interval)
	require.EqualValues(t, 3, f.replicas("steady"))
	workers := f.replicas("worker")

	require.NoError(t, f.env.StopPrometheus())
	prometheusUp := false
	t.Cleanup(func() {
		if !prometheusUp {
			_ = f.env.StartPrometheus()
		}
	})
	// Everything goes idle while Prometheus is gone (the queue drains): with
	// metrics, steady would go down to 1 and worker to 0.
	require.NoError(t, f.em.SetRate("steady", 0))
	f.eventually(20*time.Second, "the controller fails static", func() bool {
		return testutil.ToFloat64(f.proc.Metrics.MetricsAvailable) == 0
	})
	gone := time.Now()
	for time.Since(gone) < 20*time.Second {
		require.EqualValues(t, 3, f.replicas("steady"), "no scale-down without metrics")
		require.Equal(t, workers, f.replicas("worker"), "no scale-down or zeroing without metrics")
		time.Sleep(500 * time.Millisecond)
	}
	require.False(t, f.proc.Controller.Status().MetricsAvailable)
	require.Empty(t, f.evictions())

	require.NoError(t, f.env.StartPrometheus())
	prometheusUp = true
	f.eventually(60*time.Second, "metrics are available again", func() bool {
		return testutil.ToFloat64(f.proc.Metrics.MetricsAvailable) == 1
	})
	f.eventually(60*time.Second, "steady is scaled down and worker zeroed", func() bool {
		return f.replicas("steady") == 1 && f.replicas("worker") == 0
	})
}

// TestOnlyTheLeaderActsAndAFollowerTakesOver runs two tierscaler processes.
func TestOnlyTheLeaderActsAndAFollowerTakesOver(t *testing.T) {
	f := setup(t, setupOpts{nodes: 1, cpu: "4", mem: "8Gi", noController: true, scenario: `
apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: it-leader
functions:
- {name: lonely, tier: sync, minReplicas: 1, initialReplicas: 0, requests: {cpu: 100m, memory: 64Mi}, sync: {rate: 1, requestDuration: 100ms}}
`})
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tierscaler")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tierscaler")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	polFile := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(polFile, []byte(policyOpts{}.render(f.env.PrometheusURL)), 0o600))

	const lease = 4 * time.Second
	type proc struct {
		cmd  *exec.Cmd
		addr string
	}
	start := func(i int) *proc {
		port := freePort(t)
		p := &proc{addr: fmt.Sprintf("http://127.0.0.1:%d", port)}
		p.cmd = exec.Command(bin, "run", "--policy", polFile, "--kubeconfig", f.env.Kubeconfig,
			"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "--leader-election-namespace", "default",
			"--leader-election-id", "tierscaler-it", "--lease-duration", lease.String(), "--log-format", "text",
			"--webhook-addr", "127.0.0.1:0", "--webhook-auth", "none",
			"--state-namespace", "default", "--state-name", "state-"+f.pool)
		logPath := filepath.Join(dir, fmt.Sprintf("tierscaler-%d.log", i))
		logf, err := os.Create(logPath)
		require.NoError(t, err)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("log of process %d:\n%s", i, out)
			}
		})
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		require.NoError(t, p.cmd.Start())
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		return p
	}
	procs := []*proc{start(0), start(1)}
	leaderOf := func() []int {
		var leaders []int
		for i, p := range procs {
			if p != nil && metricValue(p.addr, "tierscaler_leader") == 1 {
				leaders = append(leaders, i)
			}
		}
		return leaders
	}
	f.eventually(60*time.Second, "one process leads", func() bool { return len(leaderOf()) == 1 })
	leader := leaderOf()[0]
	follower := 1 - leader
	f.eventually(30*time.Second, "the leader scales lonely up to its minimum", func() bool { return f.replicas("lonely") == 1 })
	time.Sleep(2 * interval)
	require.Equal(t, []int{leader}, leaderOf(), "exactly one leader")
	require.Positive(t, metricValue(procs[leader].addr, `tierscaler_actions_total{reason="scale-up-min",tier="sync"}`))
	require.LessOrEqual(t, metricValue(procs[follower].addr, "tierscaler_actions_total"), 0.0, "the follower acts on nothing")
	require.Equal(t, 0.0, metricValue(procs[follower].addr, "tierscaler_reconcile_duration_seconds"), "the follower does not even reconcile")

	// Kill the leader without letting it release the lease.
	killed := time.Now()
	require.NoError(t, procs[leader].cmd.Process.Kill())
	_ = procs[leader].cmd.Wait()
	procs[leader] = nil
	took := f.eventually(3*lease, "the follower takes over", func() bool { return metricValue(procs[follower].addr, "tierscaler_leader") == 1 }).Sub(killed)
	t.Logf("takeover %s after the leader was killed (lease duration %s)", took.Round(time.Millisecond), lease)
	require.LessOrEqual(t, took, lease+lease/6+time.Second, "taken over within the lease duration (plus one retry period)")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package scaler_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// Sizes of BenchmarkReconcileLocalCluster. The number of functions is
// $TIERSCALER_BENCH_FUNCTIONS, 10,000 by default (issue 13's target).
const (
	defaultBenchFunctions = 10000
	benchNodes            = 50
	// benchNamespace keeps the benchmark's functions apart from the tests'.
	benchNamespace = "tierscaler-bench"
	// benchLabel marks the benchmark's Deployments, for one DeleteCollection.
	benchLabel = "tierscaler.io/bench"
)

// BenchmarkReconcileLocalCluster measures Reconcile at 10,000 functions on
// the local cluster: a real kube-apiserver (through the informer cache
// tierscaler uses, scaler.CacheOptions) and a real Prometheus. It creates
// 10,000 function Deployments ($TIERSCALER_BENCH_FUNCTIONS) at 0 replicas in their own namespace (70%
// cron functions on a yearly schedule, 30% async functions, all idle) and
// 50 nodes, and serves the OpenFaaS gateway series of every function from a
// static /metrics endpoint that Prometheus scrapes every second. The
// controller runs with the default policy and queries (1m rate windows):
// the steady state of a large, mostly idle installation, where a cycle
// changes nothing.
//
// Besides ns/op (one Reconcile) it reports the median and 99th percentile
// of Reconcile (p50-ms, p99-ms) and its breakdown: k8s-ms (Cluster.State,
// listing the cache), prom-ms (the cycle's requests, 4 batches run
// concurrently, first start to last answer), decide-ms (policy.Decide on the cycle's snapshot,
// timed apart) and other-ms (the rest: building the snapshot, acting,
// reporting), each a median; and queries/cycle (requests). Run it with a fixed
// number of cycles:
//
//	go test -tags integration -run '^$' -bench BenchmarkReconcileLocalCluster -benchtime 30x ./scaler/
//
// The local cluster's kube-controller-manager is paused (SIGSTOP) while
// the benchmark runs and resumed (SIGCONT) once its Deployments are
// deleted. At its default client limit of 20 requests per second it would
// spend some 15 minutes writing a ReplicaSet and a status for each new
// Deployment, competing for the CPU with what is measured; tierscaler
// reads neither (it lists Deployments, Pods, Nodes and ResourceQuotas), and
// at 0 replicas there are no pods to create. The controller-manager runs
// without leader election, so the pause costs it nothing.
func BenchmarkReconcileLocalCluster(b *testing.B) {
	benchFunctions := defaultBenchFunctions
	if v := os.Getenv("TIERSCALER_BENCH_FUNCTIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50000 {
			b.Fatalf("TIERSCALER_BENCH_FUNCTIONS=%q: want a number of functions from 1 to 50000", v)
		}
		benchFunctions = n
	}
	env := testenv.Current()
	if env == nil {
		b.Fatal("no test environment (TestMain starts it)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A client of its own: the admin one is limited to 100 requests per
	// second, which would make creating the Deployments take a minute.
	cfg := rest.CopyConfig(env.RESTConfig)
	cfg.QPS, cfg.Burst = 2000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := env.CreateNamespace(ctx, benchNamespace); err != nil {
		b.Fatal(err)
	}
	resume, err := pauseControllerManager(env)
	if err != nil {
		b.Fatal(err)
	}
	// Cleanups run last-registered first: the Deployments go before the
	// controller-manager resumes.
	b.Cleanup(resume)
	b.Cleanup(func() { cleanupBench(b, env, cs) })

	start := time.Now()
	if err := env.AddNodes(ctx, "bench", benchNodes, "16", "64Gi"); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d nodes Ready in %s", benchNodes, time.Since(start).Round(10*time.Millisecond))

	start = time.Now()
	if err := createBenchDeployments(ctx, cs, benchFunctions, 8); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d Deployments created in %s (8 workers)", benchFunctions, time.Since(start).Round(10*time.Millisecond))

	gateway, err := serveBenchGateway(benchFunctions)
	if err != nil {
		b.Fatal(err)
	}
	defer gateway.Close()
	if err := env.AddScrapeTarget("bench-gateway", gateway.Addr().String()); err != nil {
		b.Fatal(err)
	}
	scraped := time.Now()
	b.Cleanup(func() { _ = env.RemoveScrapeTarget("bench-gateway", gateway.Addr().String()) })

	// With $TIERSCALER_BENCH_RECORDING=1 Prometheus evaluates the chart's
	// recording rules and the policy reads them (docs/policy-file.md,
	// "Recording rules").
	recorded := ""
	if os.Getenv("TIERSCALER_BENCH_RECORDING") == "1" {
		root, err := testenv.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		before := env.RuleFiles()
		rules := append(slices.Clone(before), filepath.Join(root, "deploy", "chart", "tierscaler", "rules", "recording.rules.yaml"))
		if err := env.SetRuleFiles(rules...); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = env.SetRuleFiles(before...) })
		recorded = fmt.Sprintf("queries: {functions: %q, rejections: %q, invocations: %q, duration: %q, inflight: %q}\n",
			policy.RecordedFunctionsQuery, policy.RecordedRejectionsQuery, policy.RecordedInvocationsQuery,
			policy.RecordedDurationQuery, policy.RecordedInflightQuery)
		b.Logf("the policy reads the chart's recording rules")
	}

	start = time.Now()
	informers, err := cache.New(env.RESTConfig, scaler.CacheOptions([]string{benchNamespace}, true))
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Pod{}, &corev1.Node{}, &corev1.ResourceQuota{}} {
		if _, err := informers.GetInformer(ctx, obj); err != nil {
			b.Fatal(err)
		}
	}
	if !informers.WaitForCacheSync(ctx) {
		b.Fatal("the informer cache did not sync")
	}
	b.Logf("informer cache synced in %s", time.Since(start).Round(10*time.Millisecond))

	pol, err := policy.Parse([]byte(fmt.Sprintf(`apiVersion: tierscaler.io/v1alpha1
kind: Policy
namespaces: [%s]
prometheus: {url: %q}
alertmanager: {urls: []}
%s`, benchNamespace, env.PrometheusURL, recorded)))
	if err != nil {
		b.Fatal(err)
	}
	prom, err := scaler.NewPrometheusQuerier(pol.Prometheus.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	cl := &timedCluster{Cluster: &scaler.KubeCluster{Cached: informers, Client: env.Client, Direct: env.Client, Namespaces: pol.Namespaces}}
	q := &timedQuerier{q: prom}
	ctrl, err := scaler.New(scaler.Options{Policy: pol, Cluster: cl, Querier: q,
		Metrics: scaler.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}

	// The first cycles: until Prometheus has the gateway series of every
	// function (the scrape and its 1m rate windows) and the cache every
	// Deployment.
	start = time.Now()
	var warm *scaler.Result
	for {
		warm, err = ctrl.Reconcile(ctx)
		if err == nil && warm.Snapshot.MetricsAvailable && len(warm.Snapshot.Functions) == benchFunctions &&
			knownFunctions(warm.Snapshot) == benchFunctions {
			break
		}
		if time.Since(start) > 2*time.Minute {
			if err != nil {
				b.Fatalf("after 2m of cycles: %v", err)
			}
			b.Fatalf("after 2m of cycles: %d functions, metrics available %t, %d with known metrics",
				len(warm.Snapshot.Functions), warm.Snapshot.MetricsAvailable, knownFunctions(warm.Snapshot))
		}
		time.Sleep(time.Second)
	}
	b.Logf("warm-up cycles done in %s; the cycle plans %d actions", time.Since(start).Round(10*time.Millisecond), len(warm.Plan.Actions))
	// The default queries' 1m windows (rate, and the in-flight subquery) are
	// full, and as costly as in production, a minute after the first scrape.
	if wait := time.Minute + 5*time.Second - time.Since(scraped); wait > 0 {
		b.Logf("waiting %s until the 1m query windows are full", wait.Round(time.Second))
		time.Sleep(wait)
	}
	q.names = true

	var total, k8s, promSpan, decide, other []time.Duration
	var queries, actions int
	for b.Loop() {
		q.reset()
		t0 := time.Now()
		res, err := ctrl.Reconcile(ctx)
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !res.Snapshot.MetricsAvailable {
			b.Fatal("metrics unavailable during the benchmark")
		}
		t1 := time.Now()
		policy.Decide(res.Snapshot, pol, time.Now())
		dd := time.Since(t1)
		n, span := q.span()
		total, k8s, promSpan, decide = append(total, d), append(k8s, cl.last), append(promSpan, span), append(decide, dd)
		other = append(other, max(0, d-cl.last-span-dd))
		queries += n
		actions += len(res.Applied)
		b.StartTimer()
	}
	cycles := len(total)
	b.ReportMetric(ms(percentile(total, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(total, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(k8s, 50)), "k8s-ms")
	b.ReportMetric(ms(percentile(promSpan, 50)), "prom-ms")
	b.ReportMetric(ms(percentile(decide, 50)), "decide-ms")
	b.ReportMetric(ms(percentile(other, 50)), "other-ms")
	b.ReportMetric(float64(queries)/float64(cycles), "queries/cycle")
	b.ReportMetric(float64(actions)/float64(cycles), "actions/cycle")
	b.ReportMetric(float64(benchFunctions), "functions")
	b.Logf("%d cycles: reconcile p50 %s p99 %s max %s; k8s p50 %s p99 %s; prometheus p50 %s p99 %s; decide p50 %s; other p50 %s",
		cycles, percentile(total, 50), percentile(total, 99), percentile(total, 100), percentile(k8s, 50), percentile(k8s, 99),
		percentile(promSpan, 50), percentile(promSpan, 99), percentile(decide, 50), percentile(other, 50))
	var per []string
	for name, ds := range q.perQuery() {
		per = append(per, fmt.Sprintf("%s %s", name, percentile(ds, 50)))
	}
	sort.Strings(per)
	b.Logf("median of each request (run concurrently): %s", strings.Join(per, ", "))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[min(max(i, 1), len(s))-1].Round(10 * time.Microsecond)
}

// knownFunctions counts the functions whose invocation rate is known.
func knownFunctions(s *policy.Snapshot) int {
	n := 0
	for _, f := range s.Functions {
		if f.Invocations.Known {
			n++
		}
	}
	return n
}

// timedCluster times Cluster.State.
type timedCluster struct {
	scaler.Cluster
	last time.Duration
}

func (c *timedCluster) State(ctx context.Context) (*scaler.ClusterState, error) {
	start := time.Now()
	st, err := c.Cluster.State(ctx)
	c.last = time.Since(start)
	return st, err
}

// timedQuerier records the span of one cycle's concurrent requests: from
// the first start to the last answer. It batches as the querier it wraps
// does (scaler.Batcher), so the cycle sends what production sends.
type timedQuerier struct {
	q scaler.Querier

	// names turns on the per-request record, set before the measured
	// cycles.
	names bool

	mu          sync.Mutex
	n           int
	first, last time.Time
	per         map[string][]time.Duration
}

func (t *timedQuerier) BatchesQueries() bool {
	b, ok := t.q.(scaler.Batcher)
	return ok && b.BatchesQueries()
}

// requestName names a request by the queries it carries: the metric names
// it reads, e.g. "gateway_function_invocation_started+...".
func requestName(promql string) string {
	var names []string
	for _, m := range metricName.FindAllString(promql, -1) {
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	return strings.Join(names, "+")
}

var metricName = regexp.MustCompile(`\b(gateway|queue_worker|container)_[a-z_]+`)

func (t *timedQuerier) Query(ctx context.Context, promql string, at time.Time) (model.Vector, []string, error) {
	start := time.Now()
	v, warnings, err := t.q.Query(ctx, promql, at)
	end := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	if t.names {
		if t.per == nil {
			t.per = map[string][]time.Duration{}
		}
		name := requestName(promql)
		t.per[name] = append(t.per[name], end.Sub(start))
	}
	if t.first.IsZero() || start.Before(t.first) {
		t.first = start
	}
	if end.After(t.last) {
		t.last = end
	}
	return v, warnings, err
}

func (t *timedQuerier) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n, t.first, t.last = 0, time.Time{}, time.Time{}
}

// perQuery returns the recorded durations of each query.
func (t *timedQuerier) perQuery() map[string][]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.per
}

func (t *timedQuerier) span() (int, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n, t.last.Sub(t.first)
}

// benchName is the name of the i-th benchmark function.
func benchName(i int) string { return fmt.Sprintf("fn-%05d", i) }

// benchAsync tells the async functions (30%) from the cron ones.
func benchAsync(i int) bool { return i%10 >= 7 }

// benchDeployment is the i-th function, shaped as faas-netes makes it, at
// 0 replicas: a cron function on a yearly schedule (never due in the 10m
// lookahead, except in the last minutes of a year) or an async function.
func benchDeployment(i int) *appsv1.Deployment {
	name := benchName(i)
	zero := int32(0)
	labels := map[string]string{policy.LabelFunction: name}
	annotations := map[string]string{policy.AnnotationTier: string(policy.TierAsync)}
	if !benchAsync(i) {
		annotations = map[string]string{policy.AnnotationTopic: policy.TopicCron, policy.AnnotationSchedule: "0 0 1 1 *"}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNamespace, Annotations: annotations,
			Labels: map[string]string{policy.LabelFunction: name, policy.LabelScaleMin: "0", policy.LabelScaleMax: "5", benchLabel: "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: name, Image: "emulated.invalid/tierscaler/function:latest",
					Env: []corev1.EnvVar{{Name: policy.EnvMaxInflight, Value: "4"}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
					}},
				}}},
			},
		},
	}
}

// createBenchDeployments creates n Deployments with a few workers.
func createBenchDeployments(ctx context.Context, cs kubernetes.Interface, n, workers int) error {
	var next atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				_, err := cs.AppsV1().Deployments(benchNamespace).Create(ctx, benchDeployment(i), metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					errs[w] = fmt.Errorf("creating %s: %w", benchName(i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pauseControllerManager stops the environment's kube-controller-manager
// with SIGSTOP and returns the function that resumes it.
func pauseControllerManager(env *testenv.Env) (resume func(), err error) {
	for _, p := range env.Processes() {
		if p.Name != testenv.KubeControllerManager {
			continue
		}
		if !p.Alive {
			return nil, fmt.Errorf("%s (pid %d) is not running; read %s", p.Name, p.PID, p.Log)
		}
		if err := syscall.Kill(p.PID, syscall.SIGSTOP); err != nil {
			return nil, fmt.Errorf("pausing %s (pid %d): %w", p.Name, p.PID, err)
		}
		return func() { _ = syscall.Kill(p.PID, syscall.SIGCONT) }, nil
	}
	return nil, fmt.Errorf("the environment has no %s", testenv.KubeControllerManager)
}

// serveBenchGateway serves, at /metrics, the OpenFaaS gateway and
// queue-worker series of n idle functions: constant counters (no traffic,
// nothing in flight) and empty queues.
func serveBenchGateway(n int) (net.Listener, error) {
	var b strings.Builder
	families := []struct{ name, typ string }{
		{"gateway_service_count", "gauge"},
		{"gateway_function_invocation_total", "counter"},
		{"gateway_function_invocation_started", "counter"},
		{"gateway_functions_seconds_sum", "counter"},
		{"gateway_functions_seconds_count", "counter"},
		{"queue_worker_pending_messages", "gauge"},
	}
	for _, f := range families {
		fmt.Fprintf(&b, "# TYPE %s %s\n", f.name, f.typ)
		for i := range n {
			fn := benchName(i) + "." + benchNamespace
			switch f.name {
			case "gateway_service_count":
				fmt.Fprintf(&b, "%s{function_name=%q} 0\n", f.name, fn)
			case "gateway_function_invocation_total", "gateway_functions_seconds_count":
				fmt.Fprintf(&b, "%s{function_name=%q,code=\"200\"} 100\n", f.name, fn)
			case "gateway_function_invocation_started":
				fmt.Fprintf(&b, "%s{function_name=%q} 100\n", f.name, fn)
			case "gateway_functions_seconds_sum":
				fmt.Fprintf(&b, "%s{function_name=%q,code=\"200\"} 10\n", f.name, fn)
			case "queue_worker_pending_messages":
				if benchAsync(i) {
					fmt.Fprintf(&b, "%s{function_name=%q,queue_name=\"faas-request\"} 0\n", f.name, fn)
				}
			}
		}
	}
	body := []byte(b.String())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	return ln, nil
}

// cleanupBench deletes the benchmark's Deployments (at once: with
// background propagation nothing waits for the paused garbage collector)
// and nodes. The namespace stays, empty, for the next run.
func cleanupBench(b *testing.B, env *testenv.Env, cs kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	bg := metav1.DeletePropagationBackground
	if err := cs.AppsV1().Deployments(benchNamespace).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg},
		metav1.ListOptions{LabelSelector: benchLabel + "=true"}); err != nil {
		b.Errorf("deleting the benchmark's Deployments: %v", err)
	}
	if err := env.DeleteNodes(ctx, "bench"); err != nil {
		b.Errorf("deleting the benchmark's nodes: %v", err)
	}
	b.Logf("cleaned up in %s", time.Since(start).Round(10*time.Millisecond))
}

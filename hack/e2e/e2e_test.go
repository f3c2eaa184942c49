// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/tierscaler/tierscaler/alerts"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// interval is the reconcile interval the tests install the chart with.
const interval = 2 * time.Second

// chartValues are the values the tests install the chart with: the local
// Prometheus and Alertmanager, intervals scaled down to test time, rate
// windows of 5s over the 1s scrapes (as scaler/integration_test.go), the
// webhook with a bearer token the chart generates, and the chart's pods on
// the system pool. cronZeroWhenIdle false keeps idle cron functions at one
// replica, where they are eviction candidates.
//
// queries.duration is left at its default (1m windows; the emulated request
// duration is constant, so the window does not matter): the chart's
// values.schema.json does not allow policy.queries.duration.
func chartValues(e *testenv.Env) string {
	return chartPlacement + fmt.Sprintf(`logFormat: json
webhook:
  auth: required
policy:
  namespaces: [%s]
  interval: %s
  prometheus: {url: %q, timeout: 1500ms, maxStaleness: 30s}
  alertmanager: {urls: [%q]}
  tiers:
    sync: {scaleDownWindow: 10m}
    cron: {lookahead: 2m, startupTime: 8s, margin: 5s, gracePeriod: 20s, zeroWhenIdle: false}
    async: {idleAfter: 10m, activationTimeout: 30s, pendingPerReplica: 10}
  preemption: {minResidency: 5s}
  queries:
    rejections: 'sum by (function_name) (irate(gateway_function_invocation_total{code="429"}[5s]))'
    invocations: 'sum by (function_name) (irate(gateway_function_invocation_total[5s]))'
    inflight: 'max_over_time((sum by (function_name) (gateway_function_invocation_started) - (sum by (function_name) (gateway_function_invocation_total) or 0 * sum by (function_name) (gateway_function_invocation_started)))[5s:1s]) or (0 * max by (function_name) (gateway_service_count))'
    cpu: 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[5s]))'
`, fnNamespace, interval, e.PrometheusURL, e.AlertmanagerURL)
}

// step runs a subtest and stops the test if it fails: the steps build on
// each other.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// addPool adds n function nodes to pool until the test ends.
func addPool(t *testing.T, e *testenv.Env, pool string, n int, cpu, mem string) {
	t.Helper()
	if err := e.AddNodes(context.Background(), pool, n, cpu, mem); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.DeleteNodes(context.Background(), pool) })
}

// startEarlyInAMinute waits, when it is later than 30s into the minute,
// for the next minute: the every-minute cron function's first fire then
// comes at least 30s after its Deployment, more than the prewarm lead
// (startup 8s + margin 5s + interval 2s = 15s) after tierscaler sees it.
// It is scheduling, not an assertion.
func startEarlyInAMinute(t *testing.T) {
	now := time.Now()
	if now.Second() <= 30 {
		return
	}
	next := now.Truncate(time.Minute).Add(time.Minute + 500*time.Millisecond)
	t.Logf("waiting %s for the next minute, so that the first cron fire comes after tierscaler sees the function", time.Until(next).Round(time.Second))
	time.Sleep(time.Until(next))
}

// The scenario: a cluster of one 3.5-CPU node, too small for everything.
// Every function asks 500m, so the node holds 7 pods. At the start it runs
// 6 (api, search, report-old, report-new, thumbnails, transcode), and tick
// is prewarmed into the 7th slot before its first fire. Then api bursts to
// 10 concurrent requests: ceil(10 / (4 × 0.7)) = 4 replicas, 3 more pods,
// which tierscaler finds by evicting the idle cron functions, oldest last
// run first, then the idle async function thumbnails; transcode has a queue
// and tick is due, so they stay. Then search bursts to 6 concurrent
// requests (3 replicas, 2 more pods) with nothing left to evict: a capacity
// shortfall, until a second node is added.
const scenarioText = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-mixed
functions:
- {name: api, tier: sync, maxReplicas: 8, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 5, requestDuration: 200ms}}
- {name: search, tier: sync, maxReplicas: 8, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 2, requestDuration: 200ms}}
- {name: tick, schedule: "* * * * *", minReplicas: 0, initialReplicas: 0, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 5s}}
- {name: report-old, schedule: "%s", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 10s}}
- {name: report-new, schedule: "%s", minReplicas: 0, initialReplicas: 1, requests: {cpu: 500m, memory: 64Mi}, cron: {runDuration: 10s}}
- {name: thumbnails, tier: async, minReplicas: 0, initialReplicas: 1, maxInflight: 2, requests: {cpu: 500m, memory: 64Mi}, async: {jobDuration: 1s}}
- {name: transcode, tier: async, minReplicas: 0, initialReplicas: 1, maxReplicas: 1, maxInflight: 2, requests: {cpu: 500m, memory: 64Mi}, async: {jobDuration: 1s}}
`

const fnPool = "e2e-fn"

func TestChartEndToEnd(t *testing.T) {
	e := env(t)
	ctx := testContext(t)
	began := time.Now()
	dyn, err := dynamic.NewForConfig(e.RESTConfig)
	require.NoError(t, err)

	addSystemPool(t, e)
	addPool(t, e, fnPool, 1, "3500m", "4Gi")
	rel := installChart(t, e, chartValues(e))

	step(t, "every object helm created carries the chart's labels", func(t *testing.T) {
		require.NoError(t, rel.checkManifestCovered(ctx, dyn))
		var names []string
		for _, o := range rel.manifest {
			names = append(names, o.String())
		}
		t.Logf("the chart created %d objects: %s", len(names), strings.Join(names, ", "))
	})

	// The scenario. The functions exist, with their last runs in
	// tierscaler's state, before tierscaler starts: it reads the state once
	// when it starts leading.
	startEarlyInAMinute(t)
	// The reports run daily, hours away: never due during the test.
	h := time.Now().UTC().Hour()
	fns := startFunctions(t, e, fmt.Sprintf(scenarioText, fmt.Sprintf("0 %d * * *", (h+6)%24), fmt.Sprintf("0 %d * * *", (h+8)%24)), nil)
	// Persisted last runs fix the eviction order. transcode's is the
	// oldest of all: were its queued work ignored, it would go first.
	seedLastRuns(t, e, map[string]time.Duration{
		"report-old": 3 * time.Hour, "report-new": time.Hour,
		"thumbnails": 3 * time.Minute, "transcode": 24 * time.Hour,
	})
	require.NoError(t, fns.em.Enqueue("transcode", 1000)) // 2 jobs/s: busy for the whole test
	eventually(t, 10*time.Second, "transcode has work", func() (bool, string) {
		st := fns.state("transcode")
		return st.Pending > 0 && st.Inflight > 0, fmt.Sprintf("%.0f pending, %.0f in flight", st.Pending, st.Inflight)
	})
	guard := guardFunctions(t, fns, "transcode")

	c := runChartController(t, e)
	routeActivations(t, e, c)

	step(t, "tierscaler runs with the chart-rendered policy and arguments", func(t *testing.T) {
		require.Equal(t, interval, c.policy.Interval.Duration)
		require.False(t, c.policy.ZeroCronWhenIdle())
		require.Equal(t, []string{fnNamespace}, c.policy.Namespaces)
		require.Equal(t, e.PrometheusURL, c.policy.Prometheus.URL)
		require.Equal(t, []string{e.AlertmanagerURL}, c.policy.AlertmanagerURLs())
		for _, want := range []string{"--leader-elect=true", "--leader-election-namespace=" + releaseNamespace, "--webhook-auth=required", "--all-pods=true"} {
			require.Contains(t, c.args, want)
		}
		require.NotEmpty(t, c.tokenFile, "--webhook-token-file")
		require.Equal(t, releaseNamespace+"/"+releaseName, c.serviceAccount)
	})

	step(t, "RBAC is no broader than needed", func(t *testing.T) { checkLeastPrivilege(t, e, c) })
	step(t, "the webhook requires the chart's token", func(t *testing.T) { checkWebhookAuth(t, c) })

	firstFire := fns.created.Truncate(time.Minute).Add(time.Minute)

	step(t, "tierscaler has fresh metrics of every function", func(t *testing.T) {
		eventually(t, 60*time.Second, "tierscaler_metrics_available is 1 with every function known", func() (bool, string) {
			if v, _ := metric(c.metricsURL, "tierscaler_metrics_available", nil); v != 1 {
				return false, "metrics unavailable"
			}
			for _, fn := range fns.sc.Functions {
				if _, ok := metric(c.metricsURL, "tierscaler_function_replicas", map[string]string{"function": fn.Key()}); !ok {
					return false, fn.Key() + " not seen yet"
				}
			}
			return true, ""
		})
	})

	step(t, "the every-minute cron function is prewarmed before its first fire", func(t *testing.T) {
		tickReady := eventually(t, time.Until(firstFire)+10*time.Second, "tick has a Ready replica", func() (bool, string) {
			st := fns.state("tick")
			return st.Ready >= 1, fmt.Sprintf("%d Ready", st.Ready)
		})
		require.True(t, tickReady.Before(firstFire), "tick Ready at %s, after its fire time %s", tickReady.Format(time.RFC3339Nano), firstFire)
		fns.eventually(scaler.EventPrewarmed, "tick")
		t.Logf("tick prewarmed: Ready %s before its first fire at %s", firstFire.Sub(tickReady).Round(time.Millisecond), firstFire.Format(time.TimeOnly))
	})

	step(t, "a sync burst evicts the oldest idle cron function first and its 429s stop", func(t *testing.T) {
		require.Empty(t, fns.events(scaler.EventEvicted), "nothing evicted before the burst")
		require.EqualValues(t, 1, fns.replicas("api"))
		burst := time.Now()
		// 50 req/s of 200ms: 10 concurrent requests, 4 per replica.
		require.NoError(t, fns.em.SetRate("api", 50))
		eventually(t, 60*time.Second, "three evictions", func() (bool, string) {
			n := len(fns.events(scaler.EventEvicted))
			return n >= 3, fmt.Sprintf("%d evictions", n)
		})
		var got [][2]string
		for _, ev := range fns.events(scaler.EventEvicted) {
			related := ""
			if ev.Related != nil {
				related = ev.Related.Name
			}
			got = append(got, [2]string{ev.Regarding.Name, related})
		}
		require.Equal(t, [][2]string{{"report-old", "api"}, {"report-new", "api"}, {"thumbnails", "api"}}, got,
			"EvictedForCapacity by eventTime: the idle cron functions, oldest last run first, then the idle async one, each for api")
		cleared := eventually(t, 90*time.Second, "api's 429s stop", func() (bool, string) {
			st := fns.state("api")
			return st.RejectionRate == 0 && st.Ready >= 4, fmt.Sprintf("%d Ready, %.1f 429/s", st.Ready, st.RejectionRate)
		})
		require.EqualValues(t, 4, fns.replicas("api"), "ceil(10 / 2.8) = 4 replicas")
		for _, name := range []string{"report-old", "report-new", "thumbnails"} {
			require.EqualValues(t, 0, fns.replicas(name), name)
		}
		t.Logf("api burst: 429s gone %s after the burst began, with 4 replicas", cleared.Sub(burst).Round(time.Millisecond))
	})

	step(t, "the cron function ran on time", func(t *testing.T) {
		eventually(t, time.Until(firstFire)+20*time.Second, "tick ran", func() (bool, string) {
			st := fns.state("tick")
			return st.CronRuns >= 1, fmt.Sprintf("%d fires, %d runs, %d missed", st.CronFires, st.CronRuns, st.CronMissed)
		})
		require.Zero(t, fns.state("tick").CronMissed)
	})

	step(t, "a capacity shortfall is in Alertmanager while capacity is short", func(t *testing.T) {
		burst := time.Now()
		// 30 req/s of 200ms: 6 concurrent requests need 3 replicas; the node
		// is full and nothing left on it may be evicted.
		require.NoError(t, fns.em.SetRate("search", 30))
		var alert amAlert
		seen := eventually(t, 60*time.Second, "TierscalerCapacityShortfall for search is active", func() (bool, string) {
			as, err := activeAlerts(ctx, e.AlertmanagerURL, `alertname="`+alerts.AlertCapacityShortfall+`"`, `function="search.`+fnNamespace+`"`)
			if err != nil || len(as) == 0 {
				return false, fmt.Sprintf("%d alerts, %v", len(as), err)
			}
			alert = as[0]
			return true, ""
		})
		for k, v := range map[string]string{
			"alertname": alerts.AlertCapacityShortfall, "component": "tierscaler", "service": "search." + fnNamespace, "function": "search." + fnNamespace,
			"namespace": fnNamespace, "tier": "sync", "reason": string(policy.ShortfallCapacity), "severity": "critical",
		} {
			require.Equal(t, v, alert.Labels[k], "label %s", k)
		}
		require.NotContains(t, alert.Labels, "function_name", "OpenFaaS CE's gateway would scale on it")
		missing, _ := strconv.Atoi(alert.Annotations["missing_pods"])
		require.GreaterOrEqual(t, missing, 1, "missing_pods")
		require.EqualValues(t, 1, fns.replicas("search"), "capacity is still short")
		require.Greater(t, fns.state("search").RejectionRate, 0.0, "search still answers 429s")
		fns.eventually(scaler.EventShortfall, "search")
		visible := seen.Sub(alert.StartsAt)
		t.Logf("shortfall: tierscaler reported it %s after the burst began; Alertmanager showed it %s after that (interval %s)",
			alert.StartsAt.Sub(burst).Round(time.Millisecond), visible.Round(time.Millisecond), interval)
		require.Less(t, visible, 5*time.Second, "visible in Alertmanager within about one interval of tierscaler reporting it")
	})

	step(t, "the shortfall alert resolves once room is freed", func(t *testing.T) {
		added := time.Now()
		require.NoError(t, e.AddNodes(ctx, fnPool, 1, "2", "4Gi"))
		resolved := eventually(t, 60*time.Second, "the shortfall alert is no longer active", func() (bool, string) {
			as, err := activeAlerts(ctx, e.AlertmanagerURL, `alertname="`+alerts.AlertCapacityShortfall+`"`, `function="search.`+fnNamespace+`"`)
			return err == nil && len(as) == 0, fmt.Sprintf("%d active, %v", len(as), err)
		})
		eventually(t, 60*time.Second, "search has 3 Ready replicas and no 429s", func() (bool, string) {
			st := fns.state("search")
			return st.Ready >= 3 && st.RejectionRate == 0, fmt.Sprintf("%d Ready, %.1f 429/s", st.Ready, st.RejectionRate)
		})
		require.EqualValues(t, 3, fns.replicas("search"))
		t.Logf("shortfall resolved in Alertmanager %s after a node was added", resolved.Sub(added).Round(time.Millisecond))
	})

	step(t, "the busy async function was never evicted", func(t *testing.T) {
		guard.stop()
		guard.check(t)
		require.EqualValues(t, 1, fns.replicas("transcode"))
		for _, ev := range fns.events(scaler.EventEvicted) {
			require.NotEqual(t, "transcode", ev.Regarding.Name)
		}
		require.Len(t, fns.events(scaler.EventEvicted), 3, "no eviction but the three of the burst")
	})

	step(t, "no cron run was missed", func(t *testing.T) {
		st := fns.state("tick")
		require.GreaterOrEqual(t, st.CronRuns, 1)
		require.Zero(t, st.CronMissed)
		require.Zero(t, st.CronLate)
		t.Logf("tick: %d fires, %d runs, 0 missed", st.CronFires, st.CronRuns)
	})

	step(t, "the live /metrics are in docs/metrics.md and pass promlint", func(t *testing.T) {
		checkLiveMetricsDocumented(t, c.metricsURL)
	})

	step(t, "RBAC was sufficient: nothing tierscaler did was refused", func(t *testing.T) {
		if v, _ := metric(c.metricsURL, "tierscaler_scale_patch_errors_total", map[string]string{"reason": "forbidden"}); v != 0 {
			t.Errorf("%v scale or annotation patches were forbidden", v)
		}
		ok, _ := metric(c.metricsURL, "tierscaler_reconciles_total", map[string]string{"result": "success"})
		failed, _ := metric(c.metricsURL, "tierscaler_reconciles_total", map[string]string{"result": "error"})
		writes, _ := metric(c.metricsURL, "tierscaler_last_run_writes_total", nil)
		require.Positive(t, ok)
		require.Positive(t, writes, "last-run annotations were written (deployments patch)")
		t.Logf("%v reconciles (%v failed), %v last-run writes", ok, failed, writes)
		require.NoError(t, c.stop())
		deleteLease(ctx, e, c)
		require.Empty(t, c.forbiddenLines(), "the log reports requests refused by RBAC")
	})

	step(t, "helm uninstall leaves nothing behind", func(t *testing.T) {
		before, err := labelled(ctx, dyn)
		require.NoError(t, err)
		require.NotEmpty(t, before)
		require.NoError(t, rel.uninstall(ctx))
		eventually(t, 2*time.Minute, "every object of the chart is gone", func() (bool, string) {
			left, err := labelled(ctx, dyn)
			if err != nil {
				return false, err.Error()
			}
			rem, err := rel.remaining(ctx, dyn)
			if err != nil {
				return false, err.Error()
			}
			var names []string
			for _, o := range left {
				names = append(names, o.String())
			}
			return len(left) == 0 && len(rem) == 0, fmt.Sprintf("labelled: %v; from the manifest: %v", names, rem)
		})
		records, err := e.Clientset.CoreV1().Secrets(releaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + releaseName})
		require.NoError(t, err)
		require.Empty(t, records.Items, "helm's release records")
		t.Logf("uninstalled: %d labelled objects before, none after", len(before))
	})
	t.Logf("TestChartEndToEnd: %s", time.Since(began).Round(time.Second))
}

// functionGuard samples, until stopped, the replicas and emulated work of
// functions that must keep running: a function with work in flight or
// queued is never evicted.
type functionGuard struct {
	names []string
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu       sync.Mutex
	samples  int
	problems []string
}

func guardFunctions(t *testing.T, f *functions, names ...string) *functionGuard {
	g := &functionGuard{names: names, done: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-g.done:
				return
			case <-tick.C:
			}
			for _, name := range names {
				d, err := f.env.Clientset.AppsV1().Deployments(fnNamespace).Get(f.ctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				st, err := f.em.FunctionState(name)
				if err != nil {
					continue
				}
				g.mu.Lock()
				g.samples++
				now := time.Now().Format(time.TimeOnly)
				if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
					g.problems = append(g.problems, fmt.Sprintf("%s: %s scaled to 0", now, name))
				}
				if st.Inflight == 0 && st.Pending == 0 {
					g.problems = append(g.problems, fmt.Sprintf("%s: %s had no work (the test's premise)", now, name))
				}
				g.mu.Unlock()
			}
		}
	}()
	t.Cleanup(g.stop)
	return g
}

func (g *functionGuard) stop() {
	g.once.Do(func() { close(g.done) })
	g.wg.Wait()
}

func (g *functionGuard) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Positive(t, g.samples)
	require.Empty(t, g.problems)
	t.Logf("%s: %d samples, always running with work", strings.Join(g.names, ", "), g.samples)
}

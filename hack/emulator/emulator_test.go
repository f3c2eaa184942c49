// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/workload"
)

const testScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: emulator-test
functions:
  - name: api
    maxInflight: 5
    usage:
      pod: {cpu: 100m, memory: 100Mi}
      perRequest: {cpu: 10m, memory: 1Mi}
    sync: {rate: 150, requestDuration: 100ms}
  - name: job
    schedule: "* * * * *"
    minReplicas: 0
    cron: {runDuration: 10s}
  - name: digest
    schedule: "*/2 * * * *"
    minReplicas: 0
    cron: {runDuration: 10s, async: true}
  - name: q
    tier: async
    minReplicas: 0
    maxInflight: 2
    async:
      bursts: [{every: 1h, jobs: 10, first: 0s}]
      jobDuration: 5s
`

// t0 is a whole minute, so that the cron functions fire at t0.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// fixture is an emulator over a StaticSource, ticked by hand.
type fixture struct {
	e   *Emulator
	src *StaticSource
	srv *httptest.Server
	now time.Time
}

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	s, err := workload.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	src := NewStaticSource()
	e, err := New(Options{Scenario: s, Source: src, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{e: e, src: src, now: t0}
	f.srv = httptest.NewServer(e.Handler())
	t.Cleanup(f.srv.Close)
	e.Tick(t0)
	return f
}

// advance ticks every second for d.
func (f *fixture) advance(d time.Duration) {
	for end := f.now.Add(d); f.now.Before(end); {
		f.now = f.now.Add(time.Second)
		f.e.Tick(f.now)
	}
}

func (f *fixture) ready(t *testing.T, key string, n int) {
	t.Helper()
	if err := f.src.SetReady(key, n); err != nil {
		t.Fatal(err)
	}
	f.e.Tick(f.now) // sample the cluster without moving the clock
}

// scrape reads /metrics.
func (f *fixture) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample finds the series of name with the given labels (a subset) and
// returns its value (a histogram's sample count).
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(fams, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestMetricsExposition(t *testing.T) {
	f := newFixture(t, testScenario)
	const api, job, digest, q = "api.openfaas-fn", "job.openfaas-fn", "digest.openfaas-fn", "q.openfaas-fn"
	f.ready(t, api, 1)
	f.advance(time.Minute)
	fams := f.scrape(t)

	// The gateway's series exist once something happened, per code, as
	// the gateway creates them; the emulator's own exist for every
	// function.
	for _, tc := range []struct {
		fn      string
		started bool
		codes   []string
	}{
		{api, true, []string{"200", "429"}},
		{job, true, []string{"429"}}, // a fire without a replica: started and refused
		{digest, false, nil},         // queued, no replica to start it
		{q, false, nil},
	} {
		if _, ok := sample(fams, "gateway_function_invocation_started", "function_name", tc.fn); ok != tc.started {
			t.Errorf("%s: started series present %v, want %v", tc.fn, ok, tc.started)
		}
		for _, code := range []string{"200", "429", "502"} {
			want := slices.Contains(tc.codes, code)
			for _, name := range []string{"gateway_function_invocation_total", "gateway_functions_seconds"} {
				if _, ok := sample(fams, name, "function_name", tc.fn, "code", code); ok != want {
					t.Errorf("%s: %s{code=%s} present %v, want %v", tc.fn, name, code, ok, want)
				}
			}
		}
		mustSample(t, fams, "emulator_rejections_total", "function_name", tc.fn)
	}
	mustSample(t, fams, "gateway_function_invocation_started", "function_name", api, "kubernetes_pod_name", "gateway-0")
	// One replica serves 50 of the 150 rps: 100 rps are answered 429.
	if got := mustSample(t, fams, "gateway_function_invocation_total", "function_name", api, "code", "429"); !near(got, 6000) {
		t.Errorf("api 429s = %v, want 6000", got)
	}
	if got := mustSample(t, fams, "emulator_rejections_total", "function_name", api); !near(got, 6000) {
		t.Errorf("emulator_rejections_total = %v, want 6000", got)
	}
	ok200 := mustSample(t, fams, "gateway_function_invocation_total", "function_name", api, "code", "200")
	started := mustSample(t, fams, "gateway_function_invocation_started", "function_name", api)
	if !near(started, 9000) || !near(started-ok200-6000, 5) {
		t.Errorf("api started %v, 200s %v: want 9000 started and 5 in flight", started, ok200)
	}
	if got := mustSample(t, fams, "gateway_service_count", "function_name", api); got != 1 {
		t.Errorf("api gateway_service_count = %v, want 1", got)
	}
	if _, ok := sample(fams, "gateway_service_count", "function_name", q); ok {
		t.Error("q has no Deployment, but a gateway_service_count")
	}
	// The 200s of api took 100ms each: all in the le=0.1 bucket.
	h := histogram(fams, "gateway_functions_seconds", api, "200")
	if h == nil || h.GetSampleCount() != uint64(math.Floor(ok200)) || bucket(h, 0.05) != 0 || bucket(h, 0.1) != h.GetSampleCount() {
		t.Errorf("api duration histogram %v", h)
	}

	// Queue depth only for the queued functions, with a queue_name.
	if got := mustSample(t, fams, "queue_worker_pending_messages", "function_name", q, "queue_name", QueueName); got != 10 {
		t.Errorf("q pending = %v, want 10 (no replica)", got)
	}
	if got := mustSample(t, fams, "queue_worker_pending_messages", "function_name", digest); got != 1 {
		t.Errorf("digest pending = %v, want 1 (fired at t0, no replica)", got)
	}
	for _, k := range []string{api, job} {
		if _, ok := sample(fams, "queue_worker_pending_messages", "function_name", k); ok {
			t.Errorf("%s has a queue_worker_pending_messages series", k)
		}
	}
	// Cron: job fired at t0 and t0+1m... the fire at t0+1m is in the next
	// step; one missed so far.
	if got := mustSample(t, fams, "emulator_cron_missed_total", "function_name", job); got != 1 {
		t.Errorf("job missed = %v, want 1", got)
	}
	mustSample(t, fams, "emulator_cron_runs_total", "function_name", job)
	mustSample(t, fams, "emulator_cron_late_total", "function_name", digest)
	mustSample(t, fams, "emulator_async_wait_seconds", "function_name", q)

	// cadvisor: api-0 used 100m + 5 in flight × 10m = 0.15 cores for 60s.
	if got := mustSample(t, fams, "container_cpu_usage_seconds_total", "namespace", "openfaas-fn", "pod", "api-0", "container", "api"); !near(got, 9) {
		t.Errorf("api-0 CPU seconds = %v, want 9", got)
	}
	if got := mustSample(t, fams, "container_memory_working_set_bytes", "pod", "api-0", "container", "api"); !near(got, 105*(1<<20)) {
		t.Errorf("api-0 memory = %v, want 105Mi", got)
	}

	// Closed loop: a second replica halves the 429s.
	f.ready(t, api, 2)
	f.advance(time.Minute)
	fams = f.scrape(t)
	if got := mustSample(t, fams, "gateway_function_invocation_total", "function_name", api, "code", "429"); !near(got, 6000+3000) {
		t.Errorf("api 429s after scaling to 2 = %v, want 9000 (50 rps more for 60s)", got)
	}
	if got := mustSample(t, fams, "emulator_ready_replicas", "function_name", api); got != 2 {
		t.Errorf("emulator_ready_replicas = %v, want 2", got)
	}
	mustSample(t, fams, "container_cpu_usage_seconds_total", "pod", "api-1")

	// Replicas for the async function drain its queue.
	f.ready(t, q, 1)
	f.advance(30 * time.Second)
	fams = f.scrape(t)
	if got := mustSample(t, fams, "queue_worker_pending_messages", "function_name", q); got != 0 {
		t.Errorf("q pending after 30s with 2 workers = %v, want 0", got)
	}
	if got := mustSample(t, fams, "emulator_async_wait_seconds", "function_name", q); got != 10 {
		t.Errorf("q waits observed = %v, want 10", got)
	}

	// Pods that disappear lose their series; Deployments the scenario does
	// not know have a gateway_service_count, and no counters.
	f.src.Set(Cluster{Deployments: map[string]int32{api: 2, "other.openfaas-fn": 3}})
	f.advance(openfaas.ServicePollInterval) // the gateway's next poll lists it
	fams = f.scrape(t)
	if _, ok := sample(fams, "container_cpu_usage_seconds_total", "pod", "api-0"); ok {
		t.Error("api-0 is gone but its CPU series remains")
	}
	if got := mustSample(t, fams, "gateway_service_count", "function_name", "other.openfaas-fn"); got != 3 {
		t.Errorf("other gateway_service_count = %v, want 3", got)
	}
	if _, ok := sample(fams, "gateway_function_invocation_started", "function_name", "other.openfaas-fn"); ok {
		t.Error("other was never invoked, but has a started series")
	}
}

func TestNotReadyPodHasIdleSeries(t *testing.T) {
	f := newFixture(t, testScenario)
	f.src.Set(Cluster{
		Deployments: map[string]int32{"api.openfaas-fn": 2},
		Pods: []Pod{
			{Namespace: "openfaas-fn", Name: "api-a", Function: "api", Running: true, Ready: true},
			{Namespace: "openfaas-fn", Name: "api-b", Function: "api", Running: true},
			{Namespace: "openfaas-fn", Name: "api-c", Function: "api"}, // Pending
		},
	})
	f.advance(10 * time.Second)
	fams := f.scrape(t)
	if got := mustSample(t, fams, "container_cpu_usage_seconds_total", "pod", "api-b"); got != 0 {
		t.Errorf("not-Ready pod CPU = %v, want 0", got)
	}
	if got := mustSample(t, fams, "container_memory_working_set_bytes", "pod", "api-b"); got != 100*(1<<20) {
		t.Errorf("not-Ready pod memory = %v, want the idle 100Mi", got)
	}
	if _, ok := sample(fams, "container_cpu_usage_seconds_total", "pod", "api-c"); ok {
		t.Error("a Pending pod has a cadvisor series")
	}
	if got := mustSample(t, fams, "emulator_ready_replicas", "function_name", "api.openfaas-fn"); got != 1 {
		t.Errorf("ready replicas = %v, want 1", got)
	}
}

func histogram(fams map[string]*dto.MetricFamily, name, fn, code string) *dto.Histogram {
	for _, m := range fams[name].GetMetric() {
		l := map[string]string{}
		for _, p := range m.Label {
			l[p.GetName()] = p.GetValue()
		}
		if l["function_name"] == fn && l["code"] == code {
			return m.Histogram
		}
	}
	return nil
}

func bucket(h *dto.Histogram, le float64) uint64 {
	for _, b := range h.Bucket {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	return math.MaxUint64
}

func TestControlAPI(t *testing.T) {
	f := newFixture(t, testScenario)
	f.ready(t, "api.openfaas-fn", 1)
	f.ready(t, "q.openfaas-fn", 1)
	do := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp.StatusCode, body
	}
	for _, tc := range []struct {
		name, method, path string
		status             int
		errContains        string
	}{
		{"set a rate", "POST", "/control/rate?function=api.openfaas-fn&rps=20", 200, ""},
		{"bare name", "POST", "/control/rate?function=api&rps=20", 200, ""},
		{"no function", "POST", "/control/rate?rps=20", 400, "parameter function is required"},
		{"unknown function", "POST", "/control/rate?function=nope.openfaas-fn&rps=1", 404, `unknown function "nope.openfaas-fn" (the scenario has: api.openfaas-fn`},
		{"no rps", "POST", "/control/rate?function=api.openfaas-fn", 400, "parameter rps is required"},
		{"bad rps", "POST", "/control/rate?function=api.openfaas-fn&rps=-3", 400, `parameter rps: want a number >= 0, got "-3"`},
		{"rate on async", "POST", "/control/rate?function=q.openfaas-fn&rps=3", 400, "q.openfaas-fn is in the async tier"},
		{"wrong method", "GET", "/control/rate?function=api.openfaas-fn&rps=3", 405, "method GET not allowed"},
		{"jobs", "POST", "/control/jobs?function=q.openfaas-fn&count=7", 200, ""},
		{"bad count", "POST", "/control/jobs?function=q.openfaas-fn&count=zero", 400, `parameter count: want an integer >= 1, got "zero"`},
		{"jobs on cron", "POST", "/control/jobs?function=job.openfaas-fn&count=1", 400, "job.openfaas-fn is in the cron tier"},
		{"fire", "POST", "/control/fire?function=job.openfaas-fn", 200, ""},
		{"fire sync", "POST", "/control/fire?function=api.openfaas-fn", 400, "api.openfaas-fn is in the sync tier"},
		{"state", "GET", "/control/state", 200, ""},
		{"state by POST", "POST", "/control/state", 405, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(tc.method, tc.path)
			if status != tc.status {
				t.Errorf("status %d, want %d (body %v)", status, tc.status, body)
			}
			if tc.errContains != "" {
				if msg, _ := body["error"].(string); !strings.Contains(msg, tc.errContains) {
					t.Errorf("error %q, want it to contain %q", msg, tc.errContains)
				}
			}
		})
	}

	// The changes take effect at the next tick.
	f.advance(time.Second)
	st := f.e.State()
	byKey := map[string]FunctionState{}
	for _, fs := range st.Functions {
		byKey[fs.Function] = fs
	}
	if a := byKey["api.openfaas-fn"]; !near(a.OfferedRate, 20) || a.RateOverride == nil || *a.RateOverride != 20 || a.RejectionRate != 0 {
		t.Errorf("api after override: %+v", a)
	}
	if q := byKey["q.openfaas-fn"]; q.Pending+q.Inflight != 17 {
		t.Errorf("q after 7 more jobs: pending %v + in flight %v, want 17", q.Pending, q.Inflight)
	}
	if j := byKey["job.openfaas-fn"]; j.CronFires != 2 || j.CronMissed != 2 {
		t.Errorf("job after a manual fire: fires %d, missed %d; want 2, 2", j.CronFires, j.CronMissed)
	}
	if st.Scenario != "emulator-test" || !st.Time.Equal(f.now) {
		t.Errorf("state scenario %q at %s", st.Scenario, st.Time)
	}

	// Reset by DELETE.
	if status, _ := do("DELETE", "/control/rate?function=api.openfaas-fn"); status != 200 {
		t.Fatalf("DELETE rate: %d", status)
	}
	f.advance(time.Second)
	if a, _ := f.e.FunctionState("api"); !near(a.OfferedRate, 150) || a.RateOverride != nil {
		t.Errorf("api after reset: %+v", a)
	}

	// The state endpoint lists every function.
	_, body := do("GET", "/control/state")
	if fns, _ := body["functions"].([]any); len(fns) != 4 {
		t.Errorf("state lists %d functions, want 4: %v", len(fns), body)
	}
}

func TestGoControlAPI(t *testing.T) {
	f := newFixture(t, testScenario)
	if err := f.e.SetRate("api.openfaas-fn", 5); err != nil {
		t.Fatal(err)
	}
	if err := f.e.ResetRate("api"); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Enqueue("q", 2); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Fire("digest.openfaas-fn"); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Fire("nope"); err == nil || !strings.Contains(err.Error(), "unknown function") {
		t.Fatalf("Fire(nope) = %v", err)
	}
	if _, err := f.e.Resolve(""); err == nil {
		t.Fatal("Resolve(\"\") succeeded")
	}
	f.advance(time.Second)
	var pending float64
	f.e.Model(func(m *workload.Model) { pending = m.Observe("q.openfaas-fn").Pending })
	if pending != 12 {
		t.Fatalf("q pending = %v, want 12", pending)
	}
}

func TestNewOptions(t *testing.T) {
	s, err := workload.Parse([]byte(testScenario))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no scenario", Options{Source: NewStaticSource()}, "Options.Scenario is required"},
		{"no source", Options{Scenario: s}, "Options.Source is required"},
		{"negative tick", Options{Scenario: s, Source: NewStaticSource(), Tick: -time.Second}, "tick -1s is negative"},
		{"invalid scenario", Options{Scenario: &workload.Scenario{Name: "bad"}, Source: NewStaticSource()}, `scenario "bad": apiVersion`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStartServes(t *testing.T) {
	s, err := workload.Builtin("mixed-small")
	if err != nil {
		t.Fatal(err)
	}
	src := NewStaticSource()
	for _, fn := range s.Functions {
		if err := src.SetReady(fn.Key(), 1); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(Options{Scenario: s, Source: src, Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if !strings.HasPrefix(e.Addr(), "127.0.0.1:") || e.URL() != "http://"+e.Addr() {
		t.Fatalf("Addr %q, URL %q", e.Addr(), e.URL())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.State()
		if len(st.Functions) == 7 && st.Functions[0].Started > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no traffic after 10s: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(e.URL() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

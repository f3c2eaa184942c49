// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is the start of the test scenarios: a Monday at midnight UTC.
var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// mustParse parses a scenario made of a header and the given functions
// (YAML list items).
func mustParse(t *testing.T, functions string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(header + functions))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

const header = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: test
functions:
`

// run steps m from t0 for total in steps of dt with ready replicas given
// by readyAt (called at the start of each step).
func run(m *Model, from time.Time, total, dt time.Duration, readyAt func(time.Time) map[string]int) {
	for t := from; t.Before(from.Add(total)); t = t.Add(dt) {
		m.Step(t, dt, readyAt(t))
	}
}

func constant(r map[string]int) func(time.Time) map[string]int {
	return func(time.Time) map[string]int { return r }
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestSyncClosedLoop(t *testing.T) {
	const fn = `- name: api
  maxInflight: 5
  sync: {rate: %RATE%, requestDuration: 100ms}
`
	for _, tc := range []struct {
		name         string
		rate         string
		ready        int
		wantRejected float64 // per second
		wantInflight float64
	}{
		{"zero ready rejects everything", "30", 0, 30, 0},
		{"unsaturated", "10", 1, 0, 1},
		{"exactly at capacity", "50", 1, 0, 5},
		{"saturated one replica", "150", 1, 100, 5},
		{"saturated two replicas", "150", 2, 50, 10},
		{"saturated three replicas fits", "150", 3, 0, 15},
		{"idle", "0", 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, strings.ReplaceAll(fn, "%RATE%", tc.rate))
			m := NewModel(s, 1)
			run(m, t0, time.Minute, time.Second, constant(map[string]int{"api.openfaas-fn": tc.ready}))
			o := m.Observe("api.openfaas-fn")
			if !near(o.RejectedRate, tc.wantRejected) {
				t.Errorf("rejected rate = %v/s, want %v/s", o.RejectedRate, tc.wantRejected)
			}
			if !near(o.Rejected429, tc.wantRejected*60) {
				t.Errorf("Rejected429 = %v, want %v", o.Rejected429, tc.wantRejected*60)
			}
			if !near(o.Inflight, tc.wantInflight) {
				t.Errorf("Inflight = %v, want %v", o.Inflight, tc.wantInflight)
			}
			if got := o.Started - o.Completed200 - o.Rejected429; !near(got, o.Inflight) {
				t.Errorf("Started-Completed200-Rejected429 = %v, want Inflight %v", got, o.Inflight)
			}
			if o.Capacity != tc.ready*5 || o.Ready != tc.ready {
				t.Errorf("Ready, Capacity = %d, %d; want %d, %d", o.Ready, o.Capacity, tc.ready, tc.ready*5)
			}
		})
	}
}

func TestSyncMoreReplicasFewerRejections(t *testing.T) {
	// 150 rps against 50 rps per replica: 1 replica rejects 100/s, 2 reject
	// 50/s. Doubling the Ready replicas halves the 429s.
	s := mustParse(t, `- name: api
  maxInflight: 5
  sync: {rate: 150, requestDuration: 100ms}
`)
	rejected := func(ready int) float64 {
		m := NewModel(s, 1)
		run(m, t0, 5*time.Minute, time.Second, constant(map[string]int{"api.openfaas-fn": ready}))
		return m.Observe("api.openfaas-fn").Rejected429
	}
	one, two := rejected(1), rejected(2)
	if one == 0 || !near(two/one, 0.5) {
		t.Fatalf("429s with 1 replica %v, with 2 %v: want a ratio of 0.5", one, two)
	}
	if zero := rejected(0); !near(zero, 150*300) {
		t.Fatalf("429s with 0 replicas = %v, want every request (%v)", zero, 150*300)
	}
}

func TestSyncInflightDrainsAndCountersMonotonic(t *testing.T) {
	s := mustParse(t, `- name: slow
  maxInflight: 100
  sync: {rate: 10, requestDuration: 3s, bursts: [{at: 10s, for: 5s, rps: 90}]}
`)
	m := NewModel(s, 1)
	key := "slow.openfaas-fn"
	var prev Observation
	for i := 0; i < 60; i++ {
		ready := 1
		if i >= 30 {
			ready = 0 // scaled to zero: in-flight work still completes
		}
		m.Step(t0.Add(time.Duration(i)*time.Second), time.Second, map[string]int{key: ready})
		o := m.Observe(key)
		if o.Started < prev.Started || o.Completed200 < prev.Completed200 || o.Rejected429 < prev.Rejected429 {
			t.Fatalf("step %d: a counter went down: %+v after %+v", i, o, prev)
		}
		if got := o.Started - o.Completed200 - o.Rejected429; !near(got, o.Inflight) {
			t.Fatalf("step %d: Started-Completed200-Rejected429 = %v, Inflight %v", i, got, o.Inflight)
		}
		switch i {
		case 9: // steady 10 rps × 3s
			if !near(o.Inflight, 30) {
				t.Errorf("steady in-flight = %v, want 30", o.Inflight)
			}
		case 14: // burst: 100 rps, capacity 100 concurrent = 33.3 rps
			if !near(o.RejectedRate, 100-100.0/3) {
				t.Errorf("burst rejected rate = %v, want %v", o.RejectedRate, 100-100.0/3)
			}
			if o.Inflight > 100*(1+1e-9) {
				t.Errorf("burst in-flight %v above the capacity 100", o.Inflight)
			}
		}
		prev = o
	}
	if prev.Inflight != 0 {
		t.Errorf("in-flight after draining = %v, want 0", prev.Inflight)
	}
}

func TestCron(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fn       string
		readyAt  func(time.Time) map[string]int
		total    time.Duration
		want     [4]int // fires, runs, missed, late
		want429  float64
		inflight float64
	}{
		{
			name:    "ready replica runs every fire",
			fn:      "schedule: '*/5 * * * *'\n  cron: {runDuration: 40s}",
			readyAt: constant(map[string]int{"job.openfaas-fn": 1}),
			total:   30 * time.Minute,
			want:    [4]int{6, 6, 0, 0},
		},
		{
			name:    "no ready replica misses every fire",
			fn:      "schedule: '*/5 * * * *'\n  cron: {runDuration: 40s}",
			readyAt: constant(nil),
			total:   30 * time.Minute,
			want:    [4]int{6, 0, 6, 0},
			want429: 6,
		},
		{
			name: "ready only from minute 12 misses the first three",
			fn:   "schedule: '*/5 * * * *'\n  cron: {runDuration: 40s}",
			readyAt: func(t time.Time) map[string]int {
				if t.Before(t0.Add(12 * time.Minute)) {
					return nil
				}
				return map[string]int{"job.openfaas-fn": 1}
			},
			total:   30 * time.Minute,
			want:    [4]int{6, 3, 3, 0},
			want429: 3,
		},
		{
			name:    "busy slot misses the overlapping fire",
			fn:      "schedule: '* * * * *'\n  maxInflight: 1\n  cron: {runDuration: 90s}",
			readyAt: constant(map[string]int{"job.openfaas-fn": 1}),
			total:   10 * time.Minute,
			want:    [4]int{10, 5, 5, 0},
			want429: 5,
			// Runs at 0, 2, 4, 6, 8 minutes; the fires between them find the
			// only slot busy.
		},
		{
			name: "async cron waits for a replica and runs late",
			fn:   "schedule: '*/5 * * * *'\n  cron: {runDuration: 40s, async: true}",
			readyAt: func(t time.Time) map[string]int {
				if t.Before(t0.Add(12 * time.Minute)) {
					return nil
				}
				return map[string]int{"job.openfaas-fn": 1}
			},
			total: 30 * time.Minute,
			// Fires at 0, 5, 10 wait until 12m (late); 15, 20, 25 run on time.
			want: [4]int{6, 6, 0, 3},
		},
		{
			name:    "async cron with no replica queues",
			fn:      "schedule: '*/5 * * * *'\n  cron: {runDuration: 40s, async: true}",
			readyAt: constant(nil),
			total:   30 * time.Minute,
			want:    [4]int{6, 0, 0, 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, "- name: job\n  "+tc.fn+"\n")
			m := NewModel(s, 1)
			run(m, t0, tc.total, time.Second, tc.readyAt)
			o := m.Observe("job.openfaas-fn")
			got := [4]int{o.CronFires, o.CronRuns, o.CronMissed, o.CronLate}
			if got != tc.want {
				t.Errorf("fires, runs, missed, late = %v, want %v", got, tc.want)
			}
			if o.Rejected429 != tc.want429 {
				t.Errorf("Rejected429 = %v, want %v", o.Rejected429, tc.want429)
			}
			if o.Inflight != tc.inflight {
				t.Errorf("Inflight = %v, want %v", o.Inflight, tc.inflight)
			}
			if got := o.Started - o.Completed200 - o.Rejected429; got != o.Inflight {
				t.Errorf("Started-Completed200-Rejected429 = %v, want Inflight %v", got, o.Inflight)
			}
		})
	}
}

func TestCronAsyncLateWaits(t *testing.T) {
	s := mustParse(t, "- name: job\n  schedule: '*/5 * * * *'\n  cron: {runDuration: 40s, async: true}\n")
	m := NewModel(s, 1)
	run(m, t0, 30*time.Minute, time.Second, func(t time.Time) map[string]int {
		if t.Before(t0.Add(12 * time.Minute)) {
			return nil
		}
		return map[string]int{"job.openfaas-fn": 1}
	})
	h := m.Observe("job.openfaas-fn").AsyncWait
	// maxInflight 10: the three queued runs start together at 12m, after
	// waiting 12m, 7m and 2m; the later three wait 0.
	if h.Count != 6 || h.Max != 12*time.Minute || !near(h.Sum, (12+7+2)*60) {
		t.Fatalf("waits: count %d, max %s, sum %vs; want 6, 12m0s, %v", h.Count, h.Max, h.Sum, (12+7+2)*60)
	}
}

func TestAsyncQueueDrains(t *testing.T) {
	// One batch of 40 jobs of 2s at the start; 1 replica × 4 workers: 10
	// waves, 2 jobs per second, drained after 20s.
	s := mustParse(t, `- name: q
  tier: async
  maxInflight: 4
  async:
    bursts: [{every: 1h, jobs: 40, first: 0s}]
    jobDuration: 2s
`)
	key := "q.openfaas-fn"
	for _, tc := range []struct {
		name string
		dt   time.Duration
	}{
		{"1s steps", time.Second},
		{"250ms steps", 250 * time.Millisecond},
		{"7s steps", 7 * time.Second},
		{"one 30s step", 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModel(s, 1)
			ready := map[string]int{key: 1}
			var at5 Observation
			for tt := t0; tt.Before(t0.Add(28 * time.Second)); tt = tt.Add(tc.dt) {
				m.Step(tt, tc.dt, ready)
				if m.Now().Equal(t0.Add(7 * time.Second)) {
					at5 = m.Observe(key)
				}
			}
			o := m.Observe(key)
			if o.Pending != 0 || o.Completed200 != 40 || o.Inflight != 0 {
				t.Errorf("after 28s: pending %v, completed %v, in flight %v; want 0, 40, 0", o.Pending, o.Completed200, o.Inflight)
			}
			h := o.AsyncWait
			// 4 jobs each wait 0, 2, 4, ... 18s.
			if h.Count != 40 || !near(h.Sum, 4*90) || h.Max != 18*time.Second {
				t.Errorf("waits: count %d, sum %vs, max %s; want 40, 360s, 18s", h.Count, h.Sum, h.Max)
			}
			if h.Counts[0] != 4 { // le=0
				t.Errorf("jobs that did not wait = %d, want 4", h.Counts[0])
			}
			if tc.dt <= time.Second || tc.dt == 7*time.Second {
				// At 7s: waves at 0, 2, 4, 6 started (16 jobs), 3 done.
				if at5.Pending != 24 || at5.Inflight != 4 || at5.Completed200 != 12 {
					t.Errorf("at 7s: pending %v, in flight %v, completed %v; want 24, 4, 12", at5.Pending, at5.Inflight, at5.Completed200)
				}
			}
		})
	}
}

func TestAsyncNoReadyThenScaleUp(t *testing.T) {
	s := mustParse(t, `- name: q
  tier: async
  maxInflight: 2
  async:
    bursts: [{every: 1h, jobs: 8, first: 0s}]
    jobDuration: 10s
`)
	key := "q.openfaas-fn"
	m := NewModel(s, 1)
	run(m, t0, 2*time.Minute, time.Second, func(t time.Time) map[string]int {
		if t.Before(t0.Add(30 * time.Second)) {
			return nil
		}
		return map[string]int{key: 2}
	})
	o := m.Observe(key)
	// From 30s, 4 workers: waves at 30s and 40s.
	if o.Completed200 != 8 || o.AsyncWait.Max != 40*time.Second || !near(o.AsyncWait.Sum, 4*30+4*40) {
		t.Fatalf("completed %v, max wait %s, sum %vs; want 8, 40s, 280s", o.Completed200, o.AsyncWait.Max, o.AsyncWait.Sum)
	}
	if want := t0.Add(50 * time.Second); !o.LastActivity.Equal(want) {
		t.Errorf("LastActivity = %s, want %s", o.LastActivity, want)
	}
}

func TestAsyncPoissonRate(t *testing.T) {
	s := mustParse(t, `- name: q
  tier: async
  maxInflight: 10
  async: {rate: 2, jobDuration: 100ms}
`)
	m := NewModel(s, 42)
	run(m, t0, time.Hour, 10*time.Second, constant(map[string]int{"q.openfaas-fn": 1}))
	o := m.Observe("q.openfaas-fn")
	// 7200 expected; a Poisson count's standard deviation is ~85.
	if o.Offered < 7200-500 || o.Offered > 7200+500 {
		t.Fatalf("arrivals in an hour at 2/s = %v, want about 7200", o.Offered)
	}
}

func TestRateCurve(t *testing.T) {
	s := mustParse(t, `- name: web
  sync:
    rate: 4
    diurnal: {peakRate: 20, peakHour: 14}
    bursts:
      - {at: 2m, for: 1m, rps: 10}
      - {at: "13:30", for: 10m, rps: 100}
`)
	s.TimeZone = "Europe/Berlin"
	s.Start = "2026-07-01T00:00:00"
	m := NewModel(s, 1)
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	origin := time.Date(2026, 7, 1, 0, 0, 0, 0, berlin)
	m.Step(origin, 0, nil)
	at := func(h, mi int) time.Time { return time.Date(2026, 7, 1, h, mi, 0, 0, berlin) }
	for _, tc := range []struct {
		name string
		t    time.Time
		want float64
	}{
		{"peak hour", at(14, 0), 20},
		{"trough twelve hours away", at(2, 0), 4},
		{"quarter day before the peak", at(8, 0), 12},
		{"quarter day after the peak", at(20, 0), 12},
		{"peak in UTC is 12:00", time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), 20},
		{"offset burst active", origin.Add(150 * time.Second), 4 + 8*(1+math.Cos(2*math.Pi*(0+2.5/60-14)/24)) + 10},
		{"offset burst over", origin.Add(3 * time.Minute), 4 + 8*(1+math.Cos(2*math.Pi*(0+3.0/60-14)/24))},
		{"daily burst", at(13, 35), 4 + 8*(1+math.Cos(2*math.Pi*(13+35.0/60-14)/24)) + 100},
		{"daily burst the next day", at(13, 35).AddDate(0, 0, 1), 4 + 8*(1+math.Cos(2*math.Pi*(13+35.0/60-14)/24)) + 100},
		{"daily burst over", at(13, 40), 4 + 8*(1+math.Cos(2*math.Pi*(13+40.0/60-14)/24))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Rate("web.openfaas-fn", tc.t); !near(got, tc.want) {
				t.Errorf("Rate(%s) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestSyncBurstIntegratedExactly(t *testing.T) {
	// A burst that starts and ends mid-step is integrated over its exact
	// overlap: 10 rps for 90s = 900 requests whatever the step.
	s := mustParse(t, "- name: web\n  sync: {bursts: [{at: 25s, for: 90s, rps: 10}]}\n")
	for _, dt := range []time.Duration{time.Second, 7 * time.Second, time.Minute, 10 * time.Minute} {
		m := NewModel(s, 1)
		run(m, t0, 10*time.Minute, dt, constant(map[string]int{"web.openfaas-fn": 5}))
		if o := m.Observe("web.openfaas-fn"); !near(o.Started, 900) || !near(o.Completed200, 900) {
			t.Errorf("step %s: started %v, completed %v; want 900, 900", dt, o.Started, o.Completed200)
		}
	}
}

func TestUsage(t *testing.T) {
	s := mustParse(t, `- name: web
  maxInflight: 10
  limits: {cpu: 500m, memory: 1Gi}
  usage:
    pod: {cpu: 100m, memory: 100Mi}
    perRequest: {cpu: 50m, memory: 10Mi}
  sync: {rate: 40, requestDuration: 500ms}
`)
	key := "web.openfaas-fn"
	for _, tc := range []struct {
		name    string
		ready   int
		rate    float64
		wantCPU float64
		wantMem float64
	}{
		// 40 rps × 0.5s = 20 in flight over 4 pods: 5 each.
		{"spread over four pods", 4, 40, 0.1 + 0.05*5, (100 + 10*5) * (1 << 20)},
		// 20 in flight over 2 pods = 0.6 cores each, throttled at the 0.5 limit.
		{"capped at the CPU limit", 2, 40, 0.5, (100 + 10*10) * (1 << 20)},
		{"idle pod", 1, 0, 0.1, 100 * (1 << 20)},
		{"no Ready pod reports one pod's idle usage", 0, 0, 0.1, 100 * (1 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModel(s, 1)
			if err := m.SetRate(key, tc.rate); err != nil {
				t.Fatal(err)
			}
			run(m, t0, time.Minute, time.Second, constant(map[string]int{key: tc.ready}))
			o := m.Observe(key)
			if !near(o.CPUPerPod, tc.wantCPU) || !near(o.MemoryPerPod, tc.wantMem) {
				t.Errorf("per pod: %v cores, %v bytes; want %v, %v", o.CPUPerPod, o.MemoryPerPod, tc.wantCPU, tc.wantMem)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	s, err := Builtin("mixed-small")
	if err != nil {
		t.Fatal(err)
	}
	observe := func(seed int64) map[string]Observation {
		m := NewModel(s, seed)
		ready := map[string]int{}
		for _, f := range s.Functions {
			ready[f.Key()] = int(*f.InitialReplicas)
		}
		run(m, t0, 30*time.Minute, time.Second, constant(ready))
		out := map[string]Observation{}
		for _, k := range m.Keys() {
			out[k] = m.Observe(k)
		}
		return out
	}
	a, b, c := observe(7), observe(7), observe(8)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different results (-first +second):\n%s", diff)
	}
	if cmp.Equal(a["notify.openfaas-fn"], c["notify.openfaas-fn"]) {
		t.Fatalf("seeds 7 and 8 gave the same Poisson arrivals")
	}
	if cmp.Equal(a["resize.openfaas-fn"].AsyncWait, c["resize.openfaas-fn"].AsyncWait) &&
		a["resize.openfaas-fn"].LastActivity.Equal(c["resize.openfaas-fn"].LastActivity) {
		t.Fatalf("seeds 7 and 8 gave the same burst jitter")
	}
}

func TestEmptyScenario(t *testing.T) {
	s, err := Parse([]byte("apiVersion: tierscaler.io/v1alpha1\nkind: Scenario\nname: empty\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := NewModel(s, 1)
	if m.Err() != nil || len(m.Keys()) != 0 {
		t.Fatalf("Err %v, keys %v; want none", m.Err(), m.Keys())
	}
	run(m, t0, time.Minute, time.Second, constant(map[string]int{"ghost.openfaas-fn": 3}))
	if got := m.Observe("ghost.openfaas-fn"); !cmp.Equal(got, Observation{}) {
		t.Fatalf("Observe of an unknown function = %+v, want zero", got)
	}
	if !m.Now().Equal(t0.Add(time.Minute)) {
		t.Fatalf("Now = %s, want %s", m.Now(), t0.Add(time.Minute))
	}
}

func TestNewModelInvalidScenario(t *testing.T) {
	m := NewModel(&Scenario{Name: "x"}, 1)
	if m.Err() == nil || !strings.Contains(m.Err().Error(), "apiVersion") {
		t.Fatalf("Err = %v, want an apiVersion error", m.Err())
	}
	m.Step(t0, time.Second, nil) // must not panic
	if m := NewModel(nil, 1); m.Err() == nil {
		t.Fatal("NewModel(nil) has no error")
	}
}

func TestControl(t *testing.T) {
	s := mustParse(t, `- name: web
  maxInflight: 1
  sync: {rate: 1, requestDuration: 1s}
- name: job
  schedule: '0 0 1 1 *'
- name: q
  tier: async
`)
	m := NewModel(s, 1)
	for _, tc := range []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"rate on an unknown function", func() error { return m.SetRate("nope.openfaas-fn", 1) }, `unknown function "nope.openfaas-fn"`},
		{"rate on a cron function", func() error { return m.SetRate("job.openfaas-fn", 1) }, "job.openfaas-fn is in the cron tier"},
		{"negative rate", func() error { return m.SetRate("web.openfaas-fn", -1) }, "rate -1"},
		{"NaN rate", func() error { return m.SetRate("web.openfaas-fn", math.NaN()) }, "rate NaN"},
		{"jobs on a sync function", func() error { return m.Enqueue("web.openfaas-fn", 1) }, "web.openfaas-fn is in the sync tier"},
		{"zero jobs", func() error { return m.Enqueue("q.openfaas-fn", 0) }, "job count 0"},
		{"fire an async function", func() error { return m.Fire("q.openfaas-fn") }, "q.openfaas-fn is in the async tier"},
		{"reset rate on async", func() error { return m.ResetRate("q.openfaas-fn") }, "a rate override"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if err := m.SetRate("nope", 1); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("error %v is not ErrUnknownFunction", err)
	}

	ready := map[string]int{"web.openfaas-fn": 1, "job.openfaas-fn": 0, "q.openfaas-fn": 1}
	run(m, t0, 10*time.Second, time.Second, constant(ready))
	if err := m.SetRate("web.openfaas-fn", 11); err != nil {
		t.Fatal(err)
	}
	if err := m.Fire("job.openfaas-fn"); err != nil {
		t.Fatal(err)
	}
	if err := m.Enqueue("q.openfaas-fn", 25); err != nil {
		t.Fatal(err)
	}
	run(m, t0.Add(10*time.Second), time.Second, time.Second, constant(ready))
	web, job, q := m.Observe("web.openfaas-fn"), m.Observe("job.openfaas-fn"), m.Observe("q.openfaas-fn")
	if !near(web.OfferedRate, 11) || !near(web.RejectedRate, 10) || !web.Overridden || web.RateOverride != 11 {
		t.Errorf("override: offered %v/s, rejected %v/s, overridden %v; want 11, 10, true", web.OfferedRate, web.RejectedRate, web.Overridden)
	}
	if job.CronFires != 1 || job.CronMissed != 1 {
		t.Errorf("manual fire with no replica: fires %d, missed %d; want 1, 1", job.CronFires, job.CronMissed)
	}
	if q.Offered != 25 || q.Pending != 15 || q.Inflight != 10 {
		t.Errorf("enqueued: offered %v, pending %v, in flight %v; want 25, 15, 10", q.Offered, q.Pending, q.Inflight)
	}
	if err := m.ResetRate("web.openfaas-fn"); err != nil {
		t.Fatal(err)
	}
	run(m, t0.Add(11*time.Second), time.Second, time.Second, constant(ready))
	if web := m.Observe("web.openfaas-fn"); !near(web.OfferedRate, 1) || web.Overridden {
		t.Errorf("after reset: offered %v/s, overridden %v; want 1, false", web.OfferedRate, web.Overridden)
	}
}

func TestStepsAreContiguous(t *testing.T) {
	s := mustParse(t, "- name: web\n  sync: {rate: 10}\n")
	m := NewModel(s, 1)
	ready := map[string]int{"web.openfaas-fn": 1}
	m.Step(t0, time.Second, ready)
	m.Step(t0, time.Second, ready) // same interval again: nothing new
	m.Step(t0.Add(5*time.Second), time.Second, ready)
	// [1s, 6s) is stepped once: 6 seconds in all.
	if o := m.Observe("web.openfaas-fn"); !near(o.Offered, 60) || !m.Now().Equal(t0.Add(6*time.Second)) {
		t.Fatalf("offered %v by %s; want 60 by %s", o.Offered, m.Now(), t0.Add(6*time.Second))
	}
}

func TestCountersIsObserveWithoutTheHistogram(t *testing.T) {
	s, err := Builtin("mixed-small")
	if err != nil {
		t.Fatal(err)
	}
	m := NewModel(s, 1)
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	ready := map[string]int{}
	for _, k := range m.Keys() {
		ready[k] = 1
	}
	for i := 0; i < 600; i++ {
		m.Step(start.Add(time.Duration(i)*time.Second), time.Second, ready)
	}
	for _, k := range m.Keys() {
		want := m.Observe(k)
		want.AsyncWait = Histogram{}
		if diff := cmp.Diff(want, m.Counters(k)); diff != "" {
			t.Errorf("%s: Counters (-Observe +Counters):\n%s", k, diff)
		}
	}
	if diff := cmp.Diff(Observation{}, m.Counters("nope.openfaas-fn")); diff != "" {
		t.Errorf("unknown function:\n%s", diff)
	}
}

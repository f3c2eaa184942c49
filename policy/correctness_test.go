// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

// The cases of issue 10 (an adversarial review of the engine): each is an
// observed input, named after the behaviour the engine must have.

func limits(milli int64, mem int64) fnOpt {
	return func(f *Function) { f.Limits = Resources{MilliCPU: milli, Memory: mem} }
}

func memStep(ago time.Duration, from, to int32, before int64) fnOpt {
	return func(f *Function) {
		f.MemoryStep = &UsageStep{Resource: UsageMemory, At: t0.Add(-ago), From: from, To: to, Before: float64(before)}
	}
}

func cpuStep(ago time.Duration, from, to int32, before float64) fnOpt {
	return func(f *Function) {
		f.CPUStep = &UsageStep{Resource: UsageCPU, At: t0.Add(-ago), From: from, To: to, Before: before}
	}
}

func TestDecideCorrectness(t *testing.T) {
	noZeroCron := func(p *Policy) { f := false; p.Tiers.Cron.ZeroWhenIdle = &f }
	budget := func(n int) func(*Policy) { return func(p *Policy) { p.Preemption.MaxEvictionsPerCycle = &n } }
	idleAsync := func(name string, opts ...fnOpt) Function {
		// Ran 2m ago: within idleAfter, so not zeroed, but evictable.
		return fn(name, TierAsync, 1, append([]fnOpt{lastRun(2 * time.Minute), lastScale(time.Hour)}, opts...)...)
	}
	cases := []struct {
		name   string
		policy *Policy
		snap   *Snapshot
		want   []string
	}{
		// Item 2.
		{name: "sustained 429s scale up even when Little's law says the replicas suffice",
			// 10 req/s × 0.2s = 2 concurrent fit 1 replica at 70% of 4,
			// yet 2 req/s are refused: capacity is short.
			snap: big(fn("api", TierSync, 1, load(2, 10, 1), duration(0.2))),
			want: []string{"sync api 1->2 scale-up-rejections"}},

		// Item 2b: usage must be justified by load.
		{name: "an idle async function is never scaled up on memory",
			// 481Mi of 512Mi is 94% of the limit: the baseline of a script.
			snap: big(fn("jobs", TierAsync, 1, memUse(481*mi), lastRun(time.Minute), lastScale(time.Hour))),
		},
		{name: "an idle sync function is never scaled up on memory",
			snap: big(fn("api", TierSync, 1, limits(1000, 64*mi), memUse(60*mi), lastScale(time.Hour))),
		},
		{name: "an idle sync function is never scaled up on CPU",
			snap: big(fn("api", TierSync, 1, cpuUse(0.95), lastScale(time.Hour))),
		},
		{name: "a loaded function scales on memory",
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), memUse(480*mi))),
			want: []string{"sync api 2->3 scale-up-memory"}},
		{name: "usage-driven growth is bounded: at most double per cycle",
			// ceil(2 × 4 cores / 0.8) = 10, bounded to 4.
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), cpuUse(4))),
			want: []string{"sync api 2->4 scale-up-cpu"}},
		{name: "after a memory step, the next waits until the new replicas' usage is observed",
			// The new replica is not Ready yet: what it reports is not
			// the usage of a pod carrying load.
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), memUse(480*mi), memStep(30*time.Second, 1, 2, 480*mi),
				func(f *Function) { f.Pods[1].Ready = false; f.ReadyReplicas = 1 })),
		},
		{name: "after a memory step, per-pod usage that did not fall stops memory scaling",
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), memUse(470*mi), lastScale(time.Minute), memStep(time.Minute, 1, 2, 480*mi))),
		},
		{name: "after a memory step, per-pod usage that fell allows the next step",
			// 420Mi < 90% of 480Mi, still above 80% of 512Mi: ceil(2 × 420 / 409.6) = 3.
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), memUse(420*mi), memStep(time.Minute, 1, 2, 480*mi))),
			want: []string{"sync api 2->3 scale-up-memory"}},
		{name: "a memory step does not hold back a CPU step",
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), memUse(470*mi), cpuUse(0.9), memStep(time.Minute, 1, 2, 480*mi))),
			want: []string{"sync api 2->3 scale-up-cpu"}},
		{name: "a CPU step whose usage did not fall stops CPU scaling",
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), cpuUse(0.9), lastScale(time.Minute), cpuStep(time.Minute, 1, 2, 0.9))),
		},
		{name: "an old usage step is forgotten",
			snap: big(fn("api", TierSync, 2, load(0, 5, 1), cpuUse(0.9), cpuStep(2*time.Hour, 1, 2, 0.9))),
			want: []string{"sync api 2->3 scale-up-cpu"}},
		{name: "memory that did not respond to a step does not hold replicas up",
			// 3 pods at 470Mi would 'need' ceil(3 × 470 / 409.6) = 4 by
			// memory; memory did not fall after the last step, so only
			// the 1 request in flight counts.
			snap: big(fn("api", TierSync, 3, inflight(1), memUse(470*mi), lastScale(10*time.Minute), memStep(10*time.Minute, 2, 3, 480*mi))),
			want: []string{"sync api 3->1 scale-down-idle"}},

		// Item 3: eviction sets.
		{name: "two idle functions that fill a node are evicted together for a claim neither frees alone",
			snap: cluster(1, 1000, 4*gib,
				idleAsync("a1", requests(500, 256*mi)),
				idleAsync("a2", requests(500, 256*mi)),
				fn("big", TierSync, 0, requests(1000, 256*mi))),
			want: []string{
				"async a1 1->0 evict-for-capacity for big.openfaas-fn",
				"async a2 1->0 evict-for-capacity for big.openfaas-fn",
				"sync big 0->1 scale-up-min",
			}},
		{name: "an older candidate that helps only with a later one is evicted with it, in tier order",
			// n1 holds c-old (cron) and a-new (async): together they free
			// a 1-CPU slot. n2 holds c-new (cron) beside a busy sync pod.
			policy: testPolicy(noZeroCron),
			snap: cluster(2, 1000, 4*gib,
				fn("c-old", TierCron, 1, schedule("0 3 * * *"), lastRun(5*time.Hour), lastScale(5*time.Hour), on("n1")),
				idleAsync("a-new", on("n1")),
				fn("c-new", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Hour), lastScale(time.Hour), on("n2")),
				fn("web", TierSync, 1, inflight(4), on("n2")),
				fn("big", TierSync, 0, requests(1000, 256*mi))),
			want: []string{
				"cron c-old 1->0 evict-for-capacity for big.openfaas-fn",
				"async a-new 1->0 evict-for-capacity for big.openfaas-fn",
				"sync big 0->1 scale-up-min",
			}},
		{name: "as few evictions as possible: a candidate the claim turns out not to need is kept",
			// c1 (oldest) alone frees half of n1; c2 frees all of n2.
			policy: testPolicy(noZeroCron),
			snap: cluster(2, 1000, 4*gib,
				fn("c1", TierCron, 1, schedule("0 3 * * *"), lastRun(5*time.Hour), lastScale(5*time.Hour), on("n1")),
				fn("web", TierSync, 1, inflight(4), on("n1")),
				fn("c2", TierCron, 1, schedule("0 3 * * *"), requests(1000, 256*mi), lastRun(time.Hour), lastScale(time.Hour), on("n2")),
				fn("big", TierSync, 0, requests(1000, 256*mi))),
			want: []string{
				"cron c2 1->0 evict-for-capacity for big.openfaas-fn",
				"sync big 0->1 scale-up-min",
			}},
		{name: "an eviction set larger than the budget is a budget shortfall",
			snap: func() *Snapshot {
				return cluster(1, 1000, 4*gib,
					idleAsync("a1", requests(500, 256*mi)),
					idleAsync("a2", requests(500, 256*mi)),
					fn("big", TierSync, 0, requests(1000, 256*mi)))
			}(),
			policy: testPolicy(budget(1)),
			want:   []string{"shortfall sync big eviction-budget-exhausted cpu=1000m mem=256Mi pods=1"}},

		{name: "a budget beyond every bound, set in code without Validate, neither panics nor evicts more than needed",
			// Item 12: the file refuses it, but Decide must not trust that
			// (it used to make a slice of the budget's size).
			snap: func() *Snapshot {
				return cluster(1, 1000, 4*gib,
					idleAsync("a1", requests(500, 256*mi)),
					idleAsync("a2", requests(500, 256*mi)),
					fn("big", TierSync, 0, requests(500, 256*mi)))
			}(),
			policy: testPolicy(budget(math.MaxInt)),
			want: []string{
				"async a1 1->0 evict-for-capacity for big.openfaas-fn",
				"sync big 0->1 scale-up-min",
			}},

		// Item 4.
		{name: "no eviction for quota when the nodes would still have no room",
			snap: func() *Snapshot {
				s := cluster(1, 1000, 4*gib,
					fn("web", TierSync, 1, inflight(4), on("n1")),
					idleAsync("jobs", requests(50, 64*mi), on("n1")),
					fn("api", TierSync, 0))
				s.Nodes[0].Requested.MilliCPU = 950 // 50m left beside web and jobs
				s.Quotas = map[string]Resources{ns: {MilliCPU: 0, Memory: Unlimited, Pods: Unlimited}}
				return s
			}(),
			want: []string{"shortfall sync api quota-exceeded cpu=500m mem=256Mi pods=1"}},

		// Item 5.
		{name: "a function scaled down by its tier rule and evicted gets one action",
			snap: cluster(1, 2000, 4*gib,
				fn("jobs", TierAsync, 3, lastRun(time.Minute), lastScale(time.Hour), on("n1")),
				fn("web", TierSync, 1, inflight(4), on("n1")),
				fn("big", TierSync, 0, requests(1500, 256*mi))),
			want: []string{
				"async jobs 3->0 evict-for-capacity for big.openfaas-fn",
				"sync big 0->1 scale-up-min",
			}},

		// Item 6.
		{name: "the pending pods of a held function never cause an eviction",
			snap: func() *Snapshot {
				s := cluster(1, 1000, 4*gib,
					idleAsync("jobs", on("n1")),
					fn("web", TierSync, 1, inflight(4), on("n1")),
					fn("bad", TierSync, 1, hold(), on("n9")))
				s.Functions[2].Replicas, s.Functions[2].PendingPods = 2, 1
				return s
			}(),
			want: []string{"shortfall sync bad insufficient-capacity cpu=500m mem=256Mi pods=1"}},

		// Item 7.
		{name: "an async function still active from an activation request is not evicted",
			// Requested 3m ago: past the 2m activation timeout, within the
			// 5m idleAfter that would activate it again at once.
			snap: cluster(1, 1000, 4*gib,
				fn("jobs", TierAsync, 1, requested(3*time.Minute), lastRun(time.Hour), lastScale(time.Hour), on("n1")),
				fn("web", TierSync, 1, inflight(4), on("n1")),
				fn("api", TierSync, 0)),
			want: []string{"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1"}},

		// Item 8.
		{name: "a cron function whose schedule never fires is left alone and evicts nothing",
			snap: cluster(1, 1000, 4*gib,
				fn("never", TierCron, 0, func(f *Function) { f.Schedule, f.ScheduleSpec = neverSchedule{}, "0 0 30 2 *" }),
				idleAsync("jobs", on("n1")),
				fn("web", TierSync, 1, inflight(4), on("n1"))),
		},

		// Item 10.
		{name: "async scale-down keeps what its queued work needs",
			snap: big(fn("jobs", TierAsync, 4, pending(35), inflight(4), lastRun(time.Second), lastScale(10*time.Minute))),
		},
		{name: "cron scale-down keeps what its queued work needs",
			snap: big(fn("report", TierCron, 4, schedule("0 3 * * *"), pending(35), inflight(4), lastRun(time.Second), lastScale(10*time.Minute))),
		},

		// Item 11.
		{name: "sync below its minimum is raised to its demand when that is larger",
			snap: big(fn("api", TierSync, 1, load(10, 20, 8), bounded(2, 20))),
			want: []string{"sync api 1->6 scale-up-rejections"}},
		{name: "async below its minimum is raised to its queued work when that is larger",
			snap: big(fn("jobs", TierAsync, 1, pending(100), bounded(2, 20), lastRun(time.Second))),
			want: []string{"async jobs 1->10 scale-up-pending"}},
		{name: "a function below its minimum with no demand is raised to its minimum",
			snap: big(fn("jobs", TierAsync, 1, pending(5), bounded(2, 20), lastRun(time.Second))),
			want: []string{"async jobs 1->2 scale-up-min"}},

		// Item 22.
		{name: "an idle sync function with min 0 is never zeroed",
			snap: big(fn("api", TierSync, 1, bounded(0, 20), lastRun(24*time.Hour), lastScale(24*time.Hour))),
		},
		{name: "an idle sync function with min 0 scales down to 1, not 0",
			snap: big(fn("api", TierSync, 3, bounded(0, 20), lastRun(24*time.Hour), lastScale(24*time.Hour))),
			want: []string{"sync api 3->1 scale-down-idle"}},
		{name: "a sync function with min 0 at zero comes back to 1",
			snap: big(fn("api", TierSync, 0, bounded(0, 20))),
			want: []string{"sync api 0->1 scale-up-min"}},

		// Item 23: unknown metrics of active functions.
		{name: "an active async function with unknown in-flight is not zeroed",
			snap: big(fn("jobs", TierAsync, 1, lastRun(time.Hour), lastScale(time.Hour), func(f *Function) { f.Inflight = Unknown })),
		},
		{name: "an active async function with unknown pending is not zeroed",
			snap: big(fn("jobs", TierAsync, 1, lastRun(time.Hour), lastScale(time.Hour), func(f *Function) { f.Pending = Unknown })),
		},
		{name: "an active async function with unknown in-flight is not evicted",
			snap: cluster(1, 1000, 4*gib,
				fn("jobs", TierAsync, 1, lastRun(time.Minute), lastScale(time.Hour), on("n1"), func(f *Function) { f.Inflight = Unknown }),
				fn("web", TierSync, 1, inflight(4), on("n1")),
				fn("api", TierSync, 0)),
			want: []string{"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1"}},
		{name: "a sync function with unknown in-flight is not scaled down",
			snap: big(fn("api", TierSync, 4, lastScale(time.Hour), func(f *Function) { f.Inflight = Unknown })),
		},
		{name: "a sync function with unknown rejections is not scaled down",
			snap: big(fn("api", TierSync, 4, lastScale(time.Hour), func(f *Function) { f.Rejections = Unknown })),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if p == nil {
				p = testPolicy()
			}
			got := summary(Decide(tc.snap, p, t0))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s\ngot:\n%s", diff, join(got))
			}
		})
	}
}

// neverSchedule is a schedule with no next fire time, as robfig/cron
// returns for "0 0 30 2 *".
type neverSchedule struct{}

func (neverSchedule) Next(time.Time) time.Time { return time.Time{} }

// Item 5: at most one action per function, and the eviction does not
// release the room of the scale-down a second time.
func TestDecideOneActionPerFunction(t *testing.T) {
	s := cluster(1, 2000, 4*gib,
		fn("jobs", TierAsync, 3, lastRun(time.Minute), lastScale(time.Hour), on("n1")),
		fn("web", TierSync, 1, inflight(4), on("n1")),
		// Two claims: big takes the 1500m jobs frees with the 500m free;
		// more must find nothing left.
		fn("big", TierSync, 0, requests(1500, 256*mi)),
		fn("more", TierSync, 0, requests(500, 256*mi)))
	plan := Decide(s, testPolicy(), t0)
	seen := map[string]bool{}
	for _, a := range plan.Actions {
		require.False(t, seen[a.Key()], "two actions for %s: %v", a.Key(), summary(plan))
		seen[a.Key()] = true
	}
	require.Equal(t, []string{
		"async jobs 3->0 evict-for-capacity for big.openfaas-fn",
		"sync big 0->1 scale-up-min",
		"shortfall sync more insufficient-capacity cpu=500m mem=256Mi pods=1",
	}, summary(plan))
}

// Item 13: a shortfall names the rule that blocked it.
func TestDecideShortfallNamesTheCause(t *testing.T) {
	budget := func(n int) func(*Policy) { return func(p *Policy) { p.Preemption.MaxEvictionsPerCycle = &n } }
	t.Run("no candidate could help is not a spent budget", func(t *testing.T) {
		// The only idle function sits on a node where its room cannot
		// hold the claim, and the budget is 0.
		s := cluster(2, 1000, 4*gib,
			fn("web", TierSync, 1, inflight(4), on("n1")),
			fn("jobs", TierAsync, 1, requests(100, 64*mi), lastRun(time.Minute), lastScale(time.Hour), on("n1")),
			fn("web2", TierSync, 2, inflight(4), on("n2")),
			fn("big", TierSync, 0, requests(1000, 256*mi)))
		plan := Decide(s, testPolicy(budget(0)), t0)
		require.Len(t, plan.Shortfalls, 1)
		require.Equal(t, ShortfallCapacity, plan.Shortfalls[0].Reason, plan.Shortfalls[0].Message)
	})
	t.Run("an idle function protected by minResidency is named with its rule and time", func(t *testing.T) {
		s := cluster(1, 1000, 4*gib,
			fn("batch-export", TierAsync, 1, lastRun(time.Hour), lastScale(time.Minute+23*time.Second), on("n1")),
			fn("web", TierSync, 1, inflight(4), on("n1")),
			fn("api", TierSync, 0))
		plan := Decide(s, testPolicy(), t0)
		require.Len(t, plan.Shortfalls, 1)
		sf := plan.Shortfalls[0]
		require.Equal(t, ShortfallCapacity, sf.Reason)
		// Scaled at 11:58:37, resident for 5m: protected until 12:03:37.
		require.Contains(t, sf.Message, "batch-export.openfaas-fn is idle but protected by minResidency until 2026-11-24T12:03:37Z")
		require.NotContains(t, sf.Message, "no idle function's room would help")
	})
	t.Run("an activation for work in flight says so", func(t *testing.T) {
		plan := Decide(big(fn("jobs", TierAsync, 0, inflight(2), func(f *Function) { f.Pending = Unknown })), testPolicy(), t0)
		require.Len(t, plan.Actions, 1)
		require.Equal(t, "2 invocations in flight", plan.Actions[0].Explanation)
	})
	t.Run("an activation for queued work says so", func(t *testing.T) {
		plan := Decide(big(fn("jobs", TierAsync, 0, pending(25))), testPolicy(), t0)
		require.Len(t, plan.Actions, 1)
		require.True(t, strings.HasPrefix(plan.Actions[0].Explanation, "25 messages pending"), plan.Actions[0].Explanation)
	})
}

// Item 8 and 9: schedules tierscaler cannot model are invalid metadata.
func TestParseMetaRefusesSchedulesItCannotModel(t *testing.T) {
	p := testPolicy()
	for _, tc := range []struct{ spec, want string }{
		{"0 0 30 2 *", "never fires"},
		{"0 0 31 4,6,9,11 *", "never fires"},
		{"@every 5m", "@every"},
		{"@every 1h30m", "@every"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := p.ParseMeta(nil, map[string]string{"topic": "cron-function", "schedule": tc.spec}, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
	for _, ok := range []string{"0 0 29 2 *", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "*/5 * * * *"} {
		t.Run(ok, func(t *testing.T) {
			_, err := p.ParseMeta(nil, map[string]string{"topic": "cron-function", "schedule": ok}, nil)
			require.NoError(t, err)
		})
	}
}

// Item 12: numbers are bounded and defaultTier cannot be cron.
func TestValidateBounds(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"huge eviction budget", "preemption:\n  maxEvictionsPerCycle: 9223372036854775807\n", "preemption.maxEvictionsPerCycle: must be at most"},
		{"default tier cron", "defaultTier: cron\n", "defaultTier: must be sync or async"},
		{"1ns scale-down window", "tiers:\n  sync:\n    scaleDownWindow: 1ns\n", "tiers.sync.scaleDownWindow: must be at least"},
		{"1ns residency", "preemption:\n  minResidency: 1ns\n", "preemption.minResidency: must be at least"},
		{"1ns idleAfter", "tiers:\n  async:\n    idleAfter: 1ns\n", "tiers.async.idleAfter: must be at least"},
		{"1ns grace", "tiers:\n  cron:\n    gracePeriod: 1ns\n", "tiers.cron.gracePeriod: must be at least"},
		{"a year of lookahead", "tiers:\n  cron:\n    lookahead: 8760h\n", "tiers.cron.lookahead: must be at most"},
		{"huge pending per replica", "tiers:\n  async:\n    pendingPerReplica: 2000000000\n", "tiers.async.pendingPerReplica: must be at most"},
		{"a day-long interval", "interval: 24h\n", "interval: must be at most"},
		{"huge rejection rate", "thresholds:\n  rejectionRate: 1e300\n", "thresholds.rejectionRate: must be at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(header + tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDecideOpenFaaSCE(t *testing.T) {
	ce := func(p *Policy) { p.OpenFaaS.Edition = EditionCE }
	cases := []struct {
		name string
		snap *Snapshot
		want []string
	}{
		{name: "an idle cron function is not zeroed on CE (its provider puts 0 back to 1)",
			snap: big(fn("report", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Hour), lastScale(time.Hour)))},
		{name: "an idle async function is not zeroed on CE",
			snap: big(fn("jobs", TierAsync, 1, lastRun(time.Hour), lastScale(time.Hour)))},
		{name: "scale-up stops at CE's 5 replicas",
			snap: big(fn("api", TierSync, 2, load(10, 40, 16))),
			want: []string{"sync api 2->5 scale-up-rejections"}},
		{name: "a function above 5 comes down to 5 on CE",
			snap: big(fn("api", TierSync, 7, inflight(20), lastScale(time.Minute))),
			want: []string{"sync api 7->5 scale-down-max"}},
		{name: "nothing is evicted on CE",
			snap: cluster(1, 1000, 4*gib,
				fn("jobs", TierAsync, 1, lastRun(2*time.Minute), lastScale(time.Hour), on("n1")),
				fn("web", TierSync, 1, inflight(4), on("n1")),
				fn("api", TierSync, 0)),
			want: []string{"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(Decide(tc.snap, testPolicy(ce), t0))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideUsageSignalsOff(t *testing.T) {
	off := func(p *Policy) { f := false; p.Signals.CPU, p.Signals.Memory = &f, &f }
	// Loaded and hot: with the signals on it scales up on CPU.
	hot := big(fn("api", TierSync, 2, load(0, 5, 1), cpuUse(0.9), lastScale(time.Minute)))
	require.Equal(t, []string{"sync api 2->3 scale-up-cpu"}, summary(Decide(hot, testPolicy(), t0)))
	require.Empty(t, summary(Decide(hot, testPolicy(off), t0)))
	// Without cadvisor every pod's usage is unknown: that blocks scale-down
	// unless the signals are off.
	idle := big(fn("api", TierSync, 4, inflight(1), lastScale(time.Hour), func(f *Function) {
		for i := range f.Pods {
			f.Pods[i].CPU, f.Pods[i].Memory = Unknown, Unknown
		}
	}))
	require.Empty(t, summary(Decide(idle, testPolicy(), t0)))
	require.Equal(t, []string{"sync api 4->1 scale-down-idle"}, summary(Decide(idle, testPolicy(off), t0)))
}

func TestParseHTTPConfigs(t *testing.T) {
	t.Run("Prometheus' http_config, strictly", func(t *testing.T) {
		p, err := Parse([]byte(header + `prometheus:
  httpConfig:
    basic_auth: {username: tierscaler, password_file: /etc/tierscaler/password}
    tls_config: {ca_file: /etc/tierscaler/ca.crt, server_name: prometheus.monitoring}
    http_headers: {X-Scope-OrgID: {values: [team-a]}}
alertmanager:
  httpConfig:
    authorization: {credentials_file: /etc/tierscaler/am-token}
`))
		require.NoError(t, err)
		require.Equal(t, "/etc/tierscaler/password", p.Prometheus.HTTPConfig.BasicAuth.PasswordFile)
		require.Equal(t, "prometheus.monitoring", p.Prometheus.HTTPConfig.TLSConfig.ServerName)
		require.Equal(t, []string{"team-a"}, p.Prometheus.HTTPConfig.HTTPHeaders.Headers["X-Scope-OrgID"].Values)
		require.Equal(t, "Bearer", p.Alertmanager.HTTPConfig.Authorization.Type)
		require.True(t, p.Prometheus.HTTPConfig.FollowRedirects, "Prometheus' defaults apply")
	})
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "prometheus:\n  httpConfig:\n    basic_auht: {}\n", "prometheus.httpConfig: line 1: field basic_auht not found"},
		{"inline password", "prometheus:\n  httpConfig:\n    basic_auth: {username: u, password: hunter2}\n", "prometheus.httpConfig.basic_auth.password: the policy file never holds secrets: write it to a file and set password_file"},
		{"inline bearer token", "alertmanager:\n  httpConfig:\n    authorization: {credentials: abc}\n", "alertmanager.httpConfig.authorization.credentials: the policy file never holds secrets"},
		{"inline TLS key", "prometheus:\n  httpConfig:\n    tls_config: {cert_file: c.crt, key: xyz}\n", "prometheus.httpConfig.tls_config.key: the policy file never holds secrets"},
		{"two credentials", "prometheus:\n  httpConfig:\n    basic_auth: {username: u, password_file: p}\n    authorization: {credentials_file: t}\n", "prometheus.httpConfig: at most one of basic_auth, oauth2 & authorization must be configured"},
		{"unknown edition", "openfaas:\n  edition: enterprise\n", `openfaas.edition: must be "pro"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(header + tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("relative files are relative to the policy file", func(t *testing.T) {
		dir := t.TempDir()
		path := dir + "/policy.yaml"
		require.NoError(t, os.WriteFile(path, []byte(header+"prometheus:\n  httpConfig:\n    basic_auth: {username: u, password_file: secrets/password}\n"), 0o600))
		p, err := Load(path)
		require.NoError(t, err)
		require.Equal(t, dir+"/secrets/password", p.Prometheus.HTTPConfig.BasicAuth.PasswordFile)
	})
}

// The fast path (issue 13) only adds: scale-ups, activations and prewarms
// that fit without evicting anything.
func TestDecideFastPath(t *testing.T) {
	fast := func(s *Snapshot) *Snapshot { s.Fast = true; return s }
	cases := []struct {
		name string
		snap *Snapshot
		want []string
	}{
		{name: "a burst of 429s is scaled up",
			snap: fast(big(fn("api", TierSync, 2, load(10, 20, 8)))),
			want: []string{"sync api 2->6 scale-up-rejections"}},
		{name: "queued work activates an async function",
			snap: fast(big(fn("jobs", TierAsync, 0, pending(25)))),
			want: []string{"async jobs 0->3 activate-async", "check activation jobs 2026-11-24T12:02:00Z"}},
		{name: "nothing is scaled down",
			snap: fast(big(fn("api", TierSync, 5, inflight(2), lastScale(10*time.Minute))))},
		{name: "nothing is zeroed",
			snap: fast(big(fn("jobs", TierAsync, 1, lastRun(10*time.Minute), lastScale(10*time.Minute))))},
		{name: "nothing is evicted: what does not fit waits for the full cycle",
			snap: fast(cluster(1, 1000, 4*gib,
				fn("jobs", TierAsync, 1, lastRun(2*time.Minute), lastScale(time.Hour), on("n1")),
				fn("web", TierSync, 1, inflight(4), on("n1")),
				fn("api", TierSync, 0))),
			want: []string{"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(Decide(tc.snap, testPolicy(), t0))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"
)

// big is a cluster with room to spare for the tier-rule cases.
func big(fns ...Function) *Snapshot { return cluster(4, 4000, 8*gib, fns...) }

func TestDecideTierRules(t *testing.T) {
	noZeroCron := func(p *Policy) { f := false; p.Tiers.Cron.ZeroWhenIdle = &f }
	cases := []struct {
		name   string
		policy *Policy
		snap   *Snapshot
		want   []string
	}{
		{name: "empty input", snap: &Snapshot{MetricsAvailable: true}},
		{name: "empty cluster with functions but no nodes: sync at zero is a shortfall",
			snap: cluster(0, 0, 0, fn("api", TierSync, 0)),
			want: []string{"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1"}},

		// Sync scale-up.
		{name: "sync 429s scale to the offered load at target utilisation, not +1",
			// 8 in flight while 10 of 20 req/s are refused: 16 offered,
			// at 70% of max_inflight 4 that is ceil(16/2.8) = 6.
			snap: big(fn("api", TierSync, 2, load(10, 20, 8))),
			want: []string{"sync api 2->6 scale-up-rejections"}},
		{name: "sync 429s with a known duration use Little's law: offered rate × duration",
			// 20 req/s offered × 0.5s = 10 concurrent; ceil(10 / 2.8) = 4,
			// whatever the in-flight figure says.
			snap: big(fn("api", TierSync, 2, load(10, 20, 8), duration(0.5))),
			want: []string{"sync api 2->4 scale-up-rejections"}},
		{name: "sync scales up on offered concurrency before any 429",
			// 20 req/s × 0.5s = 10 concurrent requests; at 70% of 4 per
			// replica that is ceil(10 / 2.8) = 4 replicas.
			snap: big(fn("api", TierSync, 2, load(0, 20, 7), duration(0.5))),
			want: []string{"sync api 2->4 scale-up-concurrency"}},
		{name: "offered concurrency within the target changes nothing",
			snap: big(fn("api", TierSync, 4, load(0, 20, 7), duration(0.5), lastScale(time.Minute))),
		},
		{name: "sync scale-down keeps what the offered rate × duration needs",
			snap: big(fn("api", TierSync, 5, load(0, 20, 1), duration(0.5), lastScale(10*time.Minute))),
			want: []string{"sync api 5->4 scale-down-idle"}},
		{name: "sync 429s below the threshold change nothing",
			snap: big(fn("api", TierSync, 2, load(0.05, 20, 3))),
		},
		{name: "sync 429s without an in-flight figure grow by offered/accepted",
			snap: big(fn("api", TierSync, 2, load(10, 20, 0))),
			want: []string{"sync api 2->4 scale-up-rejections"}},
		{name: "sync 429s with nothing accepted double",
			snap: big(fn("api", TierSync, 3, load(10, 10, 0))),
			want: []string{"sync api 3->6 scale-up-rejections"}},
		{name: "429s while replicas asked for earlier are still starting ask for nothing more",
			// 2 of 6 replicas Ready refuse half of 20 req/s: the offered 16
			// concurrent requests need the 6 already asked for.
			snap: big(fn("api", TierSync, 6, load(10, 20, 8), func(f *Function) { f.ReadyReplicas = 2; f.Pods = f.Pods[:2] }, lastScale(time.Minute))),
		},
		{name: "429s with no Ready replica wait for the starting ones",
			snap: big(fn("api", TierSync, 2, load(10, 10, 0), func(f *Function) { f.ReadyReplicas = 0; f.Pods = nil }, lastScale(time.Minute))),
		},
		{name: "CPU is judged on the pods that carry the load",
			// 2 pods report 0.9 cores of 1: ceil(2 × 0.9 / 0.8) = 3 ≤ 5 asked for.
			snap: big(fn("api", TierSync, 5, cpuUse(0.9), load(0, 5, 1), func(f *Function) { f.ReadyReplicas = 2; f.Pods = f.Pods[:2] }, lastScale(time.Minute))),
		},
		{name: "sync CPU above 80% of the limit under load scales proportionally",
			// ceil(2 × 0.9 / (0.8 × 1)) = 3
			snap: big(fn("api", TierSync, 2, cpuUse(0.9), load(0, 5, 1))),
			want: []string{"sync api 2->3 scale-up-cpu"}},
		{name: "sync memory above 80% of the limit under load scales proportionally",
			// ceil(2 × 480Mi / (0.8 × 512Mi)) = 3
			snap: big(fn("api", TierSync, 2, memUse(480*mi), load(0, 5, 1))),
			want: []string{"sync api 2->3 scale-up-memory"}},
		{name: "the largest signal wins",
			snap: big(fn("api", TierSync, 2, load(10, 20, 8), cpuUse(0.9))),
			want: []string{"sync api 2->6 scale-up-rejections"}},
		{name: "scale-up is bounded by max",
			snap: big(fn("api", TierSync, 2, load(10, 20, 8), bounded(1, 4))),
			want: []string{"sync api 2->4 scale-up-rejections"}},
		{name: "unknown metrics give no scale-up signal",
			snap: big(fn("api", TierSync, 2, unknownMetrics())),
		},

		// Sync scale-down.
		{name: "sync scales down to demand after the stabilisation window",
			snap: big(fn("api", TierSync, 5, inflight(2), lastScale(10*time.Minute))),
			want: []string{"sync api 5->1 scale-down-idle"}},
		{name: "sync scale-down keeps min",
			snap: big(fn("api", TierSync, 5, inflight(2), bounded(2, 20), lastScale(10*time.Minute))),
			want: []string{"sync api 5->2 scale-down-idle"}},
		{name: "sync scale-down keeps enough replicas for CPU",
			// 5 × 0.3 cores = 1.5 cores need ceil(1.5/0.8) = 2 replicas.
			snap: big(fn("api", TierSync, 5, inflight(1), cpuUse(0.3), lastScale(10*time.Minute))),
			want: []string{"sync api 5->2 scale-down-idle"}},
		{name: "no sync scale-down within the stabilisation window",
			snap: big(fn("api", TierSync, 5, inflight(2), lastScale(2*time.Minute))),
		},
		{name: "no sync scale-down when a pod's usage is unknown",
			snap: big(fn("api", TierSync, 5, inflight(2), lastScale(10*time.Minute), func(f *Function) { f.Pods[0].CPU = Unknown })),
		},
		{name: "sync above max comes down to max",
			snap: big(fn("api", TierSync, 5, bounded(1, 3), lastScale(time.Minute))),
			want: []string{"sync api 5->3 scale-down-max"}},
		{name: "an idle sync function is never zeroed",
			snap: big(fn("api", TierSync, 1, lastRun(24*time.Hour), lastScale(24*time.Hour))),
		},
		{name: "a sync function at zero comes back to max(1, min)",
			snap: big(fn("api", TierSync, 0, bounded(2, 20))),
			want: []string{"sync api 0->2 scale-up-min"}},

		// Cron.
		{name: "cron at zero is prewarmed when its fire time is within the lead",
			// lead = startup 30s + margin 30s + interval 15s = 75s; fires in 60s.
			snap: big(fn("report", TierCron, 0, schedule("1 12 * * *"))),
			want: []string{"cron report 0->1 prewarm-cron", "check prewarm report 2026-11-24T12:01:00Z"}},
		{name: "cron prewarm honours min",
			snap: big(fn("report", TierCron, 0, schedule("1 12 * * *"), bounded(2, 5))),
			want: []string{"cron report 0->2 prewarm-cron", "check prewarm report 2026-11-24T12:01:00Z"}},
		{name: "a long startup time prewarms earlier",
			snap: big(fn("report", TierCron, 0, schedule("8 12 * * *"), func(f *Function) { f.StartupTime = 10 * time.Minute })),
			want: []string{"cron report 0->1 prewarm-cron", "check prewarm report 2026-11-24T12:08:00Z"}},
		{name: "cron due within the lookahead but beyond the lead waits at zero",
			snap: big(fn("report", TierCron, 0, schedule("5 12 * * *"))),
		},
		{name: "an already warm cron function within the lead gets only its check",
			snap: big(fn("report", TierCron, 1, schedule("1 12 * * *"))),
			want: []string{"check prewarm report 2026-11-24T12:01:00Z"}},
		{name: "a due cron function is not zeroed",
			snap: big(fn("report", TierCron, 1, schedule("5 12 * * *"), lastRun(time.Hour))),
		},
		{name: "an idle cron function returns to zero",
			snap: big(fn("report", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Hour))),
			want: []string{"cron report 1->0 zero-idle"}},
		{name: "cron within its grace period after the last run is kept",
			snap: big(fn("report", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Minute))),
		},
		{name: "cron that fired within the grace period is kept even before a run is seen",
			snap: big(fn("report", TierCron, 1, schedule("59 11 * * *"))),
		},
		{name: "a running cron function is kept",
			snap: big(fn("report", TierCron, 1, schedule("0 3 * * *"), inflight(1), lastRun(time.Hour))),
		},
		{name: "cron with queued work at zero is started",
			snap: big(fn("report", TierCron, 0, schedule("0 3 * * *"), pending(1))),
			want: []string{"cron report 0->1 prewarm-cron"}},
		{name: "cron with unknown in-flight is kept",
			snap: big(fn("report", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Hour), unknownMetrics())),
		},
		{name: "zeroWhenIdle false keeps an idle cron function",
			policy: testPolicy(noZeroCron),
			snap:   big(fn("report", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Hour))),
		},

		// Async.
		{name: "async at zero is activated by pending work, sized by pending per replica",
			snap: big(fn("jobs", TierAsync, 0, pending(25))),
			want: []string{"async jobs 0->3 activate-async", "check activation jobs 2026-11-24T12:02:00Z"}},
		{name: "async at zero is activated by a fresh activation request",
			snap: big(fn("jobs", TierAsync, 0, requested(10*time.Second))),
			want: []string{"async jobs 0->1 activate-async", "check activation jobs 2026-11-24T12:02:00Z"}},
		{name: "an old activation request does nothing",
			snap: big(fn("jobs", TierAsync, 0, requested(10*time.Minute))),
		},
		{name: "async at zero with unknown pending stays at zero",
			snap: big(fn("jobs", TierAsync, 0, unknownMetrics())),
		},
		{name: "async scales up on pending work per replica",
			snap: big(fn("jobs", TierAsync, 1, pending(35), lastRun(time.Second))),
			want: []string{"async jobs 1->4 scale-up-pending"}},
		{name: "idle async goes to zero after the idle period",
			snap: big(fn("jobs", TierAsync, 1, lastRun(10*time.Minute), lastScale(10*time.Minute))),
			want: []string{"async jobs 1->0 zero-idle"}},
		{name: "async idle for less than the idle period is kept",
			snap: big(fn("jobs", TierAsync, 1, lastRun(2*time.Minute), lastScale(10*time.Minute))),
		},
		{name: "async scaled less than the idle period ago is kept",
			snap: big(fn("jobs", TierAsync, 1, lastRun(10*time.Minute), lastScale(time.Minute))),
		},
		{name: "async with work in flight is never zeroed",
			snap: big(fn("jobs", TierAsync, 1, inflight(2), lastRun(10*time.Minute), lastScale(10*time.Minute))),
		},
		{name: "async with pending work is never zeroed",
			snap: big(fn("jobs", TierAsync, 1, pending(3), lastRun(10*time.Minute), lastScale(10*time.Minute))),
		},

		// Holds.
		{name: "a held function is left alone",
			snap: big(fn("api", TierSync, 0, hold()), fn("jobs", TierAsync, 1, hold(), lastRun(time.Hour), lastScale(time.Hour))),
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
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

// seed builds the seed scenario: two full 2-CPU nodes. api (sync) bursts;
// web (sync) is busy; two idle cron and two idle async functions hold the
// rest.
func seed(mods map[string]fnOpt) *Snapshot {
	opt := func(name string) fnOpt {
		if m, ok := mods[name]; ok {
			return m
		}
		return func(*Function) {}
	}
	return cluster(2, 2000, 4*gib,
		// 6 in flight while half the 20 req/s are refused: 12 offered need
		// ceil(12/2.8) = 5 replicas, a claim of 3 pods of 500m.
		fn("api", TierSync, 2, load(10, 20, 6), on("n1"), opt("api")),
		fn("web", TierSync, 2, inflight(4), on("n2"), opt("web")),
		fn("cron-old", TierCron, 1, schedule("0 3 * * *"), lastRun(3*time.Hour), lastScale(3*time.Hour), on("n1"), opt("cron-old")),
		fn("cron-new", TierCron, 1, schedule("0 4 * * *"), lastRun(time.Hour), lastScale(time.Hour), on("n2"), opt("cron-new")),
		fn("async-a", TierAsync, 1, lastRun(3*time.Minute), lastScale(time.Hour), on("n1"), opt("async-a")),
		fn("async-b", TierAsync, 1, lastRun(time.Minute), lastScale(time.Hour), on("n2"), opt("async-b")),
	)
}

func TestDecidePreemption(t *testing.T) {
	noZeroCron := func(p *Policy) { f := false; p.Tiers.Cron.ZeroWhenIdle = &f }
	budget := func(n int) func(*Policy) { return func(p *Policy) { p.Preemption.MaxEvictionsPerCycle = &n } }
	cases := []struct {
		name   string
		policy *Policy
		snap   *Snapshot
		want   []string
	}{
		{name: "seed: a sync burst evicts the idle cron with the oldest last run first, then idle async, never sync",
			policy: testPolicy(noZeroCron),
			snap:   seed(nil),
			want: []string{
				"cron cron-old 1->0 evict-for-capacity for api.openfaas-fn",
				"cron cron-new 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-a 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->5 scale-up-rejections",
			}},
		{name: "seed with zeroWhenIdle: idle crons go to zero anyway and their room is used first",
			snap: seed(nil),
			want: []string{
				"async async-a 1->0 evict-for-capacity for api.openfaas-fn",
				"cron cron-new 1->0 zero-idle",
				"cron cron-old 1->0 zero-idle",
				"sync api 2->5 scale-up-rejections",
			}},
		{name: "a cron function due in 3 minutes is never evicted",
			policy: testPolicy(noZeroCron),
			snap:   seed(map[string]fnOpt{"cron-old": schedule("3 12 * * *")}),
			want: []string{
				"cron cron-new 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-a 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-b 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->5 scale-up-rejections",
			}},
		{name: "a function with in-flight work is never evicted",
			policy: testPolicy(noZeroCron),
			snap:   seed(map[string]fnOpt{"async-a": inflight(1), "cron-new": inflight(1)}),
			want: []string{
				"cron cron-old 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-b 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->4 scale-up-rejections",
				"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1",
			}},
		{name: "a function with queued work is never evicted",
			policy: testPolicy(noZeroCron),
			snap:   seed(map[string]fnOpt{"async-a": pending(1)}),
			want: []string{
				"cron cron-old 1->0 evict-for-capacity for api.openfaas-fn",
				"cron cron-new 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-b 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->5 scale-up-rejections",
			}},
		{name: "a function scaled within the minimum residency is not evicted",
			policy: testPolicy(noZeroCron),
			snap:   seed(map[string]fnOpt{"cron-old": lastScale(2 * time.Minute)}),
			want: []string{
				"cron cron-new 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-a 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-b 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->5 scale-up-rejections",
			}},
		{name: "an exhausted eviction budget leaves a shortfall",
			policy: testPolicy(noZeroCron, budget(1)),
			snap:   seed(nil),
			want: []string{
				"cron cron-old 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->3 scale-up-rejections",
				"shortfall sync api eviction-budget-exhausted cpu=1000m mem=512Mi pods=2",
			}},
		{name: "a zero budget evicts nothing",
			policy: testPolicy(noZeroCron, budget(0)),
			snap:   seed(nil),
			want:   []string{"shortfall sync api eviction-budget-exhausted cpu=1500m mem=768Mi pods=3"}},
		{name: "a plan never both scales up and evicts the same function",
			policy: testPolicy(noZeroCron),
			// cron-old is the oldest cron but is invoked and wants a
			// second replica for its CPU: it claims room instead of
			// giving it.
			snap: seed(map[string]fnOpt{"cron-old": func(f *Function) { cpuUse(0.9)(f); f.Invocations = Known(0.5) }}),
			want: []string{
				"cron cron-new 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-a 1->0 evict-for-capacity for api.openfaas-fn",
				"async async-b 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->5 scale-up-rejections",
				"shortfall cron cron-old insufficient-capacity cpu=500m mem=256Mi pods=1",
			}},
		{name: "fragmentation: enough room in total but on no single node is a shortfall",
			// Each 1-CPU node has 500m free; a 1-CPU pod fits on neither.
			snap: cluster(2, 1000, 4*gib,
				fn("x", TierSync, 1, on("n1")),
				fn("y", TierSync, 1, on("n2")),
				fn("big", TierSync, 0, requests(1000, 256*mi))),
			want: []string{"shortfall sync big insufficient-capacity cpu=1000m mem=256Mi pods=1"}},
		{name: "fragmentation: only an eviction on a node where it helps is made",
			// c2 is older but zeroing it leaves n2 with 500m; c1 frees all of n1.
			policy: testPolicy(noZeroCron),
			snap: cluster(2, 1000, 4*gib,
				fn("c1", TierCron, 1, schedule("0 3 * * *"), requests(1000, 256*mi), lastRun(time.Hour), on("n1")),
				fn("y", TierSync, 1, on("n2")),
				fn("c2", TierCron, 1, schedule("0 3 * * *"), requests(250, 256*mi), lastRun(3*time.Hour), on("n2")),
				fn("big", TierSync, 0, requests(1000, 256*mi))),
			want: []string{
				"cron c1 1->0 evict-for-capacity for big.openfaas-fn",
				"sync big 0->1 scale-up-min",
			}},
		{name: "memory fragmentation counts too",
			snap: cluster(2, 4000, 1*gib,
				fn("x", TierSync, 1, requests(100, 600*mi), on("n1")),
				fn("y", TierSync, 1, requests(100, 600*mi), on("n2")),
				fn("big", TierSync, 0, requests(100, 600*mi))),
			want: []string{"shortfall sync big insufficient-capacity cpu=100m mem=600Mi pods=1"}},
		{name: "pending pods are unmet demand",
			snap: func() *Snapshot {
				s := cluster(1, 1000, 4*gib, fn("x", TierSync, 2, inflight(4), on("n1")), fn("api", TierSync, 1, inflight(4), on("n9")))
				s.Functions[1].Replicas, s.Functions[1].PendingPods = 2, 1
				return s
			}(),
			want: []string{"shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1"}},
		{name: "claims are served in priority order: sync before cron prewarm before async activation",
			snap: cluster(1, 1000, 4*gib,
				fn("x", TierSync, 1, inflight(4), on("n1")),
				fn("jobs", TierAsync, 0, pending(5)),
				fn("report", TierCron, 0, schedule("1 12 * * *")),
				fn("api", TierSync, 0)),
			want: []string{
				"sync api 0->1 scale-up-min",
				"shortfall cron report insufficient-capacity cpu=500m mem=256Mi pods=1",
				"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1",
			}},
		{name: "a prewarm that cannot fit is a shortfall before the fire time",
			snap: cluster(1, 500, 4*gib,
				fn("x", TierSync, 1, inflight(4), on("n1")),
				fn("report", TierCron, 0, schedule("1 12 * * *"))),
			want: []string{"shortfall cron report insufficient-capacity cpu=500m mem=256Mi pods=1"}},
		{name: "quota: a claim beyond the namespace quota is a shortfall",
			snap: func() *Snapshot {
				s := big(fn("api", TierSync, 2, load(10, 20, 8)))
				s.Quotas = map[string]Resources{ns: {MilliCPU: 500, Memory: Unlimited, Pods: Unlimited}}
				return s
			}(),
			// The nodes have room for 4 more pods, the quota for one.
			want: []string{
				"sync api 2->3 scale-up-rejections",
				"shortfall sync api quota-exceeded cpu=1500m mem=768Mi pods=3",
			}},
		{name: "quota: an idle async function in the namespace is evicted for room in the quota",
			snap: func() *Snapshot {
				s := big(fn("api", TierSync, 2, load(10, 20, 8)),
					fn("jobs", TierAsync, 1, lastRun(time.Minute), lastScale(time.Hour), on("n3")))
				s.Quotas = map[string]Resources{ns: {MilliCPU: 500, Memory: Unlimited, Pods: Unlimited}}
				return s
			}(),
			want: []string{
				"async jobs 1->0 evict-for-capacity for api.openfaas-fn",
				"sync api 2->4 scale-up-rejections",
				"shortfall sync api quota-exceeded cpu=1000m mem=512Mi pods=2",
			}},
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

func TestDecideFailStatic(t *testing.T) {
	s := cluster(1, 2500, 4*gib,
		fn("api", TierSync, 3, inflight(0), lastScale(time.Hour), on("n1")),
		fn("wide", TierSync, 0, lastScale(time.Hour)),
		fn("idle-cron", TierCron, 1, schedule("0 3 * * *"), lastRun(time.Hour), lastScale(time.Hour), on("n1")),
		fn("idle-jobs", TierAsync, 1, lastRun(time.Hour), lastScale(time.Hour), on("n9")),
		fn("report", TierCron, 0, schedule("1 12 * * *")),
	)
	for i := range s.Functions {
		unknownMetrics()(&s.Functions[i])
	}
	s.MetricsAvailable = false
	plan := Decide(s, testPolicy(), t0)
	want := []string{
		// Prewarming needs only the clock and goes on; a sync function
		// below its floor is restored. Nothing is scaled down, zeroed or
		// evicted, so there is no room for the second claim.
		"sync wide 0->1 scale-up-min",
		"shortfall metrics-unavailable",
		"shortfall cron report insufficient-capacity cpu=500m mem=256Mi pods=1",
	}
	require.Empty(t, cmp.Diff(want, summary(plan)))
	require.False(t, plan.MetricsAvailable)
	require.Contains(t, plan.Shortfalls[1].Message, "nothing is evicted while metrics are unavailable")
	require.Equal(t, time.Date(2026, 11, 24, 12, 1, 0, 0, time.UTC), plan.Shortfalls[1].Deadline)
}

func TestDecideExplains(t *testing.T) {
	p := testPolicy(func(p *Policy) { f := false; p.Tiers.Cron.ZeroWhenIdle = &f })
	plan := Decide(seed(nil), p, t0)
	require.NotEmpty(t, plan.Actions)
	for _, a := range plan.Actions {
		require.NotEmpty(t, a.Explanation, "action %s %s", a.Function, a.Reason)
	}
	require.Contains(t, plan.Actions[0].Explanation, "1 of 3 evictions that make room for 3 pod(s) of sync api.openfaas-fn (scale-up-rejections)")
	require.Contains(t, plan.Actions[len(plan.Actions)-1].Explanation, "429 rate 10.00/s > 0.10/s")
}

func TestDecideIsDeterministicAndPure(t *testing.T) {
	s := seed(nil)
	p := testPolicy()
	a := Decide(s, p, t0)
	b := Decide(s, p, t0)
	require.Equal(t, a, b)
	// The snapshot is not modified (schedules only cache their answers).
	require.Empty(t, cmp.Diff(seed(nil), s, cmpopts.IgnoreFields(Function{}, "Schedule")))
}

func TestParseMeta(t *testing.T) {
	p := testPolicy()
	asyncDefault := testPolicy(func(p *Policy) { p.DefaultTier = TierAsync })
	cases := []struct {
		name        string
		policy      *Policy
		labels      map[string]string
		annotations map[string]string
		env         map[string]string
		want        Meta
		wantErrs    []string
	}{
		{name: "no metadata: default tier and OpenFaaS bounds",
			want: Meta{Tier: TierSync, MinReplicas: 1, MaxReplicas: 20}},
		{name: "policy default tier", policy: asyncDefault,
			want: Meta{Tier: TierAsync, MinReplicas: 1, MaxReplicas: 20}},
		{name: "cron-connector annotations make a cron function",
			annotations: map[string]string{"topic": "cron-function", "schedule": "*/5 * * * *"},
			want:        Meta{Tier: TierCron, ScheduleSpec: "*/5 * * * *", MinReplicas: 1, MaxReplicas: 20}},
		{name: "a topic without a schedule is not cron",
			annotations: map[string]string{"topic": "cron-function"},
			want:        Meta{Tier: TierSync, MinReplicas: 1, MaxReplicas: 20}},
		{name: "the tier annotation wins",
			annotations: map[string]string{"tierscaler.io/tier": "async", "topic": "cron-function", "schedule": "@hourly"},
			want:        Meta{Tier: TierAsync, MinReplicas: 1, MaxReplicas: 20}},
		{name: "bounds, max_inflight and startup time",
			labels:      map[string]string{"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "8"},
			annotations: map[string]string{"tierscaler.io/startup-time": "45s", "tierscaler.io/last-run": "2026-11-24T11:00:00Z"},
			env:         map[string]string{"max_inflight": "4"},
			want: Meta{Tier: TierSync, MinReplicas: 2, MaxReplicas: 8, MaxInflight: 4, StartupTime: 45 * time.Second,
				LastRun: time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC)}},
		{name: "the max-inflight annotation overrides the env",
			annotations: map[string]string{"tierscaler.io/max-inflight": "10"},
			env:         map[string]string{"max_inflight": "4"},
			want:        Meta{Tier: TierSync, MinReplicas: 1, MaxReplicas: 20, MaxInflight: 10}},
		{name: "every bad value is reported",
			labels: map[string]string{"com.openfaas.scale.min": "-1", "com.openfaas.scale.max": "many"},
			annotations: map[string]string{"tierscaler.io/tier": "batch", "tierscaler.io/startup-time": "soon",
				"tierscaler.io/last-run": "yesterday", "tierscaler.io/activation-requested": "now"},
			env:  map[string]string{"max_inflight": "4.5"},
			want: Meta{Tier: "batch", MinReplicas: 1, MaxReplicas: 20},
			wantErrs: []string{
				`annotation tierscaler.io/tier: unknown tier "batch"`,
				`label com.openfaas.scale.min: want an integer >= 0, got "-1"`,
				`label com.openfaas.scale.max: want an integer >= 1, got "many"`,
				`env max_inflight: want an integer >= 0, got "4.5"`,
				`annotation tierscaler.io/startup-time: want a duration`,
				`annotation tierscaler.io/last-run: want an RFC 3339 time, got "yesterday"`,
				`annotation tierscaler.io/activation-requested: want an RFC 3339 time, got "now"`,
			}},
		{name: "a bad schedule is reported",
			annotations: map[string]string{"topic": "cron-function", "schedule": "every day"},
			want:        Meta{Tier: TierCron, MinReplicas: 1, MaxReplicas: 20},
			wantErrs:    []string{`annotation schedule: schedule "every day"`}},
		{name: "six-field schedules are refused as cron-connector does",
			annotations: map[string]string{"topic": "cron-function", "schedule": "0 */5 * * * *"},
			want:        Meta{Tier: TierCron, MinReplicas: 1, MaxReplicas: 20},
			wantErrs:    []string{`expected exactly 5 fields`}},
		{name: "min above max is reported",
			labels:   map[string]string{"com.openfaas.scale.min": "5", "com.openfaas.scale.max": "2"},
			want:     Meta{Tier: TierSync, MinReplicas: 5, MaxReplicas: 2},
			wantErrs: []string{"label com.openfaas.scale.min=5 is above com.openfaas.scale.max=2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := tc.policy
			if pol == nil {
				pol = p
			}
			got, err := pol.ParseMeta(tc.labels, tc.annotations, tc.env)
			got.Schedule = nil // compared through ScheduleSpec
			require.Empty(t, cmp.Diff(tc.want, got))
			if len(tc.wantErrs) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErrs {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestCachedScheduleAnswersLikeTheSchedule(t *testing.T) {
	p := testPolicy()
	cached, err := p.ParseSchedule("*/7 3-5 * * 1-5")
	require.NoError(t, err)
	plain, err := cronParser.Parse("*/7 3-5 * * 1-5")
	require.NoError(t, err)
	plain.(*cron.SpecSchedule).Location = time.UTC
	// Walk a week in uneven steps, back and forth between two clocks as the
	// engine does (now and now minus the grace period).
	for at := t0; at.Before(t0.Add(7 * 24 * time.Hour)); at = at.Add(97 * time.Second) {
		for _, q := range []time.Time{at, at.Add(-2 * time.Minute)} {
			require.Equal(t, plain.Next(q), cached.Next(q), "Next(%s)", q)
		}
	}
}

func TestParseScheduleUsesPolicyTimeZone(t *testing.T) {
	p := testPolicy()
	p.TimeZone = "Europe/Berlin"
	p.SetDefaults()
	s, err := p.ParseSchedule("0 2 * * *")
	require.NoError(t, err)
	// 02:00 in Berlin (CET, UTC+1 in November) is 01:00 UTC.
	require.Equal(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC), s.Next(t0).UTC())
	_, err = p.ParseSchedule("CRON_TZ=UTC 0 2 * * *")
	require.ErrorContains(t, err, "time zone prefix is not supported")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

// runs sets the learned duration of one invocation.
func runs(d time.Duration) fnOpt { return func(f *Function) { f.RunDuration = d } }

// reservations renders a plan's reservations compactly:
// "report 12:05 pods=1 n1:1 held=500m/256Mi", "report 12:05 pods=0 missing=1".
func reservations(p *Plan) []string {
	var out []string
	for _, r := range p.Reservations {
		s := fmt.Sprintf("%s %s pods=%d", r.Function, r.Fire.UTC().Format("15:04"), r.Pods)
		if r.Missing > 0 {
			s += fmt.Sprintf(" missing=%d", r.Missing)
		}
		for _, n := range r.Nodes {
			s += fmt.Sprintf(" %s:%d held=%dm/%dMi", n.Node, n.Pods, n.Held.MilliCPU, n.Held.Memory/mi)
		}
		if r.TakenBySync {
			s += " taken-by-sync"
		}
		if r.Early {
			s += " early"
		}
		out = append(out, s)
	}
	return out
}

func TestDecideReservations(t *testing.T) {
	// busy is a sync function whose pods stay: it has work in flight.
	busy := func(name string, replicas int32, node string) Function {
		return fn(name, TierSync, replicas, inflight(float64(4*replicas)), on(node), lastScale(time.Hour))
	}
	cases := []struct {
		name   string
		snap   *Snapshot
		want   []string
		resv   []string
		policy *Policy
	}{
		{name: "a cron fire inside the lookahead holds a reservation where it will fit",
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *"))),
			resv: []string{"report 12:05 pods=1 n1:1 held=500m/256Mi"}},
		{name: "no reservation for a fire beyond the horizon",
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("30 12 * * *"))),
		},
		{name: "no reservation for a cron function that keeps its replica until the fire",
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 1, schedule("5 12 * * *"), lastRun(time.Hour), lastScale(time.Hour))),
		},
		{name: "an async activation is admitted only into unreserved room, and the room it would take is held by prewarming early",
			// 1500m free; report needs 500m from 12:03:45; the jobs run
			// 10 minutes, past it, and would take all of it: report is
			// prewarmed now, and the jobs get 2 of the 3 pods they ask for.
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *")),
				fn("jobs", TierAsync, 0, pending(25), runs(10*time.Minute))),
			want: []string{
				"cron report 0->1 prewarm-cron",
				"async jobs 0->2 activate-async",
				"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1",
				"check activation jobs 2026-11-24T12:02:00Z",
				"check prewarm report 2026-11-24T12:05:00Z",
			},
			resv: []string{"report 12:05 pods=1 early"}},
		{name: "with room for both, the reservation is only held, and the function starts just in time",
			snap: cluster(1, 4000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *")),
				fn("jobs", TierAsync, 0, pending(25), runs(10*time.Minute))),
			want: []string{"async jobs 0->3 activate-async", "check activation jobs 2026-11-24T12:02:00Z"},
			resv: []string{"report 12:05 pods=1 n1:1 held=500m/256Mi"}},
		{name: "an async function with queued work is still activated when one replica fits outside the reservations",
			snap: cluster(1, 1500, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *")),
				fn("jobs", TierAsync, 0, pending(25), runs(10*time.Minute))),
			want: []string{
				"cron report 0->1 prewarm-cron",
				"async jobs 0->1 activate-async",
				"shortfall async jobs insufficient-capacity cpu=1000m mem=512Mi pods=2",
				"check activation jobs 2026-11-24T12:02:00Z",
				"check prewarm report 2026-11-24T12:05:00Z",
			},
			resv: []string{"report 12:05 pods=1 early"}},
		{name: "async work that ends before the prewarm may use the reserved room",
			// A job takes a minute, but a replica added stays at least 5
			// (the scale-down window, idleAfter, minResidency): until
			// 12:05, before report's prewarm at 12:06:45.
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("8 12 * * *")),
				fn("jobs", TierAsync, 0, pending(25), runs(time.Minute))),
			want: []string{"async jobs 0->3 activate-async", "check activation jobs 2026-11-24T12:02:00Z"},
			resv: []string{"report 12:08 pods=1 n1:1 held=500m/256Mi"}},
		{name: "a replica added stays at least the scale-down window: short jobs still leave a prewarm within it",
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *")),
				fn("jobs", TierAsync, 0, pending(25), runs(time.Minute))),
			want: []string{
				"cron report 0->1 prewarm-cron",
				"async jobs 0->2 activate-async",
				"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1",
				"check activation jobs 2026-11-24T12:02:00Z",
				"check prewarm report 2026-11-24T12:05:00Z",
			},
			resv: []string{"report 12:05 pods=1 early"}},
		{name: "async scale-ups are admitted only into unreserved room too",
			snap: cluster(1, 2500, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *")),
				fn("jobs", TierAsync, 1, pending(40), runs(10*time.Minute), lastRun(time.Second), on("n1"))),
			want: []string{
				"cron report 0->1 prewarm-cron",
				"async jobs 1->3 scale-up-pending",
				"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1",
				"check prewarm report 2026-11-24T12:05:00Z",
			},
			resv: []string{"report 12:05 pods=1 early"}},
		{name: "sync claims outrank reservations, and the reservation they take is reported",
			// api's 2 new pods take the last 1000m.
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("api", TierSync, 1, load(10, 20, 4), on("n1"), lastScale(time.Hour)),
				fn("report", TierCron, 0, schedule("5 12 * * *"))),
			want: []string{
				"sync api 1->3 scale-up-rejections",
				"shortfall cron report cron-at-risk cpu=500m mem=256Mi pods=1",
			},
			resv: []string{"report 12:05 pods=0 missing=1 taken-by-sync"}},
		{name: "async work waits while a fire's reservation does not fit yet but will once async replicas are done",
			// n1 is full: web and a busy worker. report's room will come
			// back when the worker's jobs end; new async work that would
			// still run at report's prewarm (12:06:45) must not take it.
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("worker", TierAsync, 3, inflight(3), bounded(0, 3), lastRun(time.Second), lastScale(time.Hour), on("n1"), func(f *Function) { f.MaxInflight = 1 }),
				fn("report", TierCron, 0, schedule("8 12 * * *")),
				fn("jobs", TierAsync, 0, pending(5), runs(10*time.Minute))),
			want: []string{
				"shortfall cron report cron-at-risk cpu=500m mem=256Mi pods=1",
				"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1",
			},
			resv: []string{"report 12:08 pods=0 missing=1"}},
		{name: "async replicas that keep draining a queue past a fire's prewarm wait while the fire does not fit",
			// n1 is full (web and a busy worker): report (1000m, prewarm
			// 12:06:45) fits only once the worker's jobs end. On n2 an
			// idle async function goes to its floor. jobs has a queue:
			// one job takes 3 minutes, but its 13 jobs on 4 replicas keep
			// them busy for 12 minutes, past the prewarm. Its scale-up
			// must not take the room given back for report (the night-batch
			// simulation missed a run that way).
			snap: cluster(2, 2000, 4*gib, busy("web", 1, "n1"),
				fn("worker", TierAsync, 3, inflight(3), bounded(0, 3), lastRun(time.Second), lastScale(time.Hour), on("n1"), func(f *Function) { f.MaxInflight = 1 }),
				busy("api", 1, "n2"),
				fn("idler", TierAsync, 2, lastRun(2*time.Minute), lastScale(time.Hour), on("n2")),
				fn("jobs", TierAsync, 1, inflight(1), pending(12), bounded(0, 4), runs(3*time.Minute), lastRun(time.Second), lastScale(time.Hour), on("n2"), func(f *Function) { f.MaxInflight = 1 }),
				fn("report", TierCron, 0, schedule("8 12 * * *"), requests(1000, 256*mi))),
			want: []string{
				"async idler 2->1 scale-down-idle",
				"shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1",
				"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1",
			},
			resv: []string{"report 12:08 pods=0 missing=1"}},
		{name: "a fire that fits nowhere even after every permitted eviction is a forecast shortfall before it",
			snap: cluster(1, 1000, 4*gib, busy("web", 2, "n1"),
				fn("report", TierCron, 0, schedule("5 12 * * *"))),
			want: []string{"shortfall cron report cron-at-risk cpu=500m mem=256Mi pods=1"},
			resv: []string{"report 12:05 pods=0 missing=1"}},
		{name: "a fire beyond the lookahead is not forecast",
			snap: cluster(1, 1000, 4*gib, busy("web", 2, "n1"),
				fn("report", TierCron, 0, schedule("25 12 * * *")),
				fn("jobs", TierAsync, 0, pending(5), runs(30*time.Minute))),
			want: []string{"shortfall async jobs insufficient-capacity cpu=500m mem=256Mi pods=1"},
			resv: []string{"report 12:25 pods=0 missing=1"}},
		{name: "a fire that fits by evicting idle cron functions then is not at risk, and async claims leave that room",
			// n1 is full: web and two idle cron functions. report can have
			// one's room at its prewarm; the new jobs would take it, so
			// report is prewarmed now, evicting c2, and the jobs evict c1.
			policy: testPolicy(func(p *Policy) { f := false; p.Tiers.Cron.ZeroWhenIdle = &f }),
			snap: cluster(1, 1500, 4*gib, busy("web", 1, "n1"),
				fn("c1", TierCron, 1, schedule("0 3 * * *"), lastRun(2*time.Hour), lastScale(time.Hour), on("n1")),
				fn("c2", TierCron, 1, schedule("0 4 * * *"), lastRun(3*time.Hour), lastScale(time.Hour), on("n1")),
				fn("report", TierCron, 0, schedule("5 12 * * *")),
				fn("jobs", TierAsync, 0, pending(5), runs(10*time.Minute))),
			want: []string{
				"cron c2 1->0 evict-for-capacity for report.openfaas-fn",
				"cron c1 1->0 evict-for-capacity for jobs.openfaas-fn",
				"cron report 0->1 prewarm-cron",
				"async jobs 0->1 activate-async",
				"check activation jobs 2026-11-24T12:02:00Z",
				"check prewarm report 2026-11-24T12:05:00Z",
			},
			resv: []string{"report 12:05 pods=1 early"}},
		{name: "an idle async function's room is not counted on, but it is reclaimed for a fire at risk",
			// Its queue may give it work at any moment: the fire is at
			// risk. Both are idle, resident and hold the room: they go to
			// zero ahead of idleAfter.
			snap: cluster(1, 1500, 4*gib, busy("web", 1, "n1"),
				fn("w1", TierAsync, 1, lastRun(2*time.Minute), lastScale(time.Hour), on("n1")),
				fn("w2", TierAsync, 1, lastRun(3*time.Minute), lastScale(time.Hour), on("n1")),
				fn("report", TierCron, 0, schedule("5 12 * * *"))),
			want: []string{
				"async w1 1->0 reclaim-for-cron",
				"async w2 1->0 reclaim-for-cron",
				"shortfall cron report cron-at-risk cpu=500m mem=256Mi pods=1",
			},
			resv: []string{"report 12:05 pods=0 missing=1"}},
		{name: "a busy async function with nothing queued gives back its idle replicas for a fire at risk",
			// w1 has 4 replicas and 2 jobs in flight (max_inflight 1),
			// nothing queued: its load needs 3 at 70% utilisation, what
			// its scale-down would keep once its window (scaled a minute
			// ago) ended. The fourth goes now.
			// w2 has work queued: its idle replica will take it, it stays.
			snap: cluster(1, 3000, 4*gib, busy("web", 1, "n1"),
				fn("w1", TierAsync, 4, inflight(2), lastRun(time.Second), lastScale(time.Minute), on("n1"), func(f *Function) { f.MaxInflight = 1 }),
				fn("w2", TierAsync, 1, inflight(0), pending(3), lastRun(time.Second), lastScale(time.Hour), on("n1"), func(f *Function) { f.MaxInflight = 1 }),
				fn("report", TierCron, 0, schedule("5 12 * * *"), requests(1000, 256*mi))),
			want: []string{
				"async w1 4->3 reclaim-for-cron",
				"shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1",
			},
			resv: []string{"report 12:05 pods=0 missing=1"}},
		{name: "an idle async function within its residency is reclaimed only down to its floor",
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("w1", TierAsync, 3, lastRun(2*time.Minute), lastScale(2*time.Minute), on("n1")),
				fn("report", TierCron, 0, schedule("5 12 * * *"))),
			want: []string{
				"async w1 3->1 reclaim-for-cron",
				"shortfall cron report cron-at-risk cpu=500m mem=256Mi pods=1",
			},
			resv: []string{"report 12:05 pods=0 missing=1"}},
		{name: "a cron function going to zero just in time keeps its replica when its fire would not fit without it",
			// report's next fire at 12:08 is 6m45s away: just in time says
			// zero, but async work would take its room at once.
			snap: cluster(1, 1500, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 1, schedule("8 12 * * *"), lastRun(time.Hour), lastScale(time.Hour), on("n1")),
				fn("jobs", TierAsync, 0, pending(25), runs(10*time.Minute))),
			want: []string{
				"async jobs 0->1 activate-async",
				"shortfall async jobs insufficient-capacity cpu=1000m mem=512Mi pods=2",
				"check activation jobs 2026-11-24T12:02:00Z",
			},
			resv: []string{"report 12:08 pods=1 early"}},
		{name: "the room running cron jobs release by the prewarm counts",
			// n1 is full with a cron job that runs 2 more minutes at most
			// and fires again only tomorrow: its room is report's at 12:08.
			snap: cluster(1, 1000, 4*gib, busy("web", 1, "n1"),
				fn("etl", TierCron, 1, schedule("0 3 * * *"), inflight(1), lastRun(time.Second), lastScale(time.Hour), runs(2*time.Minute), on("n1")),
				fn("report", TierCron, 0, schedule("8 12 * * *"))),
			resv: []string{"report 12:08 pods=1 n1:1 held=0m/0Mi"}},
		{name: "JIT: an idle cron function goes to zero when its next prewarm is more than interval + minResidency away, and holds a reservation",
			// Fires at 12:08: prewarm at 12:06:45, 6m45s away > 5m15s.
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 1, schedule("8 12 * * *"), lastRun(time.Hour), lastScale(time.Hour), on("n1"))),
			want: []string{"cron report 1->0 zero-idle"},
			resv: []string{"report 12:08 pods=1 n1:1 held=500m/256Mi"}},
		{name: "JIT: an idle cron function stays when its next prewarm is nearer",
			// Fires at 12:06: prewarm at 12:04:45, 4m45s away.
			snap: cluster(1, 2000, 4*gib, busy("web", 1, "n1"),
				fn("report", TierCron, 1, schedule("6 12 * * *"), lastRun(time.Hour), lastScale(time.Hour), on("n1"))),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if p == nil {
				p = testPolicy()
			}
			plan := Decide(tc.snap, p, t0)
			if diff := cmp.Diff(tc.want, summary(plan)); diff != "" {
				t.Errorf("plan (-want +got):\n%s\ngot:\n%s", diff, join(summary(plan)))
			}
			if diff := cmp.Diff(tc.resv, reservations(plan)); diff != "" {
				t.Errorf("reservations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForecastShortfallSaysWhatAndWhen(t *testing.T) {
	s := cluster(1, 2000, 4*gib,
		fn("web", TierSync, 1, inflight(4), on("n1"), lastScale(time.Hour)),
		fn("api", TierSync, 1, load(10, 20, 4), on("n1"), lastScale(time.Hour)),
		fn("report", TierCron, 0, schedule("5 12 * * *")))
	plan := Decide(s, testPolicy(), t0)
	var sf *Shortfall
	for i := range plan.Shortfalls {
		if plan.Shortfalls[i].Reason == ShortfallCronAtRisk {
			sf = &plan.Shortfalls[i]
		}
	}
	require.NotNil(t, sf, "%v", summary(plan))
	require.Equal(t, time.Date(2026, 11, 24, 12, 5, 0, 0, time.UTC), sf.Deadline)
	require.Equal(t, int32(1), sf.Claimed)
	for _, w := range []string{"report.openfaas-fn fires at 2026-11-24T12:05:00Z", "1 of 1 pod(s) will not fit at its prewarm (2026-11-24T12:03:45Z)",
		"sync claims of this cycle took the room"} {
		require.True(t, strings.Contains(sf.Message, w), "%q lacks %q", sf.Message, w)
	}
}

func TestDrainHorizon(t *testing.T) {
	p := testPolicy()
	floor := asyncHorizon(&Function{}, p) // the lookahead, at least the windows
	cases := []struct {
		name    string
		f       Function
		desired int32
		want    time.Duration
	}{
		{"no run duration known: asyncHorizon", fn("a", TierAsync, 1, pending(100)), 2, floor},
		{"a short queue: at least asyncHorizon", fn("a", TierAsync, 1, pending(1), runs(time.Minute)), 2, asyncHorizon(&Function{RunDuration: time.Minute}, p)},
		{"13 jobs of 3 minutes on 2 replicas of one job each: 7 rounds", fn("a", TierAsync, 1, pending(12), inflight(1), runs(3*time.Minute), func(f *Function) { f.MaxInflight = 1 }), 2, 21 * time.Minute},
		{"max_inflight 4 per replica: 2 rounds", fn("a", TierAsync, 1, pending(12), inflight(1), runs(3*time.Minute)), 2, 6 * time.Minute},
		{"the mean duration when no run duration was learned", fn("a", TierAsync, 1, pending(12), inflight(1), duration(180), func(f *Function) { f.MaxInflight = 1 }), 2, 21 * time.Minute},
		{"unknown queue and in-flight: asyncHorizon", fn("a", TierAsync, 1, runs(3*time.Minute), unknownMetrics()), 2, asyncHorizon(&Function{RunDuration: 3 * time.Minute}, p)},
		{"a deep queue is capped at MaxWindow", fn("a", TierAsync, 1, pending(1e9), runs(time.Hour), func(f *Function) { f.MaxInflight = 1 }), 1, MaxWindow},
		{"no replica admitted: asyncHorizon", fn("a", TierAsync, 0, pending(12), runs(3*time.Minute)), 0, asyncHorizon(&Function{RunDuration: 3 * time.Minute}, p)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, drainHorizon(&tc.f, p, tc.desired))
		})
	}
}

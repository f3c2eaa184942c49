// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestReclaimNeverBelowWhatScaleDownKeeps: for a fire at risk, a busy async
// function with nothing queued gives back only what its scale-down would
// take once its window ended; when that cannot be known it is left alone.
func TestReclaimNeverBelowWhatScaleDownKeeps(t *testing.T) {
	busy := func(name string, replicas int32, node string) Function {
		return fn(name, TierSync, replicas, inflight(float64(4*replicas)), on(node), lastScale(time.Hour))
	}
	atRisk := func(w1 Function) *Snapshot {
		return cluster(1, 3000, 4*gib, busy("web", 1, "n1"), w1,
			fn("w2", TierAsync, 1, pending(3), lastRun(time.Second), lastScale(time.Hour), on("n1")),
			fn("report", TierCron, 0, schedule("5 12 * * *"), requests(1000, 256*mi)))
	}
	maxInflight := func(n int32) fnOpt { return func(f *Function) { f.MaxInflight = n } }
	cases := []struct {
		name string
		w1   Function
		want []string
	}{
		{name: "2 in flight at max_inflight 1 need 3 replicas at 70%: 4->3",
			w1:   fn("w1", TierAsync, 4, inflight(2), lastRun(time.Second), lastScale(time.Minute), on("n1"), maxInflight(1)),
			want: []string{"async w1 4->3 reclaim-for-cron", "shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1"}},
		{name: "a fraction in flight still keeps a replica",
			w1:   fn("w1", TierAsync, 4, inflight(0.3), lastRun(time.Second), lastScale(time.Minute), on("n1"), maxInflight(1)),
			want: []string{"async w1 4->1 reclaim-for-cron", "shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1"}},
		{name: "no max_inflight: its scale-down keeps every replica, so does the reclaim",
			w1:   fn("w1", TierAsync, 4, inflight(1), lastRun(time.Second), lastScale(time.Minute), on("n1"), maxInflight(0)),
			want: []string{"shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1"}},
		{name: "rejections unknown: its load is unknown, it is left alone",
			w1:   fn("w1", TierAsync, 4, inflight(2), lastRun(time.Second), lastScale(time.Minute), on("n1"), maxInflight(1), func(f *Function) { f.Rejections = Unknown }),
			want: []string{"shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1"}},
		{name: "CPU near its limit counts: its usage needs all 4",
			w1:   fn("w1", TierAsync, 4, inflight(2), lastRun(time.Second), lastScale(time.Minute), on("n1"), maxInflight(1), cpuUse(0.7)),
			want: []string{"shortfall cron report cron-at-risk cpu=1000m mem=256Mi pods=1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := Decide(atRisk(tc.w1), testPolicy(), t0)
			if diff := cmp.Diff(tc.want, summary(plan)); diff != "" {
				t.Errorf("plan (-want +got):\n%s\ngot:\n%s", diff, join(summary(plan)))
			}
		})
	}
}

// TestReclaimDoesNotFlap: cycle after cycle, with the fire still at risk,
// a busy function reclaimed to what its load needs is not scaled back up by
// the tier rules and reclaimed again (the first version reclaimed it to
// in-flight / max_inflight, and scale-up-concurrency undid it every other
// cycle).
func TestReclaimDoesNotFlap(t *testing.T) {
	p := testPolicy()
	busy := fn("web", TierSync, 1, inflight(4), on("n1"), lastScale(time.Hour))
	replicas, scaled := int32(4), time.Minute
	changes := 0
	for cycle := range 40 {
		now := t0.Add(time.Duration(cycle) * 15 * time.Second)
		w1 := fn("w1", TierAsync, replicas, load(0, 2, 4), duration(2), runs(time.Minute), on("n1"))
		w1.LastRun, w1.LastScale = now.Add(-time.Second), now.Add(-scaled)
		s := cluster(1, 3000, 4*gib, busy, w1,
			fn("w2", TierAsync, 1, pending(3), lastRun(time.Second), lastScale(time.Hour), on("n1")),
			fn("report", TierCron, 0, schedule("9 12 * * *"), requests(1500, 256*mi)))
		plan := Decide(s, p, now)
		scaled += 15 * time.Second
		for _, a := range plan.Actions {
			if a.Function != "w1" {
				continue
			}
			if a.To > a.From {
				t.Fatalf("cycle %d: w1 scaled up %d->%d (%s) after a reclaim:\n%s", cycle, a.From, a.To, a.Reason, join(summary(plan)))
			}
			replicas, scaled = a.To, 0
			changes++
		}
	}
	if changes > 1 {
		t.Fatalf("w1 changed %d times in 40 cycles, want at most one reclaim", changes)
	}
}

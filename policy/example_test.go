// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWorkedExample is the worked example of docs/policy.md: keep the two in
// step.
func TestWorkedExample(t *testing.T) {
	now := time.Date(2026, 11, 24, 14, 12, 0, 0, time.UTC)
	ago := func(d time.Duration) fnOpt { return func(f *Function) { f.LastRun = now.Add(-d) } }
	longAgo := func(f *Function) { f.LastScale = now.Add(-24 * time.Hour) }
	s := &Snapshot{MetricsAvailable: true, Nodes: []Node{
		{Name: "node-a", Allocatable: Resources{2000, 4 * gib, 110}, Schedulable: true},
		{Name: "node-b", Allocatable: Resources{2000, 4 * gib, 110}, Schedulable: true},
	}}
	s.Functions = []Function{
		// 8 requests in flight while 10 of 20 req/s get a 429.
		fn("checkout", TierSync, 2, load(10, 20, 8), on("node-a"), longAgo),
		fn("search", TierSync, 1, inflight(1), on("node-b"), longAgo),
		fn("nightly-report", TierCron, 1, schedule("0 2 * * *"), ago(12*time.Hour+12*time.Minute), on("node-a"), longAgo),
		fn("invoice-sync", TierCron, 1, schedule("*/15 * * * *"), ago(12*time.Minute), on("node-b"), longAgo),
		fn("thumbnails", TierAsync, 1, ago(3*time.Minute), on("node-b"), longAgo),
	}
	for i := range s.Functions {
		for _, p := range s.Functions[i].Pods {
			for j := range s.Nodes {
				if s.Nodes[j].Name == p.Node {
					s.Nodes[j].Requested = s.Nodes[j].Requested.Add(podRequest(&s.Functions[i]))
				}
			}
		}
	}
	got := summary(Decide(s, testPolicy(), now))
	want := []string{
		"async thumbnails 1->0 evict-for-capacity for checkout.openfaas-fn",
		"cron nightly-report 1->0 zero-idle",
		"sync checkout 2->6 scale-up-rejections",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("worked example (-want +got):\n%s", diff)
	}
}

// TestWorkedExampleReservations is the reservations example of
// docs/policy.md: keep the two in step.
func TestWorkedExampleReservations(t *testing.T) {
	now := time.Date(2026, 11, 24, 1, 50, 0, 0, time.UTC)
	longAgo := func(f *Function) { f.LastScale = now.Add(-24 * time.Hour) }
	s := &Snapshot{MetricsAvailable: true, Nodes: []Node{
		{Name: "node-a", Allocatable: Resources{4000, 16 * gib, 110}, Schedulable: true},
	}}
	s.Functions = []Function{
		fn("api", TierSync, 1, inflight(2), on("node-a"), longAgo),
		fn("nightly-etl", TierCron, 0, schedule("0 2 * * *"), requests(2000, 2*gib), longAgo),
		fn("exports", TierAsync, 0, pending(30), requests(1000, gib), runs(20*time.Minute), longAgo),
		fn("thumbnails", TierAsync, 0, pending(5), runs(time.Minute), longAgo),
	}
	s.Nodes[0].Requested = podRequest(&s.Functions[0])
	plan := Decide(s, Default(), now)
	want := []string{
		"cron nightly-etl 0->1 prewarm-cron",
		"async thumbnails 0->1 activate-async",
		"async exports 0->1 activate-async",
		"shortfall async exports insufficient-capacity cpu=2000m mem=2048Mi pods=2",
		"check activation exports 2026-11-24T01:52:00Z",
		"check prewarm nightly-etl 2026-11-24T02:00:00Z",
		"check activation thumbnails 2026-11-24T01:52:00Z",
	}
	if diff := cmp.Diff(want, summary(plan)); diff != "" {
		t.Errorf("worked example (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"nightly-etl 02:00 pods=1 early"}, reservations(plan)); diff != "" {
		t.Errorf("reservations (-want +got):\n%s", diff)
	}
	if got := plan.Reservations[0].Prewarm; !got.Equal(time.Date(2026, 11, 24, 1, 59, 0, 0, time.UTC)) {
		t.Errorf("prewarm at %s", got)
	}
	// Without exports' long jobs, nightly-etl's room is only held, and it
	// starts just in time.
	s.Functions = s.Functions[:2:2]
	s.Functions = append(s.Functions, fn("thumbnails", TierAsync, 0, pending(5), runs(time.Minute), longAgo))
	plan = Decide(s, Default(), now)
	if diff := cmp.Diff([]string{"nightly-etl 02:00 pods=1 node-a:1 held=2000m/2048Mi"}, reservations(plan)); diff != "" {
		t.Errorf("reservations without exports (-want +got):\n%s", diff)
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// synthetic builds a cluster of n functions on n/10 nodes (10% sync, 60%
// cron on realistic schedules, 30% async) in a steady state where a third
// of the functions want a change: sync functions refusing requests, cron
// functions due for a prewarm, async functions with pending work; idle cron
// functions wait at zero for their fires, which hold reservations. The
// nodes are nearly full, so claims need evictions and some end as
// shortfalls.
func synthetic(n int) (*Snapshot, *Policy) {
	p := testPolicy()
	nodes := max(1, n/10)
	s := &Snapshot{MetricsAvailable: true, Nodes: make([]Node, nodes), Functions: make([]Function, 0, n)}
	for i := range s.Nodes {
		s.Nodes[i] = Node{Name: fmt.Sprintf("node-%05d", i), Allocatable: Resources{11000, 64 * gib, 110}, Schedulable: true}
	}
	// Schedules spread as in real clusters: frequent pollers, hourly jobs at
	// every minute of the hour, jobs every few hours, daily jobs in office
	// hours and at night, weekly ones. Functions share parsed schedules, as
	// the controller's metadata cache makes them do.
	parsed := map[string]fnOpt{}
	sched := func(sp string) fnOpt {
		if o, ok := parsed[sp]; ok {
			return o
		}
		parsed[sp] = schedule(sp)
		return parsed[sp]
	}
	realistic := func(i int) string {
		m := (i * 7) % 60
		switch k := i % 20; {
		case k == 0:
			return "*/5 * * * *"
		case k < 3:
			return "*/15 * * * *"
		case k < 9:
			return fmt.Sprintf("%d * * * *", m)
		case k < 11:
			return fmt.Sprintf("%d */6 * * *", m)
		case k < 16:
			return fmt.Sprintf("%d %d * * *", m, 8+(i/20)%11)
		case k < 19:
			return fmt.Sprintf("%d %d * * *", m, (i/20)%5)
		default:
			return fmt.Sprintf("%d %d * * %d", m, (i/20)%24, (i/20)%7)
		}
	}
	next := 0
	place := func(f *Function) {
		for j := range f.Pods {
			f.Pods[j].Node = s.Nodes[next%nodes].Name
			s.Nodes[next%nodes].Requested = s.Nodes[next%nodes].Requested.Add(podRequest(f))
			next++
		}
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("fn-%06d", i)
		change := i%3 == 0
		var f Function
		switch {
		case i%10 == 0: // sync
			if change {
				f = fn(name, TierSync, 3, load(5, 20, 12), lastScale(time.Hour))
			} else {
				f = fn(name, TierSync, 3, inflight(7), lastScale(time.Hour))
			}
		case i%10 < 7: // cron
			if change {
				f = fn(name, TierCron, 0, sched("1 12 * * *"))
			} else {
				// In the steady state a running job has its replicas and
				// an idle one is already at zero, waiting for its fire
				// (just-in-time prewarm).
				running := i % 2
				f = fn(name, TierCron, int32(4*running), sched(realistic(i)), lastRun(time.Duration(i%300)*time.Minute), lastScale(time.Hour), inflight(float64(11*running)),
					func(f *Function) { f.RunDuration = time.Duration(1+i%20) * time.Minute })
			}
		default: // async
			if change {
				f = fn(name, TierAsync, 0, pending(25), func(f *Function) { f.RunDuration = time.Duration(1+i%30) * time.Minute })
			} else {
				if i%4 == 0 { // idle since a few minutes: a candidate
					f = fn(name, TierAsync, 1, lastRun(time.Duration(1+i%4)*time.Minute), lastScale(time.Hour))
				} else { // busy with its 5 replicas
					f = fn(name, TierAsync, 5, inflight(14), lastRun(time.Second), lastScale(time.Hour))
				}
			}
		}
		place(&f)
		s.Functions = append(s.Functions, f)
	}
	return s, p
}

// BenchmarkDecide measures one plan on synthetic clusters. Besides ns/op it
// reports the median and 99th percentile in milliseconds, the actions,
// evictions and shortfalls of the plan, and allocations.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{100, 1000, 10000, 50000} {
		b.Run(fmt.Sprintf("functions=%d/nodes=%d/pods=%d", n, max(1, n/10), 3*n), func(b *testing.B) {
			s, p := synthetic(n)
			var plan *Plan
			durations := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				plan = Decide(s, p, t0)
				durations = append(durations, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(durations[len(durations)/2]), "p50-ms")
			b.ReportMetric(ms(durations[len(durations)*99/100]), "p99-ms")
			evictions := 0
			for _, a := range plan.Actions {
				if a.Reason == ReasonEvictForCapacity {
					evictions++
				}
			}
			b.ReportMetric(float64(len(plan.Actions)), "actions")
			b.ReportMetric(float64(evictions), "evictions")
			b.ReportMetric(float64(len(plan.Shortfalls)), "shortfalls")
			b.ReportMetric(float64(len(plan.Reservations)), "reservations")
		})
	}
}

func TestSyntheticWantsAThirdChanged(t *testing.T) {
	s, p := synthetic(3000)
	plan := Decide(s, p, t0)
	changed := map[string]bool{}
	for _, a := range plan.Actions {
		if a.Reason != ReasonEvictForCapacity {
			changed[a.Key()] = true
		}
	}
	for _, sf := range plan.Shortfalls {
		changed[sf.Key()] = true
	}
	// Every third function wants a change; each gets an action or a shortfall.
	if got := len(changed); got < 1000 {
		t.Fatalf("%d functions changed or short, want at least 1000", got)
	}
}

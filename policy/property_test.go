// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	stdcmp "cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The engine's invariants, checked over thousands of random snapshots
// (issue 10, item 27): tiers, schedules, metrics known or unknown, pods on
// nodes, quotas, holds and budgets.

var propSchedules = []string{"*/5 * * * *", "1 12 * * *", "3 12 * * *", "0 * * * *", "30 2 * * *", "59 11 * * *", "*/2 * * * *", "0 3 * * 1"}

// randomSnapshot builds a random but consistent snapshot: pods are bound
// only where they fit, the rest are pending.
func randomSnapshot(rng *rand.Rand) (*Snapshot, *Policy) {
	p := testPolicy()
	b := rng.IntN(6)
	p.Preemption.MaxEvictionsPerCycle = &b
	if rng.IntN(2) == 0 {
		f := false
		p.Tiers.Cron.ZeroWhenIdle = &f
	}
	if rng.IntN(5) == 0 {
		p.Preemption.Order = []Tier{TierAsync, TierCron}
	}
	s := &Snapshot{MetricsAvailable: rng.IntN(8) != 0}
	nodes := 1 + rng.IntN(5)
	for i := range nodes {
		s.Nodes = append(s.Nodes, Node{Name: fmt.Sprintf("n%d", i), Allocatable: Resources{int64(500 * (1 + rng.IntN(8))), int64(1+rng.IntN(8)) * gib, int64(2 + rng.IntN(20))},
			Schedulable: rng.IntN(8) != 0})
	}
	// Others' pods take some room.
	for i := range s.Nodes {
		s.Nodes[i].Requested = Resources{int64(rng.IntN(3)) * 250, int64(rng.IntN(3)) * 256 * mi, int64(rng.IntN(2))}
	}
	metric := func(v float64) Metric {
		if rng.IntN(6) == 0 {
			return Unknown
		}
		if rng.IntN(2) == 0 {
			return Known(0)
		}
		return Known(v)
	}
	// work is an in-flight or queued figure: mostly zero, so that idle
	// functions (eviction candidates) are common.
	work := func(v float64) Metric {
		switch rng.IntN(8) {
		case 0:
			return Unknown
		case 1, 2:
			return Known(v)
		default:
			return Known(0)
		}
	}
	ago := func(max time.Duration) time.Time {
		switch rng.IntN(4) {
		case 0:
			return time.Time{}
		default:
			return t0.Add(-time.Duration(rng.Int64N(int64(max))))
		}
	}
	n := rng.IntN(16)
	for i := range n {
		tier := []Tier{TierSync, TierCron, TierAsync}[rng.IntN(3)]
		f := Function{Name: fmt.Sprintf("f%02d", i), Namespace: []string{ns, "team-b"}[rng.IntN(2)], Tier: tier,
			Replicas: int32(rng.IntN(5)), MinReplicas: int32(rng.IntN(3)), MaxReplicas: int32(2 + rng.IntN(10)), MaxInflight: int32(rng.IntN(6)),
			Requests:   Resources{int64(100 * (1 + rng.IntN(10))), int64(64*(1+rng.IntN(8))) * mi, 1},
			Limits:     Resources{1000, 512 * mi, 0},
			Rejections: metric(rng.Float64() * 5), Invocations: metric(rng.Float64() * 30), Inflight: work(float64(1 + rng.IntN(10))),
			Duration: metric(rng.Float64() * 2), Pending: work(float64(1 + rng.IntN(60))),
			LastRun: ago([]time.Duration{4 * time.Minute, 3 * time.Hour}[rng.IntN(2)]), LastScale: ago(time.Hour),
			ActivationRequested: ago(20 * time.Minute),
			Hold:                rng.IntN(12) == 0,
		}
		if rng.IntN(10) == 0 {
			f.Tier = "bogus"
		}
		if f.MinReplicas > f.MaxReplicas {
			f.MinReplicas = f.MaxReplicas
		}
		if tier == TierCron {
			spec := propSchedules[rng.IntN(len(propSchedules))]
			schedule(spec)(&f)
			if rng.IntN(20) == 0 {
				f.Schedule, f.ScheduleSpec = neverSchedule{}, "0 0 30 2 *"
			}
		}
		if rng.IntN(3) == 0 {
			f.RunDuration = time.Duration(1+rng.IntN(40)) * time.Minute
		}
		if rng.IntN(6) == 0 {
			f.MemoryStep = &UsageStep{Resource: UsageMemory, At: ago(2 * time.Hour), From: 1, To: f.Replicas, Before: float64(rng.IntN(512)) * float64(mi)}
		}
		ready := int32(0)
		for k := range f.Replicas {
			j := rng.IntN(len(s.Nodes))
			nd := &s.Nodes[j]
			req := podRequest(&f)
			if !nd.Schedulable || !nd.Allocatable.Sub(nd.Requested).Fits(req) {
				f.PendingPods++
				continue
			}
			nd.Requested = nd.Requested.Add(req)
			r := rng.IntN(5) != 0
			if r {
				ready++
			}
			f.Pods = append(f.Pods, Pod{Name: fmt.Sprintf("%s-%d", f.Name, k), Node: nd.Name, Ready: r,
				CPU: metric(rng.Float64()), Memory: metric(float64(rng.IntN(512)) * float64(mi))})
		}
		f.ReadyReplicas = ready
		s.Functions = append(s.Functions, f)
	}
	if rng.IntN(2) == 0 {
		s.Quotas = map[string]Resources{ns: {int64(rng.IntN(2000)), Unlimited, int64(rng.IntN(6))}}
		if rng.IntN(2) == 0 {
			s.Quotas["team-b"] = Resources{Unlimited, int64(rng.IntN(2048)) * mi, Unlimited}
		}
	}
	return s, p
}

// checkInvariants returns every invariant the plan breaks.
func checkInvariants(s *Snapshot, p *Policy, plan *Plan) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	byKey := map[string]*Function{}
	for i := range s.Functions {
		byKey[s.Functions[i].Key()] = &s.Functions[i]
	}
	seen := map[string]bool{}
	evictions := 0
	for _, a := range plan.Actions {
		f := byKey[a.Key()]
		if f == nil {
			fail("action for an unknown function %s", a.Key())
			continue
		}
		if seen[a.Key()] {
			fail("two actions for %s", a.Key())
		}
		seen[a.Key()] = true
		if a.From != f.Replicas {
			fail("%s: action from %d, but it has %d", a.Key(), a.From, f.Replicas)
		}
		if f.Hold || !f.Tier.Valid() {
			fail("%s is held but gets %s %d->%d", a.Key(), a.Reason, a.From, a.To)
		}
		lo, _ := bounds(f)
		if f.Tier == TierSync && a.To < a.From && a.To < lo {
			fail("sync %s scaled to %d, below max(1, min)=%d", a.Key(), a.To, lo)
		}
		if a.Reason == ReasonEvictForCapacity {
			evictions++
		}
		if a.To != 0 || a.From == 0 {
			continue
		}
		// Zeroed or evicted.
		if f.Tier == TierSync {
			fail("sync %s zeroed (%s)", a.Key(), a.Reason)
		}
		if !s.MetricsAvailable {
			fail("%s zeroed while metrics are unavailable", a.Key())
		}
		if !f.Inflight.Known || f.Inflight.Value > 0 {
			fail("%s zeroed with in-flight work %s", a.Key(), f.Inflight)
		}
		if f.Pending.Known && f.Pending.Value > 0 || f.Tier == TierAsync && !f.Pending.Known {
			fail("%s zeroed with queued work %s", a.Key(), f.Pending)
		}
		if !f.LastScale.IsZero() && t0.Sub(f.LastScale) < p.Preemption.MinResidency.Duration {
			fail("%s zeroed within minResidency (scaled %s ago)", a.Key(), t0.Sub(f.LastScale))
		}
		if f.Tier == TierCron {
			next := f.Schedule.Next(t0.In(p.Location()))
			if next.IsZero() || next.Sub(t0) <= p.Tiers.Cron.Lookahead.Duration {
				fail("cron %s due at %s zeroed", a.Key(), next)
			}
		}
		if a.Reason == ReasonEvictForCapacity && !slices.Contains(p.Preemption.Order, f.Tier) {
			fail("%s evicted but its tier is not in the preemption order", a.Key())
		}
		if a.Reason == ReasonEvictForCapacity {
			if c := byKey[a.Claim]; c == nil || c.Hold || !c.Tier.Valid() {
				fail("%s evicted for %q, which is not a claim that may evict", a.Key(), a.Claim)
			}
		}
	}
	if evictions > p.MaxEvictions() {
		fail("%d evictions over the budget %d", evictions, p.MaxEvictions())
	}
	// Every cron fire inside the lookahead of a function that will be below
	// its floor holds a reservation, placed or forecast short; with no
	// running job to release room, all of its room is held.
	resv := map[string]*Reservation{}
	for i := range plan.Reservations {
		resv[plan.Reservations[i].Key()] = &plan.Reservations[i]
	}
	releases := false
	for i := range s.Functions {
		releases = releases || s.Functions[i].RunDuration > 0
	}
	for i := range s.Functions {
		f := &s.Functions[i]
		if f.Tier != TierCron || f.Hold || f.Schedule == nil {
			continue
		}
		next := f.Schedule.Next(t0.In(p.Location()))
		lo, _ := bounds(f)
		after, claimed := f.Replicas, f.PendingPods > 0
		for _, a := range plan.Actions {
			if a.Key() == f.Key() {
				after, claimed = a.To, claimed || a.To > a.From
			}
		}
		for _, sf := range plan.Shortfalls {
			claimed = claimed || sf.Key() == f.Key() && sf.Reason != ShortfallCronAtRisk
		}
		r := resv[f.Key()]
		switch {
		case next.IsZero() || claimed || after >= lo || next.Sub(t0) > p.Tiers.Cron.Lookahead.Duration:
		case r == nil:
			fail("cron %s fires at %s below its floor with no reservation", f.Key(), next.Format(time.TimeOnly))
		case r.Pods+r.Missing != lo-after:
			fail("cron %s reserves %d+%d pods, needs %d", f.Key(), r.Pods, r.Missing, lo-after)
		}
		if r != nil && r.Early {
			// Held by real pods: the function is prewarmed now.
			if !claimed && after < lo {
				fail("cron %s: reservation held early without a prewarm, going to %d", f.Key(), after)
			}
			continue
		}
		if r != nil && !releases {
			var held Resources
			for _, n := range r.Nodes {
				held = held.Add(n.Held)
			}
			req := podRequest(f)
			if want := (Resources{req.MilliCPU * int64(r.Pods), req.Memory * int64(r.Pods), int64(r.Pods)}); held != want {
				fail("cron %s: reservation holds %v, want all of %v", f.Key(), held, want)
			}
		}
	}
	bad = append(bad, checkFits(s, p, plan, byKey)...)
	return bad
}

// checkFits replays the plan's room independently: releases from zeroing
// and scale-downs, then each claim in the engine's order with the
// evictions made for it released first, and checks that every pod the plan
// places fits on some node (most free CPU first, as the engine places) and
// in its quota.
func checkFits(s *Snapshot, p *Policy, plan *Plan, byKey map[string]*Function) []string {
	var bad []string
	free := map[string]Resources{}
	var order []string
	for _, n := range s.Nodes {
		if n.Schedulable {
			free[n.Name] = n.Allocatable.Sub(n.Requested)
			order = append(order, n.Name)
		}
	}
	quota := map[string]Resources{}
	for k, v := range s.Quotas {
		quota[k] = v
	}
	releaseAll := func(f *Function) {
		for _, pod := range f.Pods {
			if r, ok := free[pod.Node]; ok {
				free[pod.Node] = r.Add(podRequest(f))
			}
		}
	}
	releaseQuota := func(f *Function, n int32) {
		if q, ok := quota[f.Namespace]; ok {
			r := podRequest(f)
			quota[f.Namespace] = q.Add(Resources{r.MilliCPU * int64(n), r.Memory * int64(n), int64(n)})
		}
	}
	evictedFor := map[string][]*Function{}
	for _, a := range plan.Actions {
		f := byKey[a.Key()]
		switch {
		case a.Reason == ReasonEvictForCapacity:
			// An eviction may replace a scale-down whose quota the engine
			// returned before any claim: the plan does not say how much,
			// so the replay returns all of it up front (optimistic for
			// quota, exact for nodes).
			evictedFor[a.Claim] = append(evictedFor[a.Claim], f)
			releaseQuota(f, int32(len(f.Pods))+f.PendingPods)
		case a.To == 0:
			releaseAll(f)
			releaseQuota(f, int32(len(f.Pods))+f.PendingPods)
		case a.To < a.From:
			releaseQuota(f, a.From-a.To)
		}
	}
	// A claim with a shortfall placed what it claimed less what is missing.
	shortOf := map[string]*Shortfall{}
	for i := range plan.Shortfalls {
		if sf := &plan.Shortfalls[i]; sf.Function != "" && sf.Reason != ShortfallCronAtRisk {
			shortOf[sf.Key()] = sf
		}
	}
	// Claims in the engine's order: class, then name. A claim's placed
	// pods are its pending pods left after a scale-down plus its growth,
	// less what its shortfall says is missing.
	// order is the engine's: sync, cron, then the cron functions held early
	// for a reservation, then async activations and async scale-ups.
	type claimed struct {
		f     *Function
		pods  int32
		order int
		class claimClass
		until int64
	}
	earlyHeld := map[string]bool{}
	for _, r := range plan.Reservations {
		earlyHeld[r.Key()] = r.Early
	}
	var claims []claimed
	for _, f := range byKey {
		var act *Action
		for i := range plan.Actions {
			if plan.Actions[i].Key() == f.Key() {
				act = &plan.Actions[i]
			}
		}
		pending := f.PendingPods
		class := tierClass(f.Tier)
		grow := int32(0)
		if act != nil && act.To < act.From {
			pending = max(0, pending-(act.From-act.To))
		}
		if act != nil && act.To > act.From {
			grow = act.To - act.From
			if act.Reason == ReasonActivateAsync {
				class = classAsyncActivation
			}
		}
		n := pending + grow
		if sf := shortOf[f.Key()]; sf != nil {
			n = sf.Claimed - int32(sf.Missing.Pods)
		}
		cl := claimed{f: f, pods: max(0, n), class: class, order: 2 * int(class)}
		if class == classCron && earlyHeld[f.Key()] && act != nil && act.To > act.From {
			cl.order++
		}
		if class >= classAsyncActivation {
			cl.until = t0.Add(asyncHorizon(f, p)).UnixNano()
		}
		claims = append(claims, cl)
	}
	slices.SortFunc(claims, func(a, b claimed) int {
		if a.order != b.order {
			return a.order - b.order
		}
		if c := stdcmp.Compare(a.until, b.until); c != 0 {
			return c
		}
		return compareFunctions(a.f, b.f)
	})
	// Async admissions leave the held room of every reservation that starts
	// before their work ends (issue 14): the invariant that no async
	// admission takes capacity reserved for a cron fire.
	type heldRoom struct {
		at   time.Time
		node string
		room Resources
	}
	var holds []heldRoom
	for _, r := range plan.Reservations {
		for _, n := range r.Nodes {
			holds = append(holds, heldRoom{r.Prewarm, n.Node, n.Held})
		}
	}
	slices.SortStableFunc(holds, func(a, b heldRoom) int { return a.at.Compare(b.at) })
	next := 0
	lastClass := classNone
	restore := func() {
		for _, h := range holds[:next] {
			if r, ok := free[h.node]; ok {
				free[h.node] = r.Add(h.room)
			}
		}
		next = 0
	}
	// place puts one pod on the roomiest node that fits, as the engine.
	place := func(f *Function, checkQuota bool) (ok, overQuota bool) {
		req := podRequest(f)
		if q, has := quota[f.Namespace]; has && !q.Fits(req) {
			return false, true
		}
		best := ""
		for _, n := range order {
			if free[n].Fits(req) && (best == "" || free[n].MilliCPU > free[best].MilliCPU ||
				free[n].MilliCPU == free[best].MilliCPU && (free[n].Memory > free[best].Memory || free[n].Memory == free[best].Memory && n < best)) {
				best = n
			}
		}
		if best == "" {
			return false, false
		}
		free[best] = free[best].Sub(req)
		if q, has := quota[f.Namespace]; has {
			quota[f.Namespace] = q.Sub(req)
		}
		return true, false
	}
	for _, cl := range claims {
		if cl.class != lastClass {
			restore()
			lastClass = cl.class
		}
		for ; cl.class >= classAsyncActivation && next < len(holds) && holds[next].at.Before(time.Unix(0, cl.until)); next++ {
			if r, ok := free[holds[next].node]; ok {
				free[holds[next].node] = r.Sub(holds[next].room)
			}
		}
		// As the engine: what fits now, then the evictions, then the rest.
		done := int32(0)
		for done < cl.pods {
			if ok, _ := place(cl.f, true); !ok {
				break
			}
			done++
		}
		if done == cl.pods {
			// (With a quota, the replay returned the evicted functions'
			// quota up front, so it may fit without them.)
			if _, q := quota[cl.f.Namespace]; len(evictedFor[cl.f.Key()]) > 0 && !q {
				bad = append(bad, fmt.Sprintf("%s: evictions made for a claim that fit without them", cl.f.Key()))
			}
		}
		for _, v := range evictedFor[cl.f.Key()] {
			releaseAll(v)
		}
		for ; done < cl.pods; done++ {
			ok, overQuota := place(cl.f, true)
			switch {
			case overQuota:
				bad = append(bad, fmt.Sprintf("%s: a placed pod is over its namespace quota", cl.f.Key()))
			case !ok:
				bad = append(bad, fmt.Sprintf("%s: a placed pod fits on no node", cl.f.Key()))
			}
			if !ok {
				break
			}
		}
	}
	return bad
}

func TestDecideInvariants(t *testing.T) {
	runs := 20000
	if testing.Short() {
		runs = 5000
	}
	var withEvictions, withQuotaEvictions, withShortfalls, withReservations, withForecasts int
	defer func() {
		t.Logf("%d plans: %d with evictions (%d in a namespace with a quota), %d with shortfalls, %d with reservations, %d with forecasts",
			runs, withEvictions, withQuotaEvictions, withShortfalls, withReservations, withForecasts)
		// A property test whose snapshots never exercise a rule proves
		// nothing about it.
		if withEvictions < runs/50 || withQuotaEvictions < runs/200 || withShortfalls < runs/5 || withReservations < runs/20 || withForecasts < runs/50 {
			t.Errorf("the generator exercises too few evictions or shortfalls")
		}
	}()
	for seed := range runs {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		s, p := randomSnapshot(rng)
		plan := Decide(s, p, t0)
		for _, a := range plan.Actions {
			if a.Reason == ReasonEvictForCapacity {
				withEvictions++
				if _, ok := s.Quotas[a.Namespace]; ok {
					withQuotaEvictions++
				}
				break
			}
		}
		if len(plan.Shortfalls) > 0 {
			withShortfalls++
		}
		if len(plan.Reservations) > 0 {
			withReservations++
		}
		if slices.ContainsFunc(plan.Shortfalls, func(sf Shortfall) bool { return sf.Reason == ShortfallCronAtRisk }) {
			withForecasts++
		}
		if bad := checkInvariants(s, p, plan); len(bad) > 0 {
			t.Fatalf("seed %d breaks invariants:\n  %s\nplan:\n  %s", seed, strings.Join(bad, "\n  "), strings.Join(summary(plan), "\n  "))
		}
		// The fast path only adds, and evicts nothing.
		fast := *s
		fast.Fast = true
		for _, a := range Decide(&fast, p, t0).Actions {
			if a.To <= a.From || a.Reason == ReasonEvictForCapacity {
				t.Fatalf("seed %d: the fast path planned %s %s %d->%d", seed, a.Key(), a.Reason, a.From, a.To)
			}
		}
		// The same input gives the same plan, whatever the order of the
		// functions and nodes.
		again := Decide(s, p, t0)
		if diff := cmp.Diff(plan, again); diff != "" {
			t.Fatalf("seed %d: the same input gave another plan:\n%s", seed, diff)
		}
		shuffled := *s
		shuffled.Functions = slices.Clone(s.Functions)
		rng.Shuffle(len(shuffled.Functions), func(i, j int) {
			shuffled.Functions[i], shuffled.Functions[j] = shuffled.Functions[j], shuffled.Functions[i]
		})
		if diff := cmp.Diff(summary(plan), summary(Decide(&shuffled, p, t0))); diff != "" {
			t.Fatalf("seed %d: the order of the functions changed the plan:\n%s", seed, diff)
		}
	}
}

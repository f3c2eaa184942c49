// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"cmp"
	"container/heap"
	"slices"
	"strconv"
	"strings"
	"time"
)

// text builds the explanations on hot paths without fmt: plans of thousands
// of actions format thousands of them.
type text []byte

func (t text) s(v string) text            { return append(t, v...) }
func (t text) i(v int64) text             { return strconv.AppendInt(t, v, 10) }
func (t text) f(v float64, prec int) text { return strconv.AppendFloat(t, v, 'f', prec, 64) }

// compareFunctions orders functions by name.namespace without building the
// key.
func compareFunctions(a, b *Function) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return strings.Compare(a.Namespace, b.Namespace)
}

// capacity models the room on each schedulable node and in each namespace's
// ResourceQuota while a plan is built. Pods are placed one at a time on the
// feasible node with the most free CPU, as the scheduler's default
// least-allocated scoring does; room is never summed across nodes.
type capacity struct {
	nodes  []nodeRoom
	byName map[string]int
	order  nodeHeap
	quota  map[string]Resources
	// epoch counts releases; a request that found no node stays unplaceable
	// until the next release, which noRoom remembers.
	epoch  int
	noRoom map[Resources]int
	// last is the node of the last pod placed; track, when set, adds up
	// the room placed on each node.
	last  int
	track []Resources
}

type nodeRoom struct {
	name  string
	free  Resources
	sched bool
	// pos is the node's index in the heap, -1 when not schedulable.
	pos int
}

func newCapacity(s *Snapshot) *capacity {
	c := &capacity{
		nodes:  make([]nodeRoom, len(s.Nodes)),
		byName: make(map[string]int, len(s.Nodes)),
		quota:  make(map[string]Resources, len(s.Quotas)),
		noRoom: map[Resources]int{},
	}
	c.order = nodeHeap{c: c, idx: make([]int, 0, len(s.Nodes))}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		c.nodes[i] = nodeRoom{name: n.Name, free: n.Allocatable.Sub(n.Requested), sched: n.Schedulable, pos: -1}
		c.byName[n.Name] = i
		if n.Schedulable {
			c.nodes[i].pos = len(c.order.idx)
			c.order.idx = append(c.order.idx, i)
		}
	}
	heap.Init(&c.order)
	for ns, q := range s.Quotas {
		c.quota[ns] = q
	}
	return c
}

// podRequest is the room one pod of f takes.
func podRequest(f *Function) Resources {
	r := f.Requests
	r.Pods = 1
	return r
}

// release returns the room of w's bound pods to their nodes and of all its
// pods (bound and pending) to its namespace's quota: it goes to zero.
func (c *capacity) release(w *want) {
	f := w.f
	c.releaseNodes(w)
	c.releaseQuota(f.Namespace, podRequest(f), int64(len(f.Pods))+int64(f.PendingPods))
}

// releaseNodes returns the room of w's bound pods to their nodes.
func (c *capacity) releaseNodes(w *want) {
	req := podRequest(w.f)
	for _, j := range w.nodes {
		if j >= 0 {
			c.nodes[j].free = c.nodes[j].free.Add(req)
			if c.nodes[j].pos >= 0 {
				heap.Fix(&c.order, c.nodes[j].pos)
			}
		}
	}
	c.epoch++
}

// locate records, once per plan, the index of the node of each of f's bound
// pods (-1 for a node the snapshot lacks): the hot paths then need no
// lookup by name.
func (c *capacity) locate(w *want, arena *[]int32) {
	f := w.f
	if len(*arena)+len(f.Pods) > cap(*arena) {
		*arena = make([]int32, 0, max(4096, 2*len(f.Pods)))
	}
	start := len(*arena)
	for i := range f.Pods {
		j, ok := c.byName[f.Pods[i].Node]
		if !ok {
			j = -1
		}
		*arena = append(*arena, int32(j))
	}
	w.nodes = (*arena)[start:len(*arena):len(*arena)]
}

// releaseQuota returns n pods' worth of quota.
func (c *capacity) releaseQuota(ns string, req Resources, n int64) {
	c.releaseQuotaRoom(ns, Resources{req.MilliCPU * n, req.Memory * n, req.Pods * n})
}

// releaseQuotaRoom returns room to a namespace's quota.
func (c *capacity) releaseQuotaRoom(ns string, r Resources) {
	if q, ok := c.quota[ns]; ok {
		c.quota[ns] = q.Add(r)
		c.epoch++
	}
}

// blocked says why a pod could not be placed.
type blocked int

const (
	notBlocked blocked = iota
	blockedByQuota
	blockedByNodes
)

// place puts one pod of req in namespace ns on a node, if one has room.
func (c *capacity) place(req Resources, ns string) blocked {
	if q, ok := c.quota[ns]; ok && !q.Fits(req) {
		return blockedByQuota
	}
	if e, ok := c.noRoom[req]; ok && e == c.epoch {
		return blockedByNodes
	}
	j := -1
	if len(c.order.idx) > 0 && c.nodes[c.order.idx[0]].free.Fits(req) {
		j = c.order.idx[0]
	} else {
		// The node with the most free CPU lacks memory or pod slots:
		// look at every node, keeping the most free CPU among those that fit.
		for _, k := range c.order.idx {
			if c.nodes[k].free.Fits(req) && (j < 0 || c.roomier(k, j)) {
				j = k
			}
		}
	}
	if j < 0 {
		c.noRoom[req] = c.epoch
		return blockedByNodes
	}
	c.nodes[j].free = c.nodes[j].free.Sub(req)
	heap.Fix(&c.order, c.nodes[j].pos)
	if q, ok := c.quota[ns]; ok {
		c.quota[ns] = q.Sub(req)
	}
	c.last = j
	if c.track != nil {
		c.track[j] = c.track[j].Add(req)
	}
	return notBlocked
}

// placeN places up to n pods of req in ns, one at a time, and says why it
// stopped short.
func (c *capacity) placeN(req Resources, ns string, n int32) (int32, blocked) {
	for placed := int32(0); placed < n; placed++ {
		if why := c.place(req, ns); why != notBlocked {
			return placed, why
		}
	}
	return n, notBlocked
}

// keepForFire returns the cron functions this plan takes to zero whose
// reservation for their next fire inside the lookahead does not fit, and
// cancels their decrease in their want.
func keepForFire(p *Policy, now time.Time, wants []want, rs []Reservation) []*want {
	short := map[string]bool{}
	for _, r := range rs {
		if r.Missing > 0 && r.Fire.Sub(now) <= p.Tiers.Cron.Lookahead.Duration {
			short[r.Key()] = true
		}
	}
	if len(short) == 0 {
		return nil
	}
	var keep []*want
	for i := range wants {
		w := &wants[i]
		if w.act >= 0 && w.f.Tier == TierCron && short[w.f.Key()] && w.reason == ReasonZeroIdle {
			w.set(w.f.Replicas, "", classNone, "")
			keep = append(keep, w)
		}
	}
	return keep
}

// occupy undoes the release of a decrease of f to the given replicas: its
// bound pods take their room again (all of it when it was going to zero)
// and its quota the pods it was giving back.
func (c *capacity) occupy(w *want, to int32) {
	f := w.f
	req := podRequest(f)
	if to == 0 {
		for _, j := range w.nodes {
			if j >= 0 {
				c.shrink(int(j), req)
			}
		}
		n := int64(len(f.Pods)) + int64(f.PendingPods)
		if q, ok := c.quota[f.Namespace]; ok {
			c.quota[f.Namespace] = q.Sub(Resources{req.MilliCPU * n, req.Memory * n, req.Pods * n})
		}
		return
	}
	n := int64(f.Replicas - to)
	if q, ok := c.quota[f.Namespace]; ok {
		c.quota[f.Namespace] = q.Sub(Resources{req.MilliCPU * n, req.Memory * n, req.Pods * n})
	}
}

// fitCount is how many pods of req fit in room (req.Pods is 1).
func fitCount(room, req Resources) int64 {
	n := room.Pods / max(1, req.Pods)
	if req.MilliCPU > 0 {
		n = min(n, room.MilliCPU/req.MilliCPU)
	}
	if req.Memory > 0 {
		n = min(n, room.Memory/req.Memory)
	}
	return max(0, n)
}

// nodeFit is how many pods of req the schedulable nodes hold now.
func (c *capacity) nodeFit(req Resources) int64 {
	n := int64(0)
	for _, j := range c.order.idx {
		n += fitCount(c.nodes[j].free, req)
	}
	return n
}

// nodeHeap orders schedulable nodes by free CPU, most first, then free
// memory, then name.
type nodeHeap struct {
	c   *capacity
	idx []int
}

func (h nodeHeap) Len() int           { return len(h.idx) }
func (h nodeHeap) Less(i, j int) bool { return h.c.roomier(h.idx[i], h.idx[j]) }

// roomier orders nodes j and k for placement: more free CPU first, then
// more free memory, then by name.
func (c *capacity) roomier(j, k int) bool {
	a, b := &c.nodes[j], &c.nodes[k]
	if a.free.MilliCPU != b.free.MilliCPU {
		return a.free.MilliCPU > b.free.MilliCPU
	}
	if a.free.Memory != b.free.Memory {
		return a.free.Memory > b.free.Memory
	}
	return a.name < b.name
}
func (h nodeHeap) Swap(i, j int) {
	h.idx[i], h.idx[j] = h.idx[j], h.idx[i]
	h.c.nodes[h.idx[i]].pos = i
	h.c.nodes[h.idx[j]].pos = j
}
func (h *nodeHeap) Push(x any) { h.idx = append(h.idx, x.(int)) }
func (h *nodeHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// claim is a function's need for room: new replicas plus pending pods.
type claim struct {
	w       *want
	pods    int32 // pods that need a node
	pending int32 // of which already exist, pending
	class   claimClass
	// until is when an async claim's work is expected to end (Unix
	// nanoseconds; 0 for other claims): its pods must leave the
	// reservations that start before then.
	until int64
	// drain is when the replicas an async claim admits are expected to
	// have worked off its queue (Unix nanoseconds; see drainHorizon).
	drain int64
}

// tierClass is the class of a claim made only of pending pods.
func tierClass(t Tier) claimClass {
	switch t {
	case TierSync:
		return classSync
	case TierCron:
		return classCron
	default:
		return classAsyncScaleUp
	}
}

// maxExplained bounds the shortfalls per plan whose message looks for the
// guarded functions that blocked them (a second eviction search each).
const maxExplained = 16

// fitCapacity turns the wants into actions: decreases first, then claims
// served in priority order with evictions, then shortfalls. A function gets
// at most one action: an eviction replaces the scale-down of its tier rule.
func fitCapacity(s *Snapshot, p *Policy, wants []want, plan *Plan, now time.Time) {
	c := newCapacity(s)
	// Size the plan once: at most one action per function, one check per
	// function that has one.
	nChecks := 0
	for i := range wants {
		if wants[i].check != nil {
			nChecks++
		}
	}
	plan.Actions = make([]Action, 0, len(wants))
	plan.Checks = make([]ReadinessCheck, 0, nChecks)
	rank := make(map[Tier]int, len(p.Preemption.Order))
	for i, t := range p.Preemption.Order {
		rank[t] = i + 1
	}
	var claims []claim
	var cands, guarded []*victim
	var vs victims
	var arena []int32
	for i := range wants {
		w := &wants[i]
		f := w.f
		c.locate(w, &arena)
		act := -1
		w.act = -1
		if w.desired < f.Replicas {
			act = len(plan.Actions)
			w.act = act
			plan.Actions = append(plan.Actions, action(w, w.desired, w.reason, "", w.why))
			if w.desired == 0 {
				c.release(w)
			} else {
				c.releaseQuota(f.Namespace, podRequest(f), int64(f.Replicas-w.desired))
			}
		}
		// A scale-down removes pending pods first.
		pending := max(0, f.PendingPods-max(0, f.Replicas-w.desired))
		grow := max(0, w.desired-f.Replicas)
		if grow+pending > 0 {
			cl := claim{w: w, pods: grow + pending, pending: pending, class: w.class}
			if grow == 0 {
				cl.class = tierClass(f.Tier)
			}
			if cl.class >= classAsyncActivation {
				cl.until = now.Add(asyncHorizon(f, p)).UnixNano()
				cl.drain = now.Add(drainHorizon(f, p, w.desired)).UnixNano()
			}
			w.claimed = true
			claims = append(claims, cl)
			continue
		}
		if w.check != nil && w.desired > 0 {
			w.checked = true
		}
		// OpenFaaS CE's provider puts a function at 0 back to 1: on CE
		// nothing is evicted.
		if w.desired == 0 || !s.MetricsAvailable || rank[f.Tier] == 0 || p.CE() {
			continue
		}
		switch {
		case w.evictable:
			cands = append(cands, vs.add(c, w, act, rank[f.Tier]))
		case w.guard != "":
			guarded = append(guarded, vs.add(c, w, act, rank[f.Tier]))
		}
	}
	// Async claims go shortest work first within their class: each must
	// leave the reservations that start before its work ends, and the room
	// they hold back only grows along the class.
	// The wants are in function order: a stable sort keeps it within a
	// class and a horizon.
	slices.SortStableFunc(claims, func(a, b claim) int {
		if a.class != b.class {
			return cmp.Compare(a.class, b.class)
		}
		return cmp.Compare(a.until, b.until)
	})
	byOrder := func(x, y *victim) int {
		if x.rank != y.rank {
			return cmp.Compare(x.rank, y.rank)
		}
		return x.w.f.LastRun.Compare(y.w.f.LastRun)
	}
	slices.SortStableFunc(cands, byOrder)
	slices.SortStableFunc(guarded, byOrder)

	e := newEvictor(c, cands)
	budget := max(0, p.MaxEvictions())
	var dropped []int
	explained := 0
	// The room sync claims take, per node, to tell a reservation they took.
	synced := make([]Resources, len(c.nodes))
	c.track = synced
	var rs *reserver
	class := classNone
	// reserveNow places the reservations once the sync and cron claims are
	// served, looking as far ahead as the longest async work.
	reserveNow := func(horizon time.Duration) {
		var forecasts []Shortfall
		plan.Reservations, forecasts, rs = reserve(c, p, now, wants, cands, synced, horizon)
		// A cron function going to zero just in time whose next fire would
		// not fit then keeps its replicas: zeroing would give its room
		// away.
		if keep := keepForFire(p, now, wants, plan.Reservations); len(keep) > 0 {
			for _, w := range keep {
				dropped = append(dropped, w.act)
				c.occupy(w, plan.Actions[w.act].To)
			}
			plan.Reservations, forecasts, rs = reserve(c, p, now, wants, cands, synced, horizon)
		}
		plan.Shortfalls = append(plan.Shortfalls, forecasts...)
		if !rs.blockFrom.IsZero() && rs.blockFrom.Sub(now) <= p.Tiers.Cron.Lookahead.Duration && s.MetricsAvailable && !s.Fast {
			reclaim(p, now, wants, cands, c, plan, rs.blockFrom)
		}
	}
	// cronShort: a cron claim of this plan (a prewarm) does not fit: no
	// async work is admitted in this plan, it would take the room the
	// prewarm is waiting for.
	cronShort := false
	for k := 0; k < len(claims); k++ {
		cl := claims[k]
		if cl.class >= classAsyncActivation && rs == nil {
			horizon := p.Tiers.Cron.Lookahead.Duration
			for _, a := range claims[k:] {
				horizon = max(horizon, time.Duration(a.until-now.UnixNano()))
			}
			reserveNow(horizon)
			// A reservation the async claims would take is held with real
			// pods: the cron function is prewarmed early.
			early, keep := prewarmEarly(p, now, c, wants, plan, rs, claims[k:])
			for _, w := range keep {
				// Its decrease goes (prewarmEarly took its room again).
				dropped = append(dropped, w.act)
			}
			if len(early) > 0 {
				// Serve the early prewarms first, from this iteration on.
				claims = slices.Insert(claims, k, early...)
				cl = claims[k]
			}
		}
		if cl.class != class {
			if rs != nil {
				rs.reset()
			}
			class = cl.class
			if class > classSync {
				c.track = nil
			}
		}
		f := cl.w.f
		req := podRequest(f)
		out := outcome{metrics: s.MetricsAvailable, held: cl.w.held}
		var placed int32
		why := blockedByNodes
		if rs != nil && cl.class >= classAsyncActivation {
			until := time.Unix(0, cl.until)
			rs.admit(until)
			// A fire that does not fit yet waits for the room busy async
			// replicas give back: admitted work that would still run at
			// its prewarm, one job or the queue it drains, would take it.
			out.cronFirst = cronShort || rs.blocks(until) || rs.blocks(time.Unix(0, cl.drain))
		}
		if !out.cronFirst {
			placed, why = c.placeN(req, f.Namespace, cl.pods)
		}
		if placed < cl.pods && s.MetricsAvailable && !cl.w.held && !out.cronFirst {
			var set []*victim
			set, out.overBudget = e.choose(req, f.Namespace, int64(cl.pods-placed), why, budget)
			if len(set) > 0 {
				budget -= len(set)
				out.evicted = len(set)
				for _, v := range set {
					v.evicted = true
					v.w.evicted = true
					c.releaseNodes(v.w)
					c.releaseQuotaRoom(v.w.f.Namespace, v.quota)
					if v.action >= 0 {
						dropped = append(dropped, v.action)
					}
				}
				more, again := c.placeN(req, f.Namespace, cl.pods-placed)
				placed += more
				why = again
				for k, v := range set {
					plan.Actions = append(plan.Actions, action(v.w, 0, ReasonEvictForCapacity, f.Key(), evictionWhy(v.w.f, f, cl, k, len(set), more)))
				}
			}
		}
		grow := max(0, placed-cl.pending)
		if grow > 0 {
			a := action(cl.w, f.Replicas+grow, cl.w.reason, "", cl.w.why)
			if cl.w.usage != nil {
				u := *cl.w.usage
				u.To = a.To
				a.UsageStep = &u
			}
			plan.Actions = append(plan.Actions, a)
		}
		if cl.w.check != nil && f.Replicas+grow > 0 {
			cl.w.checked = true
		}
		if placed < cl.pods && cl.class == classCron && cl.w.check != nil && s.MetricsAvailable {
			cronShort = true
		}
		if placed < cl.pods {
			missing := cl.pods - placed
			if why == blockedByNodes && !out.overBudget && out.metrics && !out.held && !out.cronFirst && explained < maxExplained {
				explained++
				out.guards = e.guards(req, f.Namespace, int64(missing), guarded)
			}
			plan.Shortfalls = append(plan.Shortfalls, shortfall(cl, req, missing, why, budget, out))
		}
	}
	if rs == nil {
		reserveNow(p.Tiers.Cron.Lookahead.Duration)
	} else {
		rs.reset()
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		kept := plan.Actions[:0]
		for i := range plan.Actions {
			if _, ok := slices.BinarySearch(dropped, i); !ok {
				kept = append(kept, plan.Actions[i])
			}
		}
		plan.Actions = kept
	}
	sortActions(plan.Actions)
	sortReservations(plan.Reservations)
	// Checks in function order, as the wants are.
	for i := range wants {
		if wants[i].checked {
			plan.Checks = append(plan.Checks, *wants[i].check)
		}
	}
}

// reclaim takes async functions with nothing queued (queue and in-flight
// known) down to what their scale-down would keep, ahead of their scale-down
// window, when a cron fire inside the lookahead does not fit: an idle one to
// its floor (zero once resident), a busy one to what its in-flight work needs
// at the target utilisation (want.keep), as its scale-down would once its
// window ended. The room comes back when the pods go; the reservation has it
// from the next cycle. Such a function is not evicted in the same plan.
func reclaim(p *Policy, now time.Time, wants []want, cands []*victim, c *capacity, plan *Plan, prewarm time.Time) {
	reclaimed := map[*want]bool{}
	for i := range wants {
		w := &wants[i]
		f := w.f
		if f.Tier != TierAsync || w.held || w.claimed || w.evicted || w.desired != f.Replicas {
			continue
		}
		if !f.Inflight.Known || !f.Pending.Known || f.Pending.Value > 0 {
			continue
		}
		// Zero once resident, as an eviction would; before, back to the
		// floor (a scale-down, which residency does not bound). A function
		// with work in flight keeps what its scale-down would keep once its
		// window ended (want.keep): the reclaim only comes earlier.
		to, _ := bounds(f)
		if f.LastScale.IsZero() || now.Sub(f.LastScale) >= p.Preemption.MinResidency.Duration {
			to = 0
		}
		busy := f.Inflight.Value > 0
		if busy {
			if !w.keepOK {
				continue
			}
			to = max(to, w.keep)
		}
		if f.Replicas <= to {
			continue
		}
		why := text(make([]byte, 0, 200))
		if busy {
			why = why.s("more replicas than its load needs (").f(f.Inflight.Value, 1).s(" in flight, nothing queued)")
		} else {
			why = why.s("idle (nothing in flight or queued)")
		}
		why = why.s(": to ").i(int64(to)).s(" before its idle and scale-down windows end, for a cron fire whose prewarm at ").
			s(prewarm.UTC().Format(time.RFC3339)).s(" does not fit yet")
		plan.Actions = append(plan.Actions, action(w, to, ReasonReclaimForCron, "", string(why)))
		if to == 0 {
			c.release(w)
		} else {
			c.releaseQuota(f.Namespace, podRequest(f), int64(f.Replicas-to))
		}
		w.desired = to
		reclaimed[w] = true
	}
	for _, v := range cands {
		if reclaimed[v.w] {
			v.evicted = true // keeps its floor: no second action
		}
	}
}

// outcome is what the eviction search said of a claim, for its shortfall.
type outcome struct {
	metrics, held bool
	// overBudget: evictions would have made more room than the budget
	// allowed.
	overBudget bool
	// cronFirst: an async claim held back for a reservation that does not
	// fit yet.
	cronFirst bool
	evicted   int
	// guards are the guarded functions whose room would have helped.
	guards []*victim
}

// victim is an idle function whose room an eviction could free: a
// candidate, or, to explain a shortfall, one a time-bound rule guards.
type victim struct {
	w *want
	// rooms is the room its bound pods take on each schedulable node.
	rooms []nodeShare
	// quota is the quota its eviction returns: its pods a scale-down of its
	// tier rule did not already return.
	quota Resources
	// action is the index of its scale-down action in the plan, -1 if none.
	action int
	// rank is its tier's place in the preemption order, from 1.
	rank    int
	evicted bool
}

type nodeShare struct {
	node int
	room Resources
}

// victims allocates the victims of a plan in slabs: thousands of idle
// functions are candidates.
type victims struct {
	slab  []victim
	rooms []nodeShare
}

func (vs *victims) add(c *capacity, w *want, act, rank int) *victim {
	if len(vs.slab) == cap(vs.slab) {
		vs.slab = make([]victim, 0, 256)
	}
	vs.slab = append(vs.slab, victim{w: w, action: act, rank: rank})
	v := &vs.slab[len(vs.slab)-1]
	f := w.f
	req := podRequest(f)
	start := len(vs.rooms)
	for _, jj := range w.nodes {
		j := int(jj)
		if j < 0 || !c.nodes[j].sched {
			continue
		}
		k := slices.IndexFunc(vs.rooms[start:], func(s nodeShare) bool { return s.node == j })
		if k < 0 {
			if len(vs.rooms) == cap(vs.rooms) {
				// A new arena: the victim's rooms must stay contiguous.
				grown := make([]nodeShare, len(vs.rooms)-start, max(1024, 2*(len(vs.rooms)-start)))
				copy(grown, vs.rooms[start:])
				vs.rooms, start = grown, 0
			}
			vs.rooms = append(vs.rooms, nodeShare{node: j})
			k = len(vs.rooms) - 1 - start
		}
		vs.rooms[start+k].room = vs.rooms[start+k].room.Add(req)
	}
	v.rooms = vs.rooms[start:len(vs.rooms):len(vs.rooms)]
	n := int64(len(f.Pods)) + int64(f.PendingPods) - int64(max(0, f.Replicas-w.desired))
	n = max(0, n)
	v.quota = Resources{req.MilliCPU * n, req.Memory * n, req.Pods * n}
	return v
}

// evictor chooses the set of evictions that makes a claim fit, node by node
// and within its namespace's quota.
type evictor struct {
	c    *capacity
	pool []*victim
	// extra is the room a tentative set frees, per node; touched lists the
	// nodes it changed.
	extra   []Resources
	touched []int
	// noHelp remembers, by request and namespace, the release epoch at
	// which no set of candidates could help: until the next release, room
	// only shrinks and candidates only go.
	noHelp map[helpKey]int
	// spent remembers, once the budget is spent, whether evictions could
	// have helped a request.
	spent map[helpKey]bool
}

type helpKey struct {
	req Resources
	ns  string
}

func newEvictor(c *capacity, pool []*victim) *evictor {
	return &evictor{c: c, pool: pool, extra: make([]Resources, len(c.nodes)), noHelp: map[helpKey]int{}, spent: map[helpKey]bool{}}
}

// choose returns the evictions, in preemption order, that let up to want
// more pods of req be placed in ns, and whether the budget cut them short.
// It finds the most pods the candidates can make room for, then the
// smallest set it can for that, and if that set is over the budget, the
// most pods a set within the budget makes room for.
func (e *evictor) choose(req Resources, ns string, want int64, why blocked, budget int) ([]*victim, bool) {
	key := helpKey{req, ns}
	if ep, ok := e.noHelp[key]; ok && ep == e.c.epoch {
		return nil, false
	}
	if budget == 0 {
		// Only the reason of the shortfall is at stake: whether evictions
		// could have helped. Once the budget is spent, room only shrinks
		// (or comes back at the class boundaries), so the answer for a
		// request is kept.
		if v, ok := e.spent[key]; ok {
			return nil, v
		}
		_, reach := e.search(req, ns, want, e.base(req, why), e.pool, nil)
		e.spent[key] = reach > 0
		return nil, reach > 0
	}
	base := e.base(req, why)
	set, reach := e.search(req, ns, want, base, e.pool, nil)
	if reach == 0 {
		e.noHelp[key] = e.c.epoch
		return nil, false
	}
	if len(set) <= budget {
		return set, false
	}
	var best []*victim
	if budget > 0 {
		for lo, hi := int64(1), reach-1; lo <= hi; {
			mid := (lo + hi) / 2
			if s, _ := e.search(req, ns, mid, base, e.pool, nil); len(s) <= budget {
				best, lo = s, mid+1
			} else {
				hi = mid - 1
			}
		}
	}
	return best, true
}

// base is how many pods of req the nodes hold without evictions: none when
// the nodes blocked the placement, else (the quota blocked first) what they
// hold.
func (e *evictor) base(req Resources, why blocked) int64 {
	if why == blockedByQuota {
		return e.c.nodeFit(req)
	}
	return 0
}

// guards returns the guarded functions among the smallest set of
// candidates and guarded functions (guarded ones last) that would make room
// for want pods: the rules that blocked the claim.
func (e *evictor) guards(req Resources, ns string, want int64, guarded []*victim) []*victim {
	if len(guarded) == 0 {
		return nil
	}
	set, _ := e.search(req, ns, want, 0, e.pool, guarded)
	var out []*victim
	for _, v := range set {
		if !v.w.evictable {
			out = append(out, v)
		}
	}
	return out
}

// search adds victims of pool, then of more, in order, until want pods of
// req fit in ns, then drops, newest first, every one the fit does not need.
// base is how many pods the nodes hold without evictions. It returns the set
// and how many pods it makes room for (at most want).
func (e *evictor) search(req Resources, ns string, want, base int64, pool, more []*victim) ([]*victim, int64) {
	q, hasQuota := e.c.quota[ns]
	var qx Resources
	nodes := base
	fit := func() int64 {
		if hasQuota {
			return min(nodes, fitCount(q.Add(qx), req))
		}
		return nodes
	}
	move := func(v *victim, add bool) {
		for _, s := range v.rooms {
			free := e.c.nodes[s.node].free
			before := fitCount(free.Add(e.extra[s.node]), req)
			if add {
				if e.extra[s.node] == (Resources{}) {
					e.touched = append(e.touched, s.node)
				}
				e.extra[s.node] = e.extra[s.node].Add(s.room)
			} else {
				e.extra[s.node] = e.extra[s.node].Sub(s.room)
			}
			nodes += fitCount(free.Add(e.extra[s.node]), req) - before
		}
		if v.w.f.Namespace == ns {
			if add {
				qx = qx.Add(v.quota)
			} else {
				qx = qx.Sub(v.quota)
			}
		}
	}
	defer func() {
		for _, j := range e.touched {
			e.extra[j] = Resources{}
		}
		e.touched = e.touched[:0]
	}()
	var set []*victim
	done := false
	for _, list := range [][]*victim{pool, more} {
		for _, v := range list {
			if done {
				break
			}
			if v.evicted || len(v.rooms) == 0 && (!hasQuota || v.w.f.Namespace != ns) {
				continue
			}
			move(v, true)
			set = append(set, v)
			done = fit() >= want
		}
	}
	reach := min(fit(), want)
	if reach <= 0 {
		return nil, 0
	}
	for i := len(set) - 1; i >= 0; i-- {
		move(set[i], false)
		if fit() >= reach {
			set[i] = nil
			continue
		}
		move(set[i], true)
	}
	return slices.DeleteFunc(set, func(v *victim) bool { return v == nil }), reach
}

func claimReason(cl claim) string {
	if cl.w.reason != "" && cl.w.desired > cl.w.f.Replicas {
		return string(cl.w.reason)
	}
	return "pending pods"
}

func evictionWhy(victim, claimant *Function, cl claim, k, n int, pods int32) string {
	b := text(make([]byte, 0, 160)).s("idle ").s(string(victim.Tier)).s(" function (last run ").s(lastRunText(victim.LastRun)).s(") zeroed")
	if n > 1 {
		b = b.s(", ").i(int64(k + 1)).s(" of ").i(int64(n)).s(" evictions that")
	} else {
		b = b.s(" to")
	}
	b = b.s(" make room for ").i(int64(pods)).s(" pod(s) of ").s(string(claimant.Tier)).s(" ").s(claimant.Key()).s(" (").s(claimReason(cl)).s(")")
	return string(b)
}

func action(w *want, to int32, reason Reason, claim, why string) Action {
	f := w.f
	return Action{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, From: f.Replicas, To: to, Reason: reason, Claim: claim, Explanation: why}
}

// maxGuardsNamed bounds the guarded functions a shortfall message names.
const maxGuardsNamed = 3

func shortfall(cl claim, req Resources, missing int32, why blocked, budget int, out outcome) Shortfall {
	f := cl.w.f
	n := int64(missing)
	sf := Shortfall{
		Function: f.Name, Namespace: f.Namespace, Tier: f.Tier,
		Missing: Resources{req.MilliCPU * n, req.Memory * n, n}, Claimed: cl.pods,
	}
	if cl.w.check != nil {
		sf.Deadline = cl.w.check.Deadline
	}
	b := text(make([]byte, 0, 160)).i(n).s(" of ").i(int64(cl.pods)).s(" pod(s) of ").s(f.Name).s(".").s(f.Namespace).
		s(" (").s(claimReason(cl)).s(") do not fit")
	switch {
	case why == blockedByQuota:
		sf.Reason = ShortfallQuota
		b = b.s(": the ResourceQuota of namespace ").s(f.Namespace).s(" has no room")
	case out.overBudget:
		sf.Reason = ShortfallBudget
		b = b.s(": evicting more idle functions would make room, but the eviction budget of this cycle (").i(int64(budget)).s(" left) is too small")
	default:
		sf.Reason = ShortfallCapacity
		b = b.s(": no node has room")
		switch {
		case out.cronFirst:
			b = b.s(" outside the room cron fires need: a reservation that does not fit yet waits for the room async replicas give back")
		case !out.metrics:
			b = b.s(" and nothing is evicted while metrics are unavailable")
		case out.held:
			b = b.s(" and tierscaler evicts nothing for a function it holds (invalid metadata or a provider revert)")
		case len(out.guards) > 0:
			b = b.s(": ")
			for i, v := range out.guards {
				if i == maxGuardsNamed {
					b = b.s("; and ").i(int64(len(out.guards) - maxGuardsNamed)).s(" more")
					break
				}
				if i > 0 {
					b = b.s("; ")
				}
				b = b.s(v.w.f.Key()).s(" is idle but protected by ").s(v.w.guard).s(" until ").s(v.w.guardUntil.UTC().Format(time.RFC3339))
			}
		case out.evicted > 0:
			b = b.s(" even after ").i(int64(out.evicted)).s(" eviction(s)")
		default:
			b = b.s(" and no idle function's room would help")
		}
	}
	if !sf.Deadline.IsZero() {
		b = b.s(" (needed by ").s(sf.Deadline.UTC().Format(time.RFC3339)).s(")")
	}
	sf.Message = string(b)
	return sf
}

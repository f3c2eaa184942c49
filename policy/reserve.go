// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strings"
	"time"
)

// Reservations hold capacity for scheduled work (issue 14).
//
// Cron fires are the part of the load known in advance. Each fire in the
// planning horizon of a cron function that will not have its replicas then
// holds a reservation: its pods, placed node by node on the room the plan
// expects at its prewarm time. That room is the room free now, plus the room
// of the idle functions a prewarm may evict, plus what running cron jobs
// will have released by then. Async admissions (activations and scale-ups)
// then go only where they leave every reservation that starts before their
// work is expected to end the part of its room it takes from the room free
// now. Sync claims are served before reservations are placed: they outrank
// them, and a reservation they take is reported. A fire inside the lookahead
// whose reservation cannot be placed is a forecast shortfall
// (cron-at-risk), raised before the fire.

// Reservation is the room a cron fire holds.
type Reservation struct {
	Function  string `json:"function"`
	Namespace string `json:"namespace"`
	// Fire is the fire time; Prewarm when its pods are started (the fire
	// time less the prewarm lead).
	Fire    time.Time `json:"fire"`
	Prewarm time.Time `json:"prewarm"`
	// Pods are the pods reserved, on Nodes; Missing those that could not
	// be placed.
	Pods    int32          `json:"pods"`
	Missing int32          `json:"missing,omitempty"`
	Nodes   []ReservedNode `json:"nodes,omitempty"`
	// TakenBySync: sync claims of this plan took room the reservation
	// would have had.
	TakenBySync bool `json:"takenBySync,omitempty"`
	// Early: async work admitted now would overlap the prewarm, so the
	// function is prewarmed now and its pods hold the room (no Nodes).
	Early bool `json:"early,omitempty"`
}

// Key is the OpenFaaS function_name of the reservation's function.
func (r *Reservation) Key() string { return r.Function + "." + r.Namespace }

// ReservedNode is the part of a reservation on one node.
type ReservedNode struct {
	Node string `json:"node"`
	Pods int32  `json:"pods"`
	// Held is the part of the reserved room that async admissions leave
	// alone: all of it but what running jobs will have released by the
	// prewarm.
	Held Resources `json:"held"`
}

// asyncHorizon is how long an async replica admitted now is expected to
// hold its room: as long as one of its jobs usually runs (the learned run
// duration, else the mean duration now, else the lookahead), and at least as
// long as the tier rules keep a replica once added (the scale-down window,
// idleAfter and the minimum residency). A replica whose queue keeps it busy
// holds its room longer, but it is decided again every cycle; a deep queue
// must not push its horizon past every fire of the night and starve it.
func asyncHorizon(f *Function, p *Policy) time.Duration {
	run := f.RunDuration
	if run <= 0 && f.Duration.Known && f.Duration.Value > 0 {
		run = time.Duration(f.Duration.Value * float64(time.Second))
	}
	if run <= 0 {
		run = p.Tiers.Cron.Lookahead.Duration
	}
	floor := max(p.Tiers.Sync.ScaleDownWindow.Duration, p.Tiers.Async.IdleAfter.Duration, p.Preemption.MinResidency.Duration)
	return min(max(run, floor, p.Interval.Duration), MaxWindow)
}

// drainHorizon is how long the replicas of an async function that this plan
// admits (desired in all) are expected to stay busy: its queued and
// in-flight work shared over them, each job taking its run duration (as
// asyncHorizon reads it), and at least asyncHorizon. A replica takes the next
// job as soon as one ends, and a function with work is never evicted, so
// admitted work holds its room until the queue is worked off, not for one
// job. An unknown queue or in-flight count adds nothing (the activation
// rules do not admit such a function on it). It is
// used only while a fire does not fit yet (reserver.blocks): the admission
// then waits, and the room the busy replicas give back goes to the fire.
// asyncHorizon stays the horizon of the reservations an admission must
// leave, so that a deep queue does not keep a function out all night.
func drainHorizon(f *Function, p *Policy, desired int32) time.Duration {
	h := asyncHorizon(f, p)
	run := f.RunDuration
	if run <= 0 && f.Duration.Known && f.Duration.Value > 0 {
		run = time.Duration(f.Duration.Value * float64(time.Second))
	}
	if run <= 0 || desired <= 0 {
		return h
	}
	var backlog float64
	if f.Pending.Known && f.Pending.Value > 0 {
		backlog += f.Pending.Value
	}
	if f.Inflight.Known && f.Inflight.Value > 0 {
		backlog += f.Inflight.Value
	}
	rounds := math.Ceil(backlog / (float64(desired) * float64(max(1, f.MaxInflight))))
	if rounds*float64(run) >= float64(MaxWindow) {
		return MaxWindow
	}
	return min(max(h, time.Duration(rounds)*run), MaxWindow)
}

// held is the free-now part of a reservation on one node, from its prewarm
// time on.
type held struct {
	prewarm time.Time
	node    int
	room    Resources
	key     string
}

// reserver builds the reservations of a plan and applies them to async
// admissions.
type reserver struct {
	c    *capacity
	held []held
	next int // held[:next] are subtracted from c
	// blockFrom is the earliest prewarm of a reservation that does not fit
	// now but would once async replicas are gone: async work that would
	// still run then is not admitted at all (zero: none).
	blockFrom time.Time
	// wants are the reservations' functions, in the plan's order of
	// reservations until they are sorted.
	wants []*want
}

// release is room a running cron job gives back when it ends.
type release struct {
	at int64 // Unix nanoseconds
	w  *want
}

// reserve places the reservations of the cron fires in (now, now+horizon]
// and returns them with the forecast shortfalls of the fires inside the
// lookahead that do not fit. c is the room after the sync and cron claims
// of this plan; synced is the room those sync claims took, per node.
func reserve(c *capacity, p *Policy, now time.Time, wants []want, pool []*victim,
	synced []Resources, horizon time.Duration) ([]Reservation, []Shortfall, *reserver) {
	type fire struct {
		w    *want
		pods int32
	}
	var fires []fire
	var rels []release
	grace := p.Tiers.Cron.GracePeriod.Duration
	for i := range wants {
		w := &wants[i]
		f := w.f
		if f.Tier != TierCron || w.held || w.fire.IsZero() {
			continue
		}
		after := w.desired
		if w.evicted {
			after = 0
		}
		if w.claimed {
			// A prewarm or scale-up of this plan: its claim speaks for the
			// fire.
			continue
		}
		lo, _ := bounds(f)
		if after < lo && w.fire.Sub(now) <= horizon {
			fires = append(fires, fire{w, lo - after})
		}
		// A running job releases its room when it ends and its grace has
		// passed, unless the function fires again before it would go.
		if after > 0 && f.RunDuration > 0 && f.Inflight.Known && f.Inflight.Value > 0 {
			at := now.Add(f.RunDuration + grace)
			if w.fire.Sub(at) > w.lead+p.Interval.Duration+p.Preemption.MinResidency.Duration {
				rels = append(rels, release{at.UnixNano(), w})
			}
		}
	}
	rs := &reserver{c: c}
	if len(fires) == 0 {
		return nil, nil, rs
	}
	slices.SortFunc(fires, func(a, b fire) int {
		if c := a.w.fire.Compare(b.w.fire); c != 0 {
			return c
		}
		return compareFunctions(a.w.f, b.w.f)
	})
	slices.SortStableFunc(rels, func(a, b release) int { return cmp.Compare(a.at, b.at) })

	// The room then: free now, plus the idle functions' room.
	fut := c.clone()
	n := len(c.nodes)
	rel := make([]Resources, n)
	resv := make([]Resources, n)
	for _, v := range pool {
		// An idle async function may get work from its queue at any
		// moment, and then it cannot be evicted: only idle cron functions'
		// room is counted on.
		if v.evicted || v.w.f.Tier != TierCron {
			continue
		}
		for _, s := range v.rooms {
			fut.nodes[s.node].free = fut.nodes[s.node].free.Add(s.room)
		}
	}
	heap.Init(&fut.order)
	out := make([]Reservation, 0, len(fires))
	var forecasts []Shortfall
	lookahead := p.Tiers.Cron.Lookahead.Duration
	r := 0
	explained := 0
	for _, fr := range fires {
		f := fr.w.f
		prewarm := fr.w.fire.Add(-fr.w.lead)
		for ; r < len(rels) && rels[r].at <= prewarm.UnixNano(); r++ {
			room := podRequest(rels[r].w.f)
			for _, j := range rels[r].w.nodes {
				if j >= 0 && c.nodes[j].sched {
					rel[j] = rel[j].Add(room)
					fut.grow(int(j), room)
				}
			}
		}
		req := podRequest(f)
		res := Reservation{Function: f.Name, Namespace: f.Namespace, Fire: fr.w.fire, Prewarm: prewarm}
		for range fr.pods {
			j, ok := fut.placeNode(req, f.Namespace)
			if !ok {
				break
			}
			// What async admissions must leave is the reserved room the
			// releases do not cover: the idle functions' room counts for
			// the forecast, but an async claim may not evict them for it.
			before := deficit(resv[j], rel[j])
			resv[j] = resv[j].Add(req)
			part := deficit(resv[j], rel[j]).Sub(before)
			k := slices.IndexFunc(res.Nodes, func(x ReservedNode) bool { return x.Node == c.nodes[j].name })
			if k < 0 {
				res.Nodes = append(res.Nodes, ReservedNode{Node: c.nodes[j].name})
				k = len(res.Nodes) - 1
			}
			res.Nodes[k].Pods++
			res.Nodes[k].Held = res.Nodes[k].Held.Add(part)
			if part != (Resources{}) {
				rs.held = append(rs.held, held{prewarm: prewarm, node: j, room: part, key: f.Key()})
			}
			res.Pods++
		}
		res.Missing = fr.pods - res.Pods
		if res.Missing > 0 && explained < maxExplained {
			explained++
			res.TakenBySync = fut.fitsWith(req, synced)
		}
		out = append(out, res)
		rs.wants = append(rs.wants, fr.w)
		if res.Missing > 0 && fr.w.fire.Sub(now) <= lookahead {
			forecasts = append(forecasts, forecast(f, &res, req))
		}
	}
	slices.SortStableFunc(rs.held, func(a, b held) int { return a.prewarm.Compare(b.prewarm) })
	rs.blockFrom = blockFrom(fut, wants, out, rs.wants)
	return out, forecasts, rs
}

// blockFrom returns the earliest prewarm among the reservations that do not
// fit now but would fit on a node once the async replicas there are gone:
// the async work admitted now would take the room those replicas give back,
// and a running async job is never evicted. Zero when there is none.
func blockFrom(fut *capacity, wants []want, rs []Reservation, of []*want) time.Time {
	var async []Resources
	var from time.Time
	for i := range rs {
		r := &rs[i]
		if r.Missing == 0 || !from.IsZero() && !r.Prewarm.Before(from) {
			continue
		}
		if async == nil {
			async = make([]Resources, len(fut.nodes))
			for k := range wants {
				f := wants[k].f
				if f.Tier != TierAsync {
					continue
				}
				req := podRequest(f)
				for _, j := range wants[k].nodes {
					if j >= 0 {
						async[j] = async[j].Add(req)
					}
				}
			}
		}
		req := podRequest(of[i].f)
		for _, j := range fut.order.idx {
			if fut.nodes[j].free.Add(async[j]).Fits(req) {
				from = r.Prewarm
				break
			}
		}
	}
	return from
}

// blocks reports whether async work expected to run until then must wait
// for a reservation that does not fit yet.
func (rs *reserver) blocks(until time.Time) bool {
	return !rs.blockFrom.IsZero() && until.After(rs.blockFrom)
}

// deficit is the part of reserved room on a node that the releases do not
// cover: the room async admissions must leave.
func deficit(reserved, rel Resources) Resources {
	d := reserved.Sub(rel)
	return Resources{max(0, d.MilliCPU), max(0, d.Memory), max(0, d.Pods)}
}

func forecast(f *Function, r *Reservation, req Resources) Shortfall {
	n := int64(r.Missing)
	b := text(make([]byte, 0, 200)).s(f.Key()).s(" fires at ").s(r.Fire.UTC().Format(time.RFC3339)).s(": ").i(n).s(" of ").
		i(int64(r.Pods + r.Missing)).s(" pod(s) will not fit at its prewarm (").s(r.Prewarm.UTC().Format(time.RFC3339)).
		s("), counting the room free now, the idle functions a prewarm may evict and the running jobs that will have ended")
	if r.TakenBySync {
		b = b.s("; sync claims of this cycle took the room it would have had")
	}
	return Shortfall{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, Reason: ShortfallCronAtRisk,
		Missing: Resources{req.MilliCPU * n, req.Memory * n, n}, Claimed: r.Pods + r.Missing, Deadline: r.Fire, Message: string(b)}
}

// admit subtracts from the room free now the reserved parts of every
// reservation whose prewarm comes before until: an async admission whose
// work ends then must leave them. Calls must not decrease until between
// resets.
func (rs *reserver) admit(until time.Time) {
	for ; rs.next < len(rs.held) && rs.held[rs.next].prewarm.Before(until); rs.next++ {
		h := &rs.held[rs.next]
		rs.c.shrink(h.node, h.room)
	}
}

// reset gives the subtracted room back.
func (rs *reserver) reset() {
	for i := range rs.next {
		rs.c.grow(rs.held[i].node, rs.held[i].room)
	}
	rs.next = 0
}

// prewarmEarly turns into prewarm claims the reservations inside the
// lookahead that the async claims of this plan would take: placed as the
// scheduler would place them, which knows nothing of reservations, the
// async pods whose work still runs at a reservation's prewarm leave it no
// room. Their room is then held by real pods, where the scheduler sees it.
// One reservation at a time, earliest fire first, until the async claims
// leave every other one its room. It drops their held room from rs and
// returns the claims, each with its readiness check, and the functions that
// keep the replicas this plan was taking from them (a cron function going to
// zero just in time keeps its room instead; its room is taken again in c).
func prewarmEarly(p *Policy, now time.Time, c *capacity, wants []want, plan *Plan, rs *reserver, async []claim) ([]claim, []*want) {
	var pending []*Reservation
	for i := range plan.Reservations {
		r := &plan.Reservations[i]
		if r.Pods > 0 && r.Fire.Sub(now) <= p.Tiers.Cron.Lookahead.Duration {
			pending = append(pending, r)
		}
	}
	if len(pending) == 0 || len(async) == 0 {
		return nil, nil
	}
	byKey := make(map[string]*want, len(pending))
	for i := range plan.Reservations {
		byKey[plan.Reservations[i].Key()] = rs.wants[i]
	}
	var out []claim
	var keep []*want
	early := map[string]bool{}
	// A function kept from going to zero takes its room again, which may
	// leave another reservation short: pass again until none is kept.
	for again := true; again; {
		again = false
		for k := range taken(c, pending, out, async, byKey, early) {
			early[k] = true
		}
		for _, r := range pending { // in fire order: a map's order would vary
			if !early[r.Key()] {
				continue
			}
			w := byKey[r.Key()]
			f := w.f
			if w.claimed || w.kept {
				continue
			}
			lo, _ := bounds(f)
			if w.desired < f.Replicas && w.act >= 0 {
				// Going to zero just in time: it keeps its replicas instead.
				keep = append(keep, w)
				w.kept, again = true, true
				c.occupy(w, w.desired)
				if f.Replicas >= lo {
					w.set(f.Replicas, "", classNone, "")
					continue
				}
			}
			w.check = &ReadinessCheck{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, Kind: CheckPrewarm, Deadline: w.fire, MinReady: 1}
			w.set(lo, ReasonPrewarmCron, classCron, "held early for its fire at "+w.fire.UTC().Format(time.RFC3339)+
				": the async work of this cycle would still run at its prewarm ("+w.fire.Add(-w.lead).UTC().Format(time.RFC3339)+") and take its room")
			w.claimed = true
			pendingPods := max(0, f.PendingPods-max(0, f.Replicas-w.desired))
			out = append(out, claim{w: w, pods: lo - f.Replicas + pendingPods, pending: pendingPods, class: classCron})
		}
	}
	if len(early) == 0 {
		return nil, nil
	}
	// Their room is held by their pods now.
	kept := rs.held[:0]
	for _, h := range rs.held {
		if !early[h.key] {
			kept = append(kept, h)
		}
	}
	rs.held = kept
	for i := range plan.Reservations {
		if early[plan.Reservations[i].Key()] {
			plan.Reservations[i].Early = true
			plan.Reservations[i].Nodes = nil
		}
	}
	return out, keep
}

// taken returns the reservations that have no room left at their prewarm
// once the async claims are placed as the scheduler would place them: in one
// pass, fire order, the async pods whose work ends before a prewarm giving
// their room back as the pass goes, each reservation taking its room from
// what is left. A reservation found without room is held early, and the
// pass goes on as if its room were taken: the early prewarms are served
// before the async claims, so this errs towards holding more.
func taken(c *capacity, pending []*Reservation, early, async []claim, byKey map[string]*want, held map[string]bool) map[string]bool {
	what := c.clone()
	// The early prewarms go first.
	for _, cl := range early {
		what.placeN(podRequest(cl.w.f), cl.w.f.Namespace, cl.pods)
	}
	type placed struct {
		until int64
		node  int
		req   Resources
	}
	var admitted []placed
	for _, a := range async {
		req := podRequest(a.w.f)
		for range a.pods {
			j, ok := what.placeNode(req, a.w.f.Namespace)
			if !ok {
				break
			}
			admitted = append(admitted, placed{a.until, j, req})
		}
	}
	slices.SortFunc(admitted, func(a, b placed) int { return cmp.Compare(a.until, b.until) })
	out := map[string]bool{}
	next := 0
	for _, r := range pending {
		w := byKey[r.Key()]
		if w == nil || held[r.Key()] {
			continue
		}
		// The async pods that end before this prewarm give their room back.
		for ; next < len(admitted) && admitted[next].until <= r.Prewarm.UnixNano(); next++ {
			what.grow(admitted[next].node, admitted[next].req)
		}
		req := podRequest(w.f)
		for range r.Pods {
			if _, ok := what.placeNode(req, r.Namespace); !ok {
				out[r.Key()] = true
				break
			}
		}
	}
	return out
}

// clone copies the node rooms and the quota for a what-if.
func (c *capacity) clone() *capacity {
	d := &capacity{
		nodes:  slices.Clone(c.nodes),
		byName: c.byName,
		quota:  make(map[string]Resources, len(c.quota)),
		noRoom: map[Resources]int{},
	}
	d.order = nodeHeap{c: d, idx: slices.Clone(c.order.idx)}
	for k, v := range c.quota {
		d.quota[k] = v
	}
	return d
}

// grow adds room to node j.
func (c *capacity) grow(j int, r Resources) {
	c.nodes[j].free = c.nodes[j].free.Add(r)
	if c.nodes[j].pos >= 0 {
		heap.Fix(&c.order, c.nodes[j].pos)
	}
	c.epoch++
}

// shrink takes room from node j.
func (c *capacity) shrink(j int, r Resources) {
	c.nodes[j].free = c.nodes[j].free.Sub(r)
	if c.nodes[j].pos >= 0 {
		heap.Fix(&c.order, c.nodes[j].pos)
	}
}

// placeNode places one pod like place and says on which node.
func (c *capacity) placeNode(req Resources, ns string) (int, bool) {
	if c.place(req, ns) != notBlocked {
		return -1, false
	}
	return c.last, true
}

// fitsWith reports whether a pod of req would fit on some node with the
// extra room given per node.
func (c *capacity) fitsWith(req Resources, extra []Resources) bool {
	for _, j := range c.order.idx {
		if c.nodes[j].free.Add(extra[j]).Fits(req) && extra[j] != (Resources{}) {
			return true
		}
	}
	return false
}

// sortReservations orders a plan's reservations by fire time, then function.
func sortReservations(rs []Reservation) {
	slices.SortFunc(rs, func(a, b Reservation) int {
		if c := a.Fire.Compare(b.Fire); c != 0 {
			return c
		}
		if c := strings.Compare(a.Function, b.Function); c != 0 {
			return c
		}
		return cmp.Compare(a.Namespace, b.Namespace)
	})
}

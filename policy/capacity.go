package policy

import (
	"cmp"
	"container/heap"
	"fmt"
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

// release returns the room of f's bound pods to their nodes and of all its
// pods (bound and pending) to its namespace's quota: f goes to zero.
func (c *capacity) release(f *Function) {
	req := podRequest(f)
	for i := range f.Pods {
		if j, ok := c.byName[f.Pods[i].Node]; ok {
			c.nodes[j].free = c.nodes[j].free.Add(req)
			if c.nodes[j].pos >= 0 {
				heap.Fix(&c.order, c.nodes[j].pos)
			}
		}
	}
	c.releaseQuota(f.Namespace, req, int64(len(f.Pods))+int64(f.PendingPods))
	c.epoch++
}

// releaseQuota returns n pods' worth of quota.
func (c *capacity) releaseQuota(ns string, req Resources, n int64) {
	if q, ok := c.quota[ns]; ok {
		c.quota[ns] = q.Add(Resources{req.MilliCPU * n, req.Memory * n, req.Pods * n})
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
			if c.nodes[k].free.Fits(req) && (j < 0 || c.nodes[k].free.MilliCPU > c.nodes[j].free.MilliCPU) {
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
	return notBlocked
}

// helps reports whether zeroing cand would let one more pod of req in ns be
// placed, given why the last attempt was blocked.
func (c *capacity) helps(cand *Function, req Resources, ns string, why blocked) bool {
	creq := podRequest(cand)
	if q, ok := c.quota[ns]; ok && !q.Fits(req) {
		if cand.Namespace != ns {
			return false
		}
		n := int64(len(cand.Pods)) + int64(cand.PendingPods)
		if !q.Add(Resources{creq.MilliCPU * n, creq.Memory * n, creq.Pods * n}).Fits(req) {
			return false
		}
		if why == blockedByQuota {
			// The nodes were not tried: they may have room already.
			return true
		}
	}
	// Room on the nodes: the pods of cand free room on theirs.
	for i := range cand.Pods {
		j, ok := c.byName[cand.Pods[i].Node]
		if !ok || !c.nodes[j].sched {
			continue
		}
		k := int64(0)
		for p := range cand.Pods {
			if cand.Pods[p].Node == cand.Pods[i].Node {
				k++
			}
		}
		freed := Resources{creq.MilliCPU * k, creq.Memory * k, creq.Pods * k}
		if c.nodes[j].free.Add(freed).Fits(req) {
			return true
		}
	}
	return false
}

// nodeHeap orders schedulable nodes by free CPU, most first, then free
// memory, then name.
type nodeHeap struct {
	c   *capacity
	idx []int
}

func (h nodeHeap) Len() int { return len(h.idx) }
func (h nodeHeap) Less(i, j int) bool {
	a, b := &h.c.nodes[h.idx[i]], &h.c.nodes[h.idx[j]]
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

// fitCapacity turns the wants into actions: decreases first, then claims
// served in priority order with evictions, then shortfalls.
func fitCapacity(s *Snapshot, p *Policy, wants []want, plan *Plan) {
	c := newCapacity(s)
	// Size the plan once: at most one action per function plus the
	// evictions, one check per function that has one.
	nChecks := 0
	for i := range wants {
		if wants[i].check != nil {
			nChecks++
		}
	}
	plan.Actions = make([]Action, 0, len(wants)+max(0, p.MaxEvictions()))
	plan.Checks = make([]ReadinessCheck, 0, nChecks)
	var claims []claim
	var cands []*want
	for i := range wants {
		w := &wants[i]
		f := w.f
		if w.desired < f.Replicas {
			plan.Actions = append(plan.Actions, action(w, w.desired, w.reason, "", w.why))
			if w.desired == 0 {
				c.release(f)
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
			claims = append(claims, cl)
		} else if w.check != nil && w.desired > 0 {
			plan.Checks = append(plan.Checks, *w.check)
		}
		if w.evictable && w.desired > 0 && grow+pending == 0 && s.MetricsAvailable {
			cands = append(cands, w)
		}
	}
	slices.SortFunc(claims, func(a, b claim) int {
		if a.class != b.class {
			return cmp.Compare(a.class, b.class)
		}
		return compareFunctions(a.w.f, b.w.f)
	})
	rank := map[Tier]int{}
	for i, t := range p.Preemption.Order {
		rank[t] = i + 1
	}
	kept := cands[:0]
	for _, w := range cands {
		if rank[w.f.Tier] > 0 {
			kept = append(kept, w)
		}
	}
	cands = kept
	slices.SortFunc(cands, func(x, y *want) int {
		a, b := x.f, y.f
		if rank[a.Tier] != rank[b.Tier] {
			return cmp.Compare(rank[a.Tier], rank[b.Tier])
		}
		if c := a.LastRun.Compare(b.LastRun); c != 0 {
			return c
		}
		return compareFunctions(a, b)
	})

	budget := p.MaxEvictions()
	evicted := make([]bool, len(cands))
	left := len(cands)
	for _, cl := range claims {
		f := cl.w.f
		req := podRequest(f)
		placed := int32(0)
		why := notBlocked
		for placed < cl.pods {
			if why = c.place(req, f.Namespace); why != notBlocked {
				break
			}
			placed++
		}
		if placed < cl.pods && s.MetricsAvailable {
			// Evict, in preemption order, the candidates whose room helps,
			// until the claim fits or the budget is spent.
			for k := 0; k < len(cands) && placed < cl.pods && budget > 0; k++ {
				if evicted[k] || !c.helps(cands[k].f, req, f.Namespace, why) {
					continue
				}
				evicted[k] = true
				budget--
				left--
				victim := cands[k]
				c.release(victim.f)
				before := placed
				for placed < cl.pods {
					if why = c.place(req, f.Namespace); why != notBlocked {
						break
					}
					placed++
				}
				plan.Actions = append(plan.Actions, action(victim, 0, ReasonEvictForCapacity, f.Key(),
					fmt.Sprintf("idle %s function (last run %s) zeroed to make room for %d pod(s) of %s %s (%s)",
						victim.f.Tier, lastRunText(victim.f.LastRun), placed-before, f.Tier, f.Key(), claimReason(cl))))
			}
		}
		grow := max(0, placed-cl.pending)
		if grow > 0 {
			plan.Actions = append(plan.Actions, action(cl.w, f.Replicas+grow, cl.w.reason, "", cl.w.why))
		}
		if cl.w.check != nil && f.Replicas+grow > 0 {
			plan.Checks = append(plan.Checks, *cl.w.check)
		}
		if placed < cl.pods {
			plan.Shortfalls = append(plan.Shortfalls, shortfall(cl, req, cl.pods-placed, why, budget, left, s.MetricsAvailable))
		}
	}
	sortActions(plan.Actions)
}

func claimReason(cl claim) string {
	if cl.w.reason != "" && cl.w.desired > cl.w.f.Replicas {
		return string(cl.w.reason)
	}
	return "pending pods"
}

func action(w *want, to int32, reason Reason, claim, why string) Action {
	f := w.f
	return Action{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, From: f.Replicas, To: to, Reason: reason, Claim: claim, Explanation: why}
}

func shortfall(cl claim, req Resources, missing int32, why blocked, budget, candidatesLeft int, metrics bool) Shortfall {
	f := cl.w.f
	n := int64(missing)
	sf := Shortfall{
		Function: f.Name, Namespace: f.Namespace, Tier: f.Tier,
		Missing: Resources{req.MilliCPU * n, req.Memory * n, n},
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
	case budget == 0 && candidatesLeft > 0 && metrics:
		sf.Reason = ShortfallBudget
		b = b.s(": the eviction budget of this cycle is spent")
	default:
		sf.Reason = ShortfallCapacity
		b = b.s(": no node has room")
		if !metrics {
			b = b.s(" and nothing is evicted while metrics are unavailable")
		} else {
			b = b.s(" and no idle function's room would help")
		}
	}
	if !sf.Deadline.IsZero() {
		b = b.s(" (needed by ").s(sf.Deadline.UTC().Format(time.RFC3339)).s(")")
	}
	sf.Message = string(b)
	return sf
}

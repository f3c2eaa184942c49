// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// claimClass is the priority of a scale-up claim when capacity is short:
// lower classes are served first.
type claimClass int

const (
	classSync claimClass = iota
	classCron
	classAsyncActivation
	classAsyncScaleUp
	classNone
)

// want is the tier rules' verdict on one function, before capacity.
type want struct {
	f       *Function
	desired int32
	reason  Reason
	why     string
	class   claimClass
	// evictable: the function may be scaled to zero to make room.
	evictable bool
	// held: the function is held (invalid metadata, a provider revert); its
	// pending pods may take free room but never cause an eviction.
	held bool
	// guard is the time-bound rule that keeps an otherwise idle function
	// from being evicted, to explain shortfalls ("" when none).
	guard      string
	guardUntil time.Time
	// check is a readiness check to put in the plan if the function's
	// scale-up is placed (or it already has replicas); checked: it is.
	check   *ReadinessCheck
	checked bool
	// usage is the record of a usage-driven scale-up.
	usage *UsageStep
	// fire and lead are a cron function's next fire time and prewarm lead.
	fire time.Time
	lead time.Duration
	// claimed: the function has a claim in the plan; evicted: it is
	// evicted in the plan; kept: it keeps the replicas just in time would
	// take to zero.
	claimed, evicted, kept bool
	// act is the index of its decrease action in the plan, -1 if none.
	act int
	// keep, when keepOK, is what a busy async function with nothing queued
	// needs for its in-flight work: what its scale-down would keep once its
	// window ended (demandNeed at the target utilisation, at least its
	// floor). reclaim-for-cron takes it down to that early for a fire that
	// does not fit; without keepOK (load unknown, no concurrency limit) it
	// is not touched.
	keep   int32
	keepOK bool
	// nodes are the indices of the nodes of its bound pods (see locate).
	nodes []int32
}

// Decide is the engine: the snapshot and the policy go in, the plan comes
// out. It does no I/O and reads no clock but now. The policy must have been
// through Validate and SetDefaults (Load and Parse do both).
//
// Stages: the tier rules give each function a desired replica count; the
// decreases are kept; the increases become claims that must fit node by node,
// served in priority order, with idle cron and then idle async functions
// evicted to make room; what still does not fit becomes a shortfall. No-ops
// are dropped. A plan holds at most one action per function.
func Decide(s *Snapshot, p *Policy, now time.Time) *Plan {
	plan := &Plan{Time: now, MetricsAvailable: s.MetricsAvailable}
	if !s.MetricsAvailable {
		plan.Shortfalls = append(plan.Shortfalls, Shortfall{
			Reason:  ShortfallMetricsUnavailable,
			Message: "Prometheus data is unavailable, stale or invalid: holding every scale-down, zeroing and eviction",
		})
	}
	r := rules{p: p, now: now, metrics: s.MetricsAvailable, fast: s.Fast, next: map[string]time.Time{}, lastFire: map[string]bool{},
		nextTexts: map[string]string{}, lookaheadText: p.Tiers.Cron.Lookahead.Duration.String()}
	// The wants are in function order, whatever the snapshot's (usually
	// already in it): every later stage then needs only cheap stable sorts
	// on numbers, and its output is in function order by construction.
	order := functionOrder(s.Functions)
	wants := make([]want, len(s.Functions))
	for i, k := range order {
		wants[i] = r.decide(&s.Functions[k])
	}
	fitCapacity(s, p, wants, plan, now)
	return plan
}

// functionOrder returns the indices of fs by name, then namespace.
func functionOrder(fs []Function) []int32 {
	order := make([]int32, len(fs))
	for i := range order {
		order[i] = int32(i)
	}
	less := func(i, j int32) int { return compareFunctions(&fs[i], &fs[j]) }
	if !slices.IsSortedFunc(order, less) {
		slices.SortFunc(order, less)
	}
	return order
}

// rules applies the per-tier rules to one function at a time.
type rules struct {
	p       *Policy
	now     time.Time
	metrics bool
	fast    bool
	// next and lastFire memoise cron computations by schedule text: many
	// functions share a schedule.
	next      map[string]time.Time
	lastFire  map[string]bool
	nextTexts map[string]string
	// lookaheadText is the cron lookahead, formatted once.
	lookaheadText string
}

// bounds returns the active replica range of f: at least max(1, min).
func bounds(f *Function) (lo, hi int32) {
	lo = max(1, f.MinReplicas)
	hi = f.MaxReplicas
	if hi <= 0 {
		hi = DefaultMaxReplicas
	}
	return lo, max(lo, hi)
}

// bounds is bounds(f) under the policy: OpenFaaS CE's provider caps a
// function at 5 replicas.
func (r *rules) bounds(f *Function) (lo, hi int32) {
	lo, hi = bounds(f)
	if r.p.CE() {
		hi = max(lo, min(hi, CEMaxReplicas))
	}
	return lo, hi
}

func (r *rules) decide(f *Function) want {
	w := want{f: f, desired: f.Replicas, class: classNone}
	if f.Hold || !f.Tier.Valid() {
		w.held = true
		return w
	}
	switch f.Tier {
	case TierSync:
		r.sync(f, &w)
	case TierCron:
		r.cron(f, &w)
	case TierAsync:
		r.async(f, &w)
	}
	if r.fast && w.desired < f.Replicas {
		// The fast path only adds.
		w.set(f.Replicas, "", classNone, "")
	}
	if r.fast {
		w.evictable, w.guard = false, ""
	}
	return w
}

// set records a decision.
func (w *want) set(desired int32, reason Reason, class claimClass, why string) {
	w.desired, w.reason, w.class, w.why = desired, reason, class, why
}

// guarded records the time-bound rule that keeps an idle function from
// being evicted.
func (w *want) guarded(rule string, until time.Time) {
	if w.guard == "" {
		w.guard, w.guardUntil = rule, until
	}
}

func (r *rules) sync(f *Function, w *want) {
	if r.grow(f, w, classSync, 0) {
		return
	}
	r.scaleDown(f, w, r.p.Tiers.Sync.ScaleDownWindow.Duration)
}

// loaded reports whether f has work: invocations, work in flight or queued.
// Only a loaded function is scaled up on its CPU or memory usage: the usage
// of an idle function is its baseline, which more replicas do not lower.
func loaded(f *Function) bool {
	return f.Invocations.Known && f.Invocations.Value > 0 || f.Inflight.Known && f.Inflight.Value > 0 ||
		f.Pending.Known && f.Pending.Value > 0
}

// grow applies the demand signals (queued work, 429s, offered concurrency,
// CPU, memory) and the floor max(1, min) to f, taking the largest, bounded
// by max. It reports whether it decided an increase. byPending is the
// replicas the queued work needs (0 for none). Explanations are formatted
// only for the signal that wins.
func (r *rules) grow(f *Function, w *want, class claimClass, byPending int32) bool {
	lo, hi := r.bounds(f)
	best, reason := f.Replicas, Reason("")
	offer := func(n int32, why Reason) {
		if n > best {
			best, reason = n, why
		}
	}
	var cpuStep, memStep *UsageStep
	if f.Replicas > 0 {
		offer(byPending, ReasonScaleUpPending)
		if n, ok := r.rejectionsNeed(f); ok {
			offer(n, ReasonScaleUpRejections)
		}
		if n, ok := r.concurrencyNeed(f); ok {
			offer(n, ReasonScaleUpConcurrency)
		}
		if loaded(f) {
			var n int32
			if n, cpuStep = r.usageNeed(f, UsageCPU); cpuStep != nil {
				offer(n, ReasonScaleUpCPU)
			}
			if n, memStep = r.usageNeed(f, UsageMemory); memStep != nil {
				offer(n, ReasonScaleUpMemory)
			}
		}
	}
	// The floor comes last: a demand signal asking as much explains more.
	offer(lo, ReasonScaleUpMin)
	if best <= f.Replicas {
		return false
	}
	var why string
	switch reason {
	case ReasonScaleUpMin:
		why = fmt.Sprintf("%s functions keep at least max(1, min)=%d replicas", f.Tier, lo)
	case ReasonScaleUpPending:
		why = fmt.Sprintf("%.0f messages pending at %d per replica", f.Pending.Value, r.p.Tiers.Async.PendingPerReplica)
	case ReasonScaleUpRejections:
		why = r.rejectionsWhy(f, best)
	case ReasonScaleUpConcurrency:
		c, _ := offeredConcurrency(f)
		why = fmt.Sprintf("%.1f req/s offered × %.3gs each = %.1f concurrent requests need %d replicas at %.0f%% of max_inflight %d",
			f.Invocations.Value, f.Duration.Value, c, best, r.p.Thresholds.TargetUtilization*100, f.MaxInflight)
	case ReasonScaleUpCPU:
		why = r.usageWhy(f, UsageCPU, best)
		w.usage = cpuStep
	default:
		why = r.usageWhy(f, UsageMemory, best)
		w.usage = memStep
	}
	if best > hi {
		best = hi
		why += fmt.Sprintf(", capped at max %d", hi)
	}
	if best <= f.Replicas {
		w.usage = nil
		return false
	}
	if best < lo {
		best = lo
	}
	if w.usage != nil {
		w.usage.To = best
	}
	w.set(best, reason, class, why)
	return true
}

// concurrencyNeed is target tracking before any 429: the replicas the
// offered concurrency (rate × mean duration) needs at the target
// utilisation of max_inflight. It needs a known duration: the peak in-flight
// figure alone is too noisy to add replicas on.
func (r *rules) concurrencyNeed(f *Function) (int32, bool) {
	c, ok := offeredConcurrency(f)
	if !ok || f.MaxInflight <= 0 || f.ReadyReplicas == 0 {
		return 0, false
	}
	return ceilReplicas(c / (float64(f.MaxInflight) * r.p.Thresholds.TargetUtilization)), true
}

// offered returns the offered and accepted request rates, and whether the
// in-flight figure can be scaled by their ratio.
func (r *rules) offered(f *Function) (offered, accepted float64, usable bool) {
	accepted, offered = math.Inf(1), math.NaN()
	if f.Invocations.Known {
		offered = f.Invocations.Value
		accepted = offered - f.Rejections.Value
	}
	usable = f.MaxInflight > 0 && f.Inflight.Known && f.Inflight.Value > 0 && accepted > 0 && !math.IsNaN(offered)
	return offered, accepted, usable
}

// offeredConcurrency is the concurrency the offered load needs by Little's
// law: offered requests per second × mean seconds per request. It does not
// depend on how many replicas were Ready when it was measured.
func offeredConcurrency(f *Function) (float64, bool) {
	if !f.Invocations.Known || !f.Duration.Known || f.Duration.Value <= 0 {
		return 0, false
	}
	return f.Invocations.Value * f.Duration.Value, true
}

// rejectionsNeed turns a 429 rate above the threshold into replicas. The
// offered concurrency gives the replicas the load needs at the target
// utilisation of max_inflight: from Little's law when the mean duration is
// known, else from the in-flight count, which is what the accepted share of
// the offered load occupies, scaled by offered/accepted. Without either,
// the Ready replicas grow by offered/accepted, at least doubling when
// nothing is accepted.
//
// The 429s themselves are the direct evidence that the Ready replicas are
// short, whatever the mean says (bursts, a mean of successes that hides the
// slow requests): when the figures above ask for no more than the Ready
// replicas, the answer is one more.
//
// The figures relative to the Ready replicas are used only when the rate
// window (the rejection query's range) holds no 429s from before the last
// scale change; the figures from the offered load do not depend on the
// replicas and always apply. While replicas asked for earlier are still
// starting, the same 429s ask for nothing more: every figure is compared
// with the replicas asked for.
func (r *rules) rejectionsNeed(f *Function) (int32, bool) {
	if !f.Rejections.Known || f.Rejections.Value <= r.p.RejectionRate() || f.ReadyReplicas == 0 {
		return 0, false
	}
	ready := f.ReadyReplicas
	perReplica := float64(f.MaxInflight) * r.p.Thresholds.TargetUtilization
	settled := f.LastScale.IsZero() || r.now.Sub(f.LastScale) >= r.p.RejectionWindow()
	offered, accepted, usable := r.offered(f)
	var need int32
	switch c, ok := offeredConcurrency(f); {
	case ok && f.MaxInflight > 0:
		need = ceilReplicas(c / perReplica)
	case usable:
		need = ceilReplicas(f.Inflight.Value * offered / accepted / perReplica)
	case !settled:
		return 0, false
	case accepted <= 0:
		need = ready * 2
	case !math.IsNaN(offered) && !math.IsInf(accepted, 1):
		need = ceilReplicas(float64(ready) * offered / accepted)
	}
	if settled && need <= ready {
		need = ready + 1
	}
	return need, need > 0
}

func (r *rules) rejectionsWhy(f *Function, n int32) string {
	thr := r.p.RejectionRate()
	if c, ok := offeredConcurrency(f); ok && f.MaxInflight > 0 {
		why := fmt.Sprintf("429 rate %.2f/s > %.2f/s: %.1f req/s offered × %.3gs each = %.1f concurrent requests need %d replicas at %.0f%% of max_inflight %d",
			f.Rejections.Value, thr, f.Invocations.Value, f.Duration.Value, c, ceilReplicas(c/(float64(f.MaxInflight)*r.p.Thresholds.TargetUtilization)),
			r.p.Thresholds.TargetUtilization*100, f.MaxInflight)
		if n == f.ReadyReplicas+1 {
			why += fmt.Sprintf("; the %d Ready refuse requests all the same: one more", f.ReadyReplicas)
		}
		return why
	}
	offered, accepted, usable := r.offered(f)
	if usable {
		return fmt.Sprintf("429 rate %.2f/s > %.2f/s: %.1f concurrent requests offered need %d replicas at %.0f%% of max_inflight %d",
			f.Rejections.Value, thr, f.Inflight.Value*offered/accepted, n, r.p.Thresholds.TargetUtilization*100, f.MaxInflight)
	}
	return fmt.Sprintf("429 rate %.2f/s > %.2f/s with no usable in-flight figure: grow to %d replicas", f.Rejections.Value, thr, n)
}

// usageOf is the usage of one pod for a resource.
func usageOf(p *Pod, res UsageResource) Metric {
	if res == UsageCPU {
		return p.CPU
	}
	return p.Memory
}

// limitOf is f's per-pod limit for a resource, in cores or bytes.
func limitOf(f *Function, res UsageResource) float64 {
	if res == UsageCPU {
		return float64(f.Limits.MilliCPU) / 1000
	}
	return float64(f.Limits.Memory)
}

// signal reports whether a usage signal is on in the policy.
func (r *rules) signal(res UsageResource) bool {
	if res == UsageCPU {
		return r.p.CPUSignal()
	}
	return r.p.MemorySignal()
}

func (r *rules) threshold(res UsageResource) float64 {
	if res == UsageCPU {
		return r.p.Thresholds.CPU
	}
	return r.p.Thresholds.Memory
}

// meanUsage is the mean usage over the Ready pods whose usage is known (the
// pods that carry the load), their number, and the limit it is compared
// with.
func meanUsage(f *Function, res UsageResource) (usage, limit float64, n int, ok bool) {
	limit = limitOf(f, res)
	sum := 0.0
	for i := range f.Pods {
		if m := usageOf(&f.Pods[i], res); m.Known && f.Pods[i].Ready {
			sum += m.Value
			n++
		}
	}
	if n == 0 || limit <= 0 {
		return 0, limit, 0, false
	}
	return sum / float64(n), limit, n, true
}

// UsageStepMemory is how long the engine honours the record of a
// usage-driven step (Function.CPUStep, Function.MemoryStep).
const UsageStepMemory = time.Hour

// usageFell is the share of the per-pod usage before a step that the usage
// after it must be under for the step to count as having helped.
const usageFell = 0.9

// usageState is what the last usage-driven step says of a resource.
type usageState int

const (
	// usageFree: no recent step; usage may drive scaling.
	usageFree usageState = iota
	// usageWaiting: the replicas of the last step are not all observed.
	usageWaiting
	// usageFellAfterStep: per-pod usage fell after the last step.
	usageFellAfterStep
	// usageUnresponsive: per-pod usage did not fall after the last step;
	// it is a baseline, and this resource drives neither scale-up nor holds
	// replicas up.
	usageUnresponsive
)

func (r *rules) usageState(f *Function, res UsageResource) usageState {
	s := f.CPUStep
	if res == UsageMemory {
		s = f.MemoryStep
	}
	if s == nil || r.now.Sub(s.At) >= UsageStepMemory || r.now.Before(s.At) {
		return usageFree
	}
	usage, _, n, ok := meanUsage(f, res)
	// The step's replicas are observed when each of them (or each there is,
	// after a scale-down since) is Ready and reports its usage.
	if !ok || int32(n) < min(s.To, f.Replicas) {
		return usageWaiting
	}
	if usage >= usageFell*s.Before {
		return usageUnresponsive
	}
	return usageFellAfterStep
}

// usageNeed applies ceil(current × usage / (threshold × limit)) for CPU or
// memory, with usage the mean over the Ready pods whose usage is known and
// current their number, at most doubling them. It returns the record of the
// step, nil when usage asks for nothing: below the threshold, or after a
// step whose replicas are not observed yet or whose usage did not fall.
func (r *rules) usageNeed(f *Function, res UsageResource) (int32, *UsageStep) {
	if !r.signal(res) {
		return 0, nil
	}
	thr := r.threshold(res)
	usage, limit, n, ok := meanUsage(f, res)
	if !ok || usage <= thr*limit {
		return 0, nil
	}
	switch r.usageState(f, res) {
	case usageWaiting, usageUnresponsive:
		return 0, nil
	}
	need := min(ceilReplicas(float64(n)*usage/(thr*limit)), int32(2*n))
	return need, &UsageStep{Resource: res, At: r.now, From: f.Replicas, Before: usage}
}

func (r *rules) usageWhy(f *Function, res UsageResource, n int32) string {
	usage, limit, pods, _ := meanUsage(f, res)
	thr := r.threshold(res)
	name := "memory"
	if res == UsageCPU {
		name = "CPU"
	}
	why := fmt.Sprintf("%s %.0f%% of the limit > %.0f%% under load: ceil(%d × %.3g / (%.2f × %.3g)) = %d replicas",
		name, 100*usage/limit, 100*thr, pods, usage, thr, limit, ceilReplicas(float64(pods)*usage/(thr*limit)))
	if raw := ceilReplicas(float64(pods) * usage / (thr * limit)); raw > n {
		why += fmt.Sprintf(", at most doubling the %d observed: %d", pods, n)
	}
	return why
}

// demandNeed is the replicas the current load needs at the target
// utilisation: the largest of the concurrency, queued work, CPU and memory
// figures, and which of them it is. It reports false when the load cannot be
// known. A resource whose usage did not fall after a usage-driven step is a
// baseline and is left out.
func (r *rules) demandNeed(f *Function) (need int32, by string, ok bool) {
	if !r.metrics || !f.Inflight.Known || !f.Rejections.Known || f.Rejections.Value > r.p.RejectionRate() {
		return 0, "", false
	}
	if f.Tier == TierAsync && !f.Pending.Known {
		return 0, "", false
	}
	by = "concurrency"
	if f.MaxInflight > 0 {
		c := f.Inflight.Value
		if oc, ok := offeredConcurrency(f); ok && oc > c {
			c = oc
		}
		need = ceilReplicas(c / (float64(f.MaxInflight) * r.p.Thresholds.TargetUtilization))
	} else if f.Inflight.Value > 0 {
		// No concurrency limit: only usage can justify fewer replicas.
		need = f.Replicas
	}
	if f.Pending.Known && f.Pending.Value > 0 {
		if n := ceilReplicas(f.Pending.Value / float64(r.p.Tiers.Async.PendingPerReplica)); n > need {
			need, by = n, "queued work"
		}
	}
	for _, res := range []UsageResource{UsageCPU, UsageMemory} {
		limit, thr := limitOf(f, res), r.threshold(res)
		if limit <= 0 || !r.signal(res) || r.usageState(f, res) == usageUnresponsive {
			continue
		}
		sum := 0.0
		for i := range f.Pods {
			m := usageOf(&f.Pods[i], res)
			if !m.Known {
				// Usage unknown: keep what there is.
				return 0, "", false
			}
			sum += m.Value
		}
		if n := ceilReplicas(sum / (thr * limit)); n > need {
			need, by = n, string(res)
		}
	}
	return need, by, true
}

// scaleDown shrinks an active function to what its demand needs, never below
// max(1, min), and only when the stabilisation window since its last scale
// change has passed.
func (r *rules) scaleDown(f *Function, w *want, window time.Duration) {
	lo, hi := r.bounds(f)
	if !r.metrics || f.Replicas <= lo {
		return
	}
	if f.Replicas > hi {
		w.set(hi, ReasonScaleDownMax, classNone, fmt.Sprintf("above max %d", hi))
		return
	}
	if !f.LastScale.IsZero() && r.now.Sub(f.LastScale) < window {
		return
	}
	need, by, ok := r.demandNeed(f)
	if !ok {
		return
	}
	need = max(need, lo)
	if need < f.Replicas {
		var why string
		if by == "concurrency" {
			c := f.Inflight.Value
			if oc, ok := offeredConcurrency(f); ok && oc > c {
				c = oc
			}
			why = string(text(make([]byte, 0, 112)).s("low utilisation: ").f(c, 1).s(" concurrent requests need ").i(int64(need)).
				s(" replicas at ").f(r.p.Thresholds.TargetUtilization*100, 0).s("% of max_inflight ").i(int64(f.MaxInflight)).
				s(" (floor ").i(int64(lo)).s(")"))
		} else {
			why = string(text(make([]byte, 0, 96)).s("low utilisation: ").s(by).s(" needs ").i(int64(need)).
				s(" replicas (floor ").i(int64(lo)).s(")"))
		}
		w.set(need, ReasonScaleDownIdle, classNone, why)
	}
}

// nextFire returns the schedule's next fire time after now, memoised. It is
// zero for a schedule that never fires.
func (r *rules) nextFire(f *Function) time.Time {
	if t, ok := r.next[f.ScheduleSpec]; ok {
		return t
	}
	t := f.Schedule.Next(r.now.In(r.p.Location()))
	r.next[f.ScheduleSpec] = t
	return t
}

// nextText is the next fire time as RFC 3339, memoised like nextFire.
func (r *rules) nextText(f *Function) string {
	if s, ok := r.nextTexts[f.ScheduleSpec]; ok {
		return s
	}
	s := r.nextFire(f).UTC().Format(time.RFC3339)
	r.nextTexts[f.ScheduleSpec] = s
	return s
}

// firedWithin reports whether the schedule fired in (now-d, now].
func (r *rules) firedWithin(f *Function, d time.Duration) bool {
	if v, ok := r.lastFire[f.ScheduleSpec]; ok {
		return v
	}
	v := !f.Schedule.Next(r.now.Add(-d).In(r.p.Location())).After(r.now)
	r.lastFire[f.ScheduleSpec] = v
	return v
}

// startup is a function's time from scale-up to Ready.
func (r *rules) startup(f *Function) time.Duration {
	if f.StartupTime > 0 {
		return f.StartupTime
	}
	return r.p.Tiers.Cron.StartupTime.Duration
}

func (r *rules) cron(f *Function, w *want) {
	if f.Schedule == nil {
		w.held = true
		return
	}
	c := r.p.Tiers.Cron
	lo, _ := r.bounds(f)
	next := r.nextFire(f)
	if next.IsZero() {
		// A schedule that never fires is invalid metadata (ParseMeta
		// refuses it): hold the function, never act on it.
		w.held = true
		return
	}
	until := next.Sub(r.now)
	lead := r.startup(f) + c.Margin.Duration + r.p.Interval.Duration
	w.fire, w.lead = next, lead
	due := until <= max(c.Lookahead.Duration, lead)
	prewarm := until <= lead
	// Just in time: between fires a function goes to zero whenever its
	// next prewarm is more than an interval plus the minimum residency away.
	// The lookahead is the planning horizon: fires in it hold reservations.
	jit := until-lead > r.p.Interval.Duration+r.p.Preemption.MinResidency.Duration
	running := f.Inflight.Known && f.Inflight.Value > 0 || f.Pending.Known && f.Pending.Value > 0
	inGrace := !f.LastRun.IsZero() && r.now.Sub(f.LastRun) < c.GracePeriod.Duration
	// Cron functions are usually invoked synchronously: an absent queue
	// metric says nothing about them, and queued work counts only when seen.
	known := r.metrics && f.Inflight.Known

	if prewarm {
		w.check = &ReadinessCheck{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, Kind: CheckPrewarm, Deadline: next, MinReady: 1}
	}
	if f.Replicas < lo && (prewarm || running) {
		byPending := int32(0)
		if f.Pending.Known && f.Pending.Value > 0 {
			_, hi := r.bounds(f)
			byPending = min(hi, ceilReplicas(f.Pending.Value/float64(r.p.Tiers.Async.PendingPerReplica)))
		}
		why := "has work in flight or queued"
		if prewarm {
			// Many functions share a fire time: no Sprintf on this path.
			why = "fires at " + r.nextText(f) + " (in " + until.Round(time.Second).String() + "); lead " + lead.String() +
				" = startup " + r.startup(f).String() + " + margin " + c.Margin.Duration.String() + " + interval " + r.p.Interval.Duration.String()
		}
		w.set(max(lo, byPending), ReasonPrewarmCron, classCron, why)
		return
	}
	if f.Replicas == 0 {
		return
	}
	byPending := int32(0)
	if f.Pending.Known && f.Pending.Value > 0 {
		byPending = ceilReplicas(f.Pending.Value / float64(r.p.Tiers.Async.PendingPerReplica))
	}
	if r.grow(f, w, classCron, byPending) {
		return
	}
	// A fire within the grace period protects too, even before its run is
	// seen (asked last: it costs a schedule evaluation).
	busy := running || inGrace || !known || r.firedWithin(f, c.GracePeriod.Duration)
	if !busy && jit && r.p.ZeroCronWhenIdle() && !r.p.CE() && r.resident(f) {
		// Many functions go idle at once: no Sprintf on this path.
		w.set(0, ReasonZeroIdle, classNone, "idle: next fire "+r.nextText(f)+" is beyond the "+r.lookaheadText+
			" lookahead, nothing in flight, last run "+lastRunText(f.LastRun))
		return
	}
	r.scaleDown(f, w, r.p.Tiers.Sync.ScaleDownWindow.Duration)
	if w.desired > f.Replicas || running || !known {
		return
	}
	switch {
	case due:
		w.guarded("its next fire at "+r.nextText(f)+" is within the lookahead", next)
	case !jit:
		w.guarded("its next fire at "+r.nextText(f)+" is too near to go to zero", next)
	case inGrace:
		w.guarded("gracePeriod after its last run", f.LastRun.Add(c.GracePeriod.Duration))
	case busy:
		fired := f.Schedule.Next(r.now.Add(-c.GracePeriod.Duration).In(r.p.Location()))
		w.guarded("gracePeriod after its fire at "+fired.UTC().Format(time.RFC3339), fired.Add(c.GracePeriod.Duration))
	case !r.resident(f):
		w.guarded("minResidency", f.LastScale.Add(r.p.Preemption.MinResidency.Duration))
	default:
		w.evictable = true
	}
}

func (r *rules) async(f *Function, w *want) {
	a := r.p.Tiers.Async
	lo, hi := r.bounds(f)
	pending := f.Pending.Known && f.Pending.Value > 0
	inflight := f.Inflight.Known && f.Inflight.Value > 0
	// An activation request keeps a function active for idleAfter: for as
	// long as it would activate it again at zero, it is not evicted either.
	requested := !f.ActivationRequested.IsZero() && r.now.Sub(f.ActivationRequested) < a.IdleAfter.Duration
	byPending := int32(0)
	if pending {
		byPending = min(hi, ceilReplicas(f.Pending.Value/float64(a.PendingPerReplica)))
	}

	if f.Replicas == 0 {
		if !pending && !inflight && !requested {
			return
		}
		var why string
		switch {
		case pending:
			why = string(text(make([]byte, 0, 48)).f(f.Pending.Value, 0).s(" messages pending"))
			if byPending > lo {
				why += string(text(make([]byte, 0, 24)).s(" at ").i(int64(a.PendingPerReplica)).s(" per replica"))
			}
		case inflight:
			why = string(text(make([]byte, 0, 32)).f(f.Inflight.Value, 0).s(" invocations in flight"))
		default:
			why = "activation requested at " + f.ActivationRequested.UTC().Format(time.RFC3339)
		}
		w.set(max(lo, byPending), ReasonActivateAsync, classAsyncActivation, why)
		w.check = &ReadinessCheck{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, Kind: CheckActivation,
			Deadline: r.now.Add(a.ActivationTimeout.Duration), MinReady: 1}
		return
	}
	if r.grow(f, w, classAsyncScaleUp, byPending) {
		return
	}
	idleWork := r.metrics && f.Inflight.Known && f.Pending.Known && !pending && !inflight
	last := latest(f.LastRun, f.ActivationRequested)
	quiet := (last.IsZero() || r.now.Sub(last) >= a.IdleAfter.Duration) &&
		(f.LastScale.IsZero() || r.now.Sub(f.LastScale) >= a.IdleAfter.Duration)
	if idleWork && quiet && !r.p.CE() && r.resident(f) {
		w.set(0, ReasonZeroIdle, classNone, fmt.Sprintf("idle for %s: nothing in flight or pending, last run %s", a.IdleAfter.Duration, lastRunText(f.LastRun)))
		return
	}
	r.scaleDown(f, w, r.p.Tiers.Sync.ScaleDownWindow.Duration)
	if inflight && !pending && f.Pending.Known && f.MaxInflight > 0 && w.desired == f.Replicas {
		if need, _, ok := r.demandNeed(f); ok {
			w.keep, w.keepOK = max(need, lo, 1), true
		}
	}
	if !idleWork || w.desired > f.Replicas {
		return
	}
	switch {
	case requested:
		w.guarded("an activation request", f.ActivationRequested.Add(a.IdleAfter.Duration))
	case !r.resident(f):
		w.guarded("minResidency", f.LastScale.Add(r.p.Preemption.MinResidency.Duration))
	default:
		w.evictable = true
	}
}

// resident reports whether f has been at its size for the minimum residency.
func (r *rules) resident(f *Function) bool {
	return f.LastScale.IsZero() || r.now.Sub(f.LastScale) >= r.p.Preemption.MinResidency.Duration
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func lastRunText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// ceilReplicas rounds a replica figure up, saturating at MaxInt32.
func ceilReplicas(v float64) int32 {
	if math.IsNaN(v) || v <= 0 {
		return 0
	}
	c := math.Ceil(v - 1e-9)
	if c >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(c)
}

// sortActions orders the plan's actions so that room is freed before it is
// claimed: evictions in the order they were chosen, then zeroing and other
// scale-downs, each by name and namespace, then scale-ups in the order
// their claims were served (sync first, then cron, then async), which is
// the order that matters if a cycle runs out of time.
func sortActions(actions []Action) {
	rank := func(a *Action) int {
		switch {
		case a.Reason == ReasonEvictForCapacity:
			return 0
		case a.To == 0:
			return 1
		case a.To < a.From:
			return 2
		default:
			return 3
		}
	}
	// Evictions and scale-ups keep the order they were decided in; the
	// decreases come in the snapshot's order, often already by name: each
	// rank is bucketed stably and sorted only if it is not in order. Small
	// keys keep the comparisons in cache.
	type key struct {
		i      int32
		fn, ns string
	}
	var counts [4]int
	ranks := make([]int8, len(actions))
	for i := range actions {
		ranks[i] = int8(rank(&actions[i]))
		counts[ranks[i]]++
	}
	var buckets [4][]key
	for r := range buckets {
		buckets[r] = make([]key, 0, counts[r])
	}
	for i := range actions {
		a := &actions[i]
		buckets[ranks[i]] = append(buckets[ranks[i]], key{int32(i), a.Function, a.Namespace})
	}
	byName := func(a, b key) int {
		if c := strings.Compare(a.fn, b.fn); c != 0 {
			return c
		}
		return strings.Compare(a.ns, b.ns)
	}
	// dest[i] is where action i goes.
	dest := make([]int32, len(actions))
	k := int32(0)
	identity := true
	for r := range buckets {
		if r > 0 && r < 3 && !slices.IsSortedFunc(buckets[r], byName) {
			slices.SortFunc(buckets[r], byName)
		}
		for _, b := range buckets[r] {
			dest[b.i] = k
			identity = identity && b.i == k
			k++
		}
	}
	if identity {
		return
	}
	// Permute in place, cycle by cycle: the actions are large.
	for i := range actions {
		for dest[i] != int32(i) {
			j := dest[i]
			actions[i], actions[j] = actions[j], actions[i]
			dest[i], dest[j] = dest[j], dest[i]
		}
	}
}

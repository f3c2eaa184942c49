package policy

import (
	"cmp"
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
	// check is a readiness check to put in the plan if the function's
	// scale-up is placed (or it already has replicas).
	check *ReadinessCheck
}

// Decide is the engine: the snapshot and the policy go in, the plan comes
// out. It does no I/O and reads no clock but now. The policy must have been
// through Validate and SetDefaults (Load and Parse do both).
//
// Stages: the tier rules give each function a desired replica count; the
// decreases are kept; the increases become claims that must fit node by node,
// served in priority order, with idle cron and then idle async functions
// evicted to make room; what still does not fit becomes a shortfall. No-ops
// are dropped.
func Decide(s *Snapshot, p *Policy, now time.Time) *Plan {
	plan := &Plan{Time: now, MetricsAvailable: s.MetricsAvailable}
	if !s.MetricsAvailable {
		plan.Shortfalls = append(plan.Shortfalls, Shortfall{
			Reason:  ShortfallMetricsUnavailable,
			Message: "Prometheus data is unavailable, stale or invalid: holding every scale-down, zeroing and eviction",
		})
	}
	r := rules{p: p, now: now, metrics: s.MetricsAvailable, next: map[string]time.Time{}, lastFire: map[string]bool{},
		nextTexts: map[string]string{}, lookaheadText: p.Tiers.Cron.Lookahead.Duration.String()}
	wants := make([]want, len(s.Functions))
	for i := range s.Functions {
		wants[i] = r.decide(&s.Functions[i])
	}
	fitCapacity(s, p, wants, plan)
	return plan
}

// rules applies the per-tier rules to one function at a time.
type rules struct {
	p       *Policy
	now     time.Time
	metrics bool
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

func (r *rules) decide(f *Function) want {
	w := want{f: f, desired: f.Replicas, class: classNone}
	if f.Hold || !f.Tier.Valid() {
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
	return w
}

// set records a decision.
func (w *want) set(desired int32, reason Reason, class claimClass, why string) {
	w.desired, w.reason, w.class, w.why = desired, reason, class, why
}

func (r *rules) sync(f *Function, w *want) {
	lo, _ := bounds(f)
	if f.Replicas < lo {
		w.set(lo, ReasonScaleUpMin, classSync, fmt.Sprintf("sync functions keep at least max(1, min)=%d replicas", lo))
		return
	}
	if r.scaleUp(f, w, classSync) {
		return
	}
	r.scaleDown(f, w, r.p.Tiers.Sync.ScaleDownWindow.Duration)
}

// scaleUp applies the demand signals (429s, CPU, memory) to an active
// function. It reports whether it decided an increase. Explanations are
// formatted only for the signal that wins.
func (r *rules) scaleUp(f *Function, w *want, class claimClass) bool {
	if f.Replicas == 0 {
		return false
	}
	_, hi := bounds(f)
	best, reason := f.Replicas, Reason("")
	if n, ok := r.rejectionsNeed(f); ok && n > best {
		best, reason = n, ReasonScaleUpRejections
	}
	if n, ok := r.concurrencyNeed(f); ok && n > best {
		best, reason = n, ReasonScaleUpConcurrency
	}
	if n, ok := usageNeed(f, true, r.p.Thresholds.CPU); ok && n > best {
		best, reason = n, ReasonScaleUpCPU
	}
	if n, ok := usageNeed(f, false, r.p.Thresholds.Memory); ok && n > best {
		best, reason = n, ReasonScaleUpMemory
	}
	if best <= f.Replicas {
		return false
	}
	var why string
	switch reason {
	case ReasonScaleUpRejections:
		why = r.rejectionsWhy(f, best)
	case ReasonScaleUpConcurrency:
		c, _ := offeredConcurrency(f)
		why = fmt.Sprintf("%.1f req/s offered × %.3gs each = %.1f concurrent requests need %d replicas at %.0f%% of max_inflight %d",
			f.Invocations.Value, f.Duration.Value, c, best, r.p.Thresholds.TargetUtilization*100, f.MaxInflight)
	case ReasonScaleUpCPU:
		why = usageWhy(f, true, r.p.Thresholds.CPU, best)
	default:
		why = usageWhy(f, false, r.p.Thresholds.Memory, best)
	}
	if best > hi {
		best = hi
		why += fmt.Sprintf(", capped at max %d", hi)
	}
	if best <= f.Replicas {
		return false
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

// rejectionsNeed turns a 429 rate above the threshold into the replicas the
// offered load needs at the target utilisation of max_inflight. The offered
// concurrency comes from Little's law when the mean duration is known;
// otherwise from the in-flight count, which is what the accepted share of
// the offered load occupies, so the whole offered load needs that much more.
//
// The 429s come from the Ready replicas, so the figures are relative to
// them: while replicas asked for earlier are still starting, the same 429s
// ask for nothing more.
func (r *rules) rejectionsNeed(f *Function) (int32, bool) {
	if !f.Rejections.Known || f.Rejections.Value <= r.p.RejectionRate() || f.ReadyReplicas == 0 {
		return 0, false
	}
	ready := f.ReadyReplicas
	perReplica := float64(f.MaxInflight) * r.p.Thresholds.TargetUtilization
	if c, ok := offeredConcurrency(f); ok && f.MaxInflight > 0 {
		return ceilReplicas(c / perReplica), true
	}
	offered, accepted, usable := r.offered(f)
	if usable {
		// No "+1" floor here: a rate window still holding 429s from before
		// the last scale-up must not add replicas the demand does not need.
		return ceilReplicas(f.Inflight.Value * offered / accepted / perReplica), true
	}
	// Without a usable in-flight figure, grow by the offered/accepted ratio,
	// at least doubling when nothing is accepted.
	n := ready * 2
	if accepted > 0 && !math.IsNaN(offered) && !math.IsInf(accepted, 1) {
		n = ceilReplicas(float64(ready) * offered / accepted)
	}
	return max(n, ready+1), true
}

func (r *rules) rejectionsWhy(f *Function, n int32) string {
	thr := r.p.RejectionRate()
	if c, ok := offeredConcurrency(f); ok && f.MaxInflight > 0 {
		return fmt.Sprintf("429 rate %.2f/s > %.2f/s: %.1f req/s offered × %.3gs each = %.1f concurrent requests need %d replicas at %.0f%% of max_inflight %d",
			f.Rejections.Value, thr, f.Invocations.Value, f.Duration.Value, c, n, r.p.Thresholds.TargetUtilization*100, f.MaxInflight)
	}
	offered, accepted, usable := r.offered(f)
	if usable {
		return fmt.Sprintf("429 rate %.2f/s > %.2f/s: %.1f concurrent requests offered need %d replicas at %.0f%% of max_inflight %d",
			f.Rejections.Value, thr, f.Inflight.Value*offered/accepted, n, r.p.Thresholds.TargetUtilization*100, f.MaxInflight)
	}
	return fmt.Sprintf("429 rate %.2f/s > %.2f/s with no usable in-flight figure: grow to %d replicas", f.Rejections.Value, thr, n)
}

// meanUsage is the mean CPU (cores) or memory (bytes) over the n pods whose
// usage is known, and the limit it is compared with.
func meanUsage(f *Function, cpu bool) (usage, limit float64, n int, ok bool) {
	limit = float64(f.Limits.Memory)
	if cpu {
		limit = float64(f.Limits.MilliCPU) / 1000
	}
	sum, n := 0.0, 0
	for i := range f.Pods {
		m := f.Pods[i].Memory
		if cpu {
			m = f.Pods[i].CPU
		}
		if m.Known {
			sum += m.Value
			n++
		}
	}
	if n == 0 || limit <= 0 {
		return 0, limit, 0, false
	}
	return sum / float64(n), limit, n, true
}

// usageNeed applies ceil(current × usage / (threshold × limit)) for CPU or
// memory, with usage the mean over the pods whose usage is known and current
// the number of those pods: the pods that carry the load.
func usageNeed(f *Function, cpu bool, threshold float64) (int32, bool) {
	usage, limit, n, ok := meanUsage(f, cpu)
	if !ok || usage <= threshold*limit {
		return 0, false
	}
	return ceilReplicas(float64(n) * usage / (threshold * limit)), true
}

func usageWhy(f *Function, cpu bool, threshold float64, n int32) string {
	usage, limit, pods, _ := meanUsage(f, cpu)
	name := "memory"
	if cpu {
		name = "CPU"
	}
	return fmt.Sprintf("%s %.0f%% of the limit > %.0f%%: ceil(%d × %.3g / (%.2f × %.3g)) = %d replicas",
		name, 100*usage/limit, 100*threshold, pods, usage, threshold, limit, n)
}

// demandNeed is the replicas the current load needs at the target
// utilisation: the largest of the concurrency, CPU and memory figures, and
// which of them it is. It reports false when the load cannot be known.
func (r *rules) demandNeed(f *Function) (need int32, by string, ok bool) {
	if !r.metrics || !f.Inflight.Known || !f.Rejections.Known || f.Rejections.Value > r.p.RejectionRate() {
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
	for _, cpu := range []bool{true, false} {
		limit, thr, name := float64(f.Limits.Memory), r.p.Thresholds.Memory, "memory"
		if cpu {
			limit, thr, name = float64(f.Limits.MilliCPU)/1000, r.p.Thresholds.CPU, "CPU"
		}
		if limit <= 0 {
			continue
		}
		sum := 0.0
		for i := range f.Pods {
			m := f.Pods[i].Memory
			if cpu {
				m = f.Pods[i].CPU
			}
			if !m.Known {
				// Usage unknown: keep what there is.
				return 0, "", false
			}
			sum += m.Value
		}
		if n := ceilReplicas(sum / (thr * limit)); n > need {
			need, by = n, name
		}
	}
	return need, by, true
}

// scaleDown shrinks an active function to what its demand needs, never below
// max(1, min), and only when the stabilisation window since its last scale
// change has passed.
func (r *rules) scaleDown(f *Function, w *want, window time.Duration) {
	lo, hi := bounds(f)
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
			why = string(text(make([]byte, 0, 96)).s("low utilisation: ").s(by).s(" usage needs ").i(int64(need)).
				s(" replicas to stay under its threshold (floor ").i(int64(lo)).s(")"))
		}
		w.set(need, ReasonScaleDownIdle, classNone, why)
	}
}

// nextFire returns the schedule's next fire time after now, memoised.
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
		return
	}
	c := r.p.Tiers.Cron
	lo, _ := bounds(f)
	next := r.nextFire(f)
	until := next.Sub(r.now)
	lead := r.startup(f) + c.Margin.Duration + r.p.Interval.Duration
	due := until <= max(c.Lookahead.Duration, lead)
	prewarm := until <= lead
	running := f.Inflight.Known && f.Inflight.Value > 0 || f.Pending.Known && f.Pending.Value > 0
	inGrace := !f.LastRun.IsZero() && r.now.Sub(f.LastRun) < c.GracePeriod.Duration
	// Cron functions are usually invoked synchronously: an absent queue
	// metric says nothing about them, and queued work counts only when seen.
	known := r.metrics && f.Inflight.Known

	if prewarm {
		w.check = &ReadinessCheck{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, Kind: CheckPrewarm, Deadline: next, MinReady: 1}
	}
	if f.Replicas < lo && (prewarm || running) {
		why := "has work in flight or queued"
		if prewarm {
			// Many functions share a fire time: no Sprintf on this path.
			why = "fires at " + r.nextText(f) + " (in " + until.Round(time.Second).String() + "); lead " + lead.String() +
				" = startup " + r.startup(f).String() + " + margin " + c.Margin.Duration.String() + " + interval " + r.p.Interval.Duration.String()
		}
		w.set(lo, ReasonPrewarmCron, classCron, why)
		return
	}
	if f.Replicas == 0 {
		return
	}
	if r.scaleUp(f, w, classCron) {
		return
	}
	// A fire within the grace period protects too, even before its run is
	// seen (asked last: it costs a schedule evaluation).
	protected := due || running || inGrace || !known || r.firedWithin(f, c.GracePeriod.Duration)
	if !protected && r.p.ZeroCronWhenIdle() {
		// Many functions go idle at once: no Sprintf on this path.
		w.set(0, ReasonZeroIdle, classNone, "idle: next fire "+r.nextText(f)+" is beyond the "+r.lookaheadText+
			" lookahead, nothing in flight, last run "+lastRunText(f.LastRun))
		return
	}
	r.scaleDown(f, w, r.p.Tiers.Sync.ScaleDownWindow.Duration)
	w.evictable = !protected && w.desired <= f.Replicas && r.resident(f)
}

func (r *rules) async(f *Function, w *want) {
	a := r.p.Tiers.Async
	lo, hi := bounds(f)
	pending := f.Pending.Known && f.Pending.Value > 0
	inflight := f.Inflight.Known && f.Inflight.Value > 0
	requested := !f.ActivationRequested.IsZero() && r.now.Sub(f.ActivationRequested) < a.IdleAfter.Duration
	byPending := int32(0)
	if pending {
		byPending = min(hi, ceilReplicas(f.Pending.Value/float64(a.PendingPerReplica)))
	}

	if f.Replicas == 0 {
		if !pending && !inflight && !requested {
			return
		}
		to := max(lo, byPending)
		why := string(text(make([]byte, 0, 32)).f(f.Pending.Value, 0).s(" messages pending"))
		if !pending && !inflight {
			why = "activation requested at " + f.ActivationRequested.UTC().Format(time.RFC3339)
		}
		w.set(to, ReasonActivateAsync, classAsyncActivation, why)
		w.check = &ReadinessCheck{Function: f.Name, Namespace: f.Namespace, Tier: f.Tier, Kind: CheckActivation,
			Deadline: r.now.Add(a.ActivationTimeout.Duration), MinReady: 1}
		return
	}
	if f.Replicas < lo {
		w.set(lo, ReasonScaleUpMin, classAsyncScaleUp, fmt.Sprintf("active async functions keep at least max(1, min)=%d replicas", lo))
		return
	}
	if byPending > f.Replicas {
		w.set(byPending, ReasonScaleUpPending, classAsyncScaleUp, fmt.Sprintf("%.0f messages pending at %d per replica", f.Pending.Value, a.PendingPerReplica))
		return
	}
	if r.scaleUp(f, w, classAsyncScaleUp) {
		return
	}
	idleWork := r.metrics && f.Inflight.Known && f.Pending.Known && !pending && !inflight
	last := latest(f.LastRun, f.ActivationRequested)
	quiet := (last.IsZero() || r.now.Sub(last) >= a.IdleAfter.Duration) &&
		(f.LastScale.IsZero() || r.now.Sub(f.LastScale) >= a.IdleAfter.Duration)
	if idleWork && quiet {
		w.set(0, ReasonZeroIdle, classNone, fmt.Sprintf("idle for %s: nothing in flight or pending, last run %s", a.IdleAfter.Duration, lastRunText(f.LastRun)))
		return
	}
	r.scaleDown(f, w, r.p.Tiers.Sync.ScaleDownWindow.Duration)
	recentRequest := !f.ActivationRequested.IsZero() && r.now.Sub(f.ActivationRequested) < a.ActivationTimeout.Duration
	w.evictable = idleWork && !recentRequest && w.desired <= f.Replicas && r.resident(f)
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
// claimed: evictions in the order they were chosen, then zeroing, then other
// scale-downs, then scale-ups, each by name and namespace (unique, so an
// unstable sort is deterministic).
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
	// Evictions keep the order they were chosen in; the rest is sorted.
	// Sorting indices keeps the swaps cheap.
	order := make([]int32, len(actions))
	ranks := make([]int8, len(actions))
	for i := range order {
		order[i] = int32(i)
		ranks[i] = int8(rank(&actions[i]))
	}
	slices.SortFunc(order, func(i, j int32) int {
		ra, rb := ranks[i], ranks[j]
		if c := cmp.Compare(ra, rb); c != 0 || ra == 0 {
			if c == 0 {
				return cmp.Compare(i, j)
			}
			return c
		}
		a, b := &actions[i], &actions[j]
		if c := strings.Compare(a.Function, b.Function); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace, b.Namespace)
	})
	sorted := make([]Action, len(actions))
	for k, i := range order {
		sorted[k] = actions[i]
	}
	copy(actions, sorted)
}

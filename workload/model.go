// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/tierscaler/tierscaler/policy"
)

// maxSegment bounds a sync fluid segment, so that the diurnal curve is
// integrated finely enough (midpoint rule).
const maxSegment = time.Minute

// ErrUnknownFunction is returned by the control methods for a key the model
// does not have.
var ErrUnknownFunction = errors.New("unknown function")

// Observation is what the model reports for one function after a step:
// cumulative counters as the OpenFaaS gateway, queue-worker and cadvisor
// would count them, and the current state.
type Observation struct {
	// Tier of the function.
	Tier policy.Tier
	// Ready is the number of Ready replicas during the last step and
	// Capacity is Ready × maxInflight.
	Ready, Capacity int

	// Offered counts the requests (sync), fires (cron) or job arrivals
	// (async) offered so far.
	Offered float64
	// Started, Completed200 and Rejected429 are the gateway's counters:
	// gateway_function_invocation_started and
	// gateway_function_invocation_total by code. Started includes the
	// rejected and failed invocations, and not the held ones, so
	// Inflight = Started − Completed200 − Rejected429 − Failed.
	Started, Completed200, Rejected429 float64
	// Held is the invocations the gateway holds for scale from zero (see
	// Model.SetHoldAtZero), not started yet; Failed counts the held
	// invocations whose hold timed out: forwarded to a function without a
	// Ready replica, they fail at once.
	Held, Failed float64
	// Inflight is the requests, runs or jobs in flight; Pending the queued
	// messages not yet started (async functions and async cron functions).
	Inflight, Pending float64
	// OfferedRate and RejectedRate are per second over the last step.
	OfferedRate, RejectedRate float64

	// CPUPerPod (cores) and MemoryPerPod (bytes) are the usage of one Ready
	// pod.
	CPUPerPod, MemoryPerPod float64

	// CronFires counts fire times reached (and manual fires); CronRuns the
	// runs started; CronMissed the synchronous fires that could not start
	// (no Ready replica or every slot busy, or held past the hold timeout);
	// CronLate the runs that started strictly after their fire time (async
	// runs, and held synchronous runs).
	CronFires, CronRuns, CronMissed, CronLate int

	// AsyncWait is the distribution of queue waits (start − arrival) of
	// async jobs and async cron runs.
	AsyncWait Histogram

	// LastActivity is the last time the function was offered, started, ran
	// or completed work (zero: never).
	LastActivity time.Time

	// RateOverride is the offered rate set by SetRate, when Overridden.
	RateOverride float64
	Overridden   bool
}

// Model is the workload state machine of a scenario's functions. Build it
// with NewModel, advance it with Step and read it with Observe. A Model is
// not safe for concurrent use.
type Model struct {
	err error
	// holdTimeout > 0: the gateway holds invocations of a function without
	// a Ready replica for up to holdTimeout (scale from zero).
	holdTimeout time.Duration
	loc         *time.Location
	fns         []*fnState
	byKey       map[string]*fnState
	started     bool
	origin      time.Time
	now         time.Time
}

// NewModel builds the model of s with a random seed. s should have passed
// Validate (Parse and Load ensure it); unset fields are taken at their
// defaults. If s does not validate, the model has no functions and Err
// reports why.
func NewModel(s *Scenario, seed int64) *Model {
	m := &Model{loc: time.UTC, byKey: map[string]*fnState{}}
	c, err := compile(s)
	if err != nil {
		m.err = err
		return m
	}
	m.loc = c.loc
	for _, sp := range c.functions {
		f := newFnState(sp, seed)
		m.fns = append(m.fns, f)
		m.byKey[sp.key] = f
	}
	sort.Slice(m.fns, func(i, j int) bool { return m.fns[i].sp.key < m.fns[j].sp.key })
	return m
}

// Err is the validation error of the scenario NewModel was given, if any.
func (m *Model) Err() error { return m.err }

// Keys lists the functions' keys (name.namespace), sorted.
func (m *Model) Keys() []string {
	keys := make([]string, len(m.fns))
	for i, f := range m.fns {
		keys[i] = f.sp.key
	}
	return keys
}

// Has reports whether the model has the function key.
func (m *Model) Has(key string) bool { _, ok := m.byKey[key]; return ok }

// Function returns the defaulted scenario function of key.
func (m *Model) Function(key string) (Function, bool) {
	f, ok := m.byKey[key]
	if !ok {
		return Function{}, false
	}
	return f.sp.fn, true
}

// Duration is the time one request (sync), run (cron) or job (async) of
// the function takes, 0 for an unknown function.
func (m *Model) Duration(key string) time.Duration {
	if f, ok := m.byKey[key]; ok {
		return f.sp.duration
	}
	return 0
}

// IdleUsage is the usage of one pod of the function with nothing in
// flight: cores and bytes (0, 0 for an unknown function).
func (m *Model) IdleUsage(key string) (cpu, memory float64) {
	if f, ok := m.byKey[key]; ok {
		return capAt(f.sp.podCPU, f.sp.limCPU), capAt(f.sp.podMem, f.sp.limMem)
	}
	return 0, 0
}

// Origin is the start of the model's clock (the first Step's now); zero
// before the first Step.
func (m *Model) Origin() time.Time { return m.origin }

// Now is the end of the last step; zero before the first Step.
func (m *Model) Now() time.Time { return m.now }

// Step advances every function over [now, now+dt) with ready[key] Ready
// replicas (a missing key is 0). The first Step sets the origin; a Step
// with dt <= 0 does nothing else.
func (m *Model) Step(now time.Time, dt time.Duration, ready map[string]int) {
	if !m.started {
		m.started, m.origin, m.now = true, now, now
		for _, f := range m.fns {
			f.init(m)
		}
	}
	start := m.now
	end := now.Add(dt)
	if !end.After(start) {
		return
	}
	for _, f := range m.fns {
		r := ready[f.sp.key]
		if r < 0 {
			r = 0
		}
		f.step(m, start, end, r)
	}
	m.now = end
}

// Observe returns the function's observation after the last step (the zero
// Observation for an unknown key).
func (m *Model) Observe(key string) Observation {
	f, ok := m.byKey[key]
	if !ok {
		return Observation{}
	}
	o := f.obs
	o.AsyncWait = f.obs.AsyncWait.clone()
	return o
}

// Counters is Observe without the async wait histogram (its AsyncWait is
// empty): the counters and gauges a simulator samples every step, without
// copying the histogram each time.
func (m *Model) Counters(key string) Observation {
	f, ok := m.byKey[key]
	if !ok {
		return Observation{}
	}
	o := f.obs
	o.AsyncWait = Histogram{}
	return o
}

// Rate is a sync function's offered rate at t in requests per second, an
// override included (0 for other tiers and unknown keys). Offset bursts
// count from the origin.
func (m *Model) Rate(key string, t time.Time) float64 {
	f, ok := m.byKey[key]
	if !ok || f.sp.tier != policy.TierSync {
		return 0
	}
	return f.rate(m, t)
}

func (m *Model) lookup(key string, tier policy.Tier, what string) (*fnState, error) {
	f, ok := m.byKey[key]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownFunction, key)
	}
	if f.sp.tier != tier {
		return nil, fmt.Errorf("function %s is in the %s tier; %s needs a %s function", key, f.sp.tier, what, tier)
	}
	return f, nil
}

// SetRate overrides a sync function's offered rate (requests per second,
// bursts and diurnal curve included) from the next step on, until
// ResetRate.
func (m *Model) SetRate(key string, rps float64) error {
	f, err := m.lookup(key, policy.TierSync, "a rate override")
	if err != nil {
		return err
	}
	if math.IsNaN(rps) || math.IsInf(rps, 0) || rps < 0 {
		return fmt.Errorf("rate %v for %s: want a finite number >= 0", rps, key)
	}
	f.override = &rps
	f.obs.RateOverride, f.obs.Overridden = rps, true
	return nil
}

// ResetRate removes a rate override.
func (m *Model) ResetRate(key string) error {
	f, err := m.lookup(key, policy.TierSync, "a rate override")
	if err != nil {
		return err
	}
	f.override = nil
	f.obs.RateOverride, f.obs.Overridden = 0, false
	return nil
}

// SetHoldAtZero turns the gateway's scale from zero on (timeout > 0) or
// off (0). On, a synchronous invocation (a sync request, or a cron fire
// that is not invoked through the queue) of a function without a Ready
// replica is held instead of refused: it starts at the first step with a
// Ready replica (a cron run then is late; what the replicas cannot take is
// refused with 429), or fails when it has been held for timeout. Held
// invocations are Held, not Started. Queued work waits in its queue as
// always. Off, such an invocation is refused at once (429; a missed cron
// run). The emulator and the simulator pass openfaas.ScaleFromZeroTimeout.
func (m *Model) SetHoldAtZero(timeout time.Duration) {
	m.holdTimeout = max(timeout, 0)
}

// Enqueue adds n jobs to an async function's queue at the start of the
// next step.
func (m *Model) Enqueue(key string, n int) error {
	f, err := m.lookup(key, policy.TierAsync, "enqueueing jobs")
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("job count %d for %s: want at least 1", n, key)
	}
	f.manualJobs += n
	return nil
}

// Fire fires a cron function at the start of the next step, as its
// schedule would.
func (m *Model) Fire(key string) error {
	f, err := m.lookup(key, policy.TierCron, "a fire")
	if err != nil {
		return err
	}
	f.manualFires++
	return nil
}

// cohort is sync work accepted uniformly over [s, e); it completes
// uniformly over [s+d, e+d).
type cohort struct {
	s, e         time.Time
	amount, done float64
}

// batch is n jobs or runs sharing a time (arrival or completion).
type batch struct {
	t time.Time
	n int
}

// fnState is one function's state.
type fnState struct {
	sp     *spec
	obs    Observation
	origin time.Time

	// sync
	override *float64
	cohorts  []cohort
	// held is sync work held for scale from zero, by arrival.
	held []cohort

	// heldFires are the synchronous cron fires held for scale from zero.
	heldFires []time.Time

	// cron
	nextFire    time.Time // zero: never
	manualFires int

	// queue (async, async cron) and runs in flight (cron, async)
	manualJobs int
	queue      []batch // arrivals, FIFO
	queued     int
	running    []batch // completion times, ascending
	runningN   int

	// async arrivals
	trainNext []time.Time
	trainK    []int
	trainRNG  []*rand.Rand
	poisNext  time.Time // zero: no Poisson stream
	poisRNG   *rand.Rand
}

// rngFor derives an independent stream from the seed, the function's key
// and a stream number, so that a function's arrivals do not depend on the
// other functions or on the order of draws between its streams.
func rngFor(seed int64, key string, stream int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(key))
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()^uint64(stream)*0x9e3779b97f4a7c15))
}

func newFnState(sp *spec, seed int64) *fnState {
	f := &fnState{sp: sp}
	f.obs.Tier = sp.tier
	f.obs.AsyncWait = newHistogram()
	for i := range sp.trains {
		f.trainRNG = append(f.trainRNG, rngFor(seed, sp.key, i+1))
	}
	f.trainNext = make([]time.Time, len(sp.trains))
	f.trainK = make([]int, len(sp.trains))
	if sp.poisson > 0 {
		f.poisRNG = rngFor(seed, sp.key, 0)
	}
	return f
}

// init sets the first arrivals once the origin is known.
func (f *fnState) init(m *Model) {
	f.origin = m.origin
	if f.sp.schedule != nil {
		f.nextFire = f.sp.schedule.Next(m.origin.Add(-time.Nanosecond))
	}
	for i := range f.sp.trains {
		f.trainNext[i] = f.trainTime(i)
	}
	if f.poisRNG != nil {
		f.poisNext = m.origin.Add(f.expGap())
	}
}

// trainTime is the arrival of batch trainK[i] of train i.
func (f *fnState) trainTime(i int) time.Time {
	t := f.sp.trains[i]
	at := f.origin.Add(t.first + time.Duration(f.trainK[i])*t.every)
	if t.jitter > 0 {
		at = at.Add(time.Duration(f.trainRNG[i].Float64() * float64(t.jitter)))
	}
	return at
}

// expGap is an exponential inter-arrival time of the Poisson stream, at
// least 1ns.
func (f *fnState) expGap() time.Duration {
	g := time.Duration(f.poisRNG.ExpFloat64() / f.sp.poisson * 1e9)
	if g < 1 {
		g = 1
	}
	return g
}

func (f *fnState) touch(t time.Time) {
	if t.After(f.obs.LastActivity) {
		f.obs.LastActivity = t
	}
}

func (f *fnState) step(m *Model, start, end time.Time, r int) {
	capacity := r * f.sp.maxInflight
	offered0, rejected0 := f.obs.Offered, f.obs.Rejected429
	if f.sp.tier == policy.TierSync {
		f.stepSync(m, start, end, r, capacity)
		f.obs.Inflight = 0
		for _, c := range f.cohorts {
			f.obs.Inflight += c.amount - c.done
		}
	} else {
		f.stepDiscrete(m, start, end, r, capacity)
		f.obs.Inflight = float64(f.runningN)
		if f.runningN > 0 {
			f.touch(end)
		}
	}
	f.obs.Pending = float64(f.queued)
	f.obs.Held = float64(len(f.heldFires))
	for _, c := range f.held {
		f.obs.Held += c.amount
	}
	f.obs.Ready, f.obs.Capacity = r, capacity
	secs := end.Sub(start).Seconds()
	f.obs.OfferedRate = (f.obs.Offered - offered0) / secs
	f.obs.RejectedRate = (f.obs.Rejected429 - rejected0) / secs
	per := f.obs.Inflight / float64(max(r, 1))
	f.obs.CPUPerPod = capAt(f.sp.podCPU+f.sp.reqCPU*per, f.sp.limCPU)
	f.obs.MemoryPerPod = capAt(f.sp.podMem+f.sp.reqMem*per, f.sp.limMem)
}

func capAt(v, limit float64) float64 {
	if limit > 0 && v > limit {
		return limit
	}
	return v
}

// stepSync runs the fluid model over [start, end).
func (f *fnState) stepSync(m *Model, start, end time.Time, r, capacity int) {
	d := f.sp.duration
	mu := float64(capacity) / d.Seconds()
	busy := len(f.cohorts) > 0
	hold := m.holdTimeout > 0 && r == 0
	if r > 0 && len(f.held) > 0 {
		f.releaseHeld(start, capacity)
	}
	if hold {
		f.expireHeld(end.Add(-m.holdTimeout))
	}
	var offered, rejected float64
	for a := start; a.Before(end); {
		b := end
		if lim := a.Add(maxSegment); lim.Before(b) {
			b = lim
		}
		if nb := f.nextBoundary(m, a); !nb.IsZero() && nb.Before(b) {
			b = nb
		}
		secs := b.Sub(a).Seconds()
		lambda := f.rate(m, a.Add(b.Sub(a)/2))
		o := lambda * secs
		offered += o
		switch acc := math.Min(lambda, mu) * secs; {
		case hold:
			if o > 0 {
				f.held = append(f.held, cohort{s: a, e: b, amount: o})
			}
		default:
			rejected += o - acc
			f.obs.Started += o
			if acc > 0 {
				f.cohorts = append(f.cohorts, cohort{s: a, e: b, amount: acc})
			}
		}
		a = b
	}
	f.obs.Offered += offered
	f.obs.Rejected429 += rejected
	if offered > 0 || busy {
		f.touch(end)
	}
	// Completions up to end.
	keep := f.cohorts[:0]
	for _, c := range f.cohorts {
		cs, ce := c.s.Add(d), c.e.Add(d)
		var done float64
		switch {
		case !end.Before(ce):
			done = c.amount
		case end.After(cs):
			done = c.amount * end.Sub(cs).Seconds() / c.e.Sub(c.s).Seconds()
		}
		if done > c.done {
			f.obs.Completed200 += done - c.done
			c.done = done
		}
		if c.done < c.amount {
			keep = append(keep, c)
		}
	}
	f.cohorts = keep
}

// releaseHeld forwards the held sync work at t, when a replica is Ready:
// what the free slots take runs (it completes a duration later), the rest
// is refused.
func (f *fnState) releaseHeld(t time.Time, capacity int) {
	var h, busy float64
	for _, c := range f.held {
		h += c.amount
	}
	for _, c := range f.cohorts {
		busy += c.amount - c.done
	}
	acc := math.Min(h, math.Max(float64(capacity)-busy, 0))
	f.obs.Started += h
	f.obs.Rejected429 += h - acc
	if acc > 0 {
		f.cohorts = append(f.cohorts, cohort{s: t, e: t.Add(time.Millisecond), amount: acc})
	}
	f.held = f.held[:0]
}

// expireHeld fails the held sync work that arrived at or before cutoff:
// its hold timed out.
func (f *fnState) expireHeld(cutoff time.Time) {
	keep := f.held[:0]
	for _, c := range f.held {
		var gone float64
		switch {
		case !c.e.After(cutoff):
			gone = c.amount
		case c.s.Before(cutoff):
			gone = c.amount * cutoff.Sub(c.s).Seconds() / c.e.Sub(c.s).Seconds()
			c.amount -= gone
			c.s = cutoff
		}
		f.obs.Started += gone
		f.obs.Failed += gone
		if c.amount > 0 && c.e.After(cutoff) {
			keep = append(keep, c)
		}
	}
	f.held = keep
}

// rate is the offered rate at t.
func (f *fnState) rate(m *Model, t time.Time) float64 {
	if f.override != nil {
		return *f.override
	}
	sp := f.sp
	lambda := sp.baseRate
	if sp.diurnal {
		lambda = diurnal(sp.baseRate, sp.peakRate, sp.peakHour, t.In(m.loc))
	}
	for i := range sp.bursts {
		if sp.bursts[i].activeAt(t, m.origin, m.loc) {
			lambda += sp.bursts[i].rps
		}
	}
	return lambda
}

// diurnal is the daily sinusoid: peak at peakHour, base twelve hours away.
func diurnal(base, peak, peakHour float64, local time.Time) float64 {
	h := float64(local.Hour()) + float64(local.Minute())/60 + (float64(local.Second())+float64(local.Nanosecond())/1e9)/3600
	return base + (peak-base)*(1+math.Cos(2*math.Pi*(h-peakHour)/24))/2
}

// occurrence is the start of a daily burst on t's local day plus k days.
func (b *burst) occurrence(t time.Time, k int, loc *time.Location) time.Time {
	lt := t.In(loc)
	tod := b.timeOfDay
	h, mi, s := int(tod/time.Hour), int(tod%time.Hour/time.Minute), int(tod%time.Minute/time.Second)
	return time.Date(lt.Year(), lt.Month(), lt.Day()+k, h, mi, s, 0, loc)
}

// activeAt reports whether an occurrence of b covers t.
func (b *burst) activeAt(t, origin time.Time, loc *time.Location) bool {
	if !b.daily {
		s := origin.Add(b.offset)
		return !t.Before(s) && t.Before(s.Add(b.length))
	}
	for k := -1; k <= 0; k++ {
		s := b.occurrence(t, k, loc)
		if !t.Before(s) && t.Before(s.Add(b.length)) {
			return true
		}
	}
	return false
}

// nextBoundary is the first burst start or end strictly after t (zero if
// none).
func (f *fnState) nextBoundary(m *Model, t time.Time) time.Time {
	var next time.Time
	consider := func(c time.Time) {
		if c.After(t) && (next.IsZero() || c.Before(next)) {
			next = c
		}
	}
	for i := range f.sp.bursts {
		b := &f.sp.bursts[i]
		if !b.daily {
			s := m.origin.Add(b.offset)
			consider(s)
			consider(s.Add(b.length))
			continue
		}
		for k := -1; k <= 1; k++ {
			s := b.occurrence(t, k, m.loc)
			consider(s)
			consider(s.Add(b.length))
		}
	}
	return next
}

// stepDiscrete runs the event loop of a cron or async function over
// [start, end): completions, arrivals and starts at their exact times.
func (f *fnState) stepDiscrete(m *Model, start, end time.Time, r, capacity int) {
	t := start
	f.complete(t)
	if r > 0 {
		f.releaseHeldFires(t, capacity)
	}
	for {
		f.complete(t)
		f.arrive(m, t, end, r, capacity)
		f.startQueued(t, capacity)
		nt := f.nextEvent()
		if nt.IsZero() || !nt.Before(end) {
			break
		}
		t = nt
	}
	// Work that ends exactly at end is still in flight at end⁻; the next
	// step completes it first.
	f.completeBefore(end)
	if m.holdTimeout > 0 && r == 0 {
		f.expireHeldFires(end.Add(-m.holdTimeout))
	}
}

// releaseHeldFires runs the held cron fires at t, when a replica is Ready,
// late, while slots are free; the others are missed (429).
func (f *fnState) releaseHeldFires(t time.Time, capacity int) {
	for _, at := range f.heldFires {
		if f.runningN < capacity {
			f.obs.CronRuns++
			if t.After(at) {
				f.obs.CronLate++
			}
			f.run(t, 1)
			continue
		}
		f.obs.CronMissed++
		f.obs.Started++
		f.obs.Rejected429++
	}
	f.heldFires = f.heldFires[:0]
}

// expireHeldFires fails the held cron fires held since cutoff or before:
// missed runs.
func (f *fnState) expireHeldFires(cutoff time.Time) {
	keep := f.heldFires[:0]
	for _, at := range f.heldFires {
		if at.After(cutoff) {
			keep = append(keep, at)
			continue
		}
		f.obs.CronMissed++
		f.obs.Started++
		f.obs.Failed++
	}
	f.heldFires = keep
}

// nextEvent is the earliest pending completion or arrival (zero: none).
func (f *fnState) nextEvent() time.Time {
	var next time.Time
	consider := func(c time.Time) {
		if !c.IsZero() && (next.IsZero() || c.Before(next)) {
			next = c
		}
	}
	if len(f.running) > 0 {
		consider(f.running[0].t)
	}
	consider(f.nextFire)
	for _, t := range f.trainNext {
		consider(t)
	}
	consider(f.poisNext)
	return next
}

// complete finishes the runs and jobs that end at or before t.
func (f *fnState) complete(t time.Time) {
	for len(f.running) > 0 && !f.running[0].t.After(t) {
		b := f.running[0]
		f.running = f.running[1:]
		f.runningN -= b.n
		f.obs.Completed200 += float64(b.n)
		f.touch(b.t)
	}
}

// completeBefore finishes the runs and jobs that end strictly before t.
func (f *fnState) completeBefore(t time.Time) {
	for len(f.running) > 0 && f.running[0].t.Before(t) {
		b := f.running[0]
		f.running = f.running[1:]
		f.runningN -= b.n
		f.obs.Completed200 += float64(b.n)
		f.touch(b.t)
	}
}

// run starts n runs or jobs at t.
func (f *fnState) run(t time.Time, n int) {
	end := t.Add(f.sp.duration)
	if k := len(f.running); k > 0 && f.running[k-1].t.Equal(end) {
		f.running[k-1].n += n
	} else {
		f.running = append(f.running, batch{end, n})
	}
	f.runningN += n
	f.obs.Started += float64(n)
	f.touch(t)
}

// enqueue queues n messages that arrived at t.
func (f *fnState) enqueue(t time.Time, n int) {
	f.queue = append(f.queue, batch{t, n})
	f.queued += n
	f.obs.Offered += float64(n)
	f.touch(t)
}

// fire handles one cron fire at t.
func (f *fnState) fire(m *Model, t time.Time, r, capacity int) {
	f.obs.CronFires++
	if f.sp.cronAsync {
		f.enqueue(t, 1)
		return
	}
	f.obs.Offered++
	f.touch(t)
	if r == 0 && m.holdTimeout > 0 {
		f.heldFires = append(f.heldFires, t)
		return
	}
	if r >= 1 && f.runningN < capacity {
		f.obs.CronRuns++
		f.run(t, 1)
		return
	}
	f.obs.CronMissed++
	f.obs.Started++
	f.obs.Rejected429++
}

// arrive processes the fires and arrivals at or before t (and before end).
func (f *fnState) arrive(m *Model, t, end time.Time, r, capacity int) {
	for ; f.manualFires > 0; f.manualFires-- {
		f.fire(m, t, r, capacity)
	}
	if f.manualJobs > 0 {
		f.enqueue(t, f.manualJobs)
		f.manualJobs = 0
	}
	for !f.nextFire.IsZero() && !f.nextFire.After(t) && f.nextFire.Before(end) {
		f.fire(m, f.nextFire, r, capacity)
		f.nextFire = f.sp.schedule.Next(f.nextFire)
	}
	for i := range f.trainNext {
		for !f.trainNext[i].After(t) && f.trainNext[i].Before(end) {
			f.enqueue(f.trainNext[i], f.sp.trains[i].jobs)
			f.trainK[i]++
			f.trainNext[i] = f.trainTime(i)
		}
	}
	for !f.poisNext.IsZero() && !f.poisNext.After(t) && f.poisNext.Before(end) {
		f.enqueue(f.poisNext, 1)
		f.poisNext = f.poisNext.Add(f.expGap())
	}
}

// startQueued starts queued messages FIFO while slots are free.
func (f *fnState) startQueued(t time.Time, capacity int) {
	for len(f.queue) > 0 && f.runningN < capacity {
		b := &f.queue[0]
		n := min(b.n, capacity-f.runningN)
		wait := t.Sub(b.t)
		f.obs.AsyncWait.observe(wait, n)
		if f.sp.tier == policy.TierCron {
			f.obs.CronRuns += n
			if wait > 0 {
				f.obs.CronLate += n
			}
		}
		f.run(t, n)
		f.queued -= n
		b.n -= n
		if b.n == 0 {
			f.queue = f.queue[1:]
		}
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

const gib = float64(1 << 30)

// Report is a simulation's result: the same workload under each strategy.
type Report struct {
	Scenario    string    `json:"scenario"`
	Description string    `json:"description,omitempty"`
	Seed        int64     `json:"seed"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Days        float64   `json:"days"`
	// Interval is the policy's reconcile interval; Step the model step and
	// simulated scrape interval; Window the rate window.
	Interval string `json:"interval"`
	Step     string `json:"step"`
	Window   string `json:"window"`
	// Nodes is the scenario's cluster: count and shape.
	Nodes      int    `json:"nodes"`
	NodeCPU    string `json:"nodeCPU"`
	NodeMemory string `json:"nodeMemory"`
	NodePods   int    `json:"nodePods"`
	// Functions counts the scenario's functions by tier.
	Functions map[policy.Tier]int `json:"functions"`
	// Definitions say what each figure means.
	Definitions map[string]string `json:"definitions"`
	// Notes are warnings about this run (approximated queries, time zones).
	Notes      []string          `json:"notes,omitempty"`
	Strategies []*StrategyReport `json:"strategies"`
}

// StrategyReport is one strategy's figures.
type StrategyReport struct {
	Strategy string `json:"strategy"`
	// Nodes the strategy ran on and their allocatable total.
	Nodes                int     `json:"nodes"`
	AllocatableCPU       float64 `json:"allocatableCPU"`
	AllocatableMemoryGiB float64 `json:"allocatableMemoryGiB"`
	Reconciles           int     `json:"reconciles"`

	// ReservedCPUHours and ReservedMemoryGiBHours are the requests of the
	// pods bound to a node, integrated over time; ByTier splits them.
	ReservedCPUHours       float64                     `json:"reservedCPUHours"`
	ReservedMemoryGiBHours float64                     `json:"reservedMemoryGiBHours"`
	ByTier                 map[policy.Tier]TierReserve `json:"byTier"`
	// Relative to the static strategy (percent), when it ran.
	CPUPercentOfStatic    *float64 `json:"cpuPercentOfStatic,omitempty"`
	MemoryPercentOfStatic *float64 `json:"memoryPercentOfStatic,omitempty"`

	// Peaks of the reserved requests and bound pods, and the nodes of the
	// scenario's shape needed to hold the peak reservation.
	PeakReservedCPU       float64 `json:"peakReservedCPU"`
	PeakReservedMemoryGiB float64 `json:"peakReservedMemoryGiB"`
	PeakPods              int     `json:"peakPods"`
	PeakNodesNeeded       int     `json:"peakNodesNeeded"`
	// PendingPodHours is pods left Pending (no node), integrated.
	PendingPodHours float64 `json:"pendingPodHours"`

	// Sync429Seconds: seconds in which a sync function refused requests,
	// summed over the sync functions; Sync429Count the requests refused;
	// SyncRequests the requests offered.
	Sync429Seconds float64 `json:"sync429Seconds"`
	Sync429Count   float64 `json:"sync429Count"`
	SyncRequests   float64 `json:"syncRequests"`

	// Sync429SecondsBy splits Sync429Seconds by function (those with any).
	Sync429SecondsBy map[string]float64 `json:"sync429SecondsBy,omitempty"`

	CronFires  int `json:"cronFires"`
	CronRuns   int `json:"cronRuns"`
	CronMissed int `json:"cronMissed"`
	CronLate   int `json:"cronLate"`
	// CronMissedBy and CronLateBy name the functions with missed or late
	// runs.
	CronMissedBy map[string]int `json:"cronMissedBy,omitempty"`
	CronLateBy   map[string]int `json:"cronLateBy,omitempty"`

	// AsyncJobs started and their queue waits (seconds) before starting.
	AsyncJobs       uint64  `json:"asyncJobs"`
	AsyncWaitP50    float64 `json:"asyncWaitP50"`
	AsyncWaitP95    float64 `json:"asyncWaitP95"`
	AsyncWaitMax    float64 `json:"asyncWaitMax"`
	AsyncWaitMean   float64 `json:"asyncWaitMean"`
	AsyncJobsQueued float64 `json:"asyncJobsQueued"`

	Evictions         int `json:"evictions"`
	ShortfallEpisodes int `json:"shortfallEpisodes"`
	// ForecastAlerts counts the shortfall episodes that are forecasts
	// (cron-at-risk), raised before the fire they concern.
	ForecastAlerts int `json:"forecastAlerts"`
	// Reservations counts the cron fires for which a plan held room
	// (policy.Reservation), each fire once.
	Reservations int `json:"reservations"`
	// ZeroedInFlight counts the functions scaled to zero while they had
	// work in flight (a real pod's termination would cut it);
	// ZeroedInFlightBy splits it by function.
	ZeroedInFlight     int            `json:"zeroedInFlight"`
	ZeroedInFlightBy   map[string]int `json:"zeroedInFlightBy,omitempty"`
	ShortfallsByReason map[string]int `json:"shortfallsByReason,omitempty"`

	// Marks are the evictions, shortfall episodes, zeroings with work in
	// flight and reservations (the first maxMarks of each), for the charts.
	Marks    []Mark   `json:"marks,omitempty"`
	Timeline Timeline `json:"timeline"`
}

// TierReserve is one tier's reserved requests over time.
type TierReserve struct {
	CPUHours       float64 `json:"cpuHours"`
	MemoryGiBHours float64 `json:"memoryGiBHours"`
}

// Mark is an event on the timeline.
type Mark struct {
	T time.Time `json:"t"`
	// Kind is eviction, shortfall, zeroed-in-flight or reservation (the
	// first plan that held room for a cron fire).
	Kind     string `json:"kind"`
	Function string `json:"function"`
	// Detail is the claim an eviction served, a shortfall's reason, or the
	// pods a reservation held ("2 pods", "1 pod, 1 missing").
	Detail string `json:"detail,omitempty"`
	// Fire is the cron fire a reservation or a forecast (cron-at-risk)
	// concerns.
	Fire time.Time `json:"fire,omitzero"`
}

// Timeline is the strategy's use over time, in buckets of equal length.
type Timeline struct {
	BucketSeconds float64         `json:"bucketSeconds"`
	Points        []TimelinePoint `json:"points"`
}

// TimelinePoint is the mean over one bucket (counts are totals).
type TimelinePoint struct {
	T time.Time `json:"t"`
	// Pods bound to a node, by tier: sync, cron, async.
	Sync  float64 `json:"sync"`
	Cron  float64 `json:"cron"`
	Async float64 `json:"async"`
	// Pending pods (no node).
	Pending           float64 `json:"pending"`
	ReservedCPU       float64 `json:"reservedCPU"`
	ReservedMemoryGiB float64 `json:"reservedMemoryGiB"`
	Evictions         int     `json:"evictions,omitempty"`
	// Shortfalls are the shortfall episodes that began in the bucket, but
	// forecasts; Forecasts the forecasts (cron-at-risk) raised in it.
	Shortfalls     int     `json:"shortfalls,omitempty"`
	Forecasts      int     `json:"forecasts,omitempty"`
	Sync429Seconds float64 `json:"sync429Seconds,omitempty"`
	CronMissed     int     `json:"cronMissed,omitempty"`
	// HeldPods, HeldCPU and HeldMemoryGiB are the pods and the room the
	// plans held for upcoming cron fires (their reservations), as of the
	// last reconcile.
	HeldPods      float64 `json:"heldPods,omitempty"`
	HeldCPU       float64 `json:"heldCPU,omitempty"`
	HeldMemoryGiB float64 `json:"heldMemoryGiB,omitempty"`
}

// maxMarks bounds the marks of each kind kept in the report.
const maxMarks = 2000

// definitions explain the figures and the strategies, for people: no Go
// identifiers. They go into report.json; the HTML page's glossary gives, for
// each row of the table (summaryRows' key) and each strategy, its
// definition under the table's own label. docs/simulate.md says the same.
var definitions = map[string]string{
	"nodes":           "nodes the strategy ran on, and their allocatable CPU (cores) and memory (GiB) in total",
	"reserved":        "requests (CPU, memory) of the pods bound to a node, integrated over time; pending pods reserve nothing",
	"peakReserved":    "the largest CPU and memory requested by bound pods at one time, and the most pods bound at one time",
	"peakNodesNeeded": "nodes of the scenario's shape needed to hold the peak reserved requests: max over time of ceil(max(CPU/node CPU, memory/node memory, pods/node pods)); a lower bound that ignores fragmentation",
	"pendingPodHours": "pods left Pending (no node had room), integrated over time",
	"sync429Seconds":  "per sync function, the sample intervals (the model step) in which it refused at least half a request (429), in seconds, summed over the sync functions",
	"sync429Count":    "requests the sync functions refused with a 429, and the requests offered to them",
	"cronFires":       "cron fires; missed: synchronous fires that found no free Ready replica; late: runs invoked through the queue that started after their fire time",
	"asyncJobs":       "async jobs that started during the simulation",
	"asyncWait":       "wait of async jobs from arrival to start; p50 and p95 interpolated in the model's wait histogram buckets (as histogram_quantile), max exact",
	"evictions":       "functions tierscaler scaled to zero to make room for another's claim (evict-for-capacity)",
	"zeroedInFlight":  "functions a strategy scaled to zero while they had requests, runs or jobs in flight: work a real pod termination would cut",
	"shortfallEpisodes": "shortfalls handed to the alert sink: a function and reason active in a cycle and not in the previous one; " +
		"metrics-unavailable counts once per episode",
	"forecastAlerts": "cron-at-risk shortfalls (the TierscalerCronAtRisk alert): a cron fire whose reservation does not fit, raised before the fire; also counted in the shortfall episodes",
	"reservations":   "cron fires for which tierscaler's plan held room ahead of time (pods placed on the capacity expected at the prewarm), each fire counted once",
	"reconciles":     "decision cycles the strategy ran (one every policy interval)",
	"static":         "every function at its initial replicas; the cluster grows (same node shape) until every pod has a node, so static is accounted in full",
	"idle-only": "scale-to-zero as KEDA or OpenFaaS Pro: zero after the cooldown without invocations, in-flight or queued work; activation on demand; " +
		"load scaling to ceil(in-flight/(max_inflight×0.9)) and ceil(queued/pending per replica); no tiers, no preemption; on the scenario's nodes",
	"tierscaler": "the real controller and its decision engine, reconciling every policy interval on the scenario's nodes",
}

func newReport(cfg *Config, start time.Time) *Report {
	s := cfg.Scenario
	r := &Report{
		Scenario: s.Name, Description: s.Description, Seed: cfg.Seed,
		Start: start.UTC(), End: start.Add(cfg.Duration).UTC(), Days: cfg.Duration.Hours() / 24,
		Interval: cfg.Policy.Interval.Duration.String(), Step: cfg.Step.String(), Window: cfg.Window.String(),
		Nodes: s.Nodes.Count, NodeCPU: s.Nodes.CPU, NodeMemory: s.Nodes.Memory, NodePods: s.Nodes.Pods,
		Functions: map[policy.Tier]int{}, Definitions: definitions,
	}
	for _, f := range s.Functions {
		r.Functions[f.Tier]++
	}
	exprs, defaults := policyQueries(cfg.Policy)
	for k := range numQueries {
		if e := strings.TrimSpace(exprs[k]); e != "" && e != defaults[k] {
			r.Notes = append(r.Notes, fmt.Sprintf("queries.%s differs from the default; the simulated Prometheus answers it with the default query's meaning", queryNames[k]))
		}
	}
	if cfg.Policy.TimeZone != "" && s.TimeZone != "" && cfg.Policy.Location().String() != s.Location().String() {
		r.Notes = append(r.Notes, fmt.Sprintf("the policy's timeZone %s differs from the scenario's %s: tierscaler reads schedules in its own", cfg.Policy.TimeZone, s.TimeZone))
	}
	return r
}

// finish computes the figures relative to static.
func (r *Report) finish() {
	var static *StrategyReport
	for _, s := range r.Strategies {
		if s.Strategy == StrategyStatic {
			static = s
		}
	}
	if static == nil {
		return
	}
	for _, s := range r.Strategies {
		if static.ReservedCPUHours > 0 {
			v := round(100*s.ReservedCPUHours/static.ReservedCPUHours, 2)
			s.CPUPercentOfStatic = &v
		}
		if static.ReservedMemoryGiBHours > 0 {
			v := round(100*s.ReservedMemoryGiBHours/static.ReservedMemoryGiBHours, 2)
			s.MemoryPercentOfStatic = &v
		}
	}
}

// Strategy returns the named strategy's report, nil if it did not run.
func (r *Report) Strategy(name string) *StrategyReport {
	for _, s := range r.Strategies {
		if s.Strategy == name {
			return s
		}
	}
	return nil
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// accountant integrates one strategy's figures as the simulation runs.
type accountant struct {
	w          *world
	start, end time.Time
	shape      policy.Resources

	reservedMilliCPUSec [3]float64
	reservedByteSec     [3]float64
	pendingPodSec       float64
	peakCPU, peakMem    int64
	peakPods            int
	peakNodes           int
	sync429Seconds      float64
	sync429By           map[string]float64
	reconciles          int
	evictions           int
	shortfalls          int
	shortfallsByReason  map[string]int
	marks               []Mark
	evictionMarks       int
	shortfallMarks      int
	zeroedMarks         int
	forecasts           int
	// reserved are the cron fires (function and fire time) that held a
	// reservation in an earlier plan and have not fired yet; reservations
	// counts every fire that ever held one, reservationMarks the marks.
	reserved         map[reservedFire]bool
	reservations     int
	reservationMarks int
	// held is the room the last plan's reservations hold.
	held heldRoom

	// syncIdx are the sync functions' indices in the sampled observations;
	// syncRejected their 429s at the previous sample.
	syncIdx      []int
	syncRejected []float64
	zeroedBy     map[string]int
	cronMissed   int
	lastSample   time.Time
	bucket       time.Duration
	points       []TimelinePoint
}

func newAccountant(cfg *Config, w *world, start time.Time) *accountant {
	a := &accountant{w: w, start: start, end: start.Add(cfg.Duration), shape: w.cluster.NodeShape(), shortfallsByReason: map[string]int{}, sync429By: map[string]float64{}}
	for i, key := range w.keys {
		if f, _ := w.model.Function(key); f.Tier == policy.TierSync {
			a.syncIdx = append(a.syncIdx, i)
		}
	}
	a.syncRejected = make([]float64, len(a.syncIdx))
	// Buckets are a whole number of steps, so that no step straddles two.
	steps := max(1, int64(math.Ceil(float64(cfg.Duration)/timelinePoints/float64(cfg.Step))))
	a.bucket = time.Duration(steps) * cfg.Step
	n := int((cfg.Duration + a.bucket - 1) / a.bucket)
	a.points = make([]TimelinePoint, n)
	for i := range a.points {
		a.points[i].T = start.Add(time.Duration(i) * a.bucket).UTC()
	}
	return a
}

func (a *accountant) point(t time.Time) *TimelinePoint {
	i := int(t.Sub(a.start) / a.bucket)
	i = min(max(i, 0), len(a.points)-1)
	return &a.points[i]
}

// span integrates the cluster's use over [from, to).
func (a *accountant) span(from, to time.Time) {
	u := a.w.cluster.Usage()
	dt := to.Sub(from).Seconds()
	var cpu, mem int64
	pods, pending := 0, 0
	for i := range 3 {
		a.reservedMilliCPUSec[i] += float64(u.Reserved[i].MilliCPU) * dt
		a.reservedByteSec[i] += float64(u.Reserved[i].Memory) * dt
		cpu += u.Reserved[i].MilliCPU
		mem += u.Reserved[i].Memory
		pods += u.Bound[i]
		pending += u.Pending[i]
	}
	a.pendingPodSec += float64(pending) * dt
	a.peakCPU, a.peakMem, a.peakPods = max(a.peakCPU, cpu), max(a.peakMem, mem), max(a.peakPods, pods)
	if n := nodesFor(policy.Resources{MilliCPU: cpu, Memory: mem, Pods: int64(pods)}, a.shape); n > a.peakNodes {
		a.peakNodes = n
	}
	p := a.point(from)
	w := dt / a.bucket.Seconds()
	p.Sync += float64(u.Bound[0]) * w
	p.Cron += float64(u.Bound[1]) * w
	p.Async += float64(u.Bound[2]) * w
	p.Pending += float64(pending) * w
	p.ReservedCPU += float64(cpu) / 1000 * w
	p.ReservedMemoryGiB += float64(mem) / gib * w
	p.HeldPods += a.held.pods * w
	p.HeldCPU += a.held.milliCPU / 1000 * w
	p.HeldMemoryGiB += a.held.memory / gib * w
}

// reservedFire is one cron fire of one function.
type reservedFire struct {
	key  string
	fire time.Time
}

// heldRoom is the pods and room a plan's reservations hold.
type heldRoom struct {
	pods, milliCPU, memory float64
}

// planned records the reservations of the plan decided at t: the room they
// hold until the next plan, and a mark for each fire that holds one for
// the first time.
func (a *accountant) planned(t time.Time, plan *policy.Plan) {
	a.held = heldRoom{}
	if plan == nil {
		return
	}
	if a.reserved == nil {
		a.reserved = map[reservedFire]bool{}
	}
	for k := range a.reserved {
		if !k.fire.After(t) {
			delete(a.reserved, k)
		}
	}
	for i := range plan.Reservations {
		r := &plan.Reservations[i]
		a.held.pods += float64(r.Pods)
		for _, n := range r.Nodes {
			a.held.milliCPU += float64(n.Held.MilliCPU)
			a.held.memory += float64(n.Held.Memory)
		}
		k := reservedFire{r.Key(), r.Fire}
		if a.reserved[k] {
			continue
		}
		a.reserved[k] = true
		a.reservations++
		if a.reservationMarks < maxMarks {
			a.reservationMarks++
			detail := fmt.Sprintf("%d pods", r.Pods)
			if r.Pods == 1 {
				detail = "1 pod"
			}
			if r.Missing > 0 {
				detail += fmt.Sprintf(", %d missing", r.Missing)
			}
			a.marks = append(a.marks, Mark{T: t.UTC(), Kind: "reservation", Function: r.Key(), Detail: detail, Fire: r.Fire.UTC()})
		}
	}
}

// nodesFor is the nodes of shape needed to hold r, ignoring fragmentation.
func nodesFor(r, shape policy.Resources) int {
	n := 0.0
	if shape.MilliCPU > 0 {
		n = math.Max(n, float64(r.MilliCPU)/float64(shape.MilliCPU))
	}
	if shape.Memory > 0 {
		n = math.Max(n, float64(r.Memory)/float64(shape.Memory))
	}
	if shape.Pods > 0 {
		n = math.Max(n, float64(r.Pods)/float64(shape.Pods))
	}
	return int(math.Ceil(n - 1e-9))
}

// sampled counts, after a sample at t of the observations obs (in the
// order of world.keys) with missed cron runs in all, the sync functions
// that refused requests and the cron runs missed since the previous
// sample.
func (a *accountant) sampled(t time.Time, obs []workload.Observation, missed int) {
	if missed > a.cronMissed {
		a.point(a.lastSample).CronMissed += missed - a.cronMissed
		a.cronMissed = missed
	}
	prev := a.lastSample
	a.lastSample = t
	for j, i := range a.syncIdx {
		r := obs[i].Rejected429
		if !prev.IsZero() && r-a.syncRejected[j] >= rejectedEpsilon {
			d := t.Sub(prev).Seconds()
			key := a.w.keys[i]
			a.sync429Seconds += d
			a.sync429By[key] += d
			a.point(prev).Sync429Seconds += d
		}
		a.syncRejected[j] = r
	}
}

// zeroedInFlight counts function key scaled to zero at t with work in
// flight.
func (a *accountant) zeroedInFlight(t time.Time, key string) {
	if a.zeroedBy == nil {
		a.zeroedBy = map[string]int{}
	}
	a.zeroedBy[key]++
	if a.zeroedMarks < maxMarks {
		a.zeroedMarks++
		a.marks = append(a.marks, Mark{T: t.UTC(), Kind: "zeroed-in-flight", Function: key})
	}
}

func (a *accountant) evicted(t time.Time, act policy.Action) {
	a.evictions++
	a.point(t).Evictions++
	if a.evictionMarks < maxMarks {
		a.evictionMarks++
		a.marks = append(a.marks, Mark{T: t.UTC(), Kind: "eviction", Function: act.Key(), Detail: act.Claim})
	}
}

func (a *accountant) shortfall(t time.Time, sf policy.Shortfall) {
	a.shortfalls++
	a.shortfallsByReason[string(sf.Reason)]++
	m := Mark{T: t.UTC(), Kind: "shortfall", Detail: string(sf.Reason)}
	if sf.Function != "" {
		m.Function = sf.Key()
	}
	if sf.Reason == policy.ShortfallCronAtRisk {
		a.forecasts++
		a.point(t).Forecasts++
		if !sf.Deadline.IsZero() {
			m.Fire = sf.Deadline.UTC()
		}
	} else {
		a.point(t).Shortfalls++
	}
	if a.shortfallMarks < maxMarks {
		a.shortfallMarks++
		a.marks = append(a.marks, m)
	}
}

// report collects the figures, reading the model's counters at the end.
func (a *accountant) report(name string) *StrategyReport {
	alloc := a.w.cluster.Allocatable()
	r := &StrategyReport{
		Strategy: name, Nodes: a.w.cluster.Nodes(),
		AllocatableCPU: float64(alloc.MilliCPU) / 1000, AllocatableMemoryGiB: round(float64(alloc.Memory)/gib, 3),
		Reconciles: a.reconciles, ByTier: map[policy.Tier]TierReserve{},
		PeakReservedCPU: float64(a.peakCPU) / 1000, PeakReservedMemoryGiB: round(float64(a.peakMem)/gib, 3),
		PeakPods: a.peakPods, PeakNodesNeeded: a.peakNodes, PendingPodHours: round(a.pendingPodSec/3600, 3),
		Sync429Seconds: a.sync429Seconds, Evictions: a.evictions, ShortfallEpisodes: a.shortfalls,
		ForecastAlerts: a.forecasts, Reservations: a.reservations,
		Marks: a.marks, Timeline: Timeline{BucketSeconds: a.bucket.Seconds(), Points: a.points},
	}
	if len(a.sync429By) > 0 {
		r.Sync429SecondsBy = a.sync429By
	}
	if len(a.shortfallsByReason) > 0 {
		r.ShortfallsByReason = a.shortfallsByReason
	}
	if len(a.zeroedBy) > 0 {
		r.ZeroedInFlightBy = a.zeroedBy
		for _, n := range a.zeroedBy {
			r.ZeroedInFlight += n
		}
	}
	for i, tier := range policy.Tiers {
		tr := TierReserve{CPUHours: round(a.reservedMilliCPUSec[i]/1000/3600, 3), MemoryGiBHours: round(a.reservedByteSec[i]/gib/3600, 3)}
		r.ByTier[tier] = tr
		r.ReservedCPUHours += a.reservedMilliCPUSec[i] / 1000 / 3600
		r.ReservedMemoryGiBHours += a.reservedByteSec[i] / gib / 3600
	}
	r.ReservedCPUHours, r.ReservedMemoryGiBHours = round(r.ReservedCPUHours, 3), round(r.ReservedMemoryGiBHours, 3)
	var waits workload.Histogram
	for _, key := range a.w.model.Keys() {
		o := a.w.model.Observe(key)
		switch o.Tier {
		case policy.TierSync:
			r.Sync429Count += o.Rejected429
			r.SyncRequests += o.Offered
		case policy.TierCron:
			if o.CronMissed > 0 {
				if r.CronMissedBy == nil {
					r.CronMissedBy = map[string]int{}
				}
				r.CronMissedBy[key] = o.CronMissed
			}
			if o.CronLate > 0 {
				if r.CronLateBy == nil {
					r.CronLateBy = map[string]int{}
				}
				r.CronLateBy[key] = o.CronLate
			}
			r.CronFires += o.CronFires
			r.CronRuns += o.CronRuns
			r.CronMissed += o.CronMissed
			r.CronLate += o.CronLate
		case policy.TierAsync:
			waits = mergeHistograms(waits, o.AsyncWait)
			r.AsyncJobsQueued += o.Pending
		}
	}
	r.Sync429Count, r.SyncRequests = round(r.Sync429Count, 1), round(r.SyncRequests, 1)
	r.AsyncJobs = waits.Count
	r.AsyncWaitP50 = round(quantile(waits, 0.5), 3)
	r.AsyncWaitP95 = round(quantile(waits, 0.95), 3)
	r.AsyncWaitMax = round(waits.Max.Seconds(), 3)
	r.AsyncWaitMean = round(waits.Mean().Seconds(), 3)
	if n := len(r.Timeline.Points); n > 0 {
		// The last bucket may be cut short by the end: its means are over
		// the time it covers.
		p := &r.Timeline.Points[n-1]
		if covered := a.end.Sub(p.T); covered > 0 && covered < a.bucket {
			k := float64(a.bucket) / float64(covered)
			p.Sync, p.Cron, p.Async, p.Pending = p.Sync*k, p.Cron*k, p.Async*k, p.Pending*k
			p.ReservedCPU, p.ReservedMemoryGiB = p.ReservedCPU*k, p.ReservedMemoryGiB*k
			p.HeldPods, p.HeldCPU, p.HeldMemoryGiB = p.HeldPods*k, p.HeldCPU*k, p.HeldMemoryGiB*k
		}
	}
	for i := range r.Timeline.Points {
		p := &r.Timeline.Points[i]
		p.Sync, p.Cron, p.Async, p.Pending = round(p.Sync, 3), round(p.Cron, 3), round(p.Async, 3), round(p.Pending, 3)
		p.ReservedCPU, p.ReservedMemoryGiB = round(p.ReservedCPU, 4), round(p.ReservedMemoryGiB, 4)
		p.HeldPods, p.HeldCPU, p.HeldMemoryGiB = round(p.HeldPods, 3), round(p.HeldCPU, 4), round(p.HeldMemoryGiB, 4)
	}
	sort.SliceStable(r.Marks, func(i, j int) bool { return r.Marks[i].T.Before(r.Marks[j].T) })
	return r
}

func mergeHistograms(a, b workload.Histogram) workload.Histogram {
	if a.Bounds == nil {
		a.Bounds = append([]float64(nil), b.Bounds...)
		a.Counts = make([]uint64, len(b.Counts))
	}
	for i := range b.Counts {
		a.Counts[i] += b.Counts[i]
	}
	a.Count += b.Count
	a.Sum += b.Sum
	a.Max = max(a.Max, b.Max)
	return a
}

// quantile interpolates the q-quantile in a cumulative histogram, as
// PromQL's histogram_quantile does, bounded by the largest observation.
func quantile(h workload.Histogram, q float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	lower, below := 0.0, 0.0
	for i, b := range h.Bounds {
		c := float64(h.Counts[i])
		if c >= rank {
			v := b
			if c > below {
				v = lower + (b-lower)*(rank-below)/(c-below)
			}
			return math.Min(v, h.Max.Seconds())
		}
		lower, below = b, c
	}
	return h.Max.Seconds()
}

// JSON renders the report, indented.
func (r *Report) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteSummary writes the comparison table: one row per figure, one column
// per strategy.
func (r *Report) WriteSummary(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s, seed %d, %s to %s (%.3g days); reconcile every %s, model step %s, rate window %s\n",
		r.Scenario, r.Seed, r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339), r.Days, r.Interval, r.Step, r.Window)
	fmt.Fprintf(w, "cluster: %d nodes of %s CPU, %s; functions: %d sync, %d cron, %d async\n\n",
		r.Nodes, r.NodeCPU, r.NodeMemory, r.Functions[policy.TierSync], r.Functions[policy.TierCron], r.Functions[policy.TierAsync])
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(label string, f func(s *StrategyReport) string) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, s := range r.Strategies {
			fmt.Fprintf(tw, "%s\t", f(s))
		}
		fmt.Fprintln(tw)
	}
	row("", func(s *StrategyReport) string { return s.Strategy })
	for _, sr := range summaryRows {
		row(sr.label, sr.value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// summaryRow is a row of the comparison table: its label, the key of its
// definition, and its value for a strategy.
type summaryRow struct {
	label, key string
	value      func(s *StrategyReport) string
}

// summaryRows are the comparison table's rows, for summary.txt and the
// HTML page.
var summaryRows = []summaryRow{
	{"nodes (allocatable CPU / GiB)", "nodes", func(s *StrategyReport) string {
		return fmt.Sprintf("%d (%.4g / %.4g)", s.Nodes, s.AllocatableCPU, s.AllocatableMemoryGiB)
	}},
	{"reserved CPU-hours (% of static)", "reserved", func(s *StrategyReport) string { return withPercent(s.ReservedCPUHours, s.CPUPercentOfStatic) }},
	{"reserved memory GiB-hours (% of static)", "reserved", func(s *StrategyReport) string {
		return withPercent(s.ReservedMemoryGiBHours, s.MemoryPercentOfStatic)
	}},
	{"peak reserved CPU / GiB / pods", "peakReserved", func(s *StrategyReport) string {
		return fmt.Sprintf("%.4g / %.4g / %d", s.PeakReservedCPU, s.PeakReservedMemoryGiB, s.PeakPods)
	}},
	{"peak nodes needed", "peakNodesNeeded", func(s *StrategyReport) string { return fmt.Sprint(s.PeakNodesNeeded) }},
	{"pending pod-hours", "pendingPodHours", func(s *StrategyReport) string { return fmt.Sprintf("%.4g", s.PendingPodHours) }},
	{"sync 429 seconds", "sync429Seconds", func(s *StrategyReport) string { return fmt.Sprintf("%.0f", s.Sync429Seconds) }},
	{"sync 429s / requests", "sync429Count", func(s *StrategyReport) string { return fmt.Sprintf("%.0f / %.0f", s.Sync429Count, s.SyncRequests) }},
	{"cron fires / missed / late", "cronFires", func(s *StrategyReport) string {
		return fmt.Sprintf("%d / %d / %d", s.CronFires, s.CronMissed, s.CronLate)
	}},
	{"cron fires with a reservation", "reservations", func(s *StrategyReport) string { return fmt.Sprint(s.Reservations) }},
	{"forecast alerts (cron at risk)", "forecastAlerts", func(s *StrategyReport) string { return fmt.Sprint(s.ForecastAlerts) }},
	{"async jobs started", "asyncJobs", func(s *StrategyReport) string { return fmt.Sprint(s.AsyncJobs) }},
	{"async wait p50 / p95 / max (s)", "asyncWait", func(s *StrategyReport) string {
		return fmt.Sprintf("%s / %s / %s", fmtWait(s.AsyncWaitP50), fmtWait(s.AsyncWaitP95), fmtWait(s.AsyncWaitMax))
	}},
	{"evictions", "evictions", func(s *StrategyReport) string { return fmt.Sprint(s.Evictions) }},
	{"zeroed with work in flight", "zeroedInFlight", func(s *StrategyReport) string { return fmt.Sprint(s.ZeroedInFlight) }},
	{"shortfall episodes", "shortfallEpisodes", shortfallText},
	{"reconciles", "reconciles", func(s *StrategyReport) string { return fmt.Sprint(s.Reconciles) }},
}

// fmtWait writes a wait in seconds with three significant digits, whole
// seconds from 100 s up (no exponent).
func fmtWait(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func withPercent(v float64, pct *float64) string {
	if pct == nil {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.1f (%.1f%%)", v, *pct)
}

func shortfallText(s *StrategyReport) string {
	if s.ShortfallEpisodes == 0 {
		return "0"
	}
	reasons := make([]string, 0, len(s.ShortfallsByReason))
	for k, v := range s.ShortfallsByReason {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("%d (%s)", s.ShortfallEpisodes, strings.Join(reasons, ", "))
}

// Summary is WriteSummary's text.
func (r *Report) Summary() string {
	var b strings.Builder
	_ = r.WriteSummary(&b)
	return b.String()
}

// WriteFiles writes summary.txt, report.json and report.html into dir and
// returns their paths.
func (r *Report) WriteFiles(dir string) ([]string, error) {
	js, err := r.JSON()
	if err != nil {
		return nil, fmt.Errorf("report.json: %w", err)
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"summary.txt", []byte(r.Summary())},
		{"report.json", js},
		{"report.html", page.Bytes()},
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return paths, fmt.Errorf("writing the report: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

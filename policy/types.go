// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Tier is a function's priority class.
type Tier string

// The three tiers, highest priority first.
const (
	TierSync  Tier = "sync"
	TierCron  Tier = "cron"
	TierAsync Tier = "async"
)

// Tiers lists the valid tiers, highest priority first.
var Tiers = []Tier{TierSync, TierCron, TierAsync}

// Valid reports whether t is one of the three tiers.
func (t Tier) Valid() bool {
	return t == TierSync || t == TierCron || t == TierAsync
}

// Duration is a time.Duration written as a Go duration string ("90s", "5m")
// in the policy file.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "5m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\" or \"5m\", got %s", string(b))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %v", s, err)
	}
	d.Duration = v
	return nil
}

// Unlimited stands for a resource dimension without a limit. It is far from
// the int64 bounds so that sums of it do not overflow.
const Unlimited int64 = 1 << 50

// Resources is an amount of CPU (millicores), memory (bytes) and pods.
type Resources struct {
	MilliCPU int64 `json:"milliCPU"`
	Memory   int64 `json:"memory"`
	Pods     int64 `json:"pods"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.Memory + o.Memory, r.Pods + o.Pods}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.Memory - o.Memory, r.Pods - o.Pods}
}

// Fits reports whether o fits in r.
func (r Resources) Fits(o Resources) bool {
	return o.MilliCPU <= r.MilliCPU && o.Memory <= r.Memory && o.Pods <= r.Pods
}

// Metric is an observed value that may be unknown. Unknown is not zero.
type Metric struct {
	Value float64 `json:"value"`
	Known bool    `json:"known"`
}

// Known returns a known metric.
func Known(v float64) Metric { return Metric{Value: v, Known: true} }

// Unknown is a metric tierscaler could not observe.
var Unknown = Metric{}

// String renders the metric, "unknown" when it is.
func (m Metric) String() string {
	if !m.Known {
		return "unknown"
	}
	return fmt.Sprintf("%.3g", m.Value)
}

// Snapshot is the world as the controller gathered it for one decision.
type Snapshot struct {
	Functions []Function `json:"functions"`
	Nodes     []Node     `json:"nodes"`
	// Quotas holds the ResourceQuota headroom (hard minus used) of the
	// namespaces that have one. A dimension no quota limits is Unlimited.
	Quotas map[string]Resources `json:"quotas,omitempty"`
	// MetricsAvailable is false when Prometheus could not be queried or its
	// data is stale or invalid. Then nothing is scaled down, zeroed or
	// evicted.
	MetricsAvailable bool `json:"metricsAvailable"`
	// Fast marks the fast path: a cycle run at once on evidence of demand
	// (an Alertmanager webhook) between full cycles. Its plan only adds:
	// scale-ups, activations and prewarms that fit without evicting
	// anything. Scale-downs, zeroing and evictions stay on the full cycle,
	// with its windows.
	Fast bool `json:"fast,omitempty"`
}

// Function is one OpenFaaS function as observed.
type Function struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Tier      Tier   `json:"tier"`
	// Schedule is the parsed cron schedule of a cron function (nil otherwise).
	Schedule cron.Schedule `json:"-"`
	// ScheduleSpec is the schedule as written.
	ScheduleSpec string `json:"schedule,omitempty"`

	Replicas      int32 `json:"replicas"`
	ReadyReplicas int32 `json:"readyReplicas"`
	// PendingPods are the replicas no node has taken yet: pods Pending and
	// pods the ReplicaSet has yet to create. They are unmet demand.
	PendingPods int32 `json:"pendingPods"`
	MinReplicas int32 `json:"minReplicas"`
	MaxReplicas int32 `json:"maxReplicas"`
	// MaxInflight is the per-replica concurrency (0: unknown or unlimited).
	MaxInflight int32 `json:"maxInflight"`

	// Requests and Limits are per pod. Requests.Pods is 1.
	Requests Resources `json:"requests"`
	Limits   Resources `json:"limits"`

	// Rejections and Invocations are per second; Inflight and Pending are
	// counts.
	Rejections  Metric `json:"rejections"`
	Invocations Metric `json:"invocations"`
	Inflight    Metric `json:"inflight"`
	// Duration is the mean seconds of a successful invocation.
	Duration Metric `json:"duration"`
	Pending  Metric `json:"pending"`

	// Pods are the function's pods bound to a node.
	Pods []Pod `json:"pods,omitempty"`

	// LastRun is the last observed activity (zero: never).
	LastRun time.Time `json:"lastRun,omitzero"`
	// LastScale is the last scale change (zero: unknown, treated as long ago).
	LastScale time.Time `json:"lastScale,omitzero"`
	// ActivationRequested is the time of the newest activation request (an
	// Alertmanager webhook), zero if none.
	ActivationRequested time.Time `json:"activationRequested,omitzero"`
	// StartupTime is the per-function or learned time from scale-up to
	// Ready (0: use the policy's).
	StartupTime time.Duration `json:"startupTime,omitempty"`
	// RunDuration is how long one invocation (a run, a job) usually takes,
	// learned by the controller from the duration metric (0: unknown). An
	// async replica admitted now is expected to hold its room that long; a
	// running cron job to end that long from now at the latest.
	RunDuration time.Duration `json:"runDuration,omitempty"`
	// Hold keeps the function where it is: the controller backs off from a
	// function whose provider reverted it, or whose metadata is invalid.
	Hold bool `json:"hold,omitempty"`

	// CPUStep and MemoryStep are the last scale-ups the controller applied
	// on CPU or memory usage (nil: none it remembers). The next step on the
	// same resource waits until the new replicas' usage is observed, and
	// only follows when per-pod usage fell: usage that does not respond to
	// replicas (a script's baseline memory) never drives scaling.
	CPUStep    *UsageStep `json:"cpuStep,omitempty"`
	MemoryStep *UsageStep `json:"memoryStep,omitempty"`
}

// UsageResource names a usage signal.
type UsageResource string

// The usage signals.
const (
	UsageCPU    UsageResource = "cpu"
	UsageMemory UsageResource = "memory"
)

// UsageStep is a scale-up decided on CPU or memory usage. The engine puts
// one in each usage-driven Action; the controller keeps the applied ones and
// gives them back in Function.CPUStep and Function.MemoryStep.
type UsageStep struct {
	Resource UsageResource `json:"resource"`
	At       time.Time     `json:"at"`
	From     int32         `json:"from"`
	To       int32         `json:"to"`
	// Before is the mean per-pod usage (cores or bytes) the step was
	// decided on.
	Before float64 `json:"before"`
}

// Key is the OpenFaaS function_name: name.namespace.
func (f *Function) Key() string { return f.Name + "." + f.Namespace }

// Pod is a pod of a function bound to a node.
type Pod struct {
	Name string `json:"name"`
	Node string `json:"node"`
	// Ready is the pod's Ready condition.
	Ready bool `json:"ready"`
	// CPU is cores in use, Memory is working-set bytes.
	CPU    Metric `json:"cpu"`
	Memory Metric `json:"memory"`
}

// Node is a schedulable node and what is bound to it.
type Node struct {
	Name        string    `json:"name"`
	Allocatable Resources `json:"allocatable"`
	// Requested is the sum of the requests of every non-terminal pod bound to
	// the node, functions' and others'.
	Requested Resources `json:"requested"`
	// Schedulable is false for cordoned, not-ready or tainted nodes new pods
	// cannot go to.
	Schedulable bool `json:"schedulable"`
}

// Plan is the typed result of one decision.
type Plan struct {
	Time             time.Time        `json:"time"`
	MetricsAvailable bool             `json:"metricsAvailable"`
	Actions          []Action         `json:"actions"`
	Shortfalls       []Shortfall      `json:"shortfalls"`
	Checks           []ReadinessCheck `json:"checks"`
	// Reservations are the room held for cron fires in the planning
	// horizon, in fire order.
	Reservations []Reservation `json:"reservations,omitempty"`
}

// Reason is why an action is taken. The set is closed.
type Reason string

// The reasons of an Action.
const (
	ReasonScaleUpRejections Reason = "scale-up-rejections"
	// ReasonScaleUpConcurrency: the offered load (rate × duration) needs
	// more replicas at the target utilisation, before any 429.
	ReasonScaleUpConcurrency Reason = "scale-up-concurrency"
	ReasonScaleUpCPU         Reason = "scale-up-cpu"
	ReasonScaleUpMemory      Reason = "scale-up-memory"
	ReasonScaleUpPending     Reason = "scale-up-pending"
	ReasonScaleUpMin         Reason = "scale-up-min"
	ReasonScaleDownIdle      Reason = "scale-down-idle"
	ReasonScaleDownMax       Reason = "scale-down-max"
	ReasonPrewarmCron        Reason = "prewarm-cron"
	ReasonActivateAsync      Reason = "activate-async"
	ReasonZeroIdle           Reason = "zero-idle"
	ReasonEvictForCapacity   Reason = "evict-for-capacity"
	// ReasonReclaimForCron: an async function with nothing queued gives
	// back, before its scale-down window ends, the replicas its scale-down
	// would take (an idle one to its floor or zero, a busy one to what its
	// in-flight work needs at the target utilisation), because a cron fire
	// inside the lookahead does not fit without their room.
	ReasonReclaimForCron Reason = "reclaim-for-cron"
)

// Action changes one function's replicas.
type Action struct {
	Function  string `json:"function"`
	Namespace string `json:"namespace"`
	Tier      Tier   `json:"tier"`
	From      int32  `json:"from"`
	To        int32  `json:"to"`
	Reason    Reason `json:"reason"`
	// Claim names the function (name.namespace) whose claim an eviction
	// serves.
	Claim string `json:"claim,omitempty"`
	// Explanation says why, for people.
	Explanation string `json:"explanation"`
	// UsageStep is set on a scale-up decided on CPU or memory usage: the
	// controller records it once applied (see Function.CPUStep).
	UsageStep *UsageStep `json:"usageStep,omitempty"`
}

// Key is the OpenFaaS function_name of the action's function.
func (a *Action) Key() string { return a.Function + "." + a.Namespace }

// ShortfallReason is why a shortfall arose.
type ShortfallReason string

// The reasons of a Shortfall.
const (
	// ShortfallCapacity: the claim does not fit on any node even after every
	// allowed eviction.
	ShortfallCapacity ShortfallReason = "insufficient-capacity"
	// ShortfallQuota: the namespace's ResourceQuota has no room.
	ShortfallQuota ShortfallReason = "quota-exceeded"
	// ShortfallBudget: evictions could have made room but the per-cycle
	// budget is spent.
	ShortfallBudget ShortfallReason = "eviction-budget-exhausted"
	// ShortfallPrewarmMissed: a prewarmed cron function was not Ready by its
	// fire time.
	ShortfallPrewarmMissed ShortfallReason = "prewarm-missed"
	// ShortfallActivationTimeout: an activated function was not Ready within
	// the activation timeout.
	ShortfallActivationTimeout ShortfallReason = "activation-timeout"
	// ShortfallMetricsUnavailable: Prometheus data is missing or stale.
	ShortfallMetricsUnavailable ShortfallReason = "metrics-unavailable"
	// ShortfallCronAtRisk: a cron fire inside the lookahead whose
	// reservation does not fit, even counting every permitted eviction: a
	// forecast, raised before the fire, with the fire time as its deadline.
	ShortfallCronAtRisk ShortfallReason = "cron-at-risk"
)

// Shortfall is demand tierscaler could not meet.
type Shortfall struct {
	Function  string          `json:"function,omitempty"`
	Namespace string          `json:"namespace,omitempty"`
	Tier      Tier            `json:"tier,omitempty"`
	Reason    ShortfallReason `json:"reason"`
	// Missing is the CPU, memory and pods that could not be placed.
	Missing Resources `json:"missing"`
	// Claimed is the pods the function needed a node for: new replicas
	// plus pending pods (0 for a shortfall that is not a claim's).
	Claimed int32 `json:"claimed,omitempty"`
	// Deadline is the missed fire time or activation deadline, if any.
	Deadline time.Time `json:"deadline,omitzero"`
	Message  string    `json:"message"`
}

// Key is the OpenFaaS function_name of the shortfall's function.
func (s *Shortfall) Key() string { return s.Function + "." + s.Namespace }

// CheckKind is what a readiness check verifies.
type CheckKind string

// The kinds of ReadinessCheck.
const (
	CheckPrewarm    CheckKind = "prewarm"
	CheckActivation CheckKind = "activation"
)

// ReadinessCheck asks the controller to verify that a function has at least
// MinReady Ready replicas by Deadline.
type ReadinessCheck struct {
	Function  string    `json:"function"`
	Namespace string    `json:"namespace"`
	Tier      Tier      `json:"tier"`
	Kind      CheckKind `json:"kind"`
	Deadline  time.Time `json:"deadline"`
	MinReady  int32     `json:"minReady"`
}

// Key is the OpenFaaS function_name of the check's function.
func (c *ReadinessCheck) Key() string { return c.Function + "." + c.Namespace }

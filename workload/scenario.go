// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"errors"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/policy"
)

// APIVersion and Kind identify a scenario file.
const (
	APIVersion = "tierscaler.io/v1alpha1"
	Kind       = "Scenario"
)

// Scenario is a versioned workload description: the cluster's nodes and the
// functions with their offered load. Parse and Load decode it strictly,
// fill in the defaults and validate it with every problem reported at once.
type Scenario struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// Name identifies the scenario (required).
	Name string `json:"name"`
	// Description says what the scenario shows, for people.
	Description string `json:"description,omitempty"`
	// TimeZone is the IANA time zone that cron schedules, clock-time bursts
	// and the diurnal curve are evaluated in. Default: UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// Start is when a simulation starts: RFC 3339 ("2026-03-02T08:00:00Z")
	// or a wall-clock time in TimeZone ("2026-03-02T08:00:00").
	// Default: DefaultStart. The emulator runs in real time and ignores it.
	Start string `json:"start,omitempty"`
	// Duration is how long a simulation runs. Default: 1h.
	Duration policy.Duration `json:"duration,omitzero"`
	// Nodes are the cluster's (identical) worker nodes, for simulations.
	Nodes Nodes `json:"nodes,omitzero"`
	// PodStartLatency is a simulated pod's time from creation to Ready.
	// Default: 2s.
	PodStartLatency policy.Duration `json:"podStartLatency,omitzero"`
	// Functions are the OpenFaaS functions and their load. An empty list is
	// a valid (idle) scenario.
	Functions []Function `json:"functions,omitempty"`
}

// Nodes describes a pool of identical nodes.
type Nodes struct {
	// Count of nodes. Default: 4.
	Count int `json:"count,omitempty"`
	// CPU and Memory are each node's allocatable, as Kubernetes quantities.
	// Defaults: "4" and "8Gi".
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
	// Pods is each node's pod capacity. Default: 110.
	Pods int `json:"pods,omitempty"`
}

// Function is one OpenFaaS function of a scenario. Exactly the load block
// of its tier (Sync, Cron or Async) may be set.
type Function struct {
	// Name is the function (and Deployment) name, a DNS-1123 label.
	Name string `json:"name"`
	// Namespace of the function. Default: openfaas-fn.
	Namespace string `json:"namespace,omitempty"`
	// Tier is sync, cron or async. Default: cron when Schedule is set, else
	// async when the async block is set, else sync.
	Tier policy.Tier `json:"tier,omitempty"`
	// Schedule is the 5-field cron schedule of a cron function, evaluated in
	// the scenario's time zone (robfig/cron's standard parser, as
	// cron-connector). Required for, and only allowed on, the cron tier.
	Schedule string `json:"schedule,omitempty"`

	// InitialReplicas is the Deployment's replicas when created.
	// Default: MinReplicas.
	InitialReplicas *int32 `json:"initialReplicas,omitempty"`
	// MinReplicas and MaxReplicas become the com.openfaas.scale.min and
	// .max labels. Defaults: 1 and 20 (OpenFaaS').
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	MaxReplicas int32  `json:"maxReplicas,omitempty"`
	// MaxInflight is the per-replica concurrency (of-watchdog's
	// max_inflight; for async functions the jobs a replica runs at once).
	// Default: 10.
	MaxInflight int32 `json:"maxInflight,omitempty"`

	// Requests and Limits are the container's, per pod. Default requests:
	// 50m CPU and 64Mi; default limits: none.
	Requests Resources `json:"requests,omitzero"`
	Limits   Resources `json:"limits,omitzero"`
	// Usage is the resource usage model of a Ready pod.
	Usage Usage `json:"usage,omitzero"`

	Sync  *SyncLoad  `json:"sync,omitempty"`
	Cron  *CronLoad  `json:"cron,omitempty"`
	Async *AsyncLoad `json:"async,omitempty"`
}

// Key is the OpenFaaS function_name of f: name.namespace (with the default
// namespace if none is set).
func (f *Function) Key() string {
	ns := f.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return Key(f.Name, ns)
}

// Key returns the OpenFaaS function_name of a function: name.namespace.
func Key(name, namespace string) string { return name + "." + namespace }

// Resources are CPU and memory as Kubernetes quantities ("250m", "128Mi").
// An empty string is unset.
type Resources struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// Usage is what a Ready pod uses: Pod always, plus PerRequest for each
// request, run or job in flight on it (in-flight work is spread evenly over
// the Ready pods).
type Usage struct {
	// Pod is the idle usage of a pod. Default: 2m CPU, 16Mi.
	Pod Resources `json:"pod,omitzero"`
	// PerRequest is added per in-flight request. Default: 10m CPU, 1Mi.
	PerRequest Resources `json:"perRequest,omitzero"`
}

// SyncLoad is a sync function's offered request rate over time:
// Rate, shaped by Diurnal if set, plus every active burst.
type SyncLoad struct {
	// Rate is the base offered rate in requests per second (the trough of
	// the diurnal curve if there is one). Default: 0.
	Rate float64 `json:"rate,omitempty"`
	// Diurnal is an optional daily sinusoid from Rate up to PeakRate.
	Diurnal *Diurnal `json:"diurnal,omitempty"`
	// Bursts add extra requests per second for a while.
	Bursts []Burst `json:"bursts,omitempty"`
	// RequestDuration is the time a request takes once accepted.
	// Default: 100ms.
	RequestDuration policy.Duration `json:"requestDuration,omitzero"`
}

// Diurnal is a daily sinusoid: PeakRate at PeakHour, the base rate twelve
// hours away.
type Diurnal struct {
	// PeakRate in requests per second, at least the base rate.
	PeakRate float64 `json:"peakRate"`
	// PeakHour is the hour of the peak in the scenario's time zone,
	// [0, 24) (14.5 is 14:30).
	PeakHour float64 `json:"peakHour"`
}

// Burst adds RPS requests per second during [At, At+For).
type Burst struct {
	// At is either an offset from the start, a Go duration ("90s", "2m"):
	// the burst happens once; or a wall-clock time in the scenario's time
	// zone ("13:30", "07:05:30"): the burst happens every day.
	At string `json:"at"`
	// For is how long the burst lasts (at most 24h for a daily burst).
	For policy.Duration `json:"for"`
	// RPS is the extra offered rate, requests per second.
	RPS float64 `json:"rps"`
}

// CronLoad is what a cron function does at each fire time.
type CronLoad struct {
	// RunDuration is the time one run takes. Default: 10s.
	RunDuration policy.Duration `json:"runDuration,omitzero"`
	// Async makes each fire an asynchronous invocation: the message is
	// queued and runs once a replica is Ready (a late run) instead of
	// failing (a missed run).
	Async bool `json:"async,omitempty"`
}

// AsyncLoad is an async function's job arrivals: the sum of every burst
// train and of a Poisson stream of Rate jobs per second.
type AsyncLoad struct {
	// Bursts are periodic trains of job batches.
	Bursts []JobBurst `json:"bursts,omitempty"`
	// Rate is a Poisson arrival rate in jobs per second. Default: 0.
	Rate float64 `json:"rate,omitempty"`
	// JobDuration is the time one job takes. Default: 1s.
	JobDuration policy.Duration `json:"jobDuration,omitzero"`
}

// JobBurst is a train of batches: Jobs jobs arrive together at
// start + First + k·Every + a jitter drawn uniformly from [0, Jitter) with
// the model's seed, for k = 0, 1, 2...
type JobBurst struct {
	// Every is the period of the train (> 0).
	Every policy.Duration `json:"every"`
	// Jobs is the size of each batch (>= 1).
	Jobs int `json:"jobs"`
	// Jitter delays each batch by a random amount in [0, Jitter);
	// less than Every. Default: 0.
	Jitter policy.Duration `json:"jitter,omitzero"`
	// First is the offset of the first batch from the start. Default: Every.
	First *policy.Duration `json:"first,omitempty"`
}

// Defaults of a scenario.
const (
	DefaultTimeZone = "UTC"
	// DefaultStart is a Monday at midnight, in the scenario's time zone.
	DefaultStart         = "2026-01-05T00:00:00"
	DefaultNamespace     = "openfaas-fn"
	DefaultNodeCount     = 4
	DefaultNodeCPU       = "4"
	DefaultNodeMemory    = "8Gi"
	DefaultNodePods      = 110
	DefaultMaxInflight   = 10
	DefaultRequestCPU    = "50m"
	DefaultRequestMemory = "64Mi"
	DefaultPodCPU        = "2m"
	DefaultPodMemory     = "16Mi"
	DefaultPerRequestCPU = "10m"
	DefaultPerRequestMem = "1Mi"
)

// Default durations of a scenario.
var (
	DefaultDuration        = policy.Duration{Duration: 3600e9}
	DefaultPodStartLatency = policy.Duration{Duration: 2e9}
	DefaultRequestDuration = policy.Duration{Duration: 100e6}
	DefaultRunDuration     = policy.Duration{Duration: 10e9}
	DefaultJobDuration     = policy.Duration{Duration: 1e9}
)

// Load reads, decodes, defaults and validates the scenario file at path.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes a scenario strictly (unknown or duplicate fields are
// errors), fills in the defaults and validates it.
func Parse(data []byte) (*Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	s.Default()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Default fills every unset field with its default. It is idempotent.
func (s *Scenario) Default() {
	if s.TimeZone == "" {
		s.TimeZone = DefaultTimeZone
	}
	if s.Start == "" {
		s.Start = DefaultStart
	}
	if s.Duration.Duration == 0 {
		s.Duration = DefaultDuration
	}
	if s.Nodes.Count == 0 {
		s.Nodes.Count = DefaultNodeCount
	}
	if s.Nodes.CPU == "" {
		s.Nodes.CPU = DefaultNodeCPU
	}
	if s.Nodes.Memory == "" {
		s.Nodes.Memory = DefaultNodeMemory
	}
	if s.Nodes.Pods == 0 {
		s.Nodes.Pods = DefaultNodePods
	}
	if s.PodStartLatency.Duration == 0 {
		s.PodStartLatency = DefaultPodStartLatency
	}
	for i := range s.Functions {
		s.Functions[i] = withDefaults(s.Functions[i])
	}
}

// withDefaults returns f with its defaults filled in. It copies what it
// changes, so f's pointers and slices are never written through.
func withDefaults(f Function) Function {
	if f.Namespace == "" {
		f.Namespace = DefaultNamespace
	}
	if f.Tier == "" {
		switch {
		case f.Schedule != "":
			f.Tier = policy.TierCron
		case f.Async != nil:
			f.Tier = policy.TierAsync
		default:
			f.Tier = policy.TierSync
		}
	}
	if f.MinReplicas == nil {
		f.MinReplicas = ptr(int32(policy.DefaultMinReplicas))
	}
	if f.MaxReplicas == 0 {
		f.MaxReplicas = policy.DefaultMaxReplicas
	}
	if f.InitialReplicas == nil {
		f.InitialReplicas = ptr(*f.MinReplicas)
	}
	if f.MaxInflight == 0 {
		f.MaxInflight = DefaultMaxInflight
	}
	if f.Requests.CPU == "" {
		f.Requests.CPU = DefaultRequestCPU
	}
	if f.Requests.Memory == "" {
		f.Requests.Memory = DefaultRequestMemory
	}
	if f.Usage.Pod.CPU == "" {
		f.Usage.Pod.CPU = DefaultPodCPU
	}
	if f.Usage.Pod.Memory == "" {
		f.Usage.Pod.Memory = DefaultPodMemory
	}
	if f.Usage.PerRequest.CPU == "" {
		f.Usage.PerRequest.CPU = DefaultPerRequestCPU
	}
	if f.Usage.PerRequest.Memory == "" {
		f.Usage.PerRequest.Memory = DefaultPerRequestMem
	}
	switch f.Tier {
	case policy.TierSync:
		l := SyncLoad{}
		if f.Sync != nil {
			l = *f.Sync
		}
		if l.RequestDuration.Duration == 0 {
			l.RequestDuration = DefaultRequestDuration
		}
		f.Sync = &l
	case policy.TierCron:
		l := CronLoad{}
		if f.Cron != nil {
			l = *f.Cron
		}
		if l.RunDuration.Duration == 0 {
			l.RunDuration = DefaultRunDuration
		}
		f.Cron = &l
	case policy.TierAsync:
		l := AsyncLoad{}
		if f.Async != nil {
			l = *f.Async
		}
		if l.JobDuration.Duration == 0 {
			l.JobDuration = DefaultJobDuration
		}
		if len(l.Bursts) > 0 {
			bs := make([]JobBurst, len(l.Bursts))
			copy(bs, l.Bursts)
			for i := range bs {
				if bs[i].First == nil {
					first := bs[i].Every
					bs[i].First = &first
				}
			}
			l.Bursts = bs
		}
		f.Async = &l
	}
	return f
}

// Validate checks every field and reports every problem at once, each
// naming the field and the bad value. It checks a defaulted scenario
// (Parse and Load call Default first); unset fields that have a default are
// taken at their default.
func (s *Scenario) Validate() error {
	_, err := compile(s)
	return err
}

// Location is the scenario's time zone: UTC when unset or unknown
// (Validate reports an unknown one).
func (s *Scenario) Location() *time.Location {
	tz := s.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	return loc
}

// StartTime is Start (DefaultStart if unset) in the scenario's time zone:
// where a simulation's clock starts.
func (s *Scenario) StartTime() (time.Time, error) {
	start := s.Start
	if start == "" {
		start = DefaultStart
	}
	t, err := parseStart(start, s.Location())
	if err != nil {
		return time.Time{}, fmt.Errorf("start: %w", err)
	}
	return t, nil
}

func ptr[T any](v T) *T { return &v }

// fieldErrors collects validation errors.
type fieldErrors struct{ errs []error }

func (e *fieldErrors) add(field, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (e *fieldErrors) err() error { return errors.Join(e.errs...) }

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"time"

	promconfig "github.com/prometheus/common/config"
)

// APIVersion and Kind identify a tierscaler policy file.
const (
	APIVersion = "tierscaler.io/v1alpha1"
	Kind       = "Policy"
)

// Policy is the versioned policy file. It is decoded strictly by Load or
// Parse, validated with every error reported at once, and then defaulted.
// docs/policy.md documents every field; deploy/policy.example.yaml is a fully
// commented example.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	Prometheus   PrometheusConfig   `json:"prometheus"`
	Alertmanager AlertmanagerConfig `json:"alertmanager"`

	// Namespaces are the function namespaces tierscaler watches.
	// Default: [openfaas-fn].
	Namespaces []string `json:"namespaces,omitempty"`
	// Interval between reconcile cycles. Default: 15s.
	Interval Duration `json:"interval,omitempty"`
	// TimeZone cron schedules are evaluated in (an IANA name, as cron-connector's
	// local time zone). Default: UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// DefaultTier is the tier of a function that carries neither the
	// tierscaler.io/tier annotation nor cron-connector's annotations.
	// Default: sync.
	DefaultTier Tier `json:"defaultTier,omitempty"`

	// OpenFaaS says which OpenFaaS edition manages the functions.
	OpenFaaS OpenFaaSConfig `json:"openfaas"`
	// Signals turns the usage signals (and their queries) on or off.
	Signals Signals `json:"signals"`

	Thresholds Thresholds   `json:"thresholds"`
	Tiers      TierSettings `json:"tiers"`
	Preemption Preemption   `json:"preemption"`
	Queries    Queries      `json:"queries"`

	// location is TimeZone, loaded by SetDefaults.
	location *time.Location
	// rejectionWindow is the longest range in queries.rejections, set by
	// SetDefaults.
	rejectionWindow time.Duration
}

// PrometheusConfig says where and how to query Prometheus.
type PrometheusConfig struct {
	// URL of the Prometheus HTTP API. Default: http://prometheus.openfaas:9090.
	URL string `json:"url,omitempty"`
	// Timeout for each query. Default: 5s.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxStaleness is how old the newest gateway sample may be before the
	// metrics count as unavailable and tierscaler fails static. Default: 2m.
	MaxStaleness Duration `json:"maxStaleness,omitempty"`
	// HTTPConfig is Prometheus' own HTTP client configuration (the
	// http_config of its scrape and remote configs): bearer tokens and basic
	// auth from files, TLS, custom headers (a tenant header), proxies.
	// Secrets only from files. Default: none.
	HTTPConfig *promconfig.HTTPClientConfig `json:"httpConfig,omitempty"`
}

// Editions of OpenFaaS.
const (
	// EditionPro is OpenFaaS Pro or Enterprise, or Deployments no CE
	// provider manages: functions may go to zero and be evicted.
	EditionPro = "pro"
	// EditionCE is OpenFaaS Community Edition: its provider puts a function
	// at 0 back to 1 and caps it at 5, so tierscaler never zeroes, never
	// evicts and never scales above 5.
	EditionCE = "ce"
)

// CEMaxReplicas is the most replicas the OpenFaaS CE provider allows.
const CEMaxReplicas = 5

// OpenFaaSConfig describes the OpenFaaS installation.
type OpenFaaSConfig struct {
	// Edition is "pro" (Pro, Enterprise, or no CE provider) or "ce".
	// Default: pro.
	Edition string `json:"edition,omitempty"`
}

// Signals turns the usage signals on or off.
type Signals struct {
	// CPU and Memory: scale on cadvisor's CPU and memory usage against the
	// limits. Off, the query is not run and usage neither scales up nor
	// holds replicas up (for a Prometheus without cadvisor, such as
	// OpenFaaS CE's own). Default: true.
	CPU    *bool `json:"cpu,omitempty"`
	Memory *bool `json:"memory,omitempty"`
}

// AlertmanagerConfig says where shortfall alerts go.
type AlertmanagerConfig struct {
	// URLs of the Alertmanager instances (all of an HA set are posted to).
	// Default: [http://alertmanager.openfaas:9093]. An explicit empty list
	// turns alerting off.
	URLs []string `json:"urls,omitzero"`
	// ResendInterval is how often a firing alert is re-posted. Default: 1m.
	ResendInterval Duration `json:"resendInterval,omitempty"`
	// HTTPConfig is the HTTP client configuration used for every
	// Alertmanager, as for prometheus.httpConfig. Default: none.
	HTTPConfig *promconfig.HTTPClientConfig `json:"httpConfig,omitempty"`
}

// Thresholds drive scale-up and scale-down.
type Thresholds struct {
	// CPU is the fraction of the container CPU limit above which a function is
	// scaled up proportionally. (0,1]. Default: 0.8.
	CPU float64 `json:"cpu,omitempty"`
	// Memory is the same for the memory limit. (0,1]. Default: 0.8.
	Memory float64 `json:"memory,omitempty"`
	// RejectionRate is the rate of 429 answers per second above which a
	// function is scaled up. >= 0. Default: 0.1.
	RejectionRate *float64 `json:"rejectionRate,omitempty"`
	// TargetUtilization is the fraction of max_inflight per replica that
	// scaling aims for. (0,1]. Default: 0.7.
	TargetUtilization float64 `json:"targetUtilization,omitempty"`
}

// TierSettings holds the per-tier rules.
type TierSettings struct {
	Sync  SyncTier  `json:"sync"`
	Cron  CronTier  `json:"cron"`
	Async AsyncTier `json:"async"`
}

// SyncTier settings.
type SyncTier struct {
	// ScaleDownWindow is the stabilisation window: no scale-down within it
	// after the last scale change. Default: 5m.
	ScaleDownWindow Duration `json:"scaleDownWindow,omitempty"`
}

// CronTier settings.
type CronTier struct {
	// Lookahead: a cron function whose next fire time falls within it is due
	// and protected. Default: 10m.
	Lookahead Duration `json:"lookahead,omitempty"`
	// StartupTime is the assumed time from scale-up to Ready when neither the
	// tierscaler.io/startup-time annotation nor a learned figure exists.
	// Default: 30s.
	StartupTime Duration `json:"startupTime,omitempty"`
	// Margin is added to the startup time (and one interval) to get the
	// prewarm lead. Default: 30s.
	Margin Duration `json:"margin,omitempty"`
	// GracePeriod protects a cron function after its last run or fire time.
	// Default: 2m.
	GracePeriod Duration `json:"gracePeriod,omitempty"`
	// ZeroWhenIdle returns an idle cron function to zero. Default: true.
	ZeroWhenIdle *bool `json:"zeroWhenIdle,omitempty"`
}

// AsyncTier settings.
type AsyncTier struct {
	// IdleAfter: an async function idle this long (no in-flight, no pending
	// work) goes to zero. Default: 5m.
	IdleAfter Duration `json:"idleAfter,omitempty"`
	// ActivationTimeout: an activation still not Ready after it is a
	// shortfall. Default: 2m.
	ActivationTimeout Duration `json:"activationTimeout,omitempty"`
	// PendingPerReplica is the queued work one replica is expected to absorb.
	// Default: 10.
	PendingPerReplica int32 `json:"pendingPerReplica,omitempty"`
}

// Preemption controls how room is freed when claims do not fit.
type Preemption struct {
	// Order of the tiers that may be evicted, first to last. Sync may never
	// appear. Default: [cron, async].
	Order []Tier `json:"order,omitzero"`
	// MaxEvictionsPerCycle bounds the evictions of one plan. Default: 5. An
	// explicit 0 turns eviction off.
	MaxEvictionsPerCycle *int `json:"maxEvictionsPerCycle,omitempty"`
	// MinResidency: a function is not evicted again before this long after
	// its last scale change. Default: 5m.
	MinResidency Duration `json:"minResidency,omitempty"`
}

// Queries are the PromQL instant queries of one cycle, eight whatever the
// number of functions. All but CPU and Memory return a vector keyed by
// function_name (OpenFaaS's name.namespace); CPU and Memory return a vector
// keyed by namespace and pod.
type Queries struct {
	// Functions: one sample per function the gateway knows, whose value is the
	// Unix time of its newest scrape. A function present here with no sample in
	// the rate queries below had no traffic; a function absent here has
	// unknown metrics.
	Functions string `json:"functions,omitempty"`
	// Rejections: 429 answers per second.
	Rejections string `json:"rejections,omitempty"`
	// Invocations: invocations per second, all codes.
	Invocations string `json:"invocations,omitempty"`
	// Duration: mean seconds of a successful invocation. With the offered
	// rate it gives the concurrency the offered load needs (Little's law).
	// Absent: unknown, and the in-flight figure is used instead.
	Duration string `json:"duration,omitempty"`
	// Inflight: invocations in flight. A function absent here has unknown
	// in-flight work and is never zeroed or evicted.
	Inflight string `json:"inflight,omitempty"`
	// Pending: queued (not yet started) asynchronous messages. An async
	// function absent here has unknown queued work and is never zeroed or
	// evicted.
	Pending string `json:"pending,omitempty"`
	// CPU: CPU cores used per pod.
	CPU string `json:"cpu,omitempty"`
	// Memory: working-set bytes per pod.
	Memory string `json:"memory,omitempty"`
}

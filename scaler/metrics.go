// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Version and Revision are set at build time with -ldflags -X.
var (
	Version  = "dev"
	Revision = "unknown"
)

// Metrics are the controller's own metrics, all tierscaler_*.
type Metrics struct {
	ReconcileDuration  prometheus.Histogram
	Reconciles         *prometheus.CounterVec
	FastCycles         *prometheus.CounterVec
	Queries            *prometheus.CounterVec
	QueryDuration      *prometheus.HistogramVec
	MetricsAvailable   prometheus.Gauge
	Actions            *prometheus.CounterVec
	Evictions          *prometheus.CounterVec
	Shortfalls         *prometheus.GaugeVec
	DesiredReplicas    *prometheus.GaugeVec
	Replicas           *prometheus.GaugeVec
	PatchErrors        *prometheus.CounterVec
	ProviderReverts    *prometheus.CounterVec
	ReadinessMissed    *prometheus.CounterVec
	Leader             prometheus.Gauge
	BuildInfo          *prometheus.GaugeVec
	LastRunWrites      prometheus.Counter
	InvalidFunctions   prometheus.Gauge
	ActivationRequests *prometheus.CounterVec
	LastReconcile      prometheus.Gauge
	InflightResets     prometheus.Counter
	StateLoaded        prometheus.Gauge
	Stalled            prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tierscaler_reconcile_duration_seconds", Help: "Duration of one gather, decide and act cycle.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_reconciles_total", Help: "Reconcile cycles by result (success, error, timeout: the cycle reached its deadline).",
		}, []string{"result"}),
		FastCycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_fast_cycles_total", Help: "Fast-path cycles run at once on an activation request, between full cycles: they only add replicas. By result (success, error, timeout).",
		}, []string{"result"}),
		Queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_prometheus_queries_total", Help: "PromQL queries by policy query name and result (success, warnings (a partial answer), error, timeout, invalid).",
		}, []string{"query", "result"}),
		QueryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tierscaler_prometheus_query_duration_seconds", Help: "Duration of PromQL queries by policy query name.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"query"}),
		MetricsAvailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_metrics_available", Help: "1 when the last cycle had complete, fresh Prometheus data; 0 while tierscaler fails static (unavailable, stale, invalid or partial data).",
		}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_actions_total", Help: "Scale actions applied, by tier and reason.",
		}, []string{"tier", "reason"}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_evictions_total", Help: "Functions scaled to zero to make room for a claim, by tier of the evicted function and claim_tier of the claim served.",
		}, []string{"tier", "claim_tier"}),
		Shortfalls: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierscaler_shortfalls", Help: "Current shortfalls (demand that could not be met), by tier and reason.",
		}, []string{"tier", "reason"}),
		DesiredReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierscaler_function_desired_replicas", Help: "Replicas tierscaler wants for each function.",
		}, []string{"function", "tier"}),
		Replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierscaler_function_replicas", Help: "Replicas of each function's Deployment as observed.",
		}, []string{"function", "tier"}),
		PatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_scale_patch_errors_total", Help: "Failed scale or annotation patches by reason (conflict, forbidden, not-found, timeout, other).",
		}, []string{"reason"}),
		ProviderReverts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_provider_reverts_total", Help: "Provider reverts: another actor (for example OpenFaaS CE's provider) changed a function's replicas back toward what they were, repeatedly and with no demand, so that tierscaler holds the function.",
		}, []string{"function"}),
		ReadinessMissed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_readiness_missed_total", Help: "Readiness checks (prewarm, activation) whose deadline passed without a Ready replica.",
		}, []string{"kind"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_leader", Help: "1 while this process holds the leader lease and acts.",
		}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierscaler_build_info", Help: "Build information; always 1.",
		}, []string{"version", "revision", "goversion"}),
		LastRunWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierscaler_last_run_writes_total", Help: "Writes of the last runs of cron and async functions to tierscaler's state (at most one per cycle).",
		}),
		InvalidFunctions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_invalid_functions", Help: "Functions held where they are because their labels or annotations are invalid.",
		}),
		ActivationRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_activation_requests_total", Help: "Activation requests (from webhooks) by result (accepted, unknown-function, error).",
		}, []string{"result"}),
		LastReconcile: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_last_reconcile_timestamp_seconds", Help: "Unix time at which the last reconcile cycle finished.",
		}),
		InflightResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierscaler_inflight_resets_total", Help: "Times a function's in-flight work fell to 0 or vanished with no completion seen (a gateway counter reset); its in-flight work then reads as unknown for a while.",
		}),
		StateLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_state_loaded", Help: "1 once the leader has read its state (the last runs of cron and async functions); 0 while it cannot, and evicts nothing.",
		}),
		Stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_reconcile_stalled", Help: "1 while this process leads and no reconcile cycle has finished for three intervals plus the cycle timeout (/healthz fails then).",
		}),
	}
	m.BuildInfo.WithLabelValues(Version, Revision, runtime.Version()).Set(1)
	reg.MustRegister(m.ReconcileDuration, m.Reconciles, m.FastCycles, m.Queries, m.QueryDuration, m.MetricsAvailable, m.Actions,
		m.Evictions, m.Shortfalls, m.DesiredReplicas, m.Replicas, m.PatchErrors, m.ProviderReverts, m.ReadinessMissed,
		m.Leader, m.BuildInfo, m.LastRunWrites, m.InvalidFunctions, m.ActivationRequests, m.LastReconcile, m.Stalled, m.InflightResets, m.StateLoaded)
	return m
}

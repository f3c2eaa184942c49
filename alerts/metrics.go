// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// The result label values of tierscaler_alerts_sent_total.
const (
	// SendSuccess: Alertmanager accepted the alert.
	SendSuccess = "success"
	// SendError: the post failed (network, timeout, 5xx); it stays queued and
	// is retried with backoff.
	SendError = "error"
	// SendRejected: Alertmanager answered 4xx; retrying cannot help, the
	// alert is dropped from the queue.
	SendRejected = "rejected"
)

// The result label values of tierscaler_webhook_requests_total.
const (
	RequestOK               = "ok"
	RequestUnauthorized     = "unauthorized"
	RequestTooLarge         = "too-large"
	RequestBadRequest       = "bad-request"
	RequestMethodNotAllowed = "method-not-allowed"
	RequestNotFound         = "not-found"
	// RequestError: an activation failed for a reason other than an unknown
	// function (the API server is unreachable, say); the answer is 503 so
	// that Alertmanager retries.
	RequestError = "error"
	// RequestBusy: MaxConcurrent requests were activating and none finished
	// within the request's timeout; the answer is 503 with Retry-After.
	RequestBusy = "busy"
)

// The result label values of tierscaler_webhook_alerts_total.
const (
	// WebhookActivated: a firing alert activated a function.
	WebhookActivated = "activated"
	// WebhookUnknownFunction: the function is not one tierscaler watches.
	WebhookUnknownFunction = "unknown-function"
	// WebhookError: the activation failed.
	WebhookError = "error"
	// WebhookResolved: a resolved alert; it never scales anything down.
	WebhookResolved = "resolved"
	// WebhookIgnored: no function_name label, a duplicate within the payload,
	// or one of tierscaler's own alerts routed back to it.
	WebhookIgnored = "ignored"
	// WebhookInvalid: an invalid function_name or status.
	WebhookInvalid = "invalid"
	// WebhookOverLimit: a function beyond the per-request limit
	// (WebhookOptions.MaxFunctions); it was not activated.
	WebhookOverLimit = "over-limit"
)

// Metrics are the alerts package's tierscaler_* metrics.
type Metrics struct {
	// AlertsSent counts alerts posted to an Alertmanager, per Alertmanager and
	// attempt, by alertname and result (success, error, rejected).
	AlertsSent *prometheus.CounterVec
	// AlertsFiring is the number of alerts firing now, by alertname.
	AlertsFiring *prometheus.GaugeVec
	// AlertsDropped counts alerts dropped because a per-Alertmanager queue
	// was full.
	AlertsDropped prometheus.Counter
	// AlertsQueued is the number of alerts waiting to be posted, summed over
	// the Alertmanagers.
	AlertsQueued prometheus.Gauge
	// WebhookRequests counts webhook requests by path and result.
	WebhookRequests *prometheus.CounterVec
	// WebhookAlerts counts the alerts of accepted webhook requests by result.
	WebhookAlerts *prometheus.CounterVec
	// WebhookDuration is the time from a webhook request's receipt to its
	// answer, activations included.
	WebhookDuration *prometheus.HistogramVec
}

// NewMetrics creates the metrics, unregistered: Register adds them to a
// registry. Both the Notifier and the webhook handler use one Metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		AlertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_alerts_sent_total",
			Help: "Alerts posted to Alertmanager (per Alertmanager and attempt) by alertname and result (success, error, rejected).",
		}, []string{"alertname", "result"}),
		AlertsFiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tierscaler_alerts_firing",
			Help: "Alerts tierscaler reports as firing now, by alertname.",
		}, []string{"alertname"}),
		AlertsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tierscaler_alerts_dropped_total",
			Help: "Alerts dropped because the queue of an unreachable Alertmanager was full.",
		}),
		AlertsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tierscaler_alerts_queued",
			Help: "Alerts waiting to be posted, summed over the Alertmanagers.",
		}),
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_webhook_requests_total",
			Help: "Alertmanager webhook requests by path and result (ok, unauthorized, too-large, bad-request, method-not-allowed, not-found, error, busy).",
		}, []string{"path", "result"}),
		WebhookAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierscaler_webhook_alerts_total",
			Help: "Alerts of webhook requests by result (activated, unknown-function, error, resolved, ignored, invalid, over-limit).",
		}, []string{"result"}),
		WebhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierscaler_webhook_request_duration_seconds",
			Help:    "Time from a webhook request's receipt to its answer, activations included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"path"}),
	}
	for _, name := range AlertNames {
		m.AlertsFiring.WithLabelValues(name)
	}
	return m
}

// Register adds the metrics to reg. An error names the metric that could
// not be registered.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.AlertsSent, m.AlertsFiring, m.AlertsDropped, m.AlertsQueued,
		m.WebhookRequests, m.WebhookAlerts, m.WebhookDuration} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("register alert metric: %w", err))
		}
	}
	return errors.Join(errs...)
}

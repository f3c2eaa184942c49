// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// policyParams are what the demo policy depends on.
type policyParams struct {
	PrometheusURL   string
	AlertmanagerURL string
	Namespaces      []string
	TimeZone        string
	// Interval is the reconcile interval (at least 1s).
	Interval time.Duration
}

// window is the rate window of the demo queries: two cycles, at least 10s
// (ten of the local Prometheus' 1s scrapes), so that a burst shows within a
// cycle or two and one slow scrape does not make the rates jump.
func (p policyParams) window() time.Duration { return max(10*time.Second, 2*p.Interval) }

// timeout is the Prometheus query timeout: below the interval, as the
// policy requires.
func (p policyParams) timeout() time.Duration { return min(3*time.Second, p.Interval*3/5) }

// maxStaleness leaves room for a few missed scrapes and cycles.
func (p policyParams) maxStaleness() time.Duration { return max(30*time.Second, 3*p.Interval) }

// renderPolicy returns the demo policy: the defaults scaled down to demo
// time (a short interval, rate windows over the 1s scrapes of the local
// Prometheus, cron lookahead, grace and idle periods of a minute or two),
// the local Prometheus and Alertmanager, and the scenario's namespaces and
// time zone.
func renderPolicy(p policyParams) string {
	w := model.Duration(p.window()).String()
	ns := make([]string, len(p.Namespaces))
	for i, n := range p.Namespaces {
		ns[i] = strconv.Quote(n)
	}
	tz := p.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	return fmt.Sprintf(`# The demo policy, written by hack/demo: deploy/policy.example.yaml's defaults
# scaled down to demo time.
apiVersion: tierscaler.io/v1alpha1
kind: Policy
namespaces: [%s]
interval: %s
timeZone: %q
prometheus:
  url: %q
  timeout: %s
  maxStaleness: %s
alertmanager:
  urls: [%q]
  resendInterval: 15s
tiers:
  sync: {scaleDownWindow: 1m}
  cron: {lookahead: 2m, startupTime: 5s, margin: 10s, gracePeriod: 30s, zeroWhenIdle: true}
  async: {idleAfter: 1m, activationTimeout: 45s, pendingPerReplica: 10}
preemption: {minResidency: 1m}
queries:
  rejections: 'sum by (function_name) (rate(gateway_function_invocation_total{code="429"}[%[8]s]))'
  invocations: 'sum by (function_name) (rate(gateway_function_invocation_total[%[8]s]))'
  duration: 'sum by (function_name) (rate(gateway_functions_seconds_sum{code="200"}[%[8]s])) / (sum by (function_name) (rate(gateway_functions_seconds_count{code="200"}[%[8]s])) > 0)'
  inflight: 'max_over_time((sum by (function_name) (gateway_function_invocation_started) - (sum by (function_name) (gateway_function_invocation_total) or 0 * sum by (function_name) (gateway_function_invocation_started)))[%[8]s:1s]) or (0 * max by (function_name) (gateway_service_count))'
  cpu: 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[%[8]s]))'
`, strings.Join(ns, ", "), model.Duration(p.Interval), tz, p.PrometheusURL,
		model.Duration(p.timeout()), model.Duration(p.maxStaleness()), p.AlertmanagerURL, w)
}

// alertmanagerConfig routes the activation alerts (tierscaler="activate")
// to tierscaler's webhook with the bearer token in tokenFile, keeps
// tierscaler's own alerts (component="tierscaler": shortfalls it posts and
// the chart's rules on its metrics) in a receiver of their own, visible in
// the Alertmanager UI, and drops the rest.
func alertmanagerConfig(webhookURL, tokenFile string) string {
	return fmt.Sprintf(`# Written by hack/demo.
route:
  receiver: "null"
  group_by: [alertname]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
  routes:
    - receiver: tierscaler-webhook
      matchers: ['tierscaler="activate"']
      group_by: [alertname, function]
      group_wait: 0s
      group_interval: 5s
      repeat_interval: 1m
    - receiver: tierscaler-alerts
      matchers: ['component="tierscaler"']
      group_by: [alertname, service]
receivers:
  - name: "null"
  - name: tierscaler-alerts
  - name: tierscaler-webhook
    webhook_configs:
      - url: %q
        send_resolved: false
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: %q
`, webhookURL, tokenFile)
}

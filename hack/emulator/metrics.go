// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierscaler/tierscaler/policy"
)

// Metric descriptors. The gateway_*, queue_worker_* and container_* names
// and labels are OpenFaaS' and cadvisor's.
var (
	descInvocations = prometheus.NewDesc("gateway_function_invocation_total",
		"Function invocations by HTTP code (emulated OpenFaaS gateway).", []string{"function_name", "code"}, nil)
	descStarted = prometheus.NewDesc("gateway_function_invocation_started",
		"Function invocations started (emulated OpenFaaS gateway).", []string{"function_name"}, nil)
	descSeconds = prometheus.NewDesc("gateway_functions_seconds",
		"Function time taken (emulated OpenFaaS gateway).", []string{"function_name", "code"}, nil)
	descServiceCount = prometheus.NewDesc("gateway_service_count",
		"Desired replicas of the function's Deployment (emulated OpenFaaS gateway).", []string{"function_name"}, nil)
	descPending = prometheus.NewDesc("queue_worker_pending_messages",
		"Queued asynchronous invocations not yet started (emulated queue-worker).", []string{"function_name", "queue_name"}, nil)
	descCPU = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative CPU time consumed, seconds (emulated cadvisor).", []string{"namespace", "pod", "container"}, nil)
	descMemory = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set, bytes (emulated cadvisor).", []string{"namespace", "pod", "container"}, nil)

	descCronRuns = prometheus.NewDesc("emulator_cron_runs_total",
		"Cron runs started.", []string{"function_name"}, nil)
	descCronMissed = prometheus.NewDesc("emulator_cron_missed_total",
		"Synchronous cron fires that found no free Ready replica.", []string{"function_name"}, nil)
	descCronLate = prometheus.NewDesc("emulator_cron_late_total",
		"Async cron runs that started after their fire time.", []string{"function_name"}, nil)
	descAsyncWait = prometheus.NewDesc("emulator_async_wait_seconds",
		"Queue wait of async jobs and async cron runs before they start.", []string{"function_name"}, nil)
	descRejections = prometheus.NewDesc("emulator_rejections_total",
		"Invocations answered 429 (the same as gateway_function_invocation_total{code=\"429\"}).", []string{"function_name"}, nil)
	descReady = prometheus.NewDesc("emulator_ready_replicas",
		"Ready replicas the model used during the last tick.", []string{"function_name"}, nil)
	descInflight = prometheus.NewDesc("emulator_inflight",
		"Requests, runs or jobs in flight.", []string{"function_name"}, nil)
)

// collector turns the emulator's state into constant metrics at each
// scrape, so that every function has its series even at zero traffic and
// the series of vanished pods are gone.
type collector struct{ e *Emulator }

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInvocations, descStarted, descSeconds, descServiceCount, descPending,
		descCPU, descMemory, descCronRuns, descCronMissed, descCronLate, descAsyncWait, descRejections, descReady, descInflight} {
		ch <- d
	}
}

// Collect sends the metrics of every function the emulator knows: the
// scenario's and any other faas_function Deployment it sees (the latter
// with zero traffic).
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.model
	keys := m.Keys()
	for k := range e.desired {
		if !m.Has(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, k := range keys {
		o := m.Observe(k)
		dur := m.Duration(k).Seconds()
		counter(descInvocations, o.Completed200, k, "200")
		counter(descInvocations, o.Rejected429, k, "429")
		counter(descStarted, o.Started, k)
		// Every accepted invocation takes the function's duration; a 429
		// is answered at once.
		ch <- constHistogram(descSeconds, o.Completed200, dur, k, "200")
		ch <- constHistogram(descSeconds, o.Rejected429, 0, k, "429")
		gauge(descServiceCount, float64(e.desired[k]), k)
		if !m.Has(k) {
			continue
		}
		counter(descRejections, o.Rejected429, k)
		gauge(descReady, float64(o.Ready), k)
		gauge(descInflight, o.Inflight, k)
		f, _ := m.Function(k)
		queued := f.Tier == policy.TierAsync || (f.Tier == policy.TierCron && f.Cron != nil && f.Cron.Async)
		if queued {
			gauge(descPending, o.Pending, k, QueueName)
			h := o.AsyncWait
			ch <- prometheus.MustNewConstHistogram(descAsyncWait, h.Count, h.Sum, h.Buckets(), k)
		}
		if f.Tier == policy.TierCron {
			counter(descCronRuns, float64(o.CronRuns), k)
			counter(descCronMissed, float64(o.CronMissed), k)
			counter(descCronLate, float64(o.CronLate), k)
		}
	}
	for _, p := range e.pods {
		o := m.Observe(p.key)
		counter(descCPU, p.cpuSeconds, p.namespace, p.name, p.function)
		mem := o.MemoryPerPod
		if !p.ready {
			_, mem = m.IdleUsage(p.key)
		}
		gauge(descMemory, mem, p.namespace, p.name, p.function)
	}
}

// constHistogram is the histogram of n observations (rounded down) of d
// seconds each, over Prometheus' default buckets (the gateway's).
func constHistogram(desc *prometheus.Desc, n, d float64, labels ...string) prometheus.Metric {
	count := uint64(math.Max(0, math.Floor(n)))
	buckets := make(map[float64]uint64, len(prometheus.DefBuckets))
	for _, b := range prometheus.DefBuckets {
		if d <= b {
			buckets[b] = count
		} else {
			buckets[b] = 0
		}
	}
	return prometheus.MustNewConstHistogram(desc, count, float64(count)*d, buckets, labels...)
}

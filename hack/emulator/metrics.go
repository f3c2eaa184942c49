// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
)

// Metric descriptors. The gateway_*, queue_worker_* and container_* names
// and labels are OpenFaaS' and cadvisor's; the gateway's series also carry
// the gateway replica's pod (openfaas.LabelGatewayPod), as the OpenFaaS
// chart's Prometheus adds it when it scrapes every gateway pod.
var (
	descInvocations = prometheus.NewDesc(openfaas.MetricInvocationTotal,
		"Function invocations by HTTP code (emulated OpenFaaS gateway).", []string{openfaas.LabelFunctionName, openfaas.LabelCode, openfaas.LabelGatewayPod}, nil)
	descStarted = prometheus.NewDesc(openfaas.MetricInvocationStarted,
		"Function invocations started (emulated OpenFaaS gateway).", []string{openfaas.LabelFunctionName, openfaas.LabelGatewayPod}, nil)
	descSeconds = prometheus.NewDesc(openfaas.MetricFunctionsSeconds,
		"Function time taken (emulated OpenFaaS gateway).", []string{openfaas.LabelFunctionName, openfaas.LabelCode, openfaas.LabelGatewayPod}, nil)
	descServiceCount = prometheus.NewDesc(openfaas.MetricServiceCount,
		"Desired replicas of the function's Deployment (emulated OpenFaaS gateway).", []string{openfaas.LabelFunctionName, openfaas.LabelGatewayPod}, nil)
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
	descHeld = prometheus.NewDesc("emulator_held",
		"Invocations the gateway holds for scale from zero.", []string{"function_name"}, nil)
)

// collector turns the emulator's state into constant metrics at each
// scrape: the gateway's series as its replicas have them (openfaas.Gateway:
// created at the first start or completion, gone at a restart), the
// queue-worker's and the emulator's for every scenario function, and the
// cadvisor series of the pods there are.
type collector struct{ e *Emulator }

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInvocations, descStarted, descSeconds, descServiceCount, descPending,
		descCPU, descMemory, descCronRuns, descCronMissed, descCronLate, descAsyncWait, descRejections, descReady, descInflight, descHeld} {
		ch <- d
	}
}

// Collect sends the metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.model
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if e.gw != nil {
		e.gw.Services(func(r openfaas.Replica, desired map[string]int32) {
			for _, k := range sortedKeys(desired) {
				gauge(descServiceCount, float64(desired[k]), k, r.Pod)
			}
		})
		for _, k := range e.gw.Keys() {
			// Every accepted invocation takes the function's duration; a
			// refused or failed one is answered at once.
			dur := m.Duration(k).Seconds()
			e.gw.Each(k, func(r openfaas.Replica, s openfaas.Series) {
				if s.HasStarted {
					counter(descStarted, s.Started, k, r.Pod)
				}
				for _, c := range []struct {
					has      bool
					n        float64
					code     string
					duration float64
				}{{s.HasCompleted, s.Completed, openfaas.OKCode, dur}, {s.HasRejected, s.Rejected, openfaas.RejectedCode, 0}, {s.HasFailed, s.Failed, openfaas.FailedCode, 0}} {
					if c.has {
						counter(descInvocations, c.n, k, c.code, r.Pod)
						ch <- constHistogram(descSeconds, c.n, c.duration, k, c.code, r.Pod)
					}
				}
			})
		}
	}
	for _, k := range m.Keys() {
		o := m.Observe(k)
		counter(descRejections, o.Rejected429, k)
		gauge(descReady, float64(o.Ready), k)
		gauge(descInflight, o.Inflight, k)
		gauge(descHeld, o.Held, k)
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

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// writeTable prints one size's figures as a Markdown table, with the
// ratios KEDA / tierscaler, and notes below it.
func writeTable(w io.Writer, r *sizeResult) {
	k, t := r.Ctl[ctlKEDA], r.Ctl[ctlTierscaler]
	fmt.Fprintf(w, "\n### N = %d functions per controller\n\n", r.N)
	fmt.Fprintf(w, "%d trials of each kind per controller; idle windows of %s; load average %s before, %s after (%s); run took %s.\n\n",
		r.Trials, r.Idle, r.LoadBefore, r.LoadEnd, cores(), r.Took.Round(time.Second))
	fmt.Fprintln(w, "| | KEDA | tierscaler | KEDA / tierscaler |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	row := func(name, a, b, ratio string) { fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, a, b, ratio) }
	row("Prometheus queries per minute, idle", num(k.QueriesPerMin), num(t.QueriesPerMin), ratio(k.QueriesPerMin, t.QueriesPerMin))
	row("… as the controller counts them (KEDA: HTTP requests; tierscaler: policy queries, sent in batches)", num(k.SelfQueriesPerMin), num(t.SelfQueriesPerMin), "")
	lat := func(name string, a, b []time.Duration, withMax bool) {
		ra := ratio(percentile(a, 50).Seconds(), percentile(b, 50).Seconds()) + " / " + ratio(percentile(a, 95).Seconds(), percentile(b, 95).Seconds())
		if withMax {
			row(name+": p50 / p95 / max (s)", triple(a), triple(b), ra)
		} else {
			row(name+": p50 / p95 (s)", pair(a), pair(b), ra)
		}
	}
	lat("activation, jobs queued → replicas ≥ 1", k.ActScaled, t.ActScaled, true)
	lat("activation, jobs queued → Ready", k.ActReady, t.ActReady, true)
	lat("activation, queue depth in Prometheus → replicas ≥ 1", k.ActProm, t.ActProm, false)
	lat("burst, first 429s → scale patch", k.Burst, t.Burst, true)
	lat("burst, 429s in Prometheus → scale patch", k.BurstProm, t.BurstProm, false)
	row("CPU seconds in its idle window", cpu(k.IdleCPU), cpu(t.IdleCPU), ratio(k.IdleCPU, t.IdleCPU))
	row("CPU seconds during the trials (the same minutes for both)", cpu(k.TrialCPU), cpu(t.TrialCPU), ratio(k.TrialCPU, t.TrialCPU))
	row("CPU seconds, its start to the end of the trials (tierscaler starts first)", cpu(k.TotalCPU), cpu(t.TotalCPU), ratio(k.TotalCPU, t.TotalCPU))
	row("trials that failed", fmt.Sprintf("%d of %d", len(k.Failed), 2*r.Trials), fmt.Sprintf("%d of %d", len(t.Failed), 2*r.Trials), "")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Before either controller started, Prometheus answered %s queries per minute (nothing else queries it).\n", num(r.BaselinePerMin))
	fmt.Fprintf(w, "- kube-controller-manager used %s CPU s in KEDA's idle window and %s in tierscaler's (before KEDA started): its HPA controller asks KEDA's adapter for metrics and makes KEDA's scaling steps above one replica; not counted above.\n",
		cpu(r.KCMIdleCPU[ctlKEDA]), cpu(r.KCMIdleCPU[ctlTierscaler]))
	if r.TierscalerWebhooks >= 0 {
		fmt.Fprintf(w, "- tierscaler's webhook got %.0f activation requests from Alertmanager (the chart's activation rules).\n", r.TierscalerWebhooks)
	}
	if r.KEDALoopLagMax >= 0 {
		fmt.Fprintf(w, "- KEDA's scaling loops ran up to %.1f s behind their 30 s polling interval (mean %.1f s) at the end of its idle window (keda_internal_scale_loop_latency_seconds).\n",
			r.KEDALoopLagMax, r.KEDALoopLagMean)
	}
	for _, c := range []struct {
		name string
		r    *ctlResult
	}{{ctlKEDA, k}, {ctlTierscaler, t}} {
		for _, f := range c.r.Failed {
			fmt.Fprintf(w, "- %s trial failed: %s\n", c.name, f)
		}
	}
}

func cores() string {
	return fmt.Sprintf("%d cores", runtime.NumCPU())
}

func num(v float64) string {
	if v < 0 {
		return "-"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func cpu(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func triple(ds []time.Duration) string {
	return strings.Join([]string{secs(percentile(ds, 50)), secs(percentile(ds, 95)), secs(percentile(ds, 100))}, " / ")
}

func pair(ds []time.Duration) string {
	return secs(percentile(ds, 50)) + " / " + secs(percentile(ds, 95))
}

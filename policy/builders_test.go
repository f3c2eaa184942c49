// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"fmt"
	"strings"
	"time"
)

// t0 is the clock of the engine tests: a Tuesday, noon UTC.
var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	mi  = int64(1) << 20
	gib = int64(1) << 30
	ns  = "openfaas-fn"
)

// testPolicy is the default policy with the windows the engine tests were
// written for pinned (a 2m grace period, 5m idleAfter and minimum residency,
// a 30s margin), so that they test the rules, not the defaults (which
// TestDefaults checks), with changes.
func testPolicy(changes ...func(*Policy)) *Policy {
	p := Default()
	p.Tiers.Cron.GracePeriod.Duration = 2 * time.Minute
	p.Tiers.Cron.Margin.Duration = 30 * time.Second
	p.Tiers.Async.IdleAfter.Duration = 5 * time.Minute
	p.Preemption.MinResidency.Duration = 5 * time.Minute
	for _, c := range changes {
		c(p)
	}
	return p
}

type fnOpt func(*Function)

// fn builds a function with 500m/256Mi requests, 1/512Mi limits, max_inflight
// 4, every metric known and zero, all replicas Ready on node n1.
func fn(name string, tier Tier, replicas int32, opts ...fnOpt) Function {
	f := Function{
		Name: name, Namespace: ns, Tier: tier,
		Replicas: replicas, ReadyReplicas: replicas,
		MinReplicas: 1, MaxReplicas: 20, MaxInflight: 4,
		Requests:   Resources{MilliCPU: 500, Memory: 256 * mi, Pods: 1},
		Limits:     Resources{MilliCPU: 1000, Memory: 512 * mi},
		Rejections: Known(0), Invocations: Known(0), Inflight: Known(0), Pending: Known(0),
	}
	for i := int32(0); i < replicas; i++ {
		f.Pods = append(f.Pods, Pod{Name: fmt.Sprintf("%s-%d", name, i), Node: "n1", Ready: true, CPU: Known(0.05), Memory: Known(float64(64 * mi))})
	}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func on(nodes ...string) fnOpt {
	return func(f *Function) {
		for i := range f.Pods {
			f.Pods[i].Node = nodes[i%len(nodes)]
		}
	}
}
func requests(milli int64, mem int64) fnOpt {
	return func(f *Function) { f.Requests = Resources{MilliCPU: milli, Memory: mem, Pods: 1} }
}
func load(rejections, invocations, inflight float64) fnOpt {
	return func(f *Function) {
		f.Rejections, f.Invocations, f.Inflight = Known(rejections), Known(invocations), Known(inflight)
	}
}
func inflight(v float64) fnOpt  { return func(f *Function) { f.Inflight = Known(v) } }
func duration(s float64) fnOpt  { return func(f *Function) { f.Duration = Known(s) } }
func pending(v float64) fnOpt   { return func(f *Function) { f.Pending = Known(v) } }
func pendingPods(n int32) fnOpt { return func(f *Function) { f.PendingPods = n } }
func cpuUse(cores float64) fnOpt {
	return func(f *Function) {
		for i := range f.Pods {
			f.Pods[i].CPU = Known(cores)
		}
	}
}
func memUse(bytes int64) fnOpt {
	return func(f *Function) {
		for i := range f.Pods {
			f.Pods[i].Memory = Known(float64(bytes))
		}
	}
}
func bounded(min, max int32) fnOpt {
	return func(f *Function) { f.MinReplicas, f.MaxReplicas = min, max }
}
func lastRun(ago time.Duration) fnOpt   { return func(f *Function) { f.LastRun = t0.Add(-ago) } }
func lastScale(ago time.Duration) fnOpt { return func(f *Function) { f.LastScale = t0.Add(-ago) } }
func requested(ago time.Duration) fnOpt {
	return func(f *Function) { f.ActivationRequested = t0.Add(-ago) }
}
func unknownMetrics() fnOpt {
	return func(f *Function) {
		f.Rejections, f.Invocations, f.Inflight, f.Pending = Unknown, Unknown, Unknown, Unknown
		for i := range f.Pods {
			f.Pods[i].CPU, f.Pods[i].Memory = Unknown, Unknown
		}
	}
}
func hold() fnOpt { return func(f *Function) { f.Hold = true } }

// schedule makes f a cron function on spec (parsed with the default policy).
func schedule(spec string) fnOpt {
	return func(f *Function) {
		s, err := Default().ParseSchedule(spec)
		if err != nil {
			panic(err)
		}
		f.Schedule, f.ScheduleSpec = s, spec
	}
}

// cluster builds a snapshot: nodes of the given size named n1..nN, with each
// node's Requested summed from the functions' pods.
func cluster(nodes int, milliCPU, mem int64, fns ...Function) *Snapshot {
	s := &Snapshot{Functions: fns, MetricsAvailable: true}
	for i := 1; i <= nodes; i++ {
		s.Nodes = append(s.Nodes, Node{Name: fmt.Sprintf("n%d", i), Allocatable: Resources{milliCPU, mem, 110}, Schedulable: true})
	}
	idx := map[string]int{}
	for i := range s.Nodes {
		idx[s.Nodes[i].Name] = i
	}
	for _, f := range fns {
		for _, p := range f.Pods {
			if j, ok := idx[p.Node]; ok {
				s.Nodes[j].Requested = s.Nodes[j].Requested.Add(podRequest(&f))
			}
		}
	}
	return s
}

// summary renders a plan compactly for diffs:
// "sync api 2->6 scale-up-rejections", "cron c1 1->0 evict-for-capacity for api.openfaas-fn",
// "shortfall sync api insufficient-capacity cpu=500m mem=256Mi pods=1",
// "check prewarm c1 2026-11-24T12:01:00Z".
func summary(p *Plan) []string {
	var out []string
	for _, a := range p.Actions {
		s := fmt.Sprintf("%s %s %d->%d %s", a.Tier, a.Function, a.From, a.To, a.Reason)
		if a.Claim != "" {
			s += " for " + a.Claim
		}
		out = append(out, s)
	}
	for _, sf := range p.Shortfalls {
		if sf.Function == "" {
			out = append(out, "shortfall "+string(sf.Reason))
			continue
		}
		out = append(out, fmt.Sprintf("shortfall %s %s %s cpu=%dm mem=%dMi pods=%d", sf.Tier, sf.Function, sf.Reason,
			sf.Missing.MilliCPU, sf.Missing.Memory/mi, sf.Missing.Pods))
	}
	for _, c := range p.Checks {
		out = append(out, fmt.Sprintf("check %s %s %s", c.Kind, c.Function, c.Deadline.UTC().Format(time.RFC3339)))
	}
	return out
}

func join(lines []string) string { return strings.Join(lines, "\n") }

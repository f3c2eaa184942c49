// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The gateway's metric names and labels (gateway/metrics/metrics.go).
const (
	MetricInvocationTotal   = "gateway_function_invocation_total"
	MetricInvocationStarted = "gateway_function_invocation_started"
	MetricFunctionsSeconds  = "gateway_functions_seconds"
	MetricServiceCount      = "gateway_service_count"
	LabelFunctionName       = "function_name"
	LabelCode               = "code"
	// LabelGatewayPod tells the gateway replicas' series apart: the OpenFaaS
	// CE chart's Prometheus scrapes every gateway pod (kubernetes_sd, role
	// pod) and relabels __meta_kubernetes_pod_name to kubernetes_pod_name.
	LabelGatewayPod = "kubernetes_pod_name"
)

// The codes the modelled gateway records.
const (
	// OKCode: an invocation that ran and completed.
	OKCode = "200"
	// RejectedCode: an invocation the watchdog refused at once (its
	// max_inflight), or that found no Ready replica without scale from zero.
	RejectedCode = "429"
	// FailedCode: an invocation held for scale from zero beyond
	// ScaleFromZeroTimeout, then forwarded to a function with no Ready
	// replica.
	FailedCode = "502"
)

// ServicePollInterval is how often the gateway lists the functions for
// gateway_service_count (gateway/main.go's servicePollInterval). A gateway
// exports no gateway_service_count until its first poll, one interval
// after it starts.
const ServicePollInterval = 5 * time.Second

// Counters are one function's cumulative invocations since its workload
// began, as a workload model counts them. They never decrease.
type Counters struct {
	// Started counts the invocations the gateway forwarded to the function:
	// the completed, the in flight, the rejected and the failed ones, not
	// the ones still held for scale from zero.
	Started float64
	// Completed counts the invocations that ran and completed (OKCode).
	// They complete in the order they started: every invocation of a
	// function takes as long.
	Completed float64
	// Rejected (RejectedCode) and Failed (FailedCode) are answered at once.
	Rejected, Failed float64
}

// accepted is the invocations that ran or run: Started − Rejected − Failed.
func (c Counters) accepted() float64 { return c.Started - c.Rejected - c.Failed }

// positions are a function's places in its three invocation streams:
// accepted (they complete later), rejected and failed.
type positions [3]float64

const (
	streamAccepted = iota
	streamRejected
	streamFailed
)

func (c Counters) positions() positions { return positions{c.accepted(), c.Rejected, c.Failed} }

// Series is what one gateway replica exports for one function. A series
// whose Has flag is false does not exist: the gateway creates it at its
// first increment.
type Series struct {
	// Started is gateway_function_invocation_started.
	Started    float64
	HasStarted bool
	// Completed, Rejected and Failed are gateway_function_invocation_total
	// (and the count of gateway_functions_seconds) with code OKCode,
	// RejectedCode and FailedCode.
	Completed, Rejected, Failed          float64
	HasCompleted, HasRejected, HasFailed bool
}

// Replica is one gateway replica.
type Replica struct {
	// ID is unique for the Gateway's life; Pod is its LabelGatewayPod value.
	ID  int    `json:"id"`
	Pod string `json:"pod"`
	// Start is when it (re)started; Restarts counts its restarts.
	Start    time.Time `json:"start"`
	Restarts int       `json:"restarts"`
}

// Gateway models the function metrics of the OpenFaaS gateway's replicas
// (gateway/handlers/notifiers.go, gateway/metrics/exporter.go):
//
//   - gateway_function_invocation_started{function_name} is created at the
//     function's first forwarded invocation; the
//     gateway_function_invocation_total{function_name,code} and
//     gateway_functions_seconds{function_name,code} series of a code are
//     created at the first invocation that completes with that code. So a
//     function whose only invocation since the gateway started still runs
//     has a started series and no _total series at all.
//   - A gateway restart resets every counter to nothing. The invocations
//     that were in flight through the restarted replica are lost to it: the
//     function finishes them, but no gateway counts their completion.
//   - Every replica exports its own series, of the invocations routed
//     through it. Invocations are routed round robin over the replicas, in
//     the order they start (each stream alike: the accepted, the rejected
//     and the failed); an invocation completes through the replica it
//     started through.
//   - Counters of functions that were deleted stay until a restart.
//   - gateway_service_count{function_name} is each replica's copy of the
//     provider's function list with the desired replicas, refreshed every
//     ServicePollInterval from the replica's start on; none before its first
//     poll.
//
// Feed it with Observe (every function's cumulative Counters) and Poll;
// read it with Each and Services. A Gateway is not safe for concurrent use.
type Gateway struct {
	replicas []*gwReplica
	nextID   int
	// epochs are the routing epochs: the replica IDs by slot from some
	// point of every function's streams on, oldest first.
	epochs [][]int
	fns    map[string]*gwFunction
	keys   []string // sorted
}

type gwReplica struct {
	Replica
	polled   bool
	nextPoll time.Time
	services map[string]int32
}

type gwFunction struct {
	c Counters
	// first is the epoch at which the function was first observed; from[j]
	// are its positions when epoch first+j began.
	first int
	from  []positions
	// cut are the function's positions when a replica (by ID) restarted.
	cut map[int]positions
	// warm are the replicas (by ID) that had the function's started and
	// 200 series before its counters began (Warm), until they restart.
	warm map[int]bool
}

// NewGateway returns a gateway of n replicas (at least 1), all started at
// start.
func NewGateway(n int, start time.Time) *Gateway {
	g := &Gateway{fns: map[string]*gwFunction{}}
	ids := make([]int, 0, max(n, 1))
	for range max(n, 1) {
		ids = append(ids, g.addReplica(start).ID)
	}
	g.epochs = [][]int{ids}
	return g
}

func (g *Gateway) addReplica(start time.Time) *gwReplica {
	r := &gwReplica{Replica: Replica{ID: g.nextID, Pod: fmt.Sprintf("gateway-%d", g.nextID), Start: start},
		nextPoll: start.Add(ServicePollInterval)}
	g.nextID++
	g.replicas = append(g.replicas, r)
	return r
}

// Replicas lists the replicas, in routing order.
func (g *Gateway) Replicas() []Replica {
	out := make([]Replica, len(g.replicas))
	for i, r := range g.replicas {
		out[i] = r.Replica
	}
	return out
}

// Observe records a function's cumulative counters (the function is new
// at its first call). Observe every function before Restart and
// SetReplicas, so that they cut its streams where they are.
func (g *Gateway) Observe(key string, c Counters) { g.Function(key).c = c }

// FunctionMetrics is one function's place in a Gateway, for callers that
// observe and read many functions often (Gateway.Function).
type FunctionMetrics = gwFunction

// Function returns the function's handle (registering it at its first
// call): ObserveFunction and EachOf with it spare a lookup by key.
func (g *Gateway) Function(key string) *FunctionMetrics {
	f, ok := g.fns[key]
	if !ok {
		f = &gwFunction{first: len(g.epochs) - 1, from: []positions{{}}}
		g.fns[key] = f
		i, _ := slices.BinarySearch(g.keys, key)
		g.keys = slices.Insert(g.keys, i, key)
	}
	return f
}

// ObserveFunction is Observe by handle.
func (g *Gateway) ObserveFunction(f *FunctionMetrics, c Counters) { f.c = c }

// EachOf is Each by handle.
func (g *Gateway) EachOf(f *FunctionMetrics, fn func(r Replica, s Series)) {
	for _, r := range g.replicas {
		fn(r.Replica, g.series(f, r.ID))
	}
}

// Warm says that the function was invoked, and completed with code 200,
// through every current replica before its counters began: those replicas
// export its started and 200 series from now on, with the counts since,
// until they restart. It models a gateway that has run long before a
// simulation starts, whose counters already exist; a new replica and a
// restarted one start with nothing.
func (g *Gateway) Warm(key string) {
	f := g.Function(key)
	if f.warm == nil {
		f.warm = map[int]bool{}
	}
	for _, r := range g.replicas {
		f.warm[r.ID] = true
	}
}

// Restart restarts the replica at index i of Replicas (same ID and pod, as
// a container restart): its counters reset to nothing, and it exports no
// gateway_service_count until its first poll, ServicePollInterval after
// now.
func (g *Gateway) Restart(i int, now time.Time) error {
	if i < 0 || i >= len(g.replicas) {
		return fmt.Errorf("gateway replica %d: want 0 to %d", i, len(g.replicas)-1)
	}
	r := g.replicas[i]
	r.Start, r.Restarts = now, r.Restarts+1
	r.polled, r.services, r.nextPoll = false, nil, now.Add(ServicePollInterval)
	for _, f := range g.fns {
		if f.cut == nil {
			f.cut = map[int]positions{}
		}
		f.cut[r.ID] = f.c.positions()
		delete(f.warm, r.ID)
	}
	return nil
}

// SetReplicas scales the gateway to n replicas (at least 1): new replicas
// start at now with nothing; the newest replicas go first on a scale-down,
// with their series. Invocations starting from now on are routed over the
// new set; those in flight through a removed replica are lost to the
// metrics.
func (g *Gateway) SetReplicas(n int, now time.Time) error {
	if n < 1 {
		return fmt.Errorf("gateway replicas %d: want at least 1", n)
	}
	if n == len(g.replicas) {
		return nil
	}
	for len(g.replicas) < n {
		g.addReplica(now)
	}
	g.replicas = g.replicas[:n]
	ids := make([]int, n)
	for i, r := range g.replicas {
		ids[i] = r.ID
	}
	g.epochs = append(g.epochs, ids)
	for _, f := range g.fns {
		f.from = append(f.from, f.c.positions())
	}
	return nil
}

// Poll runs the replicas' service watchers at now: a replica whose poll is
// due takes desired (function key to desired replicas) as its function
// list until its next poll. desired is kept, not copied.
func (g *Gateway) Poll(now time.Time, desired map[string]int32) {
	for _, r := range g.replicas {
		if now.Before(r.nextPoll) {
			continue
		}
		r.services, r.polled = desired, true
		for !now.Before(r.nextPoll) {
			r.nextPoll = r.nextPoll.Add(ServicePollInterval)
		}
	}
}

// Services calls fn with every replica that has polled and its function
// list (which must not be modified).
func (g *Gateway) Services(fn func(r Replica, desired map[string]int32)) {
	for _, r := range g.replicas {
		if r.polled {
			fn(r.Replica, r.services)
		}
	}
}

// Keys lists the observed functions, sorted.
func (g *Gateway) Keys() []string { return g.keys }

// Each calls fn with every replica's series of the observed function key
// (nothing for a function never observed). The series are exported as
// they are, existing or not (see Series).
func (g *Gateway) Each(key string, fn func(r Replica, s Series)) {
	if f, ok := g.fns[key]; ok {
		g.EachOf(f, fn)
	}
}

// series computes replica id's series of f.
func (g *Gateway) series(f *gwFunction, id int) Series {
	cut := f.cut[id] // zero when id never restarted
	pos := f.c.positions()
	accepted := g.measure(f, id, streamAccepted, cut[streamAccepted], pos[streamAccepted])
	rejected := g.measure(f, id, streamRejected, cut[streamRejected], pos[streamRejected])
	failed := g.measure(f, id, streamFailed, cut[streamFailed], pos[streamFailed])
	completed := g.measure(f, id, streamAccepted, cut[streamAccepted], math.Min(f.c.Completed, pos[streamAccepted]))
	s := Series{Started: accepted + rejected + failed, Completed: completed, Rejected: rejected, Failed: failed}
	warm := f.warm[id]
	s.HasStarted, s.HasCompleted, s.HasRejected, s.HasFailed = s.Started > 0 || warm, completed > 0 || warm, rejected > 0, failed > 0
	return s
}

// measure is how many of the invocations [u, v) of stream s of f were
// routed through replica id.
func (g *Gateway) measure(f *gwFunction, id, s int, u, v float64) float64 {
	if v <= u {
		return 0
	}
	if len(f.from) == 1 {
		// One routing epoch: the common case.
		ids := g.epochs[f.first]
		if len(ids) == 1 {
			if ids[0] != id {
				return 0
			}
			return v - math.Max(u, f.from[0][s])
		}
	}
	total := 0.0
	for j := range f.from {
		lo, hi := f.from[j][s], math.Inf(1)
		if j+1 < len(f.from) {
			hi = f.from[j+1][s]
		}
		a, b := math.Max(u, lo), math.Min(v, hi)
		if b <= a {
			continue
		}
		ids := g.epochs[f.first+j]
		k := slices.Index(ids, id)
		if k < 0 {
			continue
		}
		total += share(b-lo, len(ids), k) - share(a-lo, len(ids), k)
	}
	return total
}

// share is the measure of {x in [0, z) : floor(x) mod n == k}: the part of
// the first z invocations that round robin over n replicas gives to the
// k-th.
func share(z float64, n, k int) float64 {
	if n == 1 {
		return z
	}
	q := math.Floor(z / float64(n))
	r := z - q*float64(n) - float64(k)
	return q + math.Min(math.Max(r, 0), 1)
}

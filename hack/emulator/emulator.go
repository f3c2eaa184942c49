// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package emulator plays, for a workload scenario, the parts of OpenFaaS and
// Kubernetes that pods on kwok nodes lack: the gateway, faas-netes, the
// watchdogs, the queue-worker and cadvisor. It watches the function
// Deployments and Pods, steps the scenario's workload.Model every tick with
// the Ready replica counts, and serves the metrics a real Prometheus
// scrapes under the names OpenFaaS and cadvisor use:
//
//   - gateway_function_invocation_started{function_name}
//   - gateway_function_invocation_total{function_name,code} (codes 200, 429
//     and 502)
//   - gateway_functions_seconds{function_name,code} (histogram)
//   - gateway_service_count{function_name} (the Deployment's desired
//     replicas)
//   - queue_worker_pending_messages{function_name,queue_name} (async and
//     async cron)
//   - container_cpu_usage_seconds_total{namespace,pod,container}
//   - container_memory_working_set_bytes{namespace,pod,container}
//
// and its own emulator_* metrics (cron runs, missed and late runs, async
// waits, rejections, Ready replicas, in-flight and held work).
// function_name is always name.namespace.
//
// The gateway_* series follow the real gateway's lifecycles, from the
// openfaas package (openfaas.Gateway), which the simulator uses too:
// started appears at a function's first forwarded invocation, _total and
// _seconds of a code at the first invocation that completes with that
// code, and a gateway restart resets them to nothing. So a function never
// invoked has no counter at all, and one whose only invocation since the
// gateway (re)started still runs has started = 1 and no _total.
// gateway_service_count lists the functions' Deployments from the
// gateway's first poll on (5s after it starts). Every gateway replica
// exports its own series, told apart by the label kubernetes_pod_name
// (gateway-0, gateway-1, ...), as the OpenFaaS chart's Prometheus labels
// them when it scrapes each gateway pod.
//
// # Control API
//
// The same listener serves a control API for tests and demos. Every answer
// is JSON; an error is {"error": "..."} with status 400 (bad parameter or
// wrong tier), 404 (unknown function), 405 (wrong method) or 502 (the
// Kubernetes write failed). A function is named name.namespace, or by its
// bare name when that is unambiguous.
//
// Workload:
//
//	POST   /control/rate?function=api.openfaas-fn&rps=50  override a sync function's offered rate
//	POST   /control/rate?function=api.openfaas-fn&reset=1 back to the scenario's rate
//	DELETE /control/rate?function=api.openfaas-fn         the same
//	POST   /control/jobs?function=q.openfaas-fn&count=N   enqueue N async jobs now
//	POST   /control/fire?function=job.openfaas-fn         fire a cron function now
//
// OpenFaaS (see the openfaas package for the behaviour each reproduces):
//
//	POST   /control/gateway/restart?replica=0             restart a gateway replica: its counters reset to nothing
//	POST   /control/gateway/replicas?count=2              run N gateway replicas, each with its own series
//	POST   /control/redeploy?function=api.openfaas-fn     faas-cli deploy of the function: replicas back to
//	                                                      com.openfaas.scale.min, annotations replaced by the
//	                                                      function's own (whatever tierscaler wrote is gone)
//	POST   /control/ce-provider?enabled=true              the OpenFaaS CE provider's watcher: a function at 0
//	                                                      goes back to 1, above 5 back to 5 (default off)
//	POST   /control/scale-from-zero?enabled=true          the gateway's scale from zero (default off): an
//	                                                      invocation of a function at zero scales it to its
//	                                                      minimum (or 1) and is held until a replica is Ready
//
// Reading:
//
//	GET    /control/state                                 State of every function and of the gateway
//	GET    /healthz                                       ok
//
// The workload POSTs answer with the function's FunctionState as of the
// last tick, and the change shows from the next tick on; the OpenFaaS
// POSTs answer with the GatewayState (the redeploy with the function's
// state) and take effect at once. The same operations exist in Go
// (SetRate, ResetRate, Enqueue, Fire, RestartGateway, SetGatewayReplicas,
// Redeploy, SetCEProvider, SetScaleFromZero, State, FunctionState) for
// in-process use, and as Options (GatewayReplicas, CEProvider,
// ScaleFromZero).
//
// The OpenFaaS controls write Deployments through Options.Provider (the
// KubeSource on a cluster) as faas-netes does: a full update by the field
// manager "faas-netes". The CE watcher and scale from zero act at each
// tick. A request held for scale from zero is in flight for the workload
// (FunctionState.Held, emulator_held) but not in the gateway's started
// counter: the gateway counts it only once it forwards it, after the hold.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// DefaultTick is the default model step.
const DefaultTick = time.Second

// QueueName is the queue_name label of queue_worker_pending_messages
// (the JetStream queue-worker's default queue).
const QueueName = "faas-request"

// Options configure an Emulator.
type Options struct {
	// Scenario is the workload (required), as Parse or Builtin return it.
	Scenario *workload.Scenario
	// Seed of the model's random arrivals.
	Seed int64
	// Source tells what the cluster runs (required): a KubeSource, or a
	// StaticSource in tests.
	Source Source
	// Tick is the model step and metric refresh period. Default: 1s.
	Tick time.Duration
	// Listen is the address Start listens on. Default: 127.0.0.1:0.
	Listen string
	// Clock returns the current time. Default: time.Now.
	Clock func() time.Time
	// Logger receives progress and errors. Default: discard.
	Logger *slog.Logger
	// Provider writes the function Deployments for the OpenFaaS controls
	// (Redeploy, the CE provider, scale from zero). Default: Source, when
	// it is a Provider (KubeSource and StaticSource are).
	Provider Provider
	// GatewayReplicas is the number of gateway replicas, each exporting
	// its own series (default 1; see SetGatewayReplicas).
	GatewayReplicas int
	// CEProvider turns the OpenFaaS CE provider's Deployment watcher on
	// (see SetCEProvider).
	CEProvider bool
	// ScaleFromZero turns the gateway's scale from zero on (see
	// SetScaleFromZero).
	ScaleFromZero bool
}

// Emulator serves a scenario's metrics. Create it with New; serve it with
// Start, or drive it by hand with Tick and Handler in tests. Its methods are
// safe for concurrent use.
type Emulator struct {
	opts     Options
	scenario *workload.Scenario
	registry *prometheus.Registry
	handler  http.Handler

	mu      sync.Mutex
	model   *workload.Model
	started bool
	last    time.Time
	ready   map[string]int   // Ready replicas sampled at the last tick
	desired map[string]int32 // Deployments' desired replicas
	pods    map[string]*podUsage
	// gw is the gateway's metrics, from the first tick on.
	gw            *openfaas.Gateway
	ceProvider    bool
	scaleFromZero bool
	// offered is each function's Offered at the previous tick: new
	// invocations at zero trigger scale from zero.
	offered map[string]float64
	// writes counts the provider writes of each kind (see State).
	writes map[string]int

	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// podUsage is one pod's cadvisor series.
type podUsage struct {
	namespace, name, function, key string
	ready                          bool
	cpuSeconds                     float64
}

// New validates the options and builds the emulator. It does no I/O.
func New(o Options) (*Emulator, error) {
	if o.Scenario == nil {
		return nil, errors.New("emulator: Options.Scenario is required")
	}
	if o.Source == nil {
		return nil, errors.New("emulator: Options.Source is required (a KubeSource or a StaticSource)")
	}
	if o.Tick == 0 {
		o.Tick = DefaultTick
	}
	if o.Tick < 0 {
		return nil, fmt.Errorf("emulator: tick %s is negative", o.Tick)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.GatewayReplicas < 0 {
		return nil, fmt.Errorf("emulator: %d gateway replicas: want at least 1", o.GatewayReplicas)
	}
	if o.GatewayReplicas == 0 {
		o.GatewayReplicas = 1
	}
	if o.Provider == nil {
		o.Provider, _ = o.Source.(Provider)
	}
	m := workload.NewModel(o.Scenario, o.Seed)
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("emulator: scenario %q: %w", o.Scenario.Name, err)
	}
	e := &Emulator{
		opts:     o,
		scenario: o.Scenario,
		model:    m,
		ready:    map[string]int{},
		desired:  map[string]int32{},
		pods:     map[string]*podUsage{},
		registry: prometheus.NewRegistry(),
		offered:  map[string]float64{},
		writes:   map[string]int{},
	}
	e.ceProvider = o.CEProvider
	e.setScaleFromZero(o.ScaleFromZero)
	e.registry.MustRegister(&collector{e: e})
	e.handler = e.routes()
	return e, nil
}

// Namespaces are the namespaces of the scenario's functions.
func (e *Emulator) Namespaces() []string { return Namespaces(e.scenario) }

// Namespaces are the namespaces of s's functions, sorted.
func Namespaces(s *workload.Scenario) []string {
	var out []string
	for _, f := range s.Functions {
		ns := f.Namespace
		if ns == "" {
			ns = workload.DefaultNamespace
		}
		out = append(out, ns)
	}
	return dedupe(out)
}

// Tick samples the cluster and advances the model to now: the interval
// since the previous tick is stepped with the Ready replicas sampled then,
// and each pod that was Ready accrues CPU time. The new sample applies to
// the next interval. The first Tick only starts the model's clock; a Tick
// whose now is not after the previous one only resamples the cluster.
func (e *Emulator) Tick(now time.Time) {
	c := e.opts.Source.Snapshot()
	e.mu.Lock()
	writes := e.tick(now, c)
	e.mu.Unlock()
	e.write(writes)
}

// tick is Tick with the lock held: it returns the writes the OpenFaaS
// controls want.
func (e *Emulator) tick(now time.Time, c Cluster) []write {
	switch {
	case !e.started:
		e.model.Step(now, 0, nil)
		e.started, e.last = true, now
		e.gw = openfaas.NewGateway(e.opts.GatewayReplicas, now)
	case now.After(e.last):
		dt := now.Sub(e.last)
		e.model.Step(e.last, dt, e.ready)
		for _, p := range e.pods {
			if p.ready {
				p.cpuSeconds += e.model.Observe(p.key).CPUPerPod * dt.Seconds()
			}
		}
		e.last = now
	}
	// Even when the clock did not move, the new sample applies from now on.
	seen := map[string]bool{}
	for _, p := range c.Pods {
		key := p.Key()
		if !p.Running || !e.model.Has(key) {
			continue
		}
		id := p.Namespace + "/" + p.Name
		seen[id] = true
		u, ok := e.pods[id]
		if !ok {
			u = &podUsage{namespace: p.Namespace, name: p.Name, function: p.Function, key: key}
			e.pods[id] = u
		}
		u.ready = p.Ready
	}
	for id := range e.pods {
		if !seen[id] {
			delete(e.pods, id) // the pod is gone: its series go too
		}
	}
	e.ready = c.ReadyCounts()
	e.desired = c.Deployments
	e.observe()
	e.gw.Poll(e.last, e.desired)
	return e.wantWrites()
}

// observe hands every function's counters to the gateway.
func (e *Emulator) observe() {
	for _, k := range e.model.Keys() {
		o := e.model.Counters(k)
		e.gw.Observe(k, openfaas.Counters{Started: o.Started, Completed: o.Completed200, Rejected: o.Rejected429, Failed: o.Failed})
	}
}

// Start listens on Options.Listen, serves Handler, and ticks every
// Options.Tick until ctx is done or Stop is called. It returns once the
// listener is bound (see Addr) and the first tick is done.
func (e *Emulator) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", e.opts.Listen)
	if err != nil {
		return fmt.Errorf("emulator: listening on %s: %w", e.opts.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	e.ln, e.cancel = ln, cancel
	e.srv = &http.Server{Handler: e.handler, ReadHeaderTimeout: 5 * time.Second}
	e.Tick(e.opts.Clock())
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.opts.Logger.Error("serving HTTP", "err", err)
		}
	}()
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(e.opts.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = e.srv.Shutdown(sctx)
				scancel()
				return
			case <-t.C:
				e.Tick(e.opts.Clock())
			}
		}
	}()
	e.opts.Logger.Info("emulator started", "scenario", e.scenario.Name, "addr", ln.Addr().String(), "tick", e.opts.Tick)
	return nil
}

// Stop stops the ticks and the HTTP server, and waits for them.
func (e *Emulator) Stop() {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
}

// Addr is the address Start bound ("127.0.0.1:PORT"), empty before Start.
func (e *Emulator) Addr() string {
	if e.ln == nil {
		return ""
	}
	return e.ln.Addr().String()
}

// URL is http://Addr.
func (e *Emulator) URL() string { return "http://" + e.Addr() }

// Handler serves /metrics, /healthz and the control API.
func (e *Emulator) Handler() http.Handler { return e.handler }

// Model runs f with the model locked, for in-process inspection.
func (e *Emulator) Model(f func(m *workload.Model)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e.model)
}

// Resolve turns a function reference into a key: name.namespace as is, or
// a bare name that exactly one of the scenario's functions has.
func (e *Emulator) Resolve(ref string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.resolve(ref)
}

func (e *Emulator) resolve(ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", errors.New("no function given")
	}
	keys := e.model.Keys()
	if slices.Contains(keys, ref) {
		return ref, nil
	}
	var match []string
	for _, k := range keys {
		if name, _, _ := SplitKey(k); name == ref {
			match = append(match, k)
		}
	}
	if len(match) == 1 {
		return match[0], nil
	}
	if len(match) > 1 {
		return "", fmt.Errorf("function %q is ambiguous: %s", ref, strings.Join(match, ", "))
	}
	return "", fmt.Errorf("%w %q (the scenario has: %s)", workload.ErrUnknownFunction, ref, strings.Join(keys, ", "))
}

// SetRate overrides a sync function's offered rate (requests per second)
// until ResetRate.
func (e *Emulator) SetRate(function string, rps float64) error {
	return e.control(function, func(k string) error { return e.model.SetRate(k, rps) })
}

// ResetRate returns a sync function to its scenario's rate.
func (e *Emulator) ResetRate(function string) error {
	return e.control(function, e.model.ResetRate)
}

// Enqueue queues n jobs for an async function now.
func (e *Emulator) Enqueue(function string, n int) error {
	return e.control(function, func(k string) error { return e.model.Enqueue(k, n) })
}

// Fire fires a cron function now (at the start of the next tick).
func (e *Emulator) Fire(function string) error {
	return e.control(function, e.model.Fire)
}

func (e *Emulator) control(ref string, op func(key string) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	key, err := e.resolve(ref)
	if err != nil {
		return err
	}
	return op(key)
}

// State is the emulator's view of every function.
type State struct {
	// Time of the last tick.
	Time      time.Time       `json:"time"`
	Scenario  string          `json:"scenario"`
	Functions []FunctionState `json:"functions"`
	Gateway   GatewayState    `json:"gateway"`
}

// FunctionState is one function's state after the last tick.
type FunctionState struct {
	Function string      `json:"function"`
	Tier     policy.Tier `json:"tier"`
	// Deployed is whether its Deployment exists; Desired its replicas.
	Deployed bool  `json:"deployed"`
	Desired  int32 `json:"desired"`
	// Ready replicas during the last tick.
	Ready    int     `json:"ready"`
	Inflight float64 `json:"inflight"`
	Pending  float64 `json:"pending"`
	// Held is the invocations the gateway holds for scale from zero (not
	// in Started yet).
	Held float64 `json:"held"`
	// OfferedRate and RejectionRate (429s) are per second over the last
	// tick.
	OfferedRate   float64 `json:"offeredRate"`
	RejectionRate float64 `json:"rejectionRate"`
	// RateOverride is the rate set by SetRate, if any.
	RateOverride *float64 `json:"rateOverride,omitempty"`
	// Cumulative counters since the emulator started, over every gateway
	// replica and restart (the gateway's own restart with each restart).
	Started   float64 `json:"started"`
	Completed float64 `json:"completed"`
	Rejected  float64 `json:"rejected"`
	// Failed counts the held invocations whose hold timed out.
	Failed float64 `json:"failed"`
	// Cron fires, runs started, missed and late runs (cron functions).
	CronFires  int `json:"cronFires"`
	CronRuns   int `json:"cronRuns"`
	CronMissed int `json:"cronMissed"`
	CronLate   int `json:"cronLate"`
	// AsyncWaits counts the queued jobs and runs that started;
	// MaxWaitSecs is the longest wait.
	AsyncWaits  uint64  `json:"asyncWaits"`
	MaxWaitSecs float64 `json:"maxWaitSeconds"`
	// LastActivity is the last time it was offered or did work.
	LastActivity time.Time `json:"lastActivity,omitzero"`
}

// State returns every scenario function's state after the last tick.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := State{Time: e.last, Scenario: e.scenario.Name, Functions: []FunctionState{}, Gateway: e.gatewayState()}
	for _, k := range e.model.Keys() {
		st.Functions = append(st.Functions, e.functionState(k))
	}
	return st
}

// FunctionState returns one function's state.
func (e *Emulator) FunctionState(function string) (FunctionState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key, err := e.resolve(function)
	if err != nil {
		return FunctionState{}, err
	}
	return e.functionState(key), nil
}

func (e *Emulator) functionState(key string) FunctionState {
	o := e.model.Observe(key)
	desired, deployed := e.desired[key]
	fs := FunctionState{
		Function: key, Tier: o.Tier, Deployed: deployed, Desired: desired,
		Ready: o.Ready, Inflight: o.Inflight, Pending: o.Pending, Held: o.Held, Failed: o.Failed,
		OfferedRate: o.OfferedRate, RejectionRate: o.RejectedRate,
		Started: o.Started, Completed: o.Completed200, Rejected: o.Rejected429,
		CronFires: o.CronFires, CronRuns: o.CronRuns, CronMissed: o.CronMissed, CronLate: o.CronLate,
		AsyncWaits: o.AsyncWait.Count, MaxWaitSecs: o.AsyncWait.Max.Seconds(),
		LastActivity: o.LastActivity,
	}
	if o.Overridden {
		r := o.RateOverride
		fs.RateOverride = &r
	}
	return fs
}

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/control/rate", e.handleRate)
	mux.HandleFunc("/control/jobs", e.handleJobs)
	mux.HandleFunc("/control/fire", e.handleFire)
	mux.HandleFunc("/control/state", e.handleState)
	mux.HandleFunc("/control/gateway/restart", e.handleGatewayRestart)
	mux.HandleFunc("/control/gateway/replicas", e.handleGatewayReplicas)
	mux.HandleFunc("/control/ce-provider", e.handleSwitch(e.SetCEProvider))
	mux.HandleFunc("/control/scale-from-zero", e.handleSwitch(e.SetScaleFromZero))
	mux.HandleFunc("/control/redeploy", e.handleRedeploy)
	return mux
}

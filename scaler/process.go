// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tierscaler/tierscaler/policy"
)

// ProcessOptions configure a controller process: `tierscaler run`.
type ProcessOptions struct {
	Policy     *policy.Policy
	RESTConfig *rest.Config
	// MetricsAddr serves /metrics, /healthz, /readyz and /status.
	MetricsAddr string
	DryRun      bool
	// LeaderElection runs the loop only on the holder of the Lease
	// LeaseNamespace/LeaseName; LeaseDuration bounds a takeover.
	LeaderElection bool
	LeaseNamespace string
	LeaseName      string
	LeaseDuration  time.Duration
	// AllPods watches Pods in every namespace (exact node room) instead of
	// only the function namespaces.
	AllPods bool
	Sink    ShortfallSink
	Log     logr.Logger
	// Querier defaults to the policy's Prometheus.
	Querier Querier
	// StateNamespace/StateName is the ConfigMap that keeps the last runs of
	// the cron and async functions (ConfigMapStore). Defaults: the lease
	// namespace, else "default"; DefaultStateName (tierscaler-state).
	StateNamespace string
	StateName      string
	// StateMaxBytes bounds that ConfigMap's data (default
	// DefaultStateMaxBytes).
	StateMaxBytes int
}

// Process is a running tierscaler: a controller-runtime manager with the
// informer cache, leader election, the controller and the metrics server.
type Process struct {
	Manager    manager.Manager
	Controller *Controller
	Metrics    *Metrics
	Registry   *prometheus.Registry
	// Mux is the metrics server's mux; more handlers may be added before
	// Start.
	Mux *http.ServeMux

	synced atomic.Bool
	server *HTTPServer
}

// RequestTimeout bounds every request of the client tierscaler writes with,
// unless the rest.Config sets its own Timeout. Each write is also bounded by
// Options.WriteTimeout and each cycle by Options.CycleTimeout.
const RequestTimeout = 30 * time.Second

// NewProcess wires a controller process.
func NewProcess(o ProcessOptions) (*Process, error) {
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.LeaseName == "" {
		o.LeaseName = "tierscaler"
	}
	if o.StateNamespace == "" {
		o.StateNamespace = o.LeaseNamespace
	}
	if o.StateNamespace == "" {
		o.StateNamespace = "default"
	}
	if o.StateName == "" {
		o.StateName = DefaultStateName
	}
	renew, retry := o.LeaseDuration*2/3, o.LeaseDuration/6
	mgr, err := manager.New(o.RESTConfig, manager.Options{
		Cache:                         CacheOptions(o.Policy.Namespaces, o.AllPods),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaseName,
		LeaderElectionNamespace:       o.LeaseNamespace,
		LeaderElectionResourceLock:    "leases",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &o.LeaseDuration,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
		Logger:                        o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	// Writes and direct reads go through a client of their own whose
	// requests time out (rest.Config.Timeout is 0 by default: a hung write
	// would stall the loop). The informers keep the manager's config: a
	// request timeout would cut their watches.
	writeCfg := rest.CopyConfig(o.RESTConfig)
	if writeCfg.Timeout <= 0 {
		writeCfg.Timeout = RequestTimeout
	}
	writer, err := client.New(writeCfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	p := &Process{Manager: mgr, Registry: prometheus.NewRegistry(), Mux: http.NewServeMux()}
	p.Metrics = NewMetrics(p.Registry)
	q := o.Querier
	if q == nil {
		if q, err = NewPolicyQuerier(o.Policy, ""); err != nil {
			return nil, err
		}
	}
	p.Controller, err = New(Options{
		Policy: o.Policy, Querier: q, Metrics: p.Metrics, DryRun: o.DryRun, Sink: o.Sink,
		Log: o.Log.WithName("controller"), Recorder: mgr.GetEventRecorder("tierscaler"),
		Cluster: &KubeCluster{Cached: mgr.GetCache(), Client: writer, Direct: writer, Namespaces: o.Policy.Namespaces},
		State: &ConfigMapStore{Client: writer, Namespace: o.StateNamespace, Name: o.StateName, MaxBytes: o.StateMaxBytes,
			Log: o.Log.WithName("state")},
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(p.Controller); err != nil {
		return nil, err
	}
	p.Mux.Handle("/metrics", promhttp.HandlerFor(p.Gatherer(), promhttp.HandlerOpts{}))
	p.Mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := p.Controller.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	p.Mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.synced.Load() {
			http.Error(w, "informer caches not synced yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	p.Mux.Handle("/status", p.Controller.StatusHandler())
	p.server = &HTTPServer{Name: "metrics", Addr: o.MetricsAddr, Handler: p.Mux, Log: o.Log}
	if err := mgr.Add(p.server); err != nil {
		return nil, err
	}
	return p, nil
}

// Gatherer serves tierscaler's own metrics and controller-runtime's
// registry (Go runtime, process, client-go, workqueue and leader election).
// The Go and process collectors live in controller-runtime's registry only,
// once: a metric served by both registries would fail every scrape.
func (p *Process) Gatherer() prometheus.Gatherer {
	runtimeCollectors.Do(func() {
		for _, c := range []prometheus.Collector{
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsAll)),
		} {
			// controller-runtime registers the same two when its controller
			// package is linked in; then this is AlreadyRegistered.
			_ = ctrlmetrics.Registry.Register(c)
		}
	})
	return prometheus.Gatherers{p.Registry, ctrlmetrics.Registry}
}

var runtimeCollectors sync.Once

// MetricsAddr is the bound address of the metrics server once it listens.
func (p *Process) MetricsAddr() string { return p.server.BoundAddr() }

// Start runs the process until ctx ends.
func (p *Process) Start(ctx context.Context) error {
	inf, err := p.Manager.GetCache().GetInformer(ctx, &appsv1.Deployment{})
	if err != nil {
		return fmt.Errorf("deployment informer: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*appsv1.Deployment)
			n, ok2 := newObj.(*appsv1.Deployment)
			if ok1 && ok2 {
				p.Controller.ObserveDeployment(o, n, time.Now())
			}
		},
	}); err != nil {
		return fmt.Errorf("deployment informer: %w", err)
	}
	go func() {
		if p.Manager.GetCache().WaitForCacheSync(ctx) {
			p.synced.Store(true)
		}
	}()
	return p.Manager.Start(ctx)
}

// HTTPServer is a manager runnable serving on every replica, leader or not,
// with read, write and idle timeouts.
type HTTPServer struct {
	Name    string
	Addr    string
	Handler http.Handler
	Log     logr.Logger

	bound atomic.Value
}

// NeedLeaderElection is false: every replica serves.
func (s *HTTPServer) NeedLeaderElection() bool { return false }

// BoundAddr is the address the server listens on ("" before it does).
func (s *HTTPServer) BoundAddr() string {
	v, _ := s.bound.Load().(string)
	return v
}

// Start listens and serves until ctx ends.
func (s *HTTPServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("%s server on %s: %w", s.Name, s.Addr, err)
	}
	s.bound.Store(ln.Addr().String())
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	s.Log.Info("serving", "server", s.Name, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Env is a running environment: etcd, kube-apiserver (RBAC on),
// kube-scheduler, kube-controller-manager, kwok with fake nodes,
// Prometheus and Alertmanager, all on 127.0.0.1 with free ports.
//
// Its methods are safe for concurrent use.
type Env struct {
	// Dir holds the environment's data, configuration and logs
	// (<Dir>/<component>.log).
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (group system:masters).
	Kubeconfig string
	// APIServerURL is the kube-apiserver's https URL.
	APIServerURL string
	// RESTConfig, Client and Clientset talk to the apiserver as admin.
	RESTConfig *rest.Config
	Client     client.Client
	Clientset  kubernetes.Interface
	// PrometheusURL and AlertmanagerURL are the http base URLs.
	PrometheusURL, AlertmanagerURL string

	opts     Options
	bins     *binaries
	pki      *pki
	httpc    *http.Client // trusts the CA, presents the admin certificate
	promAPI  promv1.API
	ownsDir  bool
	detached bool
	started  time.Time

	saveMu   sync.Mutex // serializes saveState
	mu       sync.Mutex
	ports    map[string]int
	procs    map[string]*proc
	scrape   map[string][]string // job -> host:port targets
	amConfig string
	stopped  bool
}

// Start starts an environment and returns once every component is ready,
// the namespace FunctionNamespace exists with its default ServiceAccount,
// and the fake nodes are Ready and schedulable. On error nothing it started
// is left running; the directory is kept so that the logs the error names
// can be read.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	o, err = o.withDefaults()
	if err != nil {
		return nil, err
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	e := &Env{
		opts:     o,
		bins:     bins,
		detached: o.Detach,
		started:  time.Now(),
		ports:    map[string]int{},
		procs:    map[string]*proc{},
		scrape:   map[string][]string{},
		amConfig: o.AlertmanagerConfig,
	}
	if err := e.prepareDir(o.Dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if stopErr := e.stop(true); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	if e.pki, err = newPKI(); err != nil {
		return nil, fmt.Errorf("testenv: generating certificates: %w", err)
	}
	if err := e.pki.write(filepath.Join(e.Dir, "pki")); err != nil {
		return nil, fmt.Errorf("testenv: writing certificates: %w", err)
	}
	tlsCfg, err := e.pki.tlsConfig()
	if err != nil {
		return nil, err
	}
	e.httpc = &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil},
	}
	if err := e.pickPorts(portEtcd, portEtcdPeer, portAPIServer, portScheduler, portControllerManager,
		portKwok, portPrometheus, portAlertmanager); err != nil {
		return nil, fmt.Errorf("testenv: picking ports: %w", err)
	}

	// Prometheus and Alertmanager start while the control plane does.
	err = parallel(
		func() error {
			if err := e.launch(ctx, e.etcd(), false); err != nil {
				return err
			}
			if err := e.launch(ctx, e.apiserver(), false); err != nil {
				return err
			}
			if err := e.connect(); err != nil {
				return err
			}
			return parallel(
				func() error { return e.launch(ctx, e.scheduler(), false) },
				func() error { return e.launch(ctx, e.controllerManager(), false) },
				func() error { return e.launch(ctx, e.kwok(), false) },
			)
		},
		func() error {
			if err := e.launch(ctx, e.alertmanager(), false); err != nil {
				return err
			}
			return e.launch(ctx, e.prometheus(), false)
		},
	)
	if err != nil {
		return nil, err
	}
	if err := e.CreateNamespace(ctx, FunctionNamespace); err != nil {
		return nil, err
	}
	if o.Nodes > 0 {
		if err := e.AddNodes(ctx, DefaultNodePool, o.Nodes, o.NodeCPU, o.NodeMemory); err != nil {
			return nil, err
		}
	}
	if err := e.saveState(); err != nil {
		return nil, err
	}
	return e, nil
}

// prepareDir creates or checks the environment's directory.
func (e *Env) prepareDir(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", TempDirPrefix)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		e.Dir, e.ownsDir = d, true
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		e.Dir = abs
		if pids, err := FindProcesses(abs); err == nil && len(pids) > 0 {
			return fmt.Errorf("testenv: %w: %s (pids %v)", ErrRunning, abs, pids)
		}
		if st, err := ReadState(abs); err == nil && st.anyAlive() {
			return fmt.Errorf("testenv: %w: %s", ErrRunning, abs)
		}
		// Data of an earlier environment in this directory would clash
		// with the new credentials and ports.
		for _, name := range []string{StateFile, "kubeconfig", "pki", "etcd", "prometheus-data", "alertmanager-data"} {
			if err := os.RemoveAll(filepath.Join(abs, name)); err != nil {
				return fmt.Errorf("testenv: clearing %s: %w", abs, err)
			}
		}
	}
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	return nil
}

// component describes how to run and probe one server.
type component struct {
	name  string
	bin   string
	ports []string // port keys it listens on, picked anew on a port clash
	args  func() []string
	ready func(ctx context.Context) error
}

// launch starts c and waits until it is ready. A start that fails because
// another program took one of its ports in the meantime is retried with
// new ports.
func (e *Env) launch(ctx context.Context, c component, restart bool) error {
	logPath := filepath.Join(e.Dir, c.name+".log")
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return &ComponentError{Component: c.name, Op: "start", Err: err}
		}
		start := time.Now()
		p, err := spawn(c.name, c.bin, c.args(), logPath, e.Dir, e.Dir, e.detached, restart || attempt > 1)
		if err != nil {
			return &ComponentError{Component: c.name, Op: "start", Log: logPath, Tail: tailLines(logPath, 20), Err: err}
		}
		e.mu.Lock()
		e.procs[c.name] = p
		e.mu.Unlock()
		if err := e.saveState(); err != nil {
			return err
		}
		err = e.waitReady(ctx, p, c.ready)
		if err == nil {
			e.opts.Logf("%s ready in %s (pid %d)", c.name, time.Since(start).Round(10*time.Millisecond), p.pid)
			return nil
		}
		_ = p.stop(e.opts.StopGrace)
		if ctx.Err() != nil {
			// Interrupted: the log tells nothing about the component.
			return &ComponentError{Component: c.name, Op: "start", Log: logPath, Err: ctx.Err()}
		}
		if attempt < 3 && len(c.ports) > 0 && logMentions(logPath, "address already in use") {
			e.opts.Logf("%s: port clash, retrying with new ports", c.name)
			if perr := e.pickPorts(c.ports...); perr == nil {
				continue
			}
		}
		return &ComponentError{Component: c.name, Op: "become ready", Log: logPath, Tail: tailLines(logPath, 20), Err: err}
	}
}

// waitReady polls ready until it succeeds, the process exits, or the start
// timeout passes.
func (e *Env) waitReady(ctx context.Context, p *proc, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if !p.alive() {
			return fmt.Errorf("exited before becoming ready: %w", p.exitError())
		}
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		last = ready(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not ready after %s: %w", e.opts.StartTimeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// connect builds the admin clients once the apiserver is ready.
func (e *Env) connect() error {
	e.mu.Lock()
	e.APIServerURL = "https://" + hostPort(e.ports[portAPIServer])
	e.mu.Unlock()
	e.RESTConfig = &rest.Config{
		Host: e.APIServerURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.pki.caPEM,
			CertData: e.pki.adminCertPEM,
			KeyData:  e.pki.adminKeyPEM,
		},
		QPS:   100,
		Burst: 200,
	}
	if err := writeKubeconfig(e.Kubeconfig, e.APIServerURL, e.pki.caPEM, adminUser(e.pki), ""); err != nil {
		return fmt.Errorf("testenv: writing %s: %w", e.Kubeconfig, err)
	}
	return e.newClients()
}

func (e *Env) newClients() error {
	var err error
	if e.Clientset, err = kubernetes.NewForConfig(e.RESTConfig); err != nil {
		return fmt.Errorf("testenv: clientset: %w", err)
	}
	// An explicit logger: controller-runtime's global one complains on
	// stderr when a program never sets it.
	if e.Client, err = client.New(e.RESTConfig, client.Options{Log: logr.Discard()}); err != nil {
		return fmt.Errorf("testenv: controller-runtime client: %w", err)
	}
	return nil
}

// Stop stops every process (SIGTERM to each process group, SIGKILL after
// Options.StopGrace), removes the state file and, if Start created the
// directory and Options.KeepDir is unset, the directory. Stopping twice
// is a no-op.
func (e *Env) Stop() error {
	return e.stop(e.opts.KeepDir || !e.ownsDir)
}

// stopLast lists the components stopped after all others, in order: the
// apiserver once its clients are gone, etcd once the apiserver is.
var stopLast = []string{KubeAPIServer, Etcd}

func (e *Env) stop(keepDir bool) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	procs := make(map[string]*proc, len(e.procs))
	for k, v := range e.procs {
		procs[k] = v
	}
	e.mu.Unlock()

	// Everything else first, concurrently; then stopLast, one by one.
	stages := [][]string{nil}
	for name := range procs {
		if !slices.Contains(stopLast, name) {
			stages[0] = append(stages[0], name)
		}
	}
	for _, name := range stopLast {
		stages = append(stages, []string{name})
	}
	var errs []error
	for _, stage := range stages {
		var fns []func() error
		for _, name := range stage {
			if p := procs[name]; p != nil {
				fns = append(fns, func() error {
					if err := p.stop(e.opts.StopGrace); err != nil {
						return &ComponentError{Component: p.name, Op: "stop", Log: p.log, Err: err}
					}
					return nil
				})
			}
		}
		if err := parallel(fns...); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the state: it still names the survivors.
		return errors.Join(errs...)
	}
	if e.httpc != nil {
		e.httpc.CloseIdleConnections()
	}
	if e.Dir != "" {
		if err := os.Remove(filepath.Join(e.Dir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if !keepDir {
			if err := os.RemoveAll(e.Dir); err != nil {
				errs = append(errs, fmt.Errorf("testenv: removing %s: %w", e.Dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

// PrometheusAPI returns a client of Prometheus' HTTP API.
func (e *Env) PrometheusAPI() promv1.API {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.promAPI
}

// Port keys of Env.ports and State.Ports.
const (
	portEtcd              = "etcd"
	portEtcdPeer          = "etcd-peer"
	portAPIServer         = KubeAPIServer
	portScheduler         = KubeScheduler
	portControllerManager = KubeControllerManager
	portKwok              = Kwok
	portPrometheus        = Prometheus
	portAlertmanager      = Alertmanager
)

// pickPorts assigns free loopback ports to keys. It holds every listener
// until all are picked, so that the ports of one call are distinct.
func (e *Env) pickPorts(keys ...string) error {
	ls := make([]net.Listener, 0, len(keys))
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	picked := make(map[string]int, len(keys))
	for _, k := range keys {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		picked[k] = l.Addr().(*net.TCPAddr).Port
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, p := range picked {
		e.ports[k] = p
	}
	return nil
}

func (e *Env) port(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ports[key]
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// parallel runs fns concurrently and joins their errors.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// newPromAPI returns a Prometheus API client for url.
func newPromAPI(url string) (promv1.API, error) {
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return nil, err
	}
	return promv1.NewAPI(c), nil
}

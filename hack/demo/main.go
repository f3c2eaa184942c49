// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Command demo runs tierscaler on a local cluster, in the foreground: the
// first command of the README's quick start (`make demo`).
//
//	go run ./hack/demo [--scenario mixed-small] [--nodes N] [--node-cpu 4] [--node-memory 8Gi]
//	                   [--interval 5s] [--duration 0] [--refresh 2s] [--tierscaler bin/tierscaler]
//	                   [--keep] [--plain]
//
// In a new temporary directory ($TMPDIR/tierscaler-testenv-demo-*) it starts:
//
//   - the local cluster of hack/testenv: etcd, kube-apiserver,
//     kube-scheduler, kube-controller-manager and kwok with fake nodes (the
//     scenario's, 4 × 4 CPU / 8Gi for mixed-small; --nodes, --node-cpu and
//     --node-memory override them), Prometheus (1s scrapes) and Alertmanager;
//   - the traffic emulator of hack/emulator for the scenario, in this
//     process, after creating the scenario's function Deployments;
//     Prometheus scrapes it;
//   - the real tierscaler binary (`tierscaler run`) with a demo policy (the
//     defaults in demo time: a 5s interval, 10s rate windows), leader
//     election in namespace default, its /metrics, /status and webhook on
//     free loopback ports, and its log in the directory; Prometheus scrapes
//     it too, and Alertmanager routes the 429 activation alert of a demo rule
//     to its webhook (with a bearer token file).
//
// It then prints where to look (URLs, KUBECONFIG, log files, curl commands
// for the emulator's control API) and shows tierscaler's /status as a
// table, refreshed every --refresh: cleared and redrawn on a terminal,
// printed once per reconcile cycle otherwise (or with --plain).
//
// Ctrl-C (SIGINT) or SIGTERM stops tierscaler, the emulator and the
// cluster, in that order, checks that none of their processes is left, and
// removes the directory (--keep keeps it; it is also kept when something
// failed, for its logs). A second Ctrl-C kills everything at once. With
// --duration the demo stops by itself that long after everything is up.
// Every process the demo starts dies with it if it crashes (Linux
// Pdeathsig).
//
// Exit status: 0 after a normal stop, 1 when something failed (the error
// names the component and its log), 2 for a usage error, 130 when
// interrupted before everything was up.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
	"github.com/tierscaler/tierscaler/workload"
)

// Component names, as errors and logs name them.
const (
	componentTierscaler = "tierscaler"
	componentEmulator   = "emulator"
)

// options are the command-line flags.
type options struct {
	scenario            string
	nodes               int
	nodeCPU, nodeMemory string
	interval            time.Duration
	duration            time.Duration
	refresh             time.Duration
	tierscaler          string
	keep, plain         bool
}

// errInterrupted reports a signal received before the demo was up.
var errInterrupted = errors.New("interrupted")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	d := &demo{o: o, out: stdout, interactive: !o.plain && isTerminal(stdout),
		http: &http.Client{Transport: &http.Transport{Proxy: nil}}}
	err = d.run(ctx, stopSignals)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "demo: interrupted before everything was up")
		return 130
	default:
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "mixed-small", "scenario `file` or built-in name ("+strings.Join(workload.BuiltinNames(), ", ")+")")
	fs.IntVar(&o.nodes, "nodes", 0, "number of fake nodes (default: the scenario's, 4 for mixed-small)")
	fs.StringVar(&o.nodeCPU, "node-cpu", "", "allocatable CPU of each node (default: the scenario's, 4 for mixed-small)")
	fs.StringVar(&o.nodeMemory, "node-memory", "", "allocatable memory of each node (default: the scenario's, 8Gi for mixed-small)")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "tierscaler's reconcile interval (at least 1s)")
	fs.DurationVar(&o.duration, "duration", 0, "stop this long after everything is up (0: run until Ctrl-C)")
	fs.DurationVar(&o.refresh, "refresh", 2*time.Second, "status refresh period")
	fs.StringVar(&o.tierscaler, "tierscaler", "", "the tierscaler `binary` to run (default: <repo>/bin/tierscaler, which `make demo` builds)")
	fs.BoolVar(&o.keep, "keep", false, "keep the directory with the logs, configuration and data after stopping")
	fs.BoolVar(&o.plain, "plain", false, "never clear the screen: print the status once per cycle (the default when stdout is not a terminal)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.nodes < 0:
		return o, fmt.Errorf("--nodes %d: want a positive number", o.nodes)
	case o.interval < policy.MinInterval:
		return o, fmt.Errorf("--interval %s: want at least %s", o.interval, policy.MinInterval)
	case o.duration < 0:
		return o, fmt.Errorf("--duration %s: want a positive duration, or 0 to run until Ctrl-C", o.duration)
	case o.refresh < 100*time.Millisecond:
		return o, fmt.Errorf("--refresh %s: want at least 100ms", o.refresh)
	}
	return o, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// demo is one run of the demo.
type demo struct {
	o           options
	out         io.Writer
	interactive bool
	http        *http.Client

	scenario *workload.Scenario
	dir      string
	env      *testenv.Env
	src      *emulator.KubeSource
	em       *emulator.Emulator
	ts       *testenv.Process
	up       time.Time

	nodes               int
	nodeCPU, nodeMemory string
	metricsURL          string // tierscaler's /metrics, /status base
	webhookURL          string
	tierscalerLog       string
	emulatorLog         string
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

// run starts everything, shows the status until ctx ends (a signal), the
// --duration passes or tierscaler dies, and stops everything.
// stopSignals restores the default signal handling, so that a second
// Ctrl-C during the shutdown kills the demo (and, by Pdeathsig, its
// children) at once.
func (d *demo) run(ctx context.Context, stopSignals func()) (err error) {
	if err := d.prepare(); err != nil {
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			stopSignals()
			d.say("\nStopping tierscaler, the emulator and the cluster (Ctrl-C again kills them at once) ...")
		} else {
			d.say("\nStopping tierscaler, the emulator and the cluster ...")
		}
		if serr := d.shutdown(err != nil && !errors.Is(err, errInterrupted)); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if err := d.start(ctx); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	return d.watch(ctx)
}

// prepare resolves the scenario, the node pool and the tierscaler binary,
// and creates the directory.
func (d *demo) prepare() error {
	s, err := workload.Resolve(d.o.scenario)
	if err != nil {
		return fmt.Errorf("--scenario: %w", err)
	}
	d.scenario = s
	d.nodes, d.nodeCPU, d.nodeMemory = s.Nodes.Count, s.Nodes.CPU, s.Nodes.Memory
	if d.o.nodes > 0 {
		d.nodes = d.o.nodes
	}
	if d.o.nodeCPU != "" {
		d.nodeCPU = d.o.nodeCPU
	}
	if d.o.nodeMemory != "" {
		d.nodeMemory = d.o.nodeMemory
	}
	if d.nodes <= 0 {
		d.nodes = testenv.DefaultNodes
	}
	if d.nodeCPU == "" {
		d.nodeCPU = testenv.DefaultNodeCPU
	}
	if d.nodeMemory == "" {
		d.nodeMemory = testenv.DefaultNodeMemory
	}

	if d.o.tierscaler == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return fmt.Errorf("cannot find the repository for bin/tierscaler (give --tierscaler): %w", err)
		}
		d.o.tierscaler = filepath.Join(root, "bin", "tierscaler")
	}
	bin, err := filepath.Abs(d.o.tierscaler)
	if err != nil {
		return err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("tierscaler binary %s not found or not executable: run `make build` (or `make demo`, which builds it)", bin)
	}
	d.o.tierscaler = bin

	if d.dir, err = os.MkdirTemp("", testenv.TempDirPrefix+"demo-"); err != nil {
		return err
	}
	d.tierscalerLog = filepath.Join(d.dir, "tierscaler.log")
	d.emulatorLog = filepath.Join(d.dir, "emulator.log")
	return nil
}

// start brings everything up.
func (d *demo) start(ctx context.Context) error {
	begin := time.Now()
	d.say("tierscaler demo: scenario %s, %d nodes of %s CPU and %s, in %s", d.scenario.Name, d.nodes, d.nodeCPU, d.nodeMemory, d.dir)

	// Prometheus loads the chart's rules at start, unchanged: the activation
	// rules (the push half of the fast path) and the alerts on tierscaler's
	// own metrics.
	root, err := testenv.RepoRoot()
	if err != nil {
		return fmt.Errorf("the demo loads the chart's Prometheus rules from the repository: %w", err)
	}
	var ruleFiles []string
	for _, f := range []string{"activation.rules.yaml", "tierscaler.rules.yaml"} {
		p := filepath.Join(root, "deploy", "chart", "tierscaler", "rules", f)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("the chart's rule file: %w", err)
		}
		ruleFiles = append(ruleFiles, p)
	}

	d.say("Starting the cluster, Prometheus and Alertmanager ...")
	env, err := testenv.Start(ctx, testenv.Options{
		Dir: d.dir, Nodes: d.nodes, NodeCPU: d.nodeCPU, NodeMemory: d.nodeMemory, NodePods: d.scenario.Nodes.Pods,
		RuleFiles: ruleFiles,
		Logf:      func(f string, a ...any) { d.say("  "+f, a...) },
	})
	if err != nil {
		return err
	}
	d.env = env

	if err := d.startEmulator(ctx); err != nil {
		return err
	}
	if err := d.startTierscaler(ctx); err != nil {
		return err
	}
	if err := env.AddScrapeTarget("tierscaler", strings.TrimPrefix(d.metricsURL, "http://")); err != nil {
		return err
	}
	if err := env.SetAlertmanagerConfig(alertmanagerConfig(d.webhookURL+"/webhook/alertmanager", filepath.Join(d.dir, "webhook-token"))); err != nil {
		return err
	}
	d.up = time.Now()
	d.say("Everything is up in %s.\n", d.up.Sub(begin).Round(100*time.Millisecond))
	if !d.interactive {
		d.header(d.out)
	}
	return nil
}

// startEmulator creates the scenario's functions, starts the emulator in
// this process and has Prometheus scrape it.
func (d *demo) startEmulator(ctx context.Context) error {
	logf, err := os.Create(d.emulatorLog)
	if err != nil {
		return err
	}
	// Left open: the emulator logs until the end of the program.
	log := slog.New(slog.NewTextHandler(logf, nil))
	fail := func(op string, err error) error {
		return &testenv.ComponentError{Component: componentEmulator, Op: op, Log: d.emulatorLog, Tail: testenv.TailLog(d.emulatorLog, 10), Err: err}
	}
	created, err := emulator.CreateFunctions(ctx, d.env.Clientset, d.scenario)
	if err != nil {
		return fail("create the scenario's functions", err)
	}
	log.Info("function deployments", "created", created)
	d.say("Created the functions of scenario %s: %s", d.scenario.Name, strings.Join(created, ", "))
	if d.src, err = emulator.NewKubeSource(ctx, d.env.Clientset, emulator.Namespaces(d.scenario)); err != nil {
		return fail("watch the cluster", err)
	}
	if d.em, err = emulator.New(emulator.Options{Scenario: d.scenario, Source: d.src, Seed: 1, Logger: log}); err != nil {
		return fail("start", err)
	}
	if err := d.em.Start(ctx); err != nil {
		return fail("start", err)
	}
	if err := d.env.AddScrapeTarget("emulator", d.em.Addr()); err != nil {
		return err
	}
	d.say("The emulator serves the scenario's gateway and cadvisor metrics on %s; Prometheus scrapes it.", d.em.URL())
	return nil
}

// startTierscaler writes the policy and the webhook token, starts
// `tierscaler run` and waits until it leads and has run a cycle.
func (d *demo) startTierscaler(ctx context.Context) error {
	params := policyParams{PrometheusURL: d.env.PrometheusURL, AlertmanagerURL: d.env.AlertmanagerURL,
		Namespaces: emulator.Namespaces(d.scenario), TimeZone: d.scenario.TimeZone, Interval: d.o.interval}
	pol := renderPolicy(params)
	if _, err := policy.Parse([]byte(pol)); err != nil {
		return fmt.Errorf("the demo policy is invalid (a bug in hack/demo): %w", err)
	}
	polFile := filepath.Join(d.dir, "policy.yaml")
	if err := os.WriteFile(polFile, []byte(pol), 0o644); err != nil {
		return err
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	tokenFile := filepath.Join(d.dir, "webhook-token")
	if err := os.WriteFile(tokenFile, []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return fmt.Errorf("picking ports for tierscaler: %w", err)
	}
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	webhookAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	d.metricsURL, d.webhookURL = "http://"+metricsAddr, "http://"+webhookAddr

	argv := []string{d.o.tierscaler, "run",
		"--policy", polFile,
		"--kubeconfig", d.env.Kubeconfig,
		"--metrics-addr", metricsAddr,
		"--webhook-addr", webhookAddr,
		"--webhook-auth", "required",
		"--webhook-token-file", tokenFile,
		"--leader-election-namespace", "default",
		"--log-format", "text",
		"--alert-labels", "cluster=demo",
	}
	d.say("Starting %s (log: %s) ...", strings.Join(argv[:2], " "), d.tierscalerLog)
	if d.ts, err = testenv.StartProcess(componentTierscaler, argv, d.tierscalerLog, d.dir); err != nil {
		return &testenv.ComponentError{Component: componentTierscaler, Op: "start", Log: d.tierscalerLog, Err: err}
	}

	// Ready: it serves /status, leads, and has run its first cycle.
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for {
		st, err := fetchStatus(ctx, d.http, d.metricsURL+"/status")
		switch {
		case err != nil:
			last = err
		case !st.Leader:
			last = errors.New("it does not lead yet (leader election in namespace default)")
		case st.Time.IsZero():
			last = errors.New("it has not finished a cycle yet")
		default:
			d.say("tierscaler leads and reconciles every %s.", d.o.interval)
			return nil
		}
		if time.Now().After(deadline) {
			return d.tierscalerError("become ready", fmt.Errorf("not ready after 90s: %w", last))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.ts.Exited():
			return d.tierscalerError("become ready", d.ts.ExitError())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *demo) tierscalerError(op string, err error) error {
	return &testenv.ComponentError{Component: componentTierscaler, Op: op, Log: d.tierscalerLog, Tail: testenv.TailLog(d.tierscalerLog, 15), Err: err}
}

// freePorts returns n distinct ports free on 127.0.0.1 at the time of the
// call.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// burstExample returns the first sync function of the scenario and an
// offered rate of four replicas' worth of requests, for the curl example.
func burstExample(s *workload.Scenario) (name string, rps int, ok bool) {
	for _, f := range s.Functions {
		if f.Tier != policy.TierSync || f.Sync == nil {
			continue
		}
		perReplica := 50.0
		if dur := f.Sync.RequestDuration.Seconds(); dur > 0 && f.MaxInflight > 0 {
			perReplica = float64(f.MaxInflight) / dur
		}
		return f.Name, int(math.Ceil(4 * perReplica)), true
	}
	return "", 0, false
}

// firstOf returns the name of the scenario's first function of tier t.
func firstOf(s *workload.Scenario, t policy.Tier) (string, bool) {
	for _, f := range s.Functions {
		if f.Tier == t {
			return f.Name, true
		}
	}
	return "", false
}

// header writes where to look.
func (d *demo) header(w io.Writer) {
	st := d.env.State()
	uptime := ""
	if !d.up.IsZero() {
		uptime = ", up " + time.Since(d.up).Round(time.Second).String()
	}
	stop := "Ctrl-C stops everything"
	if d.o.duration > 0 {
		stop = fmt.Sprintf("stops by itself after %s, or on Ctrl-C", d.o.duration)
	}
	fmt.Fprintf(w, "tierscaler demo: scenario %s, %d nodes of %s CPU and %s%s; %s.\n\n",
		d.scenario.Name, d.nodes, d.nodeCPU, d.nodeMemory, uptime, stop)
	ns := emulator.Namespaces(d.scenario)[0]
	em := d.em.URL()
	rows := [][2]string{
		{"Prometheus", st.PrometheusURL + "   (try tierscaler_function_replicas, tierscaler_actions_total, ALERTS)"},
		{"Alertmanager", st.AlertmanagerURL},
		{"kubectl", "export KUBECONFIG=" + st.Kubeconfig + "; kubectl get deploy -n " + ns + "; kubectl get events -n " + ns},
		{"tierscaler", d.metricsURL + "/metrics   " + d.metricsURL + "/status   log " + d.tierscalerLog},
		{"emulator", em + "/control/state   log " + d.emulatorLog},
	}
	if fn, rps, ok := burstExample(d.scenario); ok {
		rows = append(rows, [2]string{"a burst", fmt.Sprintf("curl -XPOST '%s/control/rate?function=%s&rps=%d'   (then reset=1 instead of rps ends it)", em, fn, rps)})
	}
	if fn, ok := firstOf(d.scenario, policy.TierAsync); ok {
		rows = append(rows, [2]string{"queued jobs", fmt.Sprintf("curl -XPOST '%s/control/jobs?function=%s&count=40'", em, fn)})
	}
	if fn, ok := firstOf(d.scenario, policy.TierCron); ok {
		rows = append(rows, [2]string{"fire a cron", fmt.Sprintf("curl -XPOST '%s/control/fire?function=%s'", em, fn)})
	}
	keep := "removed on exit; --keep keeps it"
	if d.o.keep {
		keep = "kept on exit"
	}
	rows = append(rows, [2]string{"directory", d.dir + "   (every component's log, the policy, the configs; " + keep + ")"})
	for _, r := range rows {
		fmt.Fprintf(w, "  %-13s %s\n", r[0], r[1])
	}
	fmt.Fprintln(w)
}

// watch shows the status until ctx ends, the --duration passes, or
// tierscaler exits (an error).
func (d *demo) watch(ctx context.Context) error {
	var deadline <-chan time.Time
	if d.o.duration > 0 {
		t := time.NewTimer(d.o.duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(d.o.refresh)
	defer tick.Stop()
	var shown time.Time
	for {
		st, err := fetchStatus(ctx, d.http, d.metricsURL+"/status")
		if ctx.Err() == nil {
			d.show(st, err, &shown)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			d.say("--duration %s is over.", d.o.duration)
			if st != nil {
				d.say("Last status: leader %t, metrics available %t, %d functions with a last action.", st.Leader, st.MetricsAvailable, actions(st))
			}
			return nil
		case <-d.ts.Exited():
			return d.tierscalerError("keep running", d.ts.ExitError())
		case <-tick.C:
		}
	}
}

// show draws one status: on a terminal, the whole screen; otherwise the
// table, once per reconcile cycle.
func (d *demo) show(st *scaler.Status, err error, shown *time.Time) {
	var b bytes.Buffer
	if d.interactive {
		b.WriteString("\033[H\033[2J")
		d.header(&b)
	} else {
		if err == nil && st.Time.Equal(*shown) {
			return
		}
		fmt.Fprintf(&b, "--- %s ---\n", time.Now().Format(time.TimeOnly))
	}
	if err != nil {
		fmt.Fprintf(&b, "tierscaler's /status does not answer: %v (log: %s)\n", err, d.tierscalerLog)
	} else {
		*shown = st.Time
		_ = renderStatus(&b, st, d.o.interval)
	}
	if !d.interactive {
		b.WriteString("\n")
	}
	_, _ = d.out.Write(b.Bytes())
}

// shutdown stops tierscaler, the emulator and the cluster, checks that
// none of their processes is left, and removes the directory unless
// --keep was given or failed is set.
func (d *demo) shutdown(failed bool) error {
	var errs []error
	if d.ts != nil {
		if err := d.ts.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		} else {
			d.say("  tierscaler stopped")
		}
	}
	if d.em != nil {
		d.em.Stop()
	}
	if d.src != nil {
		d.src.Stop()
	}
	if d.em != nil {
		d.say("  emulator stopped")
	}
	if d.env != nil {
		if err := d.env.Stop(); err != nil {
			errs = append(errs, err)
		} else {
			d.say("  cluster, Prometheus and Alertmanager stopped")
		}
	}
	if d.dir != "" {
		if pids, err := testenv.FindProcesses(d.dir); err == nil && len(pids) > 0 {
			errs = append(errs, fmt.Errorf("processes of %s still run: %v (hack/check-leftovers.sh --kill stops them)", d.dir, pids))
		}
	}
	keep := failed || len(errs) > 0 || d.o.keep
	switch {
	case d.dir == "":
	case keep:
		d.say("Logs, configuration and data kept in %s (remove it with rm -rf).", d.dir)
	default:
		if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		d.say("Stopped everything; nothing is left running.")
	}
	return errors.Join(errs...)
}

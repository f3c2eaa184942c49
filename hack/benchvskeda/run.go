// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/hack/testenv"
)

// config is one benchmark run's settings.
type config struct {
	// Sizes are the numbers of functions per controller, run one after
	// the other, each on a fresh local cluster.
	Sizes []int
	// Trials of each kind (activation, burst) per controller.
	Trials int
	// Idle is the length of each controller's idle window; Settle the
	// wait before the first one, once both controllers are ready.
	Idle, Settle time.Duration
	// GapMin and GapMax bound the random pause before each trial of a
	// controller and kind; the trials overlap.
	GapMin, GapMax time.Duration
	// TrialTimeout bounds each trial.
	TrialTimeout time.Duration
	// Seed of the random pauses and of the emulator.
	Seed uint64
	// KedaDir holds what hack/keda.sh builds; Tierscaler is the binary;
	// Root the repository.
	KedaDir, Tierscaler, Root string
	// KeepDir keeps each environment's directory (logs).
	KeepDir bool
	Logf    func(format string, args ...any)
}

// controller names, as printed.
const (
	ctlKEDA       = "KEDA"
	ctlTierscaler = "tierscaler"
)

// ctlResult are one controller's figures at one size.
type ctlResult struct {
	// QueriesPerMin is Prometheus' count of PromQL queries during the
	// controller's idle window (the other controller absent or paused),
	// per minute.
	QueriesPerMin float64
	// SelfQueriesPerMin is what the controller itself counted over the
	// same window (KEDA: keda_scaler_http_requests_total; tierscaler:
	// tierscaler_prometheus_queries_total), -1 if unknown.
	SelfQueriesPerMin float64
	// IdleCPU is the CPU seconds its processes used in its idle window,
	// TrialCPU during the trials (the same period for both), TotalCPU
	// from their start to the end of the trials.
	IdleCPU, TrialCPU, TotalCPU float64
	// Activation: queued work to replicas >= 1 and to a Ready replica;
	// ActivationProm from the queue depth landing in Prometheus to
	// replicas >= 1.
	ActScaled, ActReady, ActProm []time.Duration
	// Burst: the emulator's first 429s to the scale patch; BurstProm from
	// the first 429s in Prometheus to the patch.
	Burst, BurstProm []time.Duration
	// Failed trials, with why.
	Failed []string
}

func (c *ctlResult) setIdle(w window) {
	c.QueriesPerMin, c.SelfQueriesPerMin, c.IdleCPU = w.qpm, w.selfQPM, w.cpu
}

// sizeResult is one size's run.
type sizeResult struct {
	N, Trials           int
	Idle                time.Duration
	LoadBefore, LoadEnd string
	Took                time.Duration
	// BaselinePerMin is Prometheus' query count per minute before either
	// controller starts (nothing else queries it).
	BaselinePerMin float64
	// KCMIdleCPU is kube-controller-manager's CPU seconds in each
	// controller's idle window: the HPA controller works for KEDA.
	KCMIdleCPU map[string]float64
	// KEDALoopLag is the largest and the mean deviation of KEDA's scaling
	// loops from their polling interval at the end of KEDA's idle window
	// (keda_internal_scale_loop_latency_seconds), -1 if unknown.
	KEDALoopLagMax, KEDALoopLagMean float64
	// TierscalerWebhooks counts the activation requests tierscaler's
	// webhook got from Alertmanager (tierscaler_activation_requests_total,
	// every result), -1 if unknown.
	TierscalerWebhooks float64
	Ctl                map[string]*ctlResult
}

// runSize runs the whole comparison at n functions per controller on a
// fresh local cluster.
func runSize(ctx context.Context, cfg config, n int) (_ *sizeResult, err error) {
	logf := cfg.Logf
	began := time.Now()
	res := &sizeResult{N: n, Trials: cfg.Trials, Idle: cfg.Idle, LoadBefore: loadAverage(),
		KCMIdleCPU: map[string]float64{}, KEDALoopLagMax: -1, KEDALoopLagMean: -1,
		Ctl: map[string]*ctlResult{ctlKEDA: {SelfQueriesPerMin: -1}, ctlTierscaler: {SelfQueriesPerMin: -1}}}
	keda := fnSet{ctl: ctlKEDA, namespace: kedaNamespace, prefix: kedaPrefix, n: n}
	ts := fnSet{ctl: ctlTierscaler, namespace: tsNamespace, prefix: tsPrefix, n: n}
	kedaBins, err := kedaBinariesIn(cfg.KedaDir)
	if err != nil {
		return nil, err
	}
	rules, err := chartRules(cfg.Root)
	if err != nil {
		return nil, err
	}

	// The cluster: room for both sets' sync replicas and for what the
	// trials add (one replica per activation, up to syncMax per burst).
	pods := 2*len(ts.indices(true)) + 2*cfg.Trials*(1+syncMax) + 50
	const podsPerNode = 250
	nodes := max(2, (pods+podsPerNode-1)/podsPerNode)
	logf("N=%d: starting a local cluster (%d nodes), Prometheus (1s scrapes, the chart's rules %v) and Alertmanager", n, nodes, baseNames(rules))
	// A directory of our own, named like testenv's (hack/check-leftovers.sh
	// looks for that name): kept, with every log, when the run fails.
	dir, err := os.MkdirTemp("", testenv.TempDirPrefix+"benchvskeda-")
	if err != nil {
		return nil, err
	}
	env, err := testenv.Start(ctx, testenv.Options{
		Dir:   dir,
		Nodes: nodes, NodeCPU: "32", NodeMemory: "128Gi", NodePods: podsPerNode,
		RuleFiles: rules, Logf: func(f string, a ...any) { logf("  testenv: "+f, a...) },
	})
	if err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, dir)
	}
	defer func() {
		if serr := env.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		if err != nil || cfg.KeepDir {
			logf("N=%d: the logs are in %s", n, dir)
		} else {
			err = os.RemoveAll(dir)
		}
	}()

	// A client of our own: the admin one is limited to 100 requests/s.
	rc := rest.CopyConfig(env.RESTConfig)
	rc.QPS, rc.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if err := env.CreateNamespace(ctx, kedaNamespace); err != nil {
		return nil, err
	}
	sc, err := scenario(keda, ts)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	start := time.Now()
	if err := createFunctions(ctx, cs, sc, 8); err != nil {
		return nil, err
	}
	logf("N=%d: %d function Deployments created in %s", n, 2*n, time.Since(start).Round(10*time.Millisecond))

	rec, err := newRecorder(ctx, cs, kedaNamespace, tsNamespace)
	if err != nil {
		return nil, err
	}
	defer rec.stop()
	src, err := emulator.NewKubeSource(ctx, cs, []string{kedaNamespace, tsNamespace})
	if err != nil {
		return nil, err
	}
	defer src.Stop()
	em, err := emulator.New(emulator.Options{Scenario: sc, Source: src, Seed: int64(cfg.Seed)})
	if err != nil {
		return nil, err
	}
	if err := em.Start(ctx); err != nil {
		return nil, err
	}
	defer em.Stop()
	if err := env.AddScrapeTarget("gateway", em.Addr()); err != nil {
		return nil, err
	}
	// The sync functions' pods, before any controller starts.
	if err := waitReadyCount(ctx, rec, 2*len(ts.indices(true)), 5*time.Minute); err != nil {
		return nil, err
	}
	logf("N=%d: emulator at %s; %d sync replicas Ready", n, em.URL(), 2*len(ts.indices(true)))

	kcm := 0
	for _, p := range env.Processes() {
		if p.Name == testenv.KubeControllerManager {
			kcm = p.PID
		}
	}
	settle := func() error {
		if cfg.Settle <= 0 {
			return nil
		}
		logf("N=%d: settling for %s", n, cfg.Settle)
		return sleep(ctx, cfg.Settle)
	}

	// The idle windows come first, one controller at a time, and KEDA is
	// never paused: its scaling loops keep the phase they started with
	// (each ScaledObject's own), whereas a SIGSTOP and SIGCONT would line
	// them all up and make them query Prometheus at the same instant every
	// 30s, which is not how KEDA runs. So: the baseline with no controller;
	// tierscaler alone, before KEDA starts; KEDA with tierscaler paused
	// (tierscaler's ticker just resumes).
	baseline := max(5*time.Second, cfg.Idle/4)
	w, err := idleWindow(ctx, env.PrometheusURL, nil, nil, kcm, baseline, nil)
	if err != nil {
		return nil, fmt.Errorf("baseline window: %w", err)
	}
	res.BaselinePerMin = w.qpm
	logf("N=%d: baseline (no controller) for %s: %.1f queries/min", n, baseline, w.qpm)

	t, err := startTierscaler(ctx, env, cfg.Tierscaler, cfg.Root, logf)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()
	if err := waitTierscalerCycles(ctx, t, n, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("tierscaler (log %s): %w", t.log, err)
	}
	logf("N=%d: tierscaler sees its %d functions with fresh metrics", n, n)
	if err := settle(); err != nil {
		return nil, err
	}
	tsPIDs := []int{t.pid}
	w, err = idleWindow(ctx, env.PrometheusURL, tsPIDs, nil, kcm, cfg.Idle, func(ctx context.Context) (float64, error) {
		return selfCount(ctx, t.metricsURL, "tierscaler_prometheus_queries_total")
	})
	if err != nil {
		return nil, fmt.Errorf("tierscaler's idle window: %w", err)
	}
	res.Ctl[ctlTierscaler].setIdle(w)
	res.KCMIdleCPU[ctlTierscaler] = w.kcmCPU
	logf("N=%d: tierscaler idle for %s: %.1f Prometheus queries/min (self-reported %.1f), %.2f CPU s", n, cfg.Idle, w.qpm, w.selfQPM, w.cpu)

	k, err := startKeda(ctx, env, kedaBins, logf)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, k.stop()) }()
	// KEDA reconciles about two ScaledObjects a second here (its API
	// client is limited to 20 requests/s).
	if err := createScaledObjects(ctx, env.Client, keda, env.PrometheusURL, 2*time.Minute+time.Duration(n)*time.Second, logf); err != nil {
		return nil, fmt.Errorf("KEDA (log %s): %w", k.operatorLog, err)
	}
	if err := settle(); err != nil {
		return nil, err
	}
	kedaPIDs := k.pids()
	w, err = idleWindow(ctx, env.PrometheusURL, kedaPIDs, tsPIDs, kcm, cfg.Idle, func(ctx context.Context) (float64, error) {
		return selfCount(ctx, k.metricsURL, "keda_scaler_http_requests_total")
	})
	if err != nil {
		return nil, fmt.Errorf("KEDA's idle window: %w", err)
	}
	res.Ctl[ctlKEDA].setIdle(w)
	res.KCMIdleCPU[ctlKEDA] = w.kcmCPU
	res.KEDALoopLagMax, res.KEDALoopLagMean = kedaLoopLag(ctx, k.metricsURL)
	logf("N=%d: KEDA idle for %s: %.1f Prometheus queries/min (self-reported %.1f), %.2f CPU s", n, cfg.Idle, w.qpm, w.selfQPM, w.cpu)
	// tierscaler runs again: its next cycle has fresh metrics.
	if err := waitTierscalerCycles(ctx, t, n, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("tierscaler after its pause (log %s): %w", t.log, err)
	}

	// The trials.
	logf("N=%d: %d activation and %d burst trials per controller, overlapping, at random phases", n, cfg.Trials, cfg.Trials)
	tr := &trials{cfg: cfg, em: em, rec: rec, prom: env, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(n)))}
	cpu0 := map[string]float64{}
	for name, pids := range map[string][]int{ctlKEDA: kedaPIDs, ctlTierscaler: tsPIDs} {
		if cpu0[name], err = sumCPU(pids); err != nil {
			return nil, err
		}
	}
	trialsOut := tr.run(ctx, []fnSet{keda, ts})
	for _, x := range trialsOut {
		c := res.Ctl[x.set.ctl]
		if x.err != nil {
			c.Failed = append(c.Failed, fmt.Sprintf("%s %s: %v", x.kind, x.fn, x.err))
			continue
		}
		switch x.kind {
		case kindActivation:
			c.ActScaled = append(c.ActScaled, x.scaled.Sub(x.start))
			c.ActReady = append(c.ActReady, x.ready.Sub(x.start))
			if !x.promSeen.IsZero() {
				c.ActProm = append(c.ActProm, x.scaled.Sub(x.promSeen))
			}
		case kindBurst:
			c.Burst = append(c.Burst, x.scaled.Sub(x.start))
			if !x.promSeen.IsZero() {
				c.BurstProm = append(c.BurstProm, x.scaled.Sub(x.promSeen))
			}
		}
	}
	for name, pids := range map[string][]int{ctlKEDA: kedaPIDs, ctlTierscaler: tsPIDs} {
		cpu, err := sumCPU(pids)
		if err != nil {
			return nil, err
		}
		res.Ctl[name].TotalCPU = cpu
		res.Ctl[name].TrialCPU = cpu - cpu0[name]
	}
	res.TierscalerWebhooks = -1
	if v, err := selfCount(ctx, t.metricsURL, "tierscaler_activation_requests_total"); err == nil {
		res.TierscalerWebhooks = v
	}
	res.LoadEnd = loadAverage()
	res.Took = time.Since(began)
	return res, nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// waitReadyCount waits until at least want function Deployments have a
// Ready replica.
func waitReadyCount(ctx context.Context, rec *recorder, want int, timeout time.Duration) error {
	var got int
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		got = rec.count(kedaNamespace, func(_, ready int32) bool { return ready >= 1 }) +
			rec.count(tsNamespace, func(_, ready int32) bool { return ready >= 1 })
		return got >= want, nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d sync function replicas Ready after %s", got, want, timeout)
	}
	return nil
}

// waitTierscalerCycles waits for a successful tierscaler cycle that ends
// after the call with fresh metrics and every one of its n functions (the
// gauges read at once after a pause would be the stale ones of the cycle
// before it). After a SIGCONT the pending tick starts a cycle at once.
func waitTierscalerCycles(ctx context.Context, t *tsRun, n int, timeout time.Duration) error {
	ok := map[string][]string{"result": {"success"}}
	var before float64
	if mfs, err := scrape(ctx, t.metricsURL+"/metrics"); err == nil {
		before, _ = sumMetric(mfs, "tierscaler_reconciles_total", ok)
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		mfs, err := scrape(ctx, t.metricsURL+"/metrics")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		cycles, _ := sumMetric(mfs, "tierscaler_reconciles_total", ok)
		avail, _ := sumMetric(mfs, "tierscaler_metrics_available", nil)
		fns := 0
		if mf, ok := mfs["tierscaler_function_replicas"]; ok {
			fns = len(mf.GetMetric())
		}
		last = fmt.Sprintf("%.0f new successful cycles, metrics available %v, %d functions reported", cycles-before, avail, fns)
		return cycles > before && avail == 1 && fns >= n, nil
	})
	if err != nil {
		return fmt.Errorf("after %s: %s", timeout, last)
	}
	return nil
}

// window is what idleWindow measured.
type window struct {
	// qpm is Prometheus' PromQL queries per minute; selfQPM the running
	// controller's own count per minute (-1 if unknown).
	qpm, selfQPM float64
	// cpu is the CPU seconds of the running processes, kcmCPU those of
	// kube-controller-manager.
	cpu, kcmCPU float64
}

// idleWindow pauses (SIGSTOP) the processes paused, lets the processes run
// run for length, and measures the window. self, if not nil, reads the
// running controller's own query counter.
func idleWindow(ctx context.Context, promURL string, run, paused []int, kcm int, length time.Duration,
	self func(context.Context) (float64, error)) (w window, err error) {
	if err := signalAll(paused, syscall.SIGSTOP); err != nil {
		return w, err
	}
	defer func() { err = errors.Join(err, signalAll(paused, syscall.SIGCONT)) }()
	// Let queries in flight when the others stopped finish.
	if len(paused) > 0 {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return w, err
		}
	}
	q0, err := promQueries(ctx, promURL)
	if err != nil {
		return w, err
	}
	s0, selfErr := -1.0, error(nil)
	if self != nil {
		s0, selfErr = self(ctx)
	}
	c0, err := sumCPU(run)
	if err != nil {
		return w, err
	}
	k0, _ := cpuSeconds(kcm)
	t0 := time.Now()
	if err := sleep(ctx, length); err != nil {
		return w, err
	}
	q1, err := promQueries(ctx, promURL)
	if err != nil {
		return w, err
	}
	elapsed := time.Since(t0).Minutes()
	c1, err := sumCPU(run)
	if err != nil {
		return w, err
	}
	k1, _ := cpuSeconds(kcm)
	w = window{qpm: (q1 - q0) / elapsed, selfQPM: -1, cpu: c1 - c0, kcmCPU: k1 - k0}
	if self != nil && selfErr == nil {
		if s1, err := self(ctx); err == nil {
			w.selfQPM = (s1 - s0) / elapsed
		}
	}
	return w, nil
}

// selfCount sums a counter of a controller's /metrics.
func selfCount(ctx context.Context, url, name string) (float64, error) {
	mfs, err := scrape(ctx, url+"/metrics")
	if err != nil {
		return 0, err
	}
	v, _ := sumMetric(mfs, name, nil)
	return v, nil
}

// kedaLoopLag returns the largest and the mean of KEDA's
// keda_internal_scale_loop_latency_seconds (-1, -1 if unknown).
func kedaLoopLag(ctx context.Context, url string) (maxLag, meanLag float64) {
	mfs, err := scrape(ctx, url+"/metrics")
	if err != nil {
		return -1, -1
	}
	mf, ok := mfs["keda_internal_scale_loop_latency_seconds"]
	if !ok || len(mf.GetMetric()) == 0 {
		return -1, -1
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		v := m.GetGauge().GetValue()
		sum += v
		maxLag = max(maxLag, v)
	}
	return maxLag, sum / float64(len(mf.GetMetric()))
}

func sumCPU(pids []int) (float64, error) {
	sum := 0.0
	for _, pid := range pids {
		c, err := cpuSeconds(pid)
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Kinds of trial.
const (
	kindActivation = "activation"
	kindBurst      = "burst"
)

// trial is one measured reaction.
type trial struct {
	set  fnSet
	kind string
	fn   string // name
	key  string // function_name
	// start is when the evidence appeared: the jobs were queued
	// (activation) or the emulator answered its first 429s (burst).
	start time.Time
	// promSeen is the timestamp of the first sample in Prometheus that
	// shows it (zero if not found).
	promSeen time.Time
	// scaled is when the Deployment's spec.replicas was seen going up
	// (to >= 1 for an activation, above its replicas for a burst); ready
	// when a replica became Ready (activation).
	scaled, ready time.Time
	err           error
}

type trials struct {
	cfg  config
	em   *emulator.Emulator
	rec  *recorder
	prom *testenv.Env
	mu   sync.Mutex
	rng  *rand.Rand
}

func (t *trials) gap() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg.GapMin + time.Duration(t.rng.Int64N(int64(t.cfg.GapMax-t.cfg.GapMin)+1))
}

// run runs cfg.Trials activations and bursts for each set: four streams
// (set × kind) at once, each starting its trials after random pauses
// without waiting for the previous ones, each trial on a function of its
// own (its controller's cooldowns then never matter). It returns once
// every trial has ended.
func (t *trials) run(ctx context.Context, sets []fnSet) []*trial {
	var mu sync.Mutex
	var out []*trial
	var wg sync.WaitGroup
	for _, s := range sets {
		for _, kind := range []string{kindActivation, kindBurst} {
			idx := s.indices(kind == kindBurst)
			count := min(t.cfg.Trials, len(idx))
			wg.Go(func() {
				var twg sync.WaitGroup
				for i := range count {
					if sleep(ctx, t.gap()) != nil {
						break
					}
					x := &trial{set: s, kind: kind, fn: s.name(idx[i]), key: s.key(idx[i])}
					twg.Go(func() {
						t.one(ctx, x)
						t.cfg.Logf("  %s %s %s: %s", s.ctl, kind, x.fn, x.summary())
						mu.Lock()
						out = append(out, x)
						mu.Unlock()
					})
				}
				twg.Wait()
			})
		}
	}
	wg.Wait()
	// Where the evidence landed in Prometheus, asked once every trial is
	// over (these queries come after the idle windows).
	for _, x := range out {
		if x.err == nil {
			x.promSeen = t.promEvidence(ctx, x)
		}
	}
	return out
}

func (x *trial) summary() string {
	if x.err != nil {
		return "FAILED: " + x.err.Error()
	}
	if x.kind == kindActivation {
		return fmt.Sprintf("replicas >= 1 after %s, Ready after %s", x.scaled.Sub(x.start).Round(10*time.Millisecond), x.ready.Sub(x.start).Round(10*time.Millisecond))
	}
	return fmt.Sprintf("scale patch %s after the first 429s", x.scaled.Sub(x.start).Round(10*time.Millisecond))
}

// one runs a trial.
func (t *trials) one(ctx context.Context, x *trial) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.TrialTimeout)
	defer cancel()
	ns, name := x.set.namespace, x.fn
	switch x.kind {
	case kindActivation:
		x.start = time.Now()
		if x.err = t.em.Enqueue(x.key, activationJobs); x.err != nil {
			return
		}
		if x.scaled, x.err = t.rec.waitFor(ctx, ns, name, x.start, func(e replicaEvent) bool { return e.spec >= 1 }); x.err != nil {
			x.err = fmt.Errorf("no replica within %s: %w", t.cfg.TrialTimeout, x.err)
			return
		}
		if x.ready, x.err = t.rec.waitFor(ctx, ns, name, x.start, func(e replicaEvent) bool { return e.ready >= 1 }); x.err != nil {
			x.err = fmt.Errorf("no Ready replica within %s: %w", t.cfg.TrialTimeout, x.err)
		}
	case kindBurst:
		spec0, _, ok := t.rec.current(ns, name)
		if !ok {
			spec0 = 1
		}
		before, err := t.em.FunctionState(x.key)
		if err != nil {
			x.err = err
			return
		}
		if x.err = t.em.SetRate(x.key, burstFactor*syncCapacity); x.err != nil {
			return
		}
		defer func() { _ = t.em.ResetRate(x.key) }()
		// The first 429s: the first tick that counts some.
		for {
			st, err := t.em.FunctionState(x.key)
			if err != nil {
				x.err = err
				return
			}
			if st.Rejected > before.Rejected {
				x.start = time.Now()
				break
			}
			if sleep(ctx, 20*time.Millisecond) != nil {
				x.err = fmt.Errorf("no 429s within %s", t.cfg.TrialTimeout)
				return
			}
		}
		if x.scaled, x.err = t.rec.waitFor(ctx, ns, name, x.start, func(e replicaEvent) bool { return e.spec > spec0 }); x.err != nil {
			x.err = fmt.Errorf("no scale-up within %s of the first 429s: %w", t.cfg.TrialTimeout, x.err)
		}
	}
}

// promEvidence returns the timestamp of the first sample, at or after the
// trial's start less a scrape interval, that shows the trial's evidence in
// Prometheus: queued jobs above zero, or the 429 counter above its value
// before the trial.
func (t *trials) promEvidence(ctx context.Context, x *trial) time.Time {
	sel := fmt.Sprintf(`queue_worker_pending_messages{function_name=%q}`, x.key)
	if x.kind == kindBurst {
		sel = fmt.Sprintf(`gateway_function_invocation_total{function_name=%q,code="429"}`, x.key)
	}
	from := x.start.Add(-5 * time.Second)
	now := time.Now()
	window := model.Duration(now.Sub(from).Round(time.Second) + time.Second)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, _, _, err := t.prom.PrometheusAPI().Query(ctx, fmt.Sprintf("%s[%s]", sel, window), now)
	if err != nil {
		return time.Time{}
	}
	m, ok := v.(model.Matrix)
	if !ok || len(m) == 0 {
		return time.Time{}
	}
	base := 0.0
	for _, s := range m[0].Values {
		ts := s.Timestamp.Time()
		if x.kind == kindBurst && ts.Before(x.start.Add(-time.Second)) {
			base = float64(s.Value)
			continue
		}
		if float64(s.Value) > base && !ts.Before(x.start.Add(-time.Second)) {
			return ts
		}
	}
	return time.Time{}
}

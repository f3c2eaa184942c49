// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Command benchvskeda runs tierscaler and KEDA side by side on one local
// cluster and prints what each costs and how fast each reacts. `make
// bench-vs-keda` runs it through hack/bench-vs-keda.sh.
//
// For each size N (default 100 and 1,000), on a fresh local cluster
// (hack/testenv: kube-apiserver, scheduler, controller-manager, kwok nodes,
// Prometheus scraping every second with the chart's rule files, and
// Alertmanager):
//
//   - the emulator (hack/emulator) serves the OpenFaaS gateway and
//     queue-worker metrics of 2N functions: N for KEDA (keda-fn-0001... in
//     namespace openfaas-fn-keda) and N for tierscaler (ts-fn-0001... in
//     openfaas-fn). Every third function is a sync function at one replica,
//     the others async functions at zero; all idle.
//   - KEDA v2.21.0 (hack/keda.sh builds it): the operator and the metrics
//     adapter run on the host, out of cluster; the adapter serves
//     external.metrics.k8s.io to the HPAs through the apiserver's
//     aggregation layer. One ScaledObject per function, one Prometheus
//     trigger each, KEDA's defaults otherwise (see scaledObject).
//   - tierscaler (go build ./cmd/tierscaler) runs with the default policy
//     but for its URLs and namespace; Alertmanager routes the chart's
//     activation alert to its webhook, as the rule file documents.
//
// Then it measures, for each controller:
//
//   - Prometheus queries per minute while everything is idle, from
//     Prometheus' own prometheus_http_requests_total (handlers
//     /api/v1/query and /api/v1/query_range), over a window of --idle:
//     tierscaler's before KEDA starts, KEDA's with tierscaler paused
//     (SIGSTOP), after a baseline window with neither;
//   - activation: --trials async functions at zero get queued jobs at
//     random moments; the time to spec.replicas >= 1 and to a Ready
//     replica;
//   - burst: --trials sync functions at one replica are offered 2.5 times
//     their capacity; the time from the emulator's first 429s to the scale
//     patch (spec.replicas going up);
//   - the CPU seconds of its processes (/proc/<pid>/stat): in its idle
//     window, during the trials, and from its start to their end.
//
// It prints one Markdown table per size, with the ratios KEDA/tierscaler,
// on stdout; progress goes to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "benchvskeda:", err)
		os.Exit(1)
	}
}

// defaults of the full benchmark.
func defaultConfig() config {
	return config{
		Sizes:        []int{100, 1000},
		Trials:       10,
		Idle:         2 * time.Minute,
		Settle:       30 * time.Second,
		GapMin:       5 * time.Second,
		GapMax:       15 * time.Second,
		TrialTimeout: 5 * time.Minute,
		Seed:         1,
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("benchvskeda", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "100,1000", "`list` of function counts per controller, comma-separated")
	fs.IntVar(&cfg.Trials, "trials", cfg.Trials, "activation and burst trials per controller and size")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "length of each controller's idle window")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "wait between both controllers being ready and the first idle window")
	fs.DurationVar(&cfg.GapMin, "gap-min", cfg.GapMin, "shortest random pause before a trial")
	fs.DurationVar(&cfg.GapMax, "gap-max", cfg.GapMax, "longest random pause before a trial")
	fs.DurationVar(&cfg.TrialTimeout, "trial-timeout", cfg.TrialTimeout, "time after which a trial counts as failed")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the random pauses")
	fs.StringVar(&cfg.KedaDir, "keda-dir", "", "directory hack/keda.sh built KEDA in (default: run hack/keda.sh, which builds it if missing)")
	fs.StringVar(&cfg.Tierscaler, "tierscaler", "", "tierscaler binary (default: go build ./cmd/tierscaler)")
	fs.BoolVar(&cfg.KeepDir, "keep", false, "keep each environment's directory and logs")
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Sizes = nil
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 9999 {
			return fmt.Errorf("--sizes: %q is not a count between 1 and 9999", s)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	cfg.Logf = func(format string, a ...any) {
		if !*quiet {
			fmt.Fprintf(stderr, "%s %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, a...))
		}
	}
	if err := cfg.check(); err != nil {
		return err
	}
	results, err := bench(ctx, cfg)
	for _, r := range results {
		writeTable(stdout, r)
	}
	return err
}

// check validates the settings.
func (c config) check() error {
	switch {
	case c.Trials < 1:
		return fmt.Errorf("--trials %d: want at least 1", c.Trials)
	case c.Idle < time.Second:
		return fmt.Errorf("--idle %s: want at least 1s", c.Idle)
	case c.GapMin < 0 || c.GapMax < c.GapMin:
		return fmt.Errorf("--gap-min %s, --gap-max %s: want 0 <= min <= max", c.GapMin, c.GapMax)
	case c.TrialTimeout < time.Second:
		return fmt.Errorf("--trial-timeout %s: want at least 1s", c.TrialTimeout)
	}
	return nil
}

// bench finds or builds the binaries and runs every size. It returns the
// sizes that completed, and the first error.
func bench(ctx context.Context, cfg config) ([]*sizeResult, error) {
	// controller-runtime's clients (testenv's) log through its global
	// logger, which complains on stderr when a program never sets it.
	ctrllog.SetLogger(logr.Discard())
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if cfg.KedaDir == "" {
		start := time.Now()
		if cfg.KedaDir, err = kedaDir(ctx, root); err != nil {
			return nil, err
		}
		cfg.Logf("KEDA in %s (%s)", cfg.KedaDir, time.Since(start).Round(10*time.Millisecond))
	}
	if cfg.Tierscaler == "" {
		// Named like the environments' directories, so that
		// hack/check-leftovers.sh would list a leftover.
		dir, err := os.MkdirTemp("", testenv.TempDirPrefix+"benchvskeda-bin-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Tierscaler = filepath.Join(dir, "tierscaler")
		start := time.Now()
		if err := buildTierscaler(ctx, root, cfg.Tierscaler); err != nil {
			return nil, err
		}
		cfg.Logf("built tierscaler in %s", time.Since(start).Round(10*time.Millisecond))
	}
	var out []*sizeResult
	for _, n := range cfg.Sizes {
		r, err := runSize(ctx, cfg, n)
		if err != nil {
			return out, fmt.Errorf("N=%d: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// kedaDir runs hack/keda.sh, which builds KEDA if it is not cached, and
// returns the directory it prints.
func kedaDir(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "keda.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/keda.sh: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("hack/keda.sh printed no directory")
	}
	return dir, nil
}

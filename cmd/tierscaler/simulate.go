// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/simulate"
	"github.com/tierscaler/tierscaler/workload"
)

// simulateCmd runs a scenario, or a backtest of recorded gateway metrics,
// in virtual time under each strategy and writes the report.
func simulateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", stderr)
	scenarioRef := fs.String("scenario", "", "scenario file or built-in name ("+strings.Join(workload.BuiltinNames(), ", ")+"); with --from-prometheus, the functions' metadata (optional)")
	policyFile := fs.String("policy", "", "tierscaler policy file (default: the default policy)")
	outDir := fs.String("out", "", "output directory (default out/simulate-<scenario>)")
	seed := fs.Int64("seed", 1, "seed of the workload's random arrivals; the same seed gives the same report")
	days := fs.Float64("days", 0, "simulated days (default: the scenario's duration)")
	strategies := fs.String("strategies", strings.Join(simulate.Strategies, ","), "strategies to compare, comma-separated")
	step := fs.Duration("model-step", simulate.DefaultStep, "model step and simulated scrape interval")
	fromProm := fs.String("from-prometheus", "", "backtest: Prometheus URL to read recorded gateway metrics from")
	rng := fs.Duration("range", 24*time.Hour, "backtest: length of the recorded range")
	traceStep := fs.Duration("step", time.Minute, "backtest: step of the recorded trace and its rate window (at least twice the scrape interval)")
	endFlag := fs.String("end", "", "backtest: end of the recorded range, RFC 3339 (default: now)")
	quiet := fs.Bool("q", false, "do not print the summary")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tierscaler simulate --scenario FILE|builtin [flags]")
		fmt.Fprintln(stderr, "       tierscaler simulate --from-prometheus URL --range 24h [--step 1m] [--scenario FILE] [flags]")
		fmt.Fprintln(stderr, "\nSimulates, in virtual time, static provisioning, idle-only scale-to-zero and tierscaler (the real")
		fmt.Fprintln(stderr, "controller) on the same workload, and writes summary.txt, report.json and report.html.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *scenarioRef == "" && *fromProm == "" {
		return fmt.Errorf("%w: --scenario is required (a file or one of: %s), or --from-prometheus for a backtest", errUsage, strings.Join(workload.BuiltinNames(), ", "))
	}
	if *days < 0 {
		return fmt.Errorf("%w: --days %v: want a positive number", errUsage, *days)
	}

	pol := policy.Default()
	if *policyFile != "" {
		p, err := policy.Load(*policyFile)
		if err != nil {
			return err
		}
		pol = p
	}
	var scen *workload.Scenario
	if *scenarioRef != "" {
		s, err := workload.Resolve(*scenarioRef)
		if err != nil {
			return err
		}
		scen = s
	}
	cfg := simulate.Config{Scenario: scen, Policy: pol, Seed: *seed, Step: *step,
		Strategies: splitList(*strategies)}
	var notes []string
	if *fromProm != "" {
		var end time.Time
		if *endFlag != "" {
			t, err := time.Parse(time.RFC3339, *endFlag)
			if err != nil {
				return fmt.Errorf("%w: --end %q: want an RFC 3339 time such as 2026-03-02T08:00:00Z", errUsage, *endFlag)
			}
			end = t
		}
		tr, err := simulate.ReadTrace(ctx, simulate.BacktestOptions{URL: *fromProm, Range: *rng, Step: *traceStep, End: end})
		if err != nil {
			return err
		}
		s, n, err := tr.Scenario(scen)
		if err != nil {
			return err
		}
		cfg.Scenario, cfg.Load, notes = s, tr.Load(s), n
	}
	if *days > 0 {
		cfg.Duration = time.Duration(*days * 24 * float64(time.Hour))
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join("out", "simulate-"+cfg.Scenario.Name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}

	// A simulation is a batch job with a small heap: trading memory for
	// fewer collections makes it markedly faster.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	began := time.Now()
	rep, err := simulate.Run(ctx, cfg)
	if err != nil {
		return err
	}
	wall := time.Since(began)
	rep.Notes = append(rep.Notes, notes...)
	paths, err := rep.WriteFiles(dir)
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprint(stdout, rep.Summary())
	}
	fmt.Fprintf(stdout, "\nsimulated %.3g days in %s (%.3g simulated days per second); wrote %s\n",
		rep.Days, wall.Round(time.Millisecond), rep.Days/wall.Seconds(), strings.Join(paths, ", "))
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

func planCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	policyFile := fs.String("policy", "/etc/tierscaler/policy.yaml", "policy file")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	tokenFile := fs.String("token-file", "", "bearer token file to authenticate with instead of the kubeconfig's credentials")
	output := fs.String("o", "table", "output: table or json")
	allPods := fs.Bool("all-pods", true, "read Pods in every namespace (see run)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	stateNamespace := fs.String("state-namespace", "", "namespace of tierscaler's state ConfigMap, read for the last runs (default: $POD_NAMESPACE, else openfaas)")
	stateName := fs.String("state-name", scaler.DefaultStateName, "name of tierscaler's state ConfigMap")
	promURL := fs.String("prometheus-url", "", "query this Prometheus instead of the policy's prometheus.url (for example through a port-forward from a workstation)")
	saveSnapshot := fs.String("save-snapshot", "", "also write what was gathered (snapshot, policy, clock) to this file, to replay with --snapshot or attach to a bug report")
	snapshotFile := fs.String("snapshot", "", "decide from a snapshot file written by --save-snapshot, offline: no cluster, no Prometheus")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: -o %q: want table or json", errUsage, *output)
	}
	if *snapshotFile != "" {
		return replayPlan(*snapshotFile, *output, stdout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if _, err := newLogger("text", "error"); err != nil {
		return err
	}
	pol, err := policy.Load(*policyFile)
	if err != nil {
		return fmt.Errorf("policy %s: %w", *policyFile, err)
	}
	cfg, err := restConfig(*kubeconfig, *tokenFile)
	if err != nil {
		return err
	}
	c, err := cache.New(cfg, scaler.CacheOptions(pol.Namespaces, *allPods))
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	direct, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("the informer caches did not sync within %s: is the API server reachable, and may this identity list deployments, pods, nodes and resourcequotas?", *timeout)
	}
	querier, err := scaler.NewPolicyQuerier(pol, *promURL)
	if err != nil {
		return err
	}
	ctl, err := scaler.New(scaler.Options{
		Policy: pol, Querier: querier, DryRun: true, Log: logr.Discard(),
		Metrics: scaler.NewMetrics(prometheus.NewRegistry()),
		Cluster: &scaler.KubeCluster{Cached: c, Direct: direct, Namespaces: pol.Namespaces},
		// Read only: a dry run never writes its state.
		State: &scaler.ConfigMapStore{Client: direct, Namespace: envOr(*stateNamespace, "POD_NAMESPACE", "openfaas"), Name: *stateName},
	})
	if err != nil {
		return err
	}
	res, err := ctl.Plan(ctx)
	if err != nil {
		return err
	}
	if *saveSnapshot != "" {
		data, err := policy.EncodeSnapshot(res.Snapshot, pol, res.Plan.Time)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*saveSnapshot, data, 0o600); err != nil {
			return fmt.Errorf("--save-snapshot: %w", err)
		}
	}
	return writePlan(res.Plan, *output, stdout)
}

// replayPlan decides from a saved snapshot file, offline.
func replayPlan(path, output string, stdout io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--snapshot: %w", err)
	}
	s, p, now, err := policy.DecodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("--snapshot %s: %w", path, err)
	}
	plan := policy.Decide(s, p, now)
	plan.Actions = scaler.DropNoops(plan.Actions)
	return writePlan(plan, output, stdout)
}

// writePlan prints a plan as JSON or as tables.
func writePlan(plan *policy.Plan, output string, stdout io.Writer) error {
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	return printPlan(stdout, plan)
}

// printPlan renders a plan as tables.
func printPlan(w io.Writer, p *policy.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if !p.MetricsAvailable {
		fmt.Fprintln(tw, "Metrics are unavailable: failing static (no scale-down, zeroing or eviction).")
	}
	if len(p.Actions) == 0 {
		fmt.Fprintln(tw, "No actions.")
	} else {
		fmt.Fprintln(tw, "FUNCTION\tTIER\tFROM → TO\tREASON\tEXPLANATION")
		for _, a := range p.Actions {
			reason := string(a.Reason)
			if a.Claim != "" {
				reason += " (for " + a.Claim + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d → %d\t%s\t%s\n", a.Key(), a.Tier, a.From, a.To, reason, a.Explanation)
		}
	}
	if len(p.Shortfalls) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "SHORTFALL\tTIER\tREASON\tMISSING\tMESSAGE")
		for _, s := range p.Shortfalls {
			fn := s.Key()
			if s.Function == "" {
				fn = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", fn, orDash(string(s.Tier)), s.Reason, missing(s.Missing), s.Message)
		}
	}
	if len(p.Reservations) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "RESERVATION\tFIRE\tPREWARM\tPODS\tWHERE")
		for _, r := range p.Reservations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Key(), r.Fire.UTC().Format(time.RFC3339), r.Prewarm.UTC().Format(time.RFC3339),
				scaler.ReservedPods(r), scaler.ReservedWhere(r))
		}
	}
	if len(p.Checks) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "READINESS CHECK\tKIND\tDEADLINE")
		for _, c := range p.Checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Key(), c.Kind, c.Deadline.UTC().Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

func missing(r policy.Resources) string {
	var parts []string
	if r.MilliCPU > 0 {
		parts = append(parts, fmt.Sprintf("cpu=%dm", r.MilliCPU))
	}
	if r.Memory > 0 {
		parts = append(parts, fmt.Sprintf("memory=%dMi", r.Memory>>20))
	}
	if r.Pods > 0 {
		parts = append(parts, fmt.Sprintf("pods=%d", r.Pods))
	}
	return orDash(strings.Join(parts, " "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// envOr returns v, else the environment variable env, else def.
func envOr(v, env, def string) string {
	if v != "" {
		return v
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return def
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Command emulator plays the OpenFaaS gateway, watchdogs, queue-worker and
// cadvisor for a workload scenario on a cluster whose pods run no
// containers (kwok), and serves their metrics for Prometheus to scrape.
//
//	emulator --scenario mixed-small --create [--kubeconfig FILE] [--listen 127.0.0.1:0] [--tick 1s] [--seed 1]
//
// It prints one line on stdout once it serves, for scripts to read:
//
//	listening on http://127.0.0.1:PORT
//
// Logs go to stderr. --no-cluster runs without Kubernetes: every function
// has its initial replicas, Ready. See package
// github.com/tierscaler/tierscaler/hack/emulator for the metrics and the
// control API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

// run is the whole program; it returns when ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		kubeconfig = fs.String("kubeconfig", "", "kubeconfig `file` (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
		scenario   = fs.String("scenario", "", "scenario `file` or built-in name ("+strings.Join(workload.BuiltinNames(), ", ")+")")
		listen     = fs.String("listen", "127.0.0.1:0", "`address` to serve /metrics and /control on")
		create     = fs.Bool("create", false, "create the scenario's function Deployments that are missing (never changes existing ones)")
		tick       = fs.Duration("tick", emulator.DefaultTick, "model step and metric refresh `period`")
		seed       = fs.Int64("seed", 1, "`seed` of the random job arrivals")
		noCluster  = fs.Bool("no-cluster", false, "run without Kubernetes: every function has its initial replicas, Ready")
		gateways   = fs.Int("gateway-replicas", 1, "gateway `replicas`, each exporting its own series")
		ceProvider = fs.Bool("ce-provider", false, "play the OpenFaaS CE provider: functions at 0 go back to 1, above 5 back to 5")
		fromZero   = fs.Bool("scale-from-zero", false, "play the gateway's scale from zero: an invocation at zero scales the function up and is held")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *scenario == "" {
		return fmt.Errorf("--scenario is required: a file or one of %s", strings.Join(workload.BuiltinNames(), ", "))
	}
	if *tick <= 0 {
		return fmt.Errorf("--tick %s: want a positive duration", *tick)
	}
	if *noCluster && *create {
		return errors.New("--create needs a cluster; drop --no-cluster")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := workload.Resolve(*scenario)
	if err != nil {
		return err
	}

	var src emulator.Source
	if *noCluster {
		st := emulator.NewStaticSource()
		for _, f := range s.Functions {
			if err := st.SetReady(f.Key(), int(*f.InitialReplicas)); err != nil {
				return err
			}
		}
		src = st
	} else {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = *kubeconfig
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return fmt.Errorf("kubeconfig: %w", err)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		if *create {
			created, err := emulator.CreateFunctions(ctx, client, s)
			if err != nil {
				return err
			}
			log.Info("function deployments", "created", created)
		}
		ks, err := emulator.NewKubeSource(ctx, client, emulator.Namespaces(s))
		if err != nil {
			return err
		}
		defer ks.Stop()
		src = ks
	}

	e, err := emulator.New(emulator.Options{Scenario: s, Seed: *seed, Source: src, Tick: *tick, Listen: *listen, Logger: log,
		GatewayReplicas: *gateways, CEProvider: *ceProvider, ScaleFromZero: *fromZero})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", e.URL())
	<-ctx.Done()
	e.Stop()
	log.Info("emulator stopped")
	return nil
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// restConfig loads a kubeconfig: the --kubeconfig file, else $KUBECONFIG or
// ~/.kube/config, else the in-cluster ServiceAccount. A bearer token file
// (--token-file) replaces the credentials: the end-to-end test runs
// tierscaler as the chart's ServiceAccount that way.
func restConfig(kubeconfig, tokenFile string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
		if cfg, err = rest.InClusterConfig(); err == nil {
			return withToken(cfg, tokenFile), nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "tierscaler"
	cfg.QPS, cfg.Burst = 50, 100
	return withToken(cfg, tokenFile), nil
}

func withToken(cfg *rest.Config, tokenFile string) *rest.Config {
	if tokenFile == "" {
		return cfg
	}
	c := rest.AnonymousClientConfig(cfg)
	c.BearerTokenFile = tokenFile
	c.UserAgent, c.QPS, c.Burst = cfg.UserAgent, cfg.QPS, cfg.Burst
	return c
}

// newLogger returns a structured key/value logger (JSON or text) and makes
// controller-runtime and client-go log through it.
func newLogger(format, level string) (logr.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "info", "":
		lv = slog.LevelInfo
	case "error":
		lv = slog.LevelError
	default:
		return logr.Logger{}, fmt.Errorf("%w: --log-level %q: want debug, info or error", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	case "text", "":
		h = slog.NewTextHandler(os.Stderr, opts)
	default:
		return logr.Logger{}, fmt.Errorf("%w: --log-format %q: want json or text", errUsage, format)
	}
	log := logr.FromSlogHandler(h)
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	return log, nil
}

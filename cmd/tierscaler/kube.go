// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/homedir"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// inClusterConfig is rest.InClusterConfig; tests replace it.
var inClusterConfig = rest.InClusterConfig

// The client's rate limits.
const (
	clientQPS   = 50
	clientBurst = 100
)

// restConfig loads the client configuration: the --kubeconfig file, else
// the files of $KUBECONFIG, else the in-cluster ServiceAccount, else
// ~/.kube/config. A bearer token file (--token-file) replaces the
// credentials: the end-to-end test runs tierscaler as the chart's
// ServiceAccount that way. Whichever way, the client gets tierscaler's rate
// limits and user agent. An error names the file it tried and how to point
// at another.
func restConfig(kubeconfig, tokenFile string) (*rest.Config, error) {
	cfg, err := loadRESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = userAgent()
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	return withToken(cfg, tokenFile), nil
}

// howToPoint ends the errors of loadRESTConfig.
const howToPoint = "point tierscaler at a kubeconfig with --kubeconfig FILE or KUBECONFIG=FILE"

func loadRESTConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	var source string // where the configuration comes from, for errors
	switch {
	case kubeconfig != "":
		rules.ExplicitPath = kubeconfig
		source = fmt.Sprintf("kubeconfig %s (--kubeconfig)", kubeconfig)
		if _, err := os.Stat(kubeconfig); err != nil {
			return nil, fmt.Errorf("%s: %w; %s", source, err, howToPoint)
		}
	case env != "":
		source = fmt.Sprintf("kubeconfig %s (KUBECONFIG)", env)
		// client-go skips the listed files that do not exist; say so when
		// none does.
		found := false
		for _, f := range filepath.SplitList(env) {
			if _, err := os.Stat(f); err == nil {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s: no such file; %s", source, howToPoint)
		}
	default:
		cfg, inErr := inClusterConfig()
		if inErr == nil {
			return cfg, nil
		}
		home := filepath.Join(homedir.HomeDir(), clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
		if _, err := os.Stat(home); err != nil {
			why := "not running in a cluster"
			if !errors.Is(inErr, rest.ErrNotInCluster) {
				why = "the in-cluster configuration failed: " + inErr.Error()
			}
			return nil, fmt.Errorf("no Kubernetes configuration: %s, and no kubeconfig at %s; %s", why, home, howToPoint)
		}
		rules.ExplicitPath = home
		source = fmt.Sprintf("kubeconfig %s (the default)", home)
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		// client-go's empty-configuration error suggests KUBERNETES_MASTER,
		// which tierscaler does not read.
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("%s: no current context with a cluster; %s", source, howToPoint)
		}
		return nil, fmt.Errorf("%s: %w; %s", source, err, howToPoint)
	}
	return cfg, nil
}

// userAgent is tierscaler's, in client-go's format: the API server's audit
// log and metrics then tell its requests apart.
func userAgent() string {
	v := currentVersion()
	return fmt.Sprintf("tierscaler/%s (%s) %s", v.Version, v.Platform, shortCommit(v.Commit))
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
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

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults applied by Start to zero-valued Options fields.
const (
	DefaultNodes          = 4
	DefaultNodeCPU        = "4"
	DefaultNodeMemory     = "8Gi"
	DefaultNodePods       = 110
	DefaultNodePool       = "kwok-node"
	DefaultScrapeInterval = time.Second
	DefaultStartTimeout   = 2 * time.Minute
	DefaultStopGrace      = 5 * time.Second

	// FunctionNamespace is the namespace OpenFaaS runs functions in;
	// Start creates it.
	FunctionNamespace = "openfaas-fn"

	// TempDirPrefix prefixes the name of the directories Start creates;
	// hack/check-leftovers.sh looks for processes whose command line holds it.
	TempDirPrefix = "tierscaler-testenv-"
)

// DefaultAlertmanagerConfig is the Alertmanager configuration used when
// Options.AlertmanagerConfig is empty: every alert goes to a receiver that
// drops it.
const DefaultAlertmanagerConfig = `route:
  receiver: "null"
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
`

// Options configure an environment. The zero value is a 4-node cluster
// (4 CPU, 8Gi, 110 pods each) in a fresh temporary directory, with a 1s
// Prometheus scrape and evaluation interval.
type Options struct {
	// Nodes is the number of fake nodes of the default pool (DefaultNodePool):
	// 0 means DefaultNodes, a negative number none.
	Nodes int
	// NodeCPU, NodeMemory and NodePods are the capacity and allocatable of
	// each fake node, as Kubernetes quantities ("4", "8Gi"). NodePods also
	// applies to nodes added later with AddNodes.
	NodeCPU, NodeMemory string
	NodePods            int

	// ScrapeInterval is Prometheus' global scrape interval (default 1s),
	// EvaluationInterval its rule evaluation interval (default ScrapeInterval).
	ScrapeInterval, EvaluationInterval time.Duration
	// RuleFiles are Prometheus rule files, made absolute.
	RuleFiles []string
	// PrometheusFlags are extra command-line flags for Prometheus.
	PrometheusFlags []string
	// AlertmanagerConfig is the whole Alertmanager configuration as YAML
	// (route and receivers); empty means DefaultAlertmanagerConfig.
	AlertmanagerConfig string

	// Dir holds the environment's data, configuration and logs. Empty
	// means a new directory from os.MkdirTemp("", TempDirPrefix), removed
	// by Stop unless KeepDir is set.
	Dir string
	// KeepDir keeps a temporary Dir after Stop.
	KeepDir bool
	// Detach starts the processes in their own sessions so that they
	// survive the calling program (hack/cluster). Without it they are
	// killed when the caller dies.
	Detach bool

	// StartTimeout bounds the wait for each component to become ready and
	// for each later operation that waits (nodes, targets); default 2m.
	StartTimeout time.Duration
	// StopGrace is how long a process has to exit after SIGTERM before it
	// gets SIGKILL; default 5s.
	StopGrace time.Duration
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

// withDefaults returns o with defaults filled in, or an error for a
// malformed value.
func (o Options) withDefaults() (Options, error) {
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.NodeCPU == "" {
		o.NodeCPU = DefaultNodeCPU
	}
	if o.NodeMemory == "" {
		o.NodeMemory = DefaultNodeMemory
	}
	if o.NodePods == 0 {
		o.NodePods = DefaultNodePods
	}
	for field, q := range map[string]string{"NodeCPU": o.NodeCPU, "NodeMemory": o.NodeMemory} {
		if _, err := resource.ParseQuantity(q); err != nil {
			return o, fmt.Errorf("testenv: Options.%s %q: %w", field, q, err)
		}
	}
	if o.NodePods < 0 {
		return o, fmt.Errorf("testenv: Options.NodePods %d is negative", o.NodePods)
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = DefaultScrapeInterval
	}
	if o.EvaluationInterval == 0 {
		o.EvaluationInterval = o.ScrapeInterval
	}
	if o.ScrapeInterval < 0 || o.EvaluationInterval < 0 {
		return o, fmt.Errorf("testenv: negative Prometheus interval")
	}
	rules := make([]string, len(o.RuleFiles))
	for i, f := range o.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return o, fmt.Errorf("testenv: rule file %q: %w", f, err)
		}
		rules[i] = abs
	}
	o.RuleFiles = rules
	if o.AlertmanagerConfig == "" {
		o.AlertmanagerConfig = DefaultAlertmanagerConfig
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

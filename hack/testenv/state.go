// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// StateFile is the name of the file, in an environment's directory, that
// records its processes, ports and URLs while it runs.
const StateFile = "state.json"

// ErrRunning is returned by Start when an environment already runs in the
// directory given as Options.Dir.
var ErrRunning = errors.New("an environment already runs in this directory")

// State describes a running environment. Start writes it to
// <Dir>/state.json and keeps it current; ReadState reads it back.
type State struct {
	Dir             string              `json:"dir"`
	Kubeconfig      string              `json:"kubeconfig"`
	APIServerURL    string              `json:"apiServerURL"`
	PrometheusURL   string              `json:"prometheusURL"`
	AlertmanagerURL string              `json:"alertmanagerURL"`
	Detached        bool                `json:"detached"`
	StartedAt       time.Time           `json:"startedAt"`
	Ports           map[string]int      `json:"ports"`
	Processes       []ProcessState      `json:"processes"`
	ScrapeTargets   map[string][]string `json:"scrapeTargets,omitempty"`
	// Options that matter after Start (scrape configuration, waits).
	ScrapeInterval     time.Duration `json:"scrapeInterval"`
	EvaluationInterval time.Duration `json:"evaluationInterval"`
	RuleFiles          []string      `json:"ruleFiles,omitempty"`
	NodePods           int           `json:"nodePods"`
}

// ProcessState describes one process. Each process leads its own process
// group, whose ID is its PID.
type ProcessState struct {
	Name string   `json:"name"`
	PID  int      `json:"pid"`
	Log  string   `json:"log"`
	Args []string `json:"args"`
}

// Alive reports whether the process still runs. It checks that the PID
// still belongs to the environment in dir, not to a process that reused it.
func (p ProcessState) Alive(dir string) bool { return processAlive(p.PID, dir) }

// State returns a snapshot of the environment's state.
func (e *Env) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := State{
		Dir:                e.Dir,
		Kubeconfig:         e.Kubeconfig,
		APIServerURL:       e.APIServerURL,
		PrometheusURL:      e.PrometheusURL,
		AlertmanagerURL:    e.AlertmanagerURL,
		Detached:           e.detached,
		StartedAt:          e.started,
		Ports:              make(map[string]int, len(e.ports)),
		ScrapeTargets:      make(map[string][]string, len(e.scrape)),
		ScrapeInterval:     e.opts.ScrapeInterval,
		EvaluationInterval: e.opts.EvaluationInterval,
		RuleFiles:          e.opts.RuleFiles,
		NodePods:           e.opts.NodePods,
	}
	for k, v := range e.ports {
		s.Ports[k] = v
	}
	for k, v := range e.scrape {
		s.ScrapeTargets[k] = slices.Clone(v)
	}
	for _, p := range e.procs {
		s.Processes = append(s.Processes, ProcessState{Name: p.name, PID: p.pid, Log: p.log, Args: p.argv})
	}
	sort.Slice(s.Processes, func(i, j int) bool { return s.Processes[i].Name < s.Processes[j].Name })
	return s
}

func (e *Env) saveState() error {
	// Serialized, so that the last snapshot taken is the last written.
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	s := e.State()
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(e.Dir, StateFile), data, 0o644); err != nil {
		return fmt.Errorf("testenv: writing state: %w", err)
	}
	return nil
}

// ReadState reads the state file of the environment in dir. The error
// wraps os.ErrNotExist when there is none.
func ReadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("testenv: %s: %w", filepath.Join(dir, StateFile), err)
	}
	return &s, nil
}

func (s *State) anyAlive() bool {
	for _, p := range s.Processes {
		if p.Alive(s.Dir) {
			return true
		}
	}
	return false
}

// Attach returns the environment that runs in dir, as recorded in its
// state file, e.g. one that `hack/cluster up` started in an earlier
// program. Its processes are not children of the caller: Stop signals
// their process groups and polls until they are gone, and StartPrometheus
// or StartAlertmanager start detached replacements.
func Attach(dir string) (*Env, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s, err := ReadState(dir)
	if err != nil {
		return nil, err
	}
	opts, err := Options{
		Dir:                dir,
		Detach:             true,
		ScrapeInterval:     s.ScrapeInterval,
		EvaluationInterval: s.EvaluationInterval,
		RuleFiles:          s.RuleFiles,
		NodePods:           s.NodePods,
	}.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Env{
		Dir:             dir,
		Kubeconfig:      s.Kubeconfig,
		APIServerURL:    s.APIServerURL,
		PrometheusURL:   s.PrometheusURL,
		AlertmanagerURL: s.AlertmanagerURL,
		opts:            opts,
		detached:        true,
		started:         s.StartedAt,
		ports:           s.Ports,
		procs:           map[string]*proc{},
		scrape:          s.ScrapeTargets,
	}
	if e.ports == nil {
		e.ports = map[string]int{}
	}
	if e.scrape == nil {
		e.scrape = map[string][]string{}
	}
	if am, err := os.ReadFile(filepath.Join(dir, "alertmanager.yml")); err == nil {
		e.amConfig = string(am)
	}
	for _, p := range s.Processes {
		e.procs[p.Name] = &proc{name: p.Name, pid: p.PID, log: p.Log, argv: p.Args, owner: dir}
	}
	// Restarting a component needs the binaries; stopping does not.
	if bins, err := findBinaries(); err == nil {
		e.bins = bins
	}
	if e.promAPI, err = newPromAPI(e.PrometheusURL); err != nil {
		return nil, err
	}
	if err := e.attachClients(); err != nil {
		return nil, err
	}
	return e, nil
}

// attachClients rebuilds the credentials and clients from the files of a
// running environment.
func (e *Env) attachClients() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	e.RESTConfig = cfg
	caPEM, err := os.ReadFile(filepath.Join(e.Dir, "pki", "ca.crt"))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		return fmt.Errorf("testenv: admin credentials in %s: %w", e.Kubeconfig, err)
	}
	e.pki = &pki{caPEM: caPEM}
	e.httpc = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		}},
	}
	return e.newClients()
}

// ProcessStatus is a process of the environment and whether it runs.
type ProcessStatus struct {
	ProcessState
	Alive bool
}

// Processes returns the environment's processes, sorted by name, and
// whether each still runs.
func (e *Env) Processes() []ProcessStatus {
	s := e.State()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ProcessStatus, 0, len(s.Processes))
	for _, p := range s.Processes {
		out = append(out, ProcessStatus{ProcessState: p, Alive: e.procs[p.Name].alive()})
	}
	return out
}

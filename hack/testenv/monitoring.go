// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

func (e *Env) prometheus() component {
	return component{
		name:  Prometheus,
		bin:   e.bins.prometheus,
		ports: []string{portPrometheus},
		args: func() []string {
			url := "http://" + hostPort(e.port(portPrometheus))
			api, err := newPromAPI(url)
			if err != nil {
				e.opts.Logf("prometheus: %v", err)
			}
			e.mu.Lock()
			if e.PrometheusURL != url { // only while Start runs
				e.PrometheusURL, e.promAPI = url, api
			}
			e.mu.Unlock()
			if err := e.writePrometheusConfig(); err != nil {
				// The process then fails on its missing configuration,
				// and the error points at the log.
				e.opts.Logf("prometheus: %v", err)
			}
			return append([]string{
				"--config.file=" + filepath.Join(e.Dir, "prometheus.yml"),
				"--storage.tsdb.path=" + filepath.Join(e.Dir, "prometheus-data"),
				"--web.listen-address=" + hostPort(e.port(portPrometheus)),
				"--web.enable-lifecycle",
				"--web.enable-admin-api",
				// Firing alerts are re-sent every evaluation, not every
				// minute, so that a restarted Alertmanager has them again
				// at once.
				"--rules.alert.resend-delay=" + model.Duration(e.opts.EvaluationInterval).String(),
			}, e.opts.PrometheusFlags...)
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "http://"+hostPort(e.port(portPrometheus))+"/-/ready", "")
		},
	}
}

func (e *Env) alertmanager() component {
	return component{
		name:  Alertmanager,
		bin:   e.bins.alertmanager,
		ports: []string{portAlertmanager},
		args: func() []string {
			e.mu.Lock()
			if url := "http://" + hostPort(e.ports[portAlertmanager]); e.AlertmanagerURL != url { // only while Start runs
				e.AlertmanagerURL = url
			}
			cfg := e.amConfig
			e.mu.Unlock()
			path := filepath.Join(e.Dir, "alertmanager.yml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				e.opts.Logf("alertmanager: %v", err)
			}
			return []string{
				"--config.file=" + path,
				"--storage.path=" + filepath.Join(e.Dir, "alertmanager-data"),
				"--web.listen-address=" + hostPort(e.port(portAlertmanager)),
				// Empty: no gossip cluster (it would bind 0.0.0.0:9094).
				"--cluster.listen-address=",
			}
		},
		ready: func(ctx context.Context) error {
			return e.probe(ctx, "http://"+hostPort(e.port(portAlertmanager))+"/-/ready", "")
		},
	}
}

// promConfig is the subset of prometheus.yml the environment writes.
type promConfig struct {
	Global        promGlobal   `json:"global"`
	RuleFiles     []string     `json:"rule_files,omitempty"`
	Alerting      promAlerting `json:"alerting"`
	ScrapeConfigs []promScrape `json:"scrape_configs"`
}

type promGlobal struct {
	ScrapeInterval     string `json:"scrape_interval"`
	ScrapeTimeout      string `json:"scrape_timeout"`
	EvaluationInterval string `json:"evaluation_interval"`
}

type promAlerting struct {
	Alertmanagers []promAlertmanager `json:"alertmanagers"`
}

type promAlertmanager struct {
	APIVersion    string       `json:"api_version"`
	StaticConfigs []promStatic `json:"static_configs"`
}

type promScrape struct {
	JobName       string       `json:"job_name"`
	StaticConfigs []promStatic `json:"static_configs"`
}

type promStatic struct {
	Targets []string `json:"targets"`
}

// prometheusConfig renders prometheus.yml. The caller holds e.mu.
func (e *Env) prometheusConfig() ([]byte, error) {
	timeout := min(e.opts.ScrapeInterval, 10*time.Second)
	cfg := promConfig{
		Global: promGlobal{
			ScrapeInterval:     model.Duration(e.opts.ScrapeInterval).String(),
			ScrapeTimeout:      model.Duration(timeout).String(),
			EvaluationInterval: model.Duration(e.opts.EvaluationInterval).String(),
		},
		RuleFiles: e.opts.RuleFiles,
		Alerting: promAlerting{Alertmanagers: []promAlertmanager{{
			APIVersion:    "v2",
			StaticConfigs: []promStatic{{Targets: []string{hostPort(e.ports[portAlertmanager])}}},
		}}},
		ScrapeConfigs: []promScrape{},
	}
	jobs := make([]string, 0, len(e.scrape))
	for job := range e.scrape {
		jobs = append(jobs, job)
	}
	sort.Strings(jobs)
	for _, job := range jobs {
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, promScrape{
			JobName:       job,
			StaticConfigs: []promStatic{{Targets: e.scrape[job]}},
		})
	}
	return yaml.Marshal(cfg)
}

func (e *Env) writePrometheusConfig() error {
	e.mu.Lock()
	data, err := e.prometheusConfig()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(e.Dir, "prometheus.yml"), data, 0o644)
}

// AddScrapeTarget adds hostPort ("127.0.0.1:8080", scraped at /metrics) to
// the scrape job job, creating the job if needed, reloads Prometheus and
// returns once Prometheus has scraped the target at least once (whether or
// not the scrape succeeded). If Prometheus is stopped, the target is only
// configured: it is scraped once StartPrometheus runs.
func (e *Env) AddScrapeTarget(job, hostPort string) error {
	if job == "" || hostPort == "" {
		return errors.New("testenv: AddScrapeTarget needs a job and a host:port")
	}
	e.mu.Lock()
	if !slices.Contains(e.scrape[job], hostPort) {
		e.scrape[job] = append(e.scrape[job], hostPort)
	}
	e.mu.Unlock()
	if err := e.applyScrapeConfig(); err != nil {
		return err
	}
	if !e.running(Prometheus) {
		return nil
	}
	return e.waitScraped(map[string][]string{job: {hostPort}})
}

// waitScraped waits until Prometheus has scraped each of the targets (job
// -> host:port) at least once.
func (e *Env) waitScraped(targets map[string][]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.StartTimeout)
	defer cancel()
	var last string
	for {
		active, err := e.PrometheusAPI().Targets(ctx)
		if err == nil {
			health := map[[2]string]promv1.HealthStatus{}
			for _, t := range active.Active {
				health[[2]string{string(t.Labels[model.JobLabel]), string(t.Labels[model.InstanceLabel])}] = t.Health
			}
			last = ""
			for job, hps := range targets {
				for _, hp := range hps {
					h, ok := health[[2]string{job, hp}]
					switch {
					case !ok:
						last = fmt.Sprintf("target %s of job %s is not listed in /api/v1/targets", hp, job)
					case h == promv1.HealthUnknown:
						last = fmt.Sprintf("target %s of job %s is not scraped yet", hp, job)
					}
				}
			}
			if last == "" {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			log := filepath.Join(e.Dir, Prometheus+".log")
			return &ComponentError{Component: Prometheus, Op: "scrape its targets", Log: log, Tail: tailLines(log, 10),
				Err: fmt.Errorf("%s after %s", last, e.opts.StartTimeout)}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RemoveScrapeTarget removes hostPort from the scrape job job (and the job
// once empty) and reloads Prometheus.
func (e *Env) RemoveScrapeTarget(job, hostPort string) error {
	e.mu.Lock()
	targets := slices.DeleteFunc(e.scrape[job], func(t string) bool { return t == hostPort })
	if len(targets) == 0 {
		delete(e.scrape, job)
	} else {
		e.scrape[job] = targets
	}
	e.mu.Unlock()
	return e.applyScrapeConfig()
}

func (e *Env) applyScrapeConfig() error {
	if err := e.writePrometheusConfig(); err != nil {
		return fmt.Errorf("testenv: writing prometheus.yml: %w", err)
	}
	if err := e.saveState(); err != nil {
		return err
	}
	if !e.running(Prometheus) {
		return nil
	}
	return e.reload(Prometheus, e.PrometheusURL)
}

// RuleFiles returns the rule files Prometheus loads.
func (e *Env) RuleFiles() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.opts.RuleFiles)
}

// SetRuleFiles replaces the rule files Prometheus loads (absolute paths, as
// Options.RuleFiles) and reloads Prometheus.
func (e *Env) SetRuleFiles(paths ...string) error {
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("testenv: rule file %q: want an absolute path", p)
		}
	}
	e.mu.Lock()
	e.opts.RuleFiles = slices.Clone(paths)
	e.mu.Unlock()
	return e.applyScrapeConfig()
}

// SetAlertmanagerConfig replaces Alertmanager's configuration (YAML, as
// Options.AlertmanagerConfig) and reloads it. The configuration is kept
// across StopAlertmanager and StartAlertmanager.
func (e *Env) SetAlertmanagerConfig(config string) error {
	e.mu.Lock()
	e.amConfig = config
	e.mu.Unlock()
	if err := os.WriteFile(filepath.Join(e.Dir, "alertmanager.yml"), []byte(config), 0o644); err != nil {
		return fmt.Errorf("testenv: writing alertmanager.yml: %w", err)
	}
	if !e.running(Alertmanager) {
		return nil
	}
	return e.reload(Alertmanager, e.AlertmanagerURL)
}

// reload POSTs /-/reload, which fails with the reason when the new
// configuration is invalid.
func (e *Env) reload(name, base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := e.httpc.Do(req)
	if err != nil {
		return &ComponentError{Component: name, Op: "reload", Log: filepath.Join(e.Dir, name+".log"), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body := make([]byte, 2048)
		n, _ := resp.Body.Read(body)
		log := filepath.Join(e.Dir, name+".log")
		return &ComponentError{Component: name, Op: "reload", Log: log, Tail: tailLines(log, 10),
			Err: fmt.Errorf("POST /-/reload: %s: %s", resp.Status, body[:n])}
	}
	return nil
}

// StopPrometheus stops Prometheus; until StartPrometheus, its URL refuses
// connections.
func (e *Env) StopPrometheus() error { return e.stopComponent(Prometheus) }

// StartPrometheus starts a stopped Prometheus again on the same port and
// data directory, with the current scrape configuration, and waits until
// it is ready and has scraped each target once (Prometheus takes about 5s
// to start scraping after a start).
func (e *Env) StartPrometheus() error {
	if err := e.restart(e.prometheus()); err != nil {
		return err
	}
	e.mu.Lock()
	targets := make(map[string][]string, len(e.scrape))
	for job, hps := range e.scrape {
		targets[job] = slices.Clone(hps)
	}
	e.mu.Unlock()
	return e.waitScraped(targets)
}

// StopAlertmanager stops Alertmanager; until StartAlertmanager, its URL
// refuses connections.
func (e *Env) StopAlertmanager() error { return e.stopComponent(Alertmanager) }

// StartAlertmanager starts a stopped Alertmanager again on the same port
// and data directory and waits until it is ready.
func (e *Env) StartAlertmanager() error { return e.restart(e.alertmanager()) }

func (e *Env) stopComponent(name string) error {
	e.mu.Lock()
	p := e.procs[name]
	e.mu.Unlock()
	if p == nil {
		return fmt.Errorf("testenv: %s was never started", name)
	}
	if err := p.stop(e.opts.StopGrace); err != nil {
		return &ComponentError{Component: name, Op: "stop", Log: p.log, Err: err}
	}
	return nil
}

func (e *Env) restart(c component) error {
	if e.running(c.name) {
		return fmt.Errorf("testenv: %s is already running", c.name)
	}
	if e.bins == nil {
		return fmt.Errorf("testenv: cannot start %s: %w", c.name, &MissingBinaryError{Names: []string{c.name}})
	}
	// The same port: clients configured with the URL must find it again.
	c.ports = nil
	return e.launch(context.Background(), c, true)
}

// running reports whether the named component's process is alive.
func (e *Env) running(name string) bool {
	e.mu.Lock()
	p := e.procs[name]
	e.mu.Unlock()
	return p != nil && p.alive()
}

// writeFileAtomic writes data to a temporary file next to path and
// renames it over path, so that readers never see a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

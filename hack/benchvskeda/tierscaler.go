// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

// chartRules are the chart's Prometheus rule files (not their promtool
// tests), read at run time: the activation rule routed to tierscaler's
// webhook is part of tierscaler's reaction path.
func chartRules(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, "deploy", "chart", "tierscaler", "rules", "*.rules.yaml"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.yaml") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no rule file in %s", filepath.Join(root, "deploy", "chart", "tierscaler", "rules"))
	}
	return out, nil
}

// buildTierscaler runs `go build ./cmd/tierscaler` in the repository.
func buildTierscaler(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/tierscaler")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tierscaler: %w\n%s", err, b)
	}
	return nil
}

// tierscalerPolicy is the default policy with only the Prometheus and
// Alertmanager URLs and the namespaces set.
func tierscalerPolicy(promURL, amURL string) string {
	return fmt.Sprintf(`# Written by hack/benchvskeda: the default policy; only the URLs and the
# namespaces are set.
apiVersion: tierscaler.io/v1alpha1
kind: Policy
namespaces: [%s]
prometheus:
  url: %q
alertmanager:
  urls: [%q]
`, tsNamespace, promURL, amURL)
}

// amRoute is the part of an Alertmanager route the activation rule file
// documents.
type amRoute struct {
	Receiver       string   `json:"receiver"`
	Matchers       []string `json:"matchers"`
	GroupBy        []string `json:"group_by"`
	GroupWait      string   `json:"group_wait"`
	GroupInterval  string   `json:"group_interval"`
	RepeatInterval string   `json:"repeat_interval"`
}

// documentedRoute reads the Alertmanager route for tierscaler's webhook from
// the comment at the top of the chart's activation rule file (the block
// that starts with "route:"), so that the benchmark follows the documented
// timing when it changes.
func documentedRoute(ruleFile string) (amRoute, error) {
	f, err := os.Open(ruleFile)
	if err != nil {
		return amRoute{}, err
	}
	defer f.Close()
	var block []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			break // the end of the header comment
		}
		text := strings.TrimPrefix(line, "#")
		switch {
		case !in && strings.TrimSpace(text) == "route:":
			in = true
			block = append(block, text)
		case in && (strings.TrimSpace(text) == "receivers:" || strings.TrimSpace(text) == ""):
			in = false
		case in:
			block = append(block, text)
		}
		if !in && len(block) > 0 {
			break
		}
	}
	if len(block) == 0 {
		return amRoute{}, fmt.Errorf("%s: no route: block in the header comment", ruleFile)
	}
	var doc struct {
		Route struct {
			Routes []amRoute `json:"routes"`
		} `json:"route"`
	}
	if err := yaml.Unmarshal([]byte(dedent(block)), &doc); err != nil {
		return amRoute{}, fmt.Errorf("%s: the documented route: %w", ruleFile, err)
	}
	for _, r := range doc.Route.Routes {
		for _, m := range r.Matchers {
			if strings.ReplaceAll(m, " ", "") == `tierscaler="activate"` {
				return r, nil
			}
		}
	}
	return amRoute{}, fmt.Errorf("%s: the documented route has no matcher tierscaler=\"activate\"", ruleFile)
}

// dedent removes the indentation common to every non-empty line.
func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= indent {
			l = l[indent:]
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// alertmanagerConfig routes the activation alerts of tierscaler's functions
// to tierscaler's webhook with a bearer token, with the documented timing,
// and drops everything else. KEDA's functions raise the same alerts and
// another autoscaler owns them, so the routes also match the function's
// namespace, in whichever label names it: the chart's rules name the
// function in "function", OpenFaaS' own alerts in "function_name"
// (tierscaler's webhook reads either). Alertmanager's matchers are ANDed,
// hence one route per label.
func alertmanagerConfig(r amRoute, webhookURL, tokenFile string) (string, error) {
	var routes []any
	for _, label := range []string{"function", "function_name"} {
		route := map[string]any{
			"receiver": "tierscaler",
			"matchers": append(append([]string(nil), r.Matchers...), fmt.Sprintf(`%s=~".+\\.%s"`, label, tsNamespace)),
			"continue": false,
		}
		for k, v := range map[string]string{"group_wait": r.GroupWait, "group_interval": r.GroupInterval, "repeat_interval": r.RepeatInterval} {
			if v != "" {
				route[k] = v
			}
		}
		if len(r.GroupBy) > 0 {
			route["group_by"] = r.GroupBy
		}
		routes = append(routes, route)
	}
	cfg := map[string]any{
		"route": map[string]any{
			"receiver": "null", "group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h",
			"routes": routes,
		},
		"receivers": []any{
			map[string]any{"name": "null"},
			map[string]any{"name": "tierscaler", "webhook_configs": []any{map[string]any{
				"url": webhookURL, "send_resolved": false, "max_alerts": 0,
				"http_config": map[string]any{"authorization": map[string]any{"type": "Bearer", "credentials_file": tokenFile}},
			}}},
		},
	}
	b, err := yaml.Marshal(cfg)
	return string(b), err
}

// tsRun is a running tierscaler.
type tsRun struct {
	proc       *testenv.Process
	pid        int
	log        string
	metricsURL string
}

func (t *tsRun) stop() error {
	if t == nil || t.proc == nil {
		return nil
	}
	return t.proc.Stop(5 * time.Second)
}

// startTierscaler runs `tierscaler run` against env with the default
// policy, its webhook behind a bearer token that Alertmanager sends, and
// waits for /readyz.
func startTierscaler(ctx context.Context, env *testenv.Env, bin, root string, logf func(string, ...any)) (_ *tsRun, err error) {
	dir := filepath.Join(env.Dir, "tierscaler")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(tierscalerPolicy(env.PrometheusURL, env.AlertmanagerURL)), 0o600); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "webhook-token")
	if err := os.WriteFile(tokenFile, []byte(fmt.Sprintf("bench-%d\n", time.Now().UnixNano())), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	metricsAddr, webhookAddr := hostPort(ports[0]), hostPort(ports[1])
	route, err := documentedRoute(filepath.Join(root, "deploy", "chart", "tierscaler", "rules", "activation.rules.yaml"))
	if err != nil {
		return nil, err
	}
	amCfg, err := alertmanagerConfig(route, "http://"+webhookAddr+"/webhook/alertmanager", tokenFile)
	if err != nil {
		return nil, err
	}
	if err := env.SetAlertmanagerConfig(amCfg); err != nil {
		return nil, err
	}
	t := &tsRun{log: filepath.Join(dir, "tierscaler.log"), metricsURL: "http://" + metricsAddr}
	args := []string{bin, "run",
		"--policy=" + policyFile,
		"--kubeconfig=" + env.Kubeconfig,
		"--metrics-addr=" + metricsAddr,
		"--webhook-addr=" + webhookAddr,
		"--webhook-token-file=" + tokenFile,
		"--leader-elect=false",
	}
	start := time.Now()
	if t.proc, err = testenv.StartProcess("tierscaler", args, t.log, env.Dir); err != nil {
		return nil, fmt.Errorf("starting tierscaler: %w", err)
	}
	defer func() {
		if err != nil {
			_ = t.stop()
		}
	}()
	if err := waitHTTP(ctx, t.proc, t.metricsURL+"/readyz", t.log, time.Minute); err != nil {
		return nil, fmt.Errorf("tierscaler: %w", err)
	}
	if t.pid, err = findPID(env.Dir, bin); err != nil {
		return nil, err
	}
	logf("tierscaler ready in %s (pid %d, log %s)", time.Since(start).Round(10*time.Millisecond), t.pid, t.log)
	return t, nil
}

// waitHTTP polls url until it answers 200, the process exits or timeout
// passes.
func waitHTTP(ctx context.Context, p *testenv.Process, url, log string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		select {
		case <-p.Exited():
			return fmt.Errorf("exited before serving %s: %v; the end of %s:\n%s", url, p.ExitError(), log, strings.Join(testenv.TailLog(log, 20), "\n"))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (%v); the end of %s:\n%s", url, timeout, last, log, strings.Join(testenv.TailLog(log, 20), "\n"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// These tests run the real Alertmanager binary ($ALERTMANAGER, else
// alertmanager or prometheus-alertmanager from PATH), each on a free
// 127.0.0.1 port with gossip off and its storage in a temporary directory
// whose name holds "tierscaler-testenv-" (hack/check-leftovers.sh finds
// processes a crashed run left behind).

// alertmanager is one Alertmanager process that can be stopped and started
// again on the same port.
type alertmanager struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	URL  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ALERTMANAGER"); p != "" {
		return p
	}
	for _, name := range []string{"alertmanager", "prometheus-alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the integration tests need the Alertmanager binary: install it (Debian: apt-get install prometheus-alertmanager) or set $ALERTMANAGER")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const nullRoute = `route:
  receiver: "null"
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
`

// startAlertmanager starts an Alertmanager with config and stops it when the
// test ends.
func startAlertmanager(t *testing.T, config string) *alertmanager {
	t.Helper()
	dir, err := os.MkdirTemp("", "tierscaler-testenv-alerts-")
	require.NoError(t, err)
	am := &alertmanager{t: t, bin: alertmanagerBinary(t), dir: dir}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(config), 0o600))
	t.Cleanup(func() {
		am.Stop()
		if t.Failed() {
			t.Logf("Alertmanager log kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	for attempt := 0; ; attempt++ {
		am.port = freePort(t)
		am.URL = "http://127.0.0.1:" + strconv.Itoa(am.port)
		err := am.Start()
		if err == nil {
			return am
		}
		if attempt == 3 {
			t.Fatalf("start Alertmanager: %v", err)
		}
	}
}

// Start starts the process on am.port and waits until it is ready.
func (am *alertmanager) Start() error {
	am.mu.Lock()
	defer am.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(am.dir, "alertmanager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(am.bin,
		"--config.file="+filepath.Join(am.dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(am.dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(am.port),
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", am.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(am.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				am.cmd = cmd
				go func() { <-exited }()
				return nil
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(am.dir, "alertmanager.log"))
			return fmt.Errorf("alertmanager exited (%v); log:\n%s", err, tail(string(log), 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("alertmanager not ready on port %d within 30s", am.port)
		}
	}
}

// Stop stops the process (SIGTERM, SIGKILL after 5s); the port stays am's.
func (am *alertmanager) Stop() {
	am.mu.Lock()
	defer am.mu.Unlock()
	if am.cmd == nil {
		return
	}
	pid := am.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	am.cmd = nil
	// Wait until the port is free again.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(am.port), 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// active lists the active tierscaler alerts of the Alertmanager.
func (am *alertmanager) active(t *testing.T) []GettableAlert {
	t.Helper()
	resp, err := http.Get(am.URL + "/api/v2/alerts?active=true&filter=" + url.QueryEscape(`component="tierscaler"`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []GettableAlert
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	sort.Slice(out, func(i, j int) bool { return labelsKey(out[i].Labels) < labelsKey(out[j].Labels) })
	return out
}

// post posts alerts straight to the Alertmanager, as Prometheus would.
func (am *alertmanager) post(t *testing.T, alerts ...PostableAlert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	require.NoError(t, err)
	resp, err := http.Post(am.URL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", msg)
}

func functionNames(as []GettableAlert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Labels[LabelFunction]+"/"+a.Labels[LabelAlertName])
	}
	sort.Strings(out)
	return out
}

func integrationNotifier(t *testing.T, o NotifierOptions) *Notifier {
	t.Helper()
	o.Log = testr.New(t)
	if o.MinBackoff == 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 500 * time.Millisecond
	}
	n, err := NewNotifier(o)
	require.NoError(t, err)
	start(t, n)
	return n
}

// 1. The Notifier's alerts show up in Alertmanager with the right labels and
// are resolved after Sync reports them cleared; a stale alert of an earlier
// run is resolved at startup.
func TestIntegrationNotifierFireAndResolve(t *testing.T) {
	am := startAlertmanager(t, nullRoute)

	// An earlier run left an alert firing.
	stale := Alert(capacity("gone", policy.TierSync), nil)
	stale.StartsAt, stale.EndsAt = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	am.post(t, stale)
	require.Len(t, am.active(t), 1)

	n := integrationNotifier(t, NotifierOptions{URLs: []string{am.URL}, ResendInterval: time.Minute})
	ctx := context.Background()
	firstSync := time.Now()
	n.Sync(ctx, firstSync, []policy.Shortfall{capacity("figlet", policy.TierSync), metricsDown(),
		{Function: "report", Namespace: "openfaas-fn", Tier: policy.TierCron, Reason: policy.ShortfallPrewarmMissed,
			Deadline: firstSync.Add(-time.Minute), Missing: policy.Resources{Pods: 1}, Message: "report.openfaas-fn was not Ready by its fire time"}})

	want := []string{"/" + AlertMetricsUnavailable, "figlet.openfaas-fn/" + AlertCapacityShortfall, "report.openfaas-fn/" + AlertPrewarmMissed}
	require.Eventually(t, func() bool { return slices.Equal(functionNames(am.active(t)), want) }, 10*time.Second, 50*time.Millisecond,
		"Alertmanager has %v", functionNames(am.active(t)))
	t.Logf("alerts visible in Alertmanager %s after the first Sync", time.Since(firstSync))

	got := am.active(t)
	byName := map[string]GettableAlert{}
	for _, a := range got {
		byName[a.Labels[LabelAlertName]] = a
	}
	fig := byName[AlertCapacityShortfall]
	assert.Equal(t, map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "figlet.openfaas-fn", "severity": "critical",
		"function": "figlet.openfaas-fn", "namespace": "openfaas-fn", "tier": "sync", "reason": "insufficient-capacity"}, fig.Labels)
	assert.Equal(t, "500m", fig.Annotations[AnnotationMissingCPU])
	assert.Equal(t, "128Mi", fig.Annotations[AnnotationMissingMemory])
	assert.Equal(t, "1", fig.Annotations[AnnotationMissingPods])
	assert.WithinDuration(t, firstSync, fig.StartsAt, time.Millisecond)
	assert.WithinDuration(t, firstSync.Add(3*time.Minute), fig.EndsAt, time.Second)
	assert.Equal(t, "active", fig.Status.State)
	assert.Equal(t, map[string]string{"alertname": AlertMetricsUnavailable, "component": "tierscaler", "service": "tierscaler", "severity": "warning",
		"tier": TierClusterWide, "reason": "metrics-unavailable"}, byName[AlertMetricsUnavailable].Labels)
	assert.NotEmpty(t, byName[AlertPrewarmMissed].Annotations[AnnotationDeadline])
	assert.Equal(t, "critical", byName[AlertPrewarmMissed].Labels[LabelSeverity])

	// The figlet shortfall clears.
	n.Sync(ctx, time.Now(), []policy.Shortfall{metricsDown()})
	require.Eventually(t, func() bool {
		return slices.Equal(functionNames(am.active(t)), []string{"/" + AlertMetricsUnavailable})
	}, 10*time.Second, 50*time.Millisecond, "Alertmanager has %v", functionNames(am.active(t)))

	// Everything clears.
	n.Sync(ctx, time.Now(), nil)
	require.Eventually(t, func() bool { return len(am.active(t)) == 0 }, 10*time.Second, 50*time.Millisecond)
	// Alertmanager can show the resolution before the notifier has read
	// the response that empties its queue.
	require.Eventually(t, func() bool { return n.Pending() == 0 }, 10*time.Second, 50*time.Millisecond, "the queue drains")
	assert.Zero(t, counterValue(t, n.Metrics(), AlertCapacityShortfall, SendRejected))
}

// 2. While Alertmanager is down Sync returns at once and the alerts queue;
// after a restart on the same port they arrive.
func TestIntegrationNotifierOutage(t *testing.T) {
	am := startAlertmanager(t, nullRoute)
	n := integrationNotifier(t, NotifierOptions{URLs: []string{am.URL}, ResendInterval: 2 * time.Second})
	ctx := context.Background()

	n.Sync(ctx, time.Now(), []policy.Shortfall{capacity("a", policy.TierSync)})
	require.Eventually(t, func() bool { return len(am.active(t)) == 1 }, 10*time.Second, 50*time.Millisecond)

	am.Stop()
	var slowest time.Duration
	reported := []policy.Shortfall{capacity("a", policy.TierSync), capacity("b", policy.TierAsync), metricsDown()}
	deadline := time.Now().Add(3 * time.Second)
	syncs := 0
	for time.Now().Before(deadline) {
		begin := time.Now()
		n.Sync(ctx, begin, reported)
		slowest = max(slowest, time.Since(begin))
		syncs++
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Alertmanager down: %d Syncs, slowest %s", syncs, slowest)
	assert.Less(t, slowest, 50*time.Millisecond, "Sync must not wait for the network")
	assert.Greater(t, n.Pending(), 0, "alerts are queued")
	assert.Greater(t, counterValue(t, n.Metrics(), AlertCapacityShortfall, SendError), 0.0, "failed posts are counted")

	restarted := time.Now()
	require.NoError(t, am.Start())
	want := []string{"/" + AlertMetricsUnavailable, "a.openfaas-fn/" + AlertCapacityShortfall, "b.openfaas-fn/" + AlertCapacityShortfall}
	require.Eventually(t, func() bool { return slices.Equal(functionNames(am.active(t)), want) }, 15*time.Second, 50*time.Millisecond,
		"Alertmanager has %v", functionNames(am.active(t)))
	t.Logf("queued alerts delivered %s after Alertmanager was ready again", time.Since(restarted))
	require.Eventually(t, func() bool { return n.Pending() == 0 }, 5*time.Second, 50*time.Millisecond)
	assert.Zero(t, testutil.ToFloat64(n.Metrics().AlertsDropped))
}

// 3. A real Alertmanager routes a firing alert through a webhook receiver
// with bearer credentials to the handler, which calls the activator.
func TestIntegrationWebhookFromAlertmanager(t *testing.T) {
	const token = "integration-token-0123456789"
	act := &fakeActivator{}
	auth, err := NewAuthenticator(AuthOptions{Token: token, Log: testr.New(t)})
	require.NoError(t, err)
	metrics := NewMetrics()
	h, err := NewWebhookHandler(WebhookOptions{Activator: act, Auth: auth, Metrics: metrics, Log: testr.New(t)})
	require.NoError(t, err)

	// Record when each request arrives, to measure the handler's own latency.
	var mu sync.Mutex
	var receipts []time.Time
	var handled []time.Duration
	timed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The receipt is recorded before the handler runs: the test reads
		// it as soon as Activate has been called, before ServeHTTP returns.
		at := time.Now()
		mu.Lock()
		receipts = append(receipts, at)
		mu.Unlock()
		h.ServeHTTP(w, r)
		mu.Lock()
		handled = append(handled, time.Since(at))
		mu.Unlock()
	})
	srv := &scaler.HTTPServer{Name: "webhook", Addr: "127.0.0.1:0", Handler: timed, Log: testr.New(t)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
	})
	require.Eventually(t, func() bool { return srv.BoundAddr() != "" }, 5*time.Second, 10*time.Millisecond)
	webhookURL := "http://" + srv.BoundAddr() + PathWebhook

	am := startAlertmanager(t, fmt.Sprintf(`route:
  receiver: "null"
  routes:
    - receiver: tierscaler
      matchers:
        - tierscaler="activate"
      group_by: [function_name]
      group_wait: 0s
      group_interval: 1s
      repeat_interval: 1h
receivers:
  - name: "null"
  - name: tierscaler
    webhook_configs:
      - url: %s
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %s
`, webhookURL, token))

	const rounds = 10
	var endToEnd, handler []time.Duration
	for i := range rounds {
		fn := fmt.Sprintf("fn-%d", i)
		calls := len(act.Calls())
		posted := time.Now()
		am.post(t, PostableAlert{Labels: map[string]string{"alertname": "FunctionRejectingRequests", "tierscaler": "activate",
			"function_name": fn + ".openfaas-fn", "severity": "info"}, StartsAt: posted})
		require.Eventually(t, func() bool { return len(act.Calls()) > calls }, 10*time.Second, time.Millisecond, "round %d", i)
		act.mu.Lock()
		activated := act.at[len(act.at)-1]
		assert.Equal(t, fn+".openfaas-fn", act.calls[len(act.calls)-1])
		act.mu.Unlock()
		mu.Lock()
		receipt := receipts[len(receipts)-1]
		mu.Unlock()
		endToEnd = append(endToEnd, activated.Sub(posted))
		handler = append(handler, activated.Sub(receipt))
	}
	t.Logf("post to Alertmanager -> Activate (group_wait 0s), %d rounds: %s", rounds, summarize(endToEnd))
	t.Logf("webhook request receipt -> Activate, %d rounds: %s", rounds, summarize(handler))
	mu.Lock()
	t.Logf("whole webhook request (receipt -> answer written), %d requests: %s", len(handled), summarize(handled))
	mu.Unlock()
	assert.Equal(t, float64(rounds), testutil.ToFloat64(metrics.WebhookAlerts.WithLabelValues(WebhookActivated)))

	// A resolved alert reaches the handler and scales nothing.
	calls := len(act.Calls())
	past := time.Now().Add(-time.Second)
	am.post(t, PostableAlert{Labels: map[string]string{"alertname": "FunctionRejectingRequests", "tierscaler": "activate",
		"function_name": "fn-0.openfaas-fn", "severity": "info"}, StartsAt: past.Add(-time.Minute), EndsAt: past})
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(metrics.WebhookAlerts.WithLabelValues(WebhookResolved)) >= 1
	}, 15*time.Second, 10*time.Millisecond, "the resolved notification arrives")
	assert.Len(t, act.Calls(), calls, "a resolved alert activates nothing")

	// The real HTTP server's answers to bad requests.
	do := func(auth string, body io.Reader) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPost, webhookURL, body)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp, string(msg)
	}
	resp, _ := do("Bearer wrong-token", strings.NewReader(payload()))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="tierscaler"`, resp.Header.Get("WWW-Authenticate"))
	resp, _ = do("", strings.NewReader(payload()))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, msg := do("Bearer "+token, bytes.NewReader(bytes.Repeat([]byte(" "), 2<<20)))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, msg)
	resp, msg = do("Bearer "+token, io.MultiReader(strings.NewReader(payload()), bytes.NewReader(bytes.Repeat([]byte(" "), 2<<20))))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "chunked body: %s", msg)
	resp, msg = do("Bearer "+token, strings.NewReader(`{"alerts":[{"status":"firing","labels":{"function_name":`))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	t.Logf("400 answer: %s", strings.TrimSpace(msg))
	resp, msg = do("Bearer "+token, strings.NewReader("garbage"))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, msg, "want a JSON object")
	req, _ := http.NewRequest(http.MethodGet, webhookURL, nil)
	getResp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	getResp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, getResp.StatusCode)
}

// summarize renders min, median, p90 and max of ds.
func summarize(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("min %s, median %s, p90 %s, max %s", r(s[0]), r(q(0.5)), r(q(0.9)), r(s[len(s)-1]))
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

// env returns the environment TestMain started.
func env(t *testing.T) *testenv.Env {
	t.Helper()
	e := testenv.Current()
	if e == nil {
		t.Fatal("no test environment (TestMain did not start one)")
	}
	return e
}

// testContext is cancelled when the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 100ms until it reports true, and returns the
// time it did. After timeout it fails the test with what and cond's last
// description of the state.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return time.Now()
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s (last: %s)", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// safeName turns a test name into a file or node-pool name.
func safeName(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// freeAddr returns a 127.0.0.1 address free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads base+"/metrics" in the Prometheus text format.
func scrape(base string) (map[string][]sample, error) {
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string][]sample{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				s.value = m.GetUntyped().GetValue()
			case m.GetHistogram() != nil:
				s.value = float64(m.GetHistogram().GetSampleCount())
				s.sum = m.GetHistogram().GetSampleSum()
			case m.GetSummary() != nil:
				s.value = float64(m.GetSummary().GetSampleCount())
				s.sum = m.GetSummary().GetSampleSum()
			}
			out[name] = append(out[name], s)
		}
	}
	return out, nil
}

type sample struct {
	labels map[string]string
	value  float64
	// sum of a histogram or summary (value is then its count).
	sum float64
}

// metric returns the sum of the series of name whose labels include want,
// and whether there was one; (0, false) also when the scrape fails.
func metric(base, name string, want map[string]string) (float64, bool) {
	fams, err := scrape(base)
	if err != nil {
		return 0, false
	}
	total, found := 0.0, false
	for _, s := range fams[name] {
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
			found = true
		}
	}
	return total, found
}

// amAlert is an alert as Alertmanager's GET /api/v2/alerts returns it.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// activeAlerts returns the active (neither silenced, inhibited nor
// resolved) alerts of Alertmanager matching the label matchers, such as
// `alertname="TierscalerCapacityShortfall"`.
func activeAlerts(ctx context.Context, amURL string, matchers ...string) ([]amAlert, error) {
	q := url.Values{}
	q.Set("active", "true")
	q.Set("silenced", "false")
	q.Set("inhibited", "false")
	for _, m := range matchers {
		q.Add("filter", m)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, amURL+"/api/v2/alerts?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: %s: %s", resp.Status, body)
	}
	var alerts []amAlert
	if err := json.Unmarshal(body, &alerts); err != nil {
		return nil, fmt.Errorf("GET /api/v2/alerts: %w", err)
	}
	out := alerts[:0]
	for _, a := range alerts {
		if a.Status.State == "active" {
			out = append(out, a)
		}
	}
	return out, nil
}

// activationRoute is an Alertmanager configuration that sends the alerts
// labelled tierscaler="activate" (the chart's activation rule) to
// tierscaler's webhook at once, with the bearer token read from tokenFile,
// as the chart README tells operators to configure it; everything else goes
// to a receiver that drops it.
func activationRoute(webhookURL, tokenFile string) string {
	return fmt.Sprintf(`route:
  receiver: "null"
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: tierscaler
      matchers:
        - tierscaler="activate"
      group_by: [function]
      group_wait: 0s
      group_interval: 1s
      repeat_interval: 1m
      continue: false
receivers:
  - name: "null"
  - name: tierscaler
    webhook_configs:
      - url: %q
        send_resolved: false
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials_file: %q
`, webhookURL, tokenFile)
}

// routeActivations points Alertmanager's activation route at the
// controller's webhook until the test ends.
func routeActivations(t *testing.T, e *testenv.Env, c *hostController) {
	t.Helper()
	if err := e.SetAlertmanagerConfig(activationRoute(c.webhookURL+"/system/alert", c.tokenFile)); err != nil {
		t.Fatalf("configuring Alertmanager: %v", err)
	}
	t.Cleanup(func() {
		if err := e.SetAlertmanagerConfig(testenv.DefaultAlertmanagerConfig); err != nil {
			t.Logf("restoring Alertmanager's configuration: %v", err)
		}
	})
}

func clientKey(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}

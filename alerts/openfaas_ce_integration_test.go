// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package alerts

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/policy"
)

// These tests load the real Alertmanager with OpenFaaS CE's routing
// (testdata/openfaas-ce-alertmanager.yml) and the OpenFaaS basic-auth
// Secret's password file.

const basicAuthPassword = "3f1c0ffee0ddba11"

// ceAlertmanager starts an Alertmanager with OpenFaaS CE's configuration,
// its webhook pointed at target, and returns it with the password file.
func ceAlertmanager(t *testing.T, target string) (*alertmanager, string) {
	t.Helper()
	cfg, err := os.ReadFile(filepath.Join("testdata", "openfaas-ce-alertmanager.yml"))
	require.NoError(t, err)
	// The Secret's key as a file: written by kubectl create secret, with no
	// trailing newline; Alertmanager trims one anyway.
	pw := filepath.Join(t.TempDir(), "basic-auth-password")
	require.NoError(t, os.WriteFile(pw, []byte(basicAuthPassword), 0o600))
	text := strings.NewReplacer("GATEWAY_URL", target, "PASSWORD_FILE", pw).Replace(string(cfg))
	return startAlertmanager(t, text), pw
}

// inhibitedAlert is the part of GET /api/v2/alerts that says whether an
// alert is muted.
type inhibitedAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func (am *alertmanager) states(t *testing.T) map[string]inhibitedAlert {
	t.Helper()
	resp, err := http.Get(am.URL + "/api/v2/alerts?active=true&inhibited=true&silenced=true&filter=" + url.QueryEscape(`component="tierscaler"`))
	require.NoError(t, err)
	defer resp.Body.Close()
	var as []inhibitedAlert
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&as))
	out := map[string]inhibitedAlert{}
	for _, a := range as {
		out[a.Labels[LabelAlertName]+"/"+a.Labels[LabelService]] = a
	}
	return out
}

// Issue 11: installed next to a stock OpenFaaS CE Alertmanager, tierscaler's
// alerts never make the gateway scale a function, and the CE inhibit rule
// does not hide a warning shortfall behind another function's critical
// one. A sync shortfall (critical), an async shortfall (warning, same
// alertname), a cron function at risk and the cluster-wide alert fire and
// resolve; the gateway stub receives all of them, none with function_name.
func TestIntegrationOpenFaaSCEAlertmanagerNeverScales(t *testing.T) {
	t.Parallel()
	gw := &emulator.AlertStub{User: "admin", Password: basicAuthPassword}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	am, _ := ceAlertmanager(t, srv.URL+PathSystemAlert)

	n := integrationNotifier(t, NotifierOptions{URLs: []string{am.URL}, ResendInterval: time.Minute})
	atRisk := policy.Shortfall{Function: "report", Namespace: "openfaas-fn", Tier: policy.TierCron, Reason: policy.ShortfallCronAtRisk,
		Missing: policy.Resources{MilliCPU: 500, Memory: 128 << 20, Pods: 1}, Deadline: time.Now().Add(10 * time.Minute), Message: "will not fit"}
	n.Sync(context.Background(), time.Now(), []policy.Shortfall{capacity("checkout", policy.TierSync), capacity("resize", policy.TierAsync),
		atRisk, metricsDown()})

	want := []string{
		AlertCapacityShortfall + "/checkout.openfaas-fn", // critical
		AlertCapacityShortfall + "/resize.openfaas-fn",   // warning, same alertname
		AlertCronAtRisk + "/report.openfaas-fn",
		AlertMetricsUnavailable + "/" + ServiceName,
	}
	// group_wait is 5s.
	require.Eventually(t, func() bool {
		s := gw.Seen()
		for _, k := range want {
			if s[k] != StatusFiring {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "the gateway stub received %v", gw.Seen())

	states := am.states(t)
	warning := states[AlertCapacityShortfall+"/resize.openfaas-fn"]
	assert.Equal(t, "active", warning.Status.State, "the async warning is not inhibited by the sync critical shortfall")
	assert.Empty(t, warning.Status.InhibitedBy)
	assert.Equal(t, SeverityCritical, states[AlertCapacityShortfall+"/checkout.openfaas-fn"].Labels[LabelSeverity])

	// Everything resolves; the resolutions reach the gateway too
	// (send_resolved, group_interval 10s).
	n.Sync(context.Background(), time.Now(), nil)
	require.Eventually(t, func() bool {
		s := gw.Seen()
		for _, k := range want {
			if s[k] != StatusResolved {
				return false
			}
		}
		return true
	}, 45*time.Second, 100*time.Millisecond, "the gateway stub received %v", gw.Seen())

	assert.Empty(t, gw.ScaleRequests(), "no alert of tierscaler names a function_name the gateway would scale")
	got, requests, badAuth := gw.Counts()
	assert.Zero(t, badAuth, "Alertmanager sent the basic-auth Secret's credentials")
	t.Logf("the gateway stub received %d alerts in %d requests", got, requests)
}

// Issue 11: the CE Alertmanager's scale-up receiver, repointed at
// tierscaler's /system/alert with only a URL change, authenticates with
// the OpenFaaS basic-auth Secret mounted as it is, and its OpenFaaS alert
// (APIHighInvocationRate, function_name) activates the function.
// tierscaler's own alerts routed back by the same receiver activate
// nothing.
func TestIntegrationOpenFaaSCEAlertmanagerRepointed(t *testing.T) {
	t.Parallel()
	act := &fakeActivator{}
	metrics := NewMetrics()
	var h http.Handler
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hh := h
		mu.Unlock()
		hh.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	am, pwFile := ceAlertmanager(t, srv.URL+PathSystemAlert)

	auth, err := NewAuthenticator(AuthOptions{BasicAuthPasswordFile: pwFile, Log: testr.New(t)})
	require.NoError(t, err)
	wh, err := NewWebhookHandler(WebhookOptions{Activator: act, Auth: auth, Metrics: metrics, Log: testr.New(t)})
	require.NoError(t, err)
	mu.Lock()
	h = wh
	mu.Unlock()

	// tierscaler's own alert reaches the same receiver.
	n := integrationNotifier(t, NotifierOptions{URLs: []string{am.URL}, ResendInterval: time.Minute})
	n.Sync(context.Background(), time.Now(), []policy.Shortfall{capacity("resize", policy.TierAsync)})
	// OpenFaaS CE's own rule fires for figlet (labels of its
	// APIHighInvocationRate rule).
	am.post(t, PostableAlert{Labels: map[string]string{"alertname": "APIHighInvocationRate", "function_name": "figlet.openfaas-fn",
		"service": "gateway", "severity": "major"}, StartsAt: time.Now()})

	require.Eventually(t, func() bool { return len(act.Calls()) > 0 }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(metrics.WebhookAlerts.WithLabelValues(WebhookIgnored)) >= 1
	}, 30*time.Second, 50*time.Millisecond, "tierscaler's own alert arrives and is ignored")
	assert.Equal(t, []string{"figlet.openfaas-fn"}, act.Calls())
	assert.Zero(t, testutil.ToFloat64(metrics.WebhookRequests.WithLabelValues(PathSystemAlert, RequestUnauthorized)),
		"the Secret's password file authenticates Alertmanager")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tierscaler/tierscaler/alerts"
	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/scaler"
)

// ceAlertmanagerConfig is OpenFaaS CE's Alertmanager configuration as the
// alerts package's tests load it: every alert to GATEWAY_URL with basic
// auth from PASSWORD_FILE.
const ceAlertmanagerConfig = "alerts/testdata/openfaas-ce-alertmanager.yml"

// The OpenFaaS basic-auth Secret (in the OpenFaaS namespace, where the
// chart is installed), as the OpenFaaS chart creates it.
const (
	basicAuthSecret   = "basic-auth"
	basicAuthPassword = "e2e-0penfaas-ce-pw"
)

// search needs ceil(30 × 0.2 / 2.8) = 3 replicas when it bursts; the
// 500m node holds one. wake is an async function at zero.
const ceAlertmanagerScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-ce-alertmanager
functions:
- {name: search, tier: sync, maxReplicas: 3, maxInflight: 4, requests: {cpu: 500m, memory: 64Mi}, sync: {rate: 0, requestDuration: 200ms}}
- {name: wake, tier: async, minReplicas: 0, initialReplicas: 0, maxReplicas: 2, maxInflight: 2, requests: {cpu: 250m, memory: 64Mi}, async: {jobDuration: 1s}}
`

// Issue 11, test 6: tierscaler next to a stock OpenFaaS CE Alertmanager.
// With the CE routing (every alert to the gateway's /system/alert) and a
// recording stub in the gateway's place, a capacity shortfall fires and
// resolves, and the stub receives it but never an alert that names a
// function_name, which the CE gateway would scale. Then the same
// Alertmanager configuration, with only the receiver's URL changed to
// tierscaler's webhook and the OpenFaaS basic-auth Secret as it is (the
// chart mounts it: webhook.openfaasBasicAuth), delivers OpenFaaS
// CE's own scaling alert to tierscaler, which activates the function.
func TestCEAlertmanagerRoutingAndRepoint(t *testing.T) {
	began := time.Now()
	e := env(t)
	ctx := testContext(t)
	createBasicAuthSecret(t, e)
	// The chart mounts OpenFaaS's basic-auth Secret (its defaults: basic-auth,
	// basic-auth-password, user admin).
	values := valuesWith(t, e, "", "webhook:\n  auth: required\n", "webhook:\n  auth: required\n  openfaasBasicAuth: {enabled: true}\n")
	_, fns, c := startOpenFaaS(t, values, ceAlertmanagerScenario, "500m", nil)
	require.NotEmpty(t, flagValue(c.args, "--webhook-basic-auth-password-file"), "the chart-rendered arguments")
	require.Equal(t, "admin", flagValue(c.args, "--webhook-basic-auth-user"))
	// Alertmanager reads the Secret's key as a file, as CE's mounts it.
	pwFile := filepath.Join(t.TempDir(), "basic-auth-password")
	require.NoError(t, os.WriteFile(pwFile, []byte(basicAuthPassword), 0o600))

	gw := &emulator.AlertStub{User: "admin", Password: basicAuthPassword}
	stub := httptest.NewServer(gw)
	t.Cleanup(stub.Close)
	setCEAlertmanager(t, e, stub.URL+alerts.PathSystemAlert, pwFile)
	service := "search." + fnNamespace

	step(t, "a capacity shortfall reaches the gateway stub", func(t *testing.T) {
		require.NoError(t, fns.em.SetRate("search", 30))
		eventually(t, 60*time.Second, "the stub received the firing shortfall", func() (bool, string) {
			s := gw.Seen()
			return s[alerts.AlertCapacityShortfall+"/"+service] == alerts.StatusFiring, fmt.Sprintf("%v", s)
		})
		require.EqualValues(t, 1, fns.replicas("search"), "capacity is short")
	})

	step(t, "it resolves once a node is added, and the stub is told", func(t *testing.T) {
		require.NoError(t, e.AddNodes(ctx, fnPool, 1, "2", "8Gi"))
		eventually(t, 90*time.Second, "the stub received the resolved shortfall", func() (bool, string) {
			s := gw.Seen()
			return s[alerts.AlertCapacityShortfall+"/"+service] == alerts.StatusResolved, fmt.Sprintf("%v", s)
		})
		require.EqualValues(t, 3, fns.replicas("search"))
	})

	step(t, "the stub received no scale request", func(t *testing.T) {
		// Alerts of this test only: the environment's Alertmanager may still
		// hold an earlier test's (this test's own CE alert, run again).
		require.Empty(t, gw.ScaleRequestsSince(began), "alerts with a function_name, which the CE gateway scales")
		n, requests, badAuth := gw.Counts()
		require.Zero(t, badAuth, "Alertmanager sent the basic-auth Secret's credentials")
		t.Logf("the gateway stub received %d alerts in %d requests", n, requests)
	})

	step(t, "repointed at tierscaler by URL only, CE's own alert activates a function", func(t *testing.T) {
		require.EqualValues(t, 0, fns.replicas("wake"))
		setCEAlertmanager(t, e, c.webhookURL+alerts.PathSystemAlert, pwFile)
		// OpenFaaS CE's APIHighInvocationRate rule, as its Prometheus
		// would post it.
		ceAlert := alerts.PostableAlert{Labels: map[string]string{
			"alertname": "APIHighInvocationRate", "function_name": "wake." + fnNamespace, "service": "gateway", "severity": "major",
		}, StartsAt: time.Now()}
		postAlert(t, e, ceAlert)
		t.Cleanup(func() { // resolved, so that it does not outlive the test
			ceAlert.EndsAt = time.Now()
			postAlert(t, e, ceAlert)
		})
		eventually(t, 30*time.Second, "wake is activated", func() (bool, string) {
			return fns.replicas("wake") == 1, fmt.Sprintf("%d replicas", fns.replicas("wake"))
		})
		ev := fns.eventually(scaler.EventActivated, "wake")
		require.Contains(t, ev.Note, "activation requested")
		ok, _ := metric(c.metricsURL, "tierscaler_webhook_requests_total", map[string]string{"path": alerts.PathSystemAlert, "result": "ok"})
		require.Positive(t, ok)
		bad, _ := metric(c.metricsURL, "tierscaler_webhook_requests_total", map[string]string{"result": alerts.RequestUnauthorized})
		require.Zero(t, bad, "the basic-auth Secret authenticates Alertmanager")
	})
	t.Logf("TestCEAlertmanagerRoutingAndRepoint: %s", time.Since(began).Round(time.Second))
}

// createBasicAuthSecret creates the OpenFaaS basic-auth Secret in the
// release namespace until the test ends.
func createBasicAuthSecret(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := testContext(t)
	require.NoError(t, e.CreateNamespace(ctx, releaseNamespace))
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: basicAuthSecret, Namespace: releaseNamespace},
		Data:       map[string][]byte{"basic-auth-user": []byte("admin"), "basic-auth-password": []byte(basicAuthPassword)},
	}
	_, err := e.Clientset.CoreV1().Secrets(releaseNamespace).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = e.Clientset.CoreV1().Secrets(releaseNamespace).Update(ctx, s, metav1.UpdateOptions{})
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = e.Clientset.CoreV1().Secrets(releaseNamespace).Delete(context.Background(), basicAuthSecret, metav1.DeleteOptions{})
	})
}

// setCEAlertmanager loads OpenFaaS CE's Alertmanager configuration with
// its receiver at url, until the test ends.
func setCEAlertmanager(t *testing.T, e *testenv.Env, url, passwordFile string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ceAlertmanagerConfig))
	require.NoError(t, err)
	cfg := strings.NewReplacer("GATEWAY_URL", url, "PASSWORD_FILE", passwordFile).Replace(string(b))
	require.NoError(t, e.SetAlertmanagerConfig(cfg))
	t.Cleanup(func() {
		if err := e.SetAlertmanagerConfig(testenv.DefaultAlertmanagerConfig); err != nil {
			t.Logf("restoring Alertmanager's configuration: %v", err)
		}
	})
}

// postAlert posts one alert to the environment's Alertmanager.
func postAlert(t *testing.T, e *testenv.Env, a alerts.PostableAlert) {
	t.Helper()
	body, err := json.Marshal([]alerts.PostableAlert{a})
	require.NoError(t, err)
	resp, err := httpClient.Post(e.AlertmanagerURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

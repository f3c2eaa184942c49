// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// activationAlert is the chart's activation rule (rules/activation.rules.yaml).
const activationAlert = "FunctionRejectingRequests"

// wake is an async function (tierscaler.io/tier: async) at zero that
// callers also invoke directly through the gateway. The emulator plays it
// as a sync function, so that at zero replicas every request is answered
// 429, which the chart's activation rule turns into an alert. tierscaler's
// own cycle does not start it: nothing is queued for it (the queue metric
// has no sample for it, so its queued work is unknown, not pending) and
// nothing is in flight. Only the webhook can.
const activationScenario = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: e2e-activation
functions:
- {name: wake, tier: sync, minReplicas: 0, initialReplicas: 0, maxReplicas: 4, maxInflight: 4, requests: {cpu: 250m, memory: 64Mi}, sync: {rate: 0, requestDuration: 100ms}}
`

// TestActivationThroughAlertmanager: emulated 429s of a function at zero,
// the chart's activation rule in a real Prometheus, a real Alertmanager
// routing the alert to tierscaler's webhook with the chart's bearer token,
// and tierscaler activating the async function from zero. It measures the
// time from the webhook reaching tierscaler to the Deployment's replicas
// changing.
func TestActivationThroughAlertmanager(t *testing.T) {
	e := env(t)
	ctx := testContext(t)
	began := time.Now()
	forDuration := ruleFor(t, activationAlert)

	addSystemPool(t, e)
	addPool(t, e, fnPool, 1, "4", "8Gi")
	installChart(t, e, chartValues(e))
	// The functions exist, with their final metadata, before tierscaler
	// starts: as a sync function at zero, wake would be scaled to 1 at once.
	fns := startFunctions(t, e, activationScenario, map[string]map[string]string{"wake": {policy.AnnotationTier: string(policy.TierAsync)}})
	c := runChartController(t, e)
	routeActivations(t, e, c)
	key := "wake." + fnNamespace

	step(t, "tierscaler watches wake and leaves it at zero", func(t *testing.T) {
		eventually(t, 60*time.Second, "fresh metrics with wake known", func() (bool, string) {
			if v, _ := metric(c.metricsURL, "tierscaler_metrics_available", nil); v != 1 {
				return false, "metrics unavailable"
			}
			if _, ok := metric(c.metricsURL, "tierscaler_function_replicas", map[string]string{"function": key, "tier": "async"}); !ok {
				return false, "wake not seen as async yet"
			}
			return true, ""
		})
		require.EqualValues(t, 0, fns.replicas("wake"))
	})

	// Alertmanager's counters are the environment's: compare with now.
	sentBefore, _ := metric(e.AlertmanagerURL, "alertmanager_notifications_total", map[string]string{"integration": "webhook"})
	failedBefore, _ := metric(e.AlertmanagerURL, "alertmanager_notifications_failed_total", map[string]string{"integration": "webhook"})
	scaledUp := watchScaleUp(t, e, "wake")
	rejecting := time.Now()
	require.NoError(t, fns.em.SetRate("wake", 2)) // every request answered 429 at zero replicas

	var patchSeen time.Time
	step(t, "the alert reaches tierscaler through Alertmanager and wake is activated", func(t *testing.T) {
		select {
		case patchSeen = <-scaledUp:
		case <-time.After(forDuration + 2*time.Minute):
			t.Fatalf("wake was not scaled up within %s of its 429s (rule for: %s)", forDuration+2*time.Minute, forDuration)
		}
		require.EqualValues(t, 1, fns.replicas("wake"), "activate-async to max(1, min)")
	})

	step(t, "measure: Alertmanager's webhook to the scale patch", func(t *testing.T) {
		received, ok := webhookReceived(c, key)
		require.True(t, ok, "tierscaler logged no webhook request that activated %s", key)
		am, err := activeAlerts(ctx, e.AlertmanagerURL, `alertname="`+activationAlert+`"`, `function="`+key+`"`)
		require.NoError(t, err)
		require.NotEmpty(t, am, "the activation alert is active in Alertmanager")
		pending := promActiveAt(t, e, key)

		// Only the alert started wake: it stayed at zero through the rule's
		// pending period, though Prometheus saw its 429s.
		require.True(t, patchSeen.After(pending.Add(forDuration-time.Second)),
			"wake was scaled at %s, before the alert could fire (pending since %s, for %s)", patchSeen, pending, forDuration)
		latency := patchSeen.Sub(received)
		t.Logf("429s from %s; Prometheus pending at +%s, alert startsAt +%s (for %s); webhook at tierscaler +%s; replicas 0->1 seen +%s",
			rejecting.Format(time.TimeOnly), pending.Sub(rejecting).Round(time.Millisecond), am[0].StartsAt.Sub(rejecting).Round(time.Millisecond),
			forDuration, received.Sub(rejecting).Round(time.Millisecond), patchSeen.Sub(rejecting).Round(time.Millisecond))
		t.Logf("activation latency, Alertmanager's webhook reaching tierscaler -> Deployment replicas changed: %s (target < 1s)", latency.Round(time.Millisecond))
		require.Less(t, latency, 5*time.Second)
		require.Greater(t, latency, -time.Second, "the scale came after the webhook")

		ev := fns.eventually(scaler.EventActivated, "wake")
		require.Contains(t, ev.Note, "activation requested", "activated on the webhook's request, not on queued work")

		// Alertmanager delivered it with the token: no failed notification.
		sent, _ := metric(e.AlertmanagerURL, "alertmanager_notifications_total", map[string]string{"integration": "webhook"})
		failed, _ := metric(e.AlertmanagerURL, "alertmanager_notifications_failed_total", map[string]string{"integration": "webhook"})
		require.Greater(t, sent, sentBefore, "Alertmanager sent webhook notifications")
		require.Equal(t, failedBefore, failed, "Alertmanager's webhook notifications failed (the token?)")
		accepted, _ := metric(c.metricsURL, "tierscaler_activation_requests_total", map[string]string{"result": "accepted"})
		require.Positive(t, accepted)
	})

	step(t, "wake serves its callers", func(t *testing.T) {
		eventually(t, 60*time.Second, "wake Ready without 429s", func() (bool, string) {
			st := fns.state("wake")
			return st.Ready >= 1 && st.RejectionRate == 0, fmt.Sprintf("%d Ready, %.1f 429/s", st.Ready, st.RejectionRate)
		})
	})
	t.Logf("TestActivationThroughAlertmanager: %s", time.Since(began).Round(time.Second))
}

// ruleFor reads the `for` of an alert of the chart's activation rule file.
func ruleFor(t *testing.T, alert string) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, activationRules))
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				For   string `json:"for"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == alert {
				if r.For == "" { // no for: fires at its first evaluation
					return 0
				}
				d, err := model.ParseDuration(r.For)
				require.NoError(t, err)
				return time.Duration(d)
			}
		}
	}
	t.Fatalf("%s has no alert %s", activationRules, alert)
	return 0
}

// watchScaleUp watches the Deployment and sends the time its replicas
// are first seen above zero.
func watchScaleUp(t *testing.T, e *testenv.Env, name string) <-chan time.Time {
	t.Helper()
	ctx := testContext(t)
	d, err := e.Clientset.AppsV1().Deployments(fnNamespace).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	out := make(chan time.Time, 1)
	rv := d.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := e.Clientset.AppsV1().Deployments(fnNamespace).Watch(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: rv,
			})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				dep, ok := ev.Object.(*appsv1.Deployment)
				if !ok || (ev.Type != watch.Modified && ev.Type != watch.Added) {
					continue
				}
				rv = dep.ResourceVersion
				if dep.Spec.Replicas != nil && *dep.Spec.Replicas > 0 {
					out <- time.Now()
					w.Stop()
					return
				}
			}
			w.Stop()
		}
	}()
	return out
}

// webhookReceived is when the first webhook request that activated key
// reached tierscaler: its log line's time less the request's duration. The
// test routes only key's alert to tierscaler's webhook.
func webhookReceived(c *hostController, key string) (time.Time, bool) {
	for _, r := range c.logRecords() {
		if r.Msg != "webhook" {
			continue
		}
		// The log line counts the functions a request activated (it used
		// to list them); only key's alert is routed to tierscaler here.
		switch v := r.Raw["activated"].(type) {
		case []any:
			if !slices.Contains(v, any(key)) {
				continue
			}
		case float64:
			if v < 1 {
				continue
			}
		default:
			continue
		}
		d, _ := r.Raw["duration"].(float64) // nanoseconds
		return r.Time.Add(-time.Duration(d)), true
	}
	return time.Time{}, false
}

// promActiveAt is when Prometheus' activation alert for function became
// pending.
func promActiveAt(t *testing.T, e *testenv.Env, function string) time.Time {
	t.Helper()
	res, err := e.PrometheusAPI().Alerts(context.Background())
	require.NoError(t, err)
	for _, a := range res.Alerts {
		if string(a.Labels["alertname"]) == activationAlert && string(a.Labels["function"]) == function {
			return a.ActiveAt
		}
	}
	t.Fatalf("Prometheus has no %s alert for %s", activationAlert, function)
	return time.Time{}
}

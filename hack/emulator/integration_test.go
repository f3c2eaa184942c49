// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package emulator_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, testenv.Options{})) }

// closedLoop: one replica of hot serves 2 concurrent requests of 100ms,
// 20 rps, against 60 rps offered: 40 rps are answered 429 until hot has 3
// Ready replicas. idle gets no traffic but must have its series.
const closedLoop = `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: closed-loop
functions:
  - name: hot
    initialReplicas: 1
    maxReplicas: 5
    maxInflight: 2
    requests: {cpu: 100m, memory: 64Mi}
    sync: {rate: 60, requestDuration: 100ms}
  - name: idle
    requests: {cpu: 100m, memory: 64Mi}
  - name: nightly
    schedule: "0 3 * * *"
    minReplicas: 0
    cron: {runDuration: 1m, async: true}
`

// eventually calls f every 200ms until it returns nil, failing the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %s: %v", what, timeout, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("cancelled while waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// query runs an instant PromQL query and returns its vector.
func query(ctx context.Context, env *testenv.Env, q string) (model.Vector, error) {
	v, _, _, err := env.PrometheusAPI().Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("%s: want a vector, got %s", q, v.Type())
	}
	return vec, nil
}

// scalar runs q and wants exactly one sample.
func scalar(ctx context.Context, env *testenv.Env, q string) (float64, error) {
	vec, err := query(ctx, env, q)
	if err != nil {
		return 0, err
	}
	if len(vec) != 1 {
		return 0, fmt.Errorf("%s: %d samples, want 1", q, len(vec))
	}
	return float64(vec[0].Value), nil
}

func TestClosedLoopThroughPrometheus(t *testing.T) {
	env := testenv.Current()
	if env == nil {
		t.Fatal("TestMain did not start the environment")
	}
	ctx := t.Context()
	s, err := workload.Parse([]byte(closedLoop))
	if err != nil {
		t.Fatal(err)
	}
	const ns = testenv.FunctionNamespace
	deps := env.Clientset.AppsV1().Deployments(ns)

	// --create semantics: the Deployments faas-netes would make.
	created, err := emulator.CreateFunctions(ctx, env.Clientset, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 3 {
		t.Fatalf("created %v, want 3 functions", created)
	}
	eventually(t, 2*time.Minute, "hot and idle have a Ready kwok pod", func() error {
		for _, name := range []string{"hot", "idle"} {
			d, err := deps.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Status.ReadyReplicas != 1 {
				return fmt.Errorf("%s has %d Ready replicas", name, d.Status.ReadyReplicas)
			}
		}
		return nil
	})

	src, err := emulator.NewKubeSource(ctx, env.Clientset, emulator.Namespaces(s))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	e, err := emulator.New(emulator.Options{Scenario: s, Source: src, Seed: 1, Tick: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if err := env.AddScrapeTarget("emulator", e.Addr()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.RemoveScrapeTarget("emulator", e.Addr()) }()

	const rejected = `gateway_function_invocation_total{function_name="hot.openfaas-fn",code="429"}`
	// Saturated at one replica: the 429 counter rises in Prometheus.
	eventually(t, time.Minute, "429s of hot rise in Prometheus", func() error {
		v, err := scalar(ctx, env, "increase("+rejected+"[5s])")
		if err != nil {
			return err
		}
		if v <= 0 {
			return fmt.Errorf("increase over 5s = %v", v)
		}
		return nil
	})
	// Every function has its series, the idle one included, and the Ready
	// pods have cadvisor series named after the real pods.
	for _, q := range []string{
		`gateway_function_invocation_total{function_name="idle.openfaas-fn",code="200"}`,
		`gateway_service_count{function_name="hot.openfaas-fn"}`,
		`queue_worker_pending_messages{function_name="nightly.openfaas-fn"}`,
	} {
		if _, err := scalar(ctx, env, q); err != nil {
			t.Error(err)
		}
	}
	pods, err := env.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "faas_function=hot"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("hot pods: %v, %v", pods, err)
	}
	eventually(t, 30*time.Second, "cadvisor series of the hot pod", func() error {
		_, err := scalar(ctx, env, fmt.Sprintf(`rate(container_cpu_usage_seconds_total{namespace=%q,pod=%q,container="hot"}[5s]) > 0`, ns, pods.Items[0].Name))
		return err
	})

	// Scale up through the scale subresource, as tierscaler does.
	sc, err := deps.GetScale(ctx, "hot", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 3
	if _, err := deps.UpdateScale(ctx, "hot", &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: sc.Spec}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "hot has 3 Ready replicas and no 429s in the emulator", func() error {
		st, err := e.FunctionState("hot.openfaas-fn")
		if err != nil {
			return err
		}
		if st.Ready != 3 || st.RejectionRate != 0 || st.Desired != 3 {
			return fmt.Errorf("ready %d, desired %d, 429s %v/s", st.Ready, st.Desired, st.RejectionRate)
		}
		return nil
	})
	// Once Prometheus has scraped the new state, the counter stops rising.
	eventually(t, 30*time.Second, "429s of hot stop rising in Prometheus", func() error {
		v, err := scalar(ctx, env, "increase("+rejected+"[3s])")
		if err != nil {
			return err
		}
		if v != 0 {
			return fmt.Errorf("increase over 3s = %v", v)
		}
		return nil
	})
	before, err := scalar(ctx, env, rejected)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	after, err := scalar(ctx, env, rejected)
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 || after != before {
		t.Fatalf("429 counter %v then %v 4s later: want it positive and flat after scaling up", before, after)
	}
	if v, err := scalar(ctx, env, `gateway_service_count{function_name="hot.openfaas-fn"}`); err != nil || v != 3 {
		t.Fatalf("gateway_service_count = %v, %v; want 3", v, err)
	}
	// The 200s keep coming at the offered 60 rps.
	eventually(t, 30*time.Second, "hot serves 60 rps", func() error {
		v, err := scalar(ctx, env, `rate(gateway_function_invocation_total{function_name="hot.openfaas-fn",code="200"}[5s])`)
		if err != nil {
			return err
		}
		if v < 50 || v > 70 {
			return fmt.Errorf("rate of 200s = %v/s", v)
		}
		return nil
	})
}

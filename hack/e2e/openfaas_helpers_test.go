// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
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
)

// The helpers of the tests of issue 11: tierscaler against what the real
// OpenFaaS does (gateway restarts and replicas, faas-cli redeploys, the CE
// provider, scale from zero, the CE Alertmanager), as hack/emulator
// reproduces it on the local cluster.

// valuesWith returns chartValues with each old text replaced by the new one
// (pairs), and extra appended (more top-level values). A text that
// chartValues does not hold fails the test: the tests must not silently
// run with the defaults.
func valuesWith(t *testing.T, e *testenv.Env, extra string, pairs ...string) string {
	t.Helper()
	v := chartValues(e)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(v, pairs[i]) {
			t.Fatalf("chartValues holds no %q to replace", pairs[i])
		}
		v = strings.Replace(v, pairs[i], pairs[i+1], 1)
	}
	return v + extra
}

// startOpenFaaS brings a test's world up: the chart's system pool, one
// function node of cpu, the chart installed with values, the scenario's
// functions and the emulator. before runs before tierscaler starts (nil:
// nothing), then tierscaler runs, and startOpenFaaS returns once it has
// fresh metrics of every function.
func startOpenFaaS(t *testing.T, values, scenario, cpu string, before func(f *functions)) (*testenv.Env, *functions, *hostController) {
	t.Helper()
	e := env(t)
	addSystemPool(t, e)
	addPool(t, e, fnPool, 1, cpu, "8Gi")
	installChart(t, e, values)
	fns := startFunctions(t, e, scenario, nil)
	if before != nil {
		before(fns)
	}
	c := runChartController(t, e)
	waitFunctionsSeen(t, c, fns)
	return e, fns, c
}

// waitFunctionsSeen waits until tierscaler has fresh metrics with every
// function of the scenario known.
func waitFunctionsSeen(t *testing.T, c *hostController, fns *functions) {
	t.Helper()
	eventually(t, 60*time.Second, "tierscaler_metrics_available is 1 with every function known", func() (bool, string) {
		if v, _ := metric(c.metricsURL, "tierscaler_metrics_available", nil); v != 1 {
			return false, "metrics unavailable"
		}
		for _, fn := range fns.sc.Functions {
			if _, ok := metric(c.metricsURL, "tierscaler_function_replicas", map[string]string{"function": fn.Key()}); !ok {
				return false, fn.Key() + " not seen yet"
			}
		}
		return true, ""
	})
}

// cycles is the number of reconcile cycles tierscaler has finished.
func (c *hostController) cycles() float64 {
	v, _ := metric(c.metricsURL, "tierscaler_reconciles_total", nil)
	return v
}

// waitCycles waits until tierscaler has finished n cycles that began after
// the call: the evidence that it decided n times on what it saw since.
func waitCycles(t *testing.T, c *hostController, n int) {
	t.Helper()
	// The cycle under way when called may have begun before.
	want := c.cycles() + float64(n) + 1
	eventually(t, time.Duration(n+3)*interval+30*time.Second, fmt.Sprintf("%d more reconcile cycles", n), func() (bool, string) {
		got := c.cycles()
		return got >= want, fmt.Sprintf("%v cycles, want %v", got, want)
	})
}

// desired is tierscaler_function_desired_replicas of a function (-1 when
// absent).
func (c *hostController) desired(name string) float64 {
	v, ok := metric(c.metricsURL, "tierscaler_function_desired_replicas", map[string]string{"function": name + "." + fnNamespace})
	if !ok {
		return -1
	}
	return v
}

// replicaLog records every spec.replicas a function's Deployment is
// seen with, through a watch, from its creation until stopped.
type replicaLog struct {
	mu     sync.Mutex
	values []int32
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// watchReplicas records the replicas of the Deployment name, starting
// with its current ones, until the test ends or stop is called.
func watchReplicas(t *testing.T, e *testenv.Env, name string) *replicaLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := e.Clientset.AppsV1().Deployments(fnNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l := &replicaLog{done: make(chan struct{})}
	l.add(d)
	rv := d.ResourceVersion
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			w, err := e.Clientset.AppsV1().Deployments(fnNamespace).Watch(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: rv,
			})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if dep, ok := ev.Object.(*appsv1.Deployment); ok && (ev.Type == watch.Modified || ev.Type == watch.Added) {
					rv = dep.ResourceVersion
					l.add(dep)
				}
			}
			w.Stop()
		}
	}()
	go func() { <-l.done; cancel() }()
	t.Cleanup(l.stop)
	return l
}

func (l *replicaLog) add(d *appsv1.Deployment) {
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.values) == 0 || l.values[len(l.values)-1] != n {
		l.values = append(l.values, n)
	}
}

func (l *replicaLog) stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
}

// seen returns the distinct successive replica counts seen so far.
func (l *replicaLog) seen() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.values)
}

// promValue evaluates query in the environment's Prometheus and returns
// the value of the sample whose function_name is key, and whether there
// was one.
func promValue(t *testing.T, e *testenv.Env, query, key string) (float64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _, _, err := e.PrometheusAPI().Query(ctx, query, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		t.Fatalf("query %s: a %s, want a vector", query, v.Type())
	}
	for _, s := range vec {
		if string(s.Metric["function_name"]) == key {
			return float64(s.Value), true
		}
	}
	return 0, false
}

// gatewaySeries reports whether the emulated gateway replica pod exports
// name (a gateway_* metric) for the function key.
func gatewaySeries(fns *functions, name, key, pod string) bool {
	_, ok := metric(fns.em.URL(), name, map[string]string{"function_name": key, "kubernetes_pod_name": pod})
	return ok
}

// noEvents fails the test if the functions have an Event with reason.
func noEvents(t *testing.T, fns *functions, reason string) {
	t.Helper()
	var got []string
	for _, ev := range fns.events(reason) {
		got = append(got, ev.Regarding.Name+": "+ev.Note)
	}
	require.Empty(t, got, "%s Events", reason)
}

// chartQuery is the policy query name (queries.<name>) of chart values.
func chartQuery(t *testing.T, values, name string) string {
	t.Helper()
	var v struct {
		Policy struct {
			Queries map[string]string `json:"queries"`
		} `json:"policy"`
	}
	if err := yaml.Unmarshal([]byte(values), &v); err != nil {
		t.Fatalf("chart values: %v", err)
	}
	q := v.Policy.Queries[name]
	if q == "" {
		t.Fatalf("the chart values set no policy.queries.%s", name)
	}
	return q
}

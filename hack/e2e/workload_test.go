// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/workload"
)

// functions is one test's function Deployments and the emulator that plays
// their traffic.
type functions struct {
	t   *testing.T
	ctx context.Context
	env *testenv.Env
	sc  *workload.Scenario
	em  *emulator.Emulator
	// created is when the Deployments were created.
	created time.Time
	// uids identify this test's Deployments (and so its Events).
	uids map[types.UID]string
}

// startFunctions creates the scenario's function Deployments as faas-netes
// would (emulator.CreateFunctions), merges annotate into their metadata
// (name -> annotations), starts the emulator and has Prometheus scrape it.
// Everything is removed when the test ends.
func startFunctions(t *testing.T, e *testenv.Env, scenario string, annotate map[string]map[string]string) *functions {
	t.Helper()
	ctx := testContext(t)
	sc, err := workload.Parse([]byte(scenario))
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	f := &functions{t: t, ctx: ctx, env: e, sc: sc, uids: map[types.UID]string{}, created: time.Now()}
	if _, err := emulator.CreateFunctions(ctx, e.Clientset, sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.delete)
	for name, ann := range annotate {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fnNamespace}}
		if err := e.Client.Patch(ctx, d, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatalf("annotating %s: %v", name, err)
		}
	}
	for _, fn := range sc.Functions {
		f.uids[f.deployment(fn.Name).UID] = fn.Name
	}

	src, err := emulator.NewKubeSource(ctx, e.Clientset, emulator.Namespaces(sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Stop)
	f.em, err = emulator.New(emulator.Options{Scenario: sc, Source: src, Tick: 500 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.em.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := f.em.Addr()
	if err := e.AddScrapeTarget("emulator", addr); err != nil {
		f.em.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { retireEmulator(t, e, f.em.Stop, addr) })
	checkNoLeftoverSeries(t, e, sc, addr)
	return f
}

// checkNoLeftoverSeries fails the test if Prometheus still reads gateway
// series of the scenario's functions from an emulator other than addr (an
// earlier test's): they would add to this test's.
func checkNoLeftoverSeries(t *testing.T, e *testenv.Env, sc *workload.Scenario, addr string) {
	t.Helper()
	var keys []string
	for _, fn := range sc.Functions {
		keys = append(keys, regexp.QuoteMeta(fn.Key()))
	}
	q := fmt.Sprintf(`group by (instance, function_name) ({__name__=~"gateway_.+", function_name=~%q, instance!=%q})`, strings.Join(keys, "|"), addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _, _, err := e.PrometheusAPI().Query(ctx, q, time.Now())
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if vec, ok := v.(model.Vector); !ok || len(vec) > 0 {
		t.Fatalf("Prometheus still reads an earlier emulator's series of this test's functions: %v", v)
	}
}

// retireEmulator stops an emulator and then removes it from Prometheus'
// targets, in that order: the scrape that fails marks its series stale,
// whereas a target removed by a configuration reload leaves them readable
// for the lookback delta (5m), where the next test's functions of the
// same names would add them to their own (the in-flight figure of an
// earlier test's api on top of this one's).
func retireEmulator(t *testing.T, e *testenv.Env, stop func(), addr string) {
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	q := fmt.Sprintf(`up{job="emulator",instance=%q}`, addr)
	for ctx.Err() == nil {
		v, _, _, err := e.PrometheusAPI().Query(ctx, q, time.Now())
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) == 1 && vec[0].Value == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Logf("Prometheus did not see the emulator %s down within 15s: its series may outlive the test", addr)
	}
	if err := e.RemoveScrapeTarget("emulator", addr); err != nil {
		t.Logf("removing the emulator's scrape target: %v", err)
	}
}

// delete removes the Deployments and waits until they are gone.
func (f *functions) delete() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, fn := range f.sc.Functions {
		_ = f.env.Client.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: fn.Name, Namespace: fnNamespace}},
			client.PropagationPolicy(metav1.DeletePropagationForeground))
	}
	for _, fn := range f.sc.Functions {
		for ctx.Err() == nil {
			var d appsv1.Deployment
			if err := f.env.Client.Get(ctx, clientKey(fnNamespace, fn.Name), &d); apierrors.IsNotFound(err) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func (f *functions) deployment(name string) appsv1.Deployment {
	f.t.Helper()
	var d appsv1.Deployment
	if err := f.env.Client.Get(f.ctx, clientKey(fnNamespace, name), &d); err != nil {
		f.t.Fatalf("Deployment %s: %v", name, err)
	}
	return d
}

func (f *functions) replicas(name string) int32 {
	f.t.Helper()
	d := f.deployment(name)
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func (f *functions) state(name string) emulator.FunctionState {
	f.t.Helper()
	st, err := f.em.FunctionState(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// events returns this test's Events with the given reason (all with ""),
// oldest eventTime first.
func (f *functions) events(reason string) []eventsv1.Event {
	f.t.Helper()
	var list eventsv1.EventList
	if err := f.env.Client.List(f.ctx, &list, client.InNamespace(fnNamespace)); err != nil {
		f.t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if _, ours := f.uids[e.Regarding.UID]; ours && (reason == "" || e.Reason == reason) {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b eventsv1.Event) int { return a.EventTime.Time.Compare(b.EventTime.Time) })
	return out
}

// eventually waits until an Event with reason is recorded on the function
// name (the recorder posts Events asynchronously) and returns the newest.
func (f *functions) eventually(reason, name string) eventsv1.Event {
	f.t.Helper()
	var found eventsv1.Event
	eventually(f.t, 15*time.Second, "a "+reason+" Event on "+name, func() (bool, string) {
		for _, e := range f.events(reason) {
			if e.Regarding.Name == name {
				found = e
			}
		}
		return found.Name != "", "none yet"
	})
	return found
}

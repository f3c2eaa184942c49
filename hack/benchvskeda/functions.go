// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// The two sets of functions: the same shapes, in two namespaces, so that
// each controller sees only its own (tierscaler scales every function of
// the namespaces its policy names).
const (
	tsNamespace   = "openfaas-fn" // tierscaler's: the default function namespace
	kedaNamespace = "openfaas-fn-keda"
	tsPrefix      = "ts-fn-"
	kedaPrefix    = "keda-fn-"
)

// The shape of every function. A sync replica serves maxInflight requests
// of syncDuration at once: syncCapacity requests per second. A burst offers
// burstFactor times that to one replica.
const (
	maxInflight     = 4
	syncDuration    = 100 * time.Millisecond
	syncCapacity    = maxInflight / 0.1 // requests per second per replica
	burstFactor     = 2.5
	asyncJobSeconds = 2
	// activationJobs are queued per activation trial: fewer than the
	// per-replica targets of both controllers (tierscaler's default
	// pendingPerReplica and KEDA's threshold are 10), so one replica.
	activationJobs = 5
	syncMax        = 10
	asyncMax       = 5
)

// fnSet is one controller's set of functions.
type fnSet struct {
	ctl       string // "keda" or "tierscaler"
	namespace string
	prefix    string
	n         int
}

func (s fnSet) name(i int) string { return fmt.Sprintf("%s%04d", s.prefix, i) }

// key is the OpenFaaS function_name of function i.
func (s fnSet) key(i int) string { return workload.Key(s.name(i), s.namespace) }

// isSync: every third function is a sync (request/response) function at one
// replica; the others are async functions at zero. Function 1 is async and
// function 3 sync, so that even a set of 3 has both.
func isSync(i int) bool { return i%3 == 0 }

// indices returns the indices of the set's sync or async functions.
func (s fnSet) indices(sync bool) []int {
	var out []int
	for i := 1; i <= s.n; i++ {
		if isSync(i) == sync {
			out = append(out, i)
		}
	}
	return out
}

// scenario is the emulator's workload: both sets, every function idle (no
// offered requests, no queued jobs) until a trial sets a rate or queues
// jobs through the emulator's control API.
func scenario(sets ...fnSet) (*workload.Scenario, error) {
	var b strings.Builder
	b.WriteString("apiVersion: tierscaler.io/v1alpha1\nkind: Scenario\nname: bench-vs-keda\nfunctions:\n")
	for _, s := range sets {
		for i := 1; i <= s.n; i++ {
			if isSync(i) {
				fmt.Fprintf(&b, "- {name: %s, namespace: %s, tier: sync, minReplicas: 1, maxReplicas: %d, maxInflight: %d, "+
					"requests: {cpu: 50m, memory: 64Mi}, sync: {rate: 0, requestDuration: %s}}\n",
					s.name(i), s.namespace, syncMax, maxInflight, syncDuration)
			} else {
				fmt.Fprintf(&b, "- {name: %s, namespace: %s, tier: async, minReplicas: 0, initialReplicas: 0, maxReplicas: %d, maxInflight: %d, "+
					"requests: {cpu: 50m, memory: 64Mi}, async: {jobDuration: %ds}}\n",
					s.name(i), s.namespace, asyncMax, maxInflight, asyncJobSeconds)
			}
		}
	}
	return workload.Parse([]byte(b.String()))
}

// createFunctions creates the scenario's Deployments as faas-netes would,
// with a few workers (thousands of them, one by one, take a minute).
func createFunctions(ctx context.Context, cs kubernetes.Interface, sc *workload.Scenario, workers int) error {
	parts := make([]*workload.Scenario, workers)
	for i := range parts {
		p := *sc
		p.Functions = nil
		parts[i] = &p
	}
	for i, f := range sc.Functions {
		parts[i%workers].Functions = append(parts[i%workers].Functions, f)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() {
			_, errs[i] = emulator.CreateFunctions(ctx, cs, p)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// replicaEvent is a change of a Deployment seen by the recorder.
type replicaEvent struct {
	at             time.Time
	spec, ready    int32
	specOK, readOK bool
}

// recorder watches the function Deployments of some namespaces and keeps,
// for each, the time of every change of spec.replicas and
// status.readyReplicas, as the informer delivers them.
type recorder struct {
	mu      sync.Mutex
	events  map[string][]replicaEvent // namespace/name -> changes
	notify  chan struct{}
	factory []informers.SharedInformerFactory
	cancel  context.CancelFunc
}

func newRecorder(ctx context.Context, cs kubernetes.Interface, namespaces ...string) (_ *recorder, err error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &recorder{events: map[string][]replicaEvent{}, notify: make(chan struct{}), cancel: cancel}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = policy.LabelFunction }))
		inf := f.Apps().V1().Deployments().Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { r.observe(nil, obj) },
			UpdateFunc: func(old, obj any) { r.observe(old, obj) },
		}); err != nil {
			return nil, err
		}
		r.factory = append(r.factory, f)
		f.Start(ctx.Done())
	}
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, f := range r.factory {
		for typ, ok := range f.WaitForCacheSync(syncCtx.Done()) {
			if !ok {
				return nil, fmt.Errorf("the %v informer did not sync", typ)
			}
		}
	}
	return r, nil
}

func (r *recorder) observe(oldObj, obj any) {
	now := time.Now()
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return
	}
	ev := replicaEvent{at: now, spec: replicas(d), ready: d.Status.ReadyReplicas}
	if old, ok := oldObj.(*appsv1.Deployment); ok {
		ev.specOK = replicas(old) != ev.spec
		ev.readOK = old.Status.ReadyReplicas != ev.ready
		if !ev.specOK && !ev.readOK {
			return
		}
	}
	id := d.Namespace + "/" + d.Name
	r.mu.Lock()
	r.events[id] = append(r.events[id], ev)
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// waitFor waits until cond holds for some event of namespace/name at or
// after since, and returns that event's time.
func (r *recorder) waitFor(ctx context.Context, namespace, name string, since time.Time, cond func(replicaEvent) bool) (time.Time, error) {
	id := namespace + "/" + name
	for {
		r.mu.Lock()
		for _, ev := range r.events[id] {
			if !ev.at.Before(since) && cond(ev) {
				r.mu.Unlock()
				return ev.at, nil
			}
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-ch:
		}
	}
}

// current returns the last observed spec and ready replicas of a
// Deployment.
func (r *recorder) current(namespace, name string) (spec, ready int32, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.events[namespace+"/"+name]
	if len(evs) == 0 {
		return 0, 0, false
	}
	last := evs[len(evs)-1]
	return last.spec, last.ready, true
}

// count counts the Deployments of namespace whose last observed replicas
// satisfy pred.
func (r *recorder) count(namespace string, pred func(spec, ready int32) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id, evs := range r.events {
		if strings.HasPrefix(id, namespace+"/") && len(evs) > 0 && pred(evs[len(evs)-1].spec, evs[len(evs)-1].ready) {
			n++
		}
	}
	return n
}

func (r *recorder) stop() {
	r.cancel()
	for _, f := range r.factory {
		f.Shutdown()
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// Source tells the emulator what the cluster runs. Snapshot is called once
// per tick and must be safe for concurrent use.
type Source interface {
	Snapshot() Cluster
}

// Provider writes function Deployments for the emulator's OpenFaaS
// controls (a redeploy, the CE provider's watcher, the gateway's scale
// from zero), as faas-netes does: read the Deployment, change it, write it
// back whole with the field manager openfaas.FieldManager. KubeSource and
// StaticSource are Providers. Its methods must be safe for concurrent use.
type Provider interface {
	// Get returns a copy of the function's Deployment (key name.namespace);
	// an error that apierrors.IsNotFound recognises when there is none.
	Get(ctx context.Context, key string) (*appsv1.Deployment, error)
	// Update writes d; a stale resourceVersion is an error that
	// apierrors.IsConflict recognises.
	Update(ctx context.Context, d *appsv1.Deployment) error
}

// Cluster is a snapshot of the functions' Deployments and Pods.
type Cluster struct {
	// Deployments maps a function key (name.namespace) to its Deployment's
	// desired replicas.
	Deployments map[string]int32
	// Pods are the functions' pods.
	Pods []Pod
}

// Pod is one function pod.
type Pod struct {
	Namespace, Name string
	// Function is the pod's faas_function label.
	Function string
	// Running: the pod's containers run (phase Running), so cadvisor would
	// report them. Ready: Running, Ready condition true and not terminating;
	// only Ready pods serve requests.
	Running, Ready bool
}

// Key is the OpenFaaS function_name of the pod's function.
func (p Pod) Key() string { return workload.Key(p.Function, p.Namespace) }

// ReadyCounts counts the Ready pods per function key.
func (c Cluster) ReadyCounts() map[string]int {
	n := map[string]int{}
	for _, p := range c.Pods {
		if p.Ready {
			n[p.Key()]++
		}
	}
	return n
}

// SplitKey splits a function key name.namespace at its last dot.
func SplitKey(key string) (name, namespace string, ok bool) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 || i == len(key)-1 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// StaticSource is a Source whose cluster is set by hand: for unit tests and
// for running the emulator without Kubernetes. As a Provider it keeps the
// Deployments written to it (their replicas become the cluster's desired
// replicas; pods stay as set) and records every write.
type StaticSource struct {
	mu      sync.Mutex
	c       Cluster
	objs    map[string]*appsv1.Deployment
	rv      int64
	updates []*appsv1.Deployment
}

// NewStaticSource returns an empty StaticSource.
func NewStaticSource() *StaticSource {
	return &StaticSource{c: Cluster{Deployments: map[string]int32{}}, objs: map[string]*appsv1.Deployment{}}
}

// Set replaces the whole cluster.
func (s *StaticSource) Set(c Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c = cloneCluster(c)
	for k := range s.objs {
		if _, ok := s.c.Deployments[k]; !ok {
			delete(s.objs, k)
		}
	}
}

// AddDeployment adds (or replaces) a function's Deployment object, and its
// desired replicas to the cluster.
func (s *StaticSource) AddDeployment(d *appsv1.Deployment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := workload.Key(d.Name, d.Namespace)
	s.rv++
	d = d.DeepCopy()
	d.ResourceVersion = strconv.FormatInt(s.rv, 10)
	s.objs[key] = d
	if s.c.Deployments == nil {
		s.c.Deployments = map[string]int32{}
	}
	s.c.Deployments[key] = desiredReplicas(d)
}

// Get returns the function's Deployment: the one added or written, else a
// bare faas_function Deployment at the cluster's desired replicas.
func (s *StaticSource) Get(_ context.Context, key string) (*appsv1.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ns, _ := SplitKey(key)
	if d, ok := s.objs[key]; ok {
		return d.DeepCopy(), nil
	}
	n, ok := s.c.Deployments[key]
	if !ok {
		return nil, apierrors.NewNotFound(appsv1.Resource("deployments"), name)
	}
	lbls := map[string]string{policy.LabelFunction: name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Spec: appsv1.DeploymentSpec{Replicas: &n,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(lbls)}}},
	}, nil
}

// Update stores d and sets the cluster's desired replicas to its replicas;
// a conflict when d's resourceVersion is not the stored one.
func (s *StaticSource) Update(_ context.Context, d *appsv1.Deployment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := workload.Key(d.Name, d.Namespace)
	if _, ok := s.c.Deployments[key]; !ok {
		return apierrors.NewNotFound(appsv1.Resource("deployments"), d.Name)
	}
	if cur, ok := s.objs[key]; ok && cur.ResourceVersion != d.ResourceVersion {
		return apierrors.NewConflict(appsv1.Resource("deployments"), d.Name, errors.New("the object has been modified"))
	}
	s.rv++
	d = d.DeepCopy()
	d.ResourceVersion = strconv.FormatInt(s.rv, 10)
	s.objs[key] = d
	s.c.Deployments[key] = desiredReplicas(d)
	s.updates = append(s.updates, d.DeepCopy())
	return nil
}

// Updates returns the Deployments written through Update, oldest first.
func (s *StaticSource) Updates() []*appsv1.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updates)
}

// SetReady gives the function key a Deployment of n desired replicas and n
// Running, Ready pods named <name>-<i>, replacing its other pods.
func (s *StaticSource) SetReady(key string, n int) error {
	name, ns, ok := SplitKey(key)
	if !ok {
		return fmt.Errorf("function %q: want name.namespace", key)
	}
	if n < 0 {
		return fmt.Errorf("function %s: ready replicas %d is negative", key, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c.Deployments == nil {
		s.c.Deployments = map[string]int32{}
	}
	s.c.Deployments[key] = int32(n)
	if d, ok := s.objs[key]; ok {
		d = d.DeepCopy()
		r := int32(n)
		d.Spec.Replicas = &r
		s.objs[key] = d
	}
	s.c.Pods = slices.DeleteFunc(s.c.Pods, func(p Pod) bool { return p.Key() == key })
	for i := range n {
		s.c.Pods = append(s.c.Pods, Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, i), Function: name, Running: true, Ready: true})
	}
	return nil
}

// Snapshot returns a copy of the cluster.
func (s *StaticSource) Snapshot() Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneCluster(s.c)
}

func cloneCluster(c Cluster) Cluster {
	out := Cluster{Deployments: make(map[string]int32, len(c.Deployments)), Pods: slices.Clone(c.Pods)}
	for k, v := range c.Deployments {
		out.Deployments[k] = v
	}
	return out
}

// KubeSource is a Source that watches the function Deployments and Pods
// (label faas_function) of some namespaces with client-go informers, and a
// Provider that writes through the API server.
type KubeSource struct {
	client    kubernetes.Interface
	cancel    context.CancelFunc
	factories []informers.SharedInformerFactory
	deps      []appslisters.DeploymentLister
	pods      []corelisters.PodLister
}

// SyncTimeout bounds NewKubeSource's wait for the informer caches.
const SyncTimeout = time.Minute

// NewKubeSource starts informers on the function Deployments and Pods of
// each namespace and returns once their caches are in sync (at most
// SyncTimeout). They stop when ctx is done or Stop is called.
func NewKubeSource(ctx context.Context, client kubernetes.Interface, namespaces []string) (*KubeSource, error) {
	ctx, cancel := context.WithCancel(ctx)
	ks := &KubeSource{client: client, cancel: cancel}
	for _, ns := range dedupe(namespaces) {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = policy.LabelFunction }))
		ks.deps = append(ks.deps, f.Apps().V1().Deployments().Lister())
		ks.pods = append(ks.pods, f.Core().V1().Pods().Lister())
		ks.factories = append(ks.factories, f)
	}
	waitCtx, cancel := context.WithTimeout(ctx, SyncTimeout)
	defer cancel()
	for i, f := range ks.factories {
		f.Start(ctx.Done())
		for typ, ok := range f.WaitForCacheSync(waitCtx.Done()) {
			if !ok {
				ks.Stop()
				return nil, fmt.Errorf("watching %s in namespace %s: the informer cache did not sync: %v", typ, dedupe(namespaces)[i], waitCtx.Err())
			}
		}
	}
	return ks, nil
}

// Stop stops the informers and waits for them.
func (ks *KubeSource) Stop() {
	ks.cancel()
	for _, f := range ks.factories {
		f.Shutdown()
	}
}

// Snapshot lists the cached Deployments and Pods.
func (ks *KubeSource) Snapshot() Cluster {
	c := Cluster{Deployments: map[string]int32{}}
	for _, l := range ks.deps {
		deps, _ := l.List(labels.Everything())
		for _, d := range deps {
			if fn := d.Labels[policy.LabelFunction]; fn != "" {
				c.Deployments[workload.Key(fn, d.Namespace)] = desiredReplicas(d)
			}
		}
	}
	for _, l := range ks.pods {
		pods, _ := l.List(labels.Everything())
		for _, p := range pods {
			fn := p.Labels[policy.LabelFunction]
			if fn == "" {
				continue
			}
			running := p.Status.Phase == corev1.PodRunning
			c.Pods = append(c.Pods, Pod{
				Namespace: p.Namespace, Name: p.Name, Function: fn,
				Running: running,
				Ready:   running && p.DeletionTimestamp == nil && podReady(p),
			})
		}
	}
	slices.SortFunc(c.Pods, func(a, b Pod) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return c
}

// Get reads the function's Deployment from the API server.
func (ks *KubeSource) Get(ctx context.Context, key string) (*appsv1.Deployment, error) {
	name, ns, ok := SplitKey(key)
	if !ok {
		return nil, fmt.Errorf("function %q: want name.namespace", key)
	}
	return ks.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
}

// Update writes d whole, with faas-netes' field manager.
func (ks *KubeSource) Update(ctx context.Context, d *appsv1.Deployment) error {
	_, err := ks.client.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: openfaas.FieldManager})
	return err
}

func desiredReplicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func dedupe(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tierscaler/tierscaler/policy"
)

// fakeQuerier answers queries from a table keyed by the policy query's name.
type fakeQuerier struct {
	mu      sync.Mutex
	byExpr  map[string]string // expression -> query name
	results map[string]model.Vector
	// warnings come with a query's answer.
	warnings map[string][]string
	errs     map[string]error
	calls    int
	delay    time.Duration
}

func newFakeQuerier(p *policy.Policy) *fakeQuerier {
	q := &fakeQuerier{byExpr: map[string]string{}, results: map[string]model.Vector{}, warnings: map[string][]string{}, errs: map[string]error{}}
	for _, nq := range queries(p) {
		q.byExpr[nq.expr] = nq.name
	}
	return q
}

func (q *fakeQuerier) Query(ctx context.Context, expr string, _ time.Time) (model.Vector, []string, error) {
	q.mu.Lock()
	q.calls++
	name := q.byExpr[expr]
	res, warn, err, delay := q.results[name], q.warnings[name], q.errs[name], q.delay
	q.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return res, warn, err
}

func (q *fakeQuerier) warn(name string, warnings ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.warnings[name] = warnings
}

func (q *fakeQuerier) set(name string, v model.Vector) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.results[name] = v
}

func (q *fakeQuerier) fail(name string, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.errs[name] = err
}

func (q *fakeQuerier) callCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls
}

// fnSample is a sample keyed by function_name.
func fnSample(key string, v float64) *model.Sample {
	return &model.Sample{Metric: model.Metric{"function_name": model.LabelValue(key)}, Value: model.SampleValue(v)}
}

// podSample is a sample keyed by namespace and pod.
func podSample(ns, pod string, v float64) *model.Sample {
	return &model.Sample{Metric: model.Metric{"namespace": model.LabelValue(ns), "pod": model.LabelValue(pod)}, Value: model.SampleValue(v)}
}

// fakeCluster is an in-memory Cluster: Scale changes the Deployment and its
// pods the way the deployment controller and scheduler would, instantly.
type fakeCluster struct {
	mu        sync.Mutex
	st        ClusterState
	calls     []string
	scaleErr  map[string]error
	annotated map[string]map[string]string
	// reads counts State calls.
	reads int
}

func (c *fakeCluster) State(context.Context) (*ClusterState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	cp := ClusterState{
		Deployments: make([]appsv1.Deployment, len(c.st.Deployments)),
		Pods:        append([]corev1.Pod(nil), c.st.Pods...),
		Nodes:       append([]corev1.Node(nil), c.st.Nodes...),
		Quotas:      append([]corev1.ResourceQuota(nil), c.st.Quotas...),
	}
	for i := range c.st.Deployments {
		cp.Deployments[i] = *c.st.Deployments[i].DeepCopy()
	}
	return &cp, nil
}

func (c *fakeCluster) Scale(_ context.Context, d *appsv1.Deployment, from, to int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := d.Name + "." + d.Namespace
	c.calls = append(c.calls, fmt.Sprintf("scale %s %d->%d", d.Name, from, to))
	if err := c.scaleErr[key]; err != nil {
		return err
	}
	for i := range c.st.Deployments {
		cur := &c.st.Deployments[i]
		if cur.Name == d.Name && cur.Namespace == d.Namespace {
			if *cur.Spec.Replicas != from {
				return ErrChanged
			}
			cur.Spec.Replicas = &to
			cur.Generation++
		}
	}
	return nil
}

func (c *fakeCluster) Annotate(_ context.Context, d *appsv1.Deployment, ann map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf("annotate %s %v", d.Name, ann))
	if c.annotated == nil {
		c.annotated = map[string]map[string]string{}
	}
	c.annotated[d.Name] = ann
	for i := range c.st.Deployments {
		cur := &c.st.Deployments[i]
		if cur.Name == d.Name && cur.Namespace == d.Namespace {
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			for k, v := range ann {
				cur.Annotations[k] = v
			}
		}
	}
	return nil
}

// setReplicas changes a Deployment's replicas as another actor would.
func (c *fakeCluster) setReplicas(name string, n int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Deployments {
		if c.st.Deployments[i].Name == name {
			c.st.Deployments[i].Spec.Replicas = &n
			c.st.Deployments[i].Generation++
		}
	}
}

func (c *fakeCluster) replicas(name string) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Deployments {
		if c.st.Deployments[i].Name == name {
			return *c.st.Deployments[i].Spec.Replicas
		}
	}
	return -1
}

func (c *fakeCluster) setReady(name string, n int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Deployments {
		if c.st.Deployments[i].Name == name {
			c.st.Deployments[i].Status.ReadyReplicas = n
		}
	}
}

func (c *fakeCluster) scaleCalls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.calls {
		if strings.HasPrefix(s, "scale ") {
			out = append(out, s)
		}
	}
	return out
}

func (c *fakeCluster) allCalls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// deployment builds an OpenFaaS-shaped function Deployment with bound,
// Ready pods on node n1.
type depOpt func(*appsv1.Deployment)

func deployment(name string, replicas int32, opts ...depOpt) appsv1.Deployment {
	d := appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "openfaas-fn", Generation: 1,
			Labels: map[string]string{"faas_function": name}, Annotations: map[string]string{}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: name, Env: []corev1.EnvVar{{Name: "max_inflight", Value: "4"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
			}}}},
		},
		Status: appsv1.DeploymentStatus{ReadyReplicas: replicas},
	}
	for _, o := range opts {
		o(&d)
	}
	return d
}

func annotated(k, v string) depOpt {
	return func(d *appsv1.Deployment) { d.Annotations[k] = v }
}

// pods returns the Ready pods of d bound to node.
func pods(d appsv1.Deployment, node string) []corev1.Pod {
	var out []corev1.Pod
	for i := int32(0); i < *d.Spec.Replicas; i++ {
		out = append(out, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", d.Name, i), Namespace: d.Namespace, Labels: map[string]string{"faas_function": d.Name}},
			Spec:       *d.Spec.Template.Spec.DeepCopy(),
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
		out[len(out)-1].Spec.NodeName = node
	}
	return out
}

func node(name, cpu, mem string) corev1.Node {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem), corev1.ResourcePods: resource.MustParse("110")}
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Allocatable: rl, Capacity: rl,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

// recordedEvent is one Eventf call.
type recordedEvent struct {
	object, related, kind, reason, note string
}

type fakeRecorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (r *fakeRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, _ string, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := recordedEvent{kind: eventtype, reason: reason, note: fmt.Sprintf(note, args...)}
	if d, ok := regarding.(*appsv1.Deployment); ok {
		e.object = d.Name
	}
	if d, ok := related.(*appsv1.Deployment); ok && d != nil {
		e.related = d.Name
	}
	r.events = append(r.events, e)
}

func (r *fakeRecorder) reasons(object string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.object == object {
			out = append(out, e.reason)
		}
	}
	return out
}

// fakeSink records what the controller reports.
type fakeSink struct {
	mu   sync.Mutex
	last []policy.Shortfall
	n    int
}

func (s *fakeSink) Sync(_ context.Context, _ time.Time, sf []policy.Shortfall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.n = append([]policy.Shortfall(nil), sf...), s.n+1
}

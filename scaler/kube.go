// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"bytes"
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tierscaler/tierscaler/policy"
)

// ClusterState is one cycle's view of the cluster. Objects read from the
// informer cache are shared with it and must not be modified.
type ClusterState struct {
	Deployments []appsv1.Deployment
	Pods        []corev1.Pod
	Nodes       []corev1.Node
	Quotas      []corev1.ResourceQuota
}

// CacheOptions returns the informer cache configuration: function
// Deployments, Pods and ResourceQuotas in the watched namespaces, and Nodes.
// With allPods, Pods are watched in every namespace so that node room counts
// every pod; without, only function namespaces are (less RBAC, less exact).
// Fields the controller never reads are stripped to save memory.
func CacheOptions(namespaces []string, allPods bool) cache.Options {
	hasFunction, _ := labels.NewRequirement(policy.LabelFunction, selection.Exists, nil)
	fnNamespaces := map[string]cache.Config{}
	for _, ns := range namespaces {
		fnNamespaces[ns] = cache.Config{}
	}
	podConfig := cache.ByObject{Transform: stripPod}
	if !allPods {
		podConfig.Namespaces = fnNamespaces
	}
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:    {Namespaces: fnNamespaces, Label: labels.NewSelector().Add(*hasFunction)},
			&corev1.Pod{}:           podConfig,
			&corev1.ResourceQuota{}: {Namespaces: fnNamespaces},
			&corev1.Node{}:          {Transform: stripNode},
		},
	}
}

// stripPod drops what the controller does not read from a cached Pod.
func stripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	p.Annotations = nil
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		c.Env, c.EnvFrom, c.VolumeMounts, c.Command, c.Args = nil, nil, nil, nil, nil
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe = nil, nil, nil
	}
	p.Spec.Volumes = nil
	p.Status.ContainerStatuses, p.Status.InitContainerStatuses = nil, nil
	return p, nil
}

// stripNode drops what the controller does not read from a cached Node.
func stripNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Status.Images = nil
	n.Status.VolumesAttached, n.Status.VolumesInUse = nil, nil
	return n, nil
}

// readCluster lists everything the snapshot needs from the cache: one List
// per kind and namespace, never one per function.
func readCluster(ctx context.Context, r client.Reader, namespaces []string) (*ClusterState, error) {
	st := &ClusterState{}
	for _, ns := range namespaces {
		var deps appsv1.DeploymentList
		if err := r.List(ctx, &deps, client.InNamespace(ns), client.HasLabels{policy.LabelFunction}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("list deployments in %s: %w", ns, err)
		}
		st.Deployments = append(st.Deployments, deps.Items...)
		var quotas corev1.ResourceQuotaList
		if err := r.List(ctx, &quotas, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("list resourcequotas in %s: %w", ns, err)
		}
		st.Quotas = append(st.Quotas, quotas.Items...)
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	st.Pods = pods.Items
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	st.Nodes = nodes.Items
	return st, nil
}

// podRequests is what the scheduler counts for a pod: the larger of the sum
// of its containers (with restartable init containers) and its largest init
// container, plus the pod overhead.
func podRequests(p *corev1.PodSpec) policy.Resources {
	var sum, initMax policy.Resources
	var sidecars policy.Resources
	for i := range p.InitContainers {
		c := &p.InitContainers[i]
		r := containerRequests(c.Resources.Requests)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = sidecars.Add(r)
			continue
		}
		r = r.Add(sidecars)
		initMax.MilliCPU = max(initMax.MilliCPU, r.MilliCPU)
		initMax.Memory = max(initMax.Memory, r.Memory)
	}
	for i := range p.Containers {
		sum = sum.Add(containerRequests(p.Containers[i].Resources.Requests))
	}
	sum = sum.Add(sidecars)
	sum.MilliCPU = max(sum.MilliCPU, initMax.MilliCPU)
	sum.Memory = max(sum.Memory, initMax.Memory)
	if p.Overhead != nil {
		sum = sum.Add(containerRequests(p.Overhead))
	}
	sum.Pods = 1
	return sum
}

func containerRequests(rl corev1.ResourceList) policy.Resources {
	var r policy.Resources
	if q, ok := rl[corev1.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := rl[corev1.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	return r
}

// podLimits sums the containers' limits.
func podLimits(p *corev1.PodSpec) policy.Resources {
	var r policy.Resources
	for i := range p.Containers {
		r = r.Add(containerRequests(p.Containers[i].Resources.Limits))
	}
	return r
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeSchedulable is false for cordoned and not-Ready nodes and for nodes
// with NoSchedule or NoExecute taints (function pods are assumed not to
// tolerate them).
func nodeSchedulable(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeResources(rl corev1.ResourceList) policy.Resources {
	r := containerRequests(rl)
	if q, ok := rl[corev1.ResourcePods]; ok {
		r.Pods = q.Value()
	}
	return r
}

// quotaHeadroom is hard minus used over every quota of a namespace, the
// tightest per dimension; dimensions no quota limits are Unlimited.
func quotaHeadroom(quotas []corev1.ResourceQuota) map[string]policy.Resources {
	out := map[string]policy.Resources{}
	dims := []struct {
		names []corev1.ResourceName
		get   func(*policy.Resources) *int64
		milli bool
	}{
		{[]corev1.ResourceName{corev1.ResourceRequestsCPU, corev1.ResourceCPU}, func(r *policy.Resources) *int64 { return &r.MilliCPU }, true},
		{[]corev1.ResourceName{corev1.ResourceRequestsMemory, corev1.ResourceMemory}, func(r *policy.Resources) *int64 { return &r.Memory }, false},
		{[]corev1.ResourceName{corev1.ResourcePods}, func(r *policy.Resources) *int64 { return &r.Pods }, false},
	}
	for i := range quotas {
		q := &quotas[i]
		h, ok := out[q.Namespace]
		if !ok {
			h = policy.Resources{MilliCPU: policy.Unlimited, Memory: policy.Unlimited, Pods: policy.Unlimited}
		}
		for _, d := range dims {
			for _, name := range d.names {
				hard, ok := q.Status.Hard[name]
				if !ok {
					hard, ok = q.Spec.Hard[name]
				}
				if !ok {
					continue
				}
				used := q.Status.Used[name]
				left := value(hard, d.milli) - value(used, d.milli)
				if p := d.get(&h); left < *p {
					*p = max(left, 0)
				}
			}
		}
		out[q.Namespace] = h
	}
	return out
}

func value(q resource.Quantity, milli bool) int64 {
	if milli {
		return q.MilliValue()
	}
	return q.Value()
}

// lastReplicaChange is the newest time any field manager other than the
// status writers changed spec.replicas, read from managedFields: it survives
// restarts without tierscaler writing anything.
func lastReplicaChange(d *appsv1.Deployment) time.Time {
	var t time.Time
	for i := range d.ManagedFields {
		mf := &d.ManagedFields[i]
		if mf.Subresource == "status" || mf.Time == nil || mf.FieldsV1 == nil {
			continue
		}
		if bytes.Contains(mf.FieldsV1.Raw, []byte(`"f:replicas"`)) && mf.Time.After(t) {
			t = mf.Time.Time
		}
	}
	return t
}

// containerEnv returns the environment of the function's container: the one
// named like the function, else the first.
func containerEnv(d *appsv1.Deployment) map[string]string {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		return nil
	}
	c := &cs[0]
	for i := range cs {
		if cs[i].Name == d.Name {
			c = &cs[i]
		}
	}
	env := make(map[string]string, len(c.Env))
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
	"github.com/tierscaler/tierscaler/workload"
)

// tierIndex numbers the tiers for per-tier accounting: sync, cron, async.
func tierIndex(t policy.Tier) int {
	switch t {
	case policy.TierCron:
		return 1
	case policy.TierAsync:
		return 2
	default:
		return 0
	}
}

// ClusterOptions configure a simulated Cluster.
type ClusterOptions struct {
	// Now is the virtual clock (required).
	Now func() time.Time
	// Manager is the field manager recorded in a Deployment's managedFields
	// on every scale. Default: scaler.FieldManager.
	Manager string
	// Namespaces are the namespaces whose Deployments State returns (nil:
	// all), as tierscaler watches only its policy's namespaces. Pods and
	// nodes are always returned whole.
	Namespaces []string
	// CEProvider turns the OpenFaaS CE provider's watcher on (see
	// SetCEProvider).
	CEProvider bool
}

// Cluster is a simulated Kubernetes cluster: the scenario's nodes, one
// Deployment per function built as faas-netes would (openfaas.WorkloadDeployment),
// a ReplicaSet that creates and removes pods at once, and a scheduler. It
// implements scaler.Cluster, so the real controller drives it.
//
//   - Scheduling: pending pods are taken in creation order; each goes to
//     the feasible node (CPU, memory and a pod slot free) with the most free
//     CPU, ties to the first node, as kube-scheduler's least-allocated
//     scoring would. A pod that fits nowhere stays Pending and is retried
//     whenever room may have freed (fragmentation is real: free room is
//     never summed across nodes).
//   - Start latency: a bound pod becomes Ready (phase Running, condition
//     Ready) the scenario's podStartLatency after it was bound. Readiness
//     is applied by Advance, never inside Scale.
//   - Scale-down removes pods at once, in the ReplicaSet's order: pending
//     pods first, then bound pods that are not Ready, then Ready pods;
//     newest first within each group.
//   - Scale records a managedFields entry (the manager, subresource scale,
//     f:spec.f:replicas, the virtual time), which is where the controller
//     reads the time of the last replica change.
//   - Annotate merges annotations; tierscaler persists tierscaler.io/last-run
//     through it.
//
// Every change of a Deployment publishes a new object with a new
// resourceVersion; objects handed out by State are never modified
// afterwards, as objects of an informer cache are not. A Cluster is safe for
// concurrent use.
type Cluster struct {
	mu         sync.Mutex
	now        func() time.Time
	manager    string
	namespaces map[string]bool
	latency    time.Duration

	nodeShape nodeShape
	nodes     []*simNode
	deps      []*simDeployment // sorted by key
	byKey     map[string]*simDeployment
	// pending are the unbound pods in creation order; starting the bound
	// pods not yet Ready in readiness order (binding times only grow and the
	// latency is constant, so a FIFO is ordered).
	pending  []*simPod
	starting []*simPod
	rv       int64
	seq      int64
	// gone are the removed pods that had been Ready, for a while after
	// their removal (keepGone): Prometheus still has their samples.
	gone []*simPod
	// ready counts the Ready pods per function key; desired is each
	// function's desired replicas.
	ready   map[string]int
	desired map[string]int32

	schedDirty bool
	depObjs    []appsv1.Deployment
	depsDirty  bool
	podObjs    []corev1.Pod
	podsDirty  bool
	nodeObjs   []corev1.Node
	nodesDirty bool

	onUpdate func(old, cur *appsv1.Deployment, at time.Time)
	events   []updateEvent

	// scenario and fns are the scenario's name and functions, for
	// Redeploy; ce: the CE provider's watcher is on; ceReverts and
	// fromZero count its writes and the gateway's scale-ups from zero.
	scenario  string
	fns       map[string]workload.Function
	ce        bool
	ceReverts int
	fromZero  int

	// bound and boundPods are the requests and pods bound to nodes, per
	// tier; pendingPods the unbound pods per tier.
	bound       [3]policy.Resources
	boundPods   [3]int
	pendingPods [3]int
}

type updateEvent struct {
	old, cur *appsv1.Deployment
	at       time.Time
}

type nodeShape struct {
	cpu, memory resource.Quantity
	pods        int64
	alloc       policy.Resources
}

type simNode struct {
	name  string
	alloc policy.Resources
	used  policy.Resources
}

func (n *simNode) free() policy.Resources { return n.alloc.Sub(n.used) }

type simDeployment struct {
	key, name, namespace string
	tier                 int
	obj                  *appsv1.Deployment
	req                  policy.Resources
	pods                 []*simPod // creation order
	seq                  int
	// dirty: the status must be recomputed and republished.
	dirty bool
}

type simPod struct {
	dep              *simDeployment
	name             string
	node             *simNode
	created, readyAt time.Time
	ready, gone      bool
	goneAt           time.Time
	id               int64
	// cpuBase is the querier's cpuAcc of the pod's function at the pod's
	// first scrape as Ready (hasCPUBase: known): the pod's cadvisor CPU
	// counter is cpuAcc minus cpuBase.
	cpuBase    float64
	hasCPUBase bool
}

// NewCluster builds the cluster of scenario s (defaulted and validated, as
// workload.Parse leaves it): s.Nodes.Count nodes and one Deployment per
// function at its initialReplicas, its pods created and scheduled at
// o.Now(). The initial pods that fit are Ready at once (a settled
// cluster); those that do not stay Pending.
func NewCluster(s *workload.Scenario, o ClusterOptions) (*Cluster, error) {
	if o.Now == nil {
		return nil, fmt.Errorf("simulate: ClusterOptions.Now is required")
	}
	if o.Manager == "" {
		o.Manager = scaler.FieldManager
	}
	c := &Cluster{now: o.Now, manager: o.Manager, latency: s.PodStartLatency.Duration, byKey: map[string]*simDeployment{}, ready: map[string]int{}, desired: map[string]int32{},
		scenario: s.Name, fns: map[string]workload.Function{}}
	if o.Namespaces != nil {
		c.namespaces = map[string]bool{}
		for _, ns := range o.Namespaces {
			c.namespaces[ns] = true
		}
	}
	cpu, err := resource.ParseQuantity(s.Nodes.CPU)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: nodes.cpu %q: %v", s.Name, s.Nodes.CPU, err)
	}
	mem, err := resource.ParseQuantity(s.Nodes.Memory)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: nodes.memory %q: %v", s.Name, s.Nodes.Memory, err)
	}
	c.nodeShape = nodeShape{cpu: cpu, memory: mem, pods: int64(s.Nodes.Pods),
		alloc: policy.Resources{MilliCPU: cpu.MilliValue(), Memory: mem.Value(), Pods: int64(s.Nodes.Pods)}}
	for range s.Nodes.Count {
		c.addNode()
	}
	now := c.now()
	for _, f := range s.Functions {
		d, err := openfaas.WorkloadDeployment(s.Name, f)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", s.Name, err)
		}
		key := workload.Key(d.Name, d.Namespace)
		if _, dup := c.byKey[key]; dup {
			return nil, fmt.Errorf("scenario %s: function %s appears twice", s.Name, key)
		}
		c.rv++
		d.ResourceVersion = strconv.FormatInt(c.rv, 10)
		d.UID = types.UID("uid-" + key)
		d.Generation = 1
		d.CreationTimestamp = metav1.NewTime(now)
		sd := &simDeployment{key: key, name: d.Name, namespace: d.Namespace, tier: tierIndex(f.Tier), obj: d,
			req: templateRequests(&d.Spec.Template.Spec)}
		c.deps = append(c.deps, sd)
		c.byKey[key] = sd
		c.fns[key] = f
		c.ready[key] = 0
		c.desired[key] = *d.Spec.Replicas
		c.resize(sd, *d.Spec.Replicas, now)
	}
	sort.Slice(c.deps, func(i, j int) bool { return c.deps[i].key < c.deps[j].key })
	c.schedule()
	c.settle(now)
	for _, d := range c.deps {
		c.publish(d, now)
	}
	c.events = nil
	if o.CEProvider {
		c.SetCEProvider(true)
		c.settle(now)
		c.flushStatus()
		c.events = nil
	}
	return c, nil
}

// templateRequests sums the containers' requests of a pod template, as the
// scheduler counts them (function pods have no init containers).
func templateRequests(spec *corev1.PodSpec) policy.Resources {
	r := policy.Resources{Pods: 1}
	for i := range spec.Containers {
		if q, ok := spec.Containers[i].Resources.Requests[corev1.ResourceCPU]; ok {
			r.MilliCPU += q.MilliValue()
		}
		if q, ok := spec.Containers[i].Resources.Requests[corev1.ResourceMemory]; ok {
			r.Memory += q.Value()
		}
	}
	return r
}

// AddNode adds a node of the scenario's shape and schedules pending pods
// on it. Called before the simulation starts (the static strategy grows
// its cluster so), the pods it takes are Ready at once, as NewCluster's.
func (c *Cluster) AddNode() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addNode()
	c.schedule()
	c.settle(c.now())
	c.flushStatus()
	c.events = nil
}

// settle makes every bound pod Ready at once: the simulation starts from a
// settled cluster, whose initial pods have been running for a while.
func (c *Cluster) settle(now time.Time) {
	for _, p := range c.starting {
		if !p.gone && !p.ready {
			p.ready, p.readyAt = true, now
			c.ready[p.dep.key]++
			c.touch(p.dep)
		}
	}
	c.starting = c.starting[:0]
}

func (c *Cluster) addNode() {
	c.nodes = append(c.nodes, &simNode{name: fmt.Sprintf("node-%02d", len(c.nodes)), alloc: c.nodeShape.alloc})
	c.nodesDirty = true
	c.schedDirty = true
}

// OnUpdate sets a function called, from Advance, for every Deployment
// update with the old and the new object, as an informer's update handler
// is (the controller learns startup times from it).
func (c *Cluster) OnUpdate(fn func(old, cur *appsv1.Deployment, at time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onUpdate = fn
}

// Nodes is the number of nodes.
func (c *Cluster) Nodes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// Allocatable is the sum of the nodes' allocatable resources.
func (c *Cluster) Allocatable() policy.Resources {
	c.mu.Lock()
	defer c.mu.Unlock()
	var r policy.Resources
	for _, n := range c.nodes {
		r = r.Add(n.alloc)
	}
	return r
}

// NodeShape is one node's allocatable resources.
func (c *Cluster) NodeShape() policy.Resources { return c.nodeShape.alloc }

// Pending is the number of pods no node has taken.
func (c *Cluster) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Usage is the cluster's use, per tier (index 0 sync, 1 cron, 2 async).
type Usage struct {
	// Reserved are the requests of the pods bound to a node.
	Reserved [3]policy.Resources
	// Bound and Pending count the pods bound to a node and the pods no node
	// has taken.
	Bound, Pending [3]int
}

// Usage returns the current reserved requests and pod counts.
func (c *Cluster) Usage() Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Usage{Reserved: c.bound, Bound: c.boundPods, Pending: c.pendingPods}
}

// ReadyCounts is the live map of Ready pods per function key. The model
// reads it; it changes only in Advance and Scale, and must not be modified.
func (c *Cluster) ReadyCounts() map[string]int { return c.ready }

// desiredMap is the live map of desired replicas per function key, as
// the gateway's service poll lists them. It changes only with the
// Deployments' replicas (Scale and the OpenFaaS controls), which the
// simulation's goroutine calls; it must not be modified.
func (c *Cluster) desiredMap() map[string]int32 { return c.desired }

// Replicas is a function's desired replicas (-1 for an unknown key).
func (c *Cluster) Replicas(key string) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.byKey[key]
	if !ok {
		return -1
	}
	return *d.obj.Spec.Replicas
}

// Deployment returns the current object of a function's Deployment (nil
// for an unknown key). It must not be modified.
func (c *Cluster) Deployment(key string) *appsv1.Deployment {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.byKey[key]; ok {
		return d.obj
	}
	return nil
}

// PodInfo describes one pod for tests and the querier.
type PodInfo struct {
	Namespace, Name, Function, Node string
	Created, ReadyAt                time.Time
	Ready                           bool
}

// Pods lists a function's pods in creation order.
func (c *Cluster) Pods(key string) []PodInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.byKey[key]
	if !ok {
		return nil
	}
	out := make([]PodInfo, 0, len(d.pods))
	for _, p := range d.pods {
		out = append(out, p.info())
	}
	return out
}

func (p *simPod) info() PodInfo {
	pi := PodInfo{Namespace: p.dep.namespace, Name: p.name, Function: p.dep.key, Created: p.created, Ready: p.ready}
	if p.node != nil {
		pi.Node, pi.ReadyAt = p.node.name, p.readyAt
	}
	return pi
}

// forEachReadyPod calls fn for every Ready pod, under the lock.
func (c *Cluster) forEachReadyPod(fn func(d *simDeployment, p *simPod)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.deps {
		for _, p := range d.pods {
			if p.ready {
				fn(d, p)
			}
		}
	}
}

// forEachScrapedPod calls fn, under the lock, for every Ready pod and
// every pod removed less than keepGone ago after it had been Ready (its
// goneAt is set).
func (c *Cluster) forEachScrapedPod(fn func(d *simDeployment, p *simPod)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.deps {
		for _, p := range d.pods {
			if p.ready {
				fn(d, p)
			}
		}
	}
	for _, p := range c.gone {
		fn(p.dep, p)
	}
}

// NextReady is the earliest time a bound pod becomes Ready (zero: none is
// starting).
func (c *Cluster) NextReady() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.starting {
		if !p.gone {
			return p.readyAt
		}
	}
	return time.Time{}
}

// Advance moves the cluster to t: bound pods whose start latency has passed
// become Ready, pending pods are scheduled where room has freed, and the
// Deployment updates since the last Advance are handed to the OnUpdate
// function.
func (c *Cluster) Advance(t time.Time) {
	c.mu.Lock()
	for len(c.starting) > 0 {
		p := c.starting[0]
		if p.gone {
			c.starting = c.starting[1:]
			continue
		}
		if p.readyAt.After(t) {
			break
		}
		c.starting = c.starting[1:]
		p.ready = true
		c.ready[p.dep.key]++
		c.touch(p.dep)
	}
	c.schedule()
	c.flushStatus()
	events, fn := c.events, c.onUpdate
	c.events = nil
	c.mu.Unlock()
	if fn != nil {
		for _, e := range events {
			fn(e.old, e.cur, e.at)
		}
	}
}

// touch marks a Deployment whose pods changed: its status must be
// republished.
func (c *Cluster) touch(d *simDeployment) {
	c.podsDirty = true
	d.dirty = true
}

func (c *Cluster) flushStatus() {
	now := c.now()
	for _, d := range c.deps {
		if d.dirty {
			d.dirty = false
			c.publish(d, now)
		}
	}
}

// publish recomputes d's status and, if it changed, publishes a new object.
func (c *Cluster) publish(d *simDeployment, now time.Time) {
	var ready, bound int32
	for _, p := range d.pods {
		if p.ready {
			ready++
		}
		if p.node != nil {
			bound++
		}
	}
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.obj.Generation,
		Replicas:           int32(len(d.pods)),
		UpdatedReplicas:    int32(len(d.pods)),
		ReadyReplicas:      ready,
		AvailableReplicas:  ready,
	}
	if n := int32(len(d.pods)) - ready; n > 0 {
		st.UnavailableReplicas = n
	}
	old := d.obj
	if old.Status.ObservedGeneration == st.ObservedGeneration && old.Status.Replicas == st.Replicas &&
		old.Status.ReadyReplicas == st.ReadyReplicas && old.Status.UnavailableReplicas == st.UnavailableReplicas {
		return
	}
	nd := *old
	nd.Status = st
	c.rv++
	nd.ResourceVersion = strconv.FormatInt(c.rv, 10)
	d.obj = &nd
	c.depsDirty = true
	c.events = append(c.events, updateEvent{old: old, cur: &nd, at: now})
}

// resize creates or removes pods so that d has n, in the ReplicaSet's
// order. Called with the lock held.
func (c *Cluster) resize(d *simDeployment, n int32, now time.Time) {
	for int32(len(d.pods)) < n {
		d.seq++
		c.seq++
		p := &simPod{dep: d, name: fmt.Sprintf("%s-%d", d.name, d.seq), created: now, id: c.seq}
		d.pods = append(d.pods, p)
		c.pending = append(c.pending, p)
		c.pendingPods[d.tier]++
		c.schedDirty = true
	}
	for int32(len(d.pods)) > n {
		victim := -1
		rank := func(p *simPod) int {
			switch {
			case p.node == nil:
				return 0
			case !p.ready:
				return 1
			default:
				return 2
			}
		}
		for i := len(d.pods) - 1; i >= 0; i-- { // newest first within a rank
			if victim < 0 || rank(d.pods[i]) < rank(d.pods[victim]) {
				victim = i
			}
		}
		p := d.pods[victim]
		d.pods = append(d.pods[:victim:victim], d.pods[victim+1:]...)
		c.remove(p)
	}
	c.touch(d)
}

// keepGone is how long the querier still sees a removed pod's samples.
const keepGone = 5 * time.Minute

// remove deletes a pod at once, returning its room to its node.
func (c *Cluster) remove(p *simPod) {
	p.gone = true
	d := p.dep
	if p.ready {
		now := c.now()
		p.goneAt = now
		keep := c.gone[:0]
		for _, g := range c.gone {
			if now.Sub(g.goneAt) < keepGone {
				keep = append(keep, g)
			}
		}
		c.gone = append(keep, p)
	}
	switch {
	case p.node == nil:
		for i, q := range c.pending {
			if q == p {
				c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
				break
			}
		}
		c.pendingPods[d.tier]--
	default:
		p.node.used = p.node.used.Sub(d.req)
		c.bound[d.tier] = c.bound[d.tier].Sub(d.req)
		c.boundPods[d.tier]--
		if p.ready {
			c.ready[d.key]--
		}
		c.schedDirty = true
	}
	c.podsDirty = true
}

// schedule binds pending pods, in creation order, each to the feasible
// node with the most free CPU. Called with the lock held.
func (c *Cluster) schedule() {
	if !c.schedDirty || len(c.pending) == 0 {
		c.schedDirty = false
		return
	}
	c.schedDirty = false
	now := c.now()
	keep := c.pending[:0]
	for _, p := range c.pending {
		var best *simNode
		for _, n := range c.nodes {
			f := n.free()
			if !f.Fits(p.dep.req) {
				continue
			}
			if best == nil || f.MilliCPU > best.free().MilliCPU {
				best = n
			}
		}
		if best == nil {
			keep = append(keep, p)
			continue
		}
		d := p.dep
		best.used = best.used.Add(d.req)
		p.node, p.readyAt = best, now.Add(c.latency)
		c.bound[d.tier] = c.bound[d.tier].Add(d.req)
		c.boundPods[d.tier]++
		c.pendingPods[d.tier]--
		c.starting = append(c.starting, p)
		c.touch(d)
	}
	clear(c.pending[len(keep):])
	c.pending = keep
}

// State returns the Deployments (of the watched namespaces), Pods and
// Nodes. The objects are shared and must not be modified.
func (c *Cluster) State(context.Context) (*scaler.ClusterState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.depsDirty || c.depObjs == nil {
		objs := make([]appsv1.Deployment, 0, len(c.deps))
		for _, d := range c.deps {
			if c.namespaces == nil || c.namespaces[d.namespace] {
				objs = append(objs, *d.obj)
			}
		}
		c.depObjs, c.depsDirty = objs, false
	}
	if c.podsDirty || c.podObjs == nil {
		var objs []corev1.Pod
		for _, d := range c.deps {
			for _, p := range d.pods {
				objs = append(objs, p.object())
			}
		}
		c.podObjs, c.podsDirty = objs, false
	}
	if c.nodesDirty || c.nodeObjs == nil {
		objs := make([]corev1.Node, 0, len(c.nodes))
		for _, n := range c.nodes {
			objs = append(objs, c.nodeObject(n))
		}
		c.nodeObjs, c.nodesDirty = objs, false
	}
	return &scaler.ClusterState{Deployments: c.depObjs, Pods: c.podObjs, Nodes: c.nodeObjs}, nil
}

var (
	podReadyConditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
	}
	podStartingConditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse},
	}
	podUnschedulableConditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable},
	}
	nodeReadyConditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
)

// object renders a pod as the API would show it.
func (p *simPod) object() corev1.Pod {
	d := p.dep
	tmpl := &d.obj.Spec.Template
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: d.namespace, Labels: tmpl.Labels,
			CreationTimestamp: metav1.NewTime(p.created)},
		Spec: tmpl.Spec,
	}
	switch {
	case p.node == nil:
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: podUnschedulableConditions}
	case p.ready:
		pod.Spec.NodeName = p.node.name
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: podReadyConditions}
	default:
		pod.Spec.NodeName = p.node.name
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: podStartingConditions}
	}
	return pod
}

func (c *Cluster) nodeObject(n *simNode) corev1.Node {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    c.nodeShape.cpu,
		corev1.ResourceMemory: c.nodeShape.memory,
		corev1.ResourcePods:   *resource.NewQuantity(c.nodeShape.pods, resource.DecimalSI),
	}
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name},
		Status:     corev1.NodeStatus{Capacity: rl, Allocatable: rl, Conditions: nodeReadyConditions},
	}
}

// Scale sets a Deployment's replicas, as a patch of the scale subresource:
// ErrChanged when its replicas are no longer from. Pods are created (and
// scheduled) or removed at once; a managedFields entry records the manager
// and the virtual time. With the CE provider on, its watcher then puts 0
// back to 1 and more than 5 back to 5.
func (c *Cluster) Scale(_ context.Context, d *appsv1.Deployment, from, to int32) error {
	if to < 0 {
		return fmt.Errorf("scale %s/%s to %d: replicas must not be negative", d.Namespace, d.Name, to)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sd, ok := c.byKey[workload.Key(d.Name, d.Namespace)]
	if !ok {
		return fmt.Errorf("scale %s/%s: no such Deployment in the simulated cluster", d.Namespace, d.Name)
	}
	if *sd.obj.Spec.Replicas != from {
		return scaler.ErrChanged
	}
	nd := *sd.obj
	replicas := to
	nd.Spec.Replicas = &replicas
	c.write(sd, &nd, c.manager, "scale", fieldsReplicas)
	c.ceWatch(sd)
	return nil
}

// The fields a managedFields entry records.
const (
	fieldsReplicas = `{"f:spec":{"f:replicas":{}}}`
	fieldsRedeploy = `{"f:metadata":{"f:annotations":{}},"f:spec":{"f:replicas":{},"f:template":{}}}`
)

// write publishes nd as sd's new object, written by manager (on
// subresource, "" for the main resource) with the given fields: a new
// generation when the spec changed, the manager's managedFields entry
// (another manager's ownership of spec.replicas moves to it when replicas
// are among its fields), a new resourceVersion, an update event, and the
// pods resized to its replicas. Called with the lock held.
func (c *Cluster) write(sd *simDeployment, nd *appsv1.Deployment, manager, subresource, fields string) {
	now := c.now()
	old := sd.obj
	nd.Generation++
	entry := metav1.ManagedFieldsEntry{
		Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1",
		Time: &metav1.Time{Time: now}, FieldsType: "FieldsV1", Subresource: subresource,
		FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)},
	}
	mf := make([]metav1.ManagedFieldsEntry, 0, len(nd.ManagedFields)+1)
	for _, e := range nd.ManagedFields {
		switch {
		case e.Manager == manager && e.Subresource == subresource:
		case e.FieldsV1 != nil && string(e.FieldsV1.Raw) == fieldsReplicas && strings.Contains(fields, `"f:replicas"`):
			// It owned only the replicas, which are the writer's now.
		default:
			mf = append(mf, e)
		}
	}
	nd.ManagedFields = append(mf, entry)
	c.rv++
	nd.ResourceVersion = strconv.FormatInt(c.rv, 10)
	sd.obj = nd
	c.depsDirty = true
	c.events = append(c.events, updateEvent{old: old, cur: nd, at: now})
	to := *nd.Spec.Replicas
	c.desired[sd.key] = to
	c.resize(sd, to, now)
	c.schedule()
	c.flushStatus()
}

// ceWatch is the OpenFaaS CE provider's Deployment watcher, when on: it
// puts a function Deployment at 0 back to 1 and above 5 back to 5, at once
// (openfaas.CEWatcherReplicas). Called with the lock held.
func (c *Cluster) ceWatch(sd *simDeployment) bool {
	if !c.ce || !openfaas.IsFunction(sd.obj) {
		return false
	}
	to, revert := openfaas.CEWatcherReplicas(*sd.obj.Spec.Replicas)
	if !revert {
		return false
	}
	nd := *sd.obj
	nd.Spec.Replicas = &to
	c.write(sd, &nd, openfaas.FieldManager, "", fieldsReplicas)
	c.ceReverts++
	return true
}

// SetCEProvider turns the OpenFaaS CE provider's Deployment watcher on or
// off. On, it acts on every Deployment at once (the informer's first list)
// and then on every replica change.
func (c *Cluster) SetCEProvider(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ce = on
	for _, sd := range c.deps {
		c.ceWatch(sd)
	}
	c.flushStatus()
}

// CEReverts counts the CE provider's writes.
func (c *Cluster) CEReverts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ceReverts
}

// Redeploy does to a function's Deployment what faas-cli deploy of the
// scenario's function does (openfaas.Redeploy, a full update by
// faas-netes): replicas back to com.openfaas.scale.min when positive,
// the annotations replaced by the function's own (tierscaler.io/last-run
// and anything else written since are gone), a fresh uid label on the pod
// template. The rollout that label starts is not modelled: the pods stay.
func (c *Cluster) Redeploy(key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sd, ok := c.byKey[key]
	if !ok {
		return fmt.Errorf("redeploy %s: no such Deployment in the simulated cluster", key)
	}
	req, err := openfaas.Request(c.scenario, c.fns[key])
	if err != nil {
		return fmt.Errorf("redeploy %s: %w", key, err)
	}
	c.write(sd, openfaas.Redeploy(sd.obj, req, c.now()), openfaas.FieldManager, "", fieldsRedeploy)
	c.ceWatch(sd)
	return nil
}

// ScaleFromZero is the gateway's scale from zero for an invocation of the
// function: when its desired replicas are 0, faas-netes sets them to its
// com.openfaas.scale.min, or 1 (capped at 5 with the CE provider on); true
// when it scaled. Otherwise the gateway only waits for a Ready replica.
func (c *Cluster) ScaleFromZero(key string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sd, ok := c.byKey[key]
	if !ok {
		return false, fmt.Errorf("scale %s from zero: no such Deployment in the simulated cluster", key)
	}
	if *sd.obj.Spec.Replicas != 0 {
		return false, nil
	}
	to := openfaas.ScaleFromZeroReplicas(openfaas.FunctionLabels(sd.obj))
	if c.ce {
		var err error
		if to, err = openfaas.CEScaleRequest(to); err != nil {
			return false, err
		}
	}
	nd := *sd.obj
	nd.Spec.Replicas = &to
	c.write(sd, &nd, openfaas.FieldManager, "", fieldsReplicas)
	c.fromZero++
	return true, nil
}

// ScaledFromZero counts the gateway's scale-ups from zero.
func (c *Cluster) ScaledFromZero() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fromZero
}

// Annotate merges annotations into a Deployment's metadata.
func (c *Cluster) Annotate(_ context.Context, d *appsv1.Deployment, annotations map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sd, ok := c.byKey[workload.Key(d.Name, d.Namespace)]
	if !ok {
		return fmt.Errorf("annotate %s/%s: no such Deployment in the simulated cluster", d.Namespace, d.Name)
	}
	nd := *sd.obj
	nd.Annotations = maps.Clone(nd.Annotations)
	if nd.Annotations == nil {
		nd.Annotations = map[string]string{}
	}
	maps.Copy(nd.Annotations, annotations)
	c.rv++
	nd.ResourceVersion = strconv.FormatInt(c.rv, 10)
	old := sd.obj
	sd.obj = &nd
	c.depsDirty = true
	c.events = append(c.events, updateEvent{old: old, cur: &nd, at: c.now()})
	return nil
}

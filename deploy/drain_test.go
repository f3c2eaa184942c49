// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

// TestDrain renders the chart and plays, with a small model of the
// scheduler's rules (node selector, taints and tolerations, topology
// spread) and of the eviction API (PodDisruptionBudget), what a cluster
// does with it: are all replicas placed at install, and does `kubectl
// drain` of a node finish? The defaults must not block a drain on a
// cluster with a single worker (and a tainted control-plane node, as kind
// and kubeadm make), and on a larger cluster a drained replica must find
// another node.
func TestDrain(t *testing.T) {
	worker := func(name string) simNode { return simNode{name: name} }
	controlPlane := simNode{name: "control-plane", taints: []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}}
	cases := []struct {
		name  string
		args  []string
		nodes []simNode
		drain string
		// wantDrained: the drain finishes; wantRunning: replicas Running
		// after it.
		wantDrained bool
		wantRunning int
	}{
		{name: "defaults, one worker and a control-plane node", nodes: []simNode{worker("w1"), controlPlane}, drain: "w1",
			wantDrained: true, wantRunning: 0},
		{name: "defaults, one worker", nodes: []simNode{worker("w1")}, drain: "w1", wantDrained: true, wantRunning: 0},
		{name: "defaults, two workers: the drained replica moves", nodes: []simNode{worker("w1"), worker("w2"), controlPlane}, drain: "w1",
			wantDrained: true, wantRunning: 2},
		{name: "budget on, three workers: the drain finishes, the replica moves", args: []string{"--set", "podDisruptionBudget.enabled=true"},
			nodes: []simNode{worker("w1"), worker("w2"), worker("w3")}, drain: "w2", wantDrained: true, wantRunning: 2},
		// Why the budget is off by default: with one worker no budget that
		// keeps a replica up lets the drain finish.
		{name: "budget on, one worker: the drain is blocked", args: []string{"--set", "podDisruptionBudget.enabled=true"},
			nodes: []simNode{worker("w1"), controlPlane}, drain: "w1", wantDrained: false, wantRunning: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := template(t, tc.args...)
			c := newSimCluster(t, m, tc.nodes)
			require.NoError(t, c.install(), "every replica is placed at install")
			drained, log := c.drain(tc.drain)
			require.Equal(t, tc.wantDrained, drained, "drain %s:\n%s", tc.drain, strings.Join(log, "\n"))
			require.Equal(t, tc.wantRunning, c.running(), "replicas Running after the drain:\n%s", strings.Join(log, "\n"))
		})
	}
}

type simNode struct {
	name   string
	labels map[string]string
	taints []corev1.Taint
}

type simPod struct {
	node string // "" while Pending
}

type simCluster struct {
	replicas int
	pod      corev1.PodSpec
	pdb      *policyv1.PodDisruptionBudget
	nodes    []simNode
	pods     []*simPod
}

func newSimCluster(t *testing.T, m manifests, nodes []simNode) *simCluster {
	t.Helper()
	d := get[appsv1.Deployment](t, m, "Deployment", release)
	c := &simCluster{replicas: int(*d.Spec.Replicas), pod: d.Spec.Template.Spec, nodes: slices.Clone(nodes)}
	for i := range c.nodes {
		if c.nodes[i].labels == nil {
			c.nodes[i].labels = map[string]string{}
		}
		c.nodes[i].labels[corev1.LabelHostname] = c.nodes[i].name
	}
	if _, ok := m.find("PodDisruptionBudget", release); ok {
		pdb := get[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", release)
		c.pdb = &pdb
	}
	for _, tsc := range c.pod.TopologySpreadConstraints {
		require.Equal(t, corev1.LabelHostname, tsc.TopologyKey, "the model knows hostname spreading only")
	}
	return c
}

// usable: the pod's node selector matches and it tolerates the taints.
func (c *simCluster) usable(n simNode) (affinity, taints bool) {
	affinity = true
	for k, v := range c.pod.NodeSelector {
		if n.labels[k] != v {
			affinity = false
		}
	}
	taints = true
	for _, taint := range n.taints {
		if taint.Effect != corev1.TaintEffectNoSchedule && taint.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !slices.ContainsFunc(c.pod.Tolerations, func(tol corev1.Toleration) bool { return tol.ToleratesTaint(klog.Background(), &taint, false) }) {
			taints = false
		}
	}
	return affinity, taints
}

// fits reports whether a new replica may go to node n: usable, and every
// DoNotSchedule spread constraint keeps its skew within maxSkew over the
// domains the constraint counts (nodeAffinityPolicy, nodeTaintsPolicy).
func (c *simCluster) fits(n simNode) bool {
	if a, tt := c.usable(n); !a || !tt {
		return false
	}
	for _, tsc := range c.pod.TopologySpreadConstraints {
		if tsc.WhenUnsatisfiable != corev1.DoNotSchedule {
			continue
		}
		honorAffinity := tsc.NodeAffinityPolicy == nil || *tsc.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor
		honorTaints := tsc.NodeTaintsPolicy != nil && *tsc.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor
		min := -1
		for _, d := range c.nodes {
			a, tt := c.usable(d)
			if (honorAffinity && !a) || (honorTaints && !tt) {
				continue
			}
			if k := c.on(d.name); min < 0 || k < min {
				min = k
			}
		}
		if min < 0 {
			min = 0
		}
		if c.on(n.name)+1-min > int(tsc.MaxSkew) {
			return false
		}
	}
	return true
}

func (c *simCluster) on(node string) int {
	k := 0
	for _, p := range c.pods {
		if p.node == node {
			k++
		}
	}
	return k
}

func (c *simCluster) running() int {
	k := 0
	for _, p := range c.pods {
		if p.node != "" {
			k++
		}
	}
	return k
}

// schedule places the Pending pods, each on the usable node with the
// fewest replicas that fits.
func (c *simCluster) schedule() {
	for _, p := range c.pods {
		if p.node != "" {
			continue
		}
		best := ""
		for _, n := range c.nodes {
			if c.fits(n) && (best == "" || c.on(n.name) < c.on(best)) {
				best = n.name
			}
		}
		p.node = best
	}
}

func (c *simCluster) install() error {
	for range c.replicas {
		c.pods = append(c.pods, &simPod{})
	}
	c.schedule()
	if r := c.running(); r != c.replicas {
		return fmt.Errorf("%d of %d replicas placed", r, c.replicas)
	}
	return nil
}

// evictionAllowed is the eviction API's check against the budget: the
// expected count is the Deployment's replicas, healthy the Running ones.
func (c *simCluster) evictionAllowed() bool {
	if c.pdb == nil {
		return true
	}
	healthy := c.running()
	var desired int
	switch {
	case c.pdb.Spec.MinAvailable != nil:
		v, _ := intstr.GetScaledValueFromIntOrPercent(c.pdb.Spec.MinAvailable, c.replicas, true)
		desired = v
	case c.pdb.Spec.MaxUnavailable != nil:
		v, _ := intstr.GetScaledValueFromIntOrPercent(c.pdb.Spec.MaxUnavailable, c.replicas, true)
		desired = c.replicas - v
	}
	return healthy-desired > 0
}

// drain cordons the node, then evicts its pods one by one as kubectl drain
// does, retrying while the budget refuses; each evicted replica is replaced
// and scheduled at once. It reports whether the node was emptied.
func (c *simCluster) drain(name string) (bool, []string) {
	var log []string
	for i := range c.nodes {
		if c.nodes[i].name == name {
			c.nodes[i].taints = append(c.nodes[i].taints, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	for attempt := 0; attempt < 10 && c.on(name) > 0; attempt++ {
		for _, p := range c.pods {
			if p.node != name {
				continue
			}
			if !c.evictionAllowed() {
				log = append(log, fmt.Sprintf("eviction refused by the budget (%d Running of %d)", c.running(), c.replicas))
				break
			}
			p.node = ""
			log = append(log, "evicted a replica from "+name)
			c.schedule()
			log = append(log, fmt.Sprintf("replacement: %q", p.node))
		}
	}
	return c.on(name) == 0, log
}

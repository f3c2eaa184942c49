// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
)

const (
	// kwokNodeAnnotation marks the nodes kwok manages.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// NodePoolLabel holds the pool (AddNodes' prefix) of a fake node.
	NodePoolLabel = "tierscaler.io/testenv-pool"
	// notReadyTaint is put on every new Node by the apiserver's
	// TaintNodesByCondition admission; with the nodelifecycle controller
	// off, the environment removes it once kwok reports the node Ready.
	notReadyTaint = "node.kubernetes.io/not-ready"
)

// AddNodes adds n fake nodes to the pool prefix, each with the given
// capacity and allocatable CPU and memory (Kubernetes quantities such as
// "4" and "8Gi") and Options.NodePods pods, and returns once all of them
// are Ready and schedulable. They are named <prefix>-<i>, numbered on from
// the pool's highest index, and labelled NodePoolLabel=<prefix>.
func (e *Env) AddNodes(ctx context.Context, prefix string, n int, cpu, memory string) error {
	if n <= 0 {
		return nil
	}
	cpuQ, err := resource.ParseQuantity(cpu)
	if err != nil {
		return fmt.Errorf("testenv: node cpu %q: %w", cpu, err)
	}
	memQ, err := resource.ParseQuantity(memory)
	if err != nil {
		return fmt.Errorf("testenv: node memory %q: %w", memory, err)
	}
	existing, err := e.poolNodes(ctx, prefix)
	if err != nil {
		return err
	}
	next := 0
	for _, node := range existing {
		if i, err := strconv.Atoi(strings.TrimPrefix(node.Name, prefix+"-")); err == nil && i >= next {
			next = i + 1
		}
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    cpuQ,
		corev1.ResourceMemory: memQ,
		corev1.ResourcePods:   *resource.NewQuantity(int64(e.opts.NodePods), resource.DecimalSI),
	}
	names := make([]string, 0, n)
	for i := next; i < next+n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
					NodePoolLabel:            prefix,
				},
				Annotations: map[string]string{
					kwokNodeAnnotation:             "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
			},
			Status: corev1.NodeStatus{
				Capacity:    resources.DeepCopy(),
				Allocatable: resources.DeepCopy(),
			},
		}
		if _, err := e.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("testenv: creating node %s: %w", name, err)
		}
		names = append(names, name)
	}
	return e.waitNodesSchedulable(ctx, names)
}

// waitNodesSchedulable waits for kwok to mark the nodes Ready, removing
// the not-ready taint from each as it does.
func (e *Env) waitNodesSchedulable(ctx context.Context, names []string) error {
	pending := slices.Clone(names)
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, e.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		var still []string
		for _, name := range pending {
			ok, err := e.makeSchedulable(ctx, name)
			if err != nil {
				last = err
			}
			if !ok {
				still = append(still, name)
			}
		}
		pending = still
		return len(pending) == 0, nil
	})
	if err != nil {
		if last == nil {
			last = errors.New("not Ready")
		}
		log := filepath.Join(e.Dir, Kwok+".log")
		return &ComponentError{Component: Kwok, Op: "make nodes " + strings.Join(pending, ", ") + " Ready",
			Log: log, Tail: tailLines(log, 20), Err: fmt.Errorf("%w (last: %v)", err, last)}
	}
	return nil
}

// makeSchedulable reports whether the node is Ready and untainted,
// removing the not-ready taint if the node is Ready.
func (e *Env) makeSchedulable(ctx context.Context, name string) (bool, error) {
	done := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := e.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !nodeReady(node) {
			return nil
		}
		kept := slices.DeleteFunc(slices.Clone(node.Spec.Taints), func(t corev1.Taint) bool { return t.Key == notReadyTaint })
		if len(kept) == len(node.Spec.Taints) {
			done = true
			return nil
		}
		node.Spec.Taints = kept
		if _, err := e.Clientset.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DeleteNodes deletes every fake node of the pool prefix, as a cluster
// autoscaler removing them would, and force-deletes the pods bound to them
// so that their controllers recreate them elsewhere (or leave them
// Pending).
func (e *Env) DeleteNodes(ctx context.Context, prefix string) error {
	nodes, err := e.poolNodes(ctx, prefix)
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, node := range nodes {
		if err := e.Clientset.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("testenv: deleting node %s: %w", node.Name, err)
		}
		pods, err := e.Clientset.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node.Name).String(),
		})
		if err != nil {
			return fmt.Errorf("testenv: listing pods of node %s: %w", node.Name, err)
		}
		for _, pod := range pods.Items {
			err := e.Clientset.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("testenv: deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
		}
	}
	return nil
}

func (e *Env) poolNodes(ctx context.Context, prefix string) ([]corev1.Node, error) {
	if prefix == "" {
		return nil, errors.New("testenv: empty node pool name")
	}
	list, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{NodePoolLabel: prefix}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: listing nodes of pool %s: %w", prefix, err)
	}
	return list.Items, nil
}

// CreateNamespace creates the namespace name (if it does not exist) and
// waits until its default ServiceAccount exists, so that pods can be
// created in it.
func (e *Env) CreateNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testenv: creating namespace %s: %w", name, err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, e.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := e.Clientset.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		log := filepath.Join(e.Dir, KubeControllerManager+".log")
		return &ComponentError{Component: KubeControllerManager, Op: "create the default ServiceAccount of namespace " + name,
			Log: log, Tail: tailLines(log, 20), Err: err}
	}
	return nil
}

// ServiceAccountToken returns a token of the ServiceAccount ns/sa from the
// TokenRequest API, valid for an hour. Requests made with it are
// authorized by RBAC as system:serviceaccount:<ns>:<sa>.
func (e *Env) ServiceAccountToken(ctx context.Context, ns, sa string) (string, error) {
	expiry := int64(3600)
	tr, err := e.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("testenv: token for ServiceAccount %s/%s: %w", ns, sa, err)
	}
	return tr.Status.Token, nil
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount ns/sa (with a token from ServiceAccountToken), with ns as
// its default namespace, and returns its path. Use it to run a binary as a
// chart's ServiceAccount.
func (e *Env) ServiceAccountKubeconfig(ctx context.Context, ns, sa string) (string, error) {
	token, err := e.ServiceAccountToken(ctx, ns, sa)
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.Dir, fmt.Sprintf("kubeconfig-%s-%s", ns, sa))
	if err := writeKubeconfig(path, e.APIServerURL, e.pki.caPEM, &clientcmdapi.AuthInfo{Token: token}, ns); err != nil {
		return "", fmt.Errorf("testenv: writing %s: %w", path, err)
	}
	return path, nil
}

func adminUser(p *pki) *clientcmdapi.AuthInfo {
	return &clientcmdapi.AuthInfo{ClientCertificateData: p.adminCertPEM, ClientKeyData: p.adminKeyPEM}
}

// writeKubeconfig writes a self-contained kubeconfig (mode 0600) for the
// apiserver at server.
func writeKubeconfig(path, server string, caPEM []byte, user *clientcmdapi.AuthInfo, namespace string) error {
	const name = "tierscaler-testenv"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = user
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = name
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}

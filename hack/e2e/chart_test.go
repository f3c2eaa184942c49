// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/scaler"
)

const (
	// releaseName and releaseNamespace are the chart README's: the Service
	// is then tierscaler.openfaas.
	releaseName      = "tierscaler"
	releaseNamespace = "openfaas"
	fnNamespace      = testenv.FunctionNamespace

	// systemPool is the node pool the chart's pods run on: tainted, so that
	// no function lands there, and unschedulable in tierscaler's eyes
	// (NoSchedule taint), so that its room is not counted.
	systemPool  = "e2e-system"
	systemTaint = "tierscaler.io/e2e-system"
)

// chartLabels select every object the chart renders (its
// tierscaler.labels helper), and the ReplicaSets and Pods of its Deployment.
const chartLabels = "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/managed-by=Helm"

// helmBinary is the helm hack/tools.sh builds: $TIERSCALER_BIN_DIR/helm, else
// <hack/tools.sh --bin-dir>/helm.
func helmBinary(t *testing.T) string {
	t.Helper()
	dir, err := testenv.BinDir()
	if err != nil {
		t.Fatalf("helm: %v (run `make tools`)", err)
	}
	p := filepath.Join(dir, "helm")
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("helm not found at %s: run `make tools`", p)
	}
	return p
}

// release is an installed chart.
type release struct {
	env      *testenv.Env
	helm     string
	home     string
	manifest []manifestObject // what `helm get manifest` listed after install
	removed  bool
}

type manifestObject struct {
	APIVersion, Kind, Namespace, Name string
}

func (o manifestObject) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// helmCmd runs helm against the environment, with its configuration, cache
// and data in a directory of its own.
func (r *release) helmCmd(ctx context.Context, args ...string) (string, error) {
	args = append(args, "--kubeconfig", r.env.Kubeconfig)
	cmd := exec.CommandContext(ctx, r.helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(r.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(r.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(r.home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// installChart runs helm install of the chart as release tierscaler in
// openfaas with values, waits until its Deployment is available (its pods
// run on kwok's system pool: no container runs), and uninstalls it when the
// test ends unless the test did.
func installChart(t *testing.T, e *testenv.Env, values string) *release {
	t.Helper()
	ctx := testContext(t)
	if err := e.CreateNamespace(ctx, releaseNamespace); err != nil {
		t.Fatal(err)
	}
	r := &release{env: e, helm: helmBinary(t), home: t.TempDir()}
	valuesFile := filepath.Join(r.home, "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := r.helmCmd(ctx, "install", releaseName, chartDir, "--namespace", releaseNamespace,
		"-f", valuesFile, "--wait", "--timeout", "3m"); err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install: %s", time.Since(start).Round(10*time.Millisecond))
	t.Cleanup(func() {
		if r.removed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := r.helmCmd(ctx, "uninstall", releaseName, "--namespace", releaseNamespace, "--wait", "--timeout", "90s"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	out, err := r.helmCmd(ctx, "get", "manifest", releaseName, "--namespace", releaseNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if r.manifest, err = parseManifest(out); err != nil {
		t.Fatalf("helm get manifest: %v", err)
	}
	return r
}

func parseManifest(text string) ([]manifestObject, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out []manifestObject
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if len(u.Object) == 0 {
			continue
		}
		out = append(out, manifestObject{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()})
	}
	return out, nil
}

// chartKinds are the kinds the chart renders (with the optional
// monitoring.coreos.com ones off), plus the ReplicaSets and Pods its
// Deployment creates, which carry the chart's labels too.
var chartKinds = []chartKind{
	{"ServiceAccount", schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true},
	{"Secret", schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	{"ConfigMap", schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
	{"Service", schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
	{"Pod", schema.GroupVersionResource{Version: "v1", Resource: "pods"}, true},
	{"Deployment", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true},
	{"ReplicaSet", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, true},
	{"PodDisruptionBudget", schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, true},
	{"Role", schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, true},
	{"RoleBinding", schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, true},
	{"ClusterRole", schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, false},
	{"ClusterRoleBinding", schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, false},
}

type chartKind struct {
	kind       string
	gvr        schema.GroupVersionResource
	namespaced bool
}

func kindOf(kind string) (chartKind, bool) {
	for _, k := range chartKinds {
		if k.kind == kind {
			return k, true
		}
	}
	return chartKind{}, false
}

// labelled lists, across chartKinds and every namespace, the objects that
// carry the chart's labels.
func labelled(ctx context.Context, dyn dynamic.Interface) ([]manifestObject, error) {
	var out []manifestObject
	for _, k := range chartKinds {
		var list *unstructured.UnstructuredList
		var err error
		opts := metav1.ListOptions{LabelSelector: chartLabels}
		if k.namespaced {
			list, err = dyn.Resource(k.gvr).Namespace(metav1.NamespaceAll).List(ctx, opts)
		} else {
			list, err = dyn.Resource(k.gvr).List(ctx, opts)
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", k.gvr.Resource, err)
		}
		for _, u := range list.Items {
			out = append(out, manifestObject{APIVersion: u.GetAPIVersion(), Kind: k.kind, Namespace: u.GetNamespace(), Name: u.GetName()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// checkManifestCovered checks that every object helm created carries the
// chart's labels and is of a kind chartKinds lists, so that the uninstall
// check below sees all of them.
func (r *release) checkManifestCovered(ctx context.Context, dyn dynamic.Interface) error {
	have, err := labelled(ctx, dyn)
	if err != nil {
		return err
	}
	var problems []string
	for _, o := range r.manifest {
		if _, ok := kindOf(o.Kind); !ok {
			problems = append(problems, fmt.Sprintf("%s: kind not covered by the e2e uninstall check (add it to chartKinds)", o))
			continue
		}
		if !slices.ContainsFunc(have, func(h manifestObject) bool {
			return h.Kind == o.Kind && h.Namespace == o.Namespace && h.Name == o.Name
		}) {
			problems = append(problems, fmt.Sprintf("%s: created by helm but not found with labels %s", o, chartLabels))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// uninstall runs helm uninstall and returns once helm reports it done.
func (r *release) uninstall(ctx context.Context) error {
	_, err := r.helmCmd(ctx, "uninstall", releaseName, "--namespace", releaseNamespace, "--wait", "--timeout", "90s")
	if err == nil {
		r.removed = true
	}
	return err
}

// remaining lists the objects of the manifest that still exist.
func (r *release) remaining(ctx context.Context, dyn dynamic.Interface) ([]string, error) {
	var left []string
	for _, o := range r.manifest {
		gv, err := schema.ParseGroupVersion(o.APIVersion)
		if err != nil {
			return nil, err
		}
		k, ok := kindOf(o.Kind)
		if !ok {
			return nil, fmt.Errorf("%s: unknown kind", o)
		}
		gvr := k.gvr
		gvr.Group, gvr.Version = gv.Group, gv.Version
		res := dyn.Resource(gvr)
		if k.namespaced {
			_, err = res.Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		} else {
			_, err = res.Get(ctx, o.Name, metav1.GetOptions{})
		}
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		default:
			left = append(left, o.String())
		}
	}
	return left, nil
}

// addSystemPool adds one node for the chart's own (kwok) pods, tainted so
// that functions never land on it. The chart values tolerate the taint and
// select the pool.
func addSystemPool(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := testContext(t)
	if err := e.AddNodes(ctx, systemPool, 1, "2", "4Gi"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.DeleteNodes(context.Background(), systemPool) })
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: testenv.NodePoolLabel + "=" + systemPool})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		patch := fmt.Sprintf(`{"spec":{"taints":[{"key":%q,"value":"true","effect":%q}]}}`, systemTaint, corev1.TaintEffectNoSchedule)
		if _, err := e.Clientset.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// chartPlacement are the values that put the chart's pods on the system pool.
var chartPlacement = fmt.Sprintf(`nodeSelector:
  %s: %s
tolerations:
  - {key: %s, operator: Exists, effect: NoSchedule}
`, testenv.NodePoolLabel, systemPool, systemTaint)

// seedLastRuns writes the last runs of functions (how long ago they last
// ran) into tierscaler's state, the ConfigMap the chart's Deployment names
// with --state-name, as an earlier tierscaler would have left them. Call it
// before tierscaler starts: it reads its state once, when it starts leading.
func seedLastRuns(t *testing.T, e *testenv.Env, ago map[string]time.Duration) {
	t.Helper()
	ctx := testContext(t)
	var dep appsv1.Deployment
	if err := e.Client.Get(ctx, clientKey(releaseNamespace, releaseName), &dep); err != nil {
		t.Fatalf("the chart's Deployment: %v", err)
	}
	name := ""
	for _, ctr := range dep.Spec.Template.Spec.Containers {
		if v := flagValue(ctr.Args, "--state-name"); v != "" {
			name = v
		}
	}
	if name == "" {
		t.Fatal("the chart's Deployment passes no --state-name")
	}
	// A clean slate: nothing left by an earlier test.
	if err := e.Clientset.CoreV1().ConfigMaps(releaseNamespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	now := time.Now()
	ch := scaler.LastRunChanges{Set: map[string]time.Time{}, Migrated: true}
	for fn, d := range ago {
		ch.Set[fn+"."+fnNamespace] = now.Add(-d)
	}
	store := &scaler.ConfigMapStore{Client: e.Client, Namespace: releaseNamespace, Name: name}
	if err := store.Save(ctx, ch); err != nil {
		t.Fatalf("seeding the state ConfigMap %s/%s: %v", releaseNamespace, name, err)
	}
}

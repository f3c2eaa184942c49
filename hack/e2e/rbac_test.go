// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
)

// outsideNamespace holds a Deployment tierscaler must not be able to scale.
const outsideNamespace = "e2e-outside"

// checkLeastPrivilege checks, with a client authenticated as the chart's
// ServiceAccount (the controller's own token), that what tierscaler needs is
// allowed and that nothing around it is: scaling outside the function
// namespaces, writing Nodes, reading Secrets. Every write is a server-side
// dry run, so a too broad RBAC changes nothing.
func checkLeastPrivilege(t *testing.T, e *testenv.Env, c *hostController) {
	ctx := testContext(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	require.NoError(t, err)
	sa, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	dryRun := []string{metav1.DryRunAll}

	require.NoError(t, e.CreateNamespace(ctx, outsideNamespace))
	t.Cleanup(func() {
		_ = e.Clientset.CoreV1().Namespaces().Delete(context.Background(), outsideNamespace, metav1.DeleteOptions{})
	})
	zero := int32(0)
	outsider := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "outsider", Namespace: outsideNamespace,
			Labels: map[string]string{policy.LabelFunction: "outsider"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelFunction: "outsider"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{policy.LabelFunction: "outsider"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "outsider", Image: "emulated.invalid/outsider:latest"}}},
			},
		},
	}
	_, err = e.Clientset.AppsV1().Deployments(outsideNamespace).Create(ctx, outsider, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, nodes.Items)
	node := nodes.Items[0].Name

	forbidden := func(t *testing.T, what string, err error) {
		t.Helper()
		require.Error(t, err, "%s: allowed, want Forbidden", what)
		require.True(t, apierrors.IsForbidden(err), "%s: want Forbidden, got %v", what, err)
	}

	t.Run("what tierscaler needs is allowed", func(t *testing.T) {
		_, err := sa.AppsV1().Deployments(fnNamespace).List(ctx, metav1.ListOptions{})
		require.NoError(t, err, "list function Deployments")
		// Authorization comes before the lookup: NotFound means allowed.
		_, err = sa.AppsV1().Deployments(fnNamespace).GetScale(ctx, "no-such-function", metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "get the scale of a function: want NotFound (allowed), got %v", err)
		_, err = sa.AppsV1().Deployments(fnNamespace).Patch(ctx, "no-such-function", types.MergePatchType,
			[]byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{DryRun: dryRun}, "scale")
		require.True(t, apierrors.IsNotFound(err), "patch the scale of a function: want NotFound (allowed), got %v", err)
		_, err = sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		require.NoError(t, err, "list nodes")
		_, err = sa.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		require.NoError(t, err, "list pods cluster-wide (rbac.clusterWidePods)")
	})

	t.Run("scaling a Deployment outside the function namespaces is forbidden", func(t *testing.T) {
		_, err := sa.AppsV1().Deployments(outsideNamespace).Patch(ctx, "outsider", types.MergePatchType,
			[]byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{DryRun: dryRun}, "scale")
		forbidden(t, "patch deployments/scale in "+outsideNamespace, err)
		_, err = sa.AppsV1().Deployments(outsideNamespace).UpdateScale(ctx, "outsider", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "outsider", Namespace: outsideNamespace},
			Spec:       autoscalingv1.ScaleSpec{Replicas: 3},
		}, metav1.UpdateOptions{DryRun: dryRun})
		forbidden(t, "update deployments/scale in "+outsideNamespace, err)
		_, err = sa.AppsV1().Deployments(outsideNamespace).GetScale(ctx, "outsider", metav1.GetOptions{})
		forbidden(t, "get deployments/scale in "+outsideNamespace, err)
		// Its own namespace is not a function namespace either.
		_, err = sa.AppsV1().Deployments(releaseNamespace).Patch(ctx, releaseName, types.MergePatchType,
			[]byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{DryRun: dryRun}, "scale")
		forbidden(t, "patch the scale of its own Deployment in "+releaseNamespace, err)
		d, err := e.Clientset.AppsV1().Deployments(outsideNamespace).Get(ctx, "outsider", metav1.GetOptions{})
		require.NoError(t, err)
		require.EqualValues(t, 0, *d.Spec.Replicas, "the outsider was not scaled")
	})

	t.Run("writing Nodes is forbidden", func(t *testing.T) {
		_, err := sa.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"e2e":"written"}}}`), metav1.PatchOptions{DryRun: dryRun})
		forbidden(t, "patch node "+node, err)
		_, err = sa.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "e2e-intruder"}},
			metav1.CreateOptions{DryRun: dryRun})
		forbidden(t, "create a node", err)
		err = sa.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{DryRun: dryRun})
		forbidden(t, "delete node "+node, err)
	})

	t.Run("reading Secrets is forbidden", func(t *testing.T) {
		for _, ns := range []string{releaseNamespace, fnNamespace, metav1.NamespaceAll} {
			_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			forbidden(t, "list secrets in namespace "+ns+" (\"\" is every namespace)", err)
		}
		// Not even its own webhook token: the kubelet mounts it.
		_, err := sa.CoreV1().Secrets(releaseNamespace).Get(ctx, releaseName+"-webhook", metav1.GetOptions{})
		forbidden(t, "get its own webhook Secret", err)
	})
}

// checkWebhookAuth checks that the webhook the chart configured refuses a
// request without the token from the chart's Secret, and takes one with it.
func checkWebhookAuth(t *testing.T, c *hostController) {
	require.NotEmpty(t, c.token, "webhook.auth required: the chart must mount a token")
	post := func(auth string) int {
		req, err := http.NewRequest(http.MethodPost, c.webhookURL+"/system/alert",
			strings.NewReader(`{"version":"4","status":"firing","receiver":"e2e","alerts":[]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := httpClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, post(""), "no credentials")
	require.Equal(t, http.StatusUnauthorized, post("Bearer not-the-token"), "a wrong token")
	require.Equal(t, http.StatusOK, post("Bearer "+c.token), "the token of the chart's Secret")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/workload"
)

// CreateFunctions creates, as faas-netes would (openfaas.WorkloadDeployment),
// the Deployment of every function of s that does not exist yet (and its
// namespace if missing). It never changes an existing Deployment, so tierscaler keeps ownership of
// the replicas. It returns the keys of the functions it created.
func CreateFunctions(ctx context.Context, client kubernetes.Interface, s *workload.Scenario) ([]string, error) {
	var created []string
	namespaces := map[string]bool{}
	for _, f := range s.Functions {
		d, err := openfaas.WorkloadDeployment(s.Name, f)
		if err != nil {
			return created, err
		}
		if !namespaces[d.Namespace] {
			if err := ensureNamespace(ctx, client, d.Namespace); err != nil {
				return created, err
			}
			namespaces[d.Namespace] = true
		}
		_, err = client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
		case err != nil:
			return created, fmt.Errorf("creating Deployment %s/%s: %w", d.Namespace, d.Name, err)
		default:
			created = append(created, f.Key())
		}
	}
	return created, nil
}

func ensureNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

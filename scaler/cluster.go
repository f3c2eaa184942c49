// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is the field manager tierscaler writes as.
const FieldManager = "tierscaler"

// Cluster is the controller's seam to Kubernetes: it reads the state of one
// cycle and changes replicas and annotations. KubeCluster is the real one;
// the simulator has a modelled one.
type Cluster interface {
	// State returns the function Deployments, Pods, Nodes and
	// ResourceQuotas of the watched namespaces.
	State(ctx context.Context) (*ClusterState, error)
	// Scale sets d's replicas from from to to through the scale
	// subresource. It returns ErrChanged when the replicas are no longer
	// from.
	Scale(ctx context.Context, d *appsv1.Deployment, from, to int32) error
	// Annotate merges annotations into d's metadata.
	Annotate(ctx context.Context, d *appsv1.Deployment, annotations map[string]string) error
}

// ErrChanged says a Deployment's replicas changed since the plan was made;
// the next cycle decides again.
var ErrChanged = errors.New("replicas changed since the plan was made")

// KubeCluster reads from the informer cache and writes to the API server.
type KubeCluster struct {
	// Cached reads from the informer cache; Client writes; Direct reads the
	// API server, to resolve conflicts.
	Cached     client.Reader
	Client     client.Client
	Direct     client.Reader
	Namespaces []string
	// Retries of a conflicting scale patch (default 3), with Backoff
	// doubling from its start (default 100ms).
	Retries int
	Backoff time.Duration
}

// State lists the cache.
func (k *KubeCluster) State(ctx context.Context) (*ClusterState, error) {
	return readCluster(ctx, k.Cached, k.Namespaces)
}

// Scale patches the scale subresource with the Deployment's resourceVersion
// as a precondition. On a conflict it rereads the Deployment: if its replicas
// are still from, it retries with backoff; otherwise it gives up with
// ErrChanged. The Deployment spec itself is never written: faas-netes owns it.
func (k *KubeCluster) Scale(ctx context.Context, d *appsv1.Deployment, from, to int32) error {
	retries, backoff := k.Retries, k.Backoff
	if retries <= 0 {
		retries = 3
	}
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	rv := d.ResourceVersion
	for attempt := 0; ; attempt++ {
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": rv},
			"spec":     map[string]any{"replicas": to},
		})
		scale := &autoscalingv1.Scale{}
		target := &appsv1.Deployment{}
		target.Namespace, target.Name = d.Namespace, d.Name
		err := k.Client.SubResource("scale").Patch(ctx, target, client.RawPatch(types.MergePatchType, patch),
			&client.SubResourcePatchOptions{SubResourceBody: scale, PatchOptions: client.PatchOptions{FieldManager: FieldManager}})
		if err == nil || !apierrors.IsConflict(err) || attempt >= retries {
			return err
		}
		var cur appsv1.Deployment
		if gerr := k.Direct.Get(ctx, client.ObjectKeyFromObject(d), &cur); gerr != nil {
			return fmt.Errorf("after a conflict, reread: %w", gerr)
		}
		if cur.Spec.Replicas == nil || *cur.Spec.Replicas != from {
			return ErrChanged
		}
		rv = cur.ResourceVersion
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff << attempt):
		}
	}
}

// Annotate merge-patches d's annotations.
func (k *KubeCluster) Annotate(ctx context.Context, d *appsv1.Deployment, annotations map[string]string) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	target := &appsv1.Deployment{}
	target.Namespace, target.Name = d.Namespace, d.Name
	return k.Client.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager))
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// onTemplate puts a label on the pod template only, where faas-netes puts
// the function's labels (openfaas.NewDeployment).
func onTemplate(k, v string) depOpt {
	return func(d *appsv1.Deployment) {
		if d.Spec.Template.Labels == nil {
			d.Spec.Template.Labels = map[string]string{"faas_function": d.Name}
		}
		d.Spec.Template.Labels[k] = v
	}
}

func TestReconcileReadsScaleLabelsFromThePodTemplate(t *testing.T) {
	// faas-netes writes com.openfaas.scale.* on the pod template, never on
	// the Deployment: the maximum 3 must cap the scale-up (2->6 otherwise).
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2, onTemplate("com.openfaas.scale.max", "3"))}, bigNode())
	h.burst("api", 10, 20, 8)
	h.reconcile()
	require.Equal(t, []string{"scale api 2->3"}, h.cl.scaleCalls())
}

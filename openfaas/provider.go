// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"fmt"
	"time"
)

// CEMaxReplicas is the most replicas OpenFaaS CE allows a function
// (faas-netes' MaxReplicas).
const CEMaxReplicas = 5

// CEWatcherReplicas is what the OpenFaaS CE provider's Deployment watcher
// does to a function Deployment at replicas: 0 is put back to 1 and more
// than CEMaxReplicas back to CEMaxReplicas (revert true); anything else is
// left alone. The watcher runs on every add and update of a Deployment
// whose pod template has the faas_function label (see IsFunction), and
// writes with a full update that ignores conflicts.
func CEWatcherReplicas(replicas int32) (target int32, revert bool) {
	switch {
	case replicas == 0:
		return 1, true
	case replicas > CEMaxReplicas:
		return CEMaxReplicas, true
	default:
		return replicas, false
	}
}

// CEScaleRequest is what the OpenFaaS CE provider's scale API
// (POST /system/scale-function/{name}) makes of a request for replicas: it
// refuses 0 and caps at CEMaxReplicas.
func CEScaleRequest(replicas int32) (int32, error) {
	switch {
	case replicas <= 0:
		return 0, fmt.Errorf("replicas cannot be set to %d in OpenFaaS CE", replicas)
	case replicas > CEMaxReplicas:
		return CEMaxReplicas, nil
	default:
		return replicas, nil
	}
}

// The gateway's scale-from-zero budget: it polls the provider every
// ScaleFromZeroPollInterval, at most ScaleFromZeroMaxPolls times, for an
// available replica before it forwards the request anyway.
const (
	ScaleFromZeroPollInterval = 100 * time.Millisecond
	ScaleFromZeroMaxPolls     = 1000
	// ScaleFromZeroTimeout is the longest the gateway holds a request:
	// ScaleFromZeroMaxPolls × ScaleFromZeroPollInterval. A request still
	// held then is forwarded to a function without a Ready replica and
	// fails (code FailedCode).
	ScaleFromZeroTimeout = ScaleFromZeroMaxPolls * ScaleFromZeroPollInterval
)

// ScaleFromZeroReplicas is the replicas the gateway asks the provider for
// when a function at zero is invoked: com.openfaas.scale.min of the
// function's labels (see FunctionLabels) when positive, else 1. The
// gateway asks only when the desired replicas are 0; otherwise it just
// holds the request until a replica is available.
func ScaleFromZeroReplicas(labels map[string]string) int32 {
	if n, ok := MinReplicas(labels); ok {
		return n
	}
	return 1
}

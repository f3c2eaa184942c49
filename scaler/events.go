// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tierscaler/tierscaler/policy"
)

// Event reasons tierscaler records on function Deployments. They are the one
// place these strings are defined.
const (
	EventScaledUp   = "ScaledUp"
	EventScaledDown = "ScaledDown"
	EventPrewarmed  = "Prewarmed"
	EventActivated  = "Activated"
	EventZeroedIdle = "ZeroedIdle"
	// EventReclaimed: an idle async function gave its room to a cron
	// function's reservation.
	EventReclaimed         = "ReclaimedForCron"
	EventEvicted           = "EvictedForCapacity"
	EventShortfall         = "CapacityShortfall"
	EventPrewarmMissed     = "PrewarmMissed"
	EventActivationTimeout = "ActivationTimeout"
	EventProviderReverted  = "ProviderReverted"
	EventScaleFailed       = "ScaleFailed"
	// EventScaleUpCancelled: a scale-up was not applied because the
	// eviction that made room for it failed.
	EventScaleUpCancelled = "ScaleUpCancelled"
	EventInvalidMetadata  = "InvalidMetadata"
)

// Event actions (events.k8s.io/v1 "action").
const (
	actionScale  = "Scale"
	actionEvict  = "Evict"
	actionVerify = "VerifyReadiness"
	actionDetect = "Detect"
	actionRead   = "ReadMetadata"
)

// EventRecorder records events.k8s.io/v1 Events; controller-runtime's
// recorder satisfies it.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// eventReason maps an action's reason to its Event reason.
func eventReason(r policy.Reason) string {
	switch r {
	case policy.ReasonEvictForCapacity:
		return EventEvicted
	case policy.ReasonZeroIdle:
		return EventZeroedIdle
	case policy.ReasonReclaimForCron:
		return EventReclaimed
	case policy.ReasonPrewarmCron:
		return EventPrewarmed
	case policy.ReasonActivateAsync:
		return EventActivated
	case policy.ReasonScaleDownIdle, policy.ReasonScaleDownMax:
		return EventScaledDown
	default:
		return EventScaledUp
	}
}

// nopRecorder drops events (dry runs, plan, simulation).
type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

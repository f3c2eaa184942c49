// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"fmt"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tierscaler/tierscaler/policy"
)

// The names of the alerts the Notifier posts.
const (
	AlertCapacityShortfall  = "TierscalerCapacityShortfall"
	AlertPrewarmMissed      = "TierscalerPrewarmMissed"
	AlertActivationTimeout  = "TierscalerActivationTimeout"
	AlertMetricsUnavailable = "TierscalerMetricsUnavailable"
	AlertCronAtRisk         = "TierscalerCronAtRisk"
)

// AlertNames lists the alerts the Notifier posts. The startup clean-up
// only touches alerts with these names, so Prometheus rules must not reuse
// them.
var AlertNames = []string{AlertCapacityShortfall, AlertPrewarmMissed, AlertActivationTimeout, AlertMetricsUnavailable, AlertCronAtRisk}

// The label names and values of the Notifier's alerts.
//
// They are chosen to be safe next to OpenFaaS CE's Alertmanager, which
// sends every alert to the gateway's /system/alert and inhibits warnings
// while a critical alert with the same alertname, cluster and service
// fires:
//
//   - the function is in LabelFunction, never in LabelFunctionName: the CE
//     gateway scales any function named in a firing alert's function_name
//     and sets it back to its minimum when the alert resolves;
//   - LabelService is the function ("name.namespace"), so that a critical
//     shortfall of one function never mutes the warning of another;
//     cluster-wide alerts carry ServiceName;
//   - LabelComponent is ComponentName on every alert: it is what routes
//     and the Notifier's clean-up select tierscaler's alerts by.
const (
	LabelAlertName = "alertname"
	LabelComponent = "component"
	LabelService   = "service"
	LabelSeverity  = "severity"
	LabelFunction  = "function"
	LabelNamespace = "namespace"
	LabelTier      = "tier"
	LabelReason    = "reason"
	// LabelFunctionName is OpenFaaS's label ("name.namespace"). The webhook
	// reads it; tierscaler's own alerts never carry it.
	LabelFunctionName = "function_name"

	// ComponentName is the value of the component label of every alert.
	ComponentName = "tierscaler"
	// ServiceName is the value of the service label of cluster-wide alerts.
	ServiceName = "tierscaler"
	// TierClusterWide is the tier label of alerts that concern no single
	// function (metrics unavailable): Alertmanager drops empty labels, so
	// the tier label carries this placeholder instead.
	TierClusterWide = "cluster"

	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// The annotation names of the Notifier's alerts.
const (
	AnnotationSummary       = "summary"
	AnnotationDescription   = "description"
	AnnotationMissingCPU    = "missing_cpu"
	AnnotationMissingMemory = "missing_memory"
	AnnotationMissingPods   = "missing_pods"
	AnnotationDeadline      = "deadline"
)

// AlertName is the alert a shortfall reason raises ("" for a reason it
// does not know).
func AlertName(r policy.ShortfallReason) string {
	switch r {
	case policy.ShortfallCapacity, policy.ShortfallQuota, policy.ShortfallBudget:
		return AlertCapacityShortfall
	case policy.ShortfallPrewarmMissed:
		return AlertPrewarmMissed
	case policy.ShortfallActivationTimeout:
		return AlertActivationTimeout
	case policy.ShortfallMetricsUnavailable:
		return AlertMetricsUnavailable
	case policy.ShortfallCronAtRisk:
		return AlertCronAtRisk
	}
	return ""
}

// Severity maps a shortfall to the severity label:
//
//   - a prewarm missed is critical: a scheduled job ran cold or failed;
//   - a capacity shortfall or an activation timeout is critical for a sync
//     function (callers are turned away now) and a warning for cron and async
//     ones (work is late, not lost);
//   - metrics unavailable is a warning: tierscaler fails static, it scales
//     nothing down, zeroes nothing and evicts nothing;
//   - a cron function at risk is a warning: it is a forecast, and the
//     prewarm may still find room; if it does not, a prewarm missed follows;
//   - anything else is a warning.
func Severity(sf policy.Shortfall) string {
	switch sf.Reason {
	case policy.ShortfallPrewarmMissed:
		return SeverityCritical
	case policy.ShortfallCapacity, policy.ShortfallQuota, policy.ShortfallBudget, policy.ShortfallActivationTimeout:
		if sf.Tier == policy.TierSync {
			return SeverityCritical
		}
	}
	return SeverityWarning
}

// Alert maps a shortfall to the labels and annotations of its alert; the
// times are left to the caller. extra labels are added unless they would
// replace one of the alert's own; function_name is never added.
func Alert(sf policy.Shortfall, extra map[string]string) PostableAlert {
	name := AlertName(sf.Reason)
	if name == "" {
		// A reason added to the policy engine later still raises an alert.
		name = AlertCapacityShortfall
	}
	tier := string(sf.Tier)
	if sf.Function == "" || tier == "" {
		tier = TierClusterWide
	}
	labels := map[string]string{
		LabelAlertName: name,
		LabelComponent: ComponentName,
		LabelService:   ServiceName,
		LabelSeverity:  Severity(sf),
		LabelTier:      tier,
		LabelReason:    string(sf.Reason),
	}
	if sf.Function != "" {
		labels[LabelFunction] = sf.Key()
		labels[LabelService] = sf.Key()
		labels[LabelNamespace] = sf.Namespace
	}
	for k, v := range extra {
		if _, own := labels[k]; !own && v != "" && !reservedLabels[k] {
			labels[k] = v
		}
	}
	ann := map[string]string{
		AnnotationSummary:       summary(sf),
		AnnotationDescription:   sf.Message,
		AnnotationMissingCPU:    resource.NewMilliQuantity(sf.Missing.MilliCPU, resource.DecimalSI).String(),
		AnnotationMissingMemory: resource.NewQuantity(sf.Missing.Memory, resource.BinarySI).String(),
		AnnotationMissingPods:   strconv.FormatInt(sf.Missing.Pods, 10),
	}
	if ann[AnnotationDescription] == "" {
		ann[AnnotationDescription] = ann[AnnotationSummary]
	}
	if !sf.Deadline.IsZero() {
		ann[AnnotationDeadline] = sf.Deadline.UTC().Format(time.RFC3339)
	}
	return PostableAlert{Labels: labels, Annotations: ann}
}

// reservedLabels are the alert's own label names, present or not, and
// function_name, which must never reach OpenFaaS CE's gateway.
var reservedLabels = map[string]bool{LabelAlertName: true, LabelComponent: true, LabelService: true, LabelSeverity: true,
	LabelFunction: true, LabelNamespace: true, LabelTier: true, LabelReason: true, LabelFunctionName: true}

func summary(sf policy.Shortfall) string {
	fn := sf.Key()
	switch sf.Reason {
	case policy.ShortfallCapacity:
		return fmt.Sprintf("%s (%s): %d pod(s) do not fit on any node", fn, sf.Tier, sf.Missing.Pods)
	case policy.ShortfallQuota:
		return fmt.Sprintf("%s (%s): %d pod(s) exceed the ResourceQuota of namespace %s", fn, sf.Tier, sf.Missing.Pods, sf.Namespace)
	case policy.ShortfallBudget:
		return fmt.Sprintf("%s (%s): %d pod(s) wait for the eviction budget", fn, sf.Tier, sf.Missing.Pods)
	case policy.ShortfallPrewarmMissed:
		return fmt.Sprintf("%s (%s): not Ready by its fire time", fn, sf.Tier)
	case policy.ShortfallActivationTimeout:
		return fmt.Sprintf("%s (%s): not Ready within the activation timeout", fn, sf.Tier)
	case policy.ShortfallMetricsUnavailable:
		return "tierscaler is failing static: Prometheus data is unavailable, stale or invalid"
	case policy.ShortfallCronAtRisk:
		return fmt.Sprintf("%s (%s): %d pod(s) will not fit at its prewarm for the run at %s", fn, sf.Tier, sf.Missing.Pods,
			sf.Deadline.UTC().Format(time.RFC3339))
	}
	if sf.Function == "" {
		return fmt.Sprintf("tierscaler shortfall: %s", sf.Reason)
	}
	return fmt.Sprintf("%s (%s): shortfall: %s", fn, sf.Tier, sf.Reason)
}

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
)

// AlertNames lists the alerts the Notifier posts. The startup clean-up
// only touches alerts with these names, so Prometheus rules must not reuse
// them.
var AlertNames = []string{AlertCapacityShortfall, AlertPrewarmMissed, AlertActivationTimeout, AlertMetricsUnavailable}

// The label names and values of the Notifier's alerts.
const (
	LabelAlertName    = "alertname"
	LabelService      = "service"
	LabelSeverity     = "severity"
	LabelFunctionName = "function_name"
	LabelNamespace    = "namespace"
	LabelTier         = "tier"
	LabelReason       = "reason"

	// ServiceName is the value of the service label of every alert.
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
// replace one of the alert's own.
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
		LabelService:   ServiceName,
		LabelSeverity:  Severity(sf),
		LabelTier:      tier,
		LabelReason:    string(sf.Reason),
	}
	if sf.Function != "" {
		labels[LabelFunctionName] = sf.Key()
		labels[LabelNamespace] = sf.Namespace
	}
	for k, v := range extra {
		if _, own := labels[k]; !own && v != "" {
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
	}
	if sf.Function == "" {
		return fmt.Sprintf("tierscaler shortfall: %s", sf.Reason)
	}
	return fmt.Sprintf("%s (%s): shortfall: %s", fn, sf.Tier, sf.Reason)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// Image is the placeholder image of the functions of a scenario: pods on
// kwok nodes and in the simulator run no container. The .invalid domain
// cannot resolve.
const Image = "emulated.invalid/tierscaler/function:latest"

// AnnotationScenario marks a scenario's functions with the scenario's name.
const AnnotationScenario = "tierscaler.io/emulator-scenario"

// Request is the deploy request (stack.yml) of a scenario's function f
// (defaulted, as workload.Parse leaves it): labels com.openfaas.scale.min
// and .max; annotations tierscaler.io/tier, the scenario's name, and for a
// cron function cron-connector's topic and schedule; the max_inflight
// environment variable; f's requests and limits.
func Request(scenario string, f workload.Function) (FunctionDeployment, error) {
	res, err := resources(f)
	if err != nil {
		return FunctionDeployment{}, err
	}
	minReplicas := int32(policy.DefaultMinReplicas)
	if f.MinReplicas != nil {
		minReplicas = *f.MinReplicas
	}
	maxReplicas := f.MaxReplicas
	if maxReplicas == 0 {
		maxReplicas = policy.DefaultMaxReplicas
	}
	ns := f.Namespace
	if ns == "" {
		ns = workload.DefaultNamespace
	}
	r := FunctionDeployment{
		Service: f.Name, Namespace: ns, Image: Image,
		Labels: map[string]string{
			policy.LabelScaleMin: strconv.Itoa(int(minReplicas)),
			policy.LabelScaleMax: strconv.Itoa(int(maxReplicas)),
		},
		Annotations: map[string]string{
			policy.AnnotationTier: string(f.Tier),
			AnnotationScenario:    scenario,
		},
		EnvVars:   map[string]string{},
		Resources: res,
	}
	if f.Tier == policy.TierCron {
		r.Annotations[policy.AnnotationTopic] = policy.TopicCron
		r.Annotations[policy.AnnotationSchedule] = f.Schedule
	}
	if f.MaxInflight > 0 {
		r.EnvVars[policy.EnvMaxInflight] = strconv.Itoa(int(f.MaxInflight))
	}
	return r, nil
}

// WorkloadDeployment is the Deployment of a scenario's function f as
// faas-netes creates it from Request, at f's initialReplicas when set (a
// scenario starts from a settled cluster, where something may have scaled
// the function already).
func WorkloadDeployment(scenario string, f workload.Function) (*appsv1.Deployment, error) {
	r, err := Request(scenario, f)
	if err != nil {
		return nil, err
	}
	d := NewDeployment(r)
	if f.InitialReplicas != nil {
		n := *f.InitialReplicas
		d.Spec.Replicas = &n
	}
	return d, nil
}

// resources converts f's requests and limits.
func resources(f workload.Function) (corev1.ResourceRequirements, error) {
	var rr corev1.ResourceRequirements
	add := func(list *corev1.ResourceList, field string, name corev1.ResourceName, v string) error {
		if v == "" {
			return nil
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Errorf("function %s: %s %q: %v", f.Name, field, v, err)
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q
		return nil
	}
	for _, err := range []error{
		add(&rr.Requests, "requests.cpu", corev1.ResourceCPU, f.Requests.CPU),
		add(&rr.Requests, "requests.memory", corev1.ResourceMemory, f.Requests.Memory),
		add(&rr.Limits, "limits.cpu", corev1.ResourceCPU, f.Limits.CPU),
		add(&rr.Limits, "limits.memory", corev1.ResourceMemory, f.Limits.Memory),
	} {
		if err != nil {
			return rr, err
		}
	}
	return rr, nil
}

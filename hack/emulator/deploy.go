// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/workload"
)

// Image is the placeholder image of the Deployments the emulator creates:
// pods on kwok nodes run no container. The .invalid domain cannot resolve.
const Image = "emulated.invalid/tierscaler/function:latest"

// AnnotationScenario marks a Deployment the emulator created with the
// scenario's name.
const AnnotationScenario = "tierscaler.io/emulator-scenario"

// NewDeployment returns the Deployment faas-netes would create for the
// function f (defaulted, as Parse leaves it): name = function name, label
// faas_function on the Deployment, its selector and its pod template; the
// com.openfaas.scale.min/max labels; cron-connector's topic and schedule
// annotations for a cron function; the tierscaler.io/tier annotation; the
// max_inflight environment variable; f's requests and limits; and
// faas-netes' rollout strategy (maxUnavailable 0, maxSurge 1).
func NewDeployment(scenario string, f workload.Function) (*appsv1.Deployment, error) {
	res, err := resources(f)
	if err != nil {
		return nil, err
	}
	minReplicas, initial := int32(policy.DefaultMinReplicas), int32(policy.DefaultMinReplicas)
	if f.MinReplicas != nil {
		minReplicas = *f.MinReplicas
		initial = minReplicas
	}
	if f.InitialReplicas != nil {
		initial = *f.InitialReplicas
	}
	maxReplicas := f.MaxReplicas
	if maxReplicas == 0 {
		maxReplicas = policy.DefaultMaxReplicas
	}
	ns := f.Namespace
	if ns == "" {
		ns = workload.DefaultNamespace
	}
	lbls := map[string]string{
		policy.LabelFunction: f.Name,
		policy.LabelScaleMin: strconv.Itoa(int(minReplicas)),
		policy.LabelScaleMax: strconv.Itoa(int(maxReplicas)),
	}
	annotations := map[string]string{
		"prometheus.io.scrape": "false", // faas-netes sets it
		policy.AnnotationTier:  string(f.Tier),
		AnnotationScenario:     scenario,
	}
	if f.Tier == policy.TierCron {
		annotations[policy.AnnotationTopic] = policy.TopicCron
		annotations[policy.AnnotationSchedule] = f.Schedule
	}
	env := []corev1.EnvVar{}
	if f.MaxInflight > 0 {
		env = append(env, corev1.EnvVar{Name: policy.EnvMaxInflight, Value: strconv.Itoa(int(f.MaxInflight))})
	}
	probe := &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/_/health", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP,
		}},
		InitialDelaySeconds: 2, PeriodSeconds: 2, TimeoutSeconds: 1,
	}
	zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: f.Name, Namespace: ns,
			Labels:      copyMap(lbls),
			Annotations: copyMap(annotations),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:             &initial,
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelFunction: f.Name}},
			RevisionHistoryLimit: ptrTo(int32(10)),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &one},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: copyMap(lbls), Annotations: copyMap(annotations)},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:            f.Name,
						Image:           Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
						Env:             env,
						Resources:       res,
						ReadinessProbe:  probe,
						LivenessProbe:   probe.DeepCopy(),
					}},
					RestartPolicy:                corev1.RestartPolicyAlways,
					DNSPolicy:                    corev1.DNSClusterFirst,
					EnableServiceLinks:           ptrTo(false),
					AutomountServiceAccountToken: ptrTo(false),
				},
			},
		},
	}, nil
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

// CreateFunctions creates, as faas-netes would, the Deployment of every
// function of s that does not exist yet (and its namespace if missing). It
// never changes an existing Deployment, so tierscaler keeps ownership of
// the replicas. It returns the keys of the functions it created.
func CreateFunctions(ctx context.Context, client kubernetes.Interface, s *workload.Scenario) ([]string, error) {
	var created []string
	namespaces := map[string]bool{}
	for _, f := range s.Functions {
		d, err := NewDeployment(s.Name, f)
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

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

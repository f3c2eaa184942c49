// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package openfaas

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels, annotations and numbers of faas-netes.
const (
	// LabelFunction marks a function's Deployment, its selector and its pod
	// template with the function's name.
	LabelFunction = "faas_function"
	// LabelScaleMin is the function's minimum replicas; faas-netes resets
	// spec.replicas to it on every deploy when it is a positive integer.
	LabelScaleMin = "com.openfaas.scale.min"
	// LabelUID is the pod template label faas-netes sets to a fresh value
	// on every update, which starts a rollout.
	LabelUID = "uid"
	// AnnotationPrometheusScrape is defaulted to "false" by faas-netes.
	AnnotationPrometheusScrape = "prometheus.io.scrape"
	// DefaultReplicas is the replicas of a new function without a positive
	// com.openfaas.scale.min.
	DefaultReplicas = 1
	// Port is the watchdog's HTTP port.
	Port = 8080
	// FieldManager is the manager of faas-netes' writes to Deployments (its
	// client's default, the binary's name).
	FieldManager = "faas-netes"
)

// FunctionDeployment is what faas-cli deploy sends to the provider for one
// function (faas-provider's types.FunctionDeployment, the fields faas-netes
// uses here).
type FunctionDeployment struct {
	// Service is the function's name; Namespace its namespace.
	Service, Namespace string
	// Image is the container image.
	Image string
	// Labels and Annotations are the function's own (stack.yml's labels and
	// annotations).
	Labels, Annotations map[string]string
	// EnvVars are the container's environment.
	EnvVars map[string]string
	// Resources are the container's requests and limits.
	Resources corev1.ResourceRequirements
}

// Key is the function's OpenFaaS name: name.namespace.
func (r FunctionDeployment) Key() string { return r.Service + "." + r.Namespace }

// MinReplicas is the replicas faas-netes deploys a function with: the
// com.openfaas.scale.min label when it is a positive integer. ok is false
// otherwise (no label, "0" or not a number), and faas-netes then leaves
// replicas alone on an update and uses 1 on a create.
func MinReplicas(labels map[string]string) (n int32, ok bool) {
	v, found := labels[LabelScaleMin]
	if !found {
		return 0, false
	}
	i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil || i <= 0 {
		return 0, false
	}
	return int32(i), true
}

// Annotations are the annotations faas-netes puts on a function's
// Deployment and pod template: the function's own, with
// prometheus.io.scrape defaulted to "false".
func Annotations(r FunctionDeployment) map[string]string {
	a := maps.Clone(r.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	if _, ok := a[AnnotationPrometheusScrape]; !ok {
		a[AnnotationPrometheusScrape] = "false"
	}
	return a
}

// templateLabels are the pod template's labels: faas_function, then the
// function's labels.
func templateLabels(r FunctionDeployment) map[string]string {
	l := map[string]string{LabelFunction: r.Service}
	maps.Copy(l, r.Labels)
	return l
}

// env is the container environment, sorted by name as faas-netes sorts it.
func env(r FunctionDeployment) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(r.EnvVars))
	for _, k := range slices.Sorted(maps.Keys(r.EnvVars)) {
		out = append(out, corev1.EnvVar{Name: k, Value: r.EnvVars[k]})
	}
	return out
}

// probe is faas-netes' default readiness and liveness probe.
func probe() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/_/health", Port: intstr.FromInt32(Port), Scheme: corev1.URISchemeHTTP,
		}},
		InitialDelaySeconds: 2, PeriodSeconds: 2, TimeoutSeconds: 1,
	}
}

// container is the function's container.
func container(r FunctionDeployment) corev1.Container {
	return corev1.Container{
		Name:            r.Service,
		Image:           r.Image,
		ImagePullPolicy: corev1.PullAlways,
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
		Env:             env(r),
		Resources:       *r.Resources.DeepCopy(),
		ReadinessProbe:  probe(),
		LivenessProbe:   probe(),
	}
}

// NewDeployment returns the Deployment faas-netes creates for r. The
// function's labels go on the pod template only: the Deployment's own
// labels are faas_function alone.
func NewDeployment(r FunctionDeployment) *appsv1.Deployment {
	replicas := int32(DefaultReplicas)
	if n, ok := MinReplicas(r.Labels); ok {
		replicas = n
	}
	annotations := Annotations(r)
	zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: r.Service, Namespace: r.Namespace,
			Labels:      map[string]string{LabelFunction: r.Service},
			Annotations: annotations,
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:             &replicas,
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{LabelFunction: r.Service}},
			RevisionHistoryLimit: ptrTo(int32(10)),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &one},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Name: r.Service, Labels: templateLabels(r), Annotations: maps.Clone(annotations)},
				Spec: corev1.PodSpec{
					NodeSelector:                 map[string]string{},
					Containers:                   []corev1.Container{container(r)},
					RestartPolicy:                corev1.RestartPolicyAlways,
					DNSPolicy:                    corev1.DNSClusterFirst,
					EnableServiceLinks:           ptrTo(false),
					AutomountServiceAccountToken: ptrTo(false),
				},
			},
		},
	}
}

// Redeploy returns d as faas-netes updates it when r is deployed again
// (faas-cli deploy of an existing function): replicas reset to
// com.openfaas.scale.min when it is a positive integer; the Deployment's
// and the pod template's annotations replaced by the function's own; the
// pod template's labels replaced by faas_function, a fresh uid (from now)
// and the function's labels; the container rebuilt from r. The
// Deployment's own labels, selector and strategy are kept. d is not
// modified.
func Redeploy(d *appsv1.Deployment, r FunctionDeployment, now time.Time) *appsv1.Deployment {
	nd := d.DeepCopy()
	if n, ok := MinReplicas(r.Labels); ok {
		nd.Spec.Replicas = &n
	}
	labels := templateLabels(r)
	labels[LabelUID] = strconv.Itoa(now.Nanosecond())
	maps.Copy(labels, r.Labels)
	nd.Spec.Template.Labels = labels
	annotations := Annotations(r)
	nd.Annotations = annotations
	nd.Spec.Template.Annotations = maps.Clone(annotations)
	nd.Spec.Template.Spec.NodeSelector = map[string]string{}
	c := container(r)
	if len(nd.Spec.Template.Spec.Containers) == 0 {
		nd.Spec.Template.Spec.Containers = []corev1.Container{c}
	} else {
		old := &nd.Spec.Template.Spec.Containers[0]
		old.Image, old.ImagePullPolicy, old.Env, old.Resources = c.Image, c.ImagePullPolicy, c.Env, c.Resources
		old.ReadinessProbe, old.LivenessProbe = c.ReadinessProbe, c.LivenessProbe
	}
	return nd
}

// FunctionLabels are the labels faas-netes reports for a function: its pod
// template's (faas-netes' AsFunctionStatus), where the deploy request's
// labels are.
func FunctionLabels(d *appsv1.Deployment) map[string]string { return d.Spec.Template.Labels }

// IsFunction reports whether faas-netes manages d: its pod template has the
// faas_function label (the CE watcher's test).
func IsFunction(d *appsv1.Deployment) bool {
	_, ok := d.Spec.Template.Labels[LabelFunction]
	return ok
}

func ptrTo[T any](v T) *T { return &v }

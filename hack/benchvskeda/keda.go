// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

// KEDA's own namespace (KEDA_CLUSTER_OBJECT_NAMESPACE, POD_NAMESPACE) and the
// names the metrics adapter is registered under.
const (
	kedaSystemNamespace = "keda"
	kedaAdapterService  = "keda-metrics-apiserver"
	externalMetricsAPI  = "v1beta1.external.metrics.k8s.io"
	kedaOperatorName    = "keda-operator"
)

// kedaBinaries are what hack/keda.sh caches.
type kedaBinaries struct {
	operator, adapter, crds string
}

func kedaBinariesIn(dir string) (kedaBinaries, error) {
	b := kedaBinaries{
		operator: filepath.Join(dir, "keda-operator"),
		adapter:  filepath.Join(dir, "keda-adapter"),
		crds:     filepath.Join(dir, "crds"),
	}
	for _, p := range []string{b.operator, b.adapter, filepath.Join(b.crds, "keda.sh_scaledobjects.yaml")} {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("KEDA is not built in %s (run hack/keda.sh): %w", dir, err)
		}
	}
	return b, nil
}

// kedaRun is a running KEDA: the operator and the metrics adapter, each
// started by testenv's process launcher (its own process group, killed with
// the driver).
type kedaRun struct {
	operator, adapter       *testenv.Process
	operatorPID, adapterPID int
	operatorLog, adapterLog string
	metricsURL              string // the operator's /metrics
	adapterMetricsURL       string
}

func (k *kedaRun) pids() []int { return []int{k.operatorPID, k.adapterPID} }

func (k *kedaRun) stop() error {
	var errs []error
	for _, p := range []*testenv.Process{k.adapter, k.operator} {
		if p != nil {
			errs = append(errs, p.Stop(5*time.Second))
		}
	}
	return errors.Join(errs...)
}

// writeKedaCerts writes, in dir, what KEDA's --cert-dir holds in a cluster
// (there cert rotation or cert-manager makes them): ca.crt, and tls.crt and
// tls.key signed by it; and ca/ca.crt for --ca-dir (the CAs scalers trust). The operator serves its gRPC metrics service with
// them and the adapter presents them as its client certificate (mutual TLS
// with ca.crt), so the one certificate is for both server and client use;
// the adapter also serves external.metrics.k8s.io with it, which the
// apiserver reaches as <service>.<namespace>.svc.
func writeKedaCerts(dir string) (caPEM []byte, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench-vs-keda-ca", Organization: []string{"KEDAORG"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	svc := kedaAdapterService + "." + kedaSystemNamespace
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour),
		DNSNames:    []string{"localhost", svc, svc + ".svc", kedaOperatorName + "." + kedaSystemNamespace + ".svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.MkdirAll(filepath.Join(dir, "ca"), 0o700); err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.crt":    caPEM,
		"ca/ca.crt": caPEM, // --ca-dir: KEDA reads every file there as PEM certificates
		"tls.crt":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}

// installCRDs creates every CRD of dir (KEDA's config/crd/bases) and waits
// until they are Established.
func installCRDs(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRD in %s", dir)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if u.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("%s: kind %q, want CustomResourceDefinition", f, u.GetKind())
		}
		if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			if err := c.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
				return false, nil
			}
			if !condition(u, "Established") {
				return false, nil
			}
		}
		return true, nil
	})
}

// condition reports whether the object's status has the condition typ
// with status True.
func condition(u *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// registerAdapter makes the apiserver's aggregation layer send
// external.metrics.k8s.io to the adapter on the host: an APIService backed
// by a Service of type ExternalName "localhost" (the aggregator dials
// localhost:<port>, verifying the adapter's certificate against caPEM), and
// read access to that API (and its discovery) for the callers the adapter
// sees. The local
// apiserver has no front-proxy client certificate, so its proxied requests
// reach the adapter unauthenticated: the adapter asks the apiserver
// (SubjectAccessReview) whether system:anonymous may read external metrics,
// and this grants it (only there, only that API).
func registerAdapter(ctx context.Context, c client.Client, port int, caPEM []byte) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: kedaAdapterService, Namespace: kedaSystemNamespace},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port), TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-vs-keda-external-metrics-reader"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"external.metrics.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
			// The aggregator's discovery and OpenAPI requests.
			{NonResourceURLs: []string{"/apis", "/apis/*", "/openapi", "/openapi/*"}, Verbs: []string{"get"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-vs-keda-external-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:anonymous"}},
	}
	apisvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": externalMetricsAPI},
		"spec": map[string]any{
			"group": "external.metrics.k8s.io", "version": "v1beta1",
			"service":              map[string]any{"namespace": kedaSystemNamespace, "name": kedaAdapterService, "port": int64(port)},
			"caBundle":             caPEM,
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
		},
	}}
	for _, obj := range []client.Object{svc, role, binding, apisvc} {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// waitAPIServiceAvailable waits until the aggregator reports the
// external metrics API available (it reached the adapter).
func waitAPIServiceAvailable(ctx context.Context, c client.Client, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiregistration.k8s.io", Version: "v1", Kind: "APIService"})
		if err := c.Get(ctx, client.ObjectKey{Name: externalMetricsAPI}, u); err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		if condition(u, "Available") {
			return true, nil
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		last = fmt.Sprint(conds)
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("APIService %s not Available: %s", externalMetricsAPI, last)
	}
	return nil
}

// kedaEnv is the environment the KEDA processes need outside a pod, set
// with env(1) in front of the binary: testenv's launcher passes the
// driver's own environment, and env execs the binary in the same process,
// which keeps its PID and process group.
func kedaEnv(kubeconfig string) []string {
	return []string{
		"/usr/bin/env",
		"WATCH_NAMESPACE=",
		"KEDA_CLUSTER_OBJECT_NAMESPACE=" + kedaSystemNamespace,
		"POD_NAMESPACE=" + kedaSystemNamespace,
		"OPERATOR_NAME=" + kedaOperatorName,
		"KUBECONFIG=" + kubeconfig,
	}
}

// startKeda installs KEDA's CRDs, starts the operator and the metrics
// adapter out of cluster against env, registers the adapter with the
// aggregation layer and waits until both are ready.
func startKeda(ctx context.Context, env *testenv.Env, bins kedaBinaries, logf func(string, ...any)) (_ *kedaRun, err error) {
	dir := filepath.Join(env.Dir, "keda")
	certDir := filepath.Join(dir, "certs")
	caPEM, err := writeKedaCerts(certDir)
	if err != nil {
		return nil, fmt.Errorf("KEDA certificates: %w", err)
	}
	if err := installCRDs(ctx, env.Client, bins.crds); err != nil {
		return nil, fmt.Errorf("KEDA CRDs: %w", err)
	}
	if err := env.CreateNamespace(ctx, kedaSystemNamespace); err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	opMetrics, opHealth, grpcPort, adapterPort, adapterMetrics := ports[0], ports[1], ports[2], ports[3], ports[4]
	k := &kedaRun{
		operatorLog:       filepath.Join(dir, "keda-operator.log"),
		adapterLog:        filepath.Join(dir, "keda-adapter.log"),
		metricsURL:        "http://" + hostPort(opMetrics),
		adapterMetricsURL: "http://" + hostPort(adapterMetrics),
	}
	defer func() {
		if err != nil {
			_ = k.stop()
		}
	}()
	opArgs := append(kedaEnv(env.Kubeconfig), bins.operator,
		"--leader-elect=false",
		"--cert-dir="+certDir,
		"--enable-cert-rotation=false",
		"--metrics-bind-address="+hostPort(opMetrics),
		"--health-probe-bind-address="+hostPort(opHealth),
		"--metrics-service-bind-address="+hostPort(grpcPort),
		"--ca-dir="+filepath.Join(certDir, "ca"),
		"--zap-log-level=info",
	)
	start := time.Now()
	if k.operator, err = testenv.StartProcess("keda-operator", opArgs, k.operatorLog, env.Dir); err != nil {
		return nil, fmt.Errorf("starting the KEDA operator: %w", err)
	}
	if err := waitHTTP(ctx, k.operator, "http://"+hostPort(opHealth)+"/readyz", k.operatorLog, time.Minute); err != nil {
		return nil, fmt.Errorf("the KEDA operator: %w", err)
	}
	if k.operatorPID, err = findPID(env.Dir, bins.operator); err != nil {
		return nil, err
	}
	logf("KEDA operator ready in %s (pid %d, log %s)", time.Since(start).Round(10*time.Millisecond), k.operatorPID, k.operatorLog)

	if err := registerAdapter(ctx, env.Client, adapterPort, caPEM); err != nil {
		return nil, fmt.Errorf("registering the KEDA metrics adapter: %w", err)
	}
	adArgs := append(kedaEnv(env.Kubeconfig), bins.adapter,
		"--secure-port="+strconv.Itoa(adapterPort),
		"--bind-address=127.0.0.1",
		"--cert-dir="+certDir,
		"--tls-cert-file="+filepath.Join(certDir, "tls.crt"),
		"--tls-private-key-file="+filepath.Join(certDir, "tls.key"),
		"--kubeconfig="+env.Kubeconfig,
		"--lister-kubeconfig="+env.Kubeconfig,
		"--authentication-kubeconfig="+env.Kubeconfig,
		"--authorization-kubeconfig="+env.Kubeconfig,
		"--metrics-service-address="+hostPort(grpcPort),
		"--port="+strconv.Itoa(adapterMetrics),
	)
	start = time.Now()
	if k.adapter, err = testenv.StartProcess("keda-adapter", adArgs, k.adapterLog, env.Dir); err != nil {
		return nil, fmt.Errorf("starting the KEDA metrics adapter: %w", err)
	}
	if k.adapterPID, err = findPIDWait(ctx, env.Dir, bins.adapter); err != nil {
		return nil, err
	}
	if err := waitAPIServiceAvailable(ctx, env.Client, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("the KEDA metrics adapter (log %s): %w\n%s", k.adapterLog, err, strings.Join(testenv.TailLog(k.adapterLog, 15), "\n"))
	}
	logf("KEDA metrics adapter serving external.metrics.k8s.io in %s (pid %d, log %s)", time.Since(start).Round(10*time.Millisecond), k.adapterPID, k.adapterLog)
	return k, nil
}

// findPIDWait waits for env(1) to have exec'd bin.
func findPIDWait(ctx context.Context, owner, bin string) (int, error) {
	var pid int
	var last error
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		pid, last = findPID(owner, bin)
		return last == nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w (%v)", err, last)
	}
	return pid, nil
}

// scaledObject is what a KEDA user of OpenFaaS would write for function i of
// set s: one ScaledObject per function with one Prometheus trigger, KEDA's
// defaults for everything else (pollingInterval 30s, cooldownPeriod 300s,
// minReplicaCount 0), and:
//
//   - async functions: the queue depth OpenFaaS Pro's queue-worker reports,
//     averaged over queue-worker replicas as OpenFaaS Pro's own rule does,
//     with a target of 10 queued jobs per replica (tierscaler's default
//     pendingPerReplica). KEDA activates the function from zero as soon as
//     the depth is above 0 (activationThreshold's default).
//   - sync functions: requests per second through the gateway over a 1m
//     window (tierscaler's default window) with a target of 70% of one
//     replica's capacity (max_inflight / request duration; tierscaler's
//     default targetUtilization is 0.7); minReplicaCount 1, since sync
//     functions are never scaled to zero.
func scaledObject(s fnSet, i int, promURL string) *unstructured.Unstructured {
	name, key := s.name(i), s.key(i)
	spec := map[string]any{
		"scaleTargetRef": map[string]any{"name": name},
	}
	var trigger map[string]any
	if isSync(i) {
		spec["minReplicaCount"] = int64(1)
		spec["maxReplicaCount"] = int64(syncMax)
		trigger = map[string]any{
			"serverAddress": promURL,
			"query":         fmt.Sprintf(`sum(rate(gateway_function_invocation_total{function_name=%q}[1m]))`, key),
			"threshold":     strconv.FormatFloat(0.7*syncCapacity, 'f', -1, 64),
		}
	} else {
		spec["maxReplicaCount"] = int64(asyncMax)
		trigger = map[string]any{
			"serverAddress": promURL,
			"query":         fmt.Sprintf(`avg(queue_worker_pending_messages{function_name=%q})`, key),
			"threshold":     "10",
		}
	}
	spec["triggers"] = []any{map[string]any{"type": "prometheus", "metadata": trigger}}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "ScaledObject",
		"metadata":   map[string]any{"name": name, "namespace": s.namespace},
		"spec":       spec,
	}}
}

// scaledObjectQueries returns the PromQL of function i's trigger.
func scaledObjectQuery(s fnSet, i int, promURL string) string {
	so := scaledObject(s, i, promURL)
	trig, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	q, _, _ := unstructured.NestedString(trig[0].(map[string]any), "metadata", "query")
	return q
}

// createScaledObjects creates the set's ScaledObjects and waits until KEDA
// reports every one Ready (its scalers built, its HPA created).
func createScaledObjects(ctx context.Context, c client.Client, s fnSet, promURL string, timeout time.Duration, logf func(string, ...any)) error {
	for i := 1; i <= s.n; i++ {
		if err := c.Create(ctx, scaledObject(s, i, promURL)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating ScaledObject %s: %w", s.name(i), err)
		}
	}
	start := time.Now()
	lastLog := start
	var ready int
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObjectList"})
		if err := c.List(ctx, list, client.InNamespace(s.namespace)); err != nil {
			return false, nil
		}
		ready = 0
		for i := range list.Items {
			if condition(&list.Items[i], "Ready") {
				ready++
			}
		}
		if time.Since(lastLog) > 30*time.Second {
			logf("KEDA: %d of %d ScaledObjects Ready after %s", ready, s.n, time.Since(start).Round(time.Second))
			lastLog = time.Now()
		}
		return ready == s.n, nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d ScaledObjects Ready after %s: %w", ready, s.n, timeout, err)
	}
	logf("KEDA: %d ScaledObjects Ready in %s", s.n, time.Since(start).Round(10*time.Millisecond))
	return nil
}

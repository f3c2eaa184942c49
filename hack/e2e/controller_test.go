// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tierscaler/tierscaler/hack/image"
	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
)

// hostController is the chart's controller run on the host: the tierscaler
// binary taken out of the image, as the image's user (65532) and the chart's
// ServiceAccount, with the chart-rendered policy, arguments and environment.
type hostController struct {
	t *testing.T
	// args are the arguments it runs with; chartArgs the Deployment's.
	args, chartArgs []string
	// serviceAccount is the chart's, namespace/name; kubeconfig
	// authenticates as it with a TokenRequest token.
	serviceAccount string
	kubeconfig     string
	// policy is the chart-rendered policy; policyFile and tokenFile the
	// local copies of the mounted ConfigMap and Secret.
	policy                *policy.Policy
	policyFile, tokenFile string
	token                 string
	// metricsURL and webhookURL are http://127.0.0.1:PORT.
	metricsURL, webhookURL string
	logPath                string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// runChartController reads what the chart installed (the policy ConfigMap,
// the webhook token Secret, the Deployment's container arguments and
// environment, its ServiceAccount) and runs the tierscaler binary of the
// image on the host the way the pod would: as the image's user, with the
// image's and the container's environment and nothing of the host's, the
// same arguments, in-cluster paths replaced by local copies (owned by that
// user), listening on loopback, authenticated as the ServiceAccount. It
// returns once the process leads and serves /readyz.
func runChartController(t *testing.T, e *testenv.Env) *hostController {
	t.Helper()
	ctx := testContext(t)
	img := tierscalerBinary(t)
	// Under the environment's directory: kept with the logs when a test
	// fails, and on the command line, where check-leftovers.sh looks.
	dir := filepath.Join(e.Dir, "e2e", safeName(t.Name()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &hostController{t: t, logPath: filepath.Join(dir, "tierscaler.log"), exited: make(chan struct{})}

	var dep appsv1.Deployment
	if err := e.Client.Get(ctx, clientKey(releaseNamespace, releaseName), &dep); err != nil {
		t.Fatalf("the chart's Deployment: %v", err)
	}
	pod := dep.Spec.Template.Spec
	var ctr *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "tierscaler" {
			ctr = &pod.Containers[i]
		}
	}
	if ctr == nil {
		t.Fatalf("the chart's Deployment has no container named tierscaler")
	}
	c.chartArgs = ctr.Args

	// The mounted files: volume name -> what it holds.
	files := map[string]string{} // in-cluster path -> local copy
	for _, m := range ctr.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil {
			t.Fatalf("volume mount %s has no volume", m.Name)
		}
		switch {
		case vol.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := e.Client.Get(ctx, clientKey(releaseNamespace, vol.ConfigMap.Name), &cm); err != nil {
				t.Fatalf("ConfigMap %s: %v", vol.ConfigMap.Name, err)
			}
			for _, it := range vol.ConfigMap.Items {
				local := filepath.Join(dir, it.Path)
				if err := os.WriteFile(local, []byte(cm.Data[it.Key]), 0o600); err != nil {
					t.Fatal(err)
				}
				files[filepath.Join(m.MountPath, it.Path)] = local
			}
		case vol.Secret != nil:
			var s corev1.Secret
			if err := e.Client.Get(ctx, clientKey(releaseNamespace, vol.Secret.SecretName), &s); err != nil {
				t.Fatalf("Secret %s: %v", vol.Secret.SecretName, err)
			}
			for _, it := range vol.Secret.Items {
				local := filepath.Join(dir, "secret-"+m.Name+"-"+it.Path)
				if err := os.WriteFile(local, s.Data[it.Key], 0o600); err != nil {
					t.Fatal(err)
				}
				files[filepath.Join(m.MountPath, it.Path)] = local
			}
		}
	}

	sa := pod.ServiceAccountName
	if sa == "" {
		t.Fatal("the chart's pods name no ServiceAccount")
	}
	c.serviceAccount = releaseNamespace + "/" + sa
	saKubeconfig, err := e.ServiceAccountKubeconfig(ctx, releaseNamespace, sa)
	if err != nil {
		t.Fatal(err)
	}
	// A copy in dir, which the image's user owns.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if b, err := os.ReadFile(saKubeconfig); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.kubeconfig = kubeconfig

	// The container's environment, as the kubelet would set it.
	podName := releaseName + "-e2e-host"
	envVars := map[string]string{}
	for _, ev := range ctr.Env {
		switch {
		case ev.ValueFrom == nil:
			envVars[ev.Name] = ev.Value
		case ev.ValueFrom.FieldRef != nil && ev.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			envVars[ev.Name] = releaseNamespace
		case ev.ValueFrom.FieldRef != nil && ev.ValueFrom.FieldRef.FieldPath == "metadata.name":
			envVars[ev.Name] = podName
		default:
			t.Fatalf("environment variable %s: no host equivalent of %+v", ev.Name, ev.ValueFrom)
		}
	}

	metricsAddr, webhookAddr := freeAddr(t), freeAddr(t)
	c.metricsURL, c.webhookURL = "http://"+metricsAddr, "http://"+webhookAddr
	args, err := hostArgs(ctr.Args, envVars, files, map[string]string{
		"--metrics-addr": metricsAddr,
		"--webhook-addr": webhookAddr,
	})
	if err != nil {
		t.Fatalf("the chart's arguments %q: %v", ctr.Args, err)
	}
	c.args = append(args, "--kubeconfig="+kubeconfig)
	c.policyFile, c.tokenFile = flagValue(c.args, "--policy"), flagValue(c.args, "--webhook-token-file")
	if c.policyFile == "" {
		t.Fatalf("the chart passes no --policy: %q", ctr.Args)
	}
	if c.policy, err = policy.Load(c.policyFile); err != nil {
		t.Fatalf("the chart-rendered policy: %v", err)
	}
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		c.token = strings.TrimSpace(string(b))
	}

	// The files are the image user's, as the kubelet mounts them readable
	// for the pod's user.
	if err := image.GiveTo(img.uid, img.gid, dir); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.logPath) // the test's: the process writes to the descriptor
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(img.path, c.args...)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// The environment a container of the image gets: the image's ENV, the
	// hostname and home a runtime sets, and the container's env; nothing of
	// the host's (no KUBECONFIG, no proxy settings).
	c.cmd.Env = append(append([]string(nil), img.env...), "HOSTNAME="+podName, "HOME="+img.home)
	for k, v := range envVars {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	asUser := image.RunAs(c.cmd, img.uid, img.gid)
	if err := startChild(c.cmd); err != nil {
		logf.Close()
		t.Fatalf("starting tierscaler: %v", err)
	}
	logf.Close()
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	if asUser {
		if r, eff, err := processUIDs(c.cmd.Process.Pid); err == nil && (r != img.uid || eff != img.uid) {
			t.Fatalf("tierscaler runs as uid %d (effective %d), want the image's user %d", r, eff, img.uid)
		}
	}
	user := fmt.Sprintf("uid %d (the image's user)", img.uid)
	if !asUser {
		user = fmt.Sprintf("uid %d (not root: the image's user %d cannot be taken)", os.Geteuid(), img.uid)
	}
	t.Logf("tierscaler from image %s runs as %s and ServiceAccount %s: %s %s", img.digest, user, c.serviceAccount, img.path, strings.Join(c.args, " "))
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Logf("stopping tierscaler: %v", err)
		}
		deleteLease(context.Background(), e, c)
		if t.Failed() {
			t.Logf("tierscaler log (%s), last lines:\n%s", c.logPath, c.tail(80))
		}
	})

	eventually(t, 90*time.Second, "tierscaler serves /readyz and leads", func() (bool, string) {
		select {
		case <-c.exited:
			t.Fatalf("tierscaler exited: %v\n%s", c.err, c.tail(40))
		default:
		}
		resp, err := httpClient.Get(c.metricsURL + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, "/readyz: " + resp.Status
		}
		if v, _ := metric(c.metricsURL, "tierscaler_leader", nil); v != 1 {
			return false, "not leading yet"
		}
		return true, ""
	})
	return c
}

// hostArgs turns the container's arguments into the host's: $(VAR)
// references expanded as the kubelet does, the in-cluster files replaced by
// their local copies, and the flags in replace given new values. An
// argument that still names an in-cluster path is an error, and so is a
// replacement that matched nothing.
func hostArgs(args []string, env, files, replace map[string]string) ([]string, error) {
	used := map[string]bool{}
	var out []string
	for _, a := range args {
		a = expandKubelet(a, env)
		name, value, hasValue := strings.Cut(a, "=")
		if r, ok := replace[name]; ok && hasValue {
			used[name] = true
			out = append(out, name+"="+r)
			continue
		}
		if local, ok := files[value]; ok && hasValue {
			out = append(out, name+"="+local)
			used[value] = true
			continue
		}
		if hasValue && strings.HasPrefix(value, "/") {
			return nil, fmt.Errorf("%s names the in-cluster path %s, which no mounted ConfigMap or Secret provides", name, value)
		}
		out = append(out, a)
	}
	for k := range replace {
		if !used[k] {
			return nil, fmt.Errorf("no %s argument to replace", k)
		}
	}
	for k := range files {
		if !used[k] {
			return nil, fmt.Errorf("the mounted file %s is named by no argument", k)
		}
	}
	return out, nil
}

// expandKubelet expands $(VAR) from env as the kubelet expands container
// arguments: an undefined reference stays as it is, $$ is a literal $.
func expandKubelet(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// flagValue returns the value of --name=value in args, "" if absent.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// stop sends SIGTERM (a clean shutdown releases the lease) and SIGKILL after
// 20 seconds.
func (c *hostController) stop() error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("tierscaler did not stop within 20s of SIGTERM: killed")
}

// tail returns the last n lines of the log.
func (c *hostController) tail(n int) string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logRecord is one line of tierscaler's JSON log.
type logRecord struct {
	Time time.Time      `json:"time"`
	Msg  string         `json:"msg"`
	Raw  map[string]any `json:"-"`
	Line string         `json:"-"`
}

// logRecords parses the JSON lines of the log (other lines are skipped).
func (c *hostController) logRecords() []logRecord {
	b, _ := os.ReadFile(c.logPath)
	var out []logRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		_ = json.Unmarshal(sc.Bytes(), &r.Raw)
		r.Line = sc.Text()
		out = append(out, r)
	}
	return out
}

// forbiddenLines are the log lines that report a request refused by RBAC.
func (c *hostController) forbiddenLines() []string {
	b, _ := os.ReadFile(c.logPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.ToLower(l), "forbidden") {
			out = append(out, l)
		}
	}
	return out
}

// deleteLease removes the leader Lease and the state ConfigMap the
// controller created at run time: helm does not own them, and the next
// test's controller should find neither.
func deleteLease(ctx context.Context, e *testenv.Env, c *hostController) {
	id := flagValue(c.args, "--leader-election-id")
	if id == "" {
		id = "tierscaler"
	}
	_ = e.Clientset.CoordinationV1().Leases(releaseNamespace).Delete(ctx, id, metav1.DeleteOptions{})
	if name := flagValue(c.args, "--state-name"); name != "" {
		_ = e.Clientset.CoreV1().ConfigMaps(releaseNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

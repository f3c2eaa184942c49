// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

func TestPKI(t *testing.T) {
	p, err := newPKI()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, p.write(dir))

	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(p.caPEM))
	parse := func(certPEM []byte) *x509.Certificate {
		block, _ := pem.Decode(certPEM)
		require.NotNil(t, block)
		c, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		return c
	}

	serving := parse(p.servingCertPEM)
	_, err = serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	require.NoError(t, err)
	_, err = serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	require.NoError(t, err)

	admin := parse(p.adminCertPEM)
	_, err = admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	require.Equal(t, []string{"system:masters"}, admin.Subject.Organization)

	for _, f := range []string{p.caKeyFile, p.servingKey, p.adminKeyFile, p.saKeyFile} {
		st, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
	_, err = p.tlsConfig()
	require.NoError(t, err)
}

func TestWriteKubeconfig(t *testing.T) {
	p, err := newPKI()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, writeKubeconfig(path, "https://127.0.0.1:6443", p.caPEM, adminUser(p), "openfaas-fn"))
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	require.NoError(t, err)
	require.Equal(t, "https://127.0.0.1:6443", cfg.Host)
	require.Equal(t, p.adminCertPEM, cfg.CertData)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultNodes, o.Nodes)
	require.Equal(t, "4", o.NodeCPU)
	require.Equal(t, "8Gi", o.NodeMemory)
	require.Equal(t, 110, o.NodePods)
	require.Equal(t, time.Second, o.ScrapeInterval)
	require.Equal(t, time.Second, o.EvaluationInterval)
	require.Equal(t, DefaultAlertmanagerConfig, o.AlertmanagerConfig)

	o, err = Options{ScrapeInterval: 5 * time.Second, RuleFiles: []string{"rules.yml"}}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, o.EvaluationInterval)
	require.True(t, filepath.IsAbs(o.RuleFiles[0]))

	_, err = Options{NodeMemory: "eight gigs"}.withDefaults()
	require.ErrorContains(t, err, "NodeMemory")
}

func TestPrometheusConfig(t *testing.T) {
	o, err := Options{ScrapeInterval: 1500 * time.Millisecond, EvaluationInterval: time.Minute, RuleFiles: []string{"/r.yml"}}.withDefaults()
	require.NoError(t, err)
	e := &Env{opts: o, ports: map[string]int{portAlertmanager: 9093}, scrape: map[string][]string{
		"gateway":  {"127.0.0.1:8080"},
		"cadvisor": {"127.0.0.1:8081", "127.0.0.1:8082"},
	}}
	data, err := e.prometheusConfig()
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal(data, &got))
	want := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s500ms", "scrape_timeout": "1s500ms", "evaluation_interval": "1m"},
		"rule_files": []any{"/r.yml"},
		"alerting": map[string]any{"alertmanagers": []any{map[string]any{
			"api_version": "v2", "static_configs": []any{map[string]any{"targets": []any{"127.0.0.1:9093"}}},
		}}},
		"scrape_configs": []any{
			map[string]any{"job_name": "cadvisor", "static_configs": []any{map[string]any{"targets": []any{"127.0.0.1:8081", "127.0.0.1:8082"}}}},
			map[string]any{"job_name": "gateway", "static_configs": []any{map[string]any{"targets": []any{"127.0.0.1:8080"}}}},
		},
	}
	require.Equal(t, want, got)
}

func TestProcessStopKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	// A shell that ignores SIGTERM and has a child: stop must escalate to
	// SIGKILL and reach the child through the process group.
	p, err := spawn("stubborn", "/bin/sh", []string{"-c", `trap '' TERM; sleep 300 & echo started; wait`},
		filepath.Join(dir, "stubborn.log"), dir, dir, false, false)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return logMentions(p.log, "started") }, 5*time.Second, 10*time.Millisecond)
	require.True(t, p.alive())
	require.True(t, processAlive(p.pid, dir), "the owner marker is in the child's environment")
	require.False(t, processAlive(p.pid, dir+"-other"))
	pids, err := FindProcesses(dir)
	require.NoError(t, err)
	require.Contains(t, pids, p.pid)
	require.Len(t, pids, 2, "the shell and its sleep")

	start := time.Now()
	require.NoError(t, p.stop(300*time.Millisecond))
	require.Less(t, time.Since(start), 5*time.Second)
	require.False(t, p.alive())
	require.Eventually(t, func() bool {
		pids, err := FindProcesses(dir)
		return err == nil && len(pids) == 0
	}, 5*time.Second, 20*time.Millisecond, "the sleep child must die with its group")
	require.NoError(t, p.stop(time.Second), "stopping twice is a no-op")
}

func TestAdoptedProcessStop(t *testing.T) {
	dir := t.TempDir()
	owned, err := spawn("sleeper", "/bin/sleep", []string{"300"}, filepath.Join(dir, "s.log"), dir, dir, false, false)
	require.NoError(t, err)
	adopted := &proc{name: "sleeper", pid: owned.pid, owner: dir}
	require.True(t, adopted.alive())
	require.NoError(t, adopted.stop(time.Second))
	require.True(t, owned.waitExit(5*time.Second))
	require.False(t, adopted.alive())
}

// testEnv returns an Env with just enough set for launch.
func testEnv(t *testing.T) *Env {
	o, err := Options{StartTimeout: 3 * time.Second, StopGrace: time.Second}.withDefaults()
	require.NoError(t, err)
	return &Env{Dir: t.TempDir(), opts: o, ports: map[string]int{}, procs: map[string]*proc{}, scrape: map[string][]string{}}
}

func TestLaunchFailureNamesComponentAndLog(t *testing.T) {
	e := testEnv(t)
	err := e.launch(context.Background(), component{
		name:  "broken",
		bin:   "/bin/sh",
		args:  func() []string { return []string{"-c", "echo first line; echo 'fatal: no such flag --foo'; exit 3"} },
		ready: func(context.Context) error { return errors.New("not ready") },
	}, false)
	var ce *ComponentError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "broken", ce.Component)
	require.Equal(t, filepath.Join(e.Dir, "broken.log"), ce.Log)
	require.Equal(t, []string{"first line", "fatal: no such flag --foo"}, ce.Tail)
	msg := err.Error()
	for _, want := range []string{"broken:", "exit status 3", "read " + ce.Log, "fatal: no such flag --foo"} {
		require.Contains(t, msg, want)
	}
}

func TestLaunchTimeout(t *testing.T) {
	e := testEnv(t)
	e.opts.StartTimeout = 300 * time.Millisecond
	err := e.launch(context.Background(), component{
		name:  "slow",
		bin:   "/bin/sleep",
		args:  func() []string { return []string{"300"} },
		ready: func(context.Context) error { return errors.New("connection refused") },
	}, false)
	require.ErrorContains(t, err, "slow: could not become ready: not ready after 300ms: connection refused")
	p := e.procs["slow"]
	require.NotNil(t, p)
	require.False(t, p.alive(), "a component that never became ready is stopped")
}

func TestLaunchRetriesOnPortClash(t *testing.T) {
	e := testEnv(t)
	require.NoError(t, e.pickPorts("svc"))
	first := e.port("svc")
	attempts := 0
	err := e.launch(context.Background(), component{
		name:  "svc",
		bin:   "/bin/sh",
		ports: []string{"svc"},
		args: func() []string {
			attempts++
			if attempts == 1 {
				return []string{"-c", "echo 'listen tcp 127.0.0.1:1: bind: address already in use'; exit 1"}
			}
			return []string{"-c", "echo serving; exec sleep 300"}
		},
		ready: func(context.Context) error {
			if !logMentions(filepath.Join(e.Dir, "svc.log"), "serving") {
				return errors.New("not serving")
			}
			return nil
		},
	}, false)
	require.NoError(t, err)
	require.Equal(t, 2, attempts)
	require.NotEqual(t, first, e.port("svc"))
	log, err := os.ReadFile(filepath.Join(e.Dir, "svc.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "address already in use", "the failed attempt's log is kept")
	require.NoError(t, e.stop(true))
	require.False(t, e.procs["svc"].alive())
}

func TestStateRoundTrip(t *testing.T) {
	e := testEnv(t)
	e.detached = true
	e.ports[portPrometheus] = 9090
	e.scrape["gw"] = []string{"127.0.0.1:8080"}
	p, err := spawn("sleeper", "/bin/sleep", []string{"300"}, filepath.Join(e.Dir, "sleeper.log"), e.Dir, e.Dir, false, false)
	require.NoError(t, err)
	e.procs["sleeper"] = p
	t.Cleanup(func() { _ = p.stop(time.Second) })
	require.NoError(t, e.saveState())

	st, err := ReadState(e.Dir)
	require.NoError(t, err)
	require.Equal(t, 9090, st.Ports[portPrometheus])
	require.Equal(t, []string{"127.0.0.1:8080"}, st.ScrapeTargets["gw"])
	require.Len(t, st.Processes, 1)
	require.Equal(t, p.pid, st.Processes[0].PID)
	require.True(t, st.Processes[0].Alive(e.Dir))
	require.True(t, st.anyAlive())

	require.NoError(t, p.stop(time.Second))
	require.False(t, st.Processes[0].Alive(e.Dir))

	_, err = ReadState(t.TempDir())
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestMissingBinaries(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd"), []byte("#!/bin/sh\n"), 0o755))
	t.Setenv(BinDirEnv, dir)
	_, err := findBinaries()
	var mb *MissingBinaryError
	require.ErrorAs(t, err, &mb)
	require.Equal(t, []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager", "kwok", "kwok-stages.yaml"}, mb.Names)
	require.Contains(t, err.Error(), "make tools")
	require.Contains(t, err.Error(), dir)
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), "module github.com/tierscaler/tierscaler"))
}

func TestTailLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 50 {
		b.WriteString(strings.Repeat("x", i) + "\n")
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	tail := tailLines(path, 3)
	require.Equal(t, []string{strings.Repeat("x", 47), strings.Repeat("x", 48), strings.Repeat("x", 49)}, tail)
	require.Nil(t, tailLines(filepath.Join(t.TempDir(), "missing"), 3))
}

func TestSignalGroupRefusesInit(t *testing.T) {
	require.Error(t, signalGroup(1, syscall.SIGTERM))
	require.Error(t, signalGroup(0, syscall.SIGTERM))
}

// crashHelperEnv makes TestCrashHelper act: it is set only in the helper
// process TestPdeathsigKillsChildrenOfACrashedParent runs.
const crashHelperEnv = "TESTENV_CRASH_HELPER_DIR"

// TestCrashHelper, in a helper process, starts a child the way Start does
// and dies by SIGKILL, as a test binary killed by a timeout would.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	p, err := spawn("orphan", "/bin/sleep", []string{"300"}, filepath.Join(dir, "orphan.log"), dir, dir, false, false)
	if err != nil {
		os.Exit(3)
	}
	os.Stdout.WriteString(strconv.Itoa(p.pid) + "\n")
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

func TestPdeathsigKillsChildrenOfACrashedParent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the helper must die by SIGKILL")
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "helper output %q", out)
	require.Eventually(t, func() bool { return !processAlive(pid, dir) }, 5*time.Second, 20*time.Millisecond,
		"the child (pid %d) of a killed parent must die with it", pid)
}

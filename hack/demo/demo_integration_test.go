// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

// Integration tests of the demo: they build the demo and tierscaler, run
// the demo as `make demo` does (without a terminal), drive it as a user
// would with the commands it prints, and check that it stops everything:
// at the end of --duration, on Ctrl-C (SIGINT), and when it is killed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/scaler"
)

// binaries builds the demo and tierscaler once per test binary.
var binaries = sync.OnceValues(func() ([2]string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return [2]string{}, err
	}
	dir, err := os.MkdirTemp("", "tierscaler-demo-test-bin-")
	if err != nil {
		return [2]string{}, err
	}
	out := [2]string{filepath.Join(dir, "demo"), filepath.Join(dir, "tierscaler")}
	for i, pkg := range []string{"./hack/demo", "./cmd/tierscaler"} {
		cmd := exec.Command("go", "build", "-o", out[i], pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return out, fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return out, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bins, err := binaries(); err == nil {
		os.RemoveAll(filepath.Dir(bins[0]))
	}
	os.Exit(code)
}

// running is a demo started by a test.
type running struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}

	mu  sync.Mutex
	out strings.Builder
}

// startDemo runs the demo with args (and --plain, the tierscaler binary
// built above), in its own process group.
func startDemo(t *testing.T, args ...string) *running {
	t.Helper()
	bins, err := binaries()
	require.NoError(t, err)
	cmd := exec.Command(bins[0], append([]string{"--tierscaler", bins[1], "--plain", "--refresh", "1s"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	r := &running{t: t, cmd: cmd, done: make(chan struct{})}
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.mu.Lock()
			r.out.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
		}
		_ = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", r.output())
		}
	})
	return r
}

func (r *running) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// await waits until the output matches re and returns the submatches.
func (r *running) await(re string, timeout time.Duration) []string {
	r.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(r.output()); m != nil {
			return m
		}
		select {
		case <-r.done:
			if m := rx.FindStringSubmatch(r.output()); m != nil {
				return m
			}
			r.t.Fatalf("the demo exited (%v) before printing %q", r.cmd.ProcessState, re)
		case <-time.After(100 * time.Millisecond):
		}
	}
	r.t.Fatalf("the demo did not print %q within %s", re, timeout)
	return nil
}

// up waits until the demo is up and returns its directory and the base
// URLs of tierscaler's /status, the emulator and Prometheus.
func (r *running) up() (dir, tierscaler, emulator, prometheus string) {
	r.t.Helper()
	dir = r.await(`directory\s+(\S+)`, 3*time.Minute)[1]
	tierscaler = r.await(`(http://127\.0\.0\.1:\d+)/status`, time.Second)[1]
	emulator = r.await(`curl -XPOST '(http://127\.0\.0\.1:\d+)/control/rate\?function=api&rps=200'`, time.Second)[1]
	prometheus = r.await(`Prometheus\s+(http://127\.0\.0\.1:\d+)`, time.Second)[1]
	return dir, tierscaler, emulator, prometheus
}

// wait waits for the demo to exit and returns its exit code.
func (r *running) wait(timeout time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		r.t.Fatalf("the demo did not exit within %s", timeout)
		return -1
	}
}

func status(t *testing.T, base string) *scaler.Status {
	t.Helper()
	st, err := fetchStatus(context.Background(), http.DefaultClient, base+"/status")
	if err != nil {
		return nil
	}
	return st
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// requireNothingLeft checks that no process of the demo's directory runs:
// neither by testenv's owner mark nor by command line.
func requireNothingLeft(t *testing.T, dir string) {
	t.Helper()
	eventually(t, 15*time.Second, "no process of "+dir+" runs", func() bool {
		pids, err := testenv.FindProcesses(dir)
		require.NoError(t, err)
		out, _ := exec.Command("pgrep", "-f", "--", dir).Output()
		return len(pids) == 0 && strings.TrimSpace(string(out)) == ""
	})
}

// promQuery returns the value of the only sample of an instant query, or
// -1.
func promQuery(base, q string) float64 {
	resp, err := http.Get(base + "/api/v1/query?query=" + q)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.Result) != 1 {
		return -1
	}
	var v float64
	if s, ok := body.Data.Result[0].Value[1].(string); ok {
		fmt.Sscan(s, &v)
	}
	return v
}

// TestDemoRunsForItsDurationAndLeavesNothingBehind runs the demo for 40s
// and checks, as a user would: tierscaler leads with metrics available,
// Prometheus scrapes it, the burst command it prints makes tierscaler act,
// and at the end everything is stopped and removed.
func TestDemoRunsForItsDurationAndLeavesNothingBehind(t *testing.T) {
	r := startDemo(t, "--duration", "40s")
	dir, ts, em, prom := r.up()
	upAt := time.Now()
	require.True(t, strings.HasPrefix(filepath.Base(dir), testenv.TempDirPrefix), "hack/check-leftovers.sh finds its processes")

	eventually(t, 20*time.Second, "tierscaler leads with metrics available", func() bool {
		st := status(t, ts)
		return st != nil && st.Leader && st.MetricsAvailable
	})
	resp, err := http.Post(em+"/control/rate?function=api&rps=200", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var acted *scaler.Status
	eventually(t, 30*time.Second, "tierscaler has taken an action", func() bool {
		acted = status(t, ts)
		return acted != nil && actions(acted) > 0
	})
	t.Logf("first action %s after the demo was up", time.Since(upAt).Round(100*time.Millisecond))
	require.True(t, acted.Leader)
	require.True(t, acted.MetricsAvailable)
	eventually(t, 20*time.Second, "Prometheus scrapes tierscaler", func() bool {
		return promQuery(prom, `up{job="tierscaler"}`) == 1 && promQuery(prom, `tierscaler_leader`) == 1
	})
	// The printed table shows the action too.
	r.await(`(?m)^api\.openfaas-fn\s+sync\s+\d+\s+\d+\s+\d+\s+.*scale-up-`, 15*time.Second)

	require.Equal(t, 0, r.wait(90*time.Second), "exit code")
	require.GreaterOrEqual(t, time.Since(upAt), 39*time.Second, "ran for its --duration")
	out := r.output()
	require.Contains(t, out, "--duration 40s is over.")
	require.Regexp(t, `Last status: leader true, metrics available true, [1-9]\d* functions with a last action`, out)
	require.Contains(t, out, "Stopped everything; nothing is left running.")
	requireNothingLeft(t, dir)
	require.NoDirExists(t, dir)
}

// TestDemoCtrlCStopsEverything interrupts the demo as Ctrl-C does.
func TestDemoCtrlCStopsEverything(t *testing.T) {
	r := startDemo(t)
	dir, ts, _, _ := r.up()
	eventually(t, 20*time.Second, "tierscaler leads", func() bool {
		st := status(t, ts)
		return st != nil && st.Leader
	})
	require.NoError(t, r.cmd.Process.Signal(os.Interrupt))
	require.Equal(t, 0, r.wait(60*time.Second), "exit code")
	require.Contains(t, r.output(), "Stopped everything; nothing is left running.")
	requireNothingLeft(t, dir)
	require.NoDirExists(t, dir)
}

// TestDemoKilledLeavesNoProcess kills the demo outright: its children die
// with it (Pdeathsig); only the directory remains.
func TestDemoKilledLeavesNoProcess(t *testing.T) {
	r := startDemo(t)
	dir, ts, _, _ := r.up()
	t.Cleanup(func() { os.RemoveAll(dir) })
	eventually(t, 20*time.Second, "tierscaler leads", func() bool {
		st := status(t, ts)
		return st != nil && st.Leader
	})
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGKILL))
	r.wait(10 * time.Second)
	requireNothingLeft(t, dir)
}

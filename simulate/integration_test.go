// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package simulate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/hack/emulator"
	"github.com/tierscaler/tierscaler/workload"
)

// startPrometheus runs the prometheus binary from PATH on a free port,
// scraping target every second, and stops it when the test ends.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not on PATH: install the Debian package prometheus (hack/tools.sh does)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: gateway\n    static_configs: [{targets: [%q]}]\n", target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = logf.Close()
	})
	url := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 200*time.Millisecond, "prometheus did not become ready; see %s", filepath.Join(dir, "prometheus.log"))
	return url
}

// TestBacktestAgainstPrometheus runs the emulator for about a minute on a
// scenario with two steady sync functions and a queue worker, lets the real
// Prometheus scrape it, then backtests that range and checks the replayed
// load against the scenario's.
func TestBacktestAgainstPrometheus(t *testing.T) {
	s, err := workload.Parse([]byte(`apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: recorded
nodes: {count: 2}
functions:
  - {name: api, tier: sync, maxInflight: 10, sync: {rate: 20, requestDuration: 100ms}}
  - {name: web, tier: sync, maxInflight: 10, sync: {rate: 4, requestDuration: 300ms}}
  - {name: jobs, tier: async, maxInflight: 5, async: {rate: 1, jobDuration: 500ms}}
`))
	require.NoError(t, err)
	src := emulator.NewStaticSource()
	for _, k := range []string{"api.openfaas-fn", "web.openfaas-fn", "jobs.openfaas-fn"} {
		require.NoError(t, src.SetReady(k, 2))
	}
	em, err := emulator.New(emulator.Options{Scenario: s, Seed: 1, Source: src, Tick: 200 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, em.Start(ctx))
	defer em.Stop()
	url := startPrometheus(t, em.Addr())

	began := time.Now()
	time.Sleep(70 * time.Second)
	end := time.Now()
	tr, err := ReadTrace(ctx, BacktestOptions{URL: url, End: end, Range: end.Sub(began) - 10*time.Second, Step: 5 * time.Second})
	require.NoError(t, err)
	require.Equal(t, []string{"api.openfaas-fn", "jobs.openfaas-fn", "web.openfaas-fn"}, tr.Functions)
	mean := func(key string) float64 {
		// The steps well inside the range: the first rate windows may
		// predate the first scrapes.
		v := tr.Rates[key]
		sum, n := 0.0, 0
		for i := 4; i < len(v)-1; i++ {
			sum += v[i]
			n++
		}
		return sum / float64(n)
	}
	assert.InDelta(t, 20, mean("api.openfaas-fn"), 2, "api: recorded rate")
	assert.InDelta(t, 4, mean("web.openfaas-fn"), 0.6, "web: recorded rate")
	assert.InDelta(t, 1, mean("jobs.openfaas-fn"), 0.6, "jobs: recorded arrivals")
	assert.InDelta(t, 0.1, tr.Durations["api.openfaas-fn"], 1e-6)
	assert.InDelta(t, 0.3, tr.Durations["web.openfaas-fn"], 1e-6)

	bs, notes, err := tr.Scenario(s)
	require.NoError(t, err)
	assert.Empty(t, notes)
	rep, err := Run(ctx, Config{Scenario: bs, Load: tr.Load(bs), Seed: 1})
	require.NoError(t, err)
	for _, st := range rep.Strategies {
		want := 24 * tr.End.Sub(tr.Start).Seconds()
		assert.InDelta(t, want, st.SyncRequests, want*0.15, "%s: the replayed sync requests", st.Strategy)
		assert.Zero(t, st.Sync429Seconds, "%s: 2 replicas' worth of load fits one replica", st.Strategy)
	}
	assert.Positive(t, rep.Strategy(StrategyTierscaler).AsyncJobs)
	_, err = rep.WriteFiles(t.TempDir())
	require.NoError(t, err)
}

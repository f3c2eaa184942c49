// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

// queryHandlers are the handlers of prometheus_http_requests_total that
// count PromQL queries.
var queryHandlers = []string{"/api/v1/query", "/api/v1/query_range"}

// scrape GETs a /metrics endpoint and returns its metric families.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// The text format: the parser below reads nothing else.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return mfs, nil
}

// sumMetric sums the values (counter, gauge or untyped) of the series of
// name whose labels include every pair of match (a value "" matches any).
func sumMetric(mfs map[string]*dto.MetricFamily, name string, match map[string][]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
series:
	for _, m := range mf.GetMetric() {
		for k, vals := range match {
			v := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k {
					v = lp.GetValue()
				}
			}
			if !slices.Contains(vals, v) {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		default:
			continue
		}
		found = true
	}
	return sum, found
}

// promQueries reads, from Prometheus' own /metrics, how many PromQL queries
// its HTTP API has answered so far.
func promQueries(ctx context.Context, promURL string) (float64, error) {
	mfs, err := scrape(ctx, promURL+"/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := sumMetric(mfs, "prometheus_http_requests_total", map[string][]string{"handler": queryHandlers})
	if !ok {
		return 0, nil // no query answered yet: the series are born with the first one
	}
	return v, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds returns the user and system CPU time pid has used, from
// /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// findPID returns the PID of the process the environment in owner started
// from the binary bin (testenv marks its children with the environment's
// directory).
func findPID(owner, bin string) (int, error) {
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return 0, err
	}
	pids, err := testenv.FindProcesses(owner)
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		if err == nil && exe == want {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process of %s runs %s", owner, bin)
}

// pause stops (SIGSTOP) or resumes (SIGCONT) processes.
func signalAll(pids []int, sig syscall.Signal) error {
	for _, pid := range pids {
		if pid <= 1 {
			return fmt.Errorf("refusing to signal pid %d", pid)
		}
		if err := syscall.Kill(pid, sig); err != nil {
			return fmt.Errorf("kill -%d %d: %w", sig, pid, err)
		}
	}
	return nil
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// percentile returns the p-th percentile (nearest rank) of ds, or -1 if ds
// is empty.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i, 1), len(s))-1]
}

// secs formats a duration in seconds with one decimal, "-" if negative
// (no value).
func secs(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
}

// ratio formats a/b as "12×", with one decimal below 10; "-" when either
// is unknown or b is zero (a CPU time below the 10 ms tick, no query in a
// short window: no meaningful ratio).
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || a < 0 || b <= 0 {
		return "-"
	}
	r := a / b
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 1, 64) + "×"
	}
	return strconv.FormatFloat(r, 'f', 0, 64) + "×"
}

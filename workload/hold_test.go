// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"testing"
	"time"
)

func TestHoldAtZero(t *testing.T) {
	const api, job = "api.openfaas-fn", "job.openfaas-fn"
	s := mustParse(t, `- name: api
  maxInflight: 50
  sync: {rate: 2, requestDuration: 100ms}
- name: job
  schedule: "* * * * *"
  minReplicas: 0
  cron: {runDuration: 30s}
`)
	for _, tc := range []struct {
		name string
		// hold is the hold timeout (0: off); readyFrom is when each function
		// gets one Ready replica.
		hold      time.Duration
		readyFrom time.Duration
		check     func(t *testing.T, a, j Observation)
	}{
		{"off: refused at zero", 0, 10 * time.Second, func(t *testing.T, a, j Observation) {
			if !near(a.Rejected429, 20) || a.Held != 0 || a.Failed != 0 {
				t.Errorf("api: %v refused, %v held, %v failed; want 20, 0, 0", a.Rejected429, a.Held, a.Failed)
			}
			if j.CronMissed != 1 || j.CronRuns != 0 {
				t.Errorf("job: %d missed, %d runs; want 1, 0", j.CronMissed, j.CronRuns)
			}
		}},
		{"on: held, then run when a replica is Ready", 100 * time.Second, 10 * time.Second, func(t *testing.T, a, j Observation) {
			if a.Rejected429 != 0 || a.Held != 0 || a.Failed != 0 {
				t.Errorf("api: %v refused, %v held, %v failed; want none", a.Rejected429, a.Held, a.Failed)
			}
			if !near(a.Started, 40) || !near(a.Completed200, 40-0.2) {
				t.Errorf("api: %v started, %v completed; want 40 and 39.8 (0.2 in flight)", a.Started, a.Completed200)
			}
			if j.CronMissed != 0 || j.CronRuns != 1 || j.CronLate != 1 || j.Started != 1 || j.Inflight != 1 {
				t.Errorf("job: %+v; want one late run in flight", j)
			}
		}},
		{"on: the hold times out", 5 * time.Second, 10 * time.Second, func(t *testing.T, a, j Observation) {
			// Arrivals in [0s, 5s) time out by 10s; those of [5s, 10s) run.
			if !near(a.Failed, 10) || !near(a.Started, 40) || a.Rejected429 != 0 || a.Held != 0 {
				t.Errorf("api: %v failed, %v started, %v refused, %v held; want 10, 40, 0, 0", a.Failed, a.Started, a.Rejected429, a.Held)
			}
			if j.CronMissed != 1 || j.Failed != 1 || j.CronRuns != 0 {
				t.Errorf("job: %+v; want the fire failed and missed", j)
			}
		}},
		{"on: still held while no replica is Ready", 100 * time.Second, time.Hour, func(t *testing.T, a, j Observation) {
			if !near(a.Held, 40) || a.Started != 0 || !near(a.Offered, 40) {
				t.Errorf("api: %v held, %v started, %v offered; want 40, 0, 40", a.Held, a.Started, a.Offered)
			}
			if j.Held != 1 || j.Started != 0 || j.CronFires != 1 || j.Inflight != 0 {
				t.Errorf("job: %+v; want one fire held", j)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModel(s, 1)
			m.SetHoldAtZero(tc.hold)
			run(m, t0, 20*time.Second, time.Second, func(at time.Time) map[string]int {
				if at.Sub(t0) >= tc.readyFrom {
					return map[string]int{api: 1, job: 1}
				}
				return nil
			})
			a, j := m.Observe(api), m.Observe(job)
			if a.Inflight < 0 || j.Inflight < 0 || !near(a.Inflight, a.Started-a.Completed200-a.Rejected429-a.Failed) {
				t.Errorf("in flight is not started − completed − refused − failed: %+v", a)
			}
			tc.check(t, a, j)
		})
	}
}

func TestHoldAtZeroReleaseBeyondCapacity(t *testing.T) {
	// 20 requests held; one replica of 5 slots takes 5, refuses 15.
	s := mustParse(t, `- name: api
  maxInflight: 5
  sync: {rate: 2, requestDuration: 10s}
`)
	m := NewModel(s, 1)
	m.SetHoldAtZero(time.Minute)
	run(m, t0, 10*time.Second, time.Second, constant(nil))
	m.SetRate("api.openfaas-fn", 0)
	run(m, t0.Add(10*time.Second), time.Second, time.Second, constant(map[string]int{"api.openfaas-fn": 1}))
	o := m.Observe("api.openfaas-fn")
	if !near(o.Started, 20) || !near(o.Rejected429, 15) || !near(o.Inflight, 5) {
		t.Errorf("started %v, refused %v, in flight %v; want 20, 15, 5", o.Started, o.Rejected429, o.Inflight)
	}
}

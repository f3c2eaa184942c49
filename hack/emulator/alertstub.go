// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// AlertStub stands in for the OpenFaaS CE gateway's POST /system/alert, the
// receiver of every alert OpenFaaS CE's Alertmanager routes: it checks the
// basic auth the gateway would (User and Password, the basic-auth
// Secret's) and records every alert notified to it, without acting on it.
// The gateway itself scales the function named in a firing alert's
// function_name label a step up, and back to its minimum when the alert
// resolves: ScaleRequests lists what it would have scaled.
type AlertStub struct {
	User, Password string

	mu       sync.Mutex
	alerts   []StubAlert
	badAuth  int
	requests int
}

// StubAlert is the part of a webhook alert the gateway reads.
type StubAlert struct {
	Status   string            `json:"status"`
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
}

// alertPath is the gateway's alert handler.
const alertPath = "/system/alert"

// ServeHTTP records the alerts of an authenticated POST /system/alert and
// answers 401 to anything else.
func (s *AlertStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if user, pass, ok := r.BasicAuth(); !ok || user != s.User || pass != s.Password || r.URL.Path != alertPath || r.Method != http.MethodPost {
		s.badAuth++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var msg struct {
		Status string      `json:"status"`
		Alerts []StubAlert `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, a := range msg.Alerts {
		if a.Status == "" {
			a.Status = msg.Status
		}
		s.alerts = append(s.alerts, a)
	}
}

// Seen returns the status each alert, by alertname/service, was last
// notified with.
func (s *AlertStub) Seen() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, a := range s.alerts {
		out[a.Labels["alertname"]+"/"+a.Labels["service"]] = a.Status
	}
	return out
}

// ScaleRequests lists what the CE gateway would have scaled: "status
// function_name" of every alert received with a function_name label.
func (s *AlertStub) ScaleRequests() []string { return s.ScaleRequestsSince(time.Time{}) }

// ScaleRequestsSince is ScaleRequests of the alerts that started at or
// after t: an Alertmanager shared with earlier tests may still hold their
// alerts, and sends them again when it is reconfigured.
func (s *AlertStub) ScaleRequestsSince(t time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.alerts {
		if a.StartsAt.Before(t) {
			continue
		}
		if fn, ok := a.Labels["function_name"]; ok {
			out = append(out, a.Status+" "+fn)
		}
	}
	return out
}

// Counts returns the alerts recorded, the requests received and those
// refused for their credentials or path.
func (s *AlertStub) Counts() (alerts, requests, badAuth int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.alerts), s.requests, s.badAuth
}

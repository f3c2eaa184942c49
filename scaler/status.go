package scaler

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/tierscaler/tierscaler/policy"
)

// Status is what the controller last saw and did, served as JSON at /status
// and shown by `tierscaler status`.
type Status struct {
	Time             time.Time          `json:"time"`
	Leader           bool               `json:"leader"`
	DryRun           bool               `json:"dryRun"`
	MetricsAvailable bool               `json:"metricsAvailable"`
	Functions        []FunctionStatus   `json:"functions"`
	Shortfalls       []policy.Shortfall `json:"shortfalls"`
}

// FunctionStatus is one function's line in the status.
type FunctionStatus struct {
	Function string      `json:"function"`
	Tier     policy.Tier `json:"tier"`
	Replicas int32       `json:"replicas"`
	Ready    int32       `json:"ready"`
	Desired  int32       `json:"desired"`
	LastRun  time.Time   `json:"lastRun,omitzero"`
	NextFire time.Time   `json:"nextFire,omitzero"`
	// State is one of ready, starting, pending, zero, held.
	State      string `json:"state"`
	LastAction string `json:"lastAction,omitempty"`
}

// Status returns what the last cycle saw and did.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.last
	st := Status{Time: l.now, Leader: c.leader, DryRun: c.o.DryRun, Shortfalls: l.shortfalls}
	if l.plan == nil {
		return st
	}
	st.MetricsAvailable = l.plan.MetricsAvailable
	for i := range l.snap.Functions {
		f := &l.snap.Functions[i]
		fs := FunctionStatus{Function: f.Key(), Tier: f.Tier, Replicas: f.Replicas, Ready: f.ReadyReplicas,
			Desired: f.Replicas, LastRun: f.LastRun, LastAction: c.lastAction[f.Key()]}
		if to, ok := l.desired[f.Key()]; ok {
			fs.Desired = to
		}
		if f.Schedule != nil {
			fs.NextFire = f.Schedule.Next(l.now)
		}
		switch {
		case f.Hold:
			fs.State = "held"
		case f.Replicas == 0:
			fs.State = "zero"
		case f.PendingPods > 0:
			fs.State = "pending"
		case f.ReadyReplicas < f.Replicas:
			fs.State = "starting"
		default:
			fs.State = "ready"
		}
		st.Functions = append(st.Functions, fs)
	}
	sort.Slice(st.Functions, func(i, j int) bool { return st.Functions[i].Function < st.Functions[j].Function })
	return st
}

// StatusHandler serves Status as JSON.
func (c *Controller) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(c.Status())
	})
}

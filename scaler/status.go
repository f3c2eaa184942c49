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

func (c *Controller) setStatus(plan *policy.Plan, shortfalls []policy.Shortfall, in *inputs, desired map[string]int32, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Time: now, Leader: c.leader, DryRun: c.o.DryRun, MetricsAvailable: plan.MetricsAvailable, Shortfalls: shortfalls}
	for i := range in.snap.Functions {
		f := &in.snap.Functions[i]
		fs := FunctionStatus{Function: f.Key(), Tier: f.Tier, Replicas: f.Replicas, Ready: f.ReadyReplicas,
			Desired: f.Replicas, LastRun: f.LastRun, LastAction: c.lastAction[f.Key()]}
		if to, ok := desired[f.Key()]; ok {
			fs.Desired = to
		}
		if f.Schedule != nil {
			fs.NextFire = f.Schedule.Next(now)
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
	c.status = st
}

// Status returns the last cycle's status.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	st.Leader = c.leader
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

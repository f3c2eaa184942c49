// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
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
	// Reservations are the room the last full cycle held for cron fires
	// (docs/policy.md, rule 7).
	Reservations []policy.Reservation `json:"reservations,omitempty"`
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
	st.Reservations = l.plan.Reservations
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

// FetchStatus reads a controller's /status (url is the full URL).
func FetchStatus(ctx context.Context, client *http.Client, url string) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is tierscaler running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return &st, nil
}

// WriteTable writes the functions as a table (last run, next fire and last
// action relative to the status' time), then the reservations and the
// shortfalls: what
// `tierscaler status` and the demo show.
func (st *Status) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tTIER\tREPLICAS\tREADY\tDESIRED\tLAST RUN\tNEXT FIRE\tSTATE\tLAST ACTION")
	for _, f := range st.Functions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", f.Function, f.Tier, f.Replicas, f.Ready, f.Desired,
			ago(st.Time, f.LastRun), until(st.Time, f.NextFire), f.State, lastAction(st.Time, f.LastAction))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Functions) == 0 {
		fmt.Fprintln(w, "(no functions yet)")
	}
	if len(st.Reservations) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESERVATION\tFIRE\tPREWARM\tPODS\tWHERE")
		for _, r := range st.Reservations {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Key(), until(st.Time, r.Fire), until(st.Time, r.Prewarm), ReservedPods(r), ReservedWhere(r))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for i, s := range st.Shortfalls {
		if i == 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "SHORTFALL %s: %s\n", s.Reason, s.Message)
	}
	return nil
}

// ReservedPods says how many pods a reservation holds and misses.
func ReservedPods(r policy.Reservation) string {
	s := fmt.Sprintf("%d", r.Pods)
	if r.Missing > 0 {
		s += fmt.Sprintf(" (%d missing)", r.Missing)
	}
	return s
}

// ReservedWhere says where a reservation's room is.
func ReservedWhere(r policy.Reservation) string {
	switch {
	case r.Early:
		return "held by its pods: prewarmed early"
	case len(r.Nodes) == 0:
		return "-"
	}
	var parts []string
	for _, n := range r.Nodes {
		parts = append(parts, fmt.Sprintf("%s×%d", n.Node, n.Pods))
	}
	s := strings.Join(parts, " ")
	if r.TakenBySync {
		s += " (room taken by sync claims)"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func until(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "in " + t.Sub(now).Round(time.Second).String()
}

// lastAction shortens a last action ("2026-01-05T09:02:10Z
// scale-up-rejections 1->5") to "scale-up-rejections 1->5, 12s ago".
func lastAction(now time.Time, a string) string {
	if a == "" {
		return "-"
	}
	stamp, what, ok := strings.Cut(a, " ")
	if !ok {
		return a
	}
	t, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return a
	}
	return what + ", " + ago(now, t)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tierscaler/tierscaler/scaler"
)

// fetchStatus reads tierscaler's /status.
func fetchStatus(ctx context.Context, client *http.Client, url string) (*scaler.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var st scaler.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return &st, nil
}

// renderStatus writes the status as `tierscaler status` does: a line on
// the controller, a table of the functions (last run, next fire and last
// action relative to the status' time), and the shortfalls.
func renderStatus(w io.Writer, st *scaler.Status, interval time.Duration) error {
	role := "STANDBY (not leading: it acts on nothing)"
	if st.Leader {
		role = "leader"
	}
	if st.DryRun {
		role += ", dry run"
	}
	metrics := "metrics available"
	if !st.MetricsAvailable {
		metrics = "metrics UNAVAILABLE (failing static: no scale-down, zeroing or eviction)"
	}
	when := "no cycle yet"
	if !st.Time.IsZero() {
		when = "last cycle at " + st.Time.Local().Format(time.TimeOnly)
	}
	fmt.Fprintf(w, "tierscaler %s; %s; %s, every %s\n\n", role, metrics, when, interval)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tTIER\tREPLICAS\tREADY\tDESIRED\tLAST RUN\tNEXT FIRE\tSTATE\tLAST ACTION")
	for _, f := range st.Functions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", f.Function, f.Tier, f.Replicas, f.Ready, f.Desired,
			ago(st.Time, f.LastRun), until(st.Time, f.NextFire), f.State, action(st.Time, f.LastAction))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Functions) == 0 {
		fmt.Fprintln(w, "(no functions yet)")
	}
	for i, s := range st.Shortfalls {
		if i == 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "SHORTFALL %s: %s\n", s.Reason, s.Message)
	}
	return nil
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

// action shortens a last action ("2026-01-05T09:02:10Z scale-up-rejections
// 1->5") to "scale-up-rejections 1->5, 12s ago".
func action(now time.Time, a string) string {
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

// actions counts the functions with a last action.
func actions(st *scaler.Status) int {
	n := 0
	for _, f := range st.Functions {
		if f.LastAction != "" {
			n++
		}
	}
	return n
}

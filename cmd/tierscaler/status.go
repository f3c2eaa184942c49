package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/tierscaler/tierscaler/scaler"
)

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the controller's metrics address (it serves /status)")
	watch := fs.Duration("watch", 0, "refresh every this long until interrupted (0: once)")
	if err := parse(fs, args); err != nil {
		return err
	}
	for {
		st, err := fetchStatus(ctx, *url+"/status")
		if *watch > 0 {
			fmt.Fprint(stdout, "\033[H\033[2J")
		}
		if err != nil {
			if *watch == 0 {
				return err
			}
			fmt.Fprintf(stdout, "%s: %v\n", time.Now().Format(time.TimeOnly), err)
		} else if err := printStatus(stdout, st); err != nil {
			return err
		}
		if *watch == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

func fetchStatus(ctx context.Context, url string) (*scaler.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is tierscaler running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var st scaler.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &st, nil
}

func printStatus(w io.Writer, st *scaler.Status) error {
	role := "standby"
	if st.Leader {
		role = "leader"
	}
	if st.DryRun {
		role += ", dry run"
	}
	metrics := "available"
	if !st.MetricsAvailable {
		metrics = "UNAVAILABLE (failing static)"
	}
	fmt.Fprintf(w, "tierscaler %s at %s; metrics %s\n\n", role, st.Time.Local().Format(time.TimeOnly), metrics)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tTIER\tREPLICAS\tREADY\tDESIRED\tLAST RUN\tNEXT FIRE\tSTATE\tLAST ACTION")
	for _, f := range st.Functions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", f.Function, f.Tier, f.Replicas, f.Ready, f.Desired,
			ago(st.Time, f.LastRun), until(st.Time, f.NextFire), f.State, orDash(f.LastAction))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Shortfalls) > 0 {
		fmt.Fprintln(w)
		for _, s := range st.Shortfalls {
			fmt.Fprintf(w, "SHORTFALL %s: %s\n", s.Reason, s.Message)
		}
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

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tierscaler/tierscaler/scaler"
)

// fetchStatus reads tierscaler's /status.
func fetchStatus(ctx context.Context, client *http.Client, url string) (*scaler.Status, error) {
	return scaler.FetchStatus(ctx, client, url)
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
	return st.WriteTable(w)
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

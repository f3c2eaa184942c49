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
	return scaler.FetchStatus(ctx, http.DefaultClient, url)
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
	return st.WriteTable(w)
}

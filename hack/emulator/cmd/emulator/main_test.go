// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRunNoCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--scenario", "mixed-small", "--no-cluster", "--tick", "50ms"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address line: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q, want \"listening on http://127.0.0.1:PORT\"", line)
	}
	go io.Copy(io.Discard, pr)
	// The gateway's series appear with the first completed invocation.
	const want = `gateway_function_invocation_total{code="200",function_name="api.openfaas-fn",kubernetes_pod_name="gateway-0"}`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks api's invocations after 10s:\n%.2000s", body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", nil, "--scenario is required: a file or one of burst, mixed-small, night-batch, nightly, seed-like"},
		{"unknown scenario", []string{"--scenario", "nope"}, `scenario "nope" is neither a file nor a built-in scenario`},
		{"bad tick", []string{"--scenario", "mixed-small", "--tick", "0s"}, "--tick 0s: want a positive duration"},
		{"create without cluster", []string{"--scenario", "mixed-small", "--create", "--no-cluster"}, "--create needs a cluster"},
		{"stray argument", []string{"--scenario", "mixed-small", "extra"}, `unexpected arguments ["extra"]`},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"bad listen", []string{"--scenario", "mixed-small", "--no-cluster", "--listen", "256.0.0.1:x"}, "listening on 256.0.0.1:x"},
		{"bad kubeconfig", []string{"--scenario", "mixed-small", "--kubeconfig", "/nonexistent/kubeconfig"}, "kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

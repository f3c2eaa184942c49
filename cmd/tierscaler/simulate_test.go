// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSimulateCommand(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
		wantFiles  []string
	}{
		{name: "a built-in scenario for two hours", args: []string{"simulate", "--scenario", "mixed-small", "--days", "0.0834", "--out", dir},
			wantStdout: []string{"static", "idle-only", "tierscaler", "reserved CPU-hours", "simulated days per second"},
			wantFiles:  []string{"summary.txt", "report.json", "report.html"}},
		{name: "some strategies only", args: []string{"simulate", "--scenario", "mixed-small", "--days", "0.01", "--strategies", "static,tierscaler", "--out", filepath.Join(dir, "two"), "-q"},
			wantStdout: []string{"simulated"}},
		{name: "a scenario is required", args: []string{"simulate"}, wantCode: 2, wantStderr: []string{"--scenario is required", "seed-like"}},
		{name: "an unknown scenario", args: []string{"simulate", "--scenario", "nope"}, wantCode: 1, wantStderr: []string{`"nope" is neither a file nor a built-in scenario`}},
		{name: "an unknown strategy", args: []string{"simulate", "--scenario", "mixed-small", "--strategies", "hpa", "--out", dir}, wantCode: 1, wantStderr: []string{`unknown strategy "hpa"`}},
		{name: "a bad end time", args: []string{"simulate", "--from-prometheus", "http://127.0.0.1:1", "--end", "yesterday"}, wantCode: 2, wantStderr: []string{`--end "yesterday"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			require.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, w := range tc.wantStdout {
				assert.Contains(t, stdout.String(), w)
			}
			for _, w := range tc.wantStderr {
				assert.Contains(t, stderr.String(), w)
			}
			for _, f := range tc.wantFiles {
				_, err := os.Stat(filepath.Join(dir, f))
				assert.NoError(t, err, f)
			}
		})
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateStdin(t *testing.T) {
	example, err := os.ReadFile("../../deploy/policy.example.yaml")
	require.NoError(t, err)
	cases := []struct {
		name       string
		input      string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "the example", input: string(example), wantCode: 0,
			wantStdout: []string{"apiVersion: tierscaler.io/v1alpha1", "kind: Policy", "defaultTier: sync"}},
		{name: "every error, naming standard input", input: "apiVersion: tierscaler.io/v1alpha1\nkind: Policy\ninterval: soon\nthresholds: {cpu: 2}\nbogus: 1\n",
			wantCode: 1, wantStderr: []string{"standard input", "interval", "thresholds.cpu", "bogus"}},
		{name: "empty input", input: "", wantCode: 1, wantStderr: []string{"standard input"}},
		{name: "too large", input: strings.Repeat("#", maxPolicySize+1), wantCode: 1, wantStderr: []string{"larger than"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := stdin
			t.Cleanup(func() { stdin = old })
			stdin = strings.NewReader(tc.input)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"validate", "-"}, &stdout, &stderr)
			require.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, w := range tc.wantStdout {
				assert.Contains(t, stdout.String(), w)
			}
			for _, w := range tc.wantStderr {
				assert.Contains(t, stderr.String(), w)
			}
		})
	}
}

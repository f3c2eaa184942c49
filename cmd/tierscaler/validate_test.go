// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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

// Secrets stay in their files: `validate` prints the files' names, never
// what they hold, and an inline secret is refused without being echoed.
func TestValidateNeverPrintsSecrets(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cret-never-printed"
	for _, f := range []string{"password", "token", "tenant", "client.key"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(secret), 0o600))
	}
	good := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(good, []byte(`apiVersion: tierscaler.io/v1alpha1
kind: Policy
prometheus:
  httpConfig:
    basic_auth: {username: tierscaler, password_file: password}
    tls_config: {ca_file: ca.crt, cert_file: client.crt, key_file: client.key, server_name: prometheus.monitoring}
    http_headers: {X-Scope-OrgID: {files: [tenant]}}
alertmanager:
  httpConfig:
    authorization: {credentials_file: token}
`), 0o600))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"validate", good}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr:\n%s", stderr.String())
	assert.Contains(t, stdout.String(), filepath.Join(dir, "password"))
	assert.Contains(t, stdout.String(), filepath.Join(dir, "token"))
	assert.Contains(t, stdout.String(), filepath.Join(dir, "client.key"))
	assert.NotContains(t, stdout.String()+stderr.String(), secret)

	bad := filepath.Join(dir, "inline.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`apiVersion: tierscaler.io/v1alpha1
kind: Policy
prometheus:
  httpConfig:
    basic_auth: {username: tierscaler, password: `+secret+`}
alertmanager:
  urls: ["http://admin:`+secret+`@alertmanager:9093"]
  httpConfig:
    authorization: {credentials: `+secret+`}
`), 0o600))
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"validate", bad}, &stdout, &stderr)
	require.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "prometheus.httpConfig.basic_auth.password: the policy file never holds secrets")
	assert.Contains(t, stderr.String(), "alertmanager.httpConfig.authorization.credentials: the policy file never holds secrets")
	assert.Contains(t, stderr.String(), `alertmanager.urls[0]: URL "http://admin:xxxxx@alertmanager:9093" holds credentials`)
	assert.NotContains(t, stdout.String()+stderr.String(), secret)
}

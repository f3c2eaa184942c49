// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package scaler_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// The querier reaches the real Prometheus as it is deployed behind auth:
// started with a --web.config.file that serves TLS (a throwaway CA) and
// requires basic auth, and queried with the querier `tierscaler run` builds
// from the policy's prometheus.httpConfig. Wrong settings give an error
// that says what is wrong.
func TestIntegrationPrometheusHTTPConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	web, err := testenv.NewWebConfig(filepath.Join(dir, "web"), "tierscaler", "s3cret-prometheus-password")
	require.NoError(t, err)
	other, err := testenv.NewWebConfig(filepath.Join(dir, "other"), "tierscaler", "another-password")
	require.NoError(t, err)
	prom, err := testenv.StartPrometheusWeb(ctx, web, dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = prom.Stop() })
	wrongPassword := filepath.Join(dir, "wrong-password")
	require.NoError(t, os.WriteFile(wrongPassword, []byte("hunter2"), 0o600))

	cases := []struct {
		name string
		// httpConfig is the policy's prometheus.httpConfig; the policy
		// file is written next to the web configuration, so relative
		// files are the server's.
		httpConfig string
		// wantErr are substrings of the error; none: the query succeeds.
		wantErr []string
	}{
		{name: "basic auth from a file and the CA, relative to the policy file",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: password}, tls_config: {ca_file: ca.crt}}"},
		{name: "server_name checked against the certificate",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: password}, tls_config: {ca_file: ca.crt, server_name: localhost}}"},
		{name: "no credentials",
			httpConfig: "{tls_config: {ca_file: ca.crt}}",
			wantErr:    []string{"prometheus at " + prom.URL + " answered 401 Unauthorized: the credentials of prometheus.httpConfig are missing or wrong"}},
		{name: "a wrong password",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: " + wrongPassword + "}, tls_config: {ca_file: ca.crt}}",
			wantErr:    []string{"prometheus at " + prom.URL + " answered 401 Unauthorized: the credentials of prometheus.httpConfig are missing or wrong"}},
		{name: "a missing password file",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: nope/password}, tls_config: {ca_file: ca.crt}}",
			wantErr:    []string{filepath.Join(filepath.Dir(web.File), "nope/password"), "no such file"}},
		{name: "the wrong CA",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: password}, tls_config: {ca_file: " + other.CAFile + "}}",
			wantErr:    []string{prom.URL, "certificate signed by unknown authority"}},
		{name: "no CA: the system's roots do not know it",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: password}}",
			wantErr:    []string{prom.URL, "certificate signed by unknown authority"}},
		{name: "a server name the certificate does not hold",
			httpConfig: "{basic_auth: {username: tierscaler, password_file: password}, tls_config: {ca_file: ca.crt, server_name: prometheus.monitoring}}",
			wantErr:    []string{prom.URL, "not prometheus.monitoring"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(filepath.Dir(web.File), "policy.yaml")
			require.NoError(t, os.WriteFile(path, []byte("apiVersion: tierscaler.io/v1alpha1\nkind: Policy\n"+
				"prometheus:\n  url: "+prom.URL+"\n  httpConfig: "+tc.httpConfig+"\n"), 0o600))
			p, err := policy.Load(path)
			require.NoError(t, err)
			q, err := scaler.NewPolicyQuerier(p, "")
			require.NoError(t, err)
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			vec, _, err := q.Query(qctx, "vector(1)", time.Now())
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				require.Len(t, vec, 1)
				require.EqualValues(t, 1, vec[0].Value)
				return
			}
			require.Error(t, err)
			t.Logf("error: %v", err)
			for _, w := range tc.wantErr {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), web.Password)
		})
	}
}

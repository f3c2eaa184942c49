// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// secureServer is an httptest TLS server standing in front of a Prometheus
// API: it records the headers of each request and answers 401 without the
// basic-auth credentials. dir holds its CA (ca.crt) and the password file.
func secureServer(t *testing.T, answer string) (srv *httptest.Server, dir string, got chan http.Header) {
	t.Helper()
	got = make(chan http.Header, 10)
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		if u, p, ok := r.BasicAuth(); !ok || u != "tierscaler" || p != "pw" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	dir = t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "password"), []byte("pw\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tenant"), []byte("team-b"), 0o600))
	return srv, dir, got
}

// loadPolicy writes a policy with the given prometheus section into dir and
// loads it as `tierscaler run` does.
func loadPolicy(t *testing.T, dir, prometheus string) *policy.Policy {
	t.Helper()
	path := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte("apiVersion: tierscaler.io/v1alpha1\nkind: Policy\nprometheus:\n"+prometheus), 0o600))
	p, err := policy.Load(path)
	require.NoError(t, err)
	return p
}

const oneSample = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}`

// The policy's http_headers (a tenant header for Mimir or Cortex, from a
// value or from a file) reach the server with the basic auth.
func TestPolicyQuerierSendsHeaders(t *testing.T) {
	srv, dir, got := secureServer(t, oneSample)
	p := loadPolicy(t, dir, "  url: "+srv.URL+"\n  httpConfig:\n"+
		"    basic_auth: {username: tierscaler, password_file: password}\n"+
		"    tls_config: {ca_file: ca.crt}\n"+
		"    http_headers: {X-Scope-OrgID: {values: [team-a]}, X-Tenant-From-File: {files: [tenant]}}\n")
	q, err := scaler.NewPolicyQuerier(p, "")
	require.NoError(t, err)
	vec, _, err := q.Query(context.Background(), "vector(1)", time.Now())
	require.NoError(t, err)
	require.Len(t, vec, 1)
	h := <-got
	require.Equal(t, "team-a", h.Get("X-Scope-OrgID"))
	require.Equal(t, "team-b", h.Get("X-Tenant-From-File"))
}

// A 401 names the Prometheus and the setting to check; the client alone
// says only "client error: 401".
func TestPolicyQuerierExplainsUnauthorized(t *testing.T) {
	srv, dir, _ := secureServer(t, oneSample)
	for _, tc := range []struct{ name, httpConfig string }{
		{"no credentials", "    tls_config: {ca_file: ca.crt}\n"},
		{"the wrong user", "    basic_auth: {username: admin, password_file: password}\n    tls_config: {ca_file: ca.crt}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadPolicy(t, dir, "  url: "+srv.URL+"\n  httpConfig:\n"+tc.httpConfig)
			q, err := scaler.NewPolicyQuerier(p, "")
			require.NoError(t, err)
			_, _, err = q.Query(context.Background(), "vector(1)", time.Now())
			require.ErrorContains(t, err, "prometheus at "+srv.URL+" answered 401 Unauthorized: the credentials of prometheus.httpConfig are missing or wrong")
		})
	}
}

// TestPrometheusQuerierRefusesCredentialsInItsURL: a URL is logged and
// printed, so it never carries a password; plan --prometheus-url reaches
// NewPrometheusQuerier unvalidated by the policy.
func TestPrometheusQuerierRefusesCredentialsInItsURL(t *testing.T) {
	_, err := scaler.NewPrometheusQuerier("http://admin:s3cret@prometheus:9090", nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"http://admin:xxxxx@prometheus:9090" holds credentials`)
	require.NotContains(t, err.Error(), "s3cret")
}

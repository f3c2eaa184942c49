// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
)

// loadAlertmanagerPolicy writes a policy with the given alertmanager
// section into dir and loads it as `tierscaler run` does.
func loadAlertmanagerPolicy(t *testing.T, dir, alertmanager string) *policy.Policy {
	t.Helper()
	path := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte("apiVersion: tierscaler.io/v1alpha1\nkind: Policy\nalertmanager:\n"+alertmanager), 0o600))
	p, err := policy.Load(path)
	require.NoError(t, err)
	return p
}

// policyTarget returns the delivery target of a notifier for the policy's
// first Alertmanager, posting with the policy's client.
func policyTarget(t *testing.T, p *policy.Policy) *target {
	t.Helper()
	client, err := NewPolicyClient(p)
	require.NoError(t, err)
	n, err := NewNotifier(NotifierOptions{URLs: p.AlertmanagerURLs(), Client: client})
	require.NoError(t, err)
	return n.targets[0]
}

// The policy's alertmanager.httpConfig reaches the Alertmanager: basic
// auth, the CA, and headers (a tenant header for a multi-tenant
// Alertmanager such as Mimir's) from values and files. Without credentials
// the error says which setting to check.
func TestPolicyClientHTTPConfig(t *testing.T) {
	got := make(chan http.Header, 10)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		if u, p, ok := r.BasicAuth(); !ok || u != "tierscaler" || p != "pw" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v2/alerts" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "password"), []byte("pw\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tenant"), []byte("team-b"), 0o600))
	alert := Alert(capacity("figlet", policy.TierSync), nil)

	t.Run("basic auth, CA and headers", func(t *testing.T) {
		p := loadAlertmanagerPolicy(t, dir, "  urls: ["+srv.URL+"]\n  httpConfig:\n"+
			"    basic_auth: {username: tierscaler, password_file: password}\n"+
			"    tls_config: {ca_file: ca.crt}\n"+
			"    http_headers: {X-Scope-OrgID: {values: [team-a]}, X-Tenant-From-File: {files: [tenant]}}\n")
		require.NoError(t, policyTarget(t, p).post(context.Background(), []PostableAlert{alert}))
		h := <-got
		require.Equal(t, "team-a", h.Get("X-Scope-OrgID"))
		require.Equal(t, "team-b", h.Get("X-Tenant-From-File"))
	})
	t.Run("no credentials", func(t *testing.T) {
		p := loadAlertmanagerPolicy(t, dir, "  urls: ["+srv.URL+"]\n  httpConfig:\n    tls_config: {ca_file: ca.crt}\n")
		err := policyTarget(t, p).post(context.Background(), []PostableAlert{alert})
		require.ErrorContains(t, err, "post alerts to "+srv.URL+": 401 Unauthorized: Unauthorized (check the credentials of alertmanager.httpConfig)")
	})
	t.Run("no httpConfig: a plain client with a timeout", func(t *testing.T) {
		c, err := NewPolicyClient(loadAlertmanagerPolicy(t, dir, "  urls: [http://127.0.0.1:9093]\n"))
		require.NoError(t, err)
		require.Equal(t, DefaultPostTimeout, c.Timeout)
	})
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package alerts

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/policy"
)

// The notifier reaches the real Alertmanager as it is deployed behind auth:
// started with a --web.config.file that serves TLS (a throwaway CA) and
// requires basic auth, and posted to with the client `tierscaler run`
// builds from the policy's alertmanager.httpConfig. amtool, with the same
// credentials, then lists the alert. Without the credentials the post
// fails with an error that says which setting to check.
func TestIntegrationAlertmanagerHTTPConfig(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	require.NoError(t, err, "the test needs amtool (Debian: apt-get install prometheus-alertmanager)")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	web, err := testenv.NewWebConfig(filepath.Join(dir, "web"), "tierscaler", "s3cret-alertmanager-password")
	require.NoError(t, err)
	other, err := testenv.NewWebConfig(filepath.Join(dir, "other"), "tierscaler", "another-password")
	require.NoError(t, err)
	am, err := testenv.StartAlertmanagerWeb(ctx, web, dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = am.Stop() })
	policyDir := filepath.Dir(web.File)

	t.Run("posted with the policy's credentials, listed by amtool", func(t *testing.T) {
		p := loadAlertmanagerPolicy(t, policyDir, "  urls: ["+am.URL+"]\n  httpConfig:\n"+
			"    basic_auth: {username: tierscaler, password_file: password}\n"+
			"    tls_config: {ca_file: ca.crt, server_name: localhost}\n")
		client, err := NewPolicyClient(p)
		require.NoError(t, err)
		n := integrationNotifier(t, NotifierOptions{URLs: p.AlertmanagerURLs(), Client: client, ResendInterval: time.Minute})
		n.Sync(ctx, time.Now(), []policy.Shortfall{capacity("figlet", policy.TierSync)})

		// amtool's own HTTP client configuration, the same credentials.
		amtoolConfig := filepath.Join(dir, "amtool-http.yml")
		require.NoError(t, os.WriteFile(amtoolConfig, []byte("basic_auth: {username: tierscaler, password_file: "+web.PasswordFile+"}\n"+
			"tls_config: {ca_file: "+web.CAFile+", server_name: localhost}\n"), 0o600))
		var listed []string
		require.Eventually(t, func() bool {
			out, err := exec.CommandContext(ctx, amtool, "alert", "query", "--alertmanager.url="+am.URL,
				"--http.config.file="+amtoolConfig, "--output=json", "component=tierscaler").CombinedOutput()
			if err != nil {
				t.Logf("amtool: %v: %s", err, out)
				return false
			}
			var alerts []GettableAlert
			require.NoError(t, json.Unmarshal(out, &alerts), "%s", out)
			listed = functionNames(alerts)
			return len(listed) == 1
		}, 20*time.Second, 200*time.Millisecond, "amtool lists %v", listed)
		require.Equal(t, []string{"figlet.openfaas-fn/" + AlertCapacityShortfall}, listed)
		require.Zero(t, counterValue(t, n.Metrics(), AlertCapacityShortfall, SendRejected))
	})

	for _, tc := range []struct{ name, httpConfig, want string }{
		{"no credentials", "    tls_config: {ca_file: ca.crt}\n",
			"post alerts to " + am.URL + ": 401 Unauthorized: Unauthorized (check the credentials of alertmanager.httpConfig)"},
		{"the wrong CA", "    basic_auth: {username: tierscaler, password_file: password}\n    tls_config: {ca_file: " + other.CAFile + "}\n",
			"post alerts to " + am.URL + `: Post "` + am.URL + `/api/v2/alerts": tls: failed to verify certificate: x509: certificate signed by unknown authority`},
		{"a missing CA file", "    basic_auth: {username: tierscaler, password_file: password}\n    tls_config: {ca_file: nope.crt}\n",
			"alertmanager.httpConfig: unable to read CA cert: unable to read file " + filepath.Join(policyDir, "nope.crt")},
		{"a missing password file", "    basic_auth: {username: tierscaler, password_file: nope}\n    tls_config: {ca_file: ca.crt}\n",
			"unable to read basic auth password: unable to read file " + filepath.Join(policyDir, "nope")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadAlertmanagerPolicy(t, policyDir, "  urls: ["+am.URL+"]\n  httpConfig:\n"+tc.httpConfig)
			client, err := NewPolicyClient(p)
			if err == nil {
				n, nerr := NewNotifier(NotifierOptions{URLs: p.AlertmanagerURLs(), Client: client})
				require.NoError(t, nerr)
				err = n.targets[0].post(ctx, []PostableAlert{Alert(capacity("figlet", policy.TierSync), nil)})
			}
			t.Logf("error: %v", err)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), web.Password)
		})
	}
}

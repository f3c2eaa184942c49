// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// A kubeconfig with one cluster, user and context.
const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: secret}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

// fakeInCluster makes restConfig see (or not see) the in-cluster
// ServiceAccount, whose files live at a fixed path.
func fakeInCluster(t *testing.T, inCluster bool) {
	t.Helper()
	old := inClusterConfig
	t.Cleanup(func() { inClusterConfig = old })
	inClusterConfig = func() (*rest.Config, error) {
		if !inCluster {
			return nil, rest.ErrNotInCluster
		}
		return &rest.Config{Host: "https://10.0.0.1:443", BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token"}, nil
	}
}

// TestRestConfigClientSettings: the client runs with tierscaler's rate
// limits and user agent however it is configured. In a cluster it used to
// return before they were set: client-go's default 5 QPS (burst 10) and
// user agent.
func TestRestConfigClientSettings(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(kc, []byte(testKubeconfig), 0o600))
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("t"), 0o600))
	cases := []struct {
		name                  string
		inCluster             bool
		kubeconfig, env, file string // --kubeconfig, $KUBECONFIG, --token-file
		wantHost              string
	}{
		{name: "in a cluster", inCluster: true, wantHost: "https://10.0.0.1:443"},
		{name: "in a cluster, with a token file", inCluster: true, file: token, wantHost: "https://10.0.0.1:443"},
		{name: "--kubeconfig", kubeconfig: kc, wantHost: "https://127.0.0.1:6443"},
		{name: "$KUBECONFIG", env: kc, wantHost: "https://127.0.0.1:6443"},
		{name: "--kubeconfig wins over the cluster", inCluster: true, kubeconfig: kc, wantHost: "https://127.0.0.1:6443"},
		{name: "--kubeconfig and a token file", kubeconfig: kc, file: token, wantHost: "https://127.0.0.1:6443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fakeInCluster(t, tc.inCluster)
			t.Setenv("KUBECONFIG", tc.env)
			cfg, err := restConfig(tc.kubeconfig, tc.file)
			require.NoError(t, err)
			assert.Equal(t, tc.wantHost, cfg.Host)
			assert.Equal(t, float32(clientQPS), cfg.QPS, "QPS")
			assert.Equal(t, clientBurst, cfg.Burst, "burst")
			assert.True(t, strings.HasPrefix(cfg.UserAgent, "tierscaler/"), "user agent %q", cfg.UserAgent)
			if tc.file != "" {
				assert.Equal(t, tc.file, cfg.BearerTokenFile)
				assert.Empty(t, cfg.BearerToken, "the token file replaces the credentials")
			}
		})
	}
}

// TestRestConfigErrors: a missing or broken kubeconfig names the file tried
// and says how to point at another, never client-go's KUBERNETES_MASTER.
func TestRestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	require.NoError(t, os.WriteFile(broken, []byte("clusters: [this is not"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("apiVersion: v1\nkind: Config\n"), 0o600))
	missing := filepath.Join(dir, "missing")
	home := filepath.Join(dir, "home")
	require.NoError(t, os.MkdirAll(home, 0o700))
	cases := []struct {
		name            string
		kubeconfig, env string
		want            []string
	}{
		{name: "--kubeconfig names a missing file", kubeconfig: missing,
			want: []string{missing, "--kubeconfig", "no such file"}},
		{name: "$KUBECONFIG names a missing file", env: missing,
			want: []string{missing, "KUBECONFIG", "no such file"}},
		{name: "a broken file", kubeconfig: broken, want: []string{broken, "--kubeconfig"}},
		{name: "a file without a cluster", kubeconfig: empty, want: []string{empty, "no current context"}},
		{name: "not in a cluster, no ~/.kube/config", want: []string{
			filepath.Join(home, ".kube", "config"), "not running in a cluster", "--kubeconfig FILE", "KUBECONFIG"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fakeInCluster(t, false)
			t.Setenv("KUBECONFIG", tc.env)
			t.Setenv("HOME", home)
			_, err := restConfig(tc.kubeconfig, "")
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "KUBERNETES_MASTER")
			assert.Contains(t, err.Error(), "--kubeconfig", "says how to point at a kubeconfig")
		})
	}
	t.Run("in a cluster, the ServiceAccount's files unreadable", func(t *testing.T) {
		old := inClusterConfig
		t.Cleanup(func() { inClusterConfig = old })
		inClusterConfig = func() (*rest.Config, error) {
			return nil, errors.New("open /var/run/secrets/kubernetes.io/serviceaccount/token: permission denied")
		}
		t.Setenv("KUBECONFIG", "")
		t.Setenv("HOME", home)
		_, err := restConfig("", "")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "permission denied", "the in-cluster error is not hidden")
	})
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveVersion(t *testing.T) {
	vcs := &debug.BuildInfo{
		Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-11-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	cases := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  versionInfo
	}{
		{name: "nothing stamped, no build information", version: "dev", commit: "unknown",
			want: versionInfo{Version: "dev", Commit: "unknown", BuildDate: "unknown"}},
		{name: "empty values are unknown", bi: &debug.BuildInfo{},
			want: versionInfo{Version: "dev", Commit: "unknown", BuildDate: "unknown"}},
		{name: "stamped by hack/build.sh wins over the build information", version: "0.2.0", commit: "feedface", date: "2026-11-30T12:00:00Z", bi: vcs,
			want: versionInfo{Version: "0.2.0", Commit: "feedface", BuildDate: "2026-11-30T12:00:00Z"}},
		{name: "go build in a checkout: commit and time from git", version: "dev", commit: "unknown", bi: vcs,
			want: versionInfo{Version: "dev", Commit: "0123456789abcdef", BuildDate: "2026-11-01T10:00:00Z"}},
		{name: "go install of a tag: the module version", version: "dev", commit: "unknown",
			bi:   &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}},
			want: versionInfo{Version: "v0.3.1", Commit: "unknown", BuildDate: "unknown"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.GoVersion, tc.want.Platform = runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
			require.Equal(t, tc.want, resolveVersion(tc.version, tc.commit, tc.date, tc.bi))
		})
	}
}

func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"version", "-o", "json"}, &stdout, &stderr), stderr.String())
	var v versionInfo
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &v))
	require.Equal(t, runtime.Version(), v.GoVersion)
	require.NotEmpty(t, v.Version)

	stdout.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"version", "-o", "yaml"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), `-o "yaml": want text or json`)
}

// TestBuildStampsVersion builds the binary with hack/build.sh, as make
// build, make release and the Dockerfile do, and checks that `tierscaler
// version` prints what was stamped: a renamed variable would make -X a
// silent no-op.
func TestBuildStampsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary with hack/build.sh: skipped by make test-unit (-short), run by make test")
	}
	out := filepath.Join(t.TempDir(), "tierscaler")
	cmd := exec.Command("bash", filepath.Join("..", "..", "hack", "build.sh"), out)
	cmd.Env = append(os.Environ(), "VERSION=1.2.3-test", "COMMIT=0123456789abcdef0123456789abcdef01234567", "BUILD_DATE=2026-01-02T03:04:05Z")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)

	b, err = exec.Command(out, "version", "-o", "json").Output()
	require.NoError(t, err)
	var v versionInfo
	require.NoError(t, json.Unmarshal(b, &v), "%s", b)
	require.Equal(t, "1.2.3-test", v.Version)
	require.Equal(t, "0123456789abcdef0123456789abcdef01234567", v.Commit)
	require.Equal(t, "2026-01-02T03:04:05Z", v.BuildDate)

	b, err = exec.Command(out, "version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "tierscaler 1.2.3-test\n"), "%s", b)

	// Static: no interpreter and no dynamic section, so that it runs on an
	// empty (scratch) base.
	if runtime.GOOS == "linux" {
		f, err := elf.Open(out)
		require.NoError(t, err)
		defer f.Close()
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary needs a dynamic loader")
			require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "the binary is dynamically linked")
		}
	}
}

// TestBuildScriptRefusesOddVersions: a version with a space would split the
// -ldflags argument.
func TestBuildScriptRefusesOddVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hack/build.sh: skipped by make test-unit (-short), run by make test")
	}
	cmd := exec.Command("bash", filepath.Join("..", "..", "hack", "build.sh"), filepath.Join(t.TempDir(), "x"))
	cmd.Env = append(os.Environ(), "VERSION=1.0 -X main.evil=1")
	b, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(b), "refusing the version string")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package image

import (
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The image's user, entrypoint and where it comes from (the Dockerfile).
const (
	wantUser       = "65532:65532"
	wantUID        = 65532
	wantEntrypoint = "/usr/local/bin/tierscaler"
	wantSource     = "https://github.com/tierscaler/tierscaler"
)

// wantFiles is every path in the image; anything else is a surprise.
var wantFiles = []string{
	"/etc", "/etc/group", "/etc/nsswitch.conf", "/etc/passwd",
	"/etc/ssl", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt",
	"/home", "/home/nonroot",
	"/tmp",
	"/usr", "/usr/local", "/usr/local/bin", "/usr/local/bin/tierscaler",
	"/usr/share", "/usr/share/doc", "/usr/share/doc/tierscaler", "/usr/share/doc/tierscaler/LICENSE",
}

// repoRoot is the repository root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// TestImage checks the image `make image` built from the outside: its
// configuration, its files, and its binary run as the image's user.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("exports the image with podman, buildah or docker: skipped by make test-unit (-short), run by make test")
	}
	root := repoRoot(t)
	dir, err := os.MkdirTemp("", "tierscaler-image-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	im, err := Load(root, dir)
	require.NoError(t, err)
	t.Logf("image %s unpacked in %s", im.Digest, im.Root)

	// What hack/build.sh stamps the work tree with now.
	out, err := exec.Command("bash", filepath.Join(root, "hack", "build.sh"), "--print-version").Output()
	require.NoError(t, err)
	fields := strings.Fields(string(out))
	require.Len(t, fields, 3, "hack/build.sh --print-version: %q", out)
	version, commit, date := fields[0], fields[1], fields[2]

	// Built from this work tree, or every comparison below is moot.
	if im.Label("org.opencontainers.image.revision") != commit || im.Label("org.opencontainers.image.version") != version {
		t.Fatalf("the image is of %s (commit %s), the work tree is %s (commit %s): run `make image`",
			im.Label("org.opencontainers.image.version"), im.Label("org.opencontainers.image.revision"), version, commit)
	}

	t.Run("configuration", func(t *testing.T) {
		c := im.Config
		assert.Equal(t, "linux", c.OS)
		assert.Equal(t, runtime.GOARCH, c.Architecture)
		assert.Equal(t, []string{wantEntrypoint}, c.Config.Entrypoint, "entrypoint")
		assert.Empty(t, c.Config.Cmd, "no default command: the chart passes the arguments")
		assert.Equal(t, wantUser, c.Config.User, "USER")
		uid, gid, err := im.User()
		require.NoError(t, err)
		assert.Equal(t, [2]int{wantUID, wantUID}, [2]int{uid, gid})
		assert.Equal(t, "/home/nonroot", c.Config.WorkingDir)
	})

	t.Run("OCI labels", func(t *testing.T) {
		for k, want := range map[string]string{
			"org.opencontainers.image.title":    "tierscaler",
			"org.opencontainers.image.source":   wantSource,
			"org.opencontainers.image.url":      wantSource,
			"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": commit,
			"org.opencontainers.image.created":  date,
		} {
			assert.Equalf(t, want, im.Label(k), "label %s", k)
		}
		assert.NotEmpty(t, im.Label("org.opencontainers.image.description"))
	})

	t.Run("files: the binary, CA certificates, the nonroot user and nothing else", func(t *testing.T) {
		var got []string
		for p := range im.Files {
			got = append(got, p)
		}
		sort.Strings(got)
		assert.Equal(t, wantFiles, got)

		bin := im.Files[wantEntrypoint]
		assert.Equal(t, fs.FileMode(0o755), bin.Mode.Perm(), "binary mode")
		assert.Equal(t, [2]int{0, 0}, [2]int{bin.UID, bin.GID}, "the binary belongs to root: the user cannot change it")
		tmp := im.Files["/tmp"]
		assert.True(t, tmp.Mode.IsDir() && tmp.Mode&fs.ModeSticky != 0 && tmp.Mode.Perm() == 0o777, "/tmp is %s, want drwxrwxrwt", tmp.Mode)
		home := im.Files["/home/nonroot"]
		assert.Equal(t, [2]int{wantUID, wantUID}, [2]int{home.UID, home.GID}, "/home/nonroot belongs to the user")
		for p, f := range im.Files {
			if f.Mode.IsRegular() {
				assert.Zerof(t, f.Mode&(fs.ModeSetuid|fs.ModeSetgid), "%s is setuid or setgid", p)
			}
			assert.Zerof(t, f.Mode&fs.ModeSymlink, "%s is a symlink", p)
		}

		passwd := readFile(t, im, "/etc/passwd")
		assert.Contains(t, passwd, "\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
		assert.Contains(t, readFile(t, im, "/etc/group"), "\nnonroot:x:65532:\n")

		licence, err := os.ReadFile(filepath.Join(root, "LICENSE"))
		require.NoError(t, err)
		assert.Equal(t, string(licence), readFile(t, im, "/usr/share/doc/tierscaler/LICENSE"))
	})

	t.Run("CA certificates", func(t *testing.T) {
		rest := []byte(readFile(t, im, "/etc/ssl/certs/ca-certificates.crt"))
		n := 0
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			_, err := x509.ParseCertificate(b.Bytes)
			require.NoError(t, err, "certificate %d", n)
			n++
		}
		assert.Greater(t, n, 50, "a CA bundle holds over a hundred roots")
		assert.Empty(t, bytes.TrimSpace(rest), "trailing data after the last certificate")
	})

	t.Run("a static binary for the image's platform", func(t *testing.T) {
		ep, err := im.Entrypoint()
		require.NoError(t, err)
		f, err := elf.Open(ep)
		require.NoError(t, err)
		defer f.Close()
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
		if want != 0 {
			assert.Equal(t, want, f.Machine)
		}
		for _, p := range f.Progs {
			assert.NotEqual(t, elf.PT_INTERP, p.Type, "the binary needs a dynamic loader, which the image lacks")
			assert.NotEqual(t, elf.PT_DYNAMIC, p.Type, "the binary is dynamically linked")
		}
	})

	t.Run("the binary runs as the image's user and reports the stamped version", func(t *testing.T) {
		ep, err := im.Entrypoint()
		require.NoError(t, err)
		require.NoError(t, Traversable(ep))
		cmd := exec.Command(ep, "version", "-o", "json")
		cmd.Env = im.Env()
		cmd.Dir = dir
		switched := RunAs(cmd, wantUID, wantUID)
		if !switched {
			t.Logf("not root: running the image's binary as uid %d instead of %d", os.Geteuid(), wantUID)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s", stderr.String())
		var v struct{ Version, Commit, BuildDate, Platform string }
		require.NoError(t, json.Unmarshal(out, &v), "%s", out)
		assert.Equal(t, version, v.Version)
		assert.Equal(t, commit, v.Commit)
		assert.Equal(t, date, v.BuildDate)
		assert.Equal(t, "linux/"+runtime.GOARCH, v.Platform)
		if switched {
			// It really ran as the user: a file only root may read is
			// refused to it, while a readable one is not.
			example, err := os.ReadFile(filepath.Join(root, "deploy", "policy.example.yaml"))
			require.NoError(t, err)
			secret := filepath.Join(dir, "root-only.yaml")
			require.NoError(t, os.WriteFile(secret, example, 0o600))
			readable := filepath.Join(dir, "readable.yaml")
			require.NoError(t, os.WriteFile(readable, example, 0o644))
			require.NoError(t, Traversable(secret))
			for _, tc := range []struct {
				file   string
				wantOK bool
			}{{readable, true}, {secret, false}} {
				cmd := exec.Command(ep, "validate", tc.file)
				cmd.Env = im.Env()
				RunAs(cmd, wantUID, wantUID)
				b, err := cmd.CombinedOutput()
				if tc.wantOK {
					assert.NoError(t, err, "%s", b)
				} else {
					assert.Error(t, err)
					assert.Contains(t, string(b), "permission denied")
				}
			}
		}
	})
}

func readFile(t *testing.T, im *Image, p string) string {
	t.Helper()
	l, err := im.local(p)
	require.NoError(t, err)
	b, err := os.ReadFile(l)
	require.NoError(t, err)
	return string(b)
}

// TestWantFilesSorted keeps the list above in the order the test compares.
func TestWantFilesSorted(t *testing.T) {
	require.True(t, slices.IsSorted(wantFiles))
}

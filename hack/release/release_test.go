// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package release tests `make release` (hack/release.sh): what it puts in
// dist/ and that a user can verify and use it.
package release

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// platforms keeps the test's cost down: the host's Linux binary (it is run)
// and one Mach-O one; `make release` builds all four.
var platforms = []string{"linux/" + runtime.GOARCH, "darwin/arm64"}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// runRelease runs hack/release.sh into a new directory and returns it.
func runRelease(t *testing.T, root string, env ...string) string {
	t.Helper()
	dist := filepath.Join(t.TempDir(), "dist")
	cmd := exec.Command("bash", filepath.Join(root, "hack", "release.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), append([]string{"DIST=" + dist, "PLATFORMS=" + strings.Join(platforms, " ")}, env...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("hack/release.sh:\n%s", out)
	return dist
}

func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles and runs helm: skipped by make test-unit (-short), run by make test")
	}
	root := repoRoot(t)
	out, err := exec.Command("bash", filepath.Join(root, "hack", "build.sh"), "--print-version").Output()
	require.NoError(t, err)
	f := strings.Fields(string(out))
	require.Len(t, f, 3)
	version, commit := f[0], f[1]

	digest := "sha256:" + strings.Repeat("ab", 32)
	imageEnv := []string{"IMAGE_REGISTRY=localhost:5000", "IMAGE_REPOSITORY=example/tierscaler", "IMAGE_DIGEST=" + digest}
	dist := runRelease(t, root, imageEnv...)

	var names []string
	entries, err := os.ReadDir(dist)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	var charts []string
	for _, n := range names {
		if strings.HasPrefix(n, "tierscaler-") && strings.HasSuffix(n, ".tgz") {
			charts = append(charts, n)
		}
	}
	require.Len(t, charts, 1, "one packaged chart in %v", names)
	want := []string{"sha256sums.txt", charts[0]}
	for _, p := range platforms {
		want = append(want, "tierscaler_"+version+"_"+strings.ReplaceAll(p, "/", "_")+".tar.gz")
	}
	sort.Strings(want)
	require.Equal(t, want, names, "dist/")

	t.Run("sha256sums.txt lists every other file with its checksum", func(t *testing.T) {
		sums := readSums(t, filepath.Join(dist, "sha256sums.txt"))
		var listed []string
		for name, sum := range sums {
			listed = append(listed, name)
			b, err := os.ReadFile(filepath.Join(dist, name))
			require.NoError(t, err)
			got := sha256.Sum256(b)
			assert.Equal(t, hex.EncodeToString(got[:]), sum, name)
		}
		sort.Strings(listed)
		var others []string
		for _, n := range names {
			if n != "sha256sums.txt" {
				others = append(others, n)
			}
		}
		assert.Equal(t, others, listed)
		// And sha256sum itself agrees, as the release notes tell users to
		// check.
		if _, err := exec.LookPath("sha256sum"); err == nil {
			cmd := exec.Command("sha256sum", "--check", "--strict", "sha256sums.txt")
			cmd.Dir = dist
			b, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s", b)
		}
	})

	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		name := "tierscaler_" + version + "_" + goos + "_" + goarch + ".tar.gz"
		t.Run(name, func(t *testing.T) {
			files := readTarGz(t, filepath.Join(dist, name))
			var paths []string
			for p := range files {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			require.Equal(t, []string{"LICENSE", "README.md", "tierscaler"}, paths)
			bin := files["tierscaler"]
			assert.Equal(t, fs.FileMode(0o755), bin.mode.Perm())
			switch goos {
			case "linux":
				e, err := elf.NewFile(bytes.NewReader(bin.data))
				require.NoError(t, err)
				assert.Equal(t, map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch], e.Machine)
				for _, prog := range e.Progs {
					assert.NotEqual(t, elf.PT_INTERP, prog.Type, "a static binary has no interpreter")
				}
				if goarch == runtime.GOARCH {
					exe := filepath.Join(t.TempDir(), "tierscaler")
					require.NoError(t, os.WriteFile(exe, bin.data, 0o755))
					b, err := exec.Command(exe, "version", "-o", "json").Output()
					require.NoError(t, err)
					var v struct{ Version, Commit, Platform string }
					require.NoError(t, json.Unmarshal(b, &v))
					assert.Equal(t, version, v.Version)
					assert.Equal(t, commit, v.Commit)
					assert.Equal(t, p, v.Platform)
				}
			case "darwin":
				m, err := macho.NewFile(bytes.NewReader(bin.data))
				require.NoError(t, err)
				assert.Equal(t, map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch], m.Cpu)
			}
			licence, err := os.ReadFile(filepath.Join(root, "LICENSE"))
			require.NoError(t, err)
			assert.Equal(t, string(licence), string(files["LICENSE"].data))
		})
	}

	t.Run("the chart: versions and the image defaults of the release", func(t *testing.T) {
		files := readTarGz(t, filepath.Join(dist, charts[0]))
		var chart struct {
			Name, Version, AppVersion string
		}
		require.NoError(t, yaml.Unmarshal(files["tierscaler/Chart.yaml"].data, &chart))
		assert.Equal(t, "tierscaler", chart.Name)
		assert.Equal(t, version, chart.AppVersion, "appVersion is the binary's version: the default image tag")
		assert.Equal(t, "tierscaler-"+chart.Version+".tgz", charts[0])
		if !isRelease(version) {
			assert.Contains(t, chart.Version, "-dev.", "an untagged build is a development chart")
		} else {
			assert.Equal(t, version, chart.Version)
		}
		var values struct {
			Image map[string]any `json:"image"`
		}
		require.NoError(t, yaml.Unmarshal(files["tierscaler/values.yaml"].data, &values))
		assert.Equal(t, "localhost:5000", values.Image["registry"], "IMAGE_REGISTRY is the packaged default")
		assert.Equal(t, "example/tierscaler", values.Image["repository"], "IMAGE_REPOSITORY is the packaged default")
		assert.Equal(t, digest, values.Image["digest"], "IMAGE_DIGEST is the packaged default")
		for _, want := range []string{"tierscaler/values.schema.json", "tierscaler/README.md", "tierscaler/templates/deployment.yaml", "tierscaler/rules/tierscaler.rules.yaml"} {
			assert.Contains(t, files, want)
		}
		for p := range files {
			assert.Falsef(t, strings.HasSuffix(p, "_test.yaml") && strings.Contains(p, "/templates/"), "%s: a test file among the templates", p)
		}
	})

	t.Run("two builds of one commit give the same binaries", func(t *testing.T) {
		again := runRelease(t, root, imageEnv...)
		a, b := readSums(t, filepath.Join(dist, "sha256sums.txt")), readSums(t, filepath.Join(again, "sha256sums.txt"))
		for name, sum := range a {
			if strings.HasSuffix(name, ".tar.gz") {
				assert.Equalf(t, sum, b[name], "%s differs between two builds", name)
			}
		}
	})
}

func isRelease(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		require.True(t, ok, "line %q: want '<sha256>  <name>'", sc.Text())
		require.Len(t, sum, 64)
		out[name] = sum
	}
	require.NoError(t, sc.Err())
	return out
}

type tarFile struct {
	mode fs.FileMode
	data []byte
}

func readTarGz(t *testing.T, path string) map[string]tarFile {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	out := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[strings.TrimPrefix(h.Name, "./")] = tarFile{mode: h.FileInfo().Mode(), data: b}
	}
}

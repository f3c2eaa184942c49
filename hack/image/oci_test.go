// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerTar(t *testing.T, entries []entry, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		require.NoError(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	if !gz {
		return buf.Bytes()
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, err := zw.Write(buf.Bytes())
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return z.Bytes()
}

// ociArchive writes an OCI layout archive: blobs by digest, index.json.
type ociArchive struct {
	blobs map[string][]byte
}

func (a *ociArchive) add(b []byte) string {
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	a.blobs["blobs/sha256/"+hex.EncodeToString(sum[:])] = b
	return d
}

func (a *ociArchive) addJSON(t *testing.T, v any) (string, int64) {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return a.add(b), int64(len(b))
}

// image adds a manifest with the layers and returns its descriptor.
func (a *ociArchive) image(t *testing.T, cfg Config, layers [][]byte, gz bool) map[string]any {
	cd, cs := a.addJSON(t, cfg)
	var ls []map[string]any
	for _, l := range layers {
		mt := mediaOCILayer
		if gz {
			mt = mediaOCILayerGzip
		}
		ls = append(ls, map[string]any{"mediaType": mt, "digest": a.add(l), "size": len(l)})
	}
	md, ms := a.addJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": mediaOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
		"layers": ls,
	})
	return map[string]any{"mediaType": mediaOCIManifest, "digest": md, "size": ms,
		"platform": map[string]string{"os": cfg.OS, "architecture": cfg.Architecture}}
}

func (a *ociArchive) write(t *testing.T, manifests ...map[string]any) string {
	idx, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaOCIIndex, "manifests": manifests})
	require.NoError(t, err)
	a.blobs["index.json"] = idx
	a.blobs["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	p := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(p)
	require.NoError(t, err)
	tw := tar.NewWriter(f)
	var names []string
	for n := range a.blobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(a.blobs[n]))}))
		_, err := tw.Write(a.blobs[n])
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, f.Close())
	return p
}

func cfg(arch string) Config {
	var c Config
	c.OS, c.Architecture = "linux", arch
	c.Config.User = "65532:65532"
	c.Config.Entrypoint = []string{"/bin/app"}
	return c
}

func TestUnpack(t *testing.T) {
	dir := func(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
	file := func(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }

	t.Run("layers in order, whiteouts, the platform's manifest", func(t *testing.T) {
		a := &ociArchive{blobs: map[string][]byte{}}
		base := layerTar(t, []entry{
			dir("etc/"), file("etc/keep", "1"), file("etc/gone", "2"),
			dir("var/"), dir("var/cache/"), file("var/cache/a", "a"), file("var/cache/b", "b"),
			{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		}, true)
		top := layerTar(t, []entry{
			file("etc/.wh.gone", ""), file("var/cache/.wh..wh..opq", ""), file("var/cache/c", "c"),
			file("etc/keep", "new"), {name: "bin/app", body: "binary", typ: tar.TypeReg, mode: 0o755},
		}, true)
		other := a.image(t, cfg("riscv64"), [][]byte{layerTar(t, []entry{file("wrong", "x")}, true)}, true)
		this := a.image(t, cfg("amd64"), [][]byte{base, top}, true)
		archive := a.write(t, other, this)

		im, err := Unpack(archive, t.TempDir(), "linux", "amd64")
		require.NoError(t, err)
		var got []string
		for p := range im.Files {
			got = append(got, p)
		}
		sort.Strings(got)
		require.Equal(t, []string{"/bin/app", "/etc", "/etc/keep", "/tmp", "/var", "/var/cache", "/var/cache/c"}, got)
		b, err := os.ReadFile(filepath.Join(im.Root, "etc", "keep"))
		require.NoError(t, err)
		require.Equal(t, "new", string(b))
		_, err = os.Stat(filepath.Join(im.Root, "var", "cache", "a"))
		require.True(t, os.IsNotExist(err), "an opaque whiteout empties the directory")
		st, err := os.Stat(filepath.Join(im.Root, "tmp"))
		require.NoError(t, err)
		require.NotZero(t, st.Mode()&os.ModeSticky, "the sticky bit is kept")
		ep, err := im.Entrypoint()
		require.NoError(t, err)
		require.Equal(t, filepath.Join(im.Root, "bin", "app"), ep)
		uid, gid, err := im.User()
		require.NoError(t, err)
		require.Equal(t, [2]int{65532, 65532}, [2]int{uid, gid})
	})

	t.Run("no manifest for the platform", func(t *testing.T) {
		a := &ociArchive{blobs: map[string][]byte{}}
		archive := a.write(t, a.image(t, cfg("arm64"), [][]byte{layerTar(t, nil, false)}, false))
		_, err := Unpack(archive, t.TempDir(), "linux", "amd64")
		require.ErrorContains(t, err, "want one manifest for linux/amd64, the index lists 0")
	})

	t.Run("a layer writing through a symlink out of the root is refused", func(t *testing.T) {
		outside := t.TempDir()
		a := &ociArchive{blobs: map[string][]byte{}}
		evil := layerTar(t, []entry{
			{name: "etc", typ: tar.TypeSymlink, link: outside},
			file("etc/passwd", "owned"),
		}, false)
		archive := a.write(t, a.image(t, cfg("amd64"), [][]byte{evil}, false))
		_, err := Unpack(archive, t.TempDir(), "linux", "amd64")
		require.ErrorContains(t, err, "goes through the symlink /etc")
		_, err = os.Stat(filepath.Join(outside, "passwd"))
		require.True(t, os.IsNotExist(err), "nothing was written outside the root")
	})

	t.Run("dot-dot stays inside the root", func(t *testing.T) {
		a := &ociArchive{blobs: map[string][]byte{}}
		archive := a.write(t, a.image(t, cfg("amd64"), [][]byte{layerTar(t, []entry{file("../../escape", "x")}, false)}, false))
		dir := t.TempDir()
		im, err := Unpack(archive, dir, "linux", "amd64")
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(im.Root, "escape"))
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(dir, "..", "escape"))
		require.True(t, os.IsNotExist(err))
	})

	t.Run("not an OCI archive", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "docker.tar")
		f, err := os.Create(p)
		require.NoError(t, err)
		tw := tar.NewWriter(f)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}))
		_, err = tw.Write([]byte("[]"))
		require.NoError(t, err)
		require.NoError(t, tw.Close())
		require.NoError(t, f.Close())
		_, err = Unpack(p, t.TempDir(), "linux", "amd64")
		require.ErrorContains(t, err, "no index.json")
	})
}

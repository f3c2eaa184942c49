// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
)

// The media types this reader understands: OCI and Docker v2 manifests,
// indexes and layers, as podman save, buildah push and docker save write
// them. (Hand-written rather than taken from containers/image or
// go-containerregistry: those would add a large dependency tree to the
// module for some 200 lines of reading JSON and tar.)
const (
	mediaOCIIndex        = "application/vnd.oci.image.index.v1+json"
	mediaOCIManifest     = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerList      = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerManifest  = "application/vnd.docker.distribution.manifest.v2+json"
	mediaOCILayer        = "application/vnd.oci.image.layer.v1.tar"
	mediaOCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mediaDockerLayer     = "application/vnd.docker.image.rootfs.diff.tar"
	mediaDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

type index struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// Config is the part of an OCI image configuration the tests read.
type Config struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Created      string `json:"created"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

// File is one entry of the unpacked file system, as the layers recorded it.
type File struct {
	Mode     fs.FileMode
	UID, GID int
	Size     int64
	Link     string // symlink or hardlink target
}

// Image is an image unpacked into a directory.
type Image struct {
	// Root is the directory holding the image's file system.
	Root string
	// Digest is the manifest's digest.
	Digest string
	Config Config
	// Files are every path of the file system ("/etc/passwd"), with the
	// mode and owner the layers give it: the unpacked copy has the owner
	// only when unpacked as root.
	Files map[string]File
}

// Unpack reads the OCI image layout archive (a tar holding oci-layout,
// index.json and blobs/) at archive and unpacks the image for the
// platform os/arch (an index may hold several) into dir/rootfs, applying
// the layers in order with their whiteouts.
func Unpack(archive, dir, goos, goarch string) (*Image, error) {
	blobs, err := readArchive(archive)
	if err != nil {
		return nil, err
	}
	top, ok := blobs["index.json"]
	if !ok {
		return nil, fmt.Errorf("%s: no index.json: not an OCI image layout archive", archive)
	}
	md, err := pickManifest(blobs, top, goos, goarch, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	raw, err := blob(blobs, md.Digest)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", md.Digest, err)
	}
	im := &Image{Root: filepath.Join(dir, "rootfs"), Digest: md.Digest, Files: map[string]File{}}
	raw, err = blob(blobs, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &im.Config); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if err := os.MkdirAll(im.Root, 0o755); err != nil {
		return nil, err
	}
	for i, l := range m.Layers {
		raw, err := blob(blobs, l.Digest)
		if err != nil {
			return nil, err
		}
		if err := im.applyLayer(raw, l.MediaType); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return im, nil
}

// readArchive returns the archive's regular files by name: "index.json",
// "blobs/sha256/<hex>". The image is small (one binary): it is read whole.
func readArchive(archive string) (map[string][]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", archive, h.Name, err)
		}
		out[path.Clean(strings.TrimPrefix(h.Name, "./"))] = b
	}
}

func blob(blobs map[string][]byte, digest string) ([]byte, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return nil, fmt.Errorf("digest %q: want algorithm:hex", digest)
	}
	b, ok := blobs[path.Join("blobs", algo, hex)]
	if !ok {
		return nil, fmt.Errorf("blob %s missing from the archive", digest)
	}
	return b, nil
}

// pickManifest follows indexes down to the image manifest for goos/goarch.
func pickManifest(blobs map[string][]byte, raw []byte, goos, goarch string, depth int) (descriptor, error) {
	if depth > 3 {
		return descriptor{}, errors.New("indexes nested too deep")
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return descriptor{}, fmt.Errorf("index: %w", err)
	}
	var candidates []descriptor
	for _, d := range idx.Manifests {
		if d.Platform != nil && (d.Platform.OS != goos || d.Platform.Architecture != goarch) {
			continue
		}
		// Attestations and signatures (docker's "unknown/unknown") are not
		// images.
		if d.Platform != nil && d.Platform.OS == "unknown" {
			continue
		}
		candidates = append(candidates, d)
	}
	if len(candidates) != 1 {
		return descriptor{}, fmt.Errorf("want one manifest for %s/%s, the index lists %d", goos, goarch, len(candidates))
	}
	d := candidates[0]
	switch d.MediaType {
	case mediaOCIManifest, mediaDockerManifest:
		return d, nil
	case mediaOCIIndex, mediaDockerList:
		sub, err := blob(blobs, d.Digest)
		if err != nil {
			return descriptor{}, err
		}
		return pickManifest(blobs, sub, goos, goarch, depth+1)
	default:
		return descriptor{}, fmt.Errorf("manifest %s: unknown media type %q", d.Digest, d.MediaType)
	}
}

// applyLayer unpacks one layer over im.Root: whiteouts (.wh.NAME) delete
// NAME, an opaque whiteout (.wh..wh..opq) empties its directory. Paths that
// would leave the root are refused.
func (im *Image) applyLayer(raw []byte, mediaType string) error {
	var r io.Reader
	switch mediaType {
	case mediaOCILayer, mediaDockerLayer:
		r = bytes.NewReader(raw)
	case mediaOCILayerGzip, mediaDockerLayerGzip:
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	default:
		return fmt.Errorf("unknown layer media type %q", mediaType)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// Rooted and cleaned: "../x" is "/x", inside the root.
		name := path.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		dir, base := path.Split(name)
		if base == ".wh..wh..opq" {
			if err := im.removeBelow(path.Clean(dir), false); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			if err := im.removeBelow(path.Join(dir, strings.TrimPrefix(base, ".wh.")), true); err != nil {
				return err
			}
			continue
		}
		if err := im.extract(name, h, tr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

// local is the host path of the image path p, which must stay in Root: p
// is cleaned and rooted, and none of its parents on disk may be a symlink
// (a layer could otherwise write through "etc -> /" onto the host).
func (im *Image) local(p string) (string, error) {
	p = path.Clean("/" + p)
	l := filepath.Join(im.Root, filepath.FromSlash(p))
	rel, err := filepath.Rel(im.Root, l)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q leaves the root", p)
	}
	cur := im.Root
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for _, part := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%q goes through the symlink %s", p, strings.TrimPrefix(cur, im.Root))
		}
	}
	return l, nil
}

// removeBelow deletes p (self true) or p's contents, on disk and in Files.
func (im *Image) removeBelow(p string, self bool) error {
	l, err := im.local(p)
	if err != nil {
		return err
	}
	for f := range im.Files {
		if (self && f == p) || strings.HasPrefix(f, strings.TrimSuffix(p, "/")+"/") {
			delete(im.Files, f)
		}
	}
	if self {
		return os.RemoveAll(l)
	}
	entries, err := os.ReadDir(l)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(l, e.Name())); err != nil {
			return err
		}
	}
	return err
}

func (im *Image) extract(name string, h *tar.Header, r io.Reader) error {
	l, err := im.local(name)
	if err != nil {
		return err
	}
	// Parents of a file listed before its directory entry.
	if err := os.MkdirAll(filepath.Dir(l), 0o755); err != nil {
		return err
	}
	mode := h.FileInfo().Mode()
	f := File{Mode: mode, UID: h.Uid, GID: h.Gid, Size: h.Size}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(l, 0o755); err != nil {
			return err
		}
	case tar.TypeReg:
		_ = os.RemoveAll(l)
		out, err := os.OpenFile(l, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		_ = os.RemoveAll(l)
		f.Link = h.Linkname
		if err := os.Symlink(h.Linkname, l); err != nil {
			return err
		}
		im.Files[name] = f
		return nil
	case tar.TypeLink:
		target, err := im.local(path.Clean("/" + h.Linkname))
		if err != nil {
			return err
		}
		_ = os.RemoveAll(l)
		f.Link = h.Linkname
		if err := os.Link(target, l); err != nil {
			return err
		}
		im.Files[name] = f
		return nil
	default:
		// Devices and fifos have no place in this image; record them so
		// that a test sees them.
		im.Files[name] = f
		return nil
	}
	// The mode as recorded (setuid, sticky included), and the owner when
	// this process may set it.
	if err := os.Chmod(l, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	if os.Geteuid() == 0 && runtime.GOOS != "windows" {
		if err := os.Lchown(l, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	im.Files[name] = f
	return nil
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package image reads the tierscaler image that `make image` built, from
// the outside: containers cannot run on the machines tierscaler is tested
// on, so the tests export the image (hack/image.sh save: an OCI archive),
// unpack its layers and check its configuration and files; the chart
// end-to-end tests (hack/e2e) run the binary taken out of it as the image's
// user. docs/building.md describes the image.
package image

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Load exports the image `make image` built last in the repository at root
// (out/image/iid) and unpacks it into dir: dir/image.tar and dir/rootfs.
// Without a built image it says to run make image.
func Load(root, dir string) (*Image, error) {
	iid, err := os.ReadFile(filepath.Join(root, "out", "image", "iid"))
	if err != nil {
		return nil, fmt.Errorf("no image built (%v): run `make image` (make test and make test-integration do)", err)
	}
	archive := filepath.Join(dir, "image.tar")
	cmd := exec.Command("bash", filepath.Join(root, "hack", "image.sh"), "save", archive)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hack/image.sh save (image %s): %w\n%s", strings.TrimSpace(string(iid)), err, out.String())
	}
	im, err := Unpack(archive, dir, "linux", runtime.GOARCH)
	if err != nil {
		return nil, fmt.Errorf("unpacking image %s: %w", strings.TrimSpace(string(iid)), err)
	}
	return im, nil
}

// Entrypoint is the host path of the image's entrypoint, for exec.
func (im *Image) Entrypoint() (string, error) {
	ep := im.Config.Config.Entrypoint
	if len(ep) == 0 {
		return "", fmt.Errorf("the image has no entrypoint")
	}
	return im.local(ep[0])
}

// User returns the image's numeric user and group (USER uid:gid).
func (im *Image) User() (uid, gid int, err error) {
	u, g, ok := strings.Cut(im.Config.Config.User, ":")
	if !ok {
		return 0, 0, fmt.Errorf("USER %q: want numeric uid:gid", im.Config.Config.User)
	}
	if uid, err = strconv.Atoi(u); err != nil {
		return 0, 0, fmt.Errorf("USER %q: %w", im.Config.Config.User, err)
	}
	if gid, err = strconv.Atoi(g); err != nil {
		return 0, 0, fmt.Errorf("USER %q: %w", im.Config.Config.User, err)
	}
	return uid, gid, nil
}

// Env is the image's environment (ENV), as a container runtime starts it.
func (im *Image) Env() []string { return append([]string(nil), im.Config.Config.Env...) }

// Label returns the image label key.
func (im *Image) Label(key string) string { return im.Config.Config.Labels[key] }

// GiveTo prepares paths for a process that runs as uid:gid (the image's
// user) while the test runs as root: each path (a directory with what it
// holds) is chowned to uid:gid and every parent directory gets o+x, so that
// it can be traversed, not listed. Run as any other user it does nothing:
// the process then runs as that user too.
func GiveTo(uid, gid int, paths ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if err := filepath.WalkDir(abs, func(q string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(q, uid, gid)
		}); err != nil {
			return err
		}
		if err := Traversable(abs); err != nil {
			return err
		}
	}
	return nil
}

// Traversable gives every parent directory of path o+x (traverse, not
// list), so that a process running as another user (the image's) reaches
// path. The parents of a test's temporary directory are 0700.
func Traversable(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); d != filepath.Dir(d); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
	}
	return nil
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tierscaler/tierscaler/hack/image"
	"github.com/tierscaler/tierscaler/hack/testenv"
)

// activationRules is the chart's activation rule file, loaded into the
// environment's Prometheus unchanged.
const activationRules = "deploy/chart/tierscaler/rules/activation.rules.yaml"

// repoRoot is the repository root; chartDir the chart under test.
var repoRoot, chartDir string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	repoRoot, chartDir = root, filepath.Join(root, "deploy", "chart", "tierscaler")
	// Named like the environments' directories, so that
	// hack/check-leftovers.sh lists it if a crash leaves it behind.
	binDir, err := os.MkdirTemp("", testenv.TempDirPrefix+"e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// On SIGINT or SIGTERM testenv.Run stops the environment and exits
	// without returning here: remove the binary meanwhile.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			_ = os.RemoveAll(binDir)
		}
	}()
	// The image is exported and unpacked while the environment starts.
	startImage(root, binDir)
	// No default nodes: each test brings its pools (a tainted one for the
	// chart's pods, one for the functions).
	return testenv.Run(m, testenv.Options{
		Nodes:     -1,
		RuleFiles: []string{filepath.Join(root, activationRules)},
	})
}

var (
	imageOnce sync.Once
	imageDone = make(chan struct{})
	imageRun  *imageBinary
	imageErr  error
)

// imageBinary is the tierscaler binary taken out of the image `make image`
// built, with how the image runs it.
type imageBinary struct {
	path     string
	uid, gid int
	env      []string // the image's ENV
	home     string   // the user's home in the unpacked image
	digest   string
}

// startImage exports the image (hack/image.sh save), unpacks it into dir
// and checks that it was built from this work tree, in the background.
func startImage(root, dir string) {
	imageOnce.Do(func() {
		go func() {
			defer close(imageDone)
			start := time.Now()
			im, err := image.Load(root, dir)
			if err != nil {
				imageErr = fmt.Errorf("the end-to-end tests run the binary from the image: %w", err)
				return
			}
			out, err := exec.Command("bash", filepath.Join(root, "hack", "build.sh"), "--print-version").Output()
			if err != nil {
				imageErr = fmt.Errorf("hack/build.sh --print-version: %w", err)
				return
			}
			if f := strings.Fields(string(out)); len(f) != 3 || f[1] != im.Label("org.opencontainers.image.revision") || f[0] != im.Label("org.opencontainers.image.version") {
				imageErr = fmt.Errorf("the image is of %s (commit %s), the work tree is %s: run `make image`",
					im.Label("org.opencontainers.image.version"), im.Label("org.opencontainers.image.revision"), strings.TrimSpace(string(out)))
				return
			}
			ep, err := im.Entrypoint()
			if err == nil {
				err = image.Traversable(ep)
			}
			if err != nil {
				imageErr = err
				return
			}
			uid, gid, err := im.User()
			if err != nil {
				imageErr = err
				return
			}
			imageRun = &imageBinary{path: ep, uid: uid, gid: gid, env: im.Env(), digest: im.Digest,
				home: filepath.Join(im.Root, "home", "nonroot")}
			fmt.Fprintf(os.Stderr, "e2e: tierscaler %s from image %s, unpacked in %s\n",
				im.Label("org.opencontainers.image.version"), im.Digest, time.Since(start).Round(10*time.Millisecond))
		}()
	})
}

// tierscalerBinary waits for the image and returns its binary.
func tierscalerBinary(t *testing.T) *imageBinary {
	t.Helper()
	select {
	case <-imageDone:
	case <-time.After(5 * time.Minute):
		t.Fatal("exporting the image did not finish within 5 minutes")
	}
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageRun
}

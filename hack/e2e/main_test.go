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
	"sync"
	"syscall"
	"testing"
	"time"

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
	// The binary builds while the environment starts.
	startBuild(root, filepath.Join(binDir, "tierscaler"))
	// No default nodes: each test brings its pools (a tainted one for the
	// chart's pods, one for the functions).
	return testenv.Run(m, testenv.Options{
		Nodes:     -1,
		RuleFiles: []string{filepath.Join(root, activationRules)},
	})
}

var (
	buildOnce sync.Once
	buildDone = make(chan struct{})
	buildPath string
	buildErr  error
)

// startBuild runs `go build ./cmd/tierscaler` in the background.
func startBuild(root, out string) {
	buildOnce.Do(func() {
		go func() {
			defer close(buildDone)
			start := time.Now()
			cmd := exec.Command("go", "build", "-o", out, "./cmd/tierscaler")
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build ./cmd/tierscaler: %w\n%s", err, b)
				return
			}
			buildPath = out
			fmt.Fprintf(os.Stderr, "e2e: built tierscaler in %s\n", time.Since(start).Round(10*time.Millisecond))
		}()
	})
}

// tierscalerBinary waits for the build and returns the binary's path.
func tierscalerBinary(t *testing.T) string {
	t.Helper()
	select {
	case <-buildDone:
	case <-time.After(10 * time.Minute):
		t.Fatal("go build ./cmd/tierscaler did not finish within 10 minutes")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

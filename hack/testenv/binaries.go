// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinDirEnv names the environment variable holding the directory of the
// binaries hack/tools.sh builds (etcd, kube-*, kwok and kwok-stages.yaml).
const BinDirEnv = "TIERSCALER_BIN_DIR"

// Names of the components, as used in log file names, errors and State.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeScheduler         = "kube-scheduler"
	KubeControllerManager = "kube-controller-manager"
	Kwok                  = "kwok"
	Prometheus            = "prometheus"
	Alertmanager          = "alertmanager"
)

// kwokStagesFile is the file, next to the kwok binary, that concatenates
// the Stage documents kwok needs to run nodes and pods.
const kwokStagesFile = "kwok-stages.yaml"

// binaries are the resolved paths of every executable the environment runs.
type binaries struct {
	dir                      string
	etcd, apiserver          string
	scheduler, controllerMgr string
	kwok, kwokStages         string
	prometheus, alertmanager string
}

// findBinaries resolves every executable and reports all the missing ones
// at once.
func findBinaries() (*binaries, error) {
	dir, err := BinDir()
	if err != nil {
		return nil, err
	}
	b := &binaries{dir: dir}
	var missing []string
	inDir := func(name string, exe bool) string {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || (exe && st.Mode().Perm()&0o111 == 0) {
			missing = append(missing, name)
		}
		return p
	}
	b.etcd = inDir("etcd", true)
	b.apiserver = inDir("kube-apiserver", true)
	b.scheduler = inDir("kube-scheduler", true)
	b.controllerMgr = inDir("kube-controller-manager", true)
	b.kwok = inDir("kwok", true)
	b.kwokStages = inDir(kwokStagesFile, false)
	if len(missing) > 0 {
		return nil, &MissingBinaryError{Names: missing, Dir: dir}
	}

	onPath := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		missing = append(missing, strings.Join(names, " or "))
		return ""
	}
	b.prometheus = onPath("prometheus")
	b.alertmanager = onPath("prometheus-alertmanager", "alertmanager")
	if len(missing) > 0 {
		return nil, &MissingBinaryError{Names: missing}
	}
	return b, nil
}

// BinDir returns the directory holding the binaries hack/tools.sh builds:
// $TIERSCALER_BIN_DIR if set, else what `hack/tools.sh --bin-dir` prints.
func BinDir() (string, error) {
	if d := os.Getenv(BinDirEnv); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%s is unset and the repository is not found: %w", BinDirEnv, err)
	}
	script := filepath.Join(root, "hack", "tools.sh")
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, "--bin-dir")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s is unset and `%s --bin-dir` failed: %w: %s", BinDirEnv, script, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("%s is unset and `%s --bin-dir` printed nothing", BinDirEnv, script)
	}
	return dir, nil
}

// RepoRoot returns the root of the tierscaler repository: the nearest
// directory, from the working directory up, that holds a go.mod, else the
// directory of the file `go env GOMOD` names.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("no go.mod above %s and `go env GOMOD` failed: %w", wd, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("no go.mod above " + wd)
	}
	return filepath.Dir(gomod), nil
}

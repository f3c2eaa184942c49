// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration && !linux

package e2e

import (
	"errors"
	"os/exec"
)

// startChild starts cmd. Outside Linux there is no Pdeathsig: a test binary
// that dies leaves the process behind (hack/check-leftovers.sh finds it).
func startChild(cmd *exec.Cmd) error { return cmd.Start() }

// processUIDs is known on Linux only.
func processUIDs(int) (int, int, error) { return 0, 0, errors.ErrUnsupported }

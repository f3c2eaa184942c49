// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration && !linux

package e2e

import "os/exec"

// startChild starts cmd. Outside Linux there is no Pdeathsig: a test binary
// that dies leaves the process behind (hack/check-leftovers.sh finds it).
func startChild(cmd *exec.Cmd) error { return cmd.Start() }

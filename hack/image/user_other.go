// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package image

import "os/exec"

// RunAs switches users on Linux only; elsewhere cmd keeps the test's user.
func RunAs(cmd *exec.Cmd, uid, gid int) bool { return false }

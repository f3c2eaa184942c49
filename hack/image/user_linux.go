// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package image

import (
	"os"
	"os/exec"
	"syscall"
)

// RunAs makes cmd run as uid:gid with no supplementary groups, as a
// container runtime starts the image's USER, and reports whether it could:
// only root may switch users, so run as anyone else cmd keeps the test's
// user and RunAs returns false. It keeps cmd's other SysProcAttr settings.
func RunAs(cmd *exec.Cmd, uid, gid int) bool {
	if os.Geteuid() != 0 {
		return false
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	return true
}

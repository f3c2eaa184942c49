// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !linux

package testenv

import (
	"errors"
	"syscall"
)

func sysProcAttr(detach bool) *syscall.SysProcAttr {
	if detach {
		return &syscall.SysProcAttr{Setsid: true}
	}
	// Pdeathsig is Linux-only: elsewhere a crashed parent may leave
	// children behind; hack/check-leftovers.sh finds them.
	return &syscall.SysProcAttr{Setpgid: true}
}

// processAlive reports whether pid exists. Without /proc the owner cannot
// be checked.
func processAlive(pid int, _ string) bool {
	return syscall.Kill(pid, 0) == nil
}

// FindProcesses is only implemented on Linux.
func FindProcesses(string) ([]int, error) {
	return nil, errors.New("FindProcesses needs /proc (Linux)")
}

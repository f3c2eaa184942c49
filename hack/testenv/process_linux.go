// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

func sysProcAttr(detach bool) *syscall.SysProcAttr {
	if detach {
		// A new session: no controlling terminal, its own process group.
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// processAlive reports whether pid runs (is not a zombie) and belongs to
// the environment owner, so that a reused PID is not taken for ours.
func processAlive(pid int, owner string) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain spaces or parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	return ownedBy(pid, owner)
}

// ownedBy reports whether the environment of pid holds ownerEnv=owner.
func ownedBy(pid int, owner string) bool {
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return false
	}
	want := []byte(ownerEnv + "=" + owner)
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// FindProcesses returns the PIDs of the running processes whose
// environment marks them as started by the environment in dir, whether or
// not a state file records them (e.g. after an interrupted start).
func FindProcesses(dir string) ([]int, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if processAlive(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

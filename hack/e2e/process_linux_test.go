// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration && linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The tierscaler process gets SIGKILL when the test binary dies. Pdeathsig
// fires when the OS thread that forked the child ends, so children are
// forked from one goroutine locked to its thread for good.
var (
	forkerOnce sync.Once
	forkReqs   chan forkReq
)

type forkReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startChild(cmd *exec.Cmd) error {
	// Kept: a Credential set by image.RunAs (the image's user).
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	forkerOnce.Do(func() {
		forkReqs = make(chan forkReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the test binary
			for r := range forkReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	forkReqs <- forkReq{cmd: cmd, done: done}
	return <-done
}

// processUIDs returns the real and effective user IDs of a running process,
// from /proc.
func processUIDs(pid int) (real, effective int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			r, err1 := strconv.Atoi(f[0])
			e, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil {
				break
			}
			return r, e, nil
		}
	}
	return 0, 0, fmt.Errorf("/proc/%d/status: no Uid line", pid)
}

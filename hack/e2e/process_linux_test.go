// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration && linux

package e2e

import (
	"os/exec"
	"runtime"
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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

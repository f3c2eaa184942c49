//go:build unix && !linux

package main

import "syscall"

// sysProcAttr makes a child lead its own process group. Without Linux's
// Pdeathsig, a child outlives a demo that crashes; the demo stops it on
// every other exit.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

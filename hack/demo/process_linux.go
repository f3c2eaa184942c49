package main

import "syscall"

// sysProcAttr makes a child lead its own process group and get SIGKILL
// when the demo dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

//go:build integration && linux

package alerts

import "syscall"

// setDeathSignal kills Alertmanager if the test binary dies first.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

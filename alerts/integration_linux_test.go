// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration && linux

package alerts

import "syscall"

// setDeathSignal kills Alertmanager if the test binary dies first.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

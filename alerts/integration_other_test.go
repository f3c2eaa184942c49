// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration && !linux

package alerts

import "syscall"

// setDeathSignal does nothing where Pdeathsig does not exist; Stop still
// ends Alertmanager when the test ends normally.
func setDeathSignal(*syscall.SysProcAttr) {}

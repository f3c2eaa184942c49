// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"
	"strings"
)

// ComponentError reports that a component of the environment (etcd,
// kube-apiserver, prometheus, ...) could not be started, did not become
// ready, or could not be stopped. It names the component and the log file
// to read, and carries the last lines of that log.
type ComponentError struct {
	// Component is the component's name, e.g. "kube-apiserver".
	Component string
	// Op is what failed, e.g. "start" or "become ready".
	Op string
	// Log is the path of the component's log file, empty if it has none.
	Log string
	// Tail holds the last lines of the log when the error was made.
	Tail []string
	// Err is the underlying error.
	Err error
}

func (e *ComponentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: could not %s: %v", e.Component, e.Op, e.Err)
	if e.Log != "" {
		fmt.Fprintf(&b, "; read %s", e.Log)
		if len(e.Tail) > 0 {
			fmt.Fprintf(&b, ", whose last lines are:\n\t%s", strings.Join(e.Tail, "\n\t"))
		}
	}
	return b.String()
}

func (e *ComponentError) Unwrap() error { return e.Err }

// MissingBinaryError reports executables the environment needs but cannot
// find. `make tools` (hack/tools.sh) builds or installs all of them.
type MissingBinaryError struct {
	// Names are the missing executables.
	Names []string
	// Dir is the directory searched, empty for binaries looked up on PATH.
	Dir string
}

func (e *MissingBinaryError) Error() string {
	where := "on PATH"
	if e.Dir != "" {
		where = "in " + e.Dir + " ($TIERSCALER_BIN_DIR)"
	}
	return fmt.Sprintf("%s not found %s; run `make tools` (hack/tools.sh) to build or install it",
		strings.Join(e.Names, ", "), where)
}

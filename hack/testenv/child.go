// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import "time"

// Process is a child process started the way the environment starts its
// own: it leads its own process group, gets SIGKILL when this program dies
// (Linux), writes its output to a log file, and carries the environment's
// owner mark so that FindProcesses and hack/check-leftovers.sh see it.
// hack/demo runs tierscaler with it.
type Process struct{ p *proc }

// StartProcess starts argv (binary first) with its stdout and stderr in
// logPath, marked as belonging to the environment in owner (its Dir).
func StartProcess(name string, argv []string, logPath, owner string) (*Process, error) {
	p, err := spawn(name, argv[0], argv[1:], logPath, "", owner, false, false)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.p.done }

// ExitError describes how the process ended; it waits for the exit.
func (p *Process) ExitError() error { return p.p.exitError() }

// Stop sends SIGTERM to the process group, then SIGKILL if the process
// still runs after grace, and waits for it.
func (p *Process) Stop(grace time.Duration) error { return p.p.stop(grace) }

// TailLog returns up to n last lines of the log file at path.
func TailLog(path string, n int) []string { return tailLines(path, n) }

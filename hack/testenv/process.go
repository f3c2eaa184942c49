// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ownerEnv is set in the environment of every child process to the
// environment's directory. It identifies the processes of one environment
// even after their parent is gone, and guards against PID reuse.
const ownerEnv = "TIERSCALER_TESTENV_DIR"

// proc is one server process of the environment. It is the leader of its
// own process group (its PID is the group's ID) so that stopping it also
// stops anything it may have forked, and terminal signals sent to the
// parent's group do not reach it.
type proc struct {
	name  string
	argv  []string // binary and arguments
	log   string
	owner string // value of ownerEnv in its environment

	pid int
	// cmd and done are set for a process started by this program; a
	// process adopted from a state file has neither.
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // exit status, valid once done is closed
}

// spawn starts bin with args, its stdout and stderr appended to logPath
// (truncated first unless appendLog). With detach the process starts a new
// session and survives this program; without it, it gets SIGKILL when this
// program dies (Pdeathsig), so a crashed test binary leaves no orphans.
func spawn(name, bin string, args []string, logPath, workDir, owner string, detach, appendLog bool) (*proc, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if !appendLog {
		flags |= os.O_TRUNC
	}
	logf, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return nil, err
	}
	// The child has its own descriptor for the log once started.
	defer logf.Close()
	if appendLog {
		fmt.Fprintf(logf, "\n--- testenv: restarting %s at %s ---\n", name, time.Now().Format(time.RFC3339))
	}

	cmd := exec.Command(bin, args...)
	cmd.Dir = workDir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), ownerEnv+"="+owner)
	cmd.SysProcAttr = sysProcAttr(detach)
	if err := startCmd(cmd, detach); err != nil {
		return nil, err
	}
	p := &proc{
		name:  name,
		argv:  append([]string{bin}, args...),
		log:   logPath,
		owner: owner,
		pid:   cmd.Process.Pid,
		cmd:   cmd,
		done:  make(chan struct{}),
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pdeathsig fires when the OS thread that forked the child exits, not
// only when the process does, and the Go runtime ends a thread when a
// goroutine locked to it returns. Attached children are therefore forked
// from one goroutine that locks its thread and never returns.
var (
	spawnerOnce sync.Once
	spawnReqs   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startCmd(cmd *exec.Cmd, detach bool) error {
	if detach {
		return cmd.Start()
	}
	spawnerOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // and never unlock: the thread outlives every child
			for r := range spawnReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// alive reports whether the process is running (a zombie is not).
func (p *proc) alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return processAlive(p.pid, p.owner)
}

// exitError describes how an exited process ended.
func (p *proc) exitError() error {
	if p.done != nil {
		<-p.done
		if p.err == nil {
			return errors.New("exited with status 0")
		}
		return p.err
	}
	return errors.New("exited")
}

// waitExit waits up to d for the process to exit and reports whether it
// did.
func (p *proc) waitExit(d time.Duration) bool {
	if p.done != nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.done:
			return true
		case <-t.C:
			return false
		}
	}
	deadline := time.Now().Add(d)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// stop sends SIGTERM to the process group, then SIGKILL if the process is
// still running after grace.
func (p *proc) stop(grace time.Duration) error {
	if !p.alive() {
		return nil
	}
	if err := signalGroup(p.pid, syscall.SIGTERM); err != nil {
		return err
	}
	if p.waitExit(grace) {
		return nil
	}
	if err := signalGroup(p.pid, syscall.SIGKILL); err != nil {
		return err
	}
	if p.waitExit(10 * time.Second) {
		return nil
	}
	return fmt.Errorf("pid %d still runs 10s after SIGKILL", p.pid)
}

// signalGroup signals the process group led by pid; a group that is
// already gone is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pid)
	}
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%d -%d: %w", sig, pid, err)
	}
	return nil
}

// tailLines returns up to n last lines of the file at path.
func tailLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const maxRead = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		if _, err := f.Seek(-maxRead, io.SeekEnd); err != nil {
			return nil
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

// logMentions reports whether the file at path contains s.
func logMentions(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && bytes.Contains(data, []byte(s))
}

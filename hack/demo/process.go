package main

import (
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

// ownerEnv marks the processes of a testenv environment with its
// directory (hack/testenv sets it on its own children, and
// testenv.FindProcesses looks for it). The demo sets it on tierscaler too,
// so that FindProcesses also finds a tierscaler the demo failed to stop.
const ownerEnv = "TIERSCALER_TESTENV_DIR"

// child is a process the demo started. It leads its own process group, so
// that the terminal's Ctrl-C reaches the demo only and the demo stops its
// children in order; and on Linux it gets SIGKILL when the demo dies
// (Pdeathsig), so a crashed demo leaves nothing running.
type child struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // its exit status, valid once done is closed
}

// startChild starts argv with its stdout and stderr written to logPath
// and ownerEnv=owner in its environment.
func startChild(name string, argv []string, logPath, owner string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor once started
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), ownerEnv+"="+owner)
	cmd.SysProcAttr = sysProcAttr()
	if err := spawn(cmd); err != nil {
		return nil, err
	}
	c := &child{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Pdeathsig fires when the thread that forked the child exits, not the
// process, and the Go runtime ends threads. Children are therefore forked
// from one goroutine locked to a thread that lives as long as the program.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread outlives every child
			for r := range spawnReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// exited is closed when the process has exited.
func (c *child) exited() <-chan struct{} { return c.done }

// exitError describes how the process ended; call it once exited is closed.
func (c *child) exitError() error {
	<-c.done
	if c.err == nil {
		return errors.New("exited with status 0")
	}
	return c.err
}

// stop sends SIGTERM to the process group, then SIGKILL if the process
// still runs after grace, and waits for it to be reaped.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	pid := c.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: SIGTERM to process group %d: %w", c.name, pid, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: SIGKILL to process group %d: %w", c.name, pid, err)
	}
	select {
	case <-c.done:
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed; read %s", c.name, grace, c.log)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still runs 10s after SIGKILL", c.name, pid)
	}
}

// tail returns up to n last lines of the file at path.
func tail(path string, n int) []string {
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
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

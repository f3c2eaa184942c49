// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var current atomic.Pointer[Env]

// Current returns the environment Run started: nil before, stopped once
// Run has returned.
func Current() *Env { return current.Load() }

// Run is for TestMain: it starts an environment with o, makes it available
// through Current, runs the tests and stops the environment, returning the
// exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m, testenv.Options{})) }
//
// The environment is stopped whatever happens: after the tests, on a panic
// in TestMain's goroutine, and on SIGINT or SIGTERM. If the test binary
// dies otherwise (a panic in a test, go test's -timeout), the kernel kills
// the processes (Pdeathsig). When a test fails, the environment's directory
// and its logs are kept and their path printed.
func Run(m *testing.M, o Options) (code int) {
	if !flag.Parsed() {
		flag.Parse() // for testing.Verbose; m.Run would parse them anyway
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	if o.Logf == nil && testing.Verbose() {
		o.Logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...)
		}
	}

	start := time.Now()
	env, err := Start(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testenv: environment ready in %s (%s)\n", time.Since(start).Round(10*time.Millisecond), env.Dir)
	current.Store(env)

	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "testenv: interrupted; stopping the environment (logs kept in %s)\n", env.Dir)
			if err := env.stop(true); err != nil {
				fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
			}
			os.Exit(130)
		case <-finished:
		}
	}()
	defer func() {
		r := recover()
		keep := r != nil || code != 0 || env.opts.KeepDir || !env.ownsDir
		if err := env.stop(keep); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		if keep && env.ownsDir && !env.opts.KeepDir {
			fmt.Fprintf(os.Stderr, "testenv: kept %s for its logs\n", env.Dir)
		}
		if r != nil {
			panic(r)
		}
	}()
	return m.Run()
}

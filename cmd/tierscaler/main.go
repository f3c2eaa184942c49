// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Command tierscaler autoscales OpenFaaS functions on Kubernetes with a
// tiered priority policy.
//
//	tierscaler run       run the controller
//	tierscaler plan      gather and decide once; print the plan; change nothing
//	tierscaler validate  check a policy file
//	tierscaler status    show a running controller's status
//	tierscaler simulate  compare strategies on a workload in virtual time
//	tierscaler version   print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"run", "run the controller", runCmd},
	{"plan", "gather and decide once, print the plan, change nothing", planCmd},
	{"validate", "validate a policy file and print it normalised", validateCmd},
	{"status", "show a running controller's status", statusCmd},
	{"simulate", "simulate static, idle-only and tierscaler on a workload in virtual time", simulateCmd},
	{"version", "print the version", versionCmd},
}

// errUsage marks a usage mistake: exit code 2.
var errUsage = errors.New("usage")

// exitError carries an exit code without a message of its own.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ee exitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return int(ee)
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "tierscaler %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "tierscaler %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "tierscaler: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tierscaler autoscales OpenFaaS functions with a tiered priority policy.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: tierscaler <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'tierscaler <command> -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tierscaler "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

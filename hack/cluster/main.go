// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Command cluster runs tierscaler's local cluster: etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager, kwok with fake nodes,
// Prometheus and Alertmanager, on 127.0.0.1, as processes that outlive the
// command. Its state, logs and admin kubeconfig live in one directory
// (default <repo>/.cluster).
//
//	go run ./hack/cluster up [--nodes 4] [--node-cpu 4] [--node-memory 8Gi] [--dir DIR]
//	go run ./hack/cluster status [--dir DIR]
//	go run ./hack/cluster scrape [--dir DIR] JOB HOST:PORT
//	go run ./hack/cluster down [--dir DIR]
//
// The binaries come from hack/tools.sh (`make tools`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tierscaler/tierscaler/hack/testenv"
)

const usage = `usage: go run ./hack/cluster COMMAND [flags]

commands:
  up      start the local cluster (does nothing if it already runs)
  status  show the processes, URLs and nodes of the local cluster
  scrape  add a Prometheus scrape target: scrape [flags] JOB HOST:PORT
  down    stop every process of the local cluster

Run "go run ./hack/cluster COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "up":
		err = up(ctx, rest, stdout)
	case "down":
		err = down(rest, stdout)
	case "status":
		err = status(ctx, rest, stdout)
	case "scrape":
		err = scrape(rest, stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cluster: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "cluster:", ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "cluster:", err)
	return 1
}

// flags returns a flag set with the --dir flag every command has.
func flags(name string) (*flag.FlagSet, *string) {
	set := flag.NewFlagSet(name, flag.ContinueOnError)
	dir := set.String("dir", "", "directory of the cluster's state, logs and kubeconfig (default <repo>/.cluster)")
	return set, dir
}

func clusterDir(dir string) (string, error) {
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cluster")
	}
	return filepath.Abs(dir)
}

func up(ctx context.Context, args []string, out io.Writer) error {
	set, dirFlag := flags("up")
	nodes := set.Int("nodes", testenv.DefaultNodes, "number of fake nodes")
	cpu := set.String("node-cpu", testenv.DefaultNodeCPU, "allocatable CPU of each node")
	mem := set.String("node-memory", testenv.DefaultNodeMemory, "allocatable memory of each node")
	pods := set.Int("node-pods", testenv.DefaultNodePods, "allocatable pods of each node")
	scrapeEvery := set.Duration("scrape-interval", testenv.DefaultScrapeInterval, "Prometheus scrape and evaluation interval")
	if err := set.Parse(args); err != nil {
		return err
	}
	if set.NArg() > 0 {
		return &exitError{2, "up takes no arguments"}
	}
	dir, err := clusterDir(*dirFlag)
	if err != nil {
		return err
	}
	if env, err := testenv.Attach(dir); err == nil {
		if anyAlive(env) {
			fmt.Fprintf(out, "The local cluster in %s is already up; nothing to do.\n\n", dir)
			return describe(ctx, env, out)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if *nodes == 0 {
		*nodes = -1 // testenv: 0 would mean the default
	}
	fmt.Fprintf(out, "Starting the local cluster in %s ...\n", dir)
	start := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{
		Dir:            dir,
		Detach:         true,
		Nodes:          *nodes,
		NodeCPU:        *cpu,
		NodeMemory:     *mem,
		NodePods:       *pods,
		ScrapeInterval: *scrapeEvery,
		Logf:           func(f string, a ...any) { fmt.Fprintf(out, "  "+f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "The local cluster is up (in %s).\n\n", time.Since(start).Round(100*time.Millisecond))
	return describe(ctx, env, out)
}

func anyAlive(env *testenv.Env) bool {
	for _, p := range env.Processes() {
		if p.Alive {
			return true
		}
	}
	return false
}

// describe prints the URLs, processes and nodes of env.
func describe(ctx context.Context, env *testenv.Env, out io.Writer) error {
	st := env.State()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "kube-apiserver\t%s\n", st.APIServerURL)
	fmt.Fprintf(tw, "kubeconfig\t%s\n", st.Kubeconfig)
	fmt.Fprintf(tw, "prometheus\t%s\n", st.PrometheusURL)
	fmt.Fprintf(tw, "alertmanager\t%s\n", st.AlertmanagerURL)
	fmt.Fprintf(tw, "started\t%s\n", st.StartedAt.Format(time.RFC3339))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out, "\nProcesses (each leads its own process group):")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tPID\tSTATE\tLOG")
	var dead []string
	for _, p := range env.Processes() {
		state := "running"
		if !p.Alive {
			state = "DEAD"
			dead = append(dead, p.Name)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", p.Name, p.PID, state, p.Log)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out, "\nNodes:")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintf(out, "  (cannot list: %v)\n", err)
	} else {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tREADY\tCPU\tMEMORY\tPODS")
		for _, n := range nodes.Items {
			a := n.Status.Allocatable
			fmt.Fprintf(tw, "  %s\t%v\t%s\t%s\t%s\n", n.Name, ready(&n), a.Cpu(), a.Memory(), a.Pods())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.ScrapeTargets) > 0 {
		fmt.Fprintln(out, "\nScrape targets:")
		for job, targets := range st.ScrapeTargets {
			fmt.Fprintf(out, "  %s: %s\n", job, strings.Join(targets, ", "))
		}
	}
	fmt.Fprintf(out, "\nexport KUBECONFIG=%s\n", st.Kubeconfig)
	if len(dead) > 0 {
		return &exitError{1, fmt.Sprintf("not running: %s (read their logs; `go run ./hack/cluster down` cleans up)", strings.Join(dead, ", "))}
	}
	return nil
}

// waitReaped waits up to d for the stopped processes to disappear from
// the process table. They are children of init once `up` has exited, and
// an init that reaps lazily leaves them as zombies for a while.
func waitReaped(procs []testenv.ProcessState, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, p := range procs {
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(p.PID))); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func status(ctx context.Context, args []string, out io.Writer) error {
	set, dirFlag := flags("status")
	if err := set.Parse(args); err != nil {
		return err
	}
	dir, err := clusterDir(*dirFlag)
	if err != nil {
		return err
	}
	env, err := testenv.Attach(dir)
	if errors.Is(err, os.ErrNotExist) {
		return &exitError{3, "no local cluster in " + dir + " (start one with `make cluster-up`)"}
	}
	if err != nil {
		return err
	}
	return describe(ctx, env, out)
}

func scrape(args []string, out io.Writer) error {
	set, dirFlag := flags("scrape")
	if err := set.Parse(args); err != nil {
		return err
	}
	if set.NArg() != 2 {
		return &exitError{2, "usage: scrape [--dir DIR] JOB HOST:PORT"}
	}
	dir, err := clusterDir(*dirFlag)
	if err != nil {
		return err
	}
	env, err := testenv.Attach(dir)
	if err != nil {
		return err
	}
	job, target := set.Arg(0), set.Arg(1)
	if err := env.AddScrapeTarget(job, target); err != nil {
		return err
	}
	fmt.Fprintf(out, "Prometheus %s scrapes %s as job %q.\n", env.PrometheusURL, target, job)
	return nil
}

func down(args []string, out io.Writer) error {
	set, dirFlag := flags("down")
	if err := set.Parse(args); err != nil {
		return err
	}
	dir, err := clusterDir(*dirFlag)
	if err != nil {
		return err
	}
	env, err := testenv.Attach(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(out, "No local cluster state in %s.\n", dir)
	case err != nil:
		return err
	default:
		procs := env.State().Processes
		if err := env.Stop(); err != nil {
			return err
		}
		waitReaped(procs, 10*time.Second)
		fmt.Fprintf(out, "Stopped the local cluster in %s.\n", dir)
	}
	// Processes an interrupted `up` started before recording them.
	pids, err := testenv.FindProcesses(dir)
	if err != nil {
		fmt.Fprintf(out, "Cannot look for leftover processes: %v\n", err)
	}
	for _, pid := range pids {
		fmt.Fprintf(out, "Killing leftover process %d and its process group.\n", pid)
		for _, target := range []int{-pid, pid} {
			if err := syscall.Kill(target, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("killing %d: %w", target, err)
			}
		}
	}
	// A kubeconfig of a stopped cluster would only lead to timeouts.
	if err := os.Remove(filepath.Join(dir, "kubeconfig")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

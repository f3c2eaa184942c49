// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/policy"
)

// stdin is where `validate -` reads; tests replace it.
var stdin io.Reader = os.Stdin

// maxPolicySize bounds what `validate -` reads: a policy file is a few
// kilobytes.
const maxPolicySize = 4 << 20

func validateCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tierscaler validate FILE")
		fmt.Fprintln(stderr, "       tierscaler validate -      (the policy on standard input)")
		fmt.Fprintln(stderr, "Prints every error in the policy file and exits 1, or prints the normalised policy (defaults applied) and exits 0.")
		fmt.Fprintln(stderr, "Example: helm template tierscaler deploy/chart/tierscaler -s templates/configmap.yaml | yq '.data.\"policy.yaml\"' | tierscaler validate -")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want exactly one policy file", errUsage)
	}
	var p *policy.Policy
	var err error
	if fs.Arg(0) == "-" {
		p, err = parseStdin()
	} else {
		p, err = policy.Load(fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitError(1)
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// parseStdin reads a policy from standard input. Files its HTTP client
// configurations name are relative to the working directory.
func parseStdin() (*policy.Policy, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("policy on standard input: %w", err)
	}
	if len(data) > maxPolicySize {
		return nil, fmt.Errorf("policy on standard input: larger than %d bytes", maxPolicySize)
	}
	p, err := policy.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy on standard input: %w", err)
	}
	if wd, err := os.Getwd(); err == nil {
		p.Prometheus.HTTPConfig.SetDirectory(wd)
		p.Alertmanager.HTTPConfig.SetDirectory(wd)
	}
	return p, nil
}

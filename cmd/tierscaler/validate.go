// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/tierscaler/tierscaler/policy"
)

func validateCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tierscaler validate FILE")
		fmt.Fprintln(stderr, "Prints every error in the policy file and exits 1, or prints the normalised policy (defaults applied) and exits 0.")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: want exactly one policy file", errUsage)
	}
	p, err := policy.Load(fs.Arg(0))
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

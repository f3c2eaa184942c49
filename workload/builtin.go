// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// builtins holds the built-in scenarios: scenarios/<name>.yaml. To add one,
// drop a file there; Builtin and BuiltinNames find it.
//
//go:embed scenarios/*.yaml
var builtins embed.FS

// BuiltinNames lists the built-in scenarios, sorted.
func BuiltinNames() []string {
	entries, err := fs.ReadDir(builtins, "scenarios")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

func isBuiltin(name string) bool { return slices.Contains(BuiltinNames(), name) }

// Builtin returns the built-in scenario name, parsed, defaulted and
// validated.
func Builtin(name string) (*Scenario, error) {
	if !isBuiltin(name) {
		return nil, fmt.Errorf("no built-in scenario %q (built-in: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	data, err := builtins.ReadFile(path.Join("scenarios", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("built-in scenario %q: %w", name, err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("built-in scenario %q: %w", name, err)
	}
	return s, nil
}

// BuiltinYAML returns the text of the built-in scenario name.
func BuiltinYAML(name string) ([]byte, error) {
	if !isBuiltin(name) {
		return nil, fmt.Errorf("no built-in scenario %q (built-in: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	return builtins.ReadFile(path.Join("scenarios", name+".yaml"))
}

// Resolve returns the built-in scenario ref when ref is a built-in name
// and no file of that name exists; otherwise it loads the file ref.
func Resolve(ref string) (*Scenario, error) {
	if isBuiltin(ref) {
		if _, err := os.Stat(ref); err != nil {
			return Builtin(ref)
		}
	}
	if _, err := os.Stat(ref); err != nil && !strings.ContainsAny(ref, `/\.`) {
		return nil, fmt.Errorf("scenario %q is neither a file nor a built-in scenario (built-in: %s)",
			ref, strings.Join(BuiltinNames(), ", "))
	}
	return Load(ref)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/tierscaler/tierscaler/scaler"
)

// buildDate is set at build time with -ldflags -X main.buildDate=... (by
// hack/build.sh, which `make build`, `make release` and the Dockerfile
// call), like scaler.Version and scaler.Revision.
var buildDate = ""

// versionInfo is what `tierscaler version` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// resolveVersion returns the stamped values, filling what was not stamped
// from the Go build information: `go install ...@v0.2.0` records the module
// version, and `go build` in a git checkout the commit and its time. Values
// neither stamped nor recorded stay "dev" and "unknown".
func resolveVersion(version, commit, date string, bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: version, Commit: commit, BuildDate: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if (v.Version == "" || v.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" || v.Commit == "unknown" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.BuildDate == "" {
					v.BuildDate = s.Value
				}
			}
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	if v.BuildDate == "" {
		v.BuildDate = "unknown"
	}
	return v
}

// currentVersion is the running binary's version.
func currentVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(scaler.Version, scaler.Revision, buildDate, bi)
}

func init() {
	// tierscaler_build_info reads scaler.Version and scaler.Revision: give it
	// the resolved values, so that it agrees with `tierscaler version`.
	v := currentVersion()
	scaler.Version, scaler.Revision = v.Version, v.Commit
}

func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	output := fs.String("o", "text", "output format: text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tierscaler version [-o text|json]")
		fmt.Fprintln(stderr, "Prints the version, the commit and the build date stamped at build time.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	v := currentVersion()
	switch *output {
	case "text":
		_, err := fmt.Fprintf(stdout, "tierscaler %s\n  commit:   %s\n  built:    %s\n  go:       %s %s\n",
			v.Version, v.Commit, v.BuildDate, v.GoVersion, v.Platform)
		return err
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	default:
		return fmt.Errorf("%w: -o %q: want text or json", errUsage, *output)
	}
}

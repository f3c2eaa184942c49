// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShippedBinaryLinksNoTestTooling: the tierscaler binary (and so the
// simulator in it) must not link hack/: the OpenFaaS model both the
// simulator and the emulator use lives in the product package openfaas.
func TestShippedBinaryLinksNoTestTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/tierscaler/tierscaler/cmd/tierscaler").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/tierscaler/tierscaler/hack/") {
			t.Errorf("cmd/tierscaler links %s", p)
		}
	}
}

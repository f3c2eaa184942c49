// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// presetGlob finds the chart's presets: values files for a kind of
// installation (values-openfaas-ce.yaml, ...), shipped in the chart.
const presetGlob = "values-*.yaml"

// tierscalerBinary builds cmd/tierscaler once per test run.
var tierscalerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tierscaler-deploy-test-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "tierscaler")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/tierscaler")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, b)
	}
	return out, nil
})

// TestPresets renders the chart with each preset, checks it with helm lint,
// and validates the rendered policy with the binary (`tierscaler validate
// -`), as an operator would before installing it. The chart README must
// document each preset.
func TestPresets(t *testing.T) {
	helmBinary(t) // skips in -short
	presets, err := filepath.Glob(filepath.Join(chartDir, presetGlob))
	require.NoError(t, err)
	if len(presets) == 0 {
		t.Skipf("no presets (%s) in %s yet", presetGlob, chartDir)
	}
	bin, err := tierscalerBinary()
	require.NoError(t, err, "go build ./cmd/tierscaler")
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bin)) })
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	for _, preset := range presets {
		name := filepath.Base(preset)
		t.Run(name, func(t *testing.T) {
			assert.Truef(t, strings.Contains(string(readme), name), "the chart README does not mention %s: document what it assumes", name)
			out, err := runHelm(t, "lint", "--strict", chartDir, "--namespace", namespace, "-f", preset)
			require.NoError(t, err)
			assert.Contains(t, out, "0 chart(s) failed")

			m := template(t, "-f", preset)
			cm := get[corev1.ConfigMap](t, m, "ConfigMap", release+"-policy")
			cmd := exec.Command(bin, "validate", "-")
			cmd.Stdin = strings.NewReader(cm.Data["policy.yaml"])
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), "tierscaler validate - of the policy %s renders:\n%s\n%s", name, stderr.String(), cm.Data["policy.yaml"])
			assert.Contains(t, stdout.String(), "kind: Policy")
		})
	}
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The route tierscaler's webhook gets is the one the chart's activation
// rule file documents, read at run time.
func TestDocumentedRouteOfTheChart(t *testing.T) {
	r, err := documentedRoute(filepath.Join("..", "..", "deploy", "chart", "tierscaler", "rules", "activation.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Receiver == "" || !slices.Contains(r.Matchers, `tierscaler="activate"`) {
		t.Errorf("route %+v: want a receiver and the matcher tierscaler=\"activate\"", r)
	}
	for name, d := range map[string]string{"group_wait": r.GroupWait, "group_interval": r.GroupInterval, "repeat_interval": r.RepeatInterval} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("%s %q: %v", name, d, err)
		}
	}
}

func TestDocumentedRoute(t *testing.T) {
	const route = `#   route:
#     routes:
#       - receiver: tierscaler
#         matchers:
#           - tierscaler="activate"
#         group_wait: 2s
#   receivers:
#     - name: tierscaler
`
	for _, tc := range []struct {
		name, file, wantErr string
		wantWait            string
	}{
		{name: "documented", file: "# Some text.\n#\n" + route + "groups: []\n", wantWait: "2s"},
		{name: "route ends at a blank comment line", file: strings.Replace(route, "#   receivers:", "#", 1) + "groups: []\n", wantWait: "2s"},
		{name: "empty file", file: "", wantErr: "no route: block"},
		{name: "no header comment", file: "groups: []\n" + route, wantErr: "no route: block"},
		{name: "no activate matcher", file: strings.Replace(route, `tierscaler="activate"`, `severity="info"`, 1), wantErr: `no matcher tierscaler="activate"`},
		{name: "not YAML", file: "#   route:\n#     routes: [\n", wantErr: "the documented route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(f, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := documentedRoute(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.GroupWait != tc.wantWait {
				t.Errorf("group_wait %q, want %q", r.GroupWait, tc.wantWait)
			}
		})
	}
}

// The Alertmanager configuration sends only tierscaler's functions to its
// webhook, whichever label names the function, and Alertmanager accepts it.
func TestAlertmanagerConfig(t *testing.T) {
	cfg, err := alertmanagerConfig(amRoute{Matchers: []string{`tierscaler="activate"`}, GroupWait: "0s", GroupBy: []string{"function"}},
		"http://127.0.0.1:1/webhook/alertmanager", "/token")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Route struct {
			Receiver string `json:"receiver"`
			Routes   []struct {
				Receiver  string   `json:"receiver"`
				Matchers  []string `json:"matchers"`
				GroupWait string   `json:"group_wait"`
			} `json:"routes"`
		} `json:"route"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Route.Receiver != "null" {
		t.Errorf("default receiver %q, want null (everything else dropped)", doc.Route.Receiver)
	}
	var labels []string
	for _, r := range doc.Route.Routes {
		if r.Receiver != "tierscaler" || r.GroupWait != "0s" || !slices.Contains(r.Matchers, `tierscaler="activate"`) {
			t.Errorf("route %+v: want receiver tierscaler, group_wait 0s and the documented matcher", r)
		}
		for _, m := range r.Matchers {
			if strings.HasSuffix(m, `=~".+\\.`+tsNamespace+`"`) {
				labels = append(labels, strings.SplitN(m, "=", 2)[0])
			}
		}
	}
	if !slices.Equal(labels, []string{"function", "function_name"}) {
		t.Errorf("namespace matchers on %v, want function and function_name:\n%s", labels, cfg)
	}
	if testing.Short() {
		return
	}
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Skip("amtool not installed (hack/tools.sh installs it)")
	}
	f := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(amtool, "check-config", f).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s\n%s", err, out, cfg)
	}
}

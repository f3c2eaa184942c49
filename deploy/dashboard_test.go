// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/docs"
)

type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name, Type string
			Query      any    `json:"query"`
			AllValue   string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Datasource   struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "tierscaler.json"))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d), "the dashboard JSON does not parse")
	return d
}

// grafanaVars stands in for Grafana's variables so that a query parses as
// PromQL: the job and namespace variables at their "All" value.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$job", ".+", "$namespace", ".+")

// selectors returns the vector selectors of a panel query.
func selectors(t *testing.T, expr string) []*parser.VectorSelector {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	require.NoError(t, err, "query %s", expr)
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// TestDashboard checks the Grafana dashboard: its variables, that every
// query parses and selects tierscaler's series through the job variable,
// that every tierscaler metric it uses is documented in docs/metrics.md,
// that it covers the webhook, alert delivery and patch errors, and that
// per-function series carry OpenFaaS's label name (function_name).
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	doc, err := docs.Metrics()
	require.NoError(t, err)
	assert.NotEmpty(t, d.UID)

	t.Run("variables: data source, job, namespace", func(t *testing.T) {
		var names []string
		for _, v := range d.Templating.List {
			names = append(names, v.Name)
			switch v.Name {
			case "datasource":
				assert.Equal(t, "datasource", v.Type)
				assert.Equal(t, "prometheus", v.Query)
			case "job", "namespace":
				assert.Equal(t, "query", v.Type)
				assert.Equal(t, ".+", v.AllValue, "$%s at All matches every value", v.Name)
			}
		}
		assert.ElementsMatch(t, []string{"datasource", "job", "namespace"}, names)
	})

	used := map[string]bool{}
	var exprs []string
	t.Run("queries", func(t *testing.T) {
		ids := map[int]bool{}
		for _, p := range d.Panels {
			require.Falsef(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			assert.Equalf(t, "${datasource}", p.Datasource.UID, "panel %q: its data source is the variable", p.Title)
			require.NotEmptyf(t, p.Targets, "panel %q has no query", p.Title)
			for _, tg := range p.Targets {
				assert.Equalf(t, "${datasource}", tg.Datasource.UID, "panel %q", p.Title)
				exprs = append(exprs, tg.Expr)
				for _, vs := range selectors(t, tg.Expr) {
					if !strings.HasPrefix(vs.Name, "tierscaler_") {
						continue
					}
					used[vs.Name] = true
					assert.Truef(t, slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
						return m.Name == "job" && m.Type == labels.MatchRegexp && m.Value == ".+"
					}), "panel %q: %s does not select job=~\"$job\"", p.Title, vs.Name)
				}
			}
		}
	})

	t.Run("every tierscaler metric it uses is in docs/metrics.md", func(t *testing.T) {
		require.NotEmpty(t, used)
		var missing []string
		for name := range used {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok {
					if m, ok := doc[b]; ok && (m.Type == "histogram" || m.Type == "summary") {
						base = b
					}
				}
			}
			if _, ok := doc[base]; !ok {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		assert.Empty(t, missing, "the dashboard queries metrics docs/metrics.md does not document")
	})

	t.Run("covers the webhook, alert delivery and patch errors", func(t *testing.T) {
		for _, m := range []string{
			"tierscaler_webhook_requests_total", "tierscaler_webhook_alerts_total", "tierscaler_webhook_request_duration_seconds_bucket",
			"tierscaler_alerts_sent_total", "tierscaler_alerts_queued", "tierscaler_alerts_dropped_total",
			"tierscaler_scale_patch_errors_total",
			"tierscaler_leader", "tierscaler_metrics_available", "tierscaler_shortfalls", "tierscaler_evictions_total",
			"tierscaler_provider_reverts_total", "tierscaler_reconcile_duration_seconds_bucket",
		} {
			assert.Truef(t, used[m], "no panel queries %s", m)
		}
	})

	t.Run("per-function series are labelled function_name, as OpenFaaS labels them", func(t *testing.T) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if strings.Contains(tg.LegendFormat, "{{function}}") {
					t.Errorf("panel %q: legend {{function}}: rename it to OpenFaaS's function_name with label_replace", p.Title)
				}
			}
		}
		joined := slices.ContainsFunc(exprs, func(e string) bool {
			return strings.Contains(e, "gateway_function_invocation_total") &&
				strings.Contains(e, `label_replace(`) && strings.Contains(e, `"function_name", "$1", "function"`)
		})
		assert.True(t, joined, "a panel joins the gateway's function_name with tierscaler's function")
	})

	t.Run("panels do not overlap", func(t *testing.T) {
		type cell struct{ x, y int }
		taken := map[cell]string{}
		for _, p := range d.Panels {
			g := p.GridPos
			require.Positivef(t, g.W, "panel %q has no width", p.Title)
			require.LessOrEqualf(t, g.X+g.W, 24, "panel %q is wider than the dashboard", p.Title)
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if other, ok := taken[cell{x, y}]; ok {
						t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					}
					taken[cell{x, y}] = p.Title
				}
			}
		}
	})
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/workload"
)

// node is an element of the page, parsed as XML (the page is well-formed),
// or a run of text (name #text).
type node struct {
	name     string
	attrs    map[string]string
	children []*node
	text     strings.Builder
}

func parsePage(t *testing.T, page []byte) *node {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(page))
	dec.Strict = true
	root := &node{name: "#root"}
	stack := []*node{root}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			top.children = append(top.children, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			n := &node{name: "#text"}
			n.text.Write(tok)
			top.children = append(top.children, n)
		}
	}
	return root
}

// all returns the elements under n (n included) that match.
func (n *node) all(match func(*node) bool) []*node {
	var out []*node
	if match(n) {
		out = append(out, n)
	}
	for _, c := range n.children {
		out = append(out, c.all(match)...)
	}
	return out
}

func (n *node) tag(name string) []*node {
	return n.all(func(c *node) bool { return c.name == name })
}

func (n *node) class(class string) []*node {
	return n.all(func(c *node) bool { return strings.Contains(" "+c.attrs["class"]+" ", " "+class+" ") })
}

// content is n's text, its descendants' included.
func (n *node) content() string {
	var b strings.Builder
	var walk func(*node)
	walk = func(n *node) {
		b.WriteString(n.text.String())
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

func attrFloat(t *testing.T, n *node, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attrs[name], 64)
	require.NoError(t, err, "attribute %s of <%s>", name, n.name)
	return v
}

// goNames are what must not show on the page: package-qualified names,
// the report's Go field names of more than one word, and its camelCase
// JSON keys.
func goNames() (*regexp.Regexp, []string) {
	qualified := regexp.MustCompile(`\b(policy|simulate|scaler|workload|openfaas|alerts)\.[A-Za-z]`)
	var names []string
	for _, v := range []any{Report{}, StrategyReport{}, TimelinePoint{}, Mark{}, Timeline{}, TierReserve{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			if len(regexp.MustCompile(`[A-Z]`).FindAllString(f.Name, -1)) > 1 {
				names = append(names, f.Name)
			}
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag != strings.ToLower(tag) {
				names = append(names, tag)
			}
		}
	}
	names = append(names, "Inflight", "CronLate", "CronMissed")
	return qualified, names
}

func TestHTMLReport(t *testing.T) {
	nightly, err := workload.Builtin("nightly")
	require.NoError(t, err)
	cases := []struct {
		name       string
		scenario   *workload.Scenario
		duration   time.Duration
		strategies []string
		// verdicts are substrings each strategy's verdict must have.
		verdicts map[string][]string
		// bad are the strategies whose verdict shows a failure.
		bad          []string
		reservations bool
		forecasts    bool
	}{
		{
			name: "one hourly cron, every strategy", scenario: oneCron(t),
			verdicts: map[string][]string{
				StrategyStatic:     {"static: 0 missed cron runs", "the baseline"},
				StrategyIdleOnly:   {"idle-only: 5 missed cron runs", "% of static CPU"},
				StrategyTierscaler: {"tierscaler: 0 missed cron runs", "% of static CPU"},
			},
			bad:          []string{StrategyIdleOnly},
			reservations: true,
		},
		{
			name: "40 crons at 02:00 on a full cluster: a forecast before the fire", scenario: nightly, duration: 40 * time.Minute,
			verdicts: map[string][]string{
				StrategyStatic:     {"static: 0 missed cron runs", "no sync 429s", "async wait p95"},
				StrategyIdleOnly:   {"idle-only: ", "missed", "late cron runs"},
				StrategyTierscaler: {"tierscaler: 0 missed cron runs", "forecast alert", "ahead of a fire"},
			},
			bad:          []string{StrategyIdleOnly},
			reservations: true, forecasts: true,
		},
		{
			name: "static alone", scenario: oneCron(t), duration: time.Hour, strategies: []string{StrategyStatic},
			verdicts: map[string][]string{StrategyStatic: {"static: 0 missed cron runs", "on 1 node"}},
		},
	}
	qualified, fields := goNames()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(context.Background(), Config{Scenario: tc.scenario, Seed: 1, Duration: tc.duration, Strategies: tc.strategies})
			require.NoError(t, err)
			var buf bytes.Buffer
			require.NoError(t, rep.WriteHTML(&buf))
			page := parsePage(t, buf.Bytes())

			t.Run("a one-line verdict per strategy", func(t *testing.T) {
				lis := page.class("verdict")
				require.Len(t, lis, len(rep.Strategies))
				for i, s := range rep.Strategies {
					li := lis[i]
					text := li.content()
					assert.Equal(t, s.Strategy, li.attrs["data-strategy"])
					assert.Equal(t, s.Verdict(), text, "the page shows the verdict")
					assert.NotContains(t, text, "\n", "one line")
					for _, want := range tc.verdicts[s.Strategy] {
						assert.Contains(t, text, want)
					}
					bad := li.class("bad")
					if contains(tc.bad, s.Strategy) {
						require.NotEmpty(t, bad, "%s: the failure stands out", s.Strategy)
						assert.Contains(t, bad[0].content(), "missed")
					} else {
						assert.Empty(t, bad, "%s: nothing to flag", s.Strategy)
					}
				}
			})

			t.Run("no Go names", func(t *testing.T) {
				body := page.tag("body")[0]
				texts := []string{body.content()}
				for _, n := range body.all(func(*node) bool { return true }) {
					texts = append(texts, n.attrs["aria-label"], n.attrs["data-strategy"])
				}
				quoted := make([]string, len(fields))
				for i, f := range fields {
					quoted[i] = regexp.QuoteMeta(f)
				}
				field := regexp.MustCompile(`\b(` + strings.Join(quoted, "|") + `)\b`)
				for _, text := range texts {
					assert.False(t, qualified.MatchString(text), "a Go package name shows: %q", qualified.FindString(text))
					assert.False(t, field.MatchString(text), "a Go name shows: %q", field.FindString(text))
				}
			})

			t.Run("glossary keys are the table's labels", func(t *testing.T) {
				table := page.tag("table")[0]
				var labels []string
				for _, th := range table.tag("thead")[0].tag("th")[1:] {
					labels = append(labels, th.content())
				}
				var rows []string
				for _, tr := range table.tag("tbody")[0].tag("tr") {
					rows = append(rows, tr.tag("td")[0].content())
				}
				labels = append(rows, labels...)
				gl := page.class("glossary")
				require.Len(t, gl, 1)
				var keys []string
				for _, dt := range gl[0].tag("dt") {
					keys = append(keys, dt.content())
				}
				assert.Equal(t, labels, keys)
				for _, dd := range gl[0].tag("dd") {
					assert.NotEmpty(t, dd.content(), "every key is defined")
				}
			})

			t.Run("event-row labels do not overlap", func(t *testing.T) {
				for _, svg := range page.tag("svg") {
					labels := svg.class("row-label")
					if len(labels) == 0 {
						continue
					}
					assert.Len(t, labels, len(eventRows))
					ticks := svg.class("tick-y")
					require.NotEmpty(t, ticks)
					plotTop := attrFloat(t, ticks[len(ticks)-1], "y") - attrFloat(t, ticks[len(ticks)-1], "font-size")
					prev := -1e9
					for _, l := range labels {
						y, size, x := attrFloat(t, l, "y"), attrFloat(t, l, "font-size"), attrFloat(t, l, "x")
						assert.GreaterOrEqual(t, y-prev, size+1, "label %q is too close to the one above", l.content())
						assert.Equal(t, "end", l.attrs["text-anchor"])
						// About 0.6 em per character in a sans-serif font.
						assert.LessOrEqual(t, 0.6*size*float64(len(l.content())), x-4, "label %q runs out of the margin", l.content())
						assert.Less(t, y, plotTop, "label %q runs into the plot's top tick", l.content())
						prev = y
					}
				}
			})

			t.Run("reservations and forecast alerts on the timeline", func(t *testing.T) {
				titles := map[string]int{}
				for _, div := range page.class("charts") {
					for _, ti := range div.tag("title") {
						if strings.Contains(ti.content(), "pods held for upcoming cron fires") {
							titles[div.attrs["data-strategy"]+"/reservation"]++
						}
						if strings.Contains(ti.content(), "forecast alerts (cron at risk) raised") {
							titles[div.attrs["data-strategy"]+"/forecast"]++
							assert.Regexp(t, `fires at \d\d:\d\d \(raised .* ahead\)`, ti.content())
						}
					}
				}
				assert.Equal(t, tc.reservations, titles[StrategyTierscaler+"/reservation"] > 0, "tierscaler's reservations marked")
				assert.Equal(t, tc.forecasts, titles[StrategyTierscaler+"/forecast"] > 0, "tierscaler's forecasts marked")
				for _, s := range []string{StrategyStatic, StrategyIdleOnly} {
					assert.Zero(t, titles[s+"/reservation"]+titles[s+"/forecast"], "%s holds nothing ahead", s)
				}
				if ts := rep.Strategy(StrategyTierscaler); ts != nil {
					assert.Equal(t, tc.forecasts, ts.ForecastAlerts > 0)
					assert.Equal(t, tc.reservations, ts.Reservations > 0)
					assert.Equal(t, tc.reservations, strings.Contains(page.content(), "held for upcoming cron fires (reservations)"), "the legend")
				}
			})

			t.Run("one scale for the strategies on the scenario's nodes", func(t *testing.T) {
				cmp := page.all(func(n *node) bool {
					return n.name == "svg" && strings.HasPrefix(n.attrs["aria-label"], "Reserved CPU of every strategy")
				})
				assert.Equal(t, len(rep.Strategies) > 1, len(cmp) == 1, "the comparison chart")
				tops := map[string]string{}
				for _, div := range page.class("charts") {
					ticks := div.tag("svg")[1].class("tick-y")
					tops[div.attrs["data-strategy"]] = ticks[len(ticks)-1].content()
				}
				if len(rep.Strategies) == 3 {
					assert.Equal(t, tops[StrategyIdleOnly], tops[StrategyTierscaler], "idle-only and tierscaler share the CPU scale")
				}
			})
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestReservationsAreRecorded(t *testing.T) {
	rep := run(t, oneCron(t), StrategyTierscaler)
	ts := rep.Strategy(StrategyTierscaler)
	assert.Equal(t, ts.CronFires, ts.Reservations, "each of the 6 fires held a reservation, counted once")
	assert.Zero(t, ts.ForecastAlerts)
	var marks []Mark
	for _, m := range ts.Marks {
		if m.Kind == "reservation" {
			marks = append(marks, m)
		}
	}
	require.Len(t, marks, ts.CronFires)
	for _, m := range marks {
		assert.Equal(t, "hourly.openfaas-fn", m.Function)
		assert.Equal(t, "1 pod", m.Detail)
		assert.True(t, m.Fire.After(m.T), "held before the fire: %+v", m)
		assert.Zero(t, m.Fire.Minute(), "an hourly fire")
	}
	held := 0
	for _, p := range ts.Timeline.Points {
		if p.HeldPods > 0 {
			held++
			assert.Greater(t, p.HeldCPU, 0.0)
		}
	}
	assert.NotZero(t, held, "the timeline holds room for the fires")
	assert.Less(t, held, len(ts.Timeline.Points)/2, "only ahead of the fires")
}

func TestFmtSeconds(t *testing.T) {
	cases := []struct {
		in   float64
		want string
	}{
		{0, "0 s"}, {0.25, "0.25 s"}, {9.5, "9.5 s"}, {40, "40 s"}, {119, "119 s"}, {600, "10 min"}, {7200, "2.0 h"}, {12198, "3.4 h"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, fmtSeconds(tc.in), "%g", tc.in)
	}
}

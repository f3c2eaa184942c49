// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/tierscaler/tierscaler/policy"
)

// Colours of the charts: one per tier, the markers and the strategies.
const (
	colorSync     = "#1f77b4"
	colorCron     = "#ff7f0e"
	colorAsync    = "#2ca02c"
	colorPending  = "#d62728"
	colorCapacity = "#333333"
	colorReserved = "#6a51a3"
	colorHeld     = "#e6550d"
	colorEvict    = "#d62728"
	colorShort    = "#9467bd"
	colorForecast = "#bf8f00"
	colorMissed   = "#000000"
	color429      = "#e377c2"
)

// strategyColors are the strategies' lines in the comparison chart.
var strategyColors = map[string]string{
	StrategyStatic:     "#7f7f7f",
	StrategyIdleOnly:   "#d62728",
	StrategyTierscaler: "#1f77b4",
}

// WriteHTML writes a self-contained HTML page (inline CSS and SVG, no
// script, no external resource), well-formed XML as well as HTML:
//
//   - a one-line verdict per strategy;
//   - the comparison table;
//   - one chart of every strategy's reserved CPU on one scale;
//   - one panel per strategy: its pods by tier over time (stacked), the
//     pods held for upcoming cron fires and rows of event marks (missed
//     runs, forecast alerts, reservations, shortfalls, evictions, 429s);
//     its reserved CPU and memory, with the room held for cron fires,
//     against the cluster's allocatable;
//   - a glossary whose keys are the table's labels.
//
// The strategies that run on the scenario's nodes (all but static) share
// the scales of their pods, CPU and memory charts, fitted to them, so that
// they compare at a glance; static, on its own bigger cluster, has its
// own scales, and says so.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	e := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>tierscaler simulate: %s</title>\n", e(r.Scenario))
	b.WriteString(`<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; max-width: 1300px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin: 28px 0 4px; border-top: 1px solid #ccc; padding-top: 12px; }
p.sub { color: #555; margin-top: 0; }
ul.verdicts { list-style: none; padding: 0; margin: 12px 0; font-size: 16px; }
ul.verdicts li { margin: 4px 0; }
.bad { color: #b00020; font-weight: 600; }
table { border-collapse: collapse; font-size: 14px; margin: 12px 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
svg { background: #fff; }
svg text { font-family: inherit; }
.notes { font-size: 13px; color: #444; }
dt { font-weight: 600; margin-top: 6px; }
</style>
</head>
<body>
`)
	fmt.Fprintf(&b, "<h1>tierscaler simulate: %s</h1>\n", e(r.Scenario))
	fmt.Fprintf(&b, "<p class=\"sub\">%s<br/>%s to %s (%.3g days), seed %d; the same workload under each strategy. Cluster: %s of %s CPU and %s; %d sync, %d cron and %d async functions. Reconcile every %s, model step %s, rate window %s.</p>\n",
		e(r.Description), r.Start.Format("Mon 2006-01-02 15:04 MST"), r.End.Format("Mon 2006-01-02 15:04 MST"), r.Days, r.Seed,
		plural(r.Nodes, "node", "nodes"), e(r.NodeCPU), e(r.NodeMemory), r.Functions[policy.TierSync], r.Functions[policy.TierCron], r.Functions[policy.TierAsync], r.Interval, r.Step, r.Window)
	b.WriteString("<ul class=\"verdicts\">\n")
	for _, s := range r.Strategies {
		fmt.Fprintf(&b, "<li class=\"verdict\" data-strategy=\"%s\"><strong>%s</strong>: ", e(s.Strategy), e(s.Strategy))
		for i, p := range s.verdict() {
			if i > 0 {
				b.WriteString(", ")
			}
			if p.bad {
				fmt.Fprintf(&b, "<span class=\"bad\">%s</span>", e(p.text))
			} else {
				b.WriteString(e(p.text))
			}
		}
		b.WriteString("</li>\n")
	}
	b.WriteString("</ul>\n")
	writeTable(&b, r)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "<p class=\"notes\">Note: %s</p>\n", e(n))
	}

	shared := sharedScales(r)
	if len(r.Strategies) > 1 {
		comparisonChart(&b, r, shared.cpu)
	}
	for _, s := range r.Strategies {
		sc, note := shared, ""
		if s.Strategy == StrategyStatic {
			sc = scalesOf(s)
			if len(r.Strategies) > 1 {
				note = fmt.Sprintf(" Static ran on %s: its charts have their own scales.", plural(s.Nodes, "node", "nodes"))
			}
		}
		fmt.Fprintf(&b, "<h2>%s</h2>\n<p class=\"sub\">%s.%s</p>\n<div class=\"charts\" data-strategy=\"%s\">\n", e(s.Strategy), e(definitions[s.Strategy]), e(note), e(s.Strategy))
		podsChart(&b, r, s, sc.pods)
		capacityChart(&b, r, s, "Reserved CPU vs allocatable", "CPU (cores)", sc.cpu, s.AllocatableCPU,
			func(p TimelinePoint) float64 { return p.ReservedCPU }, func(p TimelinePoint) float64 { return p.HeldCPU })
		capacityChart(&b, r, s, "Reserved memory vs allocatable", "memory (GiB)", sc.mem, s.AllocatableMemoryGiB,
			func(p TimelinePoint) float64 { return p.ReservedMemoryGiB }, func(p TimelinePoint) float64 { return p.HeldMemoryGiB })
		b.WriteString("</div>\n")
	}
	b.WriteString("<h2>Glossary</h2>\n<dl class=\"notes glossary\">\n")
	for _, g := range r.glossary() {
		fmt.Fprintf(&b, "<dt>%s</dt><dd>%s</dd>\n", e(g[0]), e(g[1]))
	}
	b.WriteString("</dl>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// glossary is the table's labels, in its order (its rows, then its
// strategy columns), each with its definition.
func (r *Report) glossary() [][2]string {
	var out [][2]string
	for _, sr := range summaryRows {
		out = append(out, [2]string{sr.label, definitions[sr.key]})
	}
	for _, s := range r.Strategies {
		out = append(out, [2]string{s.Strategy, definitions[s.Strategy]})
	}
	return out
}

func writeTable(b *strings.Builder, r *Report) {
	e := html.EscapeString
	b.WriteString("<table>\n<thead><tr><th>figure</th>")
	for _, s := range r.Strategies {
		fmt.Fprintf(b, "<th>%s</th>", e(s.Strategy))
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	for _, sr := range summaryRows {
		fmt.Fprintf(b, "<tr><td>%s</td>", e(sr.label))
		for _, s := range r.Strategies {
			fmt.Fprintf(b, "<td>%s</td>", e(sr.value(s)))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n")
}

// scales are the top values of a panel's pods, CPU and memory axes.
type scales struct{ pods, cpu, mem float64 }

// scalesOf fits the scales to one strategy: its allocatable, and its
// bound pods, requests and held room at their highest.
func scalesOf(s *StrategyReport) scales {
	sc := scales{pods: 1, cpu: s.AllocatableCPU, mem: s.AllocatableMemoryGiB}
	for _, p := range s.Timeline.Points {
		sc.pods = math.Max(sc.pods, math.Max(p.Sync+p.Cron+p.Async+p.HeldPods, p.Pending))
		sc.cpu = math.Max(sc.cpu, p.ReservedCPU+p.HeldCPU)
		sc.mem = math.Max(sc.mem, p.ReservedMemoryGiB+p.HeldMemoryGiB)
	}
	sc.pods = niceMax(sc.pods * 1.05)
	sc.cpu = niceMax(sc.cpu * 1.05)
	sc.mem = niceMax(sc.mem * 1.05)
	return sc
}

// sharedScales fits the scales to the strategies that run on the
// scenario's nodes, every one but static (static alone if it ran alone).
func sharedScales(r *Report) scales {
	var sc scales
	n := 0
	for _, s := range r.Strategies {
		if s.Strategy == StrategyStatic && len(r.Strategies) > 1 {
			continue
		}
		o := scalesOf(s)
		sc = scales{math.Max(sc.pods, o.pods), math.Max(sc.cpu, o.cpu), math.Max(sc.mem, o.mem)}
		n++
	}
	if n == 0 {
		return scales{1, 1, 1}
	}
	return sc
}

// verdictPart is a clause of a strategy's verdict; bad ones are shown as
// such (work missed, late, refused or cut).
type verdictPart struct {
	text string
	bad  bool
}

// verdict is the strategy's one-line verdict: cron runs missed and late,
// cost against static, sync 429s, async wait p95, and what went wrong.
func (s *StrategyReport) verdict() []verdictPart {
	var out []verdictPart
	if s.CronFires > 0 {
		t := plural(s.CronMissed, "missed cron run", "missed cron runs")
		if s.CronLate > 0 {
			t = fmt.Sprintf("%d missed and %d late cron runs", s.CronMissed, s.CronLate)
		}
		out = append(out, verdictPart{t, s.CronMissed+s.CronLate > 0})
	}
	switch {
	case s.Strategy == StrategyStatic:
		out = append(out, verdictPart{text: fmt.Sprintf("the baseline: %.1f CPU-hours and %.1f GiB-hours on %s", s.ReservedCPUHours, s.ReservedMemoryGiBHours, plural(s.Nodes, "node", "nodes"))})
	case s.CPUPercentOfStatic != nil && s.MemoryPercentOfStatic != nil:
		out = append(out, verdictPart{text: fmt.Sprintf("%.1f%% of static CPU and %.1f%% of its memory", *s.CPUPercentOfStatic, *s.MemoryPercentOfStatic)})
	default:
		out = append(out, verdictPart{text: fmt.Sprintf("%.1f CPU-hours and %.1f GiB-hours", s.ReservedCPUHours, s.ReservedMemoryGiBHours)})
	}
	switch {
	case s.SyncRequests > 0 && s.Sync429Seconds == 0:
		out = append(out, verdictPart{text: "no sync 429s"})
	case s.SyncRequests > 0:
		out = append(out, verdictPart{"sync 429s for " + fmtSeconds(s.Sync429Seconds), true})
	}
	if s.AsyncJobs > 0 {
		out = append(out, verdictPart{text: "async wait p95 " + fmtSeconds(s.AsyncWaitP95)})
	}
	if s.PendingPodHours > 0 {
		out = append(out, verdictPart{text: fmt.Sprintf("%.3g pending pod-hours", s.PendingPodHours)})
	}
	if s.ForecastAlerts > 0 {
		out = append(out, verdictPart{text: plural(s.ForecastAlerts, "forecast alert", "forecast alerts") + " ahead of a fire"})
	}
	if s.ZeroedInFlight > 0 {
		out = append(out, verdictPart{fmt.Sprintf("%d zeroed with work in flight", s.ZeroedInFlight), true})
	}
	return out
}

// Verdict is the strategy's one-line verdict, as the HTML page shows it.
func (s *StrategyReport) Verdict() string {
	parts := s.verdict()
	texts := make([]string, len(parts))
	for i, p := range parts {
		texts[i] = p.text
	}
	return s.Strategy + ": " + strings.Join(texts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// fmtSeconds writes a duration given in seconds for people: seconds up to
// two minutes, then minutes up to two hours, then hours.
func fmtSeconds(v float64) string {
	switch {
	case v == 0:
		return "0 s"
	case v < 10:
		return fmt.Sprintf("%.2g s", v)
	case v < 120:
		return fmt.Sprintf("%.0f s", v)
	case v < 7200:
		return fmt.Sprintf("%.0f min", v/60)
	default:
		return fmt.Sprintf("%.1f h", v/3600)
	}
}

// frame is one chart's geometry: an SVG of width w whose plot area is
// [padL, w-padR] × [top, top+plotH], under a title and legends.
type frame struct {
	b          *strings.Builder
	w, padL    int
	top, plotH int
	t0, t1     time.Time
	ymax       float64
	bucketSecs float64
}

const (
	padR, padB = 16, 40
	// eventRowH is the height of a row of event marks; eventFont the size
	// of its label, smaller than the row so that labels cannot overlap.
	eventRowH = 14
	eventFont = 11
)

func (f *frame) plotW() int { return f.w - f.padL - padR }

func (f *frame) x(t time.Time) float64 {
	span := f.t1.Sub(f.t0).Seconds()
	if span <= 0 {
		return float64(f.padL)
	}
	return float64(f.padL) + float64(f.plotW())*t.Sub(f.t0).Seconds()/span
}

func (f *frame) y(v float64) float64 {
	if f.ymax <= 0 {
		return float64(f.top + f.plotH)
	}
	v = math.Min(v, f.ymax)
	return float64(f.top) + float64(f.plotH)*(1-v/f.ymax)
}

// begin opens an SVG with its title, axes, ticks and labels.
func (f *frame) begin(title, yLabel string) {
	b := f.b
	h := f.top + f.plotH + padB
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
		f.w, h, f.w, h, html.EscapeString(title))
	fmt.Fprintf(b, "<text x=\"%d\" y=\"16\" font-size=\"14\" font-weight=\"600\">%s</text>\n", f.padL, html.EscapeString(title))
	bottom, right := f.top+f.plotH, f.padL+f.plotW()
	step := niceStep(f.ymax, 5)
	for v := 0.0; v <= f.ymax+1e-9 && step > 0; v += step {
		y := f.y(v)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", f.padL, y, right, y)
		fmt.Fprintf(b, "<text class=\"tick-y\" x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n", f.padL-4, y+4, fmtTick(v))
	}
	for _, t := range timeTicks(f.t0, f.t1) {
		x := f.x(t)
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\"/>\n", x, bottom, x, bottom+4)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n", x, bottom+16, timeLabel(t, f.t1.Sub(f.t0)))
	}
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", f.padL, f.top, f.padL, bottom)
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", f.padL, bottom, right, bottom)
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">time (%s)</text>\n", f.padL+f.plotW()/2, bottom+32, f.t0.Location())
	mid := f.top + f.plotH/2
	fmt.Fprintf(b, "<text x=\"14\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">%s</text>\n",
		mid, mid, html.EscapeString(yLabel))
}

func (f *frame) end() { f.b.WriteString("</svg>\n") }

// legend writes swatches in rows at y, wrapping at the plot's width. A
// swatch is a filled square, or a dashed line for items whose style is
// "dash".
func (f *frame) legend(y float64, items ...legendItem) {
	x := float64(f.padL)
	for _, it := range items {
		w := 16 + 6.5*float64(len(it.name)) + 14
		if x+w > float64(f.w-padR) && x > float64(f.padL) {
			x, y = float64(f.padL), y+16
		}
		if it.dash {
			fmt.Fprintf(f.b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/>", x, y-4, x+12, y-4, it.color)
		} else {
			fmt.Fprintf(f.b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"10\" fill=\"%s\" fill-opacity=\"%.2g\"/>", x, y-9, it.color, it.opacity())
		}
		fmt.Fprintf(f.b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%s</text>\n", x+16, y, html.EscapeString(it.name))
		x += w
	}
}

type legendItem struct {
	name, color string
	dash        bool
	alpha       float64
}

func (it legendItem) opacity() float64 {
	if it.alpha == 0 {
		return 1
	}
	return it.alpha
}

// points renders the values at the buckets' midpoints as SVG points.
func (f *frame) points(pts []TimelinePoint, v func(p TimelinePoint) float64) []string {
	out := make([]string, len(pts))
	half := time.Duration(f.bucketSecs / 2 * 1e9)
	for i, p := range pts {
		out[i] = fmt.Sprintf("%.1f,%.1f", f.x(p.T.Add(half)), f.y(v(p)))
	}
	return out
}

// band fills the area between lower and upper.
func (f *frame) band(pts []TimelinePoint, lower, upper func(p TimelinePoint) float64, attrs string) {
	up := f.points(pts, upper)
	lo := f.points(pts, lower)
	for i, j := 0, len(lo)-1; i < j; i, j = i+1, j-1 {
		lo[i], lo[j] = lo[j], lo[i]
	}
	fmt.Fprintf(f.b, "<polygon points=\"%s %s\" %s/>\n", strings.Join(up, " "), strings.Join(lo, " "), attrs)
}

func zero(TimelinePoint) float64 { return 0 }

// eventRow is a row of marks above the pods chart: one mark per bucket
// with events, its count and the first events in a tooltip.
type eventRow struct {
	name, color string
	// n is the bucket's count, or amount (pods held, seconds of 429s).
	n func(p TimelinePoint) float64
	// shade: the mark's opacity follows n, relative to its largest.
	shade bool
	// unit says what n counts, for the tooltip.
	unit string
	// marks are the report's marks of the row, for the tooltip; spans
	// draws, for each, a light band from its time to its fire time.
	marks func(m Mark) bool
	spans bool
}

// eventRows are the pods chart's rows, most serious first.
var eventRows = []eventRow{
	{name: "missed cron runs", color: colorMissed, unit: "missed cron runs", n: func(p TimelinePoint) float64 { return float64(p.CronMissed) }},
	{name: "forecast alerts", color: colorForecast, unit: "forecast alerts (cron at risk) raised",
		n:     func(p TimelinePoint) float64 { return float64(p.Forecasts) },
		marks: func(m Mark) bool { return m.Kind == "shortfall" && m.Detail == string(policy.ShortfallCronAtRisk) }, spans: true},
	{name: "reservations", color: colorHeld, unit: "pods held for upcoming cron fires (mean)", shade: true,
		n:     func(p TimelinePoint) float64 { return p.HeldPods },
		marks: func(m Mark) bool { return m.Kind == "reservation" }},
	{name: "other shortfalls", color: colorShort, unit: "shortfall episodes",
		n:     func(p TimelinePoint) float64 { return float64(p.Shortfalls) },
		marks: func(m Mark) bool { return m.Kind == "shortfall" && m.Detail != string(policy.ShortfallCronAtRisk) }},
	{name: "evictions", color: colorEvict, unit: "evictions", n: func(p TimelinePoint) float64 { return float64(p.Evictions) },
		marks: func(m Mark) bool { return m.Kind == "eviction" }},
	{name: "sync 429s", color: color429, unit: "seconds of sync 429s", n: func(p TimelinePoint) float64 { return p.Sync429Seconds }},
}

const (
	wideW   = 1280
	narrowW = 636
	// wideL leaves room for the event rows' labels.
	wideL, narrowL = 118, 56
)

func podsChart(b *strings.Builder, r *Report, s *StrategyReport, ymax float64) {
	rowsTop := 50
	f := &frame{b: b, w: wideW, padL: wideL, top: rowsTop + len(eventRows)*eventRowH + 14, plotH: 210,
		t0: r.Start, t1: r.End, ymax: ymax, bucketSecs: s.Timeline.BucketSeconds}
	f.begin("Pods on nodes by tier (stacked), pods held for cron fires, and events", "pods")
	pts := s.Timeline.Points
	bound := func(p TimelinePoint) float64 { return p.Sync + p.Cron + p.Async }
	if len(pts) > 0 {
		lower := zero
		for _, l := range []struct {
			color string
			v     func(p TimelinePoint) float64
		}{
			{colorSync, func(p TimelinePoint) float64 { return p.Sync }},
			{colorCron, func(p TimelinePoint) float64 { return p.Sync + p.Cron }},
			{colorAsync, bound},
		} {
			f.band(pts, lower, l.v, fmt.Sprintf("fill=\"%s\" fill-opacity=\"0.8\" stroke=\"none\"", l.color))
			lower = l.v
		}
		if hasHeld(s) {
			f.band(pts, bound, func(p TimelinePoint) float64 { return bound(p) + p.HeldPods },
				fmt.Sprintf("fill=\"%s\" fill-opacity=\"0.35\" stroke=\"none\"", colorHeld))
		}
		if s.PendingPodHours > 0 {
			fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>\n",
				strings.Join(f.points(pts, func(p TimelinePoint) float64 { return p.Pending }), " "), colorPending)
		}
	}
	items := []legendItem{{name: "sync", color: colorSync}, {name: "cron", color: colorCron}, {name: "async", color: colorAsync}}
	if hasHeld(s) {
		items = append(items, legendItem{name: "held for upcoming cron fires (reservations)", color: colorHeld, alpha: 0.35})
	}
	if s.PendingPodHours > 0 {
		items = append(items, legendItem{name: "pending (no node)", color: colorPending, dash: true})
	}
	f.legend(34, items...)
	eventMarks(f, s, rowsTop)
	f.end()
}

// eventMarks draws the event rows from y top down, each labelled in the
// left margin.
func eventMarks(f *frame, s *StrategyReport, top int) {
	b := f.b
	pts := s.Timeline.Points
	bucket := time.Duration(f.bucketSecs * 1e9)
	for i, row := range eventRows {
		y := float64(top + i*eventRowH)
		fmt.Fprintf(b, "<text class=\"row-label\" x=\"%d\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"end\" fill=\"%s\">%s</text>\n",
			f.padL-6, y+eventFont, eventFont, row.color, html.EscapeString(row.name))
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", f.padL, y+eventRowH/2, f.padL+f.plotW(), y+eventRowH/2)
		var marks []Mark
		if row.marks != nil {
			for _, m := range s.Marks {
				if row.marks(m) {
					marks = append(marks, m)
				}
			}
		}
		if row.spans {
			for _, m := range marks {
				if m.Fire.After(m.T) {
					x0, x1 := f.x(m.T), f.x(m.Fire)
					fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\" fill-opacity=\"0.25\"/>\n",
						x0, y+3, math.Max(1, x1-x0), eventRowH-7, row.color)
				}
			}
		}
		peak := 0.0
		for _, p := range pts {
			peak = math.Max(peak, row.n(p))
		}
		j := 0
		for _, p := range pts {
			n := row.n(p)
			if n <= 0 {
				continue
			}
			end := p.T.Add(bucket)
			var in []Mark
			for ; j < len(marks) && marks[j].T.Before(end); j++ {
				if !marks[j].T.Before(p.T) {
					in = append(in, marks[j])
				}
			}
			opacity := 1.0
			if row.shade && peak > 0 {
				opacity = 0.25 + 0.75*n/peak
			}
			x := f.x(p.T)
			w := math.Max(1.5, f.x(end)-x)
			fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\" fill-opacity=\"%.2f\"><title>%s</title></rect>\n",
				x, y+1, w, eventRowH-2, row.color, opacity, html.EscapeString(markTitle(row, n, p.T, in)))
		}
	}
}

// markTitle is a mark's tooltip: its count, its time, and its first
// events.
func markTitle(row eventRow, n float64, t time.Time, in []Mark) string {
	s := fmt.Sprintf("%s %s at %s", fmtTick(round(n, 2)), row.unit, t.Format("2006-01-02 15:04"))
	for i, m := range in {
		if i == 3 {
			s += fmt.Sprintf("; and %d more", len(in)-3)
			break
		}
		s += "; " + m.Function
		if !m.Fire.IsZero() {
			s += fmt.Sprintf(" fires at %s", m.Fire.Format("15:04"))
			if m.Kind == "shortfall" {
				s += fmt.Sprintf(" (raised %s ahead)", fmtSeconds(m.Fire.Sub(m.T).Seconds()))
			}
		}
		if m.Kind != "shortfall" || m.Fire.IsZero() {
			if m.Detail != "" {
				s += " (" + m.Detail + ")"
			}
		}
	}
	return s
}

func hasHeld(s *StrategyReport) bool {
	for _, p := range s.Timeline.Points {
		if p.HeldPods > 0 || p.HeldCPU > 0 {
			return true
		}
	}
	return false
}

func capacityChart(b *strings.Builder, r *Report, s *StrategyReport, title, yLabel string, ymax, capacity float64, v, held func(p TimelinePoint) float64) {
	f := &frame{b: b, w: narrowW, padL: narrowL, top: 66, plotH: 170, t0: r.Start, t1: r.End, ymax: ymax, bucketSecs: s.Timeline.BucketSeconds}
	f.begin(title, yLabel)
	pts := s.Timeline.Points
	if len(pts) > 0 {
		f.band(pts, zero, v, fmt.Sprintf("fill=\"%s\" fill-opacity=\"0.5\" stroke=\"%s\" stroke-width=\"1\"", colorReserved, colorReserved))
		if hasHeld(s) {
			f.band(pts, v, func(p TimelinePoint) float64 { return v(p) + held(p) },
				fmt.Sprintf("fill=\"%s\" fill-opacity=\"0.35\" stroke=\"none\"", colorHeld))
		}
	}
	y := f.y(capacity)
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\n",
		f.padL, y, f.padL+f.plotW(), y, colorCapacity)
	items := []legendItem{{name: "reserved (requests of bound pods)", color: colorReserved, alpha: 0.5}}
	if hasHeld(s) {
		items = append(items, legendItem{name: "held for cron fires", color: colorHeld, alpha: 0.35})
	}
	items = append(items, legendItem{name: fmt.Sprintf("allocatable (%s)", plural(s.Nodes, "node", "nodes")), color: colorCapacity, dash: true})
	f.legend(34, items...)
	f.end()
}

// comparisonChart draws every strategy's reserved CPU on one scale, the
// shared one: a strategy above it (static, on its bigger cluster) is cut
// at the top and says so in the legend.
func comparisonChart(b *strings.Builder, r *Report, ymax float64) {
	bucket := 0.0
	if len(r.Strategies) > 0 {
		bucket = r.Strategies[0].Timeline.BucketSeconds
	}
	f := &frame{b: b, w: wideW, padL: wideL, top: 44, plotH: 200, t0: r.Start, t1: r.End, ymax: ymax, bucketSecs: bucket}
	f.begin("Reserved CPU of every strategy, on one scale", "CPU (cores)")
	var items []legendItem
	names := make([]string, 0, len(r.Strategies))
	for _, s := range r.Strategies {
		names = append(names, s.Strategy)
	}
	sort.SliceStable(names, func(i, j int) bool { return names[i] == StrategyStatic && names[j] != StrategyStatic })
	for _, name := range names {
		s := r.Strategy(name)
		color := strategyColors[name]
		f.bucketSecs = s.Timeline.BucketSeconds
		if len(s.Timeline.Points) > 0 {
			fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
				strings.Join(f.points(s.Timeline.Points, func(p TimelinePoint) float64 { return p.ReservedCPU }), " "), color)
		}
		label := fmt.Sprintf("%s (peak %.3g)", name, s.PeakReservedCPU)
		if s.PeakReservedCPU > ymax {
			label = fmt.Sprintf("%s (peak %.3g, cut at the top)", name, s.PeakReservedCPU)
		}
		items = append(items, legendItem{name: label, color: color})
	}
	alloc := 0.0
	for _, s := range r.Strategies {
		if s.Strategy != StrategyStatic {
			alloc = math.Max(alloc, s.AllocatableCPU)
		}
	}
	if alloc > 0 {
		y := f.y(alloc)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 3\"/>\n",
			f.padL, y, f.padL+f.plotW(), y, colorCapacity)
		items = append(items, legendItem{name: fmt.Sprintf("allocatable of the scenario's %s", plural(r.Nodes, "node", "nodes")), color: colorCapacity, dash: true})
	}
	f.legend(34, items...)
	f.end()
}

// niceStep is a 1, 2 or 5 × 10^k step giving about n ticks up to max.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// niceMax rounds max up to a whole number of nice steps.
func niceMax(max float64) float64 {
	if max <= 0 {
		return 1
	}
	s := niceStep(max, 5)
	return math.Ceil(max/s-1e-9) * s
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// timeTicks are round times between t0 and t1, at most about 8.
func timeTicks(t0, t1 time.Time) []time.Time {
	span := t1.Sub(t0)
	steps := []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 8 {
			step = s
			break
		}
	}
	var out []time.Time
	// Round up to a multiple of step in the report's zone (UTC offsets are
	// whole hours or halves, so minutes stay round).
	_, off := t0.Zone()
	first := t0.Add(time.Duration(off) * time.Second).Truncate(step).Add(-time.Duration(off) * time.Second)
	if first.Before(t0) {
		first = first.Add(step)
	}
	for t := first; !t.After(t1); t = t.Add(step) {
		out = append(out, t)
	}
	return out
}

func timeLabel(t time.Time, span time.Duration) string {
	switch {
	case span > 36*time.Hour && t.Hour() == 0 && t.Minute() == 0:
		return t.Format("Mon 2")
	default:
		return t.Format("15:04")
	}
}

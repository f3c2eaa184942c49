// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// Colours of the charts: one per tier, and the markers.
const (
	colorSync     = "#1f77b4"
	colorCron     = "#ff7f0e"
	colorAsync    = "#2ca02c"
	colorPending  = "#d62728"
	colorCapacity = "#333333"
	colorReserved = "#6a51a3"
	colorEvict    = "#d62728"
	colorShort    = "#9467bd"
	colorMissed   = "#000000"
	color429      = "#e377c2"
)

// WriteHTML writes a self-contained HTML page (inline CSS and SVG, no
// script, no external resource): the comparison table, then one panel per
// strategy with its pods by tier over time (stacked) and event markers,
// and its reserved CPU and memory against the cluster's allocatable. The
// CPU and memory axes are shared across panels, so that the panels compare
// at a glance; each pods chart has its own scale.
// The page is well-formed XML as well as HTML.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	e := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>tierscaler simulate: %s</title>\n", e(r.Scenario))
	b.WriteString(`<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin: 28px 0 4px; border-top: 1px solid #ccc; padding-top: 12px; }
p.sub { color: #555; margin-top: 0; }
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
	fmt.Fprintf(&b, "<p class=\"sub\">%s<br/>%s to %s (%.3g days), seed %d; the same workload under each strategy. Cluster: %d nodes of %s CPU and %s; %d sync, %d cron and %d async functions. Reconcile every %s, model step %s, rate window %s.</p>\n",
		e(r.Description), r.Start.Format("Mon 2006-01-02 15:04 MST"), r.End.Format("Mon 2006-01-02 15:04 MST"), r.Days, r.Seed,
		r.Nodes, e(r.NodeCPU), e(r.NodeMemory), r.Functions["sync"], r.Functions["cron"], r.Functions["async"], r.Interval, r.Step, r.Window)
	writeTable(&b, r)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "<p class=\"notes\">Note: %s</p>\n", e(n))
	}

	// The capacity charts share their scales, so that the panels compare
	// at a glance; the pods chart has its own, so that its dynamics show.
	var maxCPU, maxMem float64
	for _, s := range r.Strategies {
		maxCPU = math.Max(maxCPU, s.AllocatableCPU)
		maxMem = math.Max(maxMem, s.AllocatableMemoryGiB)
		for _, p := range s.Timeline.Points {
			maxCPU = math.Max(maxCPU, p.ReservedCPU)
			maxMem = math.Max(maxMem, p.ReservedMemoryGiB)
		}
	}
	for _, s := range r.Strategies {
		fmt.Fprintf(&b, "<h2>%s</h2>\n<p class=\"sub\">%s</p>\n<div class=\"charts\">\n", e(s.Strategy), e(definitions[s.Strategy]))
		maxPods := 1.0
		for _, p := range s.Timeline.Points {
			maxPods = math.Max(maxPods, math.Max(p.Sync+p.Cron+p.Async, p.Pending))
		}
		podsChart(&b, r, s, maxPods*1.05)
		capacityChart(&b, r, s, "Reserved CPU vs allocatable", "CPU (cores)", maxCPU, s.AllocatableCPU,
			func(p TimelinePoint) float64 { return p.ReservedCPU })
		capacityChart(&b, r, s, "Reserved memory vs allocatable", "memory (GiB)", maxMem, s.AllocatableMemoryGiB,
			func(p TimelinePoint) float64 { return p.ReservedMemoryGiB })
		b.WriteString("</div>\n")
	}
	b.WriteString("<h2>Definitions</h2>\n<dl class=\"notes\">\n")
	for _, k := range sortedKeys(r.Definitions) {
		fmt.Fprintf(&b, "<dt>%s</dt><dd>%s</dd>\n", e(k), e(r.Definitions[k]))
	}
	b.WriteString("</dl>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTable(b *strings.Builder, r *Report) {
	e := html.EscapeString
	b.WriteString("<table>\n<thead><tr><th>figure</th>")
	for _, s := range r.Strategies {
		fmt.Fprintf(b, "<th>%s</th>", e(s.Strategy))
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	row := func(label string, f func(s *StrategyReport) string) {
		fmt.Fprintf(b, "<tr><td>%s</td>", e(label))
		for _, s := range r.Strategies {
			fmt.Fprintf(b, "<td>%s</td>", e(f(s)))
		}
		b.WriteString("</tr>\n")
	}
	for _, sr := range summaryRows {
		row(sr.label, sr.value)
	}
	b.WriteString("</tbody>\n</table>\n")
}

// chart geometry.
const (
	chartW, chartH         = 420, 260
	padL, padR, padT, padB = 56, 12, 52, 42
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
	markRowH               = 7
)

type frame struct {
	b          *strings.Builder
	t0, t1     time.Time
	ymax       float64
	extraTop   float64
	bucketSecs float64
}

func (f *frame) x(t time.Time) float64 {
	span := f.t1.Sub(f.t0).Seconds()
	if span <= 0 {
		return padL
	}
	return padL + float64(plotW)*t.Sub(f.t0).Seconds()/span
}

func (f *frame) y(v float64) float64 {
	if f.ymax <= 0 {
		return padT + plotH
	}
	return padT + float64(plotH)*(1-v/f.ymax)
}

// begin opens an SVG with its title, axes, ticks and labels.
func (f *frame) begin(title, yLabel string, top float64) {
	b := f.b
	h := chartH + int(top)
	fmt.Fprintf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
		chartW, h, chartW, h, html.EscapeString(title))
	fmt.Fprintf(b, "<text x=\"%d\" y=\"16\" font-size=\"14\" font-weight=\"600\">%s</text>\n", padL, html.EscapeString(title))
	fmt.Fprintf(b, "<g transform=\"translate(0,%.0f)\">\n", top)
	// y grid and ticks
	step := niceStep(f.ymax, 5)
	for v := 0.0; v <= f.ymax+1e-9 && step > 0; v += step {
		y := f.y(v)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", padL, y, padL+plotW, y)
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n", padL-4, y+4, fmtTick(v))
	}
	// x ticks
	for _, t := range timeTicks(f.t0, f.t1) {
		x := f.x(t)
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\"/>\n", x, padT+plotH, x, padT+plotH+4)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n", x, padT+plotH+16, timeLabel(t, f.t1.Sub(f.t0)))
	}
	// axes
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", padL, padT, padL, padT+plotH)
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", padL, padT+plotH, padL+plotW, padT+plotH)
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">time (%s)</text>\n", padL+plotW/2, padT+plotH+32, f.t0.Location())
	fmt.Fprintf(b, "<text x=\"14\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">%s</text>\n",
		padT+plotH/2, padT+plotH/2, html.EscapeString(yLabel))
}

func (f *frame) end() { f.b.WriteString("</g>\n</svg>\n") }

// legend writes swatches in a row above the plot.
func (f *frame) legend(y float64, items ...[2]string) {
	x := float64(padL)
	for _, it := range items {
		fmt.Fprintf(f.b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/>", x, y-9, it[1])
		fmt.Fprintf(f.b, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%s</text>\n", x+13, y, html.EscapeString(it[0]))
		x += 13 + 6.2*float64(len(it[0])) + 12
	}
}

// path renders the points (bucket midpoints) of values as an SVG path.
func (f *frame) points(pts []TimelinePoint, v func(p TimelinePoint) float64) []string {
	out := make([]string, len(pts))
	half := time.Duration(f.bucketSecs / 2 * 1e9)
	for i, p := range pts {
		out[i] = fmt.Sprintf("%.1f,%.1f", f.x(p.T.Add(half)), f.y(v(p)))
	}
	return out
}

func podsChart(b *strings.Builder, r *Report, s *StrategyReport, ymax float64) {
	f := &frame{b: b, t0: r.Start, t1: r.End, ymax: niceMax(ymax), bucketSecs: s.Timeline.BucketSeconds}
	top := float64(4*markRowH + 8)
	f.begin("Pods on nodes by tier (stacked), and events", "pods", top)
	pts := s.Timeline.Points
	layers := []struct {
		name, color string
		v           func(p TimelinePoint) float64
	}{
		{"sync", colorSync, func(p TimelinePoint) float64 { return p.Sync }},
		{"cron", colorCron, func(p TimelinePoint) float64 { return p.Sync + p.Cron }},
		{"async", colorAsync, func(p TimelinePoint) float64 { return p.Sync + p.Cron + p.Async }},
	}
	if len(pts) > 0 {
		lower := func(TimelinePoint) float64 { return 0 }
		for _, l := range layers {
			up := f.points(pts, l.v)
			lo := f.points(pts, lower)
			for i, j := 0, len(lo)-1; i < j; i, j = i+1, j-1 {
				lo[i], lo[j] = lo[j], lo[i]
			}
			fmt.Fprintf(b, "<polygon points=\"%s %s\" fill=\"%s\" fill-opacity=\"0.8\" stroke=\"none\"/>\n", strings.Join(up, " "), strings.Join(lo, " "), l.color)
			lower = l.v
		}
		if s.PendingPodHours > 0 {
			fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>\n",
				strings.Join(f.points(pts, func(p TimelinePoint) float64 { return p.Pending }), " "), colorPending)
		}
	}
	// Marker rows above the plot, labelled in the left margin: one mark
	// per bucket with events, its count in a tooltip.
	rows := []struct {
		name, color string
		n           func(p TimelinePoint) float64
	}{
		{"evictions", colorEvict, func(p TimelinePoint) float64 { return float64(p.Evictions) }},
		{"shortfalls", colorShort, func(p TimelinePoint) float64 { return float64(p.Shortfalls) }},
		{"missed cron", colorMissed, func(p TimelinePoint) float64 { return float64(p.CronMissed) }},
		{"sync 429s", color429, func(p TimelinePoint) float64 { return p.Sync429Seconds }},
	}
	for i, row := range rows {
		y := float64(padT) - top + 4 + float64(i*markRowH)
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"8\" text-anchor=\"end\" fill=\"%s\">%s</text>\n", padL-3, y+markRowH-2, row.color, row.name)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", padL, y+float64(markRowH)/2, padL+plotW, y+float64(markRowH)/2)
		for _, p := range pts {
			if n := row.n(p); n > 0 {
				x := f.x(p.T)
				w := math.Max(1.5, f.x(p.T.Add(time.Duration(f.bucketSecs*1e9)))-x)
				fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s: %s at %s</title></rect>\n",
					x, y, w, markRowH-1, row.color, row.name, fmtTick(n), p.T.Format(time.RFC3339))
			}
		}
	}
	f.legend(float64(padT)-top-10, [2]string{"sync", colorSync}, [2]string{"cron", colorCron}, [2]string{"async", colorAsync}, [2]string{"pending (no node)", colorPending})
	f.end()
}

func capacityChart(b *strings.Builder, r *Report, s *StrategyReport, title, yLabel string, ymax, capacity float64, v func(p TimelinePoint) float64) {
	f := &frame{b: b, t0: r.Start, t1: r.End, ymax: niceMax(ymax * 1.05), bucketSecs: s.Timeline.BucketSeconds}
	f.begin(title, yLabel, 0)
	pts := s.Timeline.Points
	if len(pts) > 0 {
		up := f.points(pts, v)
		lo := f.points(pts, func(TimelinePoint) float64 { return 0 })
		for i, j := 0, len(lo)-1; i < j; i, j = i+1, j-1 {
			lo[i], lo[j] = lo[j], lo[i]
		}
		fmt.Fprintf(b, "<polygon points=\"%s %s\" fill=\"%s\" fill-opacity=\"0.5\" stroke=\"%s\" stroke-width=\"1\"/>\n",
			strings.Join(up, " "), strings.Join(lo, " "), colorReserved, colorReserved)
	}
	y := f.y(capacity)
	fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/>\n",
		padL, y, padL+plotW, y, colorCapacity)
	f.legend(float64(padT)-8, [2]string{"reserved (requests of bound pods)", colorReserved}, [2]string{fmt.Sprintf("allocatable (%d nodes)", s.Nodes), colorCapacity})
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

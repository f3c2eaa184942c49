// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"math"
	"slices"
	"time"
)

// WaitBuckets are the upper bounds, in seconds, of the AsyncWait histogram.
var WaitBuckets = []float64{0, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Histogram is a cumulative histogram of durations, shaped as Prometheus'.
type Histogram struct {
	// Bounds are the bucket upper bounds in seconds, ascending.
	Bounds []float64
	// Counts[i] is the number of observations <= Bounds[i] (cumulative).
	Counts []uint64
	// Count and Sum (seconds) are over every observation.
	Count uint64
	Sum   float64
	// Max is the largest observation.
	Max time.Duration
}

func newHistogram() Histogram {
	return Histogram{Bounds: slices.Clone(WaitBuckets), Counts: make([]uint64, len(WaitBuckets))}
}

// observe records n observations of d.
func (h *Histogram) observe(d time.Duration, n int) {
	if n <= 0 {
		return
	}
	s := d.Seconds()
	for i, b := range h.Bounds {
		if s <= b {
			h.Counts[i] += uint64(n)
		}
	}
	h.Count += uint64(n)
	h.Sum += s * float64(n)
	if d > h.Max {
		h.Max = d
	}
}

func (h Histogram) clone() Histogram {
	h.Bounds = slices.Clone(h.Bounds)
	h.Counts = slices.Clone(h.Counts)
	return h
}

// Mean is the mean observation (0 with none).
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return time.Duration(math.Round(h.Sum / float64(h.Count) * 1e9))
}

// Buckets returns the cumulative counts keyed by upper bound, as
// client_golang's constant histograms take them.
func (h Histogram) Buckets() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		m[b] = h.Counts[i]
	}
	return m
}

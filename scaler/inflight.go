// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tierscaler/tierscaler/policy"
)

// Counter resets: unknown is not zero.
//
// The gateway's invocation counters reset on every restart, and it creates
// a function's _total series only at its first completion. A run that goes
// on through a gateway restart then disappears from the in-flight figure:
// it reads 0 (or nothing) although no completion was seen. Left alone, the
// controller would take the run for finished and zero the function after the
// grace period.
//
// So when a function's in-flight figure falls from above 0 to 0, or becomes
// absent, and its invocation rate has shown no completion for a while (two
// minutes plus two intervals: the queries' windows are a minute, and the
// completion rate can fall back to 0 a scrape before the in-flight peak
// does), the controller
// reads its in-flight work as unknown: the function is neither scaled down,
// zeroed nor evicted. That lasts until a completion is seen (an invocation
// rate above 0: the gateway counts again, and what it shows is complete
// from then on), or in-flight work is seen again, or a bound passes since
// in-flight work was last seen:
//
//	bound = max(the tier's idle period, 2 × the function's learned mean duration)
//
// with the tier's idle period cron.gracePeriod (cron), async.idleAfter
// (async), sync.scaleDownWindow (sync), and, when no duration was ever
// learned, at least Options.InflightResetHold (default 1h), at most 24h.
// The learned duration is the last mean duration the duration query
// answered (it is empty right after a restart, so the last one seen
// before).

// maxInflightResetHold caps the bound.
const maxInflightResetHold = 24 * time.Hour

// inflightMemo is what the controller remembers of a function's in-flight
// figure across cycles.
type inflightMemo struct {
	uid string
	// positive is when in-flight work was last seen (zero: not since the
	// last completion).
	positive time.Time
	// duration is the last mean duration the duration query answered.
	duration time.Duration
	// completed is when a completion was last seen (an invocation rate
	// above 0).
	completed time.Time
	// reset is when a reset was first suspected (zero: none).
	reset time.Time
}

// readInflight applies the counter-reset rule above to f, whose metrics
// were just read, and returns f's in-flight metric. Called with c.mu held,
// only when the cycle's metrics are available.
func (c *Controller) readInflight(f *policy.Function, d *appsv1.Deployment, now time.Time) policy.Metric {
	key := f.Key()
	m := c.inflight[key]
	if m.uid != string(d.UID) {
		m = inflightMemo{uid: string(d.UID)}
	}
	defer func() { c.inflight[key] = m }()
	if f.Duration.Known && f.Duration.Value > 0 {
		m.duration = time.Duration(f.Duration.Value * float64(time.Second))
	}
	if f.Invocations.Known && f.Invocations.Value > 0 {
		m.completed = now
	}
	switch {
	case f.Inflight.Known && f.Inflight.Value > 0:
		m.positive, m.reset = now, time.Time{}
		return f.Inflight
	case m.positive.IsZero():
		return f.Inflight
	case !m.completed.IsZero() && now.Sub(m.completed) <= c.completionWindow():
		// A completion was seen: the run finished, or the gateway counts
		// again.
		m.positive, m.reset = time.Time{}, time.Time{}
		return f.Inflight
	}
	bound := c.inflightBound(f, m.duration)
	log := c.o.Log.WithValues("function", key, "lastInFlight", m.positive, "bound", bound)
	if now.Sub(m.positive) >= bound {
		log.Info("no completion seen within the bound since in-flight work was last seen: reading in-flight as the query answers again")
		m.positive, m.reset = time.Time{}, time.Time{}
		return f.Inflight
	}
	if m.reset.IsZero() {
		m.reset = now
		c.o.Metrics.InflightResets.Inc()
		log.Info("in-flight work fell to 0 or vanished with no completion seen: a gateway restart reset its counters? Holding in-flight as unknown (no scale-down, zeroing or eviction) until a completion is seen or the bound passes",
			"inflight", f.Inflight.String())
	}
	return policy.Unknown
}

// completionWindow is how recent a completion must be to explain a fall
// of the in-flight figure to 0.
func (c *Controller) completionWindow() time.Duration {
	return 2*time.Minute + 2*c.o.Policy.Interval.Duration
}

// inflightBound is how long after in-flight work was last seen a suspected
// counter reset holds in-flight as unknown.
func (c *Controller) inflightBound(f *policy.Function, learned time.Duration) time.Duration {
	t := c.o.Policy.Tiers
	idle := t.Sync.ScaleDownWindow.Duration
	switch f.Tier {
	case policy.TierCron:
		idle = t.Cron.GracePeriod.Duration
	case policy.TierAsync:
		idle = t.Async.IdleAfter.Duration
	}
	if learned <= 0 {
		return min(max(idle, c.o.InflightResetHold), maxInflightResetHold)
	}
	return min(max(idle, 2*learned), maxInflightResetHold)
}

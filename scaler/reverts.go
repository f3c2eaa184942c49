// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tierscaler/tierscaler/policy"
)

// Replica changes by other actors, and when they are provider reverts.
//
// After each scale, tierscaler remembers what it set (an expectation) and
// watches the Deployment for RevertWatch. A change of the replicas by
// another actor is one of:
//
//   - a redeploy: faas-netes sets spec.replicas to com.openfaas.scale.min and
//     replaces the annotations of the Deployment and its pod template on
//     every faas-cli deploy. tierscaler recognises it by a change of the pod
//     template or of the Deployment's annotations (tierscaler's own left
//     out) since its scale. Not a revert. (A redeploy that changes nothing
//     but the replicas cannot be told from a revert; it counts as one
//     reversal, which never holds a function by itself.)
//   - a change away from the old count (past what tierscaler set, or to the
//     other side of where it was): another actor's own decision. Not a
//     revert; tierscaler decides again next cycle.
//   - a change up toward the old count with demand (work in flight, queued
//     or invoked, or any of it unknown): the gateway's scale from zero, or
//     an activation. Not a revert. Prometheus may show the demand a scrape
//     or two after the replicas change, so such a change without visible
//     demand waits RevertSettle, holding the function, before it counts.
//   - a change back toward the old count otherwise (OpenFaaS CE's provider
//     puts 0 back to 1 and caps at 5): a reversal. tierscaler tries again;
//     RevertsBeforeHold reversals within RevertBackoff make a provider
//     revert: a Warning event ProviderReverted,
//     tierscaler_provider_reverts_total{function} and a log line, and the
//     function is held for RevertBackoff, doubling on each repeat up to 8
//     times. tierscaler never fights another actor in a loop.
//
// A function with work is never held for a reverted scale-down: work lifts
// such a hold (the provider does not fight a scale-up), which applies again
// once the function is idle. A reverted scale-up (the CE cap) holds the
// function where the provider keeps it.

// expectation is what tierscaler set on a Deployment.
type expectation struct {
	uid        string
	from, to   int32
	generation int64
	// spec is specPrint of the Deployment when tierscaler scaled it.
	spec uint64
	at   time.Time
	// settling is when a change back up toward from with no visible demand
	// was first seen (zero: none).
	settling time.Time
}

// reversal counts the changes back toward the old count of one Deployment.
type reversal struct {
	uid  string
	n    int
	last time.Time
}

// holdKind is why a function is held.
type holdKind int

const (
	// holdError: a scale failed as forbidden or not found.
	holdError holdKind = iota
	// holdRevertedDown: a scale-down was reverted; work lifts the hold.
	holdRevertedDown
	// holdRevertedUp: a scale-up was reverted (capped).
	holdRevertedUp
)

// hold keeps a function where it is until a time. It belongs to one
// Deployment (its UID): a Deployment deleted and created again under the
// same name is not held.
type hold struct {
	uid     string
	kind    holdKind
	until   time.Time
	repeats int
	why     string
}

// specPrint fingerprints what a redeploy replaces: the pod template and the
// Deployment's annotations, tierscaler's own left out.
func specPrint(d *appsv1.Deployment) uint64 {
	h := fnv.New64a()
	b, _ := json.Marshal(&d.Spec.Template)
	_, _ = h.Write(b)
	ann := make(map[string]string, len(d.Annotations))
	for k, v := range d.Annotations {
		if !strings.HasPrefix(k, "tierscaler.io/") {
			ann[k] = v
		}
	}
	b, _ = json.Marshal(ann) // sorted keys
	_, _ = h.Write(b)
	return h.Sum64()
}

// hasWork: known work in flight, queued or invoked.
func hasWork(f *policy.Function) bool {
	return (f.Inflight.Known && f.Inflight.Value > 0) || (f.Pending.Known && f.Pending.Value > 0) ||
		(f.Invocations.Known && f.Invocations.Value > 0)
}

// mayHaveWork: known work, or work tierscaler cannot rule out. Unknown is
// not zero.
func mayHaveWork(f *policy.Function) bool {
	return hasWork(f) || !f.Inflight.Known || !f.Invocations.Known || (f.Tier == policy.TierAsync && !f.Pending.Known)
}

// detectReverts judges the replica changes other actors made to the
// functions tierscaler recently scaled (see the comment at the top of this
// file). Called with c.mu held, after the functions and their metrics are
// gathered.
func (c *Controller) detectReverts(in *inputs, now time.Time) {
	if len(c.expect) == 0 {
		return
	}
	fns := make(map[string]*policy.Function, len(c.expect))
	for i := range in.snap.Functions {
		f := &in.snap.Functions[i]
		if _, ok := c.expect[f.Key()]; ok {
			fns[f.Key()] = f
		}
	}
	for key, e := range c.expect {
		d, f := in.deps[key], fns[key]
		if d == nil || f == nil || string(d.UID) != e.uid {
			delete(c.expect, key) // gone, or another Deployment under the name
			continue
		}
		expired := now.Sub(e.at) > c.o.RevertWatch
		if d.Generation <= e.generation || d.Spec.Replicas == nil || *d.Spec.Replicas == e.to {
			// Not visible yet, or as tierscaler set it.
			if expired {
				delete(c.expect, key)
				if d.Spec.Replicas != nil && *d.Spec.Replicas == e.to {
					// The scale stuck: the reversals are over.
					delete(c.reversals, key)
					if h, ok := c.holds[key]; ok && h.kind != holdError && now.After(h.until.Add(c.o.RevertWatch)) {
						delete(c.holds, key)
					}
				}
			}
			continue
		}
		got := *d.Spec.Replicas
		log := c.o.Log.WithValues("function", key, "from", e.from, "setTo", e.to, "now", got)
		lo, hi := min(e.from, e.to), max(e.from, e.to)
		switch {
		case specPrint(d) != e.spec:
			log.Info("replicas changed by a redeploy (the pod template or annotations changed): not a revert")
		case got < lo || got > hi:
			log.Info("another actor scaled the function past what tierscaler set: not a revert; deciding again")
		case got > e.to && mayHaveWork(f):
			log.Info("another actor scaled the function up with demand (a scale from zero): not a revert")
		case got > e.to && e.settling.IsZero():
			// Wait for Prometheus to show the demand that may have caused it.
			e.settling = now
			c.expect[key] = e
			continue
		case got > e.to && now.Sub(e.settling) < c.o.RevertSettle:
			continue
		default:
			c.reverted(key, d, e, got, now)
		}
		delete(c.expect, key)
	}
}

// reverted records a change back toward the old count; the
// RevertsBeforeHold-th within RevertBackoff holds the function.
func (c *Controller) reverted(key string, d *appsv1.Deployment, e expectation, got int32, now time.Time) {
	r := c.reversals[key]
	if r.uid != e.uid || now.Sub(r.last) > c.o.RevertBackoff {
		r = reversal{uid: e.uid}
	}
	r.n++
	r.last = now
	c.reversals[key] = r
	log := c.o.Log.WithValues("function", key, "from", e.from, "setTo", e.to, "now", got, "reversals", r.n)
	if r.n < c.o.RevertsBeforeHold {
		log.Info("another actor changed the replicas back toward what they were; trying again before holding")
		return
	}
	delete(c.reversals, key)
	h := c.holds[key]
	if h.uid != e.uid || h.kind == holdError {
		h = hold{uid: e.uid}
	}
	backoff := c.o.RevertBackoff << min(h.repeats, 3)
	h.kind, h.until, h.repeats = holdRevertedDown, now.Add(backoff), h.repeats+1
	if e.to > e.from {
		h.kind = holdRevertedUp
	}
	h.why = fmt.Sprintf("set to %d by tierscaler, changed back to %d by another actor %d times", e.to, got, r.n)
	c.holds[key] = h
	c.o.Metrics.ProviderReverts.WithLabelValues(key).Inc()
	c.revertSeries[key] = true
	log.Info("another actor reverts tierscaler's scale; leaving the function alone", "backoff", backoff,
		"hint", "OpenFaaS CE puts 0 back to 1 and caps at 5; see the chart README")
	c.o.Recorder.Eventf(d, nil, corev1.EventTypeWarning, EventProviderReverted, actionDetect,
		"tierscaler set replicas to %d, another actor changed them back to %d, %d times (OpenFaaS CE puts 0 back to 1 and caps at 5); not retrying for %s",
		e.to, got, r.n, backoff)
}

// held reports whether f is held this cycle: by a hold of its Deployment
// that has not expired (work lifts a hold for a reverted scale-down), or
// while a change back up toward the old count settles. Called with c.mu
// held.
func (c *Controller) held(f *policy.Function, d *appsv1.Deployment, now time.Time) bool {
	if e, ok := c.expect[f.Key()]; ok && !e.settling.IsZero() {
		return true
	}
	h, ok := c.holds[f.Key()]
	if !ok {
		return false
	}
	if h.uid != "" && d != nil && h.uid != string(d.UID) {
		delete(c.holds, f.Key()) // another Deployment under the same name
		return false
	}
	if !now.Before(h.until) {
		return false
	}
	return h.kind != holdRevertedDown || !hasWork(f)
}

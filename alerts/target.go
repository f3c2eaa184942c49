// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/tierscaler/tierscaler/scaler"
)

// maxResponse bounds what is read of an Alertmanager answer: an error
// message, or the list of active alerts.
const (
	maxErrorBody = 4 << 10
	maxListBody  = 32 << 20
)

// target is one Alertmanager: its queue, its delivery goroutine and the
// state of its startup clean-up.
type target struct {
	n    *Notifier
	base string
	log  logr.Logger
	wake chan struct{}

	mu        sync.Mutex
	queue     map[string]queued
	seq       uint64
	cleaned   bool
	dropped   int       // drops not logged yet
	droppedAt time.Time // last drop log
}

// dropLogInterval bounds the logs about a full queue.
const dropLogInterval = time.Minute

// queued is the newest version of one alert waiting to be posted.
type queued struct {
	alert PostableAlert
	seq   uint64
}

// errPermanent marks an Alertmanager answer that retrying cannot change.
var errPermanent = errors.New("permanent failure")

// permanentError is an error errors.Is reports as errPermanent.
type permanentError struct{ error }

func (e permanentError) Unwrap() error        { return e.error }
func (e permanentError) Is(target error) bool { return target == errPermanent }

func permanent(err error) error { return permanentError{err} }

func (t *target) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// enqueue queues alerts, each replacing a queued older version of itself; a
// new alert that finds the queue full is dropped.
func (t *target) enqueue(alerts []PostableAlert) {
	dropped, logDrops := 0, 0
	t.mu.Lock()
	for _, a := range alerts {
		k := a.Key()
		if _, ok := t.queue[k]; !ok && len(t.queue) >= t.n.o.MaxQueue {
			dropped++
			continue
		}
		t.seq++
		t.queue[k] = queued{alert: a, seq: t.seq}
	}
	if dropped > 0 {
		t.dropped += dropped
		if time.Since(t.droppedAt) >= dropLogInterval {
			logDrops, t.dropped, t.droppedAt = t.dropped, 0, time.Now()
		}
	}
	t.mu.Unlock()
	if dropped > 0 {
		t.n.o.Metrics.AlertsDropped.Add(float64(dropped))
	}
	if logDrops > 0 {
		t.log.Error(fmt.Errorf("queue full (%d alerts)", t.n.o.MaxQueue), "dropped alerts for an unreachable Alertmanager (logged at most once a minute)", "dropped", logDrops)
	}
	t.poke()
}

func (t *target) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue)
}

// peek returns up to limit queued alerts, oldest version first, and the
// sequence numbers that ack needs.
func (t *target) peek(limit int) ([]PostableAlert, map[string]uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	entries := make([]queued, 0, len(t.queue))
	for _, q := range t.queue {
		entries = append(entries, q)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].seq < entries[j].seq })
	if len(entries) > limit {
		entries = entries[:limit]
	}
	batch := make([]PostableAlert, len(entries))
	seqs := make(map[string]uint64, len(entries))
	for i, q := range entries {
		batch[i] = q.alert
		seqs[q.alert.Key()] = q.seq
	}
	return batch, seqs
}

// ack removes the posted alerts that no newer version replaced meanwhile.
func (t *target) ack(seqs map[string]uint64) {
	t.mu.Lock()
	for k, s := range seqs {
		if q, ok := t.queue[k]; ok && q.seq == s {
			delete(t.queue, k)
		}
	}
	t.mu.Unlock()
	t.n.updateQueued()
}

// run delivers until ctx ends, backing off while the Alertmanager fails.
func (t *target) run(ctx context.Context) {
	var wait time.Duration
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
			}
		}
		if t.step(ctx) {
			if wait > 0 {
				t.log.Info("Alertmanager reachable again")
			}
			wait = 0
		} else if ctx.Err() == nil {
			wait = t.n.backoff(wait)
		}
	}
}

// step runs the startup clean-up once the first Sync has happened, then
// posts everything queued. It reports false when the Alertmanager failed.
func (t *target) step(ctx context.Context) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error(fmt.Errorf("panic: %v", r), "alert delivery panicked; retrying", "stack", string(debug.Stack()))
			ok = false
		}
	}()
	t.mu.Lock()
	cleaned := t.cleaned
	t.mu.Unlock()
	cleanupFailed := false
	if !cleaned && t.n.hasSynced() {
		err := t.cleanup(ctx)
		switch {
		case err == nil:
			cleaned = true
		case errors.Is(err, errPermanent):
			cleaned = true
			t.log.Error(err, "cannot list the active alerts; stale alerts of an earlier run will only expire by their endsAt")
		default:
			// Post what is queued all the same; the clean-up is retried
			// after the backoff.
			cleanupFailed = true
			if ctx.Err() == nil {
				t.log.Error(err, "cannot list the active alerts to resolve stale ones; retrying")
			}
		}
		t.mu.Lock()
		t.cleaned = cleaned
		t.mu.Unlock()
	}
	for {
		batch, seqs := t.peek(t.n.o.MaxBatch)
		if len(batch) == 0 {
			return !cleanupFailed
		}
		err := t.post(ctx, batch)
		result := SendSuccess
		switch {
		case err == nil:
		case errors.Is(err, errPermanent):
			result = SendRejected
		default:
			result = SendError
		}
		for _, a := range batch {
			t.n.o.Metrics.AlertsSent.WithLabelValues(a.Labels[LabelAlertName], result).Inc()
		}
		switch result {
		case SendSuccess:
			t.ack(seqs)
			t.log.V(1).Info("posted alerts", "count", len(batch))
		case SendRejected:
			t.ack(seqs)
			t.log.Error(err, "Alertmanager rejected alerts; dropped them", "count", len(batch))
		default:
			if ctx.Err() == nil {
				t.log.Error(err, "cannot post alerts; keeping them queued", "queued", t.pending())
			}
			return false
		}
	}
}

// post sends one batch. A 4xx answer is errPermanent.
func (t *target) post(ctx context.Context, batch []PostableAlert) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return permanent(fmt.Errorf("encode %d alerts: %w", len(batch), err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return permanent(fmt.Errorf("post alerts: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tierscaler/"+scaler.Version)
	resp, err := t.n.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post alerts to %s: %w", t.base, err)
	}
	defer resp.Body.Close()
	return statusError("post alerts to "+t.base, resp)
}

// cleanup lists the Alertmanager's active tierscaler alerts and resolves
// those that the notifier does not report as firing: an earlier run left
// them. A firing alert that the Alertmanager knows with an earlier startsAt
// keeps that startsAt.
func (t *target) cleanup(ctx context.Context) error {
	q := url.Values{}
	q.Add("filter", matcher(LabelComponent, "=", ComponentName))
	q.Add("filter", matcher(LabelAlertName, "=~", strings.Join(AlertNames, "|")))
	names := make([]string, 0, len(t.n.o.ExtraLabels))
	for k := range t.n.o.ExtraLabels {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		q.Add("filter", matcher(k, "=", t.n.o.ExtraLabels[k]))
	}
	q.Set("active", "true")
	u := t.base + "/api/v2/alerts?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return permanent(fmt.Errorf("list alerts: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tierscaler/"+scaler.Version)
	resp, err := t.n.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("list alerts of %s: %w", t.base, err)
	}
	defer resp.Body.Close()
	if err := statusError("list alerts of "+t.base, resp); err != nil {
		return err
	}
	var got []GettableAlert
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&got); err != nil {
		return fmt.Errorf("list alerts of %s: decode the answer: %w", t.base, err)
	}

	now := t.n.o.Now()
	var stale []PostableAlert
	t.n.mu.Lock()
	for _, a := range got {
		if len(a.Labels) == 0 {
			continue
		}
		k := labelsKey(a.Labels)
		if cur, ok := t.n.active[k]; ok {
			if !a.StartsAt.IsZero() && a.StartsAt.Before(cur.startsAt) {
				cur.startsAt = a.StartsAt
			}
			continue
		}
		r := PostableAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: now}
		if r.StartsAt.IsZero() || r.StartsAt.After(now) {
			r.StartsAt = now
		}
		stale = append(stale, r)
	}
	// Queued under n.mu, like every other version of an alert (see
	// Notifier.enqueueLocked).
	if len(stale) > 0 {
		t.enqueue(stale)
	}
	t.n.mu.Unlock()
	for _, r := range stale {
		t.log.Info("resolving an alert an earlier run left firing", alertKV(r)...)
	}
	if len(stale) > 0 {
		t.n.updateQueued()
	}
	return nil
}

// statusError turns a non-2xx answer into an error holding the start of its
// body; a 4xx is errPermanent.
func statusError(what string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	err := fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		err = fmt.Errorf("%w (check the credentials of alertmanager.httpConfig)", err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanent(err)
	}
	return err
}

// matcher renders an Alertmanager filter matcher with a quoted value.
func matcher(name, op, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return name + op + `"` + r.Replace(value) + `"`
}

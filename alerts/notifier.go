// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// Defaults of NotifierOptions.
const (
	DefaultEndsAtFactor = 3
	DefaultMaxQueue     = 1000
	DefaultMaxBatch     = 500
	DefaultPostTimeout  = 10 * time.Second
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
)

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// URLs of the Alertmanagers; every alert goes to each of them (an HA
	// set deduplicates). Required.
	URLs []string
	// ResendInterval is how often a firing alert is re-posted. Default
	// policy.DefaultResendInterval (1m).
	ResendInterval time.Duration
	// EndsAtFactor k: a firing alert is posted with endsAt = now +
	// k×ResendInterval, so that Alertmanager resolves it by itself when
	// tierscaler stops re-posting it. At least 2; default 3.
	EndsAtFactor int
	// MaxSyncAge is how long after the last Sync the notifier keeps
	// re-posting the alerts that Sync reported; after it they expire on
	// their own. Default EndsAtFactor×ResendInterval. Set it above the
	// reconcile interval.
	MaxSyncAge time.Duration
	// ExtraLabels are added to every alert (for example cluster="prod") and
	// to the startup clean-up's filter, so that several tierscalers can share
	// an Alertmanager. They cannot replace the alerts' own labels.
	ExtraLabels map[string]string
	// GeneratorURL, if set, is every alert's generatorURL (for example the
	// controller's /status page).
	GeneratorURL string
	// MaxQueue bounds the alerts waiting for each Alertmanager (default
	// 1000). A newer version of a queued alert replaces the older one; a new
	// alert that finds the queue full is dropped and counted in
	// tierscaler_alerts_dropped_total.
	MaxQueue int
	// MaxBatch is the most alerts of one POST (default 500).
	MaxBatch int
	// Client posts the alerts; default an http.Client with a
	// DefaultPostTimeout timeout.
	Client *http.Client
	// MinBackoff and MaxBackoff bound the wait between the attempts to reach
	// an Alertmanager that fails (defaults 500ms and 30s; it doubles).
	MinBackoff, MaxBackoff time.Duration
	// Metrics default to a fresh, unregistered set.
	Metrics *Metrics
	Log     logr.Logger
	// Now is the notifier's clock for re-posting between Syncs; it should be
	// the controller's (default time.Now).
	Now func() time.Time
}

// Notifier turns the controller's shortfalls into Alertmanager alerts. It
// implements scaler.ShortfallSink and is a controller-runtime runnable
// that runs only on the leader.
//
// Sync records the wanted state and queues the posts it implies without
// touching the network; one goroutine per Alertmanager delivers them, with
// its own bounded queue and backoff, so an unreachable Alertmanager never
// slows the controller down.
type Notifier struct {
	o       NotifierOptions
	log     logr.Logger
	targets []*target

	mu       sync.Mutex
	active   map[string]*tracked
	lastSync time.Time
	synced   chan struct{}
	syncOnce sync.Once
}

var (
	_ scaler.ShortfallSink           = (*Notifier)(nil)
	_ manager.Runnable               = (*Notifier)(nil)
	_ manager.LeaderElectionRunnable = (*Notifier)(nil)
)

// tracked is a firing alert.
type tracked struct {
	alert      PostableAlert
	startsAt   time.Time
	lastPosted time.Time
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// NewNotifier checks the options and returns a notifier; Start delivers.
func NewNotifier(o NotifierOptions) (*Notifier, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("alerts: the notifier needs at least one Alertmanager URL")
	}
	if o.ResendInterval == 0 {
		o.ResendInterval = policy.DefaultResendInterval
	}
	if o.ResendInterval < 0 {
		return nil, fmt.Errorf("alerts: resend interval %s is negative", o.ResendInterval)
	}
	if o.EndsAtFactor == 0 {
		o.EndsAtFactor = DefaultEndsAtFactor
	}
	if o.EndsAtFactor < 2 {
		return nil, fmt.Errorf("alerts: endsAt factor %d is below 2: a firing alert would expire before its next re-post", o.EndsAtFactor)
	}
	if o.MaxSyncAge <= 0 {
		o.MaxSyncAge = time.Duration(o.EndsAtFactor) * o.ResendInterval
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = DefaultMaxQueue
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: DefaultPostTimeout}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.GeneratorURL != "" {
		if u, err := url.Parse(o.GeneratorURL); err != nil || !u.IsAbs() {
			return nil, fmt.Errorf("alerts: generator URL %q is not an absolute URL", o.GeneratorURL)
		}
	}
	for k, v := range o.ExtraLabels {
		switch {
		case !labelName.MatchString(k):
			return nil, fmt.Errorf("alerts: extra label name %q is not a valid Prometheus label name", k)
		case k == LabelFunctionName:
			return nil, fmt.Errorf("alerts: extra label %q is refused: OpenFaaS CE's gateway scales any function an alert names in it", k)
		case reservedLabels[k]:
			return nil, fmt.Errorf("alerts: extra label %q would replace one of tierscaler's own labels", k)
		case v == "":
			return nil, fmt.Errorf("alerts: extra label %q has an empty value (Alertmanager drops empty labels)", k)
		}
	}
	n := &Notifier{o: o, log: o.Log.WithName("alerts"), active: map[string]*tracked{}, synced: make(chan struct{})}
	seen := map[string]bool{}
	for _, raw := range o.URLs {
		base, err := baseURL(raw)
		if err != nil {
			return nil, err
		}
		if seen[base] {
			return nil, fmt.Errorf("alerts: Alertmanager URL %q is listed twice", raw)
		}
		seen[base] = true
		n.targets = append(n.targets, &target{n: n, base: base, log: n.log.WithValues("alertmanager", base),
			wake: make(chan struct{}, 1), queue: map[string]queued{}})
	}
	return n, nil
}

func baseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("alerts: Alertmanager URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("alerts: Alertmanager URL %q: want http:// or https:// and a host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("alerts: Alertmanager URL %q: must not carry a query or a fragment", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// NeedLeaderElection is true: only the leader notifies.
func (n *Notifier) NeedLeaderElection() bool { return true }

// Metrics returns the notifier's metrics.
func (n *Notifier) Metrics() *Metrics { return n.o.Metrics }

// Sync records the shortfalls active now: a new one fires (startsAt now),
// one that is no longer reported is resolved (posted once with endsAt now),
// and a firing one is re-posted every ResendInterval. It only queues posts
// and never blocks on the network.
func (n *Notifier) Sync(_ context.Context, now time.Time, shortfalls []policy.Shortfall) {
	defer n.recoverPanic("sync")
	var out []PostableAlert
	firing := map[string]int{}
	n.mu.Lock()
	seen := make(map[string]bool, len(shortfalls))
	for _, sf := range shortfalls {
		a := Alert(sf, n.o.ExtraLabels)
		a.GeneratorURL = n.o.GeneratorURL
		k := a.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		firing[a.Labels[LabelAlertName]]++
		t, ok := n.active[k]
		if !ok {
			t = &tracked{startsAt: now}
			n.active[k] = t
			n.log.Info("alert firing", alertKV(a)...)
		}
		t.alert = a
	}
	for k, t := range n.active {
		if seen[k] {
			continue
		}
		delete(n.active, k)
		r := t.alert
		r.StartsAt, r.EndsAt = t.startsAt, now
		if r.EndsAt.Before(r.StartsAt) {
			r.EndsAt = r.StartsAt
		}
		n.log.Info("alert resolved", alertKV(r)...)
		out = append(out, r)
	}
	out = append(out, n.dueLocked(now)...)
	n.lastSync = now
	n.enqueueLocked(out)
	n.mu.Unlock()
	n.updateQueued()

	for _, name := range AlertNames {
		n.o.Metrics.AlertsFiring.WithLabelValues(name).Set(float64(firing[name]))
	}
	n.syncOnce.Do(func() {
		close(n.synced)
		for _, t := range n.targets {
			t.poke()
		}
	})
}

// dueLocked returns the firing alerts to post at now (never posted, or last
// posted at least ResendInterval ago) and marks them posted. Called with
// n.mu held.
func (n *Notifier) dueLocked(now time.Time) []PostableAlert {
	var out []PostableAlert
	for _, t := range n.active {
		if !t.lastPosted.IsZero() && now.Sub(t.lastPosted) < n.o.ResendInterval {
			continue
		}
		a := t.alert
		a.StartsAt = t.startsAt
		a.EndsAt = now.Add(time.Duration(n.o.EndsAtFactor) * n.o.ResendInterval)
		t.lastPosted = now
		out = append(out, a)
	}
	return out
}

// resend re-posts the firing alerts that are due, between Syncs, as long as
// the last Sync is recent.
func (n *Notifier) resend(now time.Time) {
	defer n.recoverPanic("resend")
	n.mu.Lock()
	if n.lastSync.IsZero() || now.Sub(n.lastSync) > n.o.MaxSyncAge {
		n.mu.Unlock()
		return
	}
	n.enqueueLocked(n.dueLocked(now))
	n.mu.Unlock()
	n.updateQueued()
}

// enqueueLocked queues alerts for every Alertmanager. Called with n.mu held:
// the versions of one alert are then queued in the order they were made,
// so that a re-post computed before a resolution can never replace it in a
// queue (the alert would stay firing until its endsAt).
func (n *Notifier) enqueueLocked(alerts []PostableAlert) {
	if len(alerts) == 0 {
		return
	}
	for _, t := range n.targets {
		t.enqueue(alerts)
	}
}

func (n *Notifier) updateQueued() {
	n.o.Metrics.AlertsQueued.Set(float64(n.Pending()))
}

// Pending is the number of alerts waiting to be posted, summed over the
// Alertmanagers.
func (n *Notifier) Pending() int {
	total := 0
	for _, t := range n.targets {
		total += t.pending()
	}
	return total
}

// Firing returns the alerts firing now, sorted by key, with the startsAt
// and endsAt of their last post.
func (n *Notifier) Firing() []PostableAlert {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]PostableAlert, 0, len(n.active))
	for _, t := range n.active {
		a := t.alert
		a.StartsAt = t.startsAt
		if !t.lastPosted.IsZero() {
			a.EndsAt = t.lastPosted.Add(time.Duration(n.o.EndsAtFactor) * n.o.ResendInterval)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Start delivers until ctx ends: one goroutine per Alertmanager, and a
// ticker that re-posts firing alerts between Syncs. It never fails; on
// return the queued alerts are abandoned (they expire by their endsAt, and
// the next leader re-posts what is still true).
func (n *Notifier) Start(ctx context.Context) error {
	urls := make([]string, len(n.targets))
	for i, t := range n.targets {
		urls[i] = t.base
	}
	n.log.Info("notifying Alertmanager", "urls", urls, "resendInterval", n.o.ResendInterval,
		"endsAfter", time.Duration(n.o.EndsAtFactor)*n.o.ResendInterval, "maxQueue", n.o.MaxQueue)
	var wg sync.WaitGroup
	for _, t := range n.targets {
		wg.Go(func() { t.run(ctx) })
	}
	tick := min(max(n.o.ResendInterval/4, 10*time.Millisecond), 15*time.Second)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-ticker.C:
			n.resend(n.o.Now())
		}
	}
}

func (n *Notifier) hasSynced() bool {
	select {
	case <-n.synced:
		return true
	default:
		return false
	}
}

func (n *Notifier) recoverPanic(where string) {
	if r := recover(); r != nil {
		n.log.Error(fmt.Errorf("panic: %v", r), "alert notifier panicked; carrying on", "in", where, "stack", string(debug.Stack()))
	}
}

func alertKV(a PostableAlert) []any {
	kv := []any{"alertname", a.Labels[LabelAlertName], "reason", a.Labels[LabelReason], "severity", a.Labels[LabelSeverity]}
	if fn := a.Labels[LabelFunction]; fn != "" {
		kv = append(kv, "function", fn)
	}
	return kv
}

// backoff returns the wait after a failure that followed a wait of prev:
// doubled, bounded, with up to 10% jitter.
func (n *Notifier) backoff(prev time.Duration) time.Duration {
	d := min(max(prev*2, n.o.MinBackoff), n.o.MaxBackoff)
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// ParseLabels reads "name=value,name=value" (the --alert-labels flag) into
// a label set; an empty string is none. Names must be Prometheus label
// names and values must not be empty.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok:
			return nil, fmt.Errorf("label %q: want name=value", pair)
		case !labelName.MatchString(k):
			return nil, fmt.Errorf("label %q: %q is not a valid label name", pair, k)
		case v == "":
			return nil, fmt.Errorf("label %q: the value is empty", pair)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

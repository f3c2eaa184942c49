// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
)

// drain returns what is queued for the first Alertmanager and empties the
// queue, as a successful post would.
func drain(n *Notifier) []PostableAlert {
	t := n.targets[0]
	batch, seqs := t.peek(1 << 30)
	t.ack(seqs)
	return batch
}

func byFunction(as []PostableAlert) map[string]PostableAlert {
	out := map[string]PostableAlert{}
	for _, a := range as {
		out[a.Labels[LabelFunction]+"/"+a.Labels[LabelAlertName]] = a
	}
	return out
}

// settles waits for the notifier to reach a state. A fake Alertmanager
// records a post while it answers it: the notifier acks the batch and counts
// it only once it has read the answer, a moment later. Asserting the
// notifier's queue or counters right after the fake saw a post races with
// that (TestNotifierOutageThenRecovery failed 2 runs in 100 that way).
func settles(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond, what)
}

func TestNotifierLifecycle(t *testing.T) {
	const resend = time.Minute
	n := newTestNotifier(t, NotifierOptions{URLs: []string{"http://am.invalid:9093"}, ResendInterval: resend})
	ctx := context.Background()
	a, b := capacity("a", policy.TierSync), capacity("b", policy.TierAsync)

	type step struct {
		name   string
		at     time.Duration
		report []policy.Shortfall
		// want maps function/alertname to the startsAt and endsAt posted,
		// as offsets from t0; absent keys must not be posted.
		want map[string][2]time.Duration
	}
	steps := []step{
		{"a fires", 0, []policy.Shortfall{a}, map[string][2]time.Duration{
			"a.openfaas-fn/" + AlertCapacityShortfall: {0, 3 * resend}}},
		{"nothing is due 15s later", 15 * time.Second, []policy.Shortfall{a}, nil},
		{"b fires; a is not due yet", 30 * time.Second, []policy.Shortfall{a, b}, map[string][2]time.Duration{
			"b.openfaas-fn/" + AlertCapacityShortfall: {30 * time.Second, 30*time.Second + 3*resend}}},
		{"a is re-posted before its endsAt with a stable startsAt", 60 * time.Second, []policy.Shortfall{b, a}, map[string][2]time.Duration{
			"a.openfaas-fn/" + AlertCapacityShortfall: {0, 60*time.Second + 3*resend}}},
		{"a clears: resolved once with endsAt now", 75 * time.Second, []policy.Shortfall{b}, map[string][2]time.Duration{
			"a.openfaas-fn/" + AlertCapacityShortfall: {0, 75 * time.Second}}},
		{"b is re-posted", 90 * time.Second, []policy.Shortfall{b, b}, map[string][2]time.Duration{
			"b.openfaas-fn/" + AlertCapacityShortfall: {30 * time.Second, 90*time.Second + 3*resend}}},
		{"a fires again with a new startsAt", 100 * time.Second, []policy.Shortfall{a, b}, map[string][2]time.Duration{
			"a.openfaas-fn/" + AlertCapacityShortfall: {100 * time.Second, 100*time.Second + 3*resend}}},
		{"everything clears", 120 * time.Second, nil, map[string][2]time.Duration{
			"a.openfaas-fn/" + AlertCapacityShortfall: {100 * time.Second, 120 * time.Second},
			"b.openfaas-fn/" + AlertCapacityShortfall: {30 * time.Second, 120 * time.Second}}},
		{"nothing more", 200 * time.Second, nil, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			now := t0.Add(s.at)
			n.Sync(ctx, now, s.report)
			got := map[string][2]time.Duration{}
			for k, p := range byFunction(drain(n)) {
				got[k] = [2]time.Duration{p.StartsAt.Sub(t0), p.EndsAt.Sub(t0)}
				if p.EndsAt.After(now) {
					assert.Equal(t, now.Add(3*resend), p.EndsAt, "a firing alert ends k×resend from now")
				} else {
					assert.False(t, p.EndsAt.After(now), "a resolved alert's endsAt is not in the future")
				}
			}
			if s.want == nil {
				s.want = map[string][2]time.Duration{}
			}
			if d := cmp.Diff(s.want, got); d != "" {
				t.Errorf("posted (-want +got):\n%s", d)
			}
		})
	}
}

func TestNotifierResendBetweenSyncs(t *testing.T) {
	const resend = time.Minute
	n := newTestNotifier(t, NotifierOptions{URLs: []string{"http://am.invalid"}, ResendInterval: resend, EndsAtFactor: 2, MaxSyncAge: 5 * time.Minute})
	n.Sync(context.Background(), t0, []policy.Shortfall{metricsDown()})
	require.Len(t, drain(n), 1)

	tests := []struct {
		name string
		at   time.Duration
		want int
	}{
		{"not due yet", 30 * time.Second, 0},
		{"due after the resend interval", 61 * time.Second, 1},
		{"not due again right after", 90 * time.Second, 0},
		{"due again", 2*time.Minute + time.Second, 1},
		{"the last Sync is too old: left to expire", 5*time.Minute + time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.resend(t0.Add(tt.at))
			got := drain(n)
			require.Len(t, got, tt.want)
			for _, a := range got {
				assert.Equal(t, t0, a.StartsAt)
				assert.Equal(t, t0.Add(tt.at+2*resend), a.EndsAt)
			}
		})
	}
}

func TestNotifierDeliversAndResolves(t *testing.T) {
	am := newFakeAM(t)
	clk := &clock{now: t0}
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL + "/"}, ResendInterval: time.Hour, Now: clk.Now,
		ExtraLabels: map[string]string{"cluster": "test"}, GeneratorURL: "http://tierscaler:8080/status"})
	start(t, n)
	ctx := context.Background()

	n.Sync(ctx, t0, []policy.Shortfall{capacity("a", policy.TierSync), metricsDown()})
	require.Eventually(t, func() bool { return len(am.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	got := byFunction(am.received())
	fa := got["a.openfaas-fn/"+AlertCapacityShortfall]
	assert.Equal(t, map[string]string{"alertname": AlertCapacityShortfall, "component": "tierscaler", "service": "a.openfaas-fn", "severity": "critical",
		"function": "a.openfaas-fn", "namespace": "openfaas-fn", "tier": "sync", "reason": "insufficient-capacity", "cluster": "test"}, fa.Labels)
	assert.Equal(t, "http://tierscaler:8080/status", fa.GeneratorURL)
	assert.True(t, fa.StartsAt.Equal(t0), "startsAt %v", fa.StartsAt)
	assert.True(t, fa.EndsAt.Equal(t0.Add(3*time.Hour)), "endsAt %v", fa.EndsAt)
	assert.Equal(t, TierClusterWide, got["/"+AlertMetricsUnavailable].Labels[LabelTier])
	assert.Equal(t, 1.0, testutil.ToFloat64(n.Metrics().AlertsFiring.WithLabelValues(AlertCapacityShortfall)))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.Metrics().AlertsFiring.WithLabelValues(AlertMetricsUnavailable)))

	n.Sync(ctx, t0.Add(time.Minute), []policy.Shortfall{metricsDown()})
	require.Eventually(t, func() bool { return len(am.received()) == 3 }, 5*time.Second, 5*time.Millisecond)
	resolved := am.received()[2]
	assert.Equal(t, "a.openfaas-fn", resolved.Labels[LabelFunction])
	assert.True(t, resolved.EndsAt.Equal(t0.Add(time.Minute)), "endsAt %v", resolved.EndsAt)
	assert.Equal(t, 0.0, testutil.ToFloat64(n.Metrics().AlertsFiring.WithLabelValues(AlertCapacityShortfall)))
	// The fake Alertmanager records a post before the notifier has its
	// answer: the notifier's own counters and queue follow a moment later.
	settles(t, "two capacity alerts counted as sent", func() bool {
		return counterValue(t, n.Metrics(), AlertCapacityShortfall, SendSuccess) == 2
	})
	settles(t, "nothing pending", func() bool { return n.Pending() == 0 })
}

func TestNotifierSyncNeverBlocks(t *testing.T) {
	am := newFakeAM(t)
	am.set(func(f *fakeAM) { f.hang = make(chan struct{}) })
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL}, ResendInterval: time.Millisecond,
		Client: &http.Client{Timeout: time.Minute}})
	start(t, n)
	begin := time.Now()
	for i := range 1000 {
		n.Sync(context.Background(), t0.Add(time.Duration(i)*time.Second), []policy.Shortfall{capacity("a", policy.TierSync), metricsDown()})
	}
	// A hung Alertmanager must not slow Sync down: 1000 calls take far less
	// than one post's timeout.
	assert.Less(t, time.Since(begin), 2*time.Second)
	assert.Equal(t, 2, n.Pending(), "newer versions replace queued ones")
}

func TestNotifierBoundedQueue(t *testing.T) {
	n := newTestNotifier(t, NotifierOptions{URLs: []string{"http://am-1.invalid", "http://am-2.invalid"}, MaxQueue: 3})
	fns := []policy.Shortfall{capacity("a", policy.TierSync), capacity("b", policy.TierSync), capacity("c", policy.TierSync),
		capacity("d", policy.TierSync), capacity("e", policy.TierSync)}

	n.Sync(context.Background(), t0, fns)
	assert.Equal(t, 6, n.Pending(), "3 per Alertmanager")
	assert.Equal(t, 4.0, testutil.ToFloat64(n.Metrics().AlertsDropped), "2 per Alertmanager")
	assert.Equal(t, 6.0, testutil.ToFloat64(n.Metrics().AlertsQueued))

	// Re-posting the queued alerts replaces them without dropping more; a
	// resolution replaces the queued firing version.
	n.Sync(context.Background(), t0.Add(2*time.Minute), fns[1:3])
	assert.Equal(t, 6, n.Pending())
	q := n.targets[0].queue
	for k, e := range q {
		if e.alert.Labels[LabelFunction] == "a.openfaas-fn" {
			assert.True(t, e.alert.Resolved(t0.Add(2*time.Minute)), "a is queued resolved: %s", k)
		}
	}
	// Dropped: d and e never got in (2 per Alertmanager on the first Sync);
	// their resolutions find the queues full too.
	assert.Equal(t, 8.0, testutil.ToFloat64(n.Metrics().AlertsDropped))
}

func TestNotifierOutageThenRecovery(t *testing.T) {
	am1, am2 := newFakeAM(t), newFakeAM(t)
	am2.set(func(f *fakeAM) { f.down = true })
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am1.srv.URL, am2.srv.URL}, ResendInterval: time.Hour})
	start(t, n)

	n.Sync(context.Background(), t0, []policy.Shortfall{capacity("a", policy.TierSync)})
	require.Eventually(t, func() bool { return len(am1.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	// The healthy Alertmanager is served; the broken one keeps its queue.
	require.Eventually(t, func() bool { return counterValue(t, n.Metrics(), AlertCapacityShortfall, SendError) >= 2 },
		5*time.Second, 5*time.Millisecond, "retried with backoff")
	settles(t, "only the broken Alertmanager's alert is pending", func() bool { return n.Pending() == 1 })
	assert.Empty(t, am2.received())

	n.Sync(context.Background(), t0.Add(time.Second), []policy.Shortfall{capacity("a", policy.TierSync), capacity("b", policy.TierAsync)})
	require.Eventually(t, func() bool { return len(am1.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	settles(t, "the broken Alertmanager's two alerts are pending", func() bool { return n.Pending() == 2 })

	am2.set(func(f *fakeAM) { f.down = false })
	require.Eventually(t, func() bool { return len(am2.received()) == 2 }, 5*time.Second, 5*time.Millisecond)
	settles(t, "nothing pending", func() bool { return n.Pending() == 0 })
	names := []string{}
	for _, a := range am2.received() {
		names = append(names, a.Labels[LabelFunction])
	}
	assert.ElementsMatch(t, []string{"a.openfaas-fn", "b.openfaas-fn"}, names)
}

func TestNotifierRejectedIsNotRetried(t *testing.T) {
	am := newFakeAM(t)
	am.set(func(f *fakeAM) { f.status = http.StatusBadRequest })
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL}})
	start(t, n)
	n.Sync(context.Background(), t0, []policy.Shortfall{metricsDown()})
	require.Eventually(t, func() bool { return counterValue(t, n.Metrics(), AlertMetricsUnavailable, SendRejected) == 1 },
		5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 0, n.Pending())
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 1.0, counterValue(t, n.Metrics(), AlertMetricsUnavailable, SendRejected))
}

func TestNotifierBatches(t *testing.T) {
	am := newFakeAM(t)
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL}, MaxBatch: 2})
	start(t, n)
	var fns []policy.Shortfall
	for _, f := range []string{"a", "b", "c", "d", "e"} {
		fns = append(fns, capacity(f, policy.TierCron))
	}
	n.Sync(context.Background(), t0, fns)
	require.Eventually(t, func() bool { return len(am.received()) == 5 }, 5*time.Second, 5*time.Millisecond)
	am.mu.Lock()
	defer am.mu.Unlock()
	for _, b := range am.posts {
		assert.LessOrEqual(t, len(b), 2)
	}
}

func TestNotifierStartupCleanup(t *testing.T) {
	am := newFakeAM(t)
	earlier := t0.Add(-time.Hour)
	stale := GettableAlert{Labels: Alert(capacity("gone", policy.TierSync), nil).Labels, StartsAt: earlier,
		Annotations: map[string]string{"summary": "old"}}
	current := GettableAlert{Labels: Alert(capacity("still", policy.TierSync), nil).Labels, StartsAt: earlier}
	am.set(func(f *fakeAM) { f.active = []GettableAlert{stale, current} })
	clk := &clock{now: t0}
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL}, Now: clk.Now, ResendInterval: 50 * time.Millisecond,
		MaxSyncAge: time.Hour})
	start(t, n)

	time.Sleep(20 * time.Millisecond)
	am.mu.Lock()
	assert.Empty(t, am.listed, "the clean-up waits for the first Sync")
	am.mu.Unlock()

	n.Sync(context.Background(), t0, []policy.Shortfall{capacity("still", policy.TierSync)})
	require.Eventually(t, func() bool {
		got := byFunction(am.received())
		_, ok := got["gone.openfaas-fn/"+AlertCapacityShortfall]
		return ok
	}, 5*time.Second, 5*time.Millisecond)

	am.mu.Lock()
	require.Len(t, am.listed, 1)
	assert.ElementsMatch(t, []string{`component="tierscaler"`,
		`alertname=~"TierscalerCapacityShortfall|TierscalerPrewarmMissed|TierscalerActivationTimeout|TierscalerMetricsUnavailable|TierscalerCronAtRisk"`},
		am.listed[0]["filter"])
	assert.Equal(t, "true", am.listed[0].Get("active"))
	am.mu.Unlock()

	got := byFunction(am.received())
	gone := got["gone.openfaas-fn/"+AlertCapacityShortfall]
	assert.Equal(t, stale.Labels, gone.Labels)
	assert.True(t, gone.StartsAt.Equal(earlier))
	assert.True(t, gone.Resolved(t0), "the stale alert is resolved: endsAt %v", gone.EndsAt)

	// The alert still firing keeps the startsAt the Alertmanager knew.
	clk.Set(t0.Add(time.Second))
	require.Eventually(t, func() bool {
		for _, a := range am.received() {
			if a.Labels[LabelFunction] == "still.openfaas-fn" && a.StartsAt.Equal(earlier) {
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, earlier, n.Firing()[0].StartsAt)
}

func TestNotifierCleanupRetriesWhileDown(t *testing.T) {
	am := newFakeAM(t)
	am.set(func(f *fakeAM) {
		f.down = true
		f.active = []GettableAlert{{Labels: Alert(metricsDown(), nil).Labels, StartsAt: t0}}
	})
	clk := &clock{now: t0.Add(time.Minute)}
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL}, Now: clk.Now})
	start(t, n)
	n.Sync(context.Background(), t0.Add(time.Minute), nil)
	time.Sleep(30 * time.Millisecond)
	am.set(func(f *fakeAM) { f.down = false })
	require.Eventually(t, func() bool { return len(am.received()) == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, am.received()[0].Resolved(t0.Add(time.Minute)))
}

func TestNewNotifierErrors(t *testing.T) {
	tests := []struct {
		name string
		o    NotifierOptions
		want string
	}{
		{"no URL", NotifierOptions{}, "at least one Alertmanager URL"},
		{"bad scheme", NotifierOptions{URLs: []string{"ftp://am"}}, "want http:// or https://"},
		{"no host", NotifierOptions{URLs: []string{"http://"}}, "want http:// or https://"},
		{"query", NotifierOptions{URLs: []string{"http://am?x=1"}}, "query"},
		{"twice", NotifierOptions{URLs: []string{"http://am", "http://am/"}}, "listed twice"},
		{"negative resend", NotifierOptions{URLs: []string{"http://am"}, ResendInterval: -time.Second}, "negative"},
		{"factor 1", NotifierOptions{URLs: []string{"http://am"}, EndsAtFactor: 1}, "below 2"},
		{"bad label name", NotifierOptions{URLs: []string{"http://am"}, ExtraLabels: map[string]string{"a-b": "x"}}, "not a valid Prometheus label name"},
		{"own label", NotifierOptions{URLs: []string{"http://am"}, ExtraLabels: map[string]string{"severity": "x"}}, "would replace"},
		{"component label", NotifierOptions{URLs: []string{"http://am"}, ExtraLabels: map[string]string{"component": "x"}}, "would replace"},
		{"function_name label", NotifierOptions{URLs: []string{"http://am"}, ExtraLabels: map[string]string{"function_name": "x.y"}}, "OpenFaaS CE's gateway scales"},
		{"empty label", NotifierOptions{URLs: []string{"http://am"}, ExtraLabels: map[string]string{"cluster": ""}}, "empty value"},
		{"relative generator", NotifierOptions{URLs: []string{"http://am"}, GeneratorURL: "/status"}, "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNotifier(tt.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"cluster=prod", map[string]string{"cluster": "prod"}, ""},
		{" cluster = prod , region=eu-west ", map[string]string{"cluster": "prod", "region": "eu-west"}, ""},
		{"cluster", nil, "want name=value"},
		{"1x=a", nil, "not a valid label name"},
		{"a=", nil, "empty"},
		{"a=1,a=2", nil, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLabels(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics()
	require.NoError(t, m.Register(reg))
	err := m.Register(reg)
	require.Error(t, err, "registering twice is an error, not a panic")
	assert.Contains(t, err.Error(), "register alert metric")
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		assert.True(t, strings.HasPrefix(mf.GetName(), "tierscaler_"), mf.GetName())
	}
	assert.Contains(t, names, "tierscaler_alerts_firing")
}

func TestNotifierConcurrentSync(t *testing.T) {
	am := newFakeAM(t)
	n := newTestNotifier(t, NotifierOptions{URLs: []string{am.srv.URL}, ResendInterval: 10 * time.Millisecond})
	start(t, n)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				sf := []policy.Shortfall{capacity("a", policy.TierSync)}
				if j%2 == 0 {
					sf = append(sf, metricsDown())
				}
				n.Sync(context.Background(), time.Now(), sf)
				_ = n.Firing()
				_ = i
			}
		})
	}
	wg.Wait()
	n.Sync(context.Background(), time.Now(), nil)
	require.Eventually(t, func() bool { return n.Pending() == 0 }, 5*time.Second, 5*time.Millisecond)
	last := map[string]PostableAlert{}
	for _, a := range am.received() {
		last[a.Key()] = a
	}
	for k, a := range last {
		assert.True(t, a.Resolved(time.Now()), "the last post of %q resolves it", k)
	}
}

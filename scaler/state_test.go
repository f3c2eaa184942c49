// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestLastRunsAreWrittenOncePerCycleOnlyForCronAndAsync: on main every
// active function, sync included, got its own Deployment PATCH of
// tierscaler.io/last-run once a minute (issue 10 item 17). Now a cycle makes
// at most one write, of the cron and async functions whose last run moved
// by a minute, and never touches a Deployment for it.
func TestLastRunsAreWrittenOncePerCycleOnlyForCronAndAsync(t *testing.T) {
	store := NewMemoryStore()
	deps := []appsv1.Deployment{
		deployment("api", 1),
		deployment("report", 1, annotated("topic", "cron-function"), annotated("schedule", "0 3 * * *")),
		deployment("jobs", 1, annotated("tierscaler.io/tier", "async")),
	}
	h := newHarness(t, deps, bigNode(), func(o *Options) { o.State = store })
	var busy model.Vector
	for _, d := range deps {
		busy = append(busy, fnSample(d.Name+".openfaas-fn", 1))
	}
	h.q.set("invocations", busy)
	h.q.set("inflight", busy)

	h.reconcile()
	require.Empty(t, h.cl.allCalls(), "no Deployment is written for a last run")
	require.Equal(t, 1, store.Writes(), "one write")
	st, _ := store.Load(context.Background())
	require.Equal(t, map[string]time.Time{"report.openfaas-fn": t0, "jobs.openfaas-fn": t0}, st.Times, "cron and async only")
	for range 3 {
		h.now = h.now.Add(15 * time.Second)
		h.reconcile()
	}
	require.Equal(t, 1, store.Writes(), "not rewritten within a minute")
	h.now = h.now.Add(20 * time.Second)
	h.reconcile()
	require.Equal(t, 2, store.Writes(), "one write for both moved last runs")
	require.Equal(t, 2.0, testutil.ToFloat64(h.m.LastRunWrites))
	st, _ = store.Load(context.Background())
	require.Equal(t, h.now, st.Times["jobs.openfaas-fn"])
}

// TestEvictionOrderSurvivesARedeployAndARestart: faas-netes replaces a
// function's annotations on every deploy, so a last run kept there was lost
// exactly when it mattered (issue 11). Two idle cron functions, named so
// that alphabetical order picks the wrong one, are redeployed and
// tierscaler restarts: the one with the older last run is evicted.
func TestEvictionOrderSurvivesARedeployAndARestart(t *testing.T) {
	store := NewMemoryStore()
	deps := []appsv1.Deployment{
		deployment("api", 2),
		deployment("alpha", 1, annotated("topic", "cron-function"), annotated("schedule", "0 3 * * *")),
		deployment("beta", 1, annotated("topic", "cron-function"), annotated("schedule", "0 4 * * *")),
	}
	policyFor := func(o *Options) { o.State = store; o.Policy.Tiers.Cron.ZeroWhenIdle = new(bool) }
	h := newHarness(t, deps, []corev1.Node{node("n1", "2", "8Gi")}, policyFor)
	// beta ran at t0, alpha ten minutes later.
	h.q.set("inflight", model.Vector{fnSample("beta.openfaas-fn", 1)})
	h.reconcile()
	h.now = t0.Add(10 * time.Minute)
	h.q.set("inflight", model.Vector{fnSample("alpha.openfaas-fn", 1)})
	h.reconcile()
	h.q.set("inflight", nil)

	// faas-cli deploy of both, then tierscaler restarts.
	h.cl.redeploy("alpha", 1, "2")
	h.cl.redeploy("beta", 1, "2")
	h2 := newHarness(t, nil, []corev1.Node{node("n1", "2", "8Gi")}, policyFor)
	h2.cl, h2.c.o.Cluster = h.cl, h.cl
	h2.now = t0.Add(2 * time.Hour)
	res, err := h2.c.Plan(context.Background())
	require.NoError(t, err)
	lastRuns := map[string]time.Time{}
	for _, f := range res.Snapshot.Functions {
		lastRuns[f.Name] = f.LastRun
	}
	require.Equal(t, map[string]time.Time{"api": {}, "alpha": t0.Add(10 * time.Minute), "beta": t0}, lastRuns)

	// api needs a third replica: one eviction, the older last run.
	h2.burst("api", 10, 20, 4)
	h2.reconcile()
	require.Equal(t, []string{"scale beta 1->0", "scale api 2->3"}, h.cl.scaleCalls())
}

// TestLastRunAnnotationsAreMigratedOnce: the tierscaler.io/last-run
// annotations of an earlier version are read into the state in the first
// cycle, cron and async only, and never read again.
func TestLastRunAnnotationsAreMigratedOnce(t *testing.T) {
	store := NewMemoryStore()
	deps := []appsv1.Deployment{
		deployment("api", 1, annotated("tierscaler.io/last-run", "2026-11-24T09:00:00Z")),
		deployment("report", 1, annotated("topic", "cron-function"), annotated("schedule", "0 3 * * *"), annotated("tierscaler.io/last-run", "2026-11-24T10:00:00Z")),
	}
	h := newHarness(t, deps, bigNode(), func(o *Options) { o.State = store })
	h.reconcile()
	st, _ := store.Load(context.Background())
	require.True(t, st.Migrated)
	require.Equal(t, map[string]time.Time{"report.openfaas-fn": time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}, st.Times)

	// A later annotation is not read: the state is tierscaler's.
	h.cl.mu.Lock()
	h.cl.st.Deployments[1].Annotations["tierscaler.io/last-run"] = "2026-11-24T11:30:00Z"
	h.cl.st.Deployments[1].ResourceVersion = "2"
	h.cl.mu.Unlock()
	h.now = h.now.Add(15 * time.Second)
	res := h.reconcile()
	require.Equal(t, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), res.Snapshot.Functions[1].LastRun)
	require.Equal(t, 1, store.Writes())

	// A restarted tierscaler does not read them either.
	h2 := newHarness(t, nil, bigNode(), func(o *Options) { o.State = store })
	h2.cl, h2.c.o.Cluster = h.cl, h.cl
	res, err := h2.c.Plan(context.Background())
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), res.Snapshot.Functions[1].LastRun)
}

// TestTheLastRunsOfDeletedAndSyncFunctionsAreDropped: the state holds only
// what the policy uses.
func TestTheLastRunsOfDeletedAndSyncFunctionsAreDropped(t *testing.T) {
	store := NewMemoryStore()
	require.NoError(t, store.Save(context.Background(), LastRunChanges{Migrated: true, Set: map[string]time.Time{
		"gone.openfaas-fn": t0.Add(-time.Hour), "api.openfaas-fn": t0.Add(-time.Hour), "report.openfaas-fn": t0.Add(-time.Hour),
	}}))
	deps := []appsv1.Deployment{
		deployment("api", 1), // once async, sync now
		deployment("report", 1, annotated("topic", "cron-function"), annotated("schedule", "0 3 * * *")),
	}
	h := newHarness(t, deps, bigNode(), func(o *Options) { o.State = store })
	h.reconcile()
	st, _ := store.Load(context.Background())
	require.Equal(t, map[string]time.Time{"report.openfaas-fn": t0.Add(-time.Hour)}, st.Times)
	require.Equal(t, 2, store.Writes())
}

// failingStore fails Load until told otherwise.
type failingStore struct {
	*MemoryStore
	fail bool
}

func (s *failingStore) Load(ctx context.Context) (LastRuns, error) {
	if s.fail {
		return LastRuns{}, errors.New(`configmaps "tierscaler-state" is forbidden`)
	}
	return s.MemoryStore.Load(ctx)
}

// TestAStateThatCannotBeLoadedStopsEvictionsOnly: without its last runs
// tierscaler would evict in the wrong order. A cycle that cannot read them
// says so, evicts nothing and writes no state, but goes on scaling; the
// next cycle tries again.
func TestAStateThatCannotBeLoadedStopsEvictionsOnly(t *testing.T) {
	store := &failingStore{MemoryStore: NewMemoryStore(), fail: true}
	deps := []appsv1.Deployment{
		deployment("api", 2),
		deployment("web", 1),
		deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T11:58:00Z")),
	}
	h := newHarness(t, deps, []corev1.Node{node("n1", "2", "8Gi")}, func(o *Options) { o.State = store })
	h.burst("api", 10, 20, 6)
	h.reconcile()
	require.Empty(t, h.cl.scaleCalls(), "no eviction, and api's scale-up has no room without one")
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.StateLoaded))
	require.Zero(t, store.Writes(), "no state written before it was read")

	store.fail = false
	h.now = h.now.Add(15 * time.Second)
	h.reconcile()
	require.Equal(t, []string{"scale jobs 1->0", "scale api 2->3"}, h.cl.scaleCalls())
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.StateLoaded))
	require.Equal(t, 1, store.Writes())
}

// TestAStateThatCannotBeLoadedGoesOnScaling: everything but evictions goes
// on while the state cannot be read.
func TestAStateThatCannotBeLoadedGoesOnScaling(t *testing.T) {
	store := &failingStore{MemoryStore: NewMemoryStore(), fail: true}
	h := newHarness(t, []appsv1.Deployment{deployment("api", 2)}, bigNode(), func(o *Options) { o.State = store })
	h.burst("api", 10, 20, 8)
	h.reconcile()
	require.Equal(t, []string{"scale api 2->6"}, h.cl.scaleCalls())
	_, err := h.c.Plan(context.Background())
	require.ErrorContains(t, err, `load the last runs: configmaps "tierscaler-state" is forbidden`, "tierscaler plan says why")
}

func TestStateEncoding(t *testing.T) {
	times := map[string]time.Time{
		"report.openfaas-fn":   time.Date(2026, 11, 24, 10, 0, 59, 0, time.UTC),
		"nightly.openfaas-fn":  time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC),
		"export.team-a":        time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		"no-namespace":         t0, // not name.namespace: not encoded
		"x.y":                  time.Unix(0, 0).UTC(),
		"a-very-long-name.ns1": t0,
	}
	data := encodeState(times)
	for k, v := range data {
		require.Regexp(t, `^[a-z0-9-]+\.[0-9a-f]{2}$`, k, "a valid ConfigMap key")
		require.True(t, strings.HasSuffix(v, "\n"))
	}
	got, errs := decodeState(data)
	require.Empty(t, errs)
	want := map[string]time.Time{}
	for k, tt := range times {
		if k != "no-namespace" {
			want[k] = tt.Truncate(time.Minute)
		}
	}
	require.Equal(t, want, got, "minute resolution")

	got, errs = decodeState(map[string]string{"openfaas-fn.00": "report 1\nbad\nfoo -3\n", "nodot": "a 1\n"})
	require.Equal(t, map[string]time.Time{"report.openfaas-fn": time.Unix(60, 0).UTC()}, got, "what can be read is kept")
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	require.ElementsMatch(t, []string{
		`key "openfaas-fn.00" line 2 "bad": want "<name> <Unix minutes in base 36>"`,
		`key "openfaas-fn.00" line 3 "foo -3": want "<name> <Unix minutes in base 36>"`,
		`key "nodot": want <namespace>.<bucket>`,
	}, msgs)
}

// TestStateSizeAt10000FunctionsWithLongNames: 10,000 cron and async
// functions with names of the longest length Kubernetes allows (63) fit the
// ConfigMap's budget, well under the API server's 1 MiB, with nothing
// dropped.
func TestStateSizeAt10000FunctionsWithLongNames(t *testing.T) {
	times := map[string]time.Time{}
	for i := range 10000 {
		name := fmt.Sprintf("%s-%05d", strings.Repeat("long-function-name", 4)[:57], i)
		require.Len(t, name, 63)
		times[name+".openfaas-fn"] = t0.Add(-time.Duration(i) * time.Minute)
	}
	require.Zero(t, dropOldest(times, DefaultStateMaxBytes))
	size := stateSize(encodeState(times))
	t.Logf("10,000 functions with 63-character names: %d bytes (budget %d, API server limit %d)", size, DefaultStateMaxBytes, 1<<20)
	require.LessOrEqual(t, size, DefaultStateMaxBytes)
	require.Less(t, size, 3*(1<<20)/4)
}

// TestStateDropsTheOldestBeyondItsBudget: past the budget the oldest last
// runs go: they sort first for eviction anyway.
func TestStateDropsTheOldestBeyondItsBudget(t *testing.T) {
	times := map[string]time.Time{}
	for i := range 100 {
		times[fmt.Sprintf("fn-%03d.openfaas-fn", i)] = t0.Add(time.Duration(i) * time.Minute)
	}
	full := stateSize(encodeState(times))
	dropped := dropOldest(times, full/2)
	require.Greater(t, dropped, 40)
	require.LessOrEqual(t, stateSize(encodeState(times)), full/2)
	for i := range 100 {
		_, kept := times[fmt.Sprintf("fn-%03d.openfaas-fn", i)]
		require.Equal(t, i >= dropped, kept, "fn-%03d", i)
	}
}

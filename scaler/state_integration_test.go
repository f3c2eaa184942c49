// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

//go:build integration

package scaler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tierscaler/tierscaler/hack/testenv"
	"github.com/tierscaler/tierscaler/scaler"
)

// stateNamespace is a namespace of the test's own.
func stateNamespace(t *testing.T) (*testenv.Env, string) {
	t.Helper()
	env := testenv.Current()
	require.NotNil(t, env, "no test environment")
	ns := fmt.Sprintf("state-%d", time.Now().UnixNano()%1e9)
	require.NoError(t, env.CreateNamespace(t.Context(), ns))
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	return env, ns
}

func minute(t time.Time) time.Time { return t.Truncate(time.Minute).UTC() }

// recordingClient records the bodies of the patches it sends.
type recordingClient struct {
	client.Client
	patches []map[string]any
}

func (c *recordingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	data, err := patch.Data(obj)
	if err != nil {
		return err
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		return err
	}
	c.patches = append(c.patches, body)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

// TestConfigMapStoreAgainstTheAPIServer: the last runs live in a ConfigMap
// that only tierscaler writes. It is created on the first write, read back
// by a new leader, patched with only the buckets that changed, merged after
// a conflict with another writer without moving a last run back, and holds
// 10,000 functions with 63-character names within its budget.
func TestConfigMapStoreAgainstTheAPIServer(t *testing.T) {
	env, ns := stateNamespace(t)
	ctx := t.Context()
	newStore := func() *scaler.ConfigMapStore {
		return &scaler.ConfigMapStore{Client: env.Client, Namespace: ns, Name: scaler.DefaultStateName, Log: testr.New(t)}
	}
	get := func() corev1.ConfigMap {
		var cm corev1.ConfigMap
		require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: scaler.DefaultStateName}, &cm))
		return cm
	}
	now := time.Now()

	leader := newStore()
	rec := &recordingClient{Client: env.Client}
	leader.Client = rec
	st, err := leader.Load(ctx)
	require.NoError(t, err)
	require.Empty(t, st.Times)
	require.False(t, st.Migrated)

	// The first write creates it.
	require.NoError(t, leader.Save(ctx, scaler.LastRunChanges{Migrated: true, Set: map[string]time.Time{
		"report.openfaas-fn": now.Add(-time.Hour), "jobs.openfaas-fn": now.Add(-2 * time.Hour), "export.team-a": now,
	}}))
	cm := get()
	require.Equal(t, "v1", cm.Annotations["tierscaler.io/state-format"])
	require.NotEmpty(t, cm.Annotations["tierscaler.io/migrated"])

	// A new leader reads it.
	st, err = newStore().Load(ctx)
	require.NoError(t, err)
	require.True(t, st.Migrated)
	require.Equal(t, map[string]time.Time{"report.openfaas-fn": minute(now.Add(-time.Hour)),
		"jobs.openfaas-fn": minute(now.Add(-2 * time.Hour)), "export.team-a": minute(now)}, st.Times)

	// One change rewrites one bucket, in one write.
	before := get()
	require.NoError(t, leader.Save(ctx, scaler.LastRunChanges{Set: map[string]time.Time{"report.openfaas-fn": now.Add(time.Minute)}}))
	after := get()
	changed := 0
	for k, v := range after.Data {
		if before.Data[k] != v {
			changed++
		}
	}
	require.Equal(t, 1, changed)
	require.Equal(t, len(before.Data), len(after.Data))
	require.Len(t, rec.patches, 1, "one write")
	require.Len(t, rec.patches[0]["data"], 1, "a merge patch of the changed bucket only")

	// A stale writer (an old leader) conflicts, merges and writes: no
	// last run moves back, no change is lost.
	stale := newStore()
	_, err = stale.Load(ctx)
	require.NoError(t, err)
	require.NoError(t, leader.Save(ctx, scaler.LastRunChanges{Set: map[string]time.Time{"jobs.openfaas-fn": now.Add(2 * time.Minute)}}))
	require.NoError(t, stale.Save(ctx, scaler.LastRunChanges{Set: map[string]time.Time{
		"jobs.openfaas-fn": now.Add(-3 * time.Hour), "cron-b.openfaas-fn": now,
	}, Delete: []string{"export.team-a"}}))
	st, err = newStore().Load(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]time.Time{"report.openfaas-fn": minute(now.Add(time.Minute)),
		"jobs.openfaas-fn": minute(now.Add(2 * time.Minute)), "cron-b.openfaas-fn": minute(now)}, st.Times)

	// 10,000 functions with 63-character names.
	many := map[string]time.Time{}
	for i := range 10000 {
		name := fmt.Sprintf("%s-%05d", strings.Repeat("long-function-name", 4)[:57], i)
		many[name+".openfaas-fn"] = now.Add(-time.Duration(i) * time.Minute)
	}
	big := newStore()
	require.NoError(t, big.Save(ctx, scaler.LastRunChanges{Set: many}))
	require.Zero(t, big.Dropped())
	size := 0
	for k, v := range get().Data {
		size += len(k) + len(v)
	}
	t.Logf("10,003 functions, 10,000 of them with 63-character names: %d bytes of data in %d keys", size, len(get().Data))
	require.LessOrEqual(t, size, scaler.DefaultStateMaxBytes)
	st, err = newStore().Load(ctx)
	require.NoError(t, err)
	require.Len(t, st.Times, 10003)
	want := map[string]time.Time{}
	for k, v := range many {
		want[k] = minute(v)
	}
	got := maps.Clone(st.Times)
	for _, k := range []string{"report.openfaas-fn", "jobs.openfaas-fn", "cron-b.openfaas-fn"} {
		delete(got, k)
	}
	require.Equal(t, want, got)
}

// TestConfigMapStoreNeedsOnlyItsOwnConfigMap: the RBAC the chart grants
// tierscaler for its state (get and patch on the one ConfigMap, by
// resourceNames, the ConfigMap created by the chart) is enough, and gives
// nothing else.
func TestConfigMapStoreNeedsOnlyItsOwnConfigMap(t *testing.T) {
	env, ns := stateNamespace(t)
	ctx := t.Context()
	sa := "tierscaler"
	require.NoError(t, env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}))
	require.NoError(t, env.Client.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tierscaler-state"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{scaler.DefaultStateName}, Verbs: []string{"get", "patch"}}}}))
	require.NoError(t, env.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tierscaler-state"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "tierscaler-state"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa}}}))
	// The chart creates the ConfigMap, empty.
	require.NoError(t, env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: scaler.DefaultStateName}}))
	require.NoError(t, env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}}))

	cfg := rest.CopyConfig(env.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	as, err := client.New(cfg, client.Options{})
	require.NoError(t, err)
	store := &scaler.ConfigMapStore{Client: as, Namespace: ns, Name: scaler.DefaultStateName, Log: testr.New(t)}
	// RBAC bindings take effect within a moment.
	require.Eventually(t, func() bool { _, err := store.Load(ctx); return err == nil }, 10*time.Second, 100*time.Millisecond)
	st, err := store.Load(ctx)
	require.NoError(t, err)
	require.False(t, st.Migrated)
	now := time.Now()
	require.NoError(t, store.Save(ctx, scaler.LastRunChanges{Migrated: true, Set: map[string]time.Time{"report.openfaas-fn": now}}))
	require.NoError(t, store.Save(ctx, scaler.LastRunChanges{Set: map[string]time.Time{"jobs.openfaas-fn": now}}))
	st, err = store.Load(ctx)
	require.NoError(t, err)
	require.True(t, st.Migrated)
	require.Len(t, st.Times, 2)

	err = as.Get(ctx, client.ObjectKey{Namespace: ns, Name: "other"}, &corev1.ConfigMap{})
	require.True(t, apierrors.IsForbidden(err), "no other ConfigMap: %v", err)
	err = (&scaler.ConfigMapStore{Client: as, Namespace: ns, Name: "elsewhere", Log: testr.New(t)}).Save(ctx,
		scaler.LastRunChanges{Set: map[string]time.Time{"report.openfaas-fn": now}})
	require.Error(t, err)
	require.True(t, apierrors.IsForbidden(err), "nor create one: %v", err)
}

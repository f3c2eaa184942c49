// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/tierscaler/tierscaler/policy"
)

// fakePrometheus serves the Prometheus HTTP API's instant queries from a
// table keyed by the policy query's name, with the warnings given per query,
// as Thanos, Cortex or Mimir answer when some stores did not answer. It
// answers the controller's batches (queryBatches, batchExpr) the way
// Prometheus does: each query's samples tagged, the warnings of all.
func fakePrometheus(t *testing.T, p *policy.Policy, vectors map[string]model.Vector, warnings map[string][]string) string {
	t.Helper()
	qs := queries(p)
	batches := map[string][]string{}
	for _, b := range queryBatches(qs) {
		members := make([]namedQuery, len(b))
		var names []string
		for j, i := range b {
			members[j] = qs[i]
			names = append(names, qs[i].name)
		}
		batches[batchExpr(members)] = names
	}
	for _, nq := range qs {
		batches[nq.expr] = []string{nq.name}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.URL.Path != "/api/v1/query" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		names := batches[r.Form.Get("query")]
		vec, warns := model.Vector{}, []string{}
		for _, name := range names {
			for _, smp := range vectors[name] {
				m := smp.Metric.Clone()
				if len(names) > 1 {
					m[batchLabel] = model.LabelValue(name)
				}
				vec = append(vec, &model.Sample{Metric: m, Value: smp.Value, Timestamp: smp.Timestamp})
			}
			warns = append(warns, warnings[name]...)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "warnings": warns,
			"data": map[string]any{"resultType": "vector", "result": vec}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPrometheusWarningsNeverJustifyAScaleDownZeroingOrEviction: a result
// with warnings is a partial answer (Thanos, Cortex, Mimir): a busy
// function may be missing from it. It may still justify a scale-up (what
// it shows is there), never a scale-down, a zeroing or an eviction.
func TestPrometheusWarningsNeverJustifyAScaleDownZeroingOrEviction(t *testing.T) {
	deps := []appsv1.Deployment{
		deployment("api", 5), // idle: would scale down on complete data
		deployment("jobs", 1, annotated("tierscaler.io/tier", "async"), annotated("tierscaler.io/last-run", "2026-11-24T10:00:00Z")),
		deployment("burst", 2),
	}
	fresh := float64(t0.Unix())
	vectors := map[string]model.Vector{
		"functions":   {fnSample("api.openfaas-fn", fresh), fnSample("jobs.openfaas-fn", fresh), fnSample("burst.openfaas-fn", fresh)},
		"inflight":    {fnSample("api.openfaas-fn", 0), fnSample("jobs.openfaas-fn", 0), fnSample("burst.openfaas-fn", 8)},
		"pending":     {fnSample("api.openfaas-fn", 0), fnSample("jobs.openfaas-fn", 0), fnSample("burst.openfaas-fn", 0)},
		"rejections":  {fnSample("burst.openfaas-fn", 10)},
		"invocations": {fnSample("burst.openfaas-fn", 20)},
	}
	for i := range 5 {
		pod := fmt.Sprintf("api-%d", i)
		vectors["cpu"] = append(vectors["cpu"], podSample("openfaas-fn", pod, 0.01))
		vectors["memory"] = append(vectors["memory"], podSample("openfaas-fn", pod, 20<<20))
	}
	p := policy.Default()
	url := fakePrometheus(t, p, vectors, map[string][]string{"inflight": {"store gateway 10.0.0.7: context deadline exceeded; the result may be partial"}})
	q, err := NewPrometheusQuerier(url, nil)
	require.NoError(t, err)
	h := newHarness(t, deps, bigNode(), func(o *Options) { o.Querier = q; o.Policy = p })
	h.frozen = true
	res, err := h.c.Reconcile(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"scale burst 2->6"}, h.cl.scaleCalls(),
		"the 429s still scale burst up; api is not scaled down and jobs not zeroed on a partial answer")
	require.False(t, res.Plan.MetricsAvailable)
	require.Equal(t, 0.0, testutil.ToFloat64(h.m.MetricsAvailable))
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Queries.WithLabelValues("inflight", "warnings")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.m.Queries.WithLabelValues("pending", "success")))

	// Without warnings the same data scales api down and zeroes jobs.
	url = fakePrometheus(t, p, vectors, nil)
	q, err = NewPrometheusQuerier(url, nil)
	require.NoError(t, err)
	h = newHarness(t, deps, bigNode(), func(o *Options) { o.Querier = q; o.Policy = p })
	h.frozen = true
	_, err = h.c.Reconcile(t.Context())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"scale api 5->1", "scale jobs 1->0", "scale burst 2->6"}, h.cl.scaleCalls())
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
)

// fakePrometheus serves query and query_range from canned answers keyed by
// a fragment of the query.
func fakePrometheus(t *testing.T, answers map[string]func(start, end, step float64) any) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		q := r.Form.Get("query")
		num := func(k string) float64 { v, _ := strconv.ParseFloat(r.Form.Get(k), 64); return v }
		for frag, f := range answers {
			if strings.Contains(q, frag) {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": f(num("start"), num("end"), num("step"))})
				return
			}
		}
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"unexpected query %s"}`, q)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// matrix is a range result: each function's value at every step.
func matrix(start, end, step float64, values map[string]func(t float64) float64) any {
	var result []any
	for fn, v := range values {
		var pts [][]any
		for ts := start; ts <= end; ts += step {
			pts = append(pts, []any{ts, strconv.FormatFloat(v(ts), 'f', -1, 64)})
		}
		result = append(result, map[string]any{"metric": map[string]string{"function_name": fn}, "values": pts})
	}
	return map[string]any{"resultType": "matrix", "result": result}
}

func TestBacktest(t *testing.T) {
	end := time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)
	start := end.Add(-time.Hour)
	half := float64(start.Add(30 * time.Minute).Unix())
	srv := fakePrometheus(t, map[string]func(s, e, st float64) any{
		"gateway_service_count": func(s, e, st float64) any {
			one := func(float64) float64 { return 1 }
			return matrix(s, e, st, map[string]func(float64) float64{"api.openfaas-fn": one, "resize.openfaas-fn": one, "bogus": one})
		},
		"rate(gateway_function_invocation_total[1m])": func(s, e, st float64) any {
			return matrix(s, e, st, map[string]func(float64) float64{
				// 5 rps for the first half hour, 50 rps after.
				"api.openfaas-fn": func(ts float64) float64 {
					if ts <= half {
						return 5
					}
					return 50
				},
				// One job every 10 seconds.
				"resize.openfaas-fn": func(float64) float64 { return 0.1 },
			})
		},
		"gateway_functions_seconds_sum": func(s, e, st float64) any {
			return map[string]any{"resultType": "vector", "result": []any{
				map[string]any{"metric": map[string]string{"function_name": "api.openfaas-fn"}, "value": []any{e, "0.2"}},
			}}
		},
	})
	tr, err := ReadTrace(context.Background(), BacktestOptions{URL: srv.URL, End: end, Range: time.Hour, Step: time.Minute})
	require.NoError(t, err)
	assert.Equal(t, []string{"api.openfaas-fn", "resize.openfaas-fn"}, tr.Functions, "keys that are not name.namespace are ignored")
	assert.Equal(t, start, tr.Start)
	assert.Equal(t, 5.0, tr.Rate("api.openfaas-fn", start.Add(10*time.Minute)))
	assert.Equal(t, 50.0, tr.Rate("api.openfaas-fn", start.Add(45*time.Minute)))
	assert.Equal(t, 0.0, tr.Rate("api.openfaas-fn", end), "nothing after the range")
	assert.Equal(t, map[string]float64{"api.openfaas-fn": 0.2}, tr.Durations)

	cases := []struct {
		name      string
		meta      string
		wantTiers map[string]policy.Tier
		wantNote  string
	}{
		{name: "without a scenario every function is sync", wantTiers: map[string]policy.Tier{"api.openfaas-fn": policy.TierSync, "resize.openfaas-fn": policy.TierSync},
			wantNote: "2 recorded functions are not in the scenario"},
		{name: "the scenario gives the tiers", meta: "async", wantTiers: map[string]policy.Tier{"api.openfaas-fn": policy.TierSync, "resize.openfaas-fn": policy.TierAsync},
			wantNote: "1 scenario functions were not recorded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var notes []string
			meta := scenario(t, "nodes: {count: 1}", fn("api", "sync", "100m", "64Mi", 1, "maxInflight: 10"), fn("resize", "async", "100m", "64Mi", 0, ""), fn("gone", "sync", "100m", "64Mi", 1, ""))
			if tc.meta == "" {
				meta = nil
			}
			s, notes, err := tr.Scenario(meta)
			require.NoError(t, err)
			got := map[string]policy.Tier{}
			for _, f := range s.Functions {
				got[f.Key()] = f.Tier
			}
			assert.Equal(t, tc.wantTiers, got)
			assert.Contains(t, strings.Join(notes, "\n"), tc.wantNote)
			assert.Equal(t, time.Hour, s.Duration.Duration)

			rep, err := Run(context.Background(), Config{Scenario: s, Load: tr.Load(s), Strategies: []string{StrategyStatic}})
			require.NoError(t, err)
			st := rep.Strategy(StrategyStatic)
			if tc.wantTiers["resize.openfaas-fn"] == policy.TierSync {
				// 30 min × 5 rps + 30 min × 50 rps + 60 min × 0.1 rps.
				assert.InDelta(t, 30*60*5+30*60*50+3600*0.1, st.SyncRequests, 1)
			} else {
				assert.InDelta(t, 30*60*5+30*60*50, st.SyncRequests, 1)
				assert.Zero(t, st.AsyncJobs, "resize is at zero under static: its jobs queue")
				assert.InDelta(t, 360, st.AsyncJobsQueued, 1)
			}
		})
	}
}

func TestBacktestErrors(t *testing.T) {
	empty := fakePrometheus(t, map[string]func(s, e, st float64) any{
		"gateway_service_count": func(s, e, st float64) any { return map[string]any{"resultType": "matrix", "result": []any{}} },
	})
	cases := []struct {
		name string
		o    BacktestOptions
		want string
	}{
		{"no URL", BacktestOptions{Range: time.Hour}, "a Prometheus URL is required"},
		{"no range", BacktestOptions{URL: empty.URL}, "want a positive duration"},
		{"step longer than the range", BacktestOptions{URL: empty.URL, Range: time.Minute, Step: time.Hour}, "at most the range"},
		{"nothing recorded", BacktestOptions{URL: empty.URL, Range: time.Hour}, "is the OpenFaaS gateway scraped?"},
		{"Prometheus unreachable", BacktestOptions{URL: "http://127.0.0.1:1", Range: time.Hour, Timeout: 2 * time.Second}, "reading the function list from http://127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTrace(context.Background(), tc.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

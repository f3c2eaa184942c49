// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// recordingRules reads the chart's recording rule file: the group's
// interval and each recorded name with its expression.
func recordingRules(t *testing.T) (time.Duration, map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "deploy", "chart", "tierscaler", "rules", "recording.rules.yaml"))
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval"`
			Rules    []struct {
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, yaml.UnmarshalStrict(data, &f))
	require.Len(t, f.Groups, 1)
	every, err := time.ParseDuration(f.Groups[0].Interval)
	require.NoError(t, err)
	rules := map[string]string{}
	for _, r := range f.Groups[0].Rules {
		rules[r.Record] = r.Expr
	}
	return every, rules
}

// withRecordedRules loads the series of a promqltest load block and
// evaluates the rules over them as Prometheus would, every interval from the
// start of the data to until, appending the recorded samples.
func withRecordedRules(t *testing.T, load string, every time.Duration, rules map[string]string, until time.Duration) storage.Storage {
	t.Helper()
	st := promqltest.LoadedStorage(t, load)
	t.Cleanup(func() { _ = st.Close() })
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	ctx := context.Background()
	for at := time.Duration(0); at <= until; at += every {
		ts := time.Unix(0, 0).Add(at)
		app := st.Appender(ctx)
		for name, expr := range rules {
			q, err := eng.NewInstantQuery(ctx, st, nil, expr, ts)
			require.NoError(t, err, name)
			res := q.Exec(ctx)
			require.NoError(t, res.Err, name)
			vec, err := res.Vector()
			require.NoError(t, err, name)
			for _, s := range vec {
				b := labels.NewBuilder(s.Metric)
				b.Set(labels.MetricName, name)
				_, err := app.Append(0, b.Labels(), ts.UnixMilli(), s.F)
				require.NoError(t, err)
			}
		}
		require.NoError(t, app.Commit())
	}
	return st
}

func evalOn(t *testing.T, st storage.Storage, query string, at time.Duration) map[string]float64 {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	q, err := eng.NewInstantQuery(context.Background(), st, nil, query, time.Unix(0, 0).Add(at))
	require.NoError(t, err)
	res := q.Exec(context.Background())
	require.NoError(t, res.Err)
	vec, err := res.Vector()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.Get("function_name")] = s.F
	}
	return out
}

// TestRecordedQueriesReadWhatTheDefaultsRead: with the chart's recording
// rules evaluated as Prometheus evaluates them, each recorded query reads
// what the default query of the same name reads (the functions query reads
// the rule's evaluation time instead of the scrape's, at most one rule
// interval apart), over the gateway's counter lifecycles.
func TestRecordedQueriesReadWhatTheDefaultsRead(t *testing.T) {
	every, rules := recordingRules(t)
	require.Equal(t, 5*time.Second, every)
	const at = 2 * time.Minute
	load := `load 5s
  gateway_service_count{function_name="api.openfaas-fn"} 2x24
  gateway_service_count{function_name="nightly.openfaas-fn"} 1x24
  gateway_service_count{function_name="idle.openfaas-fn"} 0x24
  gateway_service_count{function_name="done.openfaas-fn",instance="gw-0"} 1x24
  gateway_service_count{function_name="done.openfaas-fn",instance="gw-1"} 1x24
  gateway_function_invocation_started{function_name="api.openfaas-fn"} 0+10x24
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="200"} 0+9x24
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="429"} 0+1x24
  gateway_functions_seconds_sum{function_name="api.openfaas-fn",code="200"} 0+1.8x24
  gateway_functions_seconds_count{function_name="api.openfaas-fn",code="200"} 0+9x24
  gateway_function_invocation_started{function_name="nightly.openfaas-fn"} _x12 1x12
  gateway_function_invocation_started{function_name="done.openfaas-fn",instance="gw-0"} 1x24
  gateway_function_invocation_total{function_name="done.openfaas-fn",instance="gw-0",code="200"} _x20 1x4`
	st := withRecordedRules(t, load, every, rules, at)
	for _, q := range []struct{ name, def, rec string }{
		{"rejections", DefaultRejectionsQuery, RecordedRejectionsQuery},
		{"invocations", DefaultInvocationsQuery, RecordedInvocationsQuery},
		{"duration", DefaultDurationQuery, RecordedDurationQuery},
		{"inflight", DefaultInflightQuery, RecordedInflightQuery},
	} {
		t.Run(q.name, func(t *testing.T) {
			want := evalOn(t, st, q.def, at)
			got := evalOn(t, st, q.rec, at)
			require.Equal(t, want, got)
			require.NotEmpty(t, got)
		})
	}
	require.Equal(t, map[string]float64{"api.openfaas-fn": 0, "nightly.openfaas-fn": 1, "idle.openfaas-fn": 0, "done.openfaas-fn": 1},
		evalOn(t, st, RecordedInflightQuery, at), "the lifecycles: a run after a restart, a peak of the last minute")
	functions := evalOn(t, st, RecordedFunctionsQuery, at)
	require.Len(t, functions, 4)
	for fn, ts := range functions {
		require.InDelta(t, float64(at/time.Second), ts, float64(every/time.Second), fn)
	}
}

// Missing rules are never "no traffic": while a rate rule is not loaded the
// functions query answers nothing (the controller reports metrics
// unavailable and fails static); a rule group that stopped leaves samples
// whose time the staleness check sees.
func TestRecordedQueriesWithoutTheirRules(t *testing.T) {
	every, rules := recordingRules(t)
	load := `load 5s
  gateway_service_count{function_name="api.openfaas-fn"} 2x60
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="200"} 0+9x60`
	delete(rules, "function_name:gateway_function_invocation_total:rate1m")
	st := withRecordedRules(t, load, every, rules, 2*time.Minute)
	require.Empty(t, evalOn(t, st, RecordedFunctionsQuery, 2*time.Minute), "a missing rule empties the functions query")

	_, rules = recordingRules(t)
	st = withRecordedRules(t, load, every, rules, time.Minute) // the rules stop at 1m
	functions := evalOn(t, st, RecordedFunctionsQuery, 4*time.Minute)
	require.Equal(t, map[string]float64{"api.openfaas-fn": 60}, functions, "the last evaluation's time: 3 minutes stale")
}

func TestQueryWindow(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration
	}{
		{DefaultRejectionsQuery, time.Minute},
		{RecordedRejectionsQuery, time.Minute},
		{`function_name:gateway_function_invocation_rejected:rate1m`, time.Minute},
		{`function_name:gateway_function_invocation_rejected:rate5m offset 1m`, 6 * time.Minute},
		{`sum by (function_name) (irate(gateway_function_invocation_total{code="429"}[5s]))`, 5 * time.Second},
		{`max_over_time(x[1m:5s])`, time.Minute},
		{`gateway_function_invocation_total`, 0},
		{`job:requests:sum`, 0},
		{`a:rate1m`, 0}, // not level:metric:operation
		{`not valid(`, 0},
	} {
		require.Equal(t, tc.want, queryWindow(tc.query), tc.query)
	}
}

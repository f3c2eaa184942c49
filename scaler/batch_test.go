// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package scaler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/policy"
)

// engineQuerier answers with Prometheus' own engine over a promqltest load
// block, and counts the requests. batch says whether it is a Batcher.
type engineQuerier struct {
	st    storage.Storage
	eng   *promql.Engine
	batch bool
	// fail makes an expression containing it fail.
	fail string

	mu    sync.Mutex
	exprs []string
}

func newEngineQuerier(t *testing.T, load string, batch bool) *engineQuerier {
	t.Helper()
	st := promqltest.LoadedStorage(t, load)
	t.Cleanup(func() { _ = st.Close() })
	return &engineQuerier{st: st, batch: batch,
		eng: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})}
}

func (q *engineQuerier) BatchesQueries() bool { return q.batch }

func (q *engineQuerier) Query(ctx context.Context, expr string, at time.Time) (model.Vector, []string, error) {
	q.mu.Lock()
	q.exprs = append(q.exprs, expr)
	q.mu.Unlock()
	if q.fail != "" && strings.Contains(expr, q.fail) {
		return nil, nil, errors.New("bad_data: simulated failure")
	}
	qry, err := q.eng.NewInstantQuery(ctx, q.st, nil, expr, at)
	if err != nil {
		return nil, nil, err
	}
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, nil, res.Err
	}
	vec, err := res.Vector()
	if err != nil {
		return nil, nil, err
	}
	out := make(model.Vector, 0, len(vec))
	for _, s := range vec {
		m := model.Metric{}
		s.Metric.Range(func(l labels.Label) { m[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		out = append(out, &model.Sample{Metric: m, Value: model.SampleValue(s.F), Timestamp: model.Time(s.T)})
	}
	return out, nil, nil
}

func (q *engineQuerier) requests() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.exprs...)
}

// gatewayLoad is two minutes of gateway, queue-worker and cadvisor series
// for three functions, 5s apart.
const gatewayLoad = `load 5s
  gateway_service_count{function_name="api.openfaas-fn"} 2x24
  gateway_service_count{function_name="job.openfaas-fn"} 1x24
  gateway_service_count{function_name="idle.openfaas-fn"} 0x24
  gateway_function_invocation_started{function_name="api.openfaas-fn"} 0+10x24
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="200"} 0+9x24
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="429"} 0+1x24
  gateway_functions_seconds_sum{function_name="api.openfaas-fn",code="200"} 0+1.8x24
  gateway_functions_seconds_count{function_name="api.openfaas-fn",code="200"} 0+9x24
  gateway_function_invocation_started{function_name="job.openfaas-fn"} _x12 1x12
  queue_worker_pending_messages{function_name="job.openfaas-fn",pod="qw-0"} 4x24
  queue_worker_pending_messages{function_name="job.openfaas-fn",pod="qw-1"} 4x24
  container_cpu_usage_seconds_total{namespace="openfaas-fn",pod="api-0",container="api"} 0+1x24
  container_memory_working_set_bytes{namespace="openfaas-fn",pod="api-0",container="api"} 1e8x24`

// The batched requests read exactly what the queries read one by one, with
// Prometheus' own engine, in 4 requests instead of 8 (3 instead of 6 with
// the usage signals off).
func TestBatchExpr(t *testing.T) {
	at := time.Unix(0, 0).Add(2 * time.Minute)
	for _, tc := range []struct {
		name         string
		usage        bool
		wantRequests int
	}{
		{"default signals", true, 4},
		{"usage signals off", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			p.Signals.CPU, p.Signals.Memory = &tc.usage, &tc.usage
			p.Prometheus.MaxStaleness = policy.Duration{Duration: time.Hour}
			one := newEngineQuerier(t, gatewayLoad, false)
			batched := newEngineQuerier(t, gatewayLoad, true)
			want := gatherMetrics(context.Background(), one, p, at, NewMetrics(prometheus.NewRegistry()))
			got := gatherMetrics(context.Background(), batched, p, at, NewMetrics(prometheus.NewRegistry()))
			require.True(t, want.available, "%v", want.problems)
			require.True(t, got.available, "%v", got.problems)
			require.Len(t, one.requests(), len(queries(p)))
			require.Len(t, batched.requests(), tc.wantRequests, "requests: %q", batched.requests())
			require.Equal(t, want, got)
			// The data is read, not empty.
			require.Equal(t, 4.0, got.pending["job.openfaas-fn"], "queue depth, averaged over queue-worker replicas")
			require.Equal(t, 1.0, got.inflight["job.openfaas-fn"])
			require.InDelta(t, 0.2, got.rejections["api.openfaas-fn"], 1e-9)
			if tc.usage {
				require.InDelta(t, 0.2, got.cpu["openfaas-fn/api-0"], 1e-9)
			}
		})
	}
}

// A batch that fails is asked again query by query, so that the error names
// the query at fault; the others are read, but the set is unavailable
// (fail static), as when that query fails on its own.
func TestBatchFailureNamesTheQuery(t *testing.T) {
	at := time.Unix(0, 0).Add(2 * time.Minute)
	p := policy.Default()
	p.Prometheus.MaxStaleness = policy.Duration{Duration: time.Hour}
	q := newEngineQuerier(t, gatewayLoad, true)
	q.fail = "gateway_functions_seconds_sum" // the duration query
	m := NewMetrics(prometheus.NewRegistry())
	set := gatherMetrics(context.Background(), q, p, at, m)
	require.False(t, set.available)
	require.Len(t, set.problems, 1, "%v", set.problems)
	require.Contains(t, set.problems[0], "query duration: bad_data: simulated failure")
	// 4 batches, then the 4 members of the failed one on their own.
	require.Len(t, q.requests(), 4+4)
	require.Equal(t, 4.0, set.pending["job.openfaas-fn"], "the other queries were still read")
	require.Equal(t, 1.0, testutil.ToFloat64(m.Queries.WithLabelValues("duration", "error")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Queries.WithLabelValues("pending", "success")))
}

// The batch expression tags each query's samples, and "or" keeps them all,
// even when two queries answer the same label set.
func TestBatchExprKeepsEveryQuerysSamples(t *testing.T) {
	members := []namedQuery{{name: "a", expr: `max by (function_name) (gateway_service_count)`},
		{name: "b", expr: `max by (function_name) (gateway_service_count) * 2`}}
	expr := batchExpr(members)
	require.Equal(t, `label_replace((max by (function_name) (gateway_service_count)), "tierscaler_query", "a", "", "") or `+
		`label_replace((max by (function_name) (gateway_service_count) * 2), "tierscaler_query", "b", "", "")`, expr)
	q := newEngineQuerier(t, gatewayLoad, true)
	vec, _, err := q.Query(context.Background(), expr, time.Unix(0, 0).Add(time.Minute))
	require.NoError(t, err)
	require.Len(t, vec, 6, "3 functions from each query")
	require.Equal(t, `max by (function_name) (gateway_service_count)`, batchExpr(members[:1]), "a batch of one is the query itself")
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"
)

// oldInflightQuery is the default in-flight query before issue 10: its
// fallback turned a running invocation with no _total series into 0.
const oldInflightQuery = `max_over_time((sum by (function_name) (gateway_function_invocation_started) - sum by (function_name) (gateway_function_invocation_total))[1m:5s]) or (0 * max by (function_name) (gateway_service_count))`

// evalInstant runs query with Prometheus' own engine over the series of a
// promqltest load block, at evalAt after the start of the data, and returns
// the value per function_name.
func evalInstant(t *testing.T, load, query string, evalAt time.Duration) map[string]float64 {
	t.Helper()
	st := promqltest.LoadedStorage(t, load)
	t.Cleanup(func() { _ = st.Close() })
	return evalOn(t, st, query, evalAt)
}

// The gateway's counters appear only when something happens
// (../shared/reference/openfaas-contracts.md, "Lifecycles"): started at the
// first start, _total per code at the first completion, both reset by a
// restart, one set per gateway replica. The default in-flight query must read
// what is in flight in each case; a function absent from the answer has
// unknown in-flight work.
func TestDefaultInflightQueryFollowsTheGatewayCounterLifecycle(t *testing.T) {
	const at = 2 * time.Minute
	cases := []struct {
		name string
		// load is a promqltest load block, 5s apart (25 samples = 2m).
		load string
		want map[string]float64
		// old is what the query before issue 10 returned, where it differs.
		old map[string]float64
	}{
		{name: "after a gateway restart, a run that started and has not completed is in flight (item 1)",
			// The restarted gateway has exported started=1 for a minute,
			// and no _total series: nothing completed since it started.
			load: `load 5s
  gateway_service_count{function_name="nightly.openfaas-fn"} 1x24
  gateway_function_invocation_started{function_name="nightly.openfaas-fn"} _x12 1x12`,
			want: map[string]float64{"nightly.openfaas-fn": 1},
			old:  map[string]float64{"nightly.openfaas-fn": 0}},
		{name: "a function never invoked since the gateway started has nothing in flight",
			load: `load 5s
  gateway_service_count{function_name="idle.openfaas-fn"} 1x24`,
			want: map[string]float64{"idle.openfaas-fn": 0}},
		{name: "started minus completed, over every code",
			load: `load 5s
  gateway_service_count{function_name="api.openfaas-fn"} 2x24
  gateway_function_invocation_started{function_name="api.openfaas-fn"} 10x24
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="200"} 6x24
  gateway_function_invocation_total{function_name="api.openfaas-fn",code="500"} 1x24`,
			want: map[string]float64{"api.openfaas-fn": 3}},
		{name: "two gateway replicas, one restarted with a run in flight: the sums stay right",
			load: `load 5s
  gateway_service_count{function_name="job.openfaas-fn",instance="gw-0"} 1x24
  gateway_service_count{function_name="job.openfaas-fn",instance="gw-1"} 1x24
  gateway_function_invocation_started{function_name="job.openfaas-fn",instance="gw-0"} 5x24
  gateway_function_invocation_total{function_name="job.openfaas-fn",instance="gw-0",code="200"} 5x24
  gateway_function_invocation_started{function_name="job.openfaas-fn",instance="gw-1"} _x12 1x12`,
			want: map[string]float64{"job.openfaas-fn": 1}},
		{name: "the peak of the last minute is kept: a run that just completed still counts",
			load: `load 5s
  gateway_service_count{function_name="job.openfaas-fn"} 1x24
  gateway_function_invocation_started{function_name="job.openfaas-fn"} 1x24
  gateway_function_invocation_total{function_name="job.openfaas-fn",code="200"} _x20 1x4`,
			want: map[string]float64{"job.openfaas-fn": 1},
			old:  map[string]float64{"job.openfaas-fn": 0}},
		{name: "a function the gateway does not know is absent: unknown",
			load: `load 5s
  gateway_service_count{function_name="other.openfaas-fn"} 1x24`,
			want: map[string]float64{"other.openfaas-fn": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, evalInstant(t, tc.load, DefaultInflightQuery, at), "default in-flight query")
			if tc.old != nil {
				require.Equal(t, tc.old, evalInstant(t, tc.load, oldInflightQuery, at), "the query before issue 10 read it wrong")
			}
		})
	}
}

// Queue depth (issue 11): every queue-worker replica reports the depth of
// the whole queue, and OpenFaaS Pro's own rule reads it with
// avg by (function_name) (chart templates/prometheus-pro-cfg.yaml). With
// three replicas the depth must read as the queue's, not three times it.
func TestDefaultPendingQueryDoesNotMultiplyByReplicas(t *testing.T) {
	load := `load 5s
  queue_worker_pending_messages{function_name="resize.openfaas-fn",queue_name="faas-request",pod="qw-0"} 7x24
  queue_worker_pending_messages{function_name="resize.openfaas-fn",queue_name="faas-request",pod="qw-1"} 7x24
  queue_worker_pending_messages{function_name="resize.openfaas-fn",queue_name="faas-request",pod="qw-2"} 7x24
  queue_worker_pending_messages{function_name="ingest.openfaas-fn",queue_name="faas-request",pod="qw-0"} 0x24`
	require.Equal(t, map[string]float64{"resize.openfaas-fn": 7, "ingest.openfaas-fn": 0}, evalInstant(t, load, DefaultPendingQuery, 2*time.Minute))
	require.Equal(t, map[string]float64{"resize.openfaas-fn": 21, "ingest.openfaas-fn": 0},
		evalInstant(t, load, `sum by (function_name) (queue_worker_pending_messages)`, 2*time.Minute), "summing would triple it")
	require.Contains(t, DefaultPendingQuery, "avg by (function_name)", "the default follows OpenFaaS Pro's own rule")
}

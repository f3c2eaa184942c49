// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package emulator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/openfaas"
	"github.com/tierscaler/tierscaler/workload"
)

// deploy adds the scenario's function name to the source as faas-netes
// creates it, at replicas.
func (f *fixture) deploy(t *testing.T, name string, replicas int32) {
	t.Helper()
	for _, fn := range f.e.scenario.Functions {
		if fn.Name == name {
			d, err := openfaas.WorkloadDeployment(f.e.scenario.Name, fn)
			require.NoError(t, err)
			d.Spec.Replicas = &replicas
			f.src.AddDeployment(d)
			f.e.Tick(f.now)
			return
		}
	}
	t.Fatalf("no function %s", name)
}

func TestGatewayRestartResetsTheCounters(t *testing.T) {
	f := newFixture(t, testScenario)
	const api = "api.openfaas-fn"
	f.ready(t, api, 1)
	f.advance(10 * time.Second)
	fams := f.scrape(t)
	mustSample(t, fams, "gateway_function_invocation_started", "function_name", api)
	mustSample(t, fams, "gateway_function_invocation_total", "function_name", api, "code", "200")
	mustSample(t, fams, "gateway_service_count", "function_name", api)

	require.NoError(t, f.e.RestartGateway(0))
	fams = f.scrape(t)
	for _, name := range []string{"gateway_function_invocation_started", "gateway_function_invocation_total", "gateway_functions_seconds", "gateway_service_count"} {
		_, ok := sample(fams, name, "function_name", api)
		assert.False(t, ok, "%s right after the restart", name)
	}
	f.advance(openfaas.ServicePollInterval)
	fams = f.scrape(t)
	// 5s at 150 rps, 50 accepted a second for 100ms: 750 started.
	assert.InDelta(t, 750, mustSample(t, fams, "gateway_function_invocation_started", "function_name", api), 1e-6, "counted from the restart")
	mustSample(t, fams, "gateway_service_count", "function_name", api)
	assert.Equal(t, 1, f.e.State().Gateway.Replicas[0].Restarts)
	assert.ErrorContains(t, f.e.RestartGateway(1), "gateway replica 1")
}

// TestGatewayRestartThenLongRun is issue 10 item 1's situation: after a
// gateway restart, a long cron run starts and has not finished. The gateway
// exports started = 1 and no gateway_function_invocation_total at all.
func TestGatewayRestartThenLongRun(t *testing.T) {
	f := newFixture(t, `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: long
functions:
  - {name: etl, schedule: "0 3 * * *", minReplicas: 0, cron: {runDuration: 20m}}
`)
	const etl = "etl.openfaas-fn"
	f.ready(t, etl, 1)
	require.NoError(t, f.e.Fire(etl))
	f.advance(25 * time.Minute) // one run, completed
	fams := f.scrape(t)
	assert.Equal(t, 1.0, mustSample(t, fams, "gateway_function_invocation_total", "function_name", etl, "code", "200"))

	require.NoError(t, f.e.RestartGateway(0))
	require.NoError(t, f.e.Fire(etl))
	f.advance(time.Minute)
	fams = f.scrape(t)
	assert.Equal(t, 1.0, mustSample(t, fams, "gateway_function_invocation_started", "function_name", etl))
	_, ok := sample(fams, "gateway_function_invocation_total", "function_name", etl)
	assert.False(t, ok, "no completion since the restart: no _total series")
	st, err := f.e.FunctionState(etl)
	require.NoError(t, err)
	assert.Equal(t, 1.0, st.Inflight)
}

func TestGatewayReplicasExportTheirOwnSeries(t *testing.T) {
	f := newFixture(t, testScenario)
	const api = "api.openfaas-fn"
	f.ready(t, api, 1)
	require.NoError(t, f.e.SetGatewayReplicas(2))
	f.advance(10 * time.Second)
	fams := f.scrape(t)
	a := mustSample(t, fams, "gateway_function_invocation_started", "function_name", api, "kubernetes_pod_name", "gateway-0")
	b := mustSample(t, fams, "gateway_function_invocation_started", "function_name", api, "kubernetes_pod_name", "gateway-1")
	assert.InDelta(t, 750, a, 1e-6, "half of 10s at 150 rps each")
	assert.InDelta(t, 750, b, 1e-6)

	require.NoError(t, f.e.RestartGateway(1))
	f.advance(time.Second)
	fams = f.scrape(t)
	assert.InDelta(t, 825, mustSample(t, fams, "gateway_function_invocation_started", "function_name", api, "kubernetes_pod_name", "gateway-0"), 1e-6)
	assert.InDelta(t, 75, mustSample(t, fams, "gateway_function_invocation_started", "function_name", api, "kubernetes_pod_name", "gateway-1"), 1e-6)
	require.Len(t, f.e.State().Gateway.Replicas, 2)
	assert.ErrorContains(t, f.e.SetGatewayReplicas(0), "at least 1")
}

func TestRedeployResetsReplicasAndAnnotations(t *testing.T) {
	f := newFixture(t, testScenario)
	f.deploy(t, "api", 1)
	ctx := context.Background()
	d, err := f.src.Get(ctx, "api.openfaas-fn")
	require.NoError(t, err)
	n := int32(6)
	d.Spec.Replicas = &n
	d.Annotations["tierscaler.io/last-run"] = "2026-01-05T09:00:00Z"
	require.NoError(t, f.src.Update(ctx, d)) // what tierscaler did

	require.NoError(t, f.e.Redeploy(ctx, "api"))
	got, err := f.src.Get(ctx, "api.openfaas-fn")
	require.NoError(t, err)
	assert.Equal(t, int32(1), *got.Spec.Replicas, "back to com.openfaas.scale.min")
	assert.NotContains(t, got.Annotations, "tierscaler.io/last-run")
	assert.Equal(t, "sync", got.Annotations["tierscaler.io/tier"])
	assert.Equal(t, 1, f.e.State().Gateway.Writes[WriteRedeploy])
	assert.ErrorIs(t, f.e.Redeploy(ctx, "nope"), workload.ErrUnknownFunction)
}

func TestCEProviderRevertsZeroAndCapsAtFive(t *testing.T) {
	f := newFixture(t, testScenario)
	f.deploy(t, "job", 0)
	f.deploy(t, "api", 7)
	f.advance(time.Second)
	assert.Equal(t, int32(0), f.src.Snapshot().Deployments["job.openfaas-fn"], "off by default")

	f.e.SetCEProvider(true)
	f.advance(time.Second)
	c := f.src.Snapshot()
	assert.Equal(t, int32(1), c.Deployments["job.openfaas-fn"])
	assert.Equal(t, int32(5), c.Deployments["api.openfaas-fn"])
	assert.Equal(t, 2, f.e.State().Gateway.Writes[WriteCEProvider])
	var written []string
	for _, d := range f.src.Updates() {
		written = append(written, fmt.Sprintf("%s=%d", d.Name, *d.Spec.Replicas))
	}
	assert.ElementsMatch(t, []string{"job=1", "api=5"}, written, "one full update each")
	f.advance(time.Second)
	assert.Equal(t, 2, f.e.State().Gateway.Writes[WriteCEProvider], "nothing more to revert")
}

func TestScaleFromZero(t *testing.T) {
	const api, q, job = "api.openfaas-fn", "q.openfaas-fn", "job.openfaas-fn"
	t.Run("off: nothing scales, requests are refused", func(t *testing.T) {
		f := newFixture(t, testScenario)
		f.deploy(t, "api", 0)
		f.advance(2 * time.Second)
		assert.Equal(t, int32(0), f.src.Snapshot().Deployments[api])
		st, _ := f.e.FunctionState(api)
		assert.Zero(t, st.Held)
		assert.Positive(t, st.Rejected)
	})
	t.Run("on: an invocation at zero scales to the minimum and is held", func(t *testing.T) {
		f := newFixture(t, testScenario)
		f.e.SetScaleFromZero(true)
		f.deploy(t, "api", 0)
		f.deploy(t, "q", 0)
		f.deploy(t, "job", 0)
		f.advance(2 * time.Second)
		c := f.src.Snapshot()
		assert.Equal(t, int32(1), c.Deployments[api], "api's com.openfaas.scale.min is 1")
		assert.Equal(t, int32(1), c.Deployments[q], "10 jobs queued: the queue-worker invokes it; minimum 0 gives 1")
		assert.Equal(t, int32(1), c.Deployments[job], "the fire at t0 asked for it")
		st, _ := f.e.FunctionState(api)
		assert.InDelta(t, 300, st.Held, 1e-6, "2s at 150 rps held, no replica Ready yet")
		assert.Zero(t, st.Started, "the gateway counts a held request as started only once it forwards it")
		assert.Zero(t, st.Rejected)
		fams := f.scrape(t)
		_, ok := sample(fams, "gateway_function_invocation_started", "function_name", api)
		assert.False(t, ok)
		assert.InDelta(t, 300, mustSample(t, fams, "emulator_held", "function_name", api), 1e-6)
		js, _ := f.e.FunctionState(job)
		assert.Equal(t, 1.0, js.Held)

		// The replica is Ready: the held requests go through.
		f.ready(t, api, 1)
		f.ready(t, job, 1)
		f.advance(time.Second)
		st, _ = f.e.FunctionState(api)
		assert.Zero(t, st.Held)
		assert.InDelta(t, 450, st.Started, 1e-6)
		assert.Positive(t, st.Rejected, "5 slots take 5 of the 300 released at once")
		js, _ = f.e.FunctionState(job)
		assert.Equal(t, 1, js.CronRuns)
		assert.Equal(t, 1, js.CronLate)
		assert.Equal(t, 3, f.e.State().Gateway.Writes[WriteScaleFromZero])
	})
	t.Run("on, CE: the watcher puts zero back to 1 before the gateway asks", func(t *testing.T) {
		f := newFixture(t, `apiVersion: tierscaler.io/v1alpha1
kind: Scenario
name: big
functions:
  - {name: api, minReplicas: 8, maxReplicas: 10, sync: {rate: 1}}
`)
		f.e.SetScaleFromZero(true)
		f.e.SetCEProvider(true)
		f.deploy(t, "api", 0)
		f.advance(2 * time.Second)
		assert.Equal(t, int32(1), f.src.Snapshot().Deployments[api])
		w := f.e.State().Gateway.Writes
		assert.Equal(t, 1, w[WriteCEProvider])
		assert.Zero(t, w[WriteScaleFromZero])
	})
}

func TestOpenFaaSControlAPI(t *testing.T) {
	f := newFixture(t, testScenario)
	f.deploy(t, "api", 3)
	for _, tc := range []struct {
		name, method, path string
		status             int
		contains           string
	}{
		{"restart", "POST", "/control/gateway/restart", 200, `"restarts": 1`},
		{"restart replica 0", "POST", "/control/gateway/restart?replica=0", 200, `"restarts": 2`},
		{"restart a replica that is not", "POST", "/control/gateway/restart?replica=3", 400, "gateway replica 3"},
		{"restart bad replica", "POST", "/control/gateway/restart?replica=x", 400, `parameter replica: want an integer`},
		{"replicas", "POST", "/control/gateway/replicas?count=2", 200, `"gateway-1"`},
		{"replicas zero", "POST", "/control/gateway/replicas?count=0", 400, "parameter count: want an integer"},
		{"replicas by GET", "GET", "/control/gateway/replicas?count=2", 405, "not allowed"},
		{"ce on", "POST", "/control/ce-provider?enabled=true", 200, `"ceProvider": true`},
		{"ce bad", "POST", "/control/ce-provider?enabled=maybe", 400, "parameter enabled: want true or false"},
		{"scale from zero on", "POST", "/control/scale-from-zero?enabled=1", 200, `"scaleFromZero": true`},
		{"redeploy", "POST", "/control/redeploy?function=api", 200, `"function": "api.openfaas-fn"`},
		{"redeploy unknown", "POST", "/control/redeploy?function=nope", 404, "unknown function"},
		{"redeploy no function", "POST", "/control/redeploy", 400, "parameter function is required"},
		{"redeploy without a Deployment", "POST", "/control/redeploy?function=q", 502, "redeploying q.openfaas-fn"},
		{"state has the gateway", "GET", "/control/state", 200, `"gateway": {`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var b strings.Builder
			_, _ = io.Copy(&b, resp.Body)
			assert.Equal(t, tc.status, resp.StatusCode, b.String())
			assert.Contains(t, b.String(), tc.contains)
		})
	}
	assert.Equal(t, int32(1), f.src.Snapshot().Deployments["api.openfaas-fn"], "redeployed to its minimum")
}

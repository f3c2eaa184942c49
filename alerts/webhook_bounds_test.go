// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// countingCluster is a scaler.Cluster that counts the cluster reads and the
// writes the real controller makes for webhook activations.
type countingCluster struct {
	mu       sync.Mutex
	deps     []appsv1.Deployment
	reads    int
	annotate int
	// block makes State wait for its context to end.
	block bool
}

func newCountingCluster(names ...string) *countingCluster {
	c := &countingCluster{}
	for _, n := range names {
		c.deps = append(c.deps, appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "openfaas-fn",
			Labels: map[string]string{policy.LabelFunction: n}}})
	}
	return c
}

func (c *countingCluster) State(ctx context.Context) (*scaler.ClusterState, error) {
	c.mu.Lock()
	c.reads++
	block := c.block
	c.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &scaler.ClusterState{Deployments: c.deps}, nil
}

func (c *countingCluster) Scale(context.Context, *appsv1.Deployment, int32, int32) error { return nil }

func (c *countingCluster) Annotate(context.Context, *appsv1.Deployment, map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.annotate++
	return nil
}

func (c *countingCluster) counts() (reads, annotations int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.annotate
}

type nopQuerier struct{}

func (nopQuerier) Query(context.Context, string, time.Time) (model.Vector, []string, error) {
	return nil, nil, nil
}

// controllerHandler is the webhook in front of the real controller (not
// leading, so that it records activations on the Deployments as a follower
// replica does).
func controllerHandler(t *testing.T, cl scaler.Cluster, o WebhookOptions) (*WebhookHandler, *Metrics) {
	t.Helper()
	ctl, err := scaler.New(scaler.Options{Policy: policy.Default(), Cluster: cl, Querier: nopQuerier{},
		Metrics: scaler.NewMetrics(prometheus.NewRegistry()), Log: logr.Discard()})
	require.NoError(t, err)
	auth, err := NewAuthenticator(AuthOptions{Mode: AuthNone})
	require.NoError(t, err)
	o.Activator, o.Auth, o.Metrics, o.Log = ctl, auth, NewMetrics(), logr.Discard()
	h, err := NewWebhookHandler(o)
	require.NoError(t, err)
	return h, o.Metrics
}

// bigPayload is a body of about size bytes: firing alerts for distinct
// functions fn-0, fn-1, ... (the first few exist), each named twice.
func bigPayload(size int) (string, int) {
	var alerts []string
	n := 0
	for total := 0; total < size-512; n++ {
		a := alertJSON("firing", map[string]string{"alertname": "APIHighInvocationRate", "function_name": fmt.Sprintf("fn-%d.openfaas-fn", n)})
		alerts = append(alerts, a, a)
		total += 2*len(a) + 2
	}
	return payload(alerts...), n
}

// TestWebhookBoundsTheWorkOfOneRequest: a 1 MiB body naming thousands of
// functions made one full cluster read per function (18,921 in the review).
// One request now reads the cluster state once, activates each function
// once, at most MaxFunctions of them, and says which it skipped.
func TestWebhookBoundsTheWorkOfOneRequest(t *testing.T) {
	cl := newCountingCluster("fn-0", "fn-1", "fn-2")
	h, m := controllerHandler(t, cl, WebhookOptions{})
	body, distinct := bigPayload(DefaultMaxBodyBytes)
	require.Greater(t, distinct, 2000)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathWebhook, strings.NewReader(body)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	reads, annotations := cl.counts()
	assert.Equal(t, 1, reads, "one cluster read per request, whatever the number of functions")
	assert.Equal(t, 3, annotations, "one activation per existing function")
	assert.Equal(t, float64(DefaultMaxFunctions-3), testutilValue(m, WebhookUnknownFunction))
	assert.Equal(t, float64(distinct-DefaultMaxFunctions), testutilValue(m, WebhookOverLimit),
		"the functions over the per-request limit are counted, not activated")
	assert.Contains(t, rec.Body.String(), `"overLimit":`)
}

// TestWebhookHonoursItsDeadline: a request whose activations cannot finish
// within the handler's timeout is answered 503 (Alertmanager retries), and
// the handler does not go on reading the cluster once per function after
// the deadline.
func TestWebhookHonoursItsDeadline(t *testing.T) {
	cl := newCountingCluster("fn-0")
	cl.block = true
	h, _ := controllerHandler(t, cl, WebhookOptions{Timeout: 5 * time.Millisecond})
	body, _ := bigPayload(64 << 10)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathWebhook, strings.NewReader(body)))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Less(t, time.Since(start), 2*time.Second)
	reads, _ := cl.counts()
	assert.LessOrEqual(t, reads, 1, "at most one read, none once the deadline has passed")
}

// blockingActivator holds every call until released and records the most
// calls in progress at once.
type blockingActivator struct {
	mu       sync.Mutex
	inFlight int
	most     int
	release  chan struct{}
}

func (a *blockingActivator) ActivateAll(_ context.Context, fns []scaler.FunctionRef) []error {
	a.mu.Lock()
	a.inFlight++
	a.most = max(a.most, a.inFlight)
	a.mu.Unlock()
	<-a.release
	a.mu.Lock()
	a.inFlight--
	a.mu.Unlock()
	return make([]error, len(fns))
}

func (a *blockingActivator) busy() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inFlight
}

// TestWebhookLimitsConcurrentRequests: at most MaxConcurrent requests
// activate at once; one that cannot start within its timeout is answered
// 503 with Retry-After, so that Alertmanager retries.
func TestWebhookLimitsConcurrentRequests(t *testing.T) {
	act := &blockingActivator{release: make(chan struct{})}
	auth, err := NewAuthenticator(AuthOptions{Mode: AuthNone})
	require.NoError(t, err)
	m := NewMetrics()
	h, err := NewWebhookHandler(WebhookOptions{Activator: act, Auth: auth, Metrics: m, MaxConcurrent: 2, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	body := payload(alertJSON("firing", map[string]string{"function_name": "a.openfaas-fn"}))
	serve := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathWebhook, strings.NewReader(body)))
		return rec
	}

	// Two requests take both slots and stay in the activator.
	var holders sync.WaitGroup
	held := make(chan *httptest.ResponseRecorder, 2)
	for range 2 {
		holders.Go(func() { held <- serve() })
	}
	require.Eventually(t, func() bool { return act.busy() == 2 }, 5*time.Second, time.Millisecond)

	// Three more find no slot within their timeout.
	var others sync.WaitGroup
	for range 3 {
		others.Go(func() {
			rec := serve()
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.Contains(t, rec.Body.String(), `"busy":true`)
			assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		})
	}
	others.Wait()
	close(act.release)
	holders.Wait()
	close(held)
	for rec := range held {
		assert.Equal(t, http.StatusOK, rec.Code, "the requests that held a slot were served")
	}
	assert.Equal(t, 2, act.most, "at most MaxConcurrent activations at once")
	assert.Equal(t, 3.0, testutilRequests(m, PathWebhook, RequestBusy))
	assert.Equal(t, 2.0, testutilRequests(m, PathWebhook, RequestOK))
}

func testutilValue(m *Metrics, result string) float64 {
	return testutil.ToFloat64(m.WebhookAlerts.WithLabelValues(result))
}

func testutilRequests(m *Metrics, path, result string) float64 {
	return testutil.ToFloat64(m.WebhookRequests.WithLabelValues(path, result))
}

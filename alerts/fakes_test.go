// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// fakeAM is an in-process Alertmanager API: it records the posted alerts
// and answers GET /api/v2/alerts with what the test sets.
type fakeAM struct {
	srv *httptest.Server

	mu       sync.Mutex
	posts    [][]PostableAlert
	failNext int  // the next POSTs answered 503
	down     bool // every request answered 503
	status   int  // if set, the answer to every POST
	hang     chan struct{}
	active   []GettableAlert
	listed   []url.Values
}

func newFakeAM(t *testing.T) *fakeAM {
	f := &fakeAM{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.mu.Lock()
		if f.hang != nil {
			close(f.hang)
			f.hang = nil
		}
		f.mu.Unlock()
		f.srv.Close()
	})
	return f
}

func (f *fakeAM) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		http.Error(w, "hung", http.StatusServiceUnavailable)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/api/v2/alerts" {
		http.NotFound(w, r)
		return
	}
	if f.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.Method {
	case http.MethodGet:
		f.listed = append(f.listed, r.URL.Query())
		_ = json.NewEncoder(w).Encode(f.active)
	case http.MethodPost:
		if f.failNext > 0 {
			f.failNext--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var batch []PostableAlert
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.status != 0 {
			http.Error(w, "rejected", f.status)
			return
		}
		f.posts = append(f.posts, batch)
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	}
}

// received returns every alert posted so far, in order.
func (f *fakeAM) received() []PostableAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PostableAlert
	for _, b := range f.posts {
		out = append(out, b...)
	}
	return out
}

func (f *fakeAM) set(fn func(f *fakeAM)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func newTestNotifier(t *testing.T, o NotifierOptions) *Notifier {
	t.Helper()
	if o.Log.GetSink() == nil {
		o.Log = testr.New(t)
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 5 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 20 * time.Millisecond
	}
	n, err := NewNotifier(o)
	if err != nil {
		t.Fatalf("NewNotifier: %v", err)
	}
	return n
}

// start runs n until the test ends.
func start(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Start(ctx); err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func capacity(fn string, tier policy.Tier) policy.Shortfall {
	return policy.Shortfall{Function: fn, Namespace: "openfaas-fn", Tier: tier, Reason: policy.ShortfallCapacity,
		Missing: policy.Resources{MilliCPU: 500, Memory: 128 << 20, Pods: 1}, Message: fn + " does not fit"}
}

func metricsDown() policy.Shortfall {
	return policy.Shortfall{Reason: policy.ShortfallMetricsUnavailable, Message: "no data"}
}

func counterValue(t *testing.T, m *Metrics, name, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(m.AlertsSent.WithLabelValues(name, result))
}

// fakeActivator records activations and fails those the test says.
type fakeActivator struct {
	mu      sync.Mutex
	calls   []string
	unknown map[string]bool
	fail    map[string]error
	at      []time.Time
}

func (a *fakeActivator) ActivateAll(_ context.Context, fns []scaler.FunctionRef) []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	errs := make([]error, len(fns))
	for i, f := range fns {
		key := f.Key()
		a.calls = append(a.calls, key)
		a.at = append(a.at, time.Now())
		if a.unknown[key] {
			errs[i] = fmt.Errorf("%w %s", scaler.ErrUnknownFunction, key)
		} else if err := a.fail[key]; err != nil {
			errs[i] = err
		}
	}
	return errs
}

func (a *fakeActivator) Calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

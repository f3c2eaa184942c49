// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tierscaler/tierscaler/scaler"
)

const (
	testToken    = "s3cret-token"
	testBasic    = "alertmanager:pa55:word"
	testBasicUsr = "alertmanager"
	testBasicPwd = "pa55:word"
)

func payload(alerts ...string) string {
	return `{"version":"4","groupKey":"{}:{alertname=\"x\"}","status":"firing","receiver":"tierscaler",` +
		`"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am:9093","alerts":[` +
		strings.Join(alerts, ",") + `]}`
}

func alertJSON(status string, labels map[string]string) string {
	b, _ := json.Marshal(WebhookAlert{Status: status, Labels: labels, StartsAt: t0})
	return string(b)
}

func newTestHandler(t *testing.T, act Activator, auth AuthOptions) (*WebhookHandler, *Metrics) {
	t.Helper()
	auth.Log = testr.New(t)
	a, err := NewAuthenticator(auth)
	require.NoError(t, err)
	m := NewMetrics()
	h, err := NewWebhookHandler(WebhookOptions{Activator: act, Auth: a, Metrics: m, Log: testr.New(t), DefaultNamespace: "openfaas-fn"})
	require.NoError(t, err)
	return h, m
}

func TestWebhook(t *testing.T) {
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken) }
	firing := func(fn string) string {
		return alertJSON("firing", map[string]string{"alertname": "APIHighInvocationRate", "function_name": fn})
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		auth       func(r *http.Request)
		noLength   bool
		wantCode   int
		wantCalls  []string
		wantBody   string
		wantResult string
		check      func(t *testing.T, rec *httptest.ResponseRecorder, res WebhookResult)
	}{
		{name: "firing alert activates the function", body: payload(firing("figlet.openfaas-fn")), auth: bearer,
			wantCode: 200, wantCalls: []string{"figlet.openfaas-fn"}, wantResult: RequestOK,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) {
				assert.Equal(t, []string{"figlet.openfaas-fn"}, res.Activated)
			}},
		{name: "OpenFaaS path works the same", path: PathSystemAlert, body: payload(firing("figlet.team-a")), auth: bearer,
			wantCode: 200, wantCalls: []string{"figlet.team-a"}, wantResult: RequestOK},
		{name: "bare name takes the default namespace", body: payload(firing("figlet")), auth: bearer,
			wantCode: 200, wantCalls: []string{"figlet.openfaas-fn"}, wantResult: RequestOK},
		{name: "resolved alert is accepted and ignored",
			body: payload(alertJSON("resolved", map[string]string{"alertname": "x", "function_name": "figlet.openfaas-fn"})), auth: bearer,
			wantCode: 200, wantCalls: nil, wantResult: RequestOK,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) { assert.Equal(t, 1, res.Resolved) }},
		{name: "alert status falls back to the group status",
			body: `{"status":"firing","alerts":[{"labels":{"function_name":"a.b"}}]}`, auth: bearer,
			wantCode: 200, wantCalls: []string{"a.b"}, wantResult: RequestOK},
		{name: "unknown function is ignored with 200", body: payload(firing("ghost.openfaas-fn"), firing("figlet.openfaas-fn")), auth: bearer,
			wantCode: 200, wantCalls: []string{"ghost.openfaas-fn", "figlet.openfaas-fn"}, wantResult: RequestOK,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) {
				assert.Equal(t, []string{"ghost.openfaas-fn"}, res.Unknown)
				assert.Equal(t, []string{"figlet.openfaas-fn"}, res.Activated)
			}},
		{name: "failed activation answers 503 so that Alertmanager retries", body: payload(firing("broken.openfaas-fn")), auth: bearer,
			wantCode: 503, wantCalls: []string{"broken.openfaas-fn"}, wantResult: RequestError,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) {
				assert.Equal(t, []string{"broken.openfaas-fn: apiserver unreachable"}, res.Failed)
			}},
		{name: "each function once per payload", body: payload(firing("figlet.openfaas-fn"), firing("figlet.openfaas-fn"), firing("figlet")), auth: bearer,
			wantCode: 200, wantCalls: []string{"figlet.openfaas-fn"}, wantResult: RequestOK,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) { assert.Equal(t, 2, res.Ignored) }},
		{name: "alerts without function_name and tierscaler's own are ignored",
			body: payload(alertJSON("firing", map[string]string{"alertname": "NodeDown"}),
				alertJSON("firing", map[string]string{"alertname": AlertCapacityShortfall, "service": "tierscaler", "function_name": "figlet.openfaas-fn"}),
				alertJSON("firing", map[string]string{"alertname": AlertCronAtRisk, "component": "tierscaler", "service": "report.openfaas-fn", "function": "report.openfaas-fn"})),
			auth: bearer, wantCode: 200, wantResult: RequestOK,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) { assert.Equal(t, 3, res.Ignored) }},
		{name: "an activation rule's function label activates",
			body: payload(alertJSON("firing", map[string]string{"alertname": "FunctionRejectingRequests", "tierscaler": "activate", "function": "figlet.team-a"})),
			auth: bearer, wantCode: 200, wantCalls: []string{"figlet.team-a"}, wantResult: RequestOK},
		{name: "function_name wins over function",
			body: payload(alertJSON("firing", map[string]string{"alertname": "x", "function_name": "a.b", "function": "c.d"})),
			auth: bearer, wantCode: 200, wantCalls: []string{"a.b"}, wantResult: RequestOK},
		{name: "invalid function_name and status are reported, valid ones still act",
			body: payload(firing("Not_Valid.openfaas-fn"), firing("a.b.c"), firing("ok.openfaas-fn"),
				alertJSON("pending", map[string]string{"function_name": "x.y"})),
			auth: bearer, wantCode: 200, wantCalls: []string{"ok.openfaas-fn"}, wantResult: RequestOK,
			check: func(t *testing.T, _ *httptest.ResponseRecorder, res WebhookResult) {
				require.Len(t, res.Invalid, 3)
				assert.Contains(t, res.Invalid[0], `function name "Not_Valid"`)
				assert.Contains(t, res.Invalid[2], `status "pending"`)
			}},
		{name: "empty alert list", body: payload(), auth: bearer, wantCode: 200, wantResult: RequestOK},
		{name: "basic auth is accepted", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.SetBasicAuth(testBasicUsr, testBasicPwd) }, wantCode: 200,
			wantCalls: []string{"figlet.openfaas-fn"}, wantResult: RequestOK},
		{name: "no credentials: 401 with challenges", body: payload(firing("figlet")), wantCode: 401,
			wantResult: RequestUnauthorized, wantBody: "unauthorized",
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ WebhookResult) {
				assert.ElementsMatch(t, []string{`Bearer realm="tierscaler"`, `Basic realm="tierscaler", charset="UTF-8"`},
					rec.Header().Values("WWW-Authenticate"))
			}},
		{name: "wrong token: 401", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken+"x") }, wantCode: 401, wantResult: RequestUnauthorized},
		{name: "token prefix: 401", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, wantCode: 401, wantResult: RequestUnauthorized},
		{name: "wrong basic password: 401", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.SetBasicAuth(testBasicUsr, "nope") }, wantCode: 401, wantResult: RequestUnauthorized},
		{name: "token sent as basic: 401", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.SetBasicAuth(testToken, "") }, wantCode: 401, wantResult: RequestUnauthorized},
		{name: "empty bearer: 401", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, wantCode: 401, wantResult: RequestUnauthorized},
		{name: "lower-case scheme is accepted", body: payload(firing("figlet")),
			auth: func(r *http.Request) { r.Header.Set("Authorization", "bearer "+testToken) }, wantCode: 200,
			wantCalls: []string{"figlet.openfaas-fn"}, wantResult: RequestOK},
		{name: "wrong method: 405", method: http.MethodGet, auth: bearer, wantCode: 405, wantResult: RequestMethodNotAllowed,
			check: func(t *testing.T, rec *httptest.ResponseRecorder, _ WebhookResult) {
				assert.Equal(t, "POST", rec.Header().Get("Allow"))
			}},
		{name: "other path: 404", path: "/system/alerts", body: payload(), auth: bearer, wantCode: 404, wantResult: RequestNotFound},
		{name: "too large by Content-Length: 413", body: payload(strings.Repeat(" ", DefaultMaxBodyBytes)), auth: bearer,
			wantCode: 413, wantResult: RequestTooLarge, wantBody: "limit is 1048576 bytes"},
		{name: "too large while streaming: 413", body: payload(strings.Repeat(" ", DefaultMaxBodyBytes)), noLength: true, auth: bearer,
			wantCode: 413, wantResult: RequestTooLarge},
		{name: "exactly the limit is fine", body: payload() + strings.Repeat(" ", DefaultMaxBodyBytes-len(payload())), auth: bearer,
			wantCode: 200, wantResult: RequestOK},
		{name: "garbage: 400", body: "not json", auth: bearer, wantCode: 400, wantResult: RequestBadRequest, wantBody: "want a JSON object"},
		{name: "truncated JSON: 400", body: payload(firing("a"))[:40], auth: bearer, wantCode: 400, wantResult: RequestBadRequest, wantBody: "ends early"},
		{name: "wrong type: 400 naming the field", body: `{"alerts":[{"status":"firing","labels":{"function_name":3}}]}`, auth: bearer,
			wantCode: 400, wantResult: RequestBadRequest, wantBody: "alerts.labels"},
		{name: "trailing data: 400", body: payload() + "{}", auth: bearer, wantCode: 400, wantResult: RequestBadRequest, wantBody: "data after"},
		{name: "empty body: 400", body: "", auth: bearer, wantCode: 400, wantResult: RequestBadRequest, wantBody: "empty body"},
		{name: "unauthenticated garbage is 401, not 400", body: "garbage", wantCode: 401, wantResult: RequestUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act := &fakeActivator{unknown: map[string]bool{"ghost.openfaas-fn": true},
				fail: map[string]error{"broken.openfaas-fn": errors.New("apiserver unreachable")}}
			h, m := newTestHandler(t, act, AuthOptions{Token: testToken, BasicAuth: testBasic})
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = PathWebhook
			}
			var body io.Reader = strings.NewReader(tt.body)
			if tt.noLength {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest(method, path, body)
			if tt.noLength {
				req.ContentLength = -1
			}
			if tt.auth != nil {
				tt.auth(req)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tt.wantCode, rec.Code, "body: %s", rec.Body.String())
			assert.Equal(t, tt.wantCalls, act.Calls())
			if tt.wantBody != "" {
				assert.Contains(t, rec.Body.String(), tt.wantBody)
			}
			labelPath := path
			if tt.wantResult == RequestNotFound {
				labelPath = "other"
			}
			assert.Equal(t, 1.0, testutil.ToFloat64(m.WebhookRequests.WithLabelValues(labelPath, tt.wantResult)))
			var res WebhookResult
			if rec.Code == 200 || rec.Code == 503 {
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
			}
			if tt.check != nil {
				tt.check(t, rec, res)
			}
		})
	}
}

func TestWebhookAuthNone(t *testing.T) {
	act := &fakeActivator{}
	h, _ := newTestHandler(t, act, AuthOptions{Mode: AuthNone, Token: "ignored"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathSystemAlert, strings.NewReader(payload(
		alertJSON("firing", map[string]string{"function_name": "figlet.openfaas-fn"})))))
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, []string{"figlet.openfaas-fn"}, act.Calls())
}

func TestWebhookCountsAlerts(t *testing.T) {
	act := &fakeActivator{unknown: map[string]bool{"ghost.openfaas-fn": true}}
	h, m := newTestHandler(t, act, AuthOptions{Token: testToken})
	req := httptest.NewRequest(http.MethodPost, PathWebhook, strings.NewReader(payload(
		alertJSON("firing", map[string]string{"function_name": "a"}),
		alertJSON("firing", map[string]string{"function_name": "ghost"}),
		alertJSON("resolved", map[string]string{"function_name": "a"}),
		alertJSON("firing", map[string]string{"function_name": "-bad"}),
		alertJSON("firing", map[string]string{}),
	)))
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	for result, want := range map[string]float64{WebhookActivated: 1, WebhookUnknownFunction: 1, WebhookResolved: 1,
		WebhookInvalid: 1, WebhookIgnored: 1, WebhookError: 0} {
		assert.Equal(t, want, testutil.ToFloat64(m.WebhookAlerts.WithLabelValues(result)), result)
	}
	assert.Equal(t, 1, testutil.CollectAndCount(m.WebhookDuration))
}

func TestWebhookRecoversFromAPanickingActivator(t *testing.T) {
	h, m := newTestHandler(t, panicActivator{}, AuthOptions{Mode: AuthNone})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathWebhook, strings.NewReader(payload(
		alertJSON("firing", map[string]string{"function_name": "a"})))))
	assert.Equal(t, 500, rec.Code)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.WebhookRequests.WithLabelValues(PathWebhook, RequestError)))
}

type panicActivator struct{}

func (panicActivator) ActivateAll(context.Context, []scaler.FunctionRef) []error { panic("boom") }

func TestNewWebhookHandlerErrors(t *testing.T) {
	auth, err := NewAuthenticator(AuthOptions{Mode: AuthNone})
	require.NoError(t, err)
	_, err = NewWebhookHandler(WebhookOptions{Auth: auth})
	assert.ErrorContains(t, err, "activator")
	_, err = NewWebhookHandler(WebhookOptions{Activator: &fakeActivator{}})
	assert.ErrorContains(t, err, "authenticator")
	_, err = NewWebhookHandler(WebhookOptions{Activator: &fakeActivator{}, Auth: auth, DefaultNamespace: "Bad_NS"})
	assert.ErrorContains(t, err, "default namespace")
}

func TestParseFunctionName(t *testing.T) {
	tests := []struct {
		in, name, ns string
		wantErr      string
	}{
		{in: "figlet.openfaas-fn", name: "figlet", ns: "openfaas-fn"},
		{in: "figlet", name: "figlet", ns: "openfaas-fn"},
		{in: "a-1.b-2", name: "a-1", ns: "b-2"},
		{in: "", wantErr: "empty function_name"},
		{in: ".openfaas-fn", wantErr: "function name"},
		{in: "figlet.", wantErr: "namespace"},
		{in: "a.b.c", wantErr: `function name "a.b"`},
		{in: "Figlet.openfaas-fn", wantErr: "function name"},
		{in: "figlet.Open", wantErr: "namespace"},
		{in: strings.Repeat("a", 64), wantErr: "function name"},
		{in: "fig let", wantErr: "function name"},
		{in: "figlet.ns\n", wantErr: "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, ns, err := ParseFunctionName(tt.in, "openfaas-fn")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.name, name)
			assert.Equal(t, tt.ns, ns)
		})
	}
	_, _, err := ParseFunctionName("figlet", "")
	assert.ErrorContains(t, err, "no default namespace")
}

func TestParseAuthMode(t *testing.T) {
	for in, want := range map[string]AuthMode{"": AuthRequired, "required": AuthRequired, "NONE": AuthNone, " none ": AuthNone} {
		got, err := ParseAuthMode(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseAuthMode("optional")
	assert.ErrorContains(t, err, `"optional"`)
}

func TestAuthenticatorOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	token := write("token", testToken+"\n")
	basic := write("basic", testBasic+"\n")
	empty := write("empty", "\n")
	badBasic := write("badbasic", "nopassword")
	spaced := write("spaced", "two words")
	password := write("basic-auth-password", "s3cret")
	twoLines := write("twolines", "one\ntwo")
	tests := []struct {
		name    string
		o       AuthOptions
		wantErr string
	}{
		{"token file", AuthOptions{TokenFile: token}, ""},
		{"basic file", AuthOptions{BasicAuthFile: basic}, ""},
		{"both", AuthOptions{TokenFile: token, BasicAuthFile: basic}, ""},
		{"none needs nothing", AuthOptions{Mode: AuthNone}, ""},
		{"required needs credentials", AuthOptions{}, "no credentials are configured"},
		{"missing file", AuthOptions{TokenFile: filepath.Join(dir, "absent")}, "read the token"},
		{"empty file", AuthOptions{TokenFile: empty}, "is empty"},
		{"basic without password", AuthOptions{BasicAuthFile: badBasic}, "user:password"},
		{"token with a space", AuthOptions{TokenFile: spaced}, "white space"},
		{"file and literal", AuthOptions{TokenFile: token, Token: "x"}, "not both"},
		{"bad mode", AuthOptions{Mode: "maybe"}, "want"},
		{"password file", AuthOptions{BasicAuthPasswordFile: password}, ""},
		{"password file with a user", AuthOptions{BasicAuthPasswordFile: password, BasicAuthUser: "ops"}, ""},
		{"password file and user:password file", AuthOptions{BasicAuthPasswordFile: password, BasicAuthFile: basic}, "not both"},
		{"user without a password file", AuthOptions{BasicAuthUser: "admin", Token: "t"}, "without a basic-auth password file"},
		{"user with a colon", AuthOptions{BasicAuthPasswordFile: password, BasicAuthUser: "a:b"}, "colon"},
		{"empty password file", AuthOptions{BasicAuthPasswordFile: empty}, "basic-auth password file"},
		{"password of two lines", AuthOptions{BasicAuthPasswordFile: twoLines}, "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAuthenticator(tt.o)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestAuthenticatorTakesTheOpenFaaSSecret: the OpenFaaS basic-auth Secret
// mounted as it is (key basic-auth-password, no trailing newline, or one
// when it was written by hand) authenticates OpenFaaS CE's Alertmanager,
// which sends user admin and that password (password_file, trimmed).
func TestAuthenticatorTakesTheOpenFaaSSecret(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "basic-auth-password")
	require.NoError(t, os.WriteFile(p, []byte("a1b2c3\n"), 0o600))
	a, err := NewAuthenticator(AuthOptions{BasicAuthPasswordFile: p, Reload: time.Nanosecond, Log: testr.New(t)})
	require.NoError(t, err)
	req := func(user, pass string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, PathSystemAlert, nil)
		r.SetBasicAuth(user, pass)
		return r
	}
	assert.True(t, a.Authenticate(req("admin", "a1b2c3")))
	assert.False(t, a.Authenticate(req("admin", "a1b2c3\n")))
	assert.False(t, a.Authenticate(req("ops", "a1b2c3")))
	assert.False(t, a.Authenticate(req("admin", "wrong")))
	assert.Equal(t, []string{`Basic realm="tierscaler", charset="UTF-8"`}, a.Challenges())

	// A rotated Secret is picked up.
	require.NoError(t, os.WriteFile(p, []byte("rotated-password"), 0o600))
	assert.True(t, a.Authenticate(req("admin", "rotated-password")))
	assert.False(t, a.Authenticate(req("admin", "a1b2c3")))
}

func TestAuthenticatorReloadsRotatedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(p, []byte("old-token"), 0o600))
	a, err := NewAuthenticator(AuthOptions{TokenFile: p, Reload: time.Nanosecond, Log: testr.New(t)})
	require.NoError(t, err)
	req := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, PathWebhook, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	assert.True(t, a.Authenticate(req("old-token")))

	require.NoError(t, os.WriteFile(p, []byte("new-token-longer"), 0o600))
	assert.True(t, a.Authenticate(req("new-token-longer")))
	assert.False(t, a.Authenticate(req("old-token")))

	// A rotation that leaves the file briefly unreadable keeps the last
	// good token.
	require.NoError(t, os.Remove(p))
	assert.True(t, a.Authenticate(req("new-token-longer")))
	require.NoError(t, os.WriteFile(p, []byte("\n"), 0o600))
	assert.True(t, a.Authenticate(req("new-token-longer")))
}

func TestParseWebhookSeeds(t *testing.T) {
	tests := []struct {
		seed    string
		wantErr string
		check   func(t *testing.T, m *WebhookMessage)
	}{
		{seed: "alertmanager-firing", check: func(t *testing.T, m *WebhookMessage) {
			assert.Equal(t, "4", m.Version)
			assert.Equal(t, "tierscaler", m.Receiver)
			assert.Equal(t, GroupKey(`{}/{tierscaler="activate"}:{function_name="figlet.openfaas-fn"}`), m.GroupKey)
			require.Len(t, m.Alerts, 1)
			assert.Equal(t, "figlet.openfaas-fn", m.Alerts[0].Labels["function_name"])
			assert.True(t, m.Alerts[0].EndsAt.IsZero())
			assert.Equal(t, 123456789, m.Alerts[0].StartsAt.Nanosecond())
		}},
		{seed: "alertmanager-mixed-group", check: func(t *testing.T, m *WebhookMessage) {
			assert.Len(t, m.Alerts, 5)
			assert.Equal(t, uint64(3), m.TruncatedAlerts)
		}},
		{seed: "openfaas-gateway-style", check: func(t *testing.T, m *WebhookMessage) {
			assert.Equal(t, GroupKey("18195285354214864953"), m.GroupKey)
			assert.Equal(t, "func_echoit", m.Alerts[0].Labels["function_name"])
		}},
		{seed: "openfaas-minimal-bare-name", check: func(t *testing.T, m *WebhookMessage) { assert.Len(t, m.Alerts, 1) }},
		{seed: "bom-prefixed", check: func(t *testing.T, m *WebhookMessage) { assert.Empty(t, m.Alerts) }},
		{seed: "alerts-null"},
		{seed: "empty-object"},
		{seed: "labels-null"},
		{seed: "unknown-fields"},
		{seed: "duplicate-keys", check: func(t *testing.T, m *WebhookMessage) {
			assert.Equal(t, "firing", m.Alerts[0].Status, "the last duplicate wins")
		}},
		{seed: "null", wantErr: "want a JSON object"},
		{seed: "array", wantErr: "want a JSON object"},
		{seed: "empty", wantErr: "empty body"},
		{seed: "trailing-garbage", wantErr: "data after the JSON object"},
		{seed: "two-objects", wantErr: "data after the JSON object"},
		{seed: "truncated", wantErr: "ends early"},
		{seed: "label-number", wantErr: "field alerts.labels: got a JSON number, want a string"},
		{seed: "bad-time", wantErr: "invalid webhook payload"},
		{seed: "negative-truncated", wantErr: "truncatedAlerts"},
	}
	for _, tt := range tests {
		t.Run(tt.seed, func(t *testing.T) {
			data := readSeed(t, tt.seed)
			m, err := ParseWebhook(data)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, m)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// readSeed reads a seed of the fuzz corpus.
func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseWebhook", name))
	require.NoError(t, err)
	header, lit, ok := strings.Cut(string(raw), "\n")
	require.True(t, ok)
	require.Equal(t, "go test fuzz v1", header)
	lit = strings.TrimSpace(lit)
	require.True(t, strings.HasPrefix(lit, "[]byte(") && strings.HasSuffix(lit, ")"), lit)
	s, err := strconv.Unquote(lit[len("[]byte(") : len(lit)-1])
	require.NoError(t, err)
	return []byte(s)
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

// The webhook's paths. Both take the Alertmanager webhook payload.
const (
	// PathSystemAlert is the OpenFaaS gateway's endpoint: an Alertmanager
	// receiver that points at the gateway can point at tierscaler instead.
	PathSystemAlert = "/system/alert"
	// PathWebhook is tierscaler's own endpoint.
	PathWebhook = "/webhook/alertmanager"
)

// Defaults of WebhookOptions.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultWebhookTimeout = 20 * time.Second
	// DefaultMaxFunctions bounds the functions one request activates.
	DefaultMaxFunctions = 100
	// DefaultMaxConcurrent bounds the requests that activate at once.
	DefaultMaxConcurrent = 4
)

// Activator records activation requests for functions and triggers a
// reconcile; *scaler.Controller satisfies it. It is called once per webhook
// request with every function of the request, and returns one error per
// function, in order: nil, one wrapping scaler.ErrUnknownFunction when
// tierscaler does not watch the function, or the reason it failed. It must
// honour ctx.
type Activator interface {
	ActivateAll(ctx context.Context, fns []scaler.FunctionRef) []error
}

var _ Activator = (*scaler.Controller)(nil)

// WebhookOptions configure a WebhookHandler.
type WebhookOptions struct {
	// Activator is called for each function of a firing alert. Required.
	Activator Activator
	// Auth checks the credentials. Required: use
	// NewAuthenticator(AuthOptions{Mode: AuthNone}) to accept every request.
	Auth *Authenticator
	// DefaultNamespace is the namespace of a function_name without one
	// (default policy.DefaultNamespace, openfaas-fn).
	DefaultNamespace string
	// MaxBodyBytes bounds a request body (default 1 MiB); a larger one is
	// answered 413.
	MaxBodyBytes int64
	// Timeout bounds the activations of one request, the wait for a
	// concurrency slot included (default 20s).
	Timeout time.Duration
	// MaxFunctions bounds the distinct functions one request activates
	// (default 100); the functions beyond it are counted in the answer's
	// overLimit and in tierscaler_webhook_alerts_total{result="over-limit"},
	// and not activated.
	MaxFunctions int
	// MaxConcurrent bounds the requests that activate at once (default 4). A
	// request that finds no slot within Timeout is answered 503 with
	// Retry-After, and Alertmanager retries it.
	MaxConcurrent int
	// Metrics default to a fresh, unregistered set.
	Metrics *Metrics
	Log     logr.Logger
}

// WebhookHandler serves POST /system/alert and POST /webhook/alertmanager.
// A firing alert with a function_name label activates that function; a
// resolved alert is accepted and ignored: it never scales anything down.
type WebhookHandler struct {
	o   WebhookOptions
	log logr.Logger
	// slots bounds the requests that activate at once.
	slots chan struct{}
}

// NewWebhookHandler checks the options and returns the handler.
func NewWebhookHandler(o WebhookOptions) (*WebhookHandler, error) {
	if o.Activator == nil {
		return nil, errors.New("alerts: the webhook needs an activator")
	}
	if o.Auth == nil {
		return nil, errors.New("alerts: the webhook needs an authenticator (AuthNone to accept every request)")
	}
	if o.DefaultNamespace == "" {
		o.DefaultNamespace = policy.DefaultNamespace
	}
	if errs := validation.IsDNS1123Label(o.DefaultNamespace); len(errs) > 0 {
		return nil, fmt.Errorf("alerts: default namespace %q: %s", o.DefaultNamespace, strings.Join(errs, "; "))
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultWebhookTimeout
	}
	if o.MaxFunctions <= 0 {
		o.MaxFunctions = DefaultMaxFunctions
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	h := &WebhookHandler{o: o, log: o.Log.WithName("webhook"), slots: make(chan struct{}, o.MaxConcurrent)}
	if o.Auth.Mode() == AuthNone {
		h.log.Info("WARNING: webhook authentication is off (--webhook-auth=none): anyone who reaches the webhook port can activate any function tierscaler watches")
	}
	return h, nil
}

// WebhookResult is the JSON answer to an accepted webhook request.
type WebhookResult struct {
	// Activated are the functions (name.namespace) activated.
	Activated []string `json:"activated"`
	// Unknown are functions tierscaler does not watch; they are ignored.
	Unknown []string `json:"unknown,omitempty"`
	// Failed are activations that failed, with the reason; the answer is
	// then 503 so that Alertmanager retries.
	Failed []string `json:"failed,omitempty"`
	// Invalid are alerts with an invalid function_name or status.
	Invalid []string `json:"invalid,omitempty"`
	// Resolved counts resolved alerts (ignored), Ignored the alerts without
	// a function_name, duplicates and tierscaler's own alerts.
	Resolved int `json:"resolved"`
	Ignored  int `json:"ignored"`
	// OverLimit counts the functions beyond the per-request limit
	// (WebhookOptions.MaxFunctions); they were not activated.
	OverLimit int `json:"overLimit,omitempty"`
	// Busy says the request found no free activation slot within its
	// timeout: nothing was activated, the answer is 503 with Retry-After.
	Busy bool `json:"busy,omitempty"`
}

// ServeHTTP answers 404 for another path, 405 for another method, 401
// without valid credentials, 413 for a body over the limit, 400 for a body
// that is not a webhook payload, 503 when an activation failed or too many
// requests are activating at once (Alertmanager retries), and 200
// otherwise, unknown functions included.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := r.URL.Path
	if path != PathSystemAlert && path != PathWebhook {
		h.count("other", RequestNotFound)
		http.NotFound(w, r)
		return
	}
	defer func() {
		h.o.Metrics.WebhookDuration.WithLabelValues(path).Observe(time.Since(start).Seconds())
	}()
	defer func() {
		if p := recover(); p != nil {
			h.count(path, RequestError)
			h.log.Error(fmt.Errorf("panic: %v", p), "webhook request panicked", "path", path, "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	if r.Method != http.MethodPost {
		h.count(path, RequestMethodNotAllowed)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("method %s not allowed: POST an Alertmanager webhook payload", r.Method), http.StatusMethodNotAllowed)
		return
	}
	if !h.o.Auth.Authenticate(r) {
		h.count(path, RequestUnauthorized)
		h.log.V(1).Info("unauthenticated webhook request", "path", path, "remote", r.RemoteAddr)
		for _, c := range h.o.Auth.Challenges() {
			w.Header().Add("WWW-Authenticate", c)
		}
		http.Error(w, "unauthorized: send the webhook's bearer token or basic-auth credentials", http.StatusUnauthorized)
		return
	}
	if r.ContentLength > h.o.MaxBodyBytes {
		h.tooLarge(w, path)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.tooLarge(w, path)
			return
		}
		h.count(path, RequestBadRequest)
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	msg, err := ParseWebhook(data)
	if err != nil {
		h.count(path, RequestBadRequest)
		h.log.Info("rejected a malformed webhook payload", "path", path, "remote", r.RemoteAddr, "error", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.Timeout)
	defer cancel()
	res := h.Handle(ctx, msg)
	code, result := http.StatusOK, RequestOK
	switch {
	case res.Busy:
		code, result = http.StatusServiceUnavailable, RequestBusy
		w.Header().Set("Retry-After", "1")
	case len(res.Failed) > 0:
		code, result = http.StatusServiceUnavailable, RequestError
	}
	h.count(path, result)
	h.log.Info("webhook", "path", path, "receiver", msg.Receiver, "alerts", len(msg.Alerts), "activated", len(res.Activated),
		"unknown", len(res.Unknown), "failed", len(res.Failed), "invalid", len(res.Invalid), "resolved", res.Resolved, "ignored", res.Ignored,
		"overLimit", res.OverLimit, "busy", res.Busy, "duration", time.Since(start))
	body, _ := json.Marshal(res)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

func (h *WebhookHandler) tooLarge(w http.ResponseWriter, path string) {
	h.count(path, RequestTooLarge)
	http.Error(w, fmt.Sprintf("request body too large: the limit is %d bytes", h.o.MaxBodyBytes), http.StatusRequestEntityTooLarge)
}

func (h *WebhookHandler) count(path, result string) {
	h.o.Metrics.WebhookRequests.WithLabelValues(path, result).Inc()
}

// Handle acts on a parsed payload: each firing alert with a function_name
// activates its function once, at most MaxFunctions functions per payload,
// with one call to the Activator; resolved alerts, alerts without a
// function_name and tierscaler's own alerts are ignored. The work of one
// payload is bounded whatever its size: one pass over the alerts, one
// cluster read, at most MaxFunctions activations, MaxConcurrent payloads at
// once, and none of it after ctx ends.
func (h *WebhookHandler) Handle(ctx context.Context, msg *WebhookMessage) WebhookResult {
	res := WebhookResult{Activated: []string{}}
	tally := func(result string) { h.o.Metrics.WebhookAlerts.WithLabelValues(result).Inc() }
	seen := map[string]bool{}
	var refs []scaler.FunctionRef
	var alertNames []string
	for i, al := range msg.Alerts {
		status := al.Status
		if status == "" {
			status = msg.Status
		}
		fn := al.Labels[LabelFunctionName]
		if fn == "" {
			// tierscaler's own activation rules (deploy/chart/tierscaler/
			// rules) name the function in "function", so that they are
			// harmless if they reach OpenFaaS CE's gateway.
			fn = al.Labels[LabelFunction]
		}
		switch {
		case ownAlert(al.Labels):
			// tierscaler's own shortfall alerts routed back: activating the
			// function again would not help.
			res.Ignored++
			tally(WebhookIgnored)
			continue
		case status == StatusResolved:
			res.Resolved++
			tally(WebhookResolved)
			continue
		case status != StatusFiring:
			res.Invalid = append(res.Invalid, fmt.Sprintf("alert %d: status %q: want %q or %q", i, truncate(status), StatusFiring, StatusResolved))
			tally(WebhookInvalid)
			continue
		case fn == "":
			res.Ignored++
			tally(WebhookIgnored)
			continue
		}
		name, ns, err := ParseFunctionName(fn, h.o.DefaultNamespace)
		if err != nil {
			res.Invalid = append(res.Invalid, fmt.Sprintf("alert %d: %v", i, err))
			tally(WebhookInvalid)
			continue
		}
		key := name + "." + ns
		if seen[key] {
			res.Ignored++
			tally(WebhookIgnored)
			continue
		}
		seen[key] = true
		if len(refs) >= h.o.MaxFunctions {
			res.OverLimit++
			tally(WebhookOverLimit)
			continue
		}
		refs = append(refs, scaler.FunctionRef{Namespace: ns, Name: name})
		alertNames = append(alertNames, al.Labels[LabelAlertName])
	}
	if res.OverLimit > 0 {
		h.log.Info("webhook payload names more functions than one request may activate; the rest were not activated (group alerts by function_name)",
			"limit", h.o.MaxFunctions, "overLimit", res.OverLimit)
	}
	if len(refs) == 0 {
		return res
	}
	if !h.acquire(ctx) {
		res.Busy = true
		for _, r := range refs {
			res.Failed = append(res.Failed, r.Key()+": too many webhook requests at once; retry later")
			tally(WebhookError)
		}
		return res
	}
	defer func() { <-h.slots }()
	errs := h.o.Activator.ActivateAll(ctx, refs)
	for i, r := range refs {
		key := r.Key()
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		switch {
		case err == nil:
			res.Activated = append(res.Activated, key)
			tally(WebhookActivated)
		case errors.Is(err, scaler.ErrUnknownFunction):
			res.Unknown = append(res.Unknown, key)
			tally(WebhookUnknownFunction)
		default:
			res.Failed = append(res.Failed, key+": "+err.Error())
			tally(WebhookError)
			h.log.Error(err, "activation failed", "function", key, "alertname", alertNames[i])
		}
	}
	return res
}

// acquire takes an activation slot, waiting until ctx ends for one.
func (h *WebhookHandler) acquire(ctx context.Context) bool {
	select {
	case h.slots <- struct{}{}:
		return true
	default:
	}
	select {
	case h.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// ParseWebhook decodes an Alertmanager webhook payload (version "4", the
// same body OpenFaaS's /system/alert takes). Unknown fields are ignored; a
// body that is not exactly one JSON object, or whose known fields have the
// wrong types, is an error saying what is wrong. It never panics.
func ParseWebhook(data []byte) (*WebhookMessage, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty body: want an Alertmanager webhook payload (a JSON object)")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("invalid webhook payload: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var m WebhookMessage
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("invalid webhook payload: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("invalid webhook payload: data after the JSON object at offset %d", dec.InputOffset())
	}
	return &m, nil
}

func describeJSONError(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("%v (at offset %d)", se, se.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %s: got a JSON %s, want %s (at offset %d)", field, te.Value, jsonKind(te.Type.String()), te.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the JSON ends early"
	}
	return err.Error()
}

func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "time.Time":
		return "an RFC 3339 time string"
	case strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "int"):
		return "a non-negative integer"
	}
	return "an object"
}

// ownAlert reports whether labels are those of one of the Notifier's alerts
// (service=tierscaler marked them before component did, in 0.1).
func ownAlert(labels map[string]string) bool {
	return (labels[LabelComponent] == ComponentName || labels[LabelService] == ServiceName) &&
		slices.Contains(AlertNames, labels[LabelAlertName])
}

// ParseFunctionName splits an OpenFaaS function_name label, "name.namespace"
// or a bare "name" in defaultNamespace, and checks that both parts are
// valid Kubernetes names (DNS-1123 labels).
func ParseFunctionName(functionName, defaultNamespace string) (name, namespace string, err error) {
	if functionName == "" {
		return "", "", errors.New("empty function_name")
	}
	name, namespace = functionName, defaultNamespace
	if i := strings.LastIndexByte(functionName, '.'); i >= 0 {
		name, namespace = functionName[:i], functionName[i+1:]
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", "", fmt.Errorf("function_name %q: function name %q: %s", truncate(functionName), truncate(name), errs[0])
	}
	if namespace == "" {
		return "", "", fmt.Errorf("function_name %q names no namespace and there is no default namespace", truncate(functionName))
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", "", fmt.Errorf("function_name %q: namespace %q: %s", truncate(functionName), truncate(namespace), errs[0])
	}
	return name, namespace, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const limit = 100
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

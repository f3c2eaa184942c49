// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tierscaler/tierscaler/scaler"
)

type nopActivator struct{}

func (nopActivator) ActivateAll(_ context.Context, fns []scaler.FunctionRef) []error {
	return make([]error, len(fns))
}

// FuzzParseWebhook checks that the webhook parser and what the handler does
// with its result never panic, and that what parses survives a round trip.
// The seed corpus is testdata/fuzz/FuzzParseWebhook: payloads as
// Alertmanager and OpenFaaS send them, and edge cases.
func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"function_name":"figlet.openfaas-fn"}}]}`))
	auth, err := NewAuthenticator(AuthOptions{Mode: AuthNone})
	if err != nil {
		f.Fatal(err)
	}
	h, err := NewWebhookHandler(WebhookOptions{Activator: nopActivator{}, Auth: auth})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseWebhook(data)
		if err != nil {
			if m != nil {
				t.Fatalf("ParseWebhook returned a message and an error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if m == nil {
			t.Fatal("ParseWebhook returned neither a message nor an error")
		}
		res := h.Handle(context.Background(), m)
		if got := len(res.Activated) + len(res.Unknown) + len(res.Failed) + len(res.Invalid) + res.Resolved + res.Ignored + res.OverLimit; got != len(m.Alerts) {
			t.Fatalf("Handle accounted for %d of %d alerts: %+v", got, len(m.Alerts), res)
		}
		for _, a := range m.Alerts {
			name, ns, err := ParseFunctionName(a.Labels[LabelFunctionName], "openfaas-fn")
			if err == nil && (name == "" || ns == "") {
				t.Fatalf("ParseFunctionName(%q) = %q, %q without an error", a.Labels[LabelFunctionName], name, ns)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			return // a time JSON cannot hold; the parser accepted it
		}
		if _, err := ParseWebhook(again); err != nil {
			t.Fatalf("re-encoded payload does not parse: %v\n%s", err, again)
		}
	})
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// PostableAlert is one element of the JSON array that Alertmanager's
// POST /api/v2/alerts accepts (its postableAlert schema).
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Key identifies the alert the way Alertmanager does: by its whole label
// set.
func (a *PostableAlert) Key() string { return labelsKey(a.Labels) }

// Resolved reports whether the alert is resolved at now: its endsAt is set
// and not after now.
func (a *PostableAlert) Resolved(now time.Time) bool {
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}

// GettableAlert is the part of an element of GET /api/v2/alerts that
// tierscaler reads.
type GettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// WebhookMessage is the body Alertmanager's webhook receiver sends
// (version "4"). The OpenFaaS gateway's POST /system/alert takes the same
// body and reads only status, receiver and alerts[].status,
// alerts[].labels.alertname and alerts[].labels.function_name.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          GroupKey          `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// GroupKey is a webhook payload's groupKey: a string, or a number as
// Alertmanager releases before 0.6 sent it (OpenFaaS's own tests still use
// such payloads).
type GroupKey string

// UnmarshalJSON accepts a JSON string or number.
func (g *GroupKey) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' && b[0] != 'n' {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("groupKey: want a string or a number, got %s", truncate(string(b)))
		}
		*g = GroupKey(n)
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != nil {
		*g = GroupKey(*s)
	}
	return nil
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// The alert statuses of a webhook payload.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// labelsKey renders a label set canonically: sorted name=value pairs joined
// by a byte that label names cannot hold.
func labelsKey(ls map[string]string) string {
	names := make([]string, 0, len(ls))
	for k := range ls {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(ls[k])
		b.WriteByte(0xff)
	}
	return b.String()
}

// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package alerts

import (
	"fmt"
	"net/http"

	promconfig "github.com/prometheus/common/config"

	"github.com/tierscaler/tierscaler/policy"
)

// NewPolicyClient returns the HTTP client for the policy's Alertmanagers:
// alertmanager.httpConfig, Prometheus' own HTTP client configuration (basic
// auth, bearer tokens and TLS from files, headers, proxies), with a
// DefaultPostTimeout timeout; without one, a plain client with that timeout.
func NewPolicyClient(p *policy.Policy) (*http.Client, error) {
	cfg := p.Alertmanager.HTTPConfig
	if cfg == nil {
		return &http.Client{Timeout: DefaultPostTimeout}, nil
	}
	c, err := promconfig.NewClientFromConfig(*cfg, "alertmanager")
	if err != nil {
		return nil, fmt.Errorf("alertmanager.httpConfig: %w", err)
	}
	c.Timeout = DefaultPostTimeout
	return c, nil
}

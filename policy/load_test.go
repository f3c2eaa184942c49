// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"errors"
	"fmt"
	promconfig "github.com/prometheus/common/config"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// header is the part every policy file must have.
const header = "apiVersion: tierscaler.io/v1alpha1\nkind: Policy\n"

// ignoreLocation compares policies without their loaded *time.Location
// (compared by name where it matters).
var ignoreLocation = cmp.Options{cmpopts.IgnoreUnexported(Policy{}), cmpopts.IgnoreUnexported(promconfig.ProxyConfig{})}

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) Duration { return Duration{d} }

// wantDefault is the fully defaulted policy, written out by hand so that it
// checks SetDefaults rather than repeating it.
func wantDefault() *Policy {
	return &Policy{
		APIVersion: "tierscaler.io/v1alpha1",
		Kind:       "Policy",
		Prometheus: PrometheusConfig{
			URL:          "http://prometheus.openfaas:9090",
			Timeout:      dur(5 * time.Second),
			MaxStaleness: dur(2 * time.Minute),
		},
		Alertmanager: AlertmanagerConfig{
			URLs:           []string{"http://alertmanager.openfaas:9093"},
			ResendInterval: dur(time.Minute),
		},
		Namespaces:  []string{"openfaas-fn"},
		Interval:    dur(15 * time.Second),
		TimeZone:    "UTC",
		DefaultTier: TierSync,
		OpenFaaS:    OpenFaaSConfig{Edition: "pro"},
		Signals:     Signals{CPU: ptr(true), Memory: ptr(true)},
		Thresholds: Thresholds{
			CPU:               0.8,
			Memory:            0.8,
			RejectionRate:     ptr(0.1),
			TargetUtilization: 0.7,
		},
		Tiers: TierSettings{
			Sync: SyncTier{ScaleDownWindow: dur(5 * time.Minute)},
			Cron: CronTier{
				Lookahead:    dur(10 * time.Minute),
				StartupTime:  dur(30 * time.Second),
				Margin:       dur(15 * time.Second),
				GracePeriod:  dur(30 * time.Second),
				ZeroWhenIdle: ptr(true),
			},
			Async: AsyncTier{
				IdleAfter:         dur(time.Minute),
				ActivationTimeout: dur(2 * time.Minute),
				PendingPerReplica: 10,
			},
		},
		Preemption: Preemption{
			Order:                []Tier{TierCron, TierAsync},
			MaxEvictionsPerCycle: ptr(5),
			MinResidency:         dur(time.Minute),
		},
		Queries: Queries{
			Functions:   `max by (function_name) (timestamp(gateway_service_count))`,
			Rejections:  `sum by (function_name) (rate(gateway_function_invocation_total{code="429"}[1m])) > 0`,
			Invocations: `sum by (function_name) (rate(gateway_function_invocation_total[1m])) > 0`,
			Duration:    DefaultDurationQuery,
			Inflight:    `max_over_time((sum by (function_name) (gateway_function_invocation_started) - (sum by (function_name) (gateway_function_invocation_total) or 0 * sum by (function_name) (gateway_function_invocation_started)))[1m:5s]) or (0 * max by (function_name) (gateway_service_count))`,
			Pending:     `avg by (function_name) (queue_worker_pending_messages)`,
			CPU:         `sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[1m]))`,
			Memory:      `sum by (namespace, pod) (container_memory_working_set_bytes{container!="",container!="POD"})`,
		},
	}
}

func TestMinimalFileIsFullyDefaulted(t *testing.T) {
	p, err := Load(filepath.Join("testdata", "minimal.yaml"))
	require.NoError(t, err)
	if diff := cmp.Diff(wantDefault(), p, ignoreLocation); diff != "" {
		t.Errorf("minimal file (-want +got):\n%s", diff)
	}
	require.Same(t, time.UTC, p.Location())
	if diff := cmp.Diff(wantDefault(), Default(), ignoreLocation); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
	require.NoError(t, Default().Validate())
}

// TestDefaults checks every default on its own, from a minimal file.
func TestDefaults(t *testing.T) {
	p, err := Parse([]byte(header))
	require.NoError(t, err)
	cases := []struct {
		field string
		got   any
		want  any
	}{
		{"namespaces", p.Namespaces, []string{"openfaas-fn"}},
		{"interval", p.Interval.Duration, 15 * time.Second},
		{"timeZone", p.TimeZone, "UTC"},
		{"location", p.Location().String(), "UTC"},
		{"defaultTier", p.DefaultTier, TierSync},
		{"prometheus.url", p.Prometheus.URL, "http://prometheus.openfaas:9090"},
		{"prometheus.timeout", p.Prometheus.Timeout.Duration, 5 * time.Second},
		{"prometheus.maxStaleness", p.Prometheus.MaxStaleness.Duration, 2 * time.Minute},
		{"alertmanager.urls", p.Alertmanager.URLs, []string{"http://alertmanager.openfaas:9093"}},
		{"alertmanager.urls (accessor)", p.AlertmanagerURLs(), []string{"http://alertmanager.openfaas:9093"}},
		{"alerting enabled", p.AlertingEnabled(), true},
		{"alertmanager.resendInterval", p.Alertmanager.ResendInterval.Duration, time.Minute},
		{"thresholds.cpu", p.Thresholds.CPU, 0.8},
		{"thresholds.memory", p.Thresholds.Memory, 0.8},
		{"thresholds.rejectionRate", *p.Thresholds.RejectionRate, 0.1},
		{"thresholds.rejectionRate (accessor)", p.RejectionRate(), 0.1},
		{"thresholds.targetUtilization", p.Thresholds.TargetUtilization, 0.7},
		{"tiers.sync.scaleDownWindow", p.Tiers.Sync.ScaleDownWindow.Duration, 5 * time.Minute},
		{"tiers.cron.lookahead", p.Tiers.Cron.Lookahead.Duration, 10 * time.Minute},
		{"tiers.cron.startupTime", p.Tiers.Cron.StartupTime.Duration, 30 * time.Second},
		{"tiers.cron.margin", p.Tiers.Cron.Margin.Duration, 15 * time.Second},
		{"tiers.cron.gracePeriod", p.Tiers.Cron.GracePeriod.Duration, 30 * time.Second},
		{"tiers.cron.zeroWhenIdle", *p.Tiers.Cron.ZeroWhenIdle, true},
		{"tiers.cron.zeroWhenIdle (accessor)", p.ZeroCronWhenIdle(), true},
		{"tiers.async.idleAfter", p.Tiers.Async.IdleAfter.Duration, time.Minute},
		{"tiers.async.activationTimeout", p.Tiers.Async.ActivationTimeout.Duration, 2 * time.Minute},
		{"tiers.async.pendingPerReplica", p.Tiers.Async.PendingPerReplica, int32(10)},
		{"preemption.order", p.Preemption.Order, []Tier{TierCron, TierAsync}},
		{"preemption.maxEvictionsPerCycle", *p.Preemption.MaxEvictionsPerCycle, 5},
		{"preemption.maxEvictionsPerCycle (accessor)", p.MaxEvictions(), 5},
		{"preemption.minResidency", p.Preemption.MinResidency.Duration, time.Minute},
		{"queries.functions", p.Queries.Functions, DefaultFunctionsQuery},
		{"queries.rejections", p.Queries.Rejections, DefaultRejectionsQuery},
		{"queries.invocations", p.Queries.Invocations, DefaultInvocationsQuery},
		{"queries.duration", p.Queries.Duration, DefaultDurationQuery},
		{"queries.inflight", p.Queries.Inflight, DefaultInflightQuery},
		{"queries.pending", p.Queries.Pending, DefaultPendingQuery},
		{"queries.cpu", p.Queries.CPU, DefaultCPUQuery},
		{"queries.memory", p.Queries.Memory, DefaultMemoryQuery},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("default of %s (-want +got):\n%s", tc.field, diff)
			}
		})
	}
}

// TestAccessorsOnZeroPolicy: the accessors give the defaults even on a
// policy SetDefaults never saw.
func TestAccessorsOnZeroPolicy(t *testing.T) {
	var p Policy
	require.Equal(t, 0.1, p.RejectionRate())
	require.True(t, p.ZeroCronWhenIdle())
	require.Equal(t, 5, p.MaxEvictions())
	require.Equal(t, []string{DefaultAlertmanagerURL}, p.AlertmanagerURLs())
	require.Same(t, time.UTC, p.Location())
	p.TimeZone = "Asia/Tokyo"
	require.Equal(t, "Asia/Tokyo", p.Location().String())
}

// TestExampleFile: the shipped example loads, and since it spells out every
// default, it gives exactly the default policy.
func TestExampleFile(t *testing.T) {
	p, err := Load(filepath.Join("..", "deploy", "policy.example.yaml"))
	require.NoError(t, err)
	if diff := cmp.Diff(wantDefault(), p, ignoreLocation); diff != "" {
		t.Errorf("deploy/policy.example.yaml is not the default policy (-default +example):\n%s", diff)
	}
	require.NoError(t, p.Validate())
}

func TestExplicitValuesAreKept(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, p *Policy)
	}{
		{"explicit zero maxEvictionsPerCycle stays 0", "preemption:\n  maxEvictionsPerCycle: 0\n",
			func(t *testing.T, p *Policy) {
				require.NotNil(t, p.Preemption.MaxEvictionsPerCycle)
				require.Equal(t, 0, *p.Preemption.MaxEvictionsPerCycle)
				require.Equal(t, 0, p.MaxEvictions())
			}},
		{"explicit zeroWhenIdle false stays false", "tiers:\n  cron:\n    zeroWhenIdle: false\n",
			func(t *testing.T, p *Policy) {
				require.NotNil(t, p.Tiers.Cron.ZeroWhenIdle)
				require.False(t, *p.Tiers.Cron.ZeroWhenIdle)
				require.False(t, p.ZeroCronWhenIdle())
			}},
		{"explicit empty alertmanager urls stays empty: alerting off", "alertmanager:\n  urls: []\n",
			func(t *testing.T, p *Policy) {
				require.NotNil(t, p.Alertmanager.URLs)
				require.Empty(t, p.Alertmanager.URLs)
				require.Empty(t, p.AlertmanagerURLs())
				require.False(t, p.AlertingEnabled())
			}},
		{"null alertmanager urls is unset: the default", "alertmanager:\n  urls:\n",
			func(t *testing.T, p *Policy) {
				require.Equal(t, []string{DefaultAlertmanagerURL}, p.Alertmanager.URLs)
				require.True(t, p.AlertingEnabled())
			}},
		{"explicit empty preemption order stays empty: nothing evictable", "preemption:\n  order: []\n",
			func(t *testing.T, p *Policy) {
				require.NotNil(t, p.Preemption.Order)
				require.Empty(t, p.Preemption.Order)
			}},
		{"explicit zero rejectionRate stays 0", "thresholds:\n  rejectionRate: 0\n",
			func(t *testing.T, p *Policy) { require.Equal(t, 0.0, p.RejectionRate()) }},
		{"a time zone is loaded", "timeZone: Europe/Berlin\n",
			func(t *testing.T, p *Policy) { require.Equal(t, "Europe/Berlin", p.Location().String()) }},
		{"explicit values win over defaults", `
interval: 30s
namespaces: [team-a, team-b]
defaultTier: async
prometheus:
  url: https://prom.example.com/prometheus
  timeout: 10s
thresholds:
  cpu: 1
preemption:
  order: [async]
queries:
  cpu: sum by (namespace, pod) (rate(pod_cpu_usage_seconds_total[2m]))
`, func(t *testing.T, p *Policy) {
			require.Equal(t, 30*time.Second, p.Interval.Duration)
			require.Equal(t, []string{"team-a", "team-b"}, p.Namespaces)
			require.Equal(t, TierAsync, p.DefaultTier)
			require.Equal(t, "https://prom.example.com/prometheus", p.Prometheus.URL)
			require.Equal(t, 10*time.Second, p.Prometheus.Timeout.Duration)
			require.Equal(t, 1.0, p.Thresholds.CPU)
			require.Equal(t, []Tier{TierAsync}, p.Preemption.Order)
			require.Equal(t, `sum by (namespace, pod) (rate(pod_cpu_usage_seconds_total[2m]))`, p.Queries.CPU)
			require.Equal(t, DefaultMemoryQuery, p.Queries.Memory)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(header + tc.yaml))
			require.NoError(t, err)
			tc.check(t, p)
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string // appended to header unless noHeader
		// noHeader: yaml is the whole file.
		noHeader bool
		want     []string
	}{
		{name: "empty file", noHeader: true, yaml: "",
			want: []string{"the policy file is empty"}},
		{name: "only whitespace and comments", noHeader: true, yaml: "\n  \n# nothing\n",
			want: []string{"the policy file is empty"}},
		{name: "not a mapping", noHeader: true, yaml: "- a\n- b\n",
			want: []string{"the policy file must be a YAML mapping, got a list"}},
		{name: "invalid YAML", yaml: "interval: [15s\n",
			want: []string{"invalid YAML"}},
		{name: "duplicate key", yaml: "interval: 15s\ninterval: 30s\n",
			want: []string{`invalid YAML: line 4: key "interval" already set in map`}},
		{name: "duplicate nested key", yaml: "thresholds:\n  cpu: 0.5\n  cpu: 0.6\n",
			want: []string{`key "cpu" already set`}},

		{name: "missing apiVersion", noHeader: true, yaml: "kind: Policy\n",
			want: []string{`apiVersion: required; must be "tierscaler.io/v1alpha1"`}},
		{name: "wrong apiVersion", noHeader: true, yaml: "apiVersion: tierscaler.io/v1\nkind: Policy\n",
			want: []string{`apiVersion: must be "tierscaler.io/v1alpha1", got "tierscaler.io/v1"`}},
		{name: "wrong kind", noHeader: true, yaml: "apiVersion: tierscaler.io/v1alpha1\nkind: Config\n",
			want: []string{`kind: must be "Policy", got "Config"`}},
		{name: "missing kind", noHeader: true, yaml: "apiVersion: tierscaler.io/v1alpha1\n",
			want: []string{`kind: required; must be "Policy"`}},

		{name: "unknown top-level field", yaml: "intervall: 15s\n",
			want: []string{"intervall: unknown field"}},
		{name: "unknown nested field", yaml: "tiers:\n  cron:\n    lookahed: 10m\n",
			want: []string{"tiers.cron.lookahed: unknown field"}},
		{name: "field name in the wrong case", yaml: "timezone: UTC\n",
			want: []string{`timezone: unknown field (did you mean "timeZone"?)`}},
		{name: "a section that is not a mapping", yaml: "thresholds: 0.8\n",
			want: []string{"thresholds: must be a mapping, got a number 0.8"}},

		{name: "duration in words", yaml: "interval: 5 minutes\n",
			want: []string{`interval: invalid duration "5 minutes"`}},
		{name: "negative duration", yaml: "tiers:\n  async:\n    idleAfter: -1s\n",
			want: []string{"tiers.async.idleAfter: must be a positive duration, got -1s"}},
		{name: "explicit zero duration", yaml: "preemption:\n  minResidency: 0s\n",
			want: []string{"preemption.minResidency: must be a positive duration, got 0s"}},
		{name: "duration as a number", yaml: "interval: 15\n",
			want: []string{`interval: a duration must be a string such as "30s" or "5m", got 15`}},
		{name: "interval below the floor", yaml: "interval: 500ms\nprometheus:\n  timeout: 100ms\n",
			want: []string{"interval: must be at least 1s, got 500ms"}},
		{name: "timeout not shorter than the default interval", yaml: "prometheus:\n  timeout: 15s\n",
			want: []string{"prometheus.timeout: must be shorter than interval (15s, the default), got 15s"}},
		{name: "default timeout not shorter than interval", yaml: "interval: 5s\n",
			want: []string{"prometheus.timeout: must be shorter than interval (5s), got 5s, the default"}},
		{name: "default maxStaleness below interval", yaml: "interval: 3m\n",
			want: []string{"prometheus.maxStaleness: must be at least interval (3m0s), got 2m0s, the default"}},
		{name: "maxStaleness below interval", yaml: "interval: 1m\nprometheus:\n  maxStaleness: 30s\n",
			want: []string{"prometheus.maxStaleness: must be at least interval (1m0s), got 30s"}},

		{name: "threshold 0", yaml: "thresholds:\n  cpu: 0\n",
			want: []string{"thresholds.cpu: must be in (0,1], got 0"}},
		{name: "threshold 1.5", yaml: "thresholds:\n  memory: 1.5\n",
			want: []string{"thresholds.memory: must be in (0,1], got 1.5"}},
		{name: "negative target utilization", yaml: "thresholds:\n  targetUtilization: -0.5\n",
			want: []string{"thresholds.targetUtilization: must be in (0,1], got -0.5"}},
		{name: "threshold as a string", yaml: "thresholds:\n  cpu: high\n",
			want: []string{`thresholds.cpu: must be a number, got a string "high"`}},
		{name: "negative rejection rate", yaml: "thresholds:\n  rejectionRate: -0.1\n",
			want: []string{"thresholds.rejectionRate: must be a finite number >= 0, got -0.1"}},

		{name: "unknown default tier", yaml: "defaultTier: batch\n",
			want: []string{`defaultTier: unknown tier "batch"; must be sync or async`}},
		{name: "blank default tier", yaml: "defaultTier: \"\"\n",
			want: []string{`defaultTier: unknown tier ""`}},
		{name: "unknown tier in preemption order", yaml: "preemption:\n  order: [cron, batch]\n",
			want: []string{`preemption.order[1]: unknown tier "batch"`}},
		{name: "sync in preemption order", yaml: "preemption:\n  order: [cron, sync]\n",
			want: []string{"preemption.order[1]: sync must not appear: sync functions are never evicted"}},
		{name: "duplicate tier in preemption order", yaml: "preemption:\n  order: [cron, async, cron]\n",
			want: []string{`preemption.order[2]: duplicate tier "cron"`}},
		{name: "negative maxEvictionsPerCycle", yaml: "preemption:\n  maxEvictionsPerCycle: -1\n",
			want: []string{"preemption.maxEvictionsPerCycle: must be >= 0 (0 turns eviction off), got -1"}},
		{name: "fractional maxEvictionsPerCycle", yaml: "preemption:\n  maxEvictionsPerCycle: 1.5\n",
			want: []string{"preemption.maxEvictionsPerCycle: must be an integer, got a number 1.5"}},
		{name: "zero pendingPerReplica", yaml: "tiers:\n  async:\n    pendingPerReplica: 0\n",
			want: []string{"tiers.async.pendingPerReplica: must be > 0, got 0"}},
		{name: "negative pendingPerReplica", yaml: "tiers:\n  async:\n    pendingPerReplica: -3\n",
			want: []string{"tiers.async.pendingPerReplica: must be > 0, got -3"}},
		{name: "pendingPerReplica too large", yaml: "tiers:\n  async:\n    pendingPerReplica: 3000000000\n",
			want: []string{"tiers.async.pendingPerReplica: must be an integer up to 2147483647, got a number 3000000000"}},
		{name: "zeroWhenIdle not a boolean", yaml: "tiers:\n  cron:\n    zeroWhenIdle: sometimes\n",
			want: []string{`tiers.cron.zeroWhenIdle: must be true or false, got a string "sometimes"`}},

		{name: "invalid namespace", yaml: "namespaces: [OpenFaaS_fn]\n",
			want: []string{`namespaces[0]: "OpenFaaS_fn" is not a valid namespace name`}},
		{name: "namespace too long", yaml: "namespaces: [" + strings.Repeat("a", 64) + "]\n",
			want: []string{"namespaces[0]: \"aaaa"}},
		{name: "duplicate namespace", yaml: "namespaces: [a, b, a]\n",
			want: []string{`namespaces[2]: duplicate namespace "a"`}},
		{name: "empty namespace list", yaml: "namespaces: []\n",
			want: []string{"namespaces: must list at least one namespace"}},

		{name: "URL without scheme", yaml: "prometheus:\n  url: prometheus:9090\n",
			want: []string{`prometheus.url: must be an http or https URL, got "prometheus:9090"`}},
		{name: "URL with another scheme", yaml: "alertmanager:\n  urls: [\"ftp://am:9093\"]\n",
			want: []string{`alertmanager.urls[0]: must be an http or https URL, got "ftp://am:9093"`}},
		{name: "URL without host", yaml: "prometheus:\n  url: \"http:///api\"\n",
			want: []string{`prometheus.url: URL "http:///api" has no host`}},
		{name: "unparseable URL", yaml: "prometheus:\n  url: \"http://prom:90x0\"\n",
			want: []string{`prometheus.url: invalid URL "http://prom:90x0"`}},
		{name: "URL with a query", yaml: "prometheus:\n  url: \"http://prom:9090/?x=1\"\n",
			want: []string{`must not have a query or fragment`}},
		{name: "blank URL", yaml: "prometheus:\n  url: \"\"\n",
			want: []string{"prometheus.url: must not be blank"}},
		{name: "duplicate alertmanager URL", yaml: "alertmanager:\n  urls: [\"http://am:9093\", \"http://am:9093\"]\n",
			want: []string{`alertmanager.urls[1]: duplicate URL "http://am:9093"`}},
		{name: "blank alertmanager URL", yaml: "alertmanager:\n  urls: [\"\"]\n",
			want: []string{"alertmanager.urls[0]: must not be blank"}},

		{name: "bad time zone", yaml: "timeZone: Europe/Atlantis\n",
			want: []string{`timeZone: unknown time zone "Europe/Atlantis"`}},
		{name: "Local time zone", yaml: "timeZone: Local\n",
			want: []string{`timeZone: must be an IANA time zone name`}},

		{name: "blank query", yaml: "queries:\n  pending: \"  \"\n",
			want: []string{"queries.pending: must not be blank"}},
		{name: "explicit empty query", yaml: "queries:\n  inflight: \"\"\n",
			want: []string{"queries.inflight: must not be blank"}},
		{name: "unparseable PromQL", yaml: "queries:\n  invocations: sum by (function_name) (rate(x[1m])\n",
			want: []string{"queries.invocations: invalid PromQL"}},
		{name: "PromQL with an unknown function", yaml: "queries:\n  invocations: sum by (function_name) (rated(x[1m]))\n",
			want: []string{"queries.invocations: invalid PromQL", "rated"}},
		{name: "range vector query", yaml: "queries:\n  memory: container_memory_working_set_bytes[5m]\n",
			want: []string{"queries.memory: must return an instant vector, got a range vector"}},
		{name: "scalar query", yaml: "queries:\n  pending: \"42\"\n",
			want: []string{"queries.pending: must return an instant vector, got a scalar"}},
		{name: "query aggregating away the key", yaml: "queries:\n  rejections: sum(rate(gateway_function_invocation_total{code=\"429\"}[1m]))\n",
			want: []string{"queries.rejections: the result must be keyed by function_name, but sum without a by clause keeps no function_name label"}},
		{name: "query grouping by the wrong label", yaml: "queries:\n  cpu: sum by (pod) (rate(container_cpu_usage_seconds_total[1m]))\n",
			want: []string{"queries.cpu: the result must be keyed by namespace and pod, but sum by (pod) keeps no namespace label"}},
		{name: "query dropping the key with without", yaml: "queries:\n  pending: sum without (function_name) (queue_worker_pending_messages)\n",
			want: []string{"queries.pending: the result must be keyed by function_name, but sum without (function_name) drops function_name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.yaml
			if !tc.noHeader {
				in = header + in
			}
			p, err := Parse([]byte(in))
			require.Error(t, err, "policy %+v", p)
			require.Nil(t, p)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			var errs Errors
			require.ErrorAs(t, err, &errs)
		})
	}
}

// TestManyMistakesAreAllReported: decoding and validation problems all come
// back together, each naming its field.
func TestManyMistakesAreAllReported(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "many-mistakes.yaml"))
	require.Error(t, err)
	want := []string{
		`colour: unknown field`,
		`tiers.cron.prewarm: unknown field`,
		`tiers.cron.zeroWhenIdle: must be true or false, got a string "sometimes"`,
		`tiers.sync.scaleDownWindow: invalid duration "5 minutes"`,
		`prometheus.url: must be an http or https URL, got "ftp://prometheus:9090"`,
		`prometheus.timeout: must be shorter than interval (10s), got 12s`,
		`prometheus.maxStaleness: must be at least interval (10s), got 5s`,
		`alertmanager.urls[1]: must be an http or https URL, got "not a url"`,
		`alertmanager.urls[2]: duplicate URL "http://am-0:9093"`,
		`alertmanager.resendInterval: must be a positive duration, got -1s`,
		`namespaces[1]: "Bad_Namespace" is not a valid namespace name`,
		`namespaces[2]: duplicate namespace "openfaas-fn"`,
		`timeZone: unknown time zone "Mars/Olympus_Mons"`,
		`defaultTier: unknown tier "urgent"`,
		`thresholds.cpu: must be in (0,1], got 1.5`,
		`thresholds.memory: must be in (0,1], got 0`,
		`thresholds.rejectionRate: must be a finite number >= 0, got -2`,
		`tiers.cron.startupTime: must be a positive duration, got 0s`,
		`tiers.async.pendingPerReplica: must be > 0, got 0`,
		`preemption.order[0]: sync must not appear`,
		`preemption.order[2]: duplicate tier "async"`,
		`preemption.order[3]: unknown tier "batch"`,
		`preemption.maxEvictionsPerCycle: must be >= 0 (0 turns eviction off), got -1`,
		`queries.functions: must not be blank`,
		`queries.rejections: invalid PromQL`,
		`queries.cpu: the result must be keyed by namespace and pod, but sum by (pod) keeps no namespace label`,
		`queries.memory: must return an instant vector, got a range vector`,
	}
	for _, w := range want {
		require.ErrorContains(t, err, w)
	}
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, len(want), "every problem once, nothing else:\n%v", err)
	require.Contains(t, err.Error(), "testdata/many-mistakes.yaml")
	require.Contains(t, err.Error(), "invalid policy (27 problems):")

	var fe *FieldError
	require.ErrorAs(t, err, &fe)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestValidateInCode(t *testing.T) {
	p := Default()
	p.Thresholds.CPU = 2
	p.Preemption.Order = []Tier{TierSync}
	p.Queries.Pending = "sum(queue_worker_pending_messages)"
	err := p.Validate()
	require.Error(t, err)
	var errs Errors
	require.ErrorAs(t, err, &errs)
	got := make([]string, len(errs))
	for i, e := range errs {
		got[i] = e.Field
	}
	require.Equal(t, []string{"thresholds.cpu", "preemption.order[0]", "queries.pending"}, got)

	// Zero fields of a policy built in code are unset, not invalid.
	require.NoError(t, (&Policy{APIVersion: APIVersion, Kind: Kind}).Validate())
}

func TestSetDefaultsReloadsTimeZone(t *testing.T) {
	p := Default()
	p.TimeZone = "America/New_York"
	p.SetDefaults()
	require.Equal(t, "America/New_York", p.Location().String())
	p.TimeZone = "Nowhere/Special"
	p.SetDefaults()
	require.Same(t, time.UTC, p.Location(), "an invalid zone falls back to UTC")
}

func TestDefaultQueriesAreValid(t *testing.T) {
	p := Default()
	for _, q := range p.queries() {
		t.Run(q.path, func(t *testing.T) {
			require.Equal(t, q.def, *q.value)
			require.Empty(t, checkQuery(q.def, q.labels))
		})
	}
}

func TestCheckQueryShape(t *testing.T) {
	cases := []struct {
		name  string
		query string
		keys  []string
		want  string // "" for a valid query, else a part of the message
	}{
		{"bare selector", `gateway_service_count`, byFunction, ""},
		{"by clause with extra labels", `sum by (function_name, code) (rate(gateway_function_invocation_total[1m]))`, byFunction, ""},
		{"without other labels", `sum without (code, instance) (rate(gateway_function_invocation_total[1m]))`, byFunction, ""},
		{"topk keeps labels", `topk(10, sum by (function_name) (rate(gateway_function_invocation_total[1m])))`, byFunction, ""},
		{"topk over an aggregation without the key", `topk(10, sum(rate(gateway_function_invocation_total[1m])))`, byFunction, "sum without a by clause"},
		{"scalar arithmetic", `2 * sum by (function_name) (gateway_service_count)`, byFunction, ""},
		{"vector arithmetic, both sides keyed", `sum by (function_name) (a) / sum by (function_name) (b)`, byFunction, ""},
		{"vector arithmetic, right side unkeyed", `sum by (function_name) (a) / sum by (code) (b)`, byFunction, "sum by (code) keeps no function_name"},
		{"on() keeps the key", `a / on (function_name) group_left b`, byFunction, ""},
		{"on() without the key", `sum by (function_name, code) (a) / on (code) sum by (function_name, code) (b)`, byFunction, `the on(code) matching of "/" drops function_name`},
		{"ignoring() the key", `a / ignoring (function_name) b`, byFunction, `the ignoring(function_name) matching of "/" drops function_name`},
		{"group_left includes the key", `sum by (pod) (a) * on (pod) group_left (namespace) kube_pod_info`, byPod, ""},
		{"or checks both sides", `sum by (function_name) (a) or sum(b)`, byFunction, "sum without a by clause"},
		{"and takes the left side", `sum by (function_name) (a) and on () vector(1)`, byFunction, ""},
		{"label_replace may create the key", `label_replace(sum by (fn) (a), "function_name", "$1", "fn", "(.*)")`, byFunction, ""},
		{"count_values creating the key", `count_values("function_name", a)`, byFunction, ""},
		{"subquery and function", `max_over_time(sum by (namespace, pod) (a)[5m:1m])`, byPod, ""},
		{"subquery without the key", `max_over_time(sum by (pod) (a)[5m:1m])`, byPod, "keeps no namespace"},
		{"string", `"function_name"`, byFunction, "got a string"},
		{"range vector", `gateway_service_count[1m]`, byFunction, "got a range vector"},
		{"scalar function", `scalar(sum(a))`, byFunction, "got a scalar"},
		{"syntax error", `sum by function_name (a)`, byFunction, "invalid PromQL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkQuery(tc.query, tc.keys)
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.want)
		})
	}
}

func TestErrorsFormat(t *testing.T) {
	one := Errors{{Field: "a.b", Message: "bad"}}
	require.Equal(t, "invalid policy: a.b: bad", one.Error())
	two := Errors{{Field: "a", Message: "x"}, {Field: "", Message: "y"}}
	require.Equal(t, "invalid policy (2 problems):\n  - a: x\n  - y", two.Error())
	require.True(t, errors.Is(two, two[1]))
}

// TestDocSnippetsAreValid: every ```yaml block of docs/policy-file.md is a
// valid policy (with the header added where it lacks one), so the documented
// query adaptations parse and keep their key labels.
func TestDocSnippetsAreValid(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "policy-file.md"))
	require.NoError(t, err)
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	require.NotEmpty(t, blocks)
	for i, b := range blocks {
		snippet, _, ok := strings.Cut(b, "```")
		require.True(t, ok, "block %d is not closed", i)
		if !strings.Contains(snippet, "apiVersion:") {
			snippet = header + snippet
		}
		t.Run(fmt.Sprintf("block %d", i), func(t *testing.T) {
			_, err := Parse([]byte(snippet))
			require.NoError(t, err, "%s", snippet)
		})
	}
}

// FuzzParse: Parse never panics, and a policy it accepts is valid and
// survives a round trip through YAML unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/minimal.yaml", "testdata/many-mistakes.yaml", "../deploy/policy.example.yaml"} {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(header + "thresholds:\n  rejectionRate: 0\npreemption:\n  order: []\n  maxEvictionsPerCycle: 0\n"))
	f.Add([]byte(header + "alertmanager:\n  urls: []\ntiers:\n  cron:\n    zeroWhenIdle: false\n"))
	f.Add([]byte(header + "prometheus:\n  httpConfig:\n    basic_auth: {username: u, password_file: p}\n    http_headers: {X-Scope-OrgID: {values: [a]}}\nopenfaas:\n  edition: ce\nsignals:\n  cpu: false\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.NotEmpty(t, errs)
			return
		}
		require.NoError(t, p.Validate())
		out, err := yaml.Marshal(p)
		require.NoError(t, err)
		again, err := Parse(out)
		require.NoError(t, err, "%s", out)
		if diff := cmp.Diff(p, again, ignoreLocation); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		require.Equal(t, p.Location().String(), again.Location().String())
	})
}

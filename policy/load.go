// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	// Embedded zone data: timeZone loads on machines (and distroless images)
	// without /usr/share/zoneinfo.
	_ "time/tzdata"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// Defaults of the policy file. SetDefaults applies them to unset fields;
// docs/policy-file.md and deploy/policy.example.yaml repeat them.
const (
	DefaultNamespace            = "openfaas-fn"
	DefaultInterval             = 15 * time.Second
	DefaultTimeZone             = "UTC"
	DefaultFunctionTier         = TierSync
	DefaultPrometheusURL        = "http://prometheus.openfaas:9090"
	DefaultPrometheusTimeout    = 5 * time.Second
	DefaultMaxStaleness         = 2 * time.Minute
	DefaultAlertmanagerURL      = "http://alertmanager.openfaas:9093"
	DefaultResendInterval       = time.Minute
	DefaultCPUThreshold         = 0.8
	DefaultMemoryThreshold      = 0.8
	DefaultRejectionRate        = 0.1
	DefaultTargetUtilization    = 0.7
	DefaultScaleDownWindow      = 5 * time.Minute
	DefaultCronLookahead        = 10 * time.Minute
	DefaultCronStartupTime      = 30 * time.Second
	DefaultCronMargin           = 15 * time.Second
	DefaultCronGracePeriod      = 30 * time.Second
	DefaultZeroCronWhenIdle     = true
	DefaultAsyncIdleAfter       = time.Minute
	DefaultActivationTimeout    = 2 * time.Minute
	DefaultPendingPerReplica    = int32(10)
	DefaultMaxEvictionsPerCycle = 5
	DefaultMinResidency         = time.Minute
	DefaultEdition              = EditionPro
)

// DefaultPreemptionOrder is the default preemption.order: cron functions are
// evicted before async ones. Sync functions are never evicted.
var DefaultPreemptionOrder = []Tier{TierCron, TierAsync}

// MinInterval is the shortest reconcile interval accepted: each cycle runs
// eight Prometheus queries.
const MinInterval = time.Second

// Upper bounds of the policy file's numbers: every number has one, so that a
// typo cannot overflow a computation or switch a rule off.
const (
	MaxInterval             = 10 * time.Minute
	MaxWindow               = 24 * time.Hour // windows, residency, lookahead, grace, idleAfter
	MaxStartup              = time.Hour      // startupTime, margin, activationTimeout, timeouts
	MaxRejectionRate        = 1e6
	MaxPendingPerReplica    = 1_000_000
	MaxEvictionsPerCycleCap = 1000
	MinResendInterval       = time.Second
	MaxResendInterval       = time.Hour
)

// The default queries. They use the metric names of the OpenFaaS gateway
// (function_name is "<name>.<namespace>") and of cadvisor, and each returns
// an instant vector. docs/policy-file.md describes the contract a replacement
// must keep.
const (
	// DefaultFunctionsQuery: the newest scrape time of each function the
	// gateway knows. Used for staleness, and to tell "no traffic" (present
	// here, absent from the rate queries) from "unknown" (absent here).
	DefaultFunctionsQuery = `max by (function_name) (timestamp(gateway_service_count))`
	// DefaultRejectionsQuery: 429 answers per second. "> 0" keeps the
	// functions without any out of the answer: for a function the gateway
	// knows a missing sample reads 0 (no traffic), and at 10,000 mostly idle
	// functions the zeros were most of the cycle's cost (decoding them).
	DefaultRejectionsQuery = `sum by (function_name) (rate(gateway_function_invocation_total{code="429"}[1m])) > 0`
	// DefaultInvocationsQuery: completed invocations per second, all codes
	// ("> 0" as for rejections).
	DefaultInvocationsQuery = `sum by (function_name) (rate(gateway_function_invocation_total[1m])) > 0`
	// DefaultDurationQuery: mean seconds of a successful invocation; no sample
	// (not NaN) for a function without successful invocations.
	DefaultDurationQuery = `sum by (function_name) (rate(gateway_functions_seconds_sum{code="200"}[1m])) / (sum by (function_name) (rate(gateway_functions_seconds_count{code="200"}[1m])) > 0)`
	// DefaultInflightQuery: the peak number of invocations in flight over the
	// last minute, started minus completed, conservative so that a function
	// that had work in flight a moment ago is not zeroed. The gateway
	// creates a function's _total series only at its first completion, and
	// a restart resets both counters to nothing: a run that started after
	// the restart and is still running has started = 1 and no _total, so
	// the completions count as 0 there ("or 0 * started"), not as absent. A
	// function the gateway knows with no started series has had nothing
	// started since the gateway started: 0, from the last branch. The
	// controller also holds a function whose in-flight figure falls to 0
	// with no completion seen (a reset while a run goes on).
	DefaultInflightQuery = `max_over_time((sum by (function_name) (gateway_function_invocation_started) - (sum by (function_name) (gateway_function_invocation_total) or 0 * sum by (function_name) (gateway_function_invocation_started)))[1m:5s]) or (0 * max by (function_name) (gateway_service_count))`
	// DefaultPendingQuery: queued asynchronous messages (OpenFaaS Pro's
	// JetStream queue-worker; CE has no per-function queue depth). Every
	// queue-worker replica reports the depth of the whole queue, so the
	// replicas are not summed (that would read N times the truth): this
	// follows OpenFaaS Pro's own rule, avg by (function_name).
	DefaultPendingQuery = `avg by (function_name) (queue_worker_pending_messages)`
	// DefaultCPUQuery: CPU cores used per pod (cadvisor).
	DefaultCPUQuery = `sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[1m]))`
	// DefaultMemoryQuery: working-set bytes per pod (cadvisor).
	DefaultMemoryQuery = `sum by (namespace, pod) (container_memory_working_set_bytes{container!="",container!="POD"})`
)

// The queries that read the chart's recording rules
// (deploy/chart/tierscaler/rules/recording.rules.yaml), for large
// installations: each reads what the default query of the same name reads
// (TestRecordedQueriesReadWhatTheDefaultsRead), from a few recorded series
// per function. The functions query reads the time of the in-flight rule's
// samples (a rule group that stopped is stale data) and answers nothing
// while the rate rules are missing, so that missing rules make the metrics
// unavailable rather than "no traffic". The duration rule is not checked:
// it has no sample for a function without successful invocations, as the
// default query.
const (
	RecordedFunctionsQuery   = `max by (function_name) (timestamp(function_name:gateway_function_invocation_inflight:sum)) unless on () (absent(function_name:gateway_function_invocation_rejected:rate1m) or absent(function_name:gateway_function_invocation_total:rate1m))`
	RecordedRejectionsQuery  = `function_name:gateway_function_invocation_rejected:rate1m > 0`
	RecordedInvocationsQuery = `function_name:gateway_function_invocation_total:rate1m > 0`
	RecordedDurationQuery    = `function_name:gateway_functions_seconds:mean1m`
	RecordedInflightQuery    = `max_over_time(function_name:gateway_function_invocation_inflight:sum[1m])`
)

// Load reads, decodes strictly, validates and defaults the policy file at
// path. Every problem is reported at once; see Parse.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	// Files the HTTP client configurations name are relative to the
	// policy file, as in Prometheus' own configuration.
	dir := filepath.Dir(path)
	p.Prometheus.HTTPConfig.SetDirectory(dir)
	p.Alertmanager.HTTPConfig.SetDirectory(dir)
	return p, nil
}

// Parse decodes a policy file strictly, validates it and applies the
// defaults. Unknown fields, duplicate keys, values of the wrong type and
// invalid values are all reported together: the error is an Errors listing
// every problem, each with its field path (for example
// "thresholds.cpu: must be in (0,1], got 1.5").
func Parse(data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errEmptyFile
	}
	// YAMLToJSONStrict refuses duplicate keys and reports YAML syntax errors
	// with their line.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "unmarshal errors:\n  ", "")
		return nil, Errors{{Field: "", Message: "invalid YAML: " + msg}}
	}
	if string(bytes.TrimSpace(js)) == "null" {
		return nil, errEmptyFile
	}
	if s := bytes.TrimSpace(js); len(s) == 0 || s[0] != '{' {
		return nil, Errors{{Field: "", Message: "the policy file must be a YAML mapping, got " + describe(js)}}
	}

	// yaml.UnmarshalStrict stops at the first problem, and encoding/json
	// matches field names case-insensitively. So the document is first
	// walked field by field against the Policy type: that reports every
	// unknown field (exact, case-sensitive names), every value of the wrong
	// type, and records which fields were given explicitly as zero values
	// (which the struct alone cannot tell from unset ones).
	d := decoder{zero: map[string]bool{}}
	var p Policy
	d.object("", json.RawMessage(js), reflect.ValueOf(&p).Elem())
	if len(d.errs) == 0 {
		// The walk found nothing: decode for real with the strict decoder.
		var strict Policy
		if err := yaml.UnmarshalStrict(data, &strict); err != nil {
			return nil, Errors{{Field: "", Message: err.Error()}}
		}
		// The HTTP client configurations keep the walk's decoding, by
		// Prometheus' own YAML loader: prometheus/common's JSON decoding
		// of http_headers loses them.
		strict.Prometheus.HTTPConfig, strict.Alertmanager.HTTPConfig = p.Prometheus.HTTPConfig, p.Alertmanager.HTTPConfig
		p = strict
	}
	errs := append(d.errs, p.validate(d.zero)...)
	if len(errs) > 0 {
		return nil, errs
	}
	p.SetDefaults()
	return &p, nil
}

// errEmptyFile is Parse's error for a file with no content.
var errEmptyFile = Errors{{Message: fmt.Sprintf("the policy file is empty; it needs at least apiVersion: %s and kind: %s", APIVersion, Kind)}}

// Default returns the fully defaulted policy: what a file holding only
// apiVersion and kind gives.
func Default() *Policy {
	p := &Policy{APIVersion: APIVersion, Kind: Kind}
	p.SetDefaults()
	return p
}

// FieldError is one problem of a policy, with the path of its field
// ("thresholds.cpu", "preemption.order[1]"); Field is empty for a problem
// of the whole file.
type FieldError struct {
	Field   string
	Message string
}

// Error renders "field: message".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Errors is every problem found in a policy: decoding problems (unknown
// fields, wrong types) first, then invalid values in the order of the
// Policy fields.
type Errors []*FieldError

// Error lists the problems, one a line.
func (es Errors) Error() string {
	switch len(es) {
	case 0:
		return "invalid policy"
	case 1:
		return "invalid policy: " + es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid policy (%d problems):", len(es))
	for _, e := range es {
		b.WriteString("\n  - ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the individual problems, for errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Validate checks the policy and returns every problem at once as an
// Errors, or nil. Unset (zero) fields are valid: SetDefaults fills them.
// Parse additionally refuses fields given explicitly as zero where zero is
// not a valid value ("interval: 0s", "cpu: 0"), which a Policy built in code
// cannot express.
func (p *Policy) Validate() error {
	if errs := p.validate(nil); len(errs) > 0 {
		return errs
	}
	return nil
}

// SetDefaults fills every unset field with its default and loads TimeZone.
// Call it after Validate: an invalid time zone falls back to UTC here.
// Explicit empty lists are kept: alertmanager.urls: [] turns alerting off,
// preemption.order: [] turns eviction off.
func (p *Policy) SetDefaults() {
	if p.APIVersion == "" {
		p.APIVersion = APIVersion
	}
	if p.Kind == "" {
		p.Kind = Kind
	}
	if p.Namespaces == nil {
		p.Namespaces = []string{DefaultNamespace}
	}
	setDuration(&p.Interval, DefaultInterval)
	if p.TimeZone == "" {
		p.TimeZone = DefaultTimeZone
	}
	if p.DefaultTier == "" {
		p.DefaultTier = DefaultFunctionTier
	}

	if p.Prometheus.URL == "" {
		p.Prometheus.URL = DefaultPrometheusURL
	}
	setDuration(&p.Prometheus.Timeout, DefaultPrometheusTimeout)
	setDuration(&p.Prometheus.MaxStaleness, DefaultMaxStaleness)

	if p.Alertmanager.URLs == nil {
		p.Alertmanager.URLs = []string{DefaultAlertmanagerURL}
	}
	setDuration(&p.Alertmanager.ResendInterval, DefaultResendInterval)
	if p.OpenFaaS.Edition == "" {
		p.OpenFaaS.Edition = DefaultEdition
	}
	for _, b := range []**bool{&p.Signals.CPU, &p.Signals.Memory} {
		if *b == nil {
			v := true
			*b = &v
		}
	}

	setFloat(&p.Thresholds.CPU, DefaultCPUThreshold)
	setFloat(&p.Thresholds.Memory, DefaultMemoryThreshold)
	if p.Thresholds.RejectionRate == nil {
		v := DefaultRejectionRate
		p.Thresholds.RejectionRate = &v
	}
	setFloat(&p.Thresholds.TargetUtilization, DefaultTargetUtilization)

	setDuration(&p.Tiers.Sync.ScaleDownWindow, DefaultScaleDownWindow)
	c := &p.Tiers.Cron
	setDuration(&c.Lookahead, DefaultCronLookahead)
	setDuration(&c.StartupTime, DefaultCronStartupTime)
	setDuration(&c.Margin, DefaultCronMargin)
	setDuration(&c.GracePeriod, DefaultCronGracePeriod)
	if c.ZeroWhenIdle == nil {
		v := DefaultZeroCronWhenIdle
		c.ZeroWhenIdle = &v
	}
	a := &p.Tiers.Async
	setDuration(&a.IdleAfter, DefaultAsyncIdleAfter)
	setDuration(&a.ActivationTimeout, DefaultActivationTimeout)
	if a.PendingPerReplica == 0 {
		a.PendingPerReplica = DefaultPendingPerReplica
	}

	if p.Preemption.Order == nil {
		p.Preemption.Order = slices.Clone(DefaultPreemptionOrder)
	}
	if p.Preemption.MaxEvictionsPerCycle == nil {
		v := DefaultMaxEvictionsPerCycle
		p.Preemption.MaxEvictionsPerCycle = &v
	}
	setDuration(&p.Preemption.MinResidency, DefaultMinResidency)

	for _, q := range p.queries() {
		if *q.value == "" {
			*q.value = q.def
		}
	}

	p.location = time.UTC
	if loc, err := time.LoadLocation(p.TimeZone); err == nil {
		p.location = loc
	}
	p.rejectionWindow = queryWindow(p.Queries.Rejections)
}

// recordedOperation matches the range in the last part of a recording
// rule's name: rate1m, increase5m, mean1m, avg_over_time30s.
var recordedOperation = regexp.MustCompile(`:[a-z_]*?([0-9]+[smh])$`)

// recordedRange is the range a recording rule's name says its operation
// covers (1m for function_name:gateway_function_invocation_total:rate1m),
// 0 for a name without one.
func recordedRange(name string) time.Duration {
	m := recordedOperation.FindStringSubmatch(name)
	if m == nil || strings.Count(name, ":") < 2 {
		return 0
	}
	d, err := model.ParseDuration(m[1])
	if err != nil {
		return 0
	}
	return time.Duration(d)
}

// RejectionWindow is how far back queries.rejections looks: the longest
// range or subquery range in it (1m for the default). A 429 rate can hold
// refusals from before a scale change that recent. A recording rule named
// by Prometheus' convention (level:metric:operations) counts with the range
// in its operation, as rate1m in
// function_name:gateway_function_invocation_rejected:rate1m; 0 when the
// query has no range at all.
func (p *Policy) RejectionWindow() time.Duration { return p.rejectionWindow }

// queryWindow is the longest range of the matrix selectors and subqueries
// of a PromQL expression, plus their offsets, and of the recording rules it
// reads (recordedRange); 0 for none or an invalid query.
func queryWindow(q string) time.Duration {
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return 0
	}
	var w time.Duration
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch e := n.(type) {
		case *parser.MatrixSelector:
			off := time.Duration(0)
			if vs, ok := e.VectorSelector.(*parser.VectorSelector); ok {
				off = vs.OriginalOffset
			}
			w = max(w, e.Range+off)
		case *parser.SubqueryExpr:
			w = max(w, e.Range+e.OriginalOffset)
		case *parser.VectorSelector:
			w = max(w, recordedRange(e.Name)+e.OriginalOffset)
		}
		return nil
	})
	return w
}

// Location is the time zone cron schedules are evaluated in: TimeZone as
// loaded by SetDefaults (UTC when unset or invalid).
func (p *Policy) Location() *time.Location {
	if p.location != nil {
		return p.location
	}
	if p.TimeZone != "" {
		if loc, err := time.LoadLocation(p.TimeZone); err == nil {
			return loc
		}
	}
	return time.UTC
}

// CE reports whether the functions are managed by OpenFaaS CE's provider.
func (p *Policy) CE() bool { return p.OpenFaaS.Edition == EditionCE }

// CPUSignal and MemorySignal report whether the usage signals are on.
func (p *Policy) CPUSignal() bool    { return p.Signals.CPU == nil || *p.Signals.CPU }
func (p *Policy) MemorySignal() bool { return p.Signals.Memory == nil || *p.Signals.Memory }

// RejectionRate is thresholds.rejectionRate, its default when unset.
func (p *Policy) RejectionRate() float64 {
	if p.Thresholds.RejectionRate == nil {
		return DefaultRejectionRate
	}
	return *p.Thresholds.RejectionRate
}

// ZeroCronWhenIdle is tiers.cron.zeroWhenIdle, its default when unset.
func (p *Policy) ZeroCronWhenIdle() bool {
	if p.Tiers.Cron.ZeroWhenIdle == nil {
		return DefaultZeroCronWhenIdle
	}
	return *p.Tiers.Cron.ZeroWhenIdle
}

// MaxEvictions is preemption.maxEvictionsPerCycle, its default when unset.
// 0 means no evictions.
func (p *Policy) MaxEvictions() int {
	if p.Preemption.MaxEvictionsPerCycle == nil {
		return DefaultMaxEvictionsPerCycle
	}
	return *p.Preemption.MaxEvictionsPerCycle
}

// AlertmanagerURLs are the Alertmanager instances shortfall alerts are
// posted to: the default one when unset, none (alerting off) when the file
// says urls: [].
func (p *Policy) AlertmanagerURLs() []string {
	if p.Alertmanager.URLs == nil {
		return []string{DefaultAlertmanagerURL}
	}
	return p.Alertmanager.URLs
}

// AlertingEnabled reports whether any Alertmanager is configured.
func (p *Policy) AlertingEnabled() bool { return len(p.AlertmanagerURLs()) > 0 }

// effective is d, or def when d is unset, and how to show it in a message.
func effective(d Duration, def time.Duration) (time.Duration, string) {
	if d.Duration == 0 {
		return def, def.String() + ", the default"
	}
	return d.Duration, d.Duration.String()
}

func setDuration(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}

func setFloat(f *float64, def float64) {
	if *f == 0 {
		*f = def
	}
}

// query is one field of Queries with its path, default and key labels.
type query struct {
	path   string
	value  *string
	def    string
	labels []string
}

var (
	byFunction = []string{"function_name"}
	byPod      = []string{"namespace", "pod"}
)

func (p *Policy) queries() []query {
	q := &p.Queries
	return []query{
		{"queries.functions", &q.Functions, DefaultFunctionsQuery, byFunction},
		{"queries.rejections", &q.Rejections, DefaultRejectionsQuery, byFunction},
		{"queries.invocations", &q.Invocations, DefaultInvocationsQuery, byFunction},
		{"queries.duration", &q.Duration, DefaultDurationQuery, byFunction},
		{"queries.inflight", &q.Inflight, DefaultInflightQuery, byFunction},
		{"queries.pending", &q.Pending, DefaultPendingQuery, byFunction},
		{"queries.cpu", &q.CPU, DefaultCPUQuery, byPod},
		{"queries.memory", &q.Memory, DefaultMemoryQuery, byPod},
	}
}

// validator collects problems. zero holds the paths given explicitly with a
// zero value (nil: none known, as for a Policy built in code).
type validator struct {
	errs Errors
	zero map[string]bool
}

func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// set reports whether a scalar field counts as given: non-zero, or given
// explicitly as zero.
func (v *validator) set(field string, isZero bool) bool { return !isZero || v.zero[field] }

func (v *validator) duration(field string, d Duration) {
	if v.set(field, d.Duration == 0) && d.Duration <= 0 {
		v.fail(field, "must be a positive duration, got %s", d.Duration)
	}
}

// durationIn checks a positive duration in [lo, hi]; loText names lo when
// it is another field ("interval (15s)").
func (v *validator) durationIn(field string, d Duration, lo, hi time.Duration, loText string) {
	switch {
	case !v.set(field, d.Duration == 0):
	case d.Duration <= 0:
		v.fail(field, "must be a positive duration, got %s", d.Duration)
	case d.Duration < lo:
		v.fail(field, "must be at least %s, got %s", loText, d.Duration)
	case d.Duration > hi:
		v.fail(field, "must be at most %s, got %s", hi, d.Duration)
	}
}

// fraction checks a value in (0,1].
func (v *validator) fraction(field string, f float64) {
	if v.set(field, f == 0) && !(f > 0 && f <= 1) {
		v.fail(field, "must be in (0,1], got %v", f)
	}
}

// httpConfig checks an HTTP client configuration: it must not hold a secret
// (the policy file is a ConfigMap, printed by validate): passwords, tokens
// and keys come from files.
func (v *validator) httpConfig(field string, c *promconfig.HTTPClientConfig) {
	if c == nil {
		return
	}
	inline := func(path string, set bool, file string) {
		if set {
			v.fail(field+"."+path, "the policy file never holds secrets: write it to a file and set %s", file)
		}
	}
	ref := func(path string, set bool) {
		if set {
			v.fail(field+"."+path, "secret references need a secret manager, which tierscaler has not: use the _file field")
		}
	}
	if b := c.BasicAuth; b != nil {
		inline("basic_auth.password", b.Password != "", "password_file")
		ref("basic_auth.password_ref", b.PasswordRef != "")
		ref("basic_auth.username_ref", b.UsernameRef != "")
	}
	if a := c.Authorization; a != nil {
		inline("authorization.credentials", a.Credentials != "", "credentials_file")
		ref("authorization.credentials_ref", a.CredentialsRef != "")
	}
	inline("bearer_token", c.BearerToken != "", "bearer_token_file (or authorization.credentials_file)")
	if o := c.OAuth2; o != nil {
		inline("oauth2.client_secret", o.ClientSecret != "", "client_secret_file")
		inline("oauth2.client_certificate_key", o.ClientCertificateKey != "", "client_certificate_key_file")
		ref("oauth2.client_secret_ref", o.ClientSecretRef != "")
	}
	inline("tls_config.key", c.TLSConfig.Key != "", "key_file")
	ref("tls_config.key_ref", c.TLSConfig.KeyRef != "")
	if h := c.HTTPHeaders; h != nil {
		for name, hd := range h.Headers {
			inline("http_headers."+name+".secrets", len(hd.Secrets) > 0, "files")
		}
	}
	inline("proxy_connect_header", len(c.ProxyConnectHeader) > 0, "no inline header (not supported)")
}

func (v *validator) notBlank(field, s string) bool {
	if v.set(field, s == "") && strings.TrimSpace(s) == "" {
		v.fail(field, "must not be blank")
		return false
	}
	return s != ""
}

func (v *validator) tier(field string, t Tier) {
	if !t.Valid() {
		v.fail(field, "unknown tier %q; must be one of sync, cron, async", string(t))
	}
}

func (v *validator) url(field, s string) {
	if err := CheckURL(s); err != nil {
		v.fail(field, "%v", err)
	}
}

// CheckURL reports what is wrong with s as the URL of a Prometheus or an
// Alertmanager: it must be an absolute http or https URL with a host, and no
// query, fragment or credentials (those go in httpConfig, from files, so
// that no secret is ever printed: a URL is logged and shown by validate).
// The message never repeats a password.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil && strings.Contains(s, "@"):
		// It may hold a password: not repeated.
		return fmt.Errorf("invalid URL: %v", unwrapURLError(err))
	case err != nil:
		return fmt.Errorf("invalid URL %q: %v", s, unwrapURLError(err))
	case u.User != nil:
		return fmt.Errorf("URL %q holds credentials: set them in httpConfig (basic_auth with password_file), never in the URL", u.Redacted())
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http or https URL, got %q", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("URL %q has no host", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("URL %q must not have a query or fragment", s)
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// dns1123Label is a Kubernetes namespace name.
var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate returns every problem of p. zero is as in validator.
func (p *Policy) validate(zero map[string]bool) Errors {
	v := &validator{zero: zero}

	switch p.APIVersion {
	case APIVersion:
	case "":
		v.fail("apiVersion", "required; must be %q", APIVersion)
	default:
		v.fail("apiVersion", "must be %q, got %q", APIVersion, p.APIVersion)
	}
	switch p.Kind {
	case Kind:
	case "":
		v.fail("kind", "required; must be %q", Kind)
	default:
		v.fail("kind", "must be %q, got %q", Kind, p.Kind)
	}

	// The checks that relate two fields compare effective values: a field
	// left unset counts with its default.
	interval, intervalText := effective(p.Interval, DefaultInterval)
	if v.notBlank("prometheus.url", p.Prometheus.URL) {
		v.url("prometheus.url", p.Prometheus.URL)
	}
	v.durationIn("prometheus.timeout", p.Prometheus.Timeout, 0, MaxStartup, "")
	if t, text := effective(p.Prometheus.Timeout, DefaultPrometheusTimeout); t > 0 && interval > 0 && t >= interval {
		v.fail("prometheus.timeout", "must be shorter than interval (%s), got %s", intervalText, text)
	}
	v.durationIn("prometheus.maxStaleness", p.Prometheus.MaxStaleness, 0, MaxWindow, "")
	if s, text := effective(p.Prometheus.MaxStaleness, DefaultMaxStaleness); s > 0 && s < interval {
		v.fail("prometheus.maxStaleness", "must be at least interval (%s), got %s", intervalText, text)
	}

	seen := map[string]bool{}
	for i, u := range p.Alertmanager.URLs {
		field := fmt.Sprintf("alertmanager.urls[%d]", i)
		if strings.TrimSpace(u) == "" {
			v.fail(field, "must not be blank")
			continue
		}
		v.url(field, u)
		if seen[u] {
			v.fail(field, "duplicate URL %q", u)
		}
		seen[u] = true
	}
	v.durationIn("alertmanager.resendInterval", p.Alertmanager.ResendInterval, MinResendInterval, MaxResendInterval, MinResendInterval.String())
	v.httpConfig("prometheus.httpConfig", p.Prometheus.HTTPConfig)
	v.httpConfig("alertmanager.httpConfig", p.Alertmanager.HTTPConfig)
	switch p.OpenFaaS.Edition {
	case "", EditionPro, EditionCE:
	default:
		v.fail("openfaas.edition", "must be %q (Pro, Enterprise, or Deployments no CE provider manages) or %q (Community Edition), got %q", EditionPro, EditionCE, p.OpenFaaS.Edition)
	}

	if p.Namespaces != nil && len(p.Namespaces) == 0 {
		v.fail("namespaces", "must list at least one namespace (omit it for [%s])", DefaultNamespace)
	}
	seen = map[string]bool{}
	for i, ns := range p.Namespaces {
		field := fmt.Sprintf("namespaces[%d]", i)
		if len(ns) > 63 || !dns1123Label.MatchString(ns) {
			v.fail(field, "%q is not a valid namespace name (a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)", ns)
		}
		if seen[ns] {
			v.fail(field, "duplicate namespace %q", ns)
		}
		seen[ns] = true
	}

	v.durationIn("interval", p.Interval, MinInterval, MaxInterval, MinInterval.String())

	if v.notBlank("timeZone", p.TimeZone) {
		switch _, err := time.LoadLocation(p.TimeZone); {
		case p.TimeZone == "Local":
			v.fail("timeZone", `must be an IANA time zone name such as "Europe/Berlin", not "Local" (which depends on the controller's machine)`)
		case err != nil:
			v.fail("timeZone", "unknown time zone %q: must be an IANA name such as \"UTC\" or \"Europe/Berlin\"", p.TimeZone)
		}
	}
	if v.set("defaultTier", p.DefaultTier == "") {
		switch {
		case p.DefaultTier == TierCron:
			v.fail("defaultTier", "must be sync or async: a function without cron-connector's topic and schedule annotations has no schedule, so as cron it would be held and never scaled")
		case !p.DefaultTier.Valid():
			v.fail("defaultTier", "unknown tier %q; must be sync or async", string(p.DefaultTier))
		}
	}

	th := p.Thresholds
	v.fraction("thresholds.cpu", th.CPU)
	v.fraction("thresholds.memory", th.Memory)
	if r := th.RejectionRate; r != nil {
		switch {
		case !(*r >= 0) || math.IsInf(*r, 1):
			v.fail("thresholds.rejectionRate", "must be a finite number >= 0, got %v", *r)
		case *r > MaxRejectionRate:
			v.fail("thresholds.rejectionRate", "must be at most %g per second, got %v", MaxRejectionRate, *r)
		}
	}
	v.fraction("thresholds.targetUtilization", th.TargetUtilization)

	// Windows shorter than a cycle would switch their rule off.
	atLeastInterval := "interval (" + intervalText + ")"
	v.durationIn("tiers.sync.scaleDownWindow", p.Tiers.Sync.ScaleDownWindow, interval, MaxWindow, atLeastInterval)
	c := p.Tiers.Cron
	v.durationIn("tiers.cron.lookahead", c.Lookahead, interval, MaxWindow, atLeastInterval)
	v.durationIn("tiers.cron.startupTime", c.StartupTime, 0, MaxStartup, "")
	v.durationIn("tiers.cron.margin", c.Margin, 0, MaxStartup, "")
	v.durationIn("tiers.cron.gracePeriod", c.GracePeriod, interval, MaxWindow, atLeastInterval)
	a := p.Tiers.Async
	v.durationIn("tiers.async.idleAfter", a.IdleAfter, interval, MaxWindow, atLeastInterval)
	v.durationIn("tiers.async.activationTimeout", a.ActivationTimeout, interval, MaxStartup, atLeastInterval)
	if v.set("tiers.async.pendingPerReplica", a.PendingPerReplica == 0) {
		switch {
		case a.PendingPerReplica <= 0:
			v.fail("tiers.async.pendingPerReplica", "must be > 0, got %d", a.PendingPerReplica)
		case a.PendingPerReplica > MaxPendingPerReplica:
			v.fail("tiers.async.pendingPerReplica", "must be at most %d, got %d", MaxPendingPerReplica, a.PendingPerReplica)
		}
	}

	seenTier := map[Tier]bool{}
	for i, t := range p.Preemption.Order {
		field := fmt.Sprintf("preemption.order[%d]", i)
		switch {
		case t == TierSync:
			v.fail(field, "sync must not appear: sync functions are never evicted")
		case !t.Valid():
			v.tier(field, t)
		case seenTier[t]:
			v.fail(field, "duplicate tier %q", string(t))
		}
		seenTier[t] = true
	}
	if m := p.Preemption.MaxEvictionsPerCycle; m != nil {
		switch {
		case *m < 0:
			v.fail("preemption.maxEvictionsPerCycle", "must be >= 0 (0 turns eviction off), got %d", *m)
		case *m > MaxEvictionsPerCycleCap:
			v.fail("preemption.maxEvictionsPerCycle", "must be at most %d, got %d", MaxEvictionsPerCycleCap, *m)
		}
	}
	v.durationIn("preemption.minResidency", p.Preemption.MinResidency, interval, MaxWindow, atLeastInterval)

	for _, q := range p.queries() {
		if v.notBlank(q.path, *q.value) {
			if msg := checkQuery(*q.value, q.labels); msg != "" {
				v.fail(q.path, "%s", msg)
			}
		}
	}
	return v.errs
}

// promqlParser parses queries with Prometheus's own parser (the default
// functions, no experimental ones). It is stateless and safe for concurrent
// use.
var promqlParser = parser.NewParser(parser.Options{})

// checkQuery parses a PromQL query and checks its shape: it must be an
// instant vector expression, and it must not aggregate away the labels the
// query's result is keyed by. It returns a message, or "".
func checkQuery(q string, keys []string) string {
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return fmt.Sprintf("invalid PromQL: %v", err)
	}
	switch t := expr.Type(); t {
	case parser.ValueTypeVector:
	case parser.ValueTypeMatrix:
		return fmt.Sprintf("must return an instant vector, got a range vector (matrix); wrap it in a function such as rate() or max_over_time(): %s", q)
	default:
		return fmt.Sprintf("must return an instant vector, got a %s: %s", t, q)
	}
	if msg := keptLabels(expr, keys); msg != "" {
		return fmt.Sprintf("the result must be keyed by %s, but %s", strings.Join(keys, " and "), msg)
	}
	return ""
}

// keptLabels follows the expression from its root down to the aggregation
// that decides the result's labels and reports a label of keys that is
// certainly lost there ("" when none is, or when it cannot be told
// statically). It follows parentheses, unary minus, functions (into their
// vector or range argument), subqueries, label-preserving aggregations
// (topk, bottomk, limitk, limit_ratio) and binary operators (into the side
// or sides whose labels the result takes).
func keptLabels(e parser.Expr, keys []string) string {
	switch n := e.(type) {
	case *parser.ParenExpr:
		return keptLabels(n.Expr, keys)
	case *parser.StepInvariantExpr:
		return keptLabels(n.Expr, keys)
	case *parser.UnaryExpr:
		return keptLabels(n.Expr, keys)
	case *parser.SubqueryExpr:
		return keptLabels(n.Expr, keys)
	case *parser.Call:
		if n.Func.Name == "label_replace" || n.Func.Name == "label_join" {
			return "" // they may create the labels: cannot tell statically
		}
		for _, arg := range n.Args {
			if t := arg.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
				return keptLabels(arg, keys)
			}
		}
		return ""
	case *parser.AggregateExpr:
		switch n.Op {
		case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO:
			return keptLabels(n.Expr, keys) // they keep every label
		}
		var lost []string
		for _, k := range keys {
			in := slices.Contains(n.Grouping, k)
			if n.Op == parser.COUNT_VALUES {
				if s, ok := n.Param.(*parser.StringLiteral); ok && s.Val == k {
					in = !n.Without
				}
			}
			if in == n.Without {
				lost = append(lost, k)
			}
		}
		if len(lost) == 0 {
			return ""
		}
		agg := aggregationText(n)
		if n.Without {
			return fmt.Sprintf("%s drops %s", agg, strings.Join(lost, ", "))
		}
		return fmt.Sprintf("%s keeps no %s label (add it to the by clause)", agg, strings.Join(lost, ", "))
	case *parser.BinaryExpr:
		lt, rt := n.LHS.Type(), n.RHS.Type()
		switch {
		case lt == parser.ValueTypeScalar:
			return keptLabels(n.RHS, keys)
		case rt == parser.ValueTypeScalar:
			return keptLabels(n.LHS, keys)
		}
		vm := n.VectorMatching
		if vm == nil {
			return keptLabels(n.LHS, keys)
		}
		if n.Op == parser.LOR {
			if msg := keptLabels(n.LHS, keys); msg != "" {
				return msg
			}
			return keptLabels(n.RHS, keys)
		}
		if n.Op.IsSetOperator() { // and, unless: the left side's series
			return keptLabels(n.LHS, keys)
		}
		switch vm.Card {
		case parser.CardManyToOne: // group_left: the left side's labels
			return keptLabels(n.LHS, without(keys, vm.Include))
		case parser.CardOneToMany: // group_right: the right side's labels
			return keptLabels(n.RHS, without(keys, vm.Include))
		}
		// One-to-one: the result keeps the on(...) labels, or the left
		// side's labels less the ignoring(...) ones; both sides must carry
		// the keys to match.
		for _, k := range keys {
			if slices.Contains(vm.MatchingLabels, k) != vm.On {
				if vm.On {
					return fmt.Sprintf("the on(%s) matching of %q drops %s", strings.Join(vm.MatchingLabels, ", "), n.Op, k)
				}
				return fmt.Sprintf("the ignoring(%s) matching of %q drops %s", strings.Join(vm.MatchingLabels, ", "), n.Op, k)
			}
		}
		if msg := keptLabels(n.LHS, keys); msg != "" {
			return msg
		}
		return keptLabels(n.RHS, keys)
	}
	return ""
}

func aggregationText(n *parser.AggregateExpr) string {
	op := n.Op.String()
	switch {
	case n.Without:
		return fmt.Sprintf("%s without (%s)", op, strings.Join(n.Grouping, ", "))
	case len(n.Grouping) > 0:
		return fmt.Sprintf("%s by (%s)", op, strings.Join(n.Grouping, ", "))
	}
	return fmt.Sprintf("%s without a by clause", op)
}

func without(keys, drop []string) []string {
	var out []string
	for _, k := range keys {
		if !slices.Contains(drop, k) {
			out = append(out, k)
		}
	}
	return out
}

// decoder walks the JSON form of the policy file against the Policy type.
type decoder struct {
	errs Errors
	// zero holds the paths of scalar fields given explicitly with their
	// zero value (0, "", "0s").
	zero map[string]bool
}

func (d *decoder) fail(field, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// object decodes raw, which must be a JSON object or null, into the struct v,
// field by field.
func (d *decoder) object(path string, raw json.RawMessage, v reflect.Value) {
	if isNull(raw) {
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		d.fail(path, "must be a mapping, got %s", describe(raw))
		return
	}
	t := v.Type()
	byName := map[string]int{}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" && t.Field(i).IsExported() {
			byName[name] = i
		}
	}
	// sigs.k8s.io/yaml goes through a Go map, so the file's key order is
	// lost: report in alphabetical order, which is at least stable.
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		field := fieldPath(path, k)
		i, ok := byName[k]
		if !ok {
			msg := "unknown field"
			for name := range byName {
				if strings.EqualFold(name, k) {
					msg += fmt.Sprintf(" (did you mean %q?)", name)
				}
			}
			d.fail(field, "%s", msg)
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && !reflect.PointerTo(fv.Type()).Implements(unmarshalerType) {
			d.object(field, fields[k], fv)
			continue
		}
		d.leaf(field, fields[k], fv)
	}
}

// leaf decodes one scalar or list field.
var httpConfigType = reflect.TypeFor[*promconfig.HTTPClientConfig]()

func (d *decoder) leaf(field string, raw json.RawMessage, v reflect.Value) {
	if v.Type() == httpConfigType && !isNull(raw) {
		// Prometheus' own strict loader: unknown fields are errors, and
		// its defaults and checks apply (JSON is YAML).
		cfg, err := promconfig.LoadHTTPConfig(string(raw))
		if err != nil {
			msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "unmarshal errors:\n  ", "")
			msg = strings.ReplaceAll(msg, "in type config.plain", "in an HTTP client configuration")
			d.fail(field, "%s", msg)
			return
		}
		// No headers is no headers: an empty http_headers would otherwise
		// decode as an empty set and print as none, and the policy must
		// read back as it prints (FuzzParse found it).
		if cfg.HTTPHeaders != nil && len(cfg.HTTPHeaders.Headers) == 0 {
			cfg.HTTPHeaders = nil
		}
		v.Set(reflect.ValueOf(cfg))
		return
	}
	if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			d.fail(field, "must be %s, got %s", typeText(v.Type()), describe(raw))
		} else {
			d.fail(field, "%v", err)
		}
		v.SetZero()
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice:
	default:
		if !isNull(raw) && v.IsZero() {
			d.zero[field] = true
		}
	}
}

func typeText(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Tier]():
		return "a tier (sync, cron or async)"
	case reflect.TypeFor[[]Tier]():
		return "a list of tiers"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeText(t.Elem())
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(typeText(t.Elem()), "an "), "a ") + "s"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int32:
		return fmt.Sprintf("an integer up to %d", math.MaxInt32)
	case reflect.Int, reflect.Int64:
		return "an integer"
	}
	return t.String()
}

// describe renders a JSON value for an error message, shortened.
func describe(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	kind := "a string"
	switch {
	case s == "null":
		return "null"
	case strings.HasPrefix(s, "{"):
		kind = "a mapping"
	case strings.HasPrefix(s, "["):
		kind = "a list"
	case s == "true" || s == "false":
		kind = "a boolean"
	case !strings.HasPrefix(s, `"`):
		kind = "a number"
	}
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return kind + " " + s
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func fieldPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

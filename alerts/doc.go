// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

// Package alerts connects tierscaler to Alertmanager both ways.
//
// # Outbound: shortfalls to Alertmanager
//
// A Notifier implements scaler.ShortfallSink. The leader's controller calls
// Sync every cycle with every shortfall active now; Sync maps them to alerts
// and queues the posts they imply, without touching the network. The
// Notifier is a controller-runtime runnable that runs only on the leader:
// one goroutine per Alertmanager URL posts to POST /api/v2/alerts, each
// with its own queue and backoff, so an HA pair gets every alert and a
// broken instance does not hold up the other.
//
// Alert names:
//
//	TierscalerCapacityShortfall   reasons insufficient-capacity, quota-exceeded,
//	                              eviction-budget-exhausted
//	TierscalerPrewarmMissed       reason prewarm-missed
//	TierscalerActivationTimeout   reason activation-timeout
//	TierscalerMetricsUnavailable  reason metrics-unavailable (cluster-wide)
//	TierscalerCronAtRisk          reason cron-at-risk: a forecast that a cron
//	                              function's reservation will not fit at its
//	                              prewarm (deadline = the fire time)
//
// Labels (an alert's identity in Alertmanager is its label set):
//
//	alertname      one of the above
//	component      "tierscaler", on every alert
//	service        the function, name.namespace; "tierscaler" for the
//	               cluster-wide alert
//	severity       see below
//	function       name.namespace (absent for the cluster-wide alert)
//	namespace      the function's namespace (absent for the cluster-wide alert)
//	tier           sync, cron or async; "cluster" (TierClusterWide) for the
//	               cluster-wide alert, since Alertmanager drops empty labels
//	reason         the policy.ShortfallReason
//	...            NotifierOptions.ExtraLabels (--alert-labels), e.g. cluster
//
// Annotations: summary (one line), description (the shortfall's message),
// missing_cpu and missing_memory (Kubernetes quantities, "1500m", "256Mi"),
// missing_pods (an integer), and deadline (RFC 3339, UTC) when the shortfall
// has one (a missed fire time or activation deadline).
//
// No alert carries function_name, and extra labels cannot add it: OpenFaaS
// CE's Alertmanager sends every alert to the gateway's /system/alert, which
// scales any function named in a firing alert's function_name and sets it
// back to its minimum when the alert resolves. service is per function
// because the same Alertmanager mutes a warning while a critical alert with
// the same alertname, cluster and service fires: a critical shortfall of one
// sync function must not hide the warnings of the others
// (TestIntegrationOpenFaaSCEAlertmanagerNeverScales proves both against the
// real Alertmanager with OpenFaaS CE's routing).
//
// Severity (Severity): critical for a prewarm missed (a scheduled job ran
// cold or failed) and for a capacity shortfall or activation timeout of a
// sync function (callers are turned away now); warning for cron and async
// capacity shortfalls and activation timeouts (work is late, not lost), for
// a cron function at risk (a forecast), and for metrics unavailable (tierscaler fails static: it scales nothing down,
// zeroes nothing and evicts nothing).
//
// Lifecycle. A new alert is posted at once with startsAt = the time Sync
// first reported it (kept for as long as it lasts) and endsAt = now +
// k×ResendInterval (k = EndsAtFactor, default 3; ResendInterval is the
// policy's alertmanager.resendInterval, default 1m). While it lasts it is
// re-posted every ResendInterval with a new endsAt, well before the old one
// passes; between Syncs a ticker does the re-posting as long as the last
// Sync is younger than MaxSyncAge. When Sync stops reporting it, it is
// posted once with endsAt = that Sync's time (in the past when Alertmanager
// reads it): resolved.
//
// Stale alerts. A firing alert always carries an endsAt, so an alert whose
// controller died or lost leadership expires by itself within
// k×ResendInterval (3 minutes by default), and one whose reconcile loop
// stopped calling Sync within MaxSyncAge + k×ResendInterval. In addition, once the first Sync has happened,
// each Alertmanager is asked for its active alerts with component="tierscaler",
// one of the names above and the extra labels
// (GET /api/v2/alerts?filter=...&active=true); those the notifier does not
// report as firing are resolved, and those it does keep the startsAt
// Alertmanager knew. Prometheus rules therefore must not reuse these
// names (deploy/chart/tierscaler/rules does not).
//
// Outages. While an Alertmanager fails (network error, timeout, 5xx) its
// posts stay queued and are retried with a backoff doubling from
// MinBackoff (500ms) to MaxBackoff (30s), with jitter; the controller keeps
// scaling. The queue keeps only the newest version of each alert (a
// resolution replaces the firing version), so it holds at most one entry per
// alert; it is bounded by MaxQueue (1000 alerts per Alertmanager): a new
// alert that finds it full is dropped, counted in
// tierscaler_alerts_dropped_total and logged at most once a minute. A 4xx
// answer cannot be fixed by retrying: those alerts are dropped from the
// queue and counted with result="rejected". On shutdown the queues are
// abandoned: the alerts expire by their endsAt and the next leader posts
// what is still true.
//
// # Inbound: the webhook receiver
//
// WebhookHandler serves POST /system/alert (the OpenFaaS gateway's path, so
// an existing Alertmanager receiver can simply be pointed at tierscaler) and
// POST /webhook/alertmanager. Both take Alertmanager's webhook payload
// (version "4"; the older numeric groupKey is accepted too). For each
// firing alert with a function_name label ("name.namespace", or a bare name
// in the default namespace, the policy's first), or else a function label
// (tierscaler's own activation rules use it, so that they cannot drive the
// CE gateway), the Activator is called once
// per function and request: *scaler.Controller records the request (a
// Deployment annotation on replicas that do not lead) and triggers a
// reconcile. A resolved alert is accepted and ignored: it never scales
// anything down. Alerts naming no function, and tierscaler's own alerts
// routed back (component or service "tierscaler" and one of the names
// above), are ignored; functions tierscaler does not watch
// (scaler.ErrUnknownFunction) are counted and ignored.
//
// The work of one request is bounded whatever its body: the alerts are read
// in one pass, each function is activated once, at most MaxFunctions (100)
// functions per request (the rest are counted as over-limit and not
// activated: group alerts by function_name if one notification names more),
// with a single Activator call that reads the cluster state once; at most
// MaxConcurrent (4) requests activate at once, and the activations stop when
// the request's timeout (20s) ends.
//
// Answers: 200 with a JSON WebhookResult for a valid payload (unknown
// functions included); 503 when an activation failed otherwise, or with
// Retry-After when no activation slot freed within the timeout (so that
// Alertmanager retries); 401 with WWW-Authenticate without valid
// credentials; 413 for a body over 1 MiB; 400 with the reason for a body
// that is not one JSON object of the payload's shape; 405 (Allow: POST) for
// another method; 404 for another path. The handler never panics on input
// (FuzzParseWebhook).
//
// Authentication is required by default: a bearer token (--webhook-token-
// file) or basic auth, either as one "user:password" file
// (--webhook-basic-auth-file) or as OpenFaaS keeps it: the basic-auth
// Secret's basic-auth-password key mounted as it is
// (--webhook-basic-auth-password-file) with the user admin
// (--webhook-basic-auth-user). The last is what OpenFaaS CE's Alertmanager
// already sends to the gateway, so its scale-up receiver can be pointed at
// tierscaler's /system/alert with a URL change and nothing else. The
// credentials are read from files a Secret provides, reloaded when they change, and compared in
// constant time (SHA-256 digests compared with crypto/subtle). Only
// --webhook-auth=none turns it off, with a warning in the log.
//
// # Metrics
//
// All registered by Metrics.Register on the registry given (the process's):
//
//	tierscaler_alerts_sent_total{alertname,result}   success, error, rejected;
//	                                                 per Alertmanager and attempt
//	tierscaler_alerts_firing{alertname}
//	tierscaler_alerts_dropped_total
//	tierscaler_alerts_queued
//	tierscaler_webhook_requests_total{path,result}   ok, unauthorized, too-large,
//	                                                 bad-request, method-not-allowed,
//	                                                 not-found (path "other"), error, busy
//	tierscaler_webhook_alerts_total{result}          activated, unknown-function,
//	                                                 error, resolved, ignored, invalid,
//	                                                 over-limit
//	tierscaler_webhook_request_duration_seconds{path}
//
// # Why own wire types
//
// Alertmanager's own github.com/prometheus/alertmanager/api/v2/models
// (v0.34.2) was measured against tierscaler's module: go get adds 9
// modules to go.mod (alertmanager and go-openapi's analysis, errors, loads,
// spec, strfmt and validate, go-viper/mapstructure, oklog/ulid) and 19
// lines to go.sum, and using PostableAlert with its Validate links 28 more
// packages, growing bin/tierscaler from 47,250,778 to 48,932,828 bytes
// (+1.7 MB, +3.6%). Those models also do not cover the inbound side: the
// webhook payload type lives in github.com/prometheus/alertmanager/notify/
// webhook, which adds 56 go.mod lines, 194 go.sum lines, 251 packages and
// 22.6 MB (+48%) to the binary. Both wire formats are small and stable (the
// v2 API since Alertmanager 0.16, the webhook payload at version "4" for
// years), so this
// package declares the few fields it uses (model.go, about 100 lines) and
// the integration tests (go test -tags integration) check them against the
// real Alertmanager binary.
//
// # Use from other tests
//
// NewNotifier with the URL of a test Alertmanager and short backoffs, Start
// it in a goroutine, and pass it as scaler.ProcessOptions.Sink; Pending and
// Firing show its state. NewWebhookHandler with any Activator (the
// controller, or a fake) and NewAuthenticator(AuthOptions{Token: "..."})
// serves anywhere, e.g. in a scaler.HTTPServer on 127.0.0.1:0. The rule
// files are in deploy/chart/tierscaler/rules.
package alerts

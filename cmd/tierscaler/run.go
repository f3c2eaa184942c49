// Copyright The tierscaler Authors.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/tierscaler/tierscaler/alerts"
	"github.com/tierscaler/tierscaler/policy"
	"github.com/tierscaler/tierscaler/scaler"
)

func runCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	policyFile := fs.String("policy", "/etc/tierscaler/policy.yaml", "policy file (apiVersion tierscaler.io/v1alpha1, kind Policy)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	tokenFile := fs.String("token-file", "", "authenticate to the API server with this bearer token file instead of the kubeconfig's credentials")
	metricsAddr := fs.String("metrics-addr", ":8080", "address of /metrics, /healthz, /readyz and /status")
	dryRun := fs.Bool("dry-run", false, "decide and report, never patch")
	leaderElect := fs.Bool("leader-elect", true, "elect a leader with a Lease so that several replicas can run")
	leaseNamespace := fs.String("leader-election-namespace", "", "namespace of the Lease (default: $POD_NAMESPACE, else openfaas)")
	leaseName := fs.String("leader-election-id", "tierscaler", "name of the Lease")
	leaseDuration := fs.Duration("lease-duration", 15*time.Second, "leader lease duration; a new leader takes over within it")
	stateNamespace := fs.String("state-namespace", "", "namespace of the ConfigMap keeping the last runs of cron and async functions (default: the Lease's namespace)")
	stateName := fs.String("state-name", scaler.DefaultStateName, "name of the ConfigMap keeping the last runs of cron and async functions; only tierscaler writes it")
	allPods := fs.Bool("all-pods", true, "watch Pods in every namespace so that node room counts every pod (needs cluster-wide read of pods); false watches only function namespaces")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info or error")
	webhookAddr := fs.String("webhook-addr", ":8081", "address of the Alertmanager webhook receiver (POST /system/alert and /webhook/alertmanager), on every replica; empty turns it off")
	webhookTokenFile := fs.String("webhook-token-file", "", "file holding the bearer token webhook callers must send")
	webhookBasicAuthFile := fs.String("webhook-basic-auth-file", "", "file holding user:password that webhook callers must send with HTTP basic auth")
	webhookBasicAuthPasswordFile := fs.String("webhook-basic-auth-password-file", "", "file holding only the basic-auth password, e.g. the OpenFaaS basic-auth Secret's basic-auth-password key, so that OpenFaaS CE's Alertmanager receiver can be pointed at tierscaler unchanged")
	webhookBasicAuthUser := fs.String("webhook-basic-auth-user", "", "the user that goes with --webhook-basic-auth-password-file (default "+alerts.DefaultBasicAuthUser+", as in OpenFaaS)")
	webhookAuth := fs.String("webhook-auth", string(alerts.AuthRequired), "webhook authentication: required (a token or basic-auth file must be set) or none (not recommended)")
	alertLabels := fs.String("alert-labels", "", "extra labels on every alert tierscaler posts, as name=value,name=value (for example cluster=prod)")
	generatorURL := fs.String("alert-generator-url", "", "absolute URL every alert tierscaler posts links to as its generatorURL (for example tierscaler's /status page); empty: none")
	promURL := fs.String("prometheus-url", "", "query this Prometheus instead of the policy's prometheus.url (for example through a port-forward, with --dry-run, from a workstation)")
	amURLs := fs.String("alertmanager-url", "", "post alerts to these Alertmanagers (comma-separated) instead of the policy's alertmanager.urls")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	pol, err := policy.Load(*policyFile)
	if err != nil {
		return fmt.Errorf("policy %s: %w", *policyFile, err)
	}
	if err := overrideURLs(pol, *promURL, *amURLs); err != nil {
		return err
	}
	authMode, err := alerts.ParseAuthMode(*webhookAuth)
	if err != nil {
		return fmt.Errorf("%w: --webhook-auth: %v", errUsage, err)
	}
	extraLabels, err := alerts.ParseLabels(*alertLabels)
	if err != nil {
		return fmt.Errorf("%w: --alert-labels: %v", errUsage, err)
	}
	var auth *alerts.Authenticator
	if *webhookAddr != "" {
		if auth, err = alerts.NewAuthenticator(alerts.AuthOptions{Mode: authMode, TokenFile: *webhookTokenFile,
			BasicAuthFile: *webhookBasicAuthFile, BasicAuthPasswordFile: *webhookBasicAuthPasswordFile,
			BasicAuthUser: *webhookBasicAuthUser, Log: log.WithName("webhook")}); err != nil {
			return err
		}
	}
	alertMetrics := alerts.NewMetrics()
	notifier, err := newNotifier(pol, extraLabels, *generatorURL, alertMetrics, log)
	if err != nil {
		return err
	}
	var sink scaler.ShortfallSink
	if notifier != nil {
		sink = notifier
	}
	cfg, err := restConfig(*kubeconfig, *tokenFile)
	if err != nil {
		return err
	}
	if *leaseNamespace == "" {
		*leaseNamespace = os.Getenv("POD_NAMESPACE")
	}
	if *leaseNamespace == "" {
		*leaseNamespace = "openfaas"
	}
	if *stateNamespace == "" {
		*stateNamespace = *leaseNamespace
	}
	proc, err := scaler.NewProcess(scaler.ProcessOptions{
		Policy: pol, RESTConfig: cfg, MetricsAddr: *metricsAddr, DryRun: *dryRun,
		LeaderElection: *leaderElect, LeaseNamespace: *leaseNamespace, LeaseName: *leaseName, LeaseDuration: *leaseDuration,
		AllPods: *allPods, Log: log, Sink: sink, StateNamespace: *stateNamespace, StateName: *stateName,
	})
	if err != nil {
		return err
	}
	if err := addAlerting(proc, pol, notifier, alertMetrics, *webhookAddr, auth, log); err != nil {
		return err
	}
	log.Info("starting tierscaler", "version", scaler.Version, "policy", *policyFile, "namespaces", pol.Namespaces,
		"prometheus", pol.Prometheus.URL, "alertmanagers", pol.AlertmanagerURLs(), "webhook", *webhookAddr,
		"dryRun", *dryRun, "leaderElection", *leaderElect, "lease", *leaseNamespace+"/"+*leaseName, "state", *stateNamespace+"/"+*stateName)
	if err := proc.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}

// newNotifier returns the Alertmanager notifier, or nil when the policy
// turns alerting off (alertmanager.urls: []).
func newNotifier(pol *policy.Policy, extraLabels map[string]string, generatorURL string, m *alerts.Metrics, log logr.Logger) (*alerts.Notifier, error) {
	if !pol.AlertingEnabled() {
		return nil, nil
	}
	resend := pol.Alertmanager.ResendInterval.Duration
	client, err := alerts.NewPolicyClient(pol)
	if err != nil {
		return nil, err
	}
	return alerts.NewNotifier(alerts.NotifierOptions{
		URLs: pol.AlertmanagerURLs(), ResendInterval: resend, ExtraLabels: extraLabels, GeneratorURL: generatorURL, Metrics: m, Log: log, Client: client,
		// Keep re-posting between cycles even with a long reconcile interval.
		MaxSyncAge: max(alerts.DefaultEndsAtFactor*resend, 3*pol.Interval.Duration),
	})
}

// addAlerting registers the alert metrics and adds the notifier (leader
// only) and the webhook server (every replica; off when addr is empty) to
// the process.
func addAlerting(proc *scaler.Process, pol *policy.Policy, notifier *alerts.Notifier, m *alerts.Metrics,
	addr string, auth *alerts.Authenticator, log logr.Logger) error {
	if err := m.Register(proc.Registry); err != nil {
		return err
	}
	if notifier != nil {
		if err := proc.Manager.Add(notifier); err != nil {
			return err
		}
	}
	if addr == "" {
		return nil
	}
	defaultNamespace := policy.DefaultNamespace
	if len(pol.Namespaces) > 0 {
		defaultNamespace = pol.Namespaces[0]
	}
	webhook, err := alerts.NewWebhookHandler(alerts.WebhookOptions{Activator: proc.Controller, Auth: auth,
		DefaultNamespace: defaultNamespace, Metrics: m, Log: log})
	if err != nil {
		return err
	}
	return proc.Manager.Add(&scaler.HTTPServer{Name: "webhook", Addr: addr, Handler: webhook, Log: log})
}

// overrideURLs replaces the policy's Prometheus and Alertmanager URLs with
// the flags' (each checked as the policy file's are, policy.CheckURL).
func overrideURLs(pol *policy.Policy, prom, am string) error {
	if prom != "" {
		if err := policy.CheckURL(prom); err != nil {
			return fmt.Errorf("%w: --prometheus-url: %v", errUsage, err)
		}
		pol.Prometheus.URL = prom
	}
	if am != "" {
		var urls []string
		for _, u := range strings.Split(am, ",") {
			u = strings.TrimSpace(u)
			if err := policy.CheckURL(u); err != nil {
				return fmt.Errorf("%w: --alertmanager-url: %v", errUsage, err)
			}
			urls = append(urls, u)
		}
		pol.Alertmanager.URLs = urls
	}
	return nil
}

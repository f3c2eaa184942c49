{{/* Chart name, at most 63 characters. */}}
{{- define "tierscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it contains the chart
name, else <release>-<chart>. `helm install tierscaler` in namespace openfaas
gives the Service tierscaler.openfaas that the README's Alertmanager snippet
points at.
*/}}
{{- define "tierscaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tierscaler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "tierscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tierscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tierscaler.labels" -}}
helm.sh/chart: {{ include "tierscaler.chart" . }}
{{ include "tierscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ include "tierscaler.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "tierscaler.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image: [<registry>/]<repository>:<tag>[@<digest>]. With a digest the
runtime pulls by digest; the tag stays for people reading the spec.
*/}}
{{- define "tierscaler.image" -}}
{{- $repo := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- $ref := printf "%s:%s" $repo (include "tierscaler.tag" .) }}
{{- with .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref . }}
{{- end }}
{{- $ref }}
{{- end }}

{{- define "tierscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tierscaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ConfigMap tierscaler keeps its state in (--state-name), in the release
namespace: <fullname>-state, so that two releases in one namespace keep
theirs apart (tierscaler-state for the release tierscaler).
*/}}
{{- define "tierscaler.stateName" -}}
{{- printf "%s-state" (include "tierscaler.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the webhook bearer token. */}}
{{- define "tierscaler.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "tierscaler.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/*
The policy queries that read the chart's recording rules
(rules/recording.rules.yaml), as in docs/policy-file.md "Recording rules":
policy.Recorded*Query, kept equal to them by TestRecordingRules (deploy/recording_test.go).
*/}}
{{- define "tierscaler.recordedQueries" -}}
functions: 'max by (function_name) (timestamp(function_name:gateway_function_invocation_inflight:sum)) unless on () (absent(function_name:gateway_function_invocation_rejected:rate1m) or absent(function_name:gateway_function_invocation_total:rate1m))'
rejections: 'function_name:gateway_function_invocation_rejected:rate1m > 0'
invocations: 'function_name:gateway_function_invocation_total:rate1m > 0'
duration: 'function_name:gateway_functions_seconds:mean1m'
inflight: 'max_over_time(function_name:gateway_function_invocation_inflight:sum[1m])'
{{- end }}

{{/*
The policy file: apiVersion and kind, then .Values.policy. Top-level sections
left empty ({}) or null are left out, so that the binary applies its defaults;
empty lists are kept (alertmanager.urls: [] turns alerting off).
*/}}
{{- define "tierscaler.policy" -}}
{{- $p := dict }}
{{- range $k, $v := .Values.policy }}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "map" $v) (empty $v))) }}
{{- $_ := set $p $k $v }}
{{- end }}
{{- end }}
{{- if .Values.recordingRules.enabled }}
{{- /* The queries that read rules/recording.rules.yaml; a query set in policy.queries wins. */ -}}
{{- $q := deepCopy (default dict .Values.policy.queries) }}
{{- range $k, $v := fromYaml (include "tierscaler.recordedQueries" .) }}
{{- if not (get $q $k) }}
{{- $_ := set $q $k $v }}
{{- end }}
{{- end }}
{{- $_ := set $p "queries" $q }}
{{- end -}}
apiVersion: tierscaler.io/v1alpha1
kind: Policy
{{ toYaml $p }}
{{- end }}

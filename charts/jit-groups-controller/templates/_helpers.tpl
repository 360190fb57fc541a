{{/* The chart name, or nameOverride. */}}
{{- define "jit-groups-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of the objects: fullnameOverride, else the release name when it already
contains the chart name, else both joined.
*/}}
{{- define "jit-groups-controller.fullname" -}}
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

{{/* The chart label value: name-version. */}}
{{- define "jit-groups-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the controller's pods; they never change after installation. */}}
{{- define "jit-groups-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jit-groups-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the chart. */}}
{{- define "jit-groups-controller.labels" -}}
helm.sh/chart: {{ include "jit-groups-controller.chart" . }}
{{ include "jit-groups-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jit-groups-controller
{{- end }}

{{/* The name of the controller's service account. */}}
{{- define "jit-groups-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jit-groups-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing service account when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository with digest, or with tag (appVersion by default). */}}
{{- define "jit-groups-controller.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The JIT custom resources, as a YAML list for RBAC rules. */}}
{{- define "jit-groups-controller.resources" -}}
- jitenvironments
- jitgroups
- joinrequests
{{- end }}

{{/* Their status subresources, as a YAML list for RBAC rules. */}}
{{- define "jit-groups-controller.statusResources" -}}
- jitenvironments/status
- jitgroups/status
- joinrequests/status
{{- end }}

{{/* Where the webhook's certificate and key are mounted when they come from a Secret. */}}
{{- define "jit-groups-controller.webhookCertDir" -}}
/var/run/jit-groups-controller/webhook-tls
{{- end }}

{{/* The Secret holding the webhook's certificate: cert-manager's or the given one. */}}
{{- define "jit-groups-controller.webhookSecretName" -}}
{{- if eq .Values.webhook.certificates "secret" }}
{{- .Values.webhook.secret.name }}
{{- else }}
{{- include "jit-groups-controller.fullname" . }}-webhook-tls
{{- end }}
{{- end }}

{{/* Combinations of values that cannot work, refused when rendering. */}}
{{- define "jit-groups-controller.validate" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "selfSigned") (gt (int .Values.replicaCount) 1) }}
{{- fail "webhook.certificates=selfSigned works with one replica only: each pod generates its own CA and writes it into the webhook configurations, so the API server would distrust the others. Use certManager or secret for more replicas." }}
{{- end }}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "secret") (or (not .Values.webhook.secret.name) (not .Values.webhook.secret.caBundle)) }}
{{- fail "webhook.certificates=secret needs webhook.secret.name and webhook.secret.caBundle" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "more than one replica needs leaderElection.enabled, or every replica reconciles the same objects" }}
{{- end }}
{{- end }}

{{/*
What every webhook of the chart shares: how the API server reaches it (the webhook Service,
at the path given as the second element of the list) and how it fails.
*/}}
{{- define "jit-groups-controller.webhookClient" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 -}}
clientConfig:
  service:
    name: {{ include "jit-groups-controller.fullname" $root }}-webhook
    namespace: {{ $root.Release.Namespace }}
    path: {{ $path }}
    port: 443
  {{- if eq $root.Values.webhook.certificates "secret" }}
  caBundle: {{ $root.Values.webhook.secret.caBundle }}
  {{- end }}
{{- with $root.Values.controller.watchNamespace }}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ . }}
{{- end }}
failurePolicy: Fail
sideEffects: None
admissionReviewVersions: ["v1"]
timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
{{- end }}

{{/* The rule of a webhook: creates and updates of one JIT resource, not its status. */}}
{{- define "jit-groups-controller.webhookRule" -}}
- apiGroups: ["jitgroups.dev"]
  apiVersions: ["v1alpha1"]
  operations: ["CREATE", "UPDATE"]
  resources: [{{ . | quote }}]
  scope: Namespaced
{{- end }}

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

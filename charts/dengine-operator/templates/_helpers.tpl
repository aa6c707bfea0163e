{{/*
The chart's name, or nameOverride.
*/}}
{{- define "dengine-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name when it already
contains the chart name (`helm install dengine-operator ...` gives `dengine-operator`), else
`<release>-<chart>`. 63 characters at most: some Kubernetes name fields are DNS labels.
*/}}
{{- define "dengine-operator.fullname" -}}
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

{{/*
`name-version` for the helm.sh/chart label.
*/}}
{{- define "dengine-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object of the release.
*/}}
{{- define "dengine-operator.labels" -}}
helm.sh/chart: {{ include "dengine-operator.chart" . }}
{{ include "dengine-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: d-engine
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The labels the Deployment selects its pods by and the Service and ServiceMonitor select by;
a Deployment's selector is immutable, so nothing that changes between versions goes here.
*/}}
{{- define "dengine-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dengine-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "dengine-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dengine-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's container image.
*/}}
{{- define "dengine-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The leader-election Lease's name.
*/}}
{{- define "dengine-operator.leaseName" -}}
{{- default (include "dengine-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Refuses value combinations that the schema cannot express.
*/}}
{{- define "dengine-operator.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) }}
{{- fail (printf "replicas is %d but leaderElection.enabled is false: operators without leader election would all reconcile at once; set replicas to 1 or enable leader election" (int .Values.replicas)) }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes that Service" }}
{{- end }}
{{- end }}

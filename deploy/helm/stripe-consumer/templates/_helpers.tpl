{{/* Names and labels shared by every object of the chart. */}}

{{- define "stripe-consumer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stripe-consumer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "stripe-consumer.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "stripe-consumer.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "stripe-consumer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stripe-consumer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stripe-consumer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "stripe-consumer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: consumer
{{- end }}

{{- define "stripe-consumer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stripe-consumer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stripe-consumer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the Stripe keys: the given one, or the one the chart creates. */}}
{{- define "stripe-consumer.stripeSecret" -}}
{{- default (printf "%s-stripe" (include "stripe-consumer.fullname" .)) .Values.stripe.existingSecret }}
{{- end }}

{{/* The Secret holding the Redis URL and its key: redis.*, or the deprecated dedup.* ("" when
neither is set). */}}
{{- define "stripe-consumer.redisSecret" -}}
{{- if and .Values.redis.existingSecret .Values.dedup.existingSecret (or (ne .Values.redis.existingSecret .Values.dedup.existingSecret) (ne .Values.redis.urlKey .Values.dedup.urlKey)) }}
{{- fail "set redis.existingSecret only: dedup.existingSecret is its deprecated name, and the two differ" }}
{{- end }}
{{- default .Values.dedup.existingSecret .Values.redis.existingSecret }}
{{- end }}

{{- define "stripe-consumer.redisUrlKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.urlKey }}{{ else }}{{ .Values.dedup.urlKey }}{{ end }}
{{- end }}

{{/* How many replicas share the Stripe rate limit: the most there can be. */}}
{{- define "stripe-consumer.replicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

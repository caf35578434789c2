{{/* The release's full name (at most 40 characters: it prefixes the Lease names). */}}
{{- define "driftguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "driftguard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "driftguard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftguard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding `what` (secretKey, apiTokens, mongodb): an existing one, or the chart's. */}}
{{- define "driftguard.secretName" -}}
{{- $v := index .root.Values .what -}}
{{- if $v.existingSecret -}}{{ $v.existingSecret }}{{- else -}}{{ include "driftguard.fullname" .root }}{{- end -}}
{{- end -}}

{{/* The configuration file: the values' `config` with what the chart sets. */}}
{{- define "driftguard.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $server := deepCopy (default dict $cfg.server) -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) -}}
{{- $_ := set $server "tokenEnv" "DRIFTGUARD_API_TOKENS" -}}
{{- if .Values.ha.enabled -}}
{{- $_ := set $server "ha" (dict "inCluster" true "namespace" .Release.Namespace "leasePrefix" (include "driftguard.fullname" .) "leaseDuration" .Values.ha.leaseDuration "renewDeadline" .Values.ha.renewDeadline "retryPeriod" .Values.ha.retryPeriod) -}}
{{- end -}}
{{- $_ := set $cfg "server" $server -}}
{{- if not (hasKey $cfg "gitCache") -}}
{{- $_ := set $cfg "gitCache" "/var/cache/driftguard/git" -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

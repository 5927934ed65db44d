{{/* Names and labels. */}}
{{- define "thanos-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "thanos-bridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "thanos-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "thanos-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "thanos-bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "thanos-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: cost-collector
{{- end -}}

{{- define "thanos-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "thanos-bridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "thanos-bridge.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when acm is a discovery source, else "". */}}
{{- define "thanos-bridge.acm" -}}
{{- if has "acm" .Values.discovery.sources -}}true{{- end -}}
{{- end -}}

{{/* "true" on OpenShift (forced, or security.openshift.io/v1 served), else "". */}}
{{- define "thanos-bridge.openshift" -}}
{{- $o := toString .Values.openshift -}}
{{- if eq $o "true" -}}true
{{- else if eq $o "auto" -}}
{{- if .Capabilities.APIVersions.Has "security.openshift.io/v1" -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "thanos-bridge.automountToken" -}}
{{- if kindIs "bool" .Values.serviceAccount.automountToken -}}
{{- .Values.serviceAccount.automountToken -}}
{{- else -}}
{{- ternary "true" "false" (eq (include "thanos-bridge.acm" .) "true") -}}
{{- end -}}
{{- end -}}

{{- define "thanos-bridge.thanosUrl" -}}
{{- if .Values.thanos.url -}}
{{- .Values.thanos.url -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" .Values.sidecar.thanosQueryService .Values.sidecar.namespace (int .Values.sidecar.thanosQueryPort) -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "thanos-bridge.dataDir" -}}/var/lib/thanos-bridge{{- end -}}
{{- define "thanos-bridge.secretsDir" -}}/etc/thanos-bridge/secrets{{- end -}}

{{/*
Secret files: one entry per referenced Secret key, mounted read-only under
/etc/thanos-bridge/secrets/<volume>/<file>. Used by the ConfigMap (paths) and the Deployment
(volumes), so both always agree. Output: YAML list of {volume, secret, key, file, configKey}.
*/}}
{{- define "thanos-bridge.secretFiles" -}}
{{- $v := .Values -}}
{{- $files := list -}}
{{- if $v.thanos.token.existingSecret -}}
{{- $files = append $files (dict "volume" "thanos-token" "secret" $v.thanos.token.existingSecret "key" $v.thanos.token.key "file" "token" "configKey" "token-file") -}}
{{- end -}}
{{- if $v.serve.apiToken.existingSecret -}}
{{- $files = append $files (dict "volume" "api-token" "secret" $v.serve.apiToken.existingSecret "key" $v.serve.apiToken.key "file" "token" "configKey" "api-token-file") -}}
{{- end -}}
{{- if and (eq $v.sink.kind "s3-kafka") $v.sink.kafka.sasl.existingSecret -}}
{{- $files = append $files (dict "volume" "kafka-sasl" "secret" $v.sink.kafka.sasl.existingSecret "key" $v.sink.kafka.sasl.passwordKey "file" "password" "configKey" "kafka-sasl-password-file") -}}
{{- end -}}
{{- if and (eq $v.sink.kind "ingress") $v.sink.ingress.token.existingSecret -}}
{{- $files = append $files (dict "volume" "ingress-token" "secret" $v.sink.ingress.token.existingSecret "key" $v.sink.ingress.token.key "file" "token" "configKey" "ingress-token-file") -}}
{{- end -}}
{{- if and (eq $v.sink.kind "ingress") $v.sink.ingress.basicAuth.existingSecret -}}
{{- $files = append $files (dict "volume" "ingress-basic-auth" "secret" $v.sink.ingress.basicAuth.existingSecret "key" $v.sink.ingress.basicAuth.key "file" "credentials" "configKey" "ingress-basic-auth-file") -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/* ConfigMap-backed files (CA bundles, org map): same shape, plus the ConfigMap name. */}}
{{- define "thanos-bridge.configMapFiles" -}}
{{- $v := .Values -}}
{{- $files := list -}}
{{- if $v.thanos.ca.configMap -}}
{{- $files = append $files (dict "volume" "thanos-ca" "configMap" $v.thanos.ca.configMap "key" $v.thanos.ca.key "file" "ca.crt" "configKey" "ca-file") -}}
{{- end -}}
{{- if and (eq $v.sink.kind "s3-kafka") $v.sink.kafka.ca.configMap -}}
{{- $files = append $files (dict "volume" "kafka-ca" "configMap" $v.sink.kafka.ca.configMap "key" $v.sink.kafka.ca.key "file" "ca.crt" "configKey" "kafka-ca-file") -}}
{{- end -}}
{{- if $v.org.mapConfigMap -}}
{{- $files = append $files (dict "volume" "org-map" "configMap" $v.org.mapConfigMap "key" $v.org.mapKey "file" "orgs.csv" "configKey" "org-map") -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/* serve.schedule as the program reads it (a bare YAML `off` arrives as false). */}}
{{- define "thanos-bridge.schedule" -}}
{{- if kindIs "bool" .Values.serve.schedule -}}off{{- else -}}{{- .Values.serve.schedule -}}{{- end -}}
{{- end -}}

{{/*
Seconds between scheduled runs, for the "no success in 2x the interval" alerts: the value of
prometheusRule.scheduleIntervalSeconds, else derived from serve.schedule; "" when it cannot be
derived (schedule off, or an irregular pattern).
*/}}
{{- define "thanos-bridge.scheduleIntervalSeconds" -}}
{{- $set := int .Values.prometheusRule.scheduleIntervalSeconds -}}
{{- if gt $set 0 -}}
{{- $set -}}
{{- else -}}
{{- $f := regexSplit "\\s+" (trim (include "thanos-bridge.schedule" .)) -1 -}}
{{- if eq (len $f) 6 -}}{{- $f = rest $f -}}{{- end -}}
{{- if eq (len $f) 5 -}}
{{- $m := index $f 0 -}}{{- $h := index $f 1 -}}
{{- $restAny := and (eq (index $f 2) "*") (eq (index $f 3) "*") (eq (index $f 4) "*") -}}
{{- if $restAny -}}
{{- if and (eq $h "*") (regexMatch "^[0-9]+$" $m) -}}3600
{{- else if and (eq $h "*") (regexMatch "^\\*/[0-9]+$" $m) -}}{{ mul 60 (int (trimPrefix "*/" $m)) }}
{{- else if and (eq $h "*") (eq $m "*") -}}60
{{- else if and (regexMatch "^[0-9]+$" $m) (regexMatch "^\\*/[0-9]+$" $h) -}}{{ mul 3600 (int (trimPrefix "*/" $h)) }}
{{- else if and (regexMatch "^[0-9]+$" $m) (regexMatch "^[0-9]+$" $h) -}}86400
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

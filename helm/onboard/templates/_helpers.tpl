{{/* Names, labels and the per-worker facts shared by the templates. */}}

{{- define "onboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "onboard.fullname" -}}
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

{{- define "onboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "onboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "onboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "onboard.labels" -}}
helm.sh/chart: {{ include "onboard.chart" . }}
{{ include "onboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: onboard
{{- end -}}

{{/* Per-worker: call with (dict "root" $ "kind" "bucket"). */}}
{{- define "onboard.workerName" -}}
{{- printf "%s-%s" (include "onboard.fullname" .root | trunc 50 | trimSuffix "-") .kind -}}
{{- end -}}

{{- define "onboard.workerSelectorLabels" -}}
{{ include "onboard.selectorLabels" .root }}
app.kubernetes.io/component: {{ .kind }}
{{- end -}}

{{- define "onboard.workerLabels" -}}
{{ include "onboard.labels" .root }}
app.kubernetes.io/component: {{ .kind }}
{{- end -}}

{{/* The topic a worker consumes: bucket takes the requests; the others their own. */}}
{{- define "onboard.workerTopic" -}}
{{- if eq .kind "bucket" -}}
{{- printf "%srequests" .root.Values.topics.prefix -}}
{{- else -}}
{{- printf "%s%s" .root.Values.topics.prefix .kind -}}
{{- end -}}
{{- end -}}

{{- define "onboard.workerGroup" -}}
{{- printf "%s%s" .root.Values.topics.prefix .kind -}}
{{- end -}}

{{/* The worker kinds, in pipeline order (verify: the side stage). */}}
{{- define "onboard.kinds" -}}
bucket cur iam connect verify
{{- end -}}

{{- define "onboard.enabledKinds" -}}
{{- $out := list -}}
{{- range $kind := splitList " " (include "onboard.kinds" .) -}}
{{- if (index $.Values.workers $kind).enabled -}}
{{- $out = append $out $kind -}}
{{- end -}}
{{- end -}}
{{- join " " $out -}}
{{- end -}}

{{/* What runs as a Deployment of its own: the enabled workers, then the lifecycle
     process when enabled. It consumes no topic, so it is no kind of onboard.kinds
     (no consumer group, KEDA or lag alert). */}}
{{- define "onboard.deployedKinds" -}}
{{- $out := list -}}
{{- with include "onboard.enabledKinds" . -}}
{{- $out = splitList " " . -}}
{{- end -}}
{{- if .Values.lifecycle.enabled -}}
{{- $out = append $out "lifecycle" -}}
{{- end -}}
{{- join " " $out -}}
{{- end -}}

{{/* "true" when a lifecycle interval (watcher.interval, verify.interval) is set:
     anything but 0, with or without a unit. */}}
{{- define "onboard.intervalOn" -}}
{{- if not (regexMatch "^0+(ms|s|m|h)?$" (include "onboard.scalar" .)) -}}
true
{{- end -}}
{{- end -}}

{{- define "onboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "onboard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "onboard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* librdkafka's security.protocol, from kafka.tls and kafka.sasl. */}}
{{- define "onboard.kafkaSecurityProtocol" -}}
{{- if and .Values.kafka.sasl.enabled .Values.kafka.tls.enabled -}}
sasl_ssl
{{- else if .Values.kafka.sasl.enabled -}}
sasl_plaintext
{{- else if .Values.kafka.tls.enabled -}}
ssl
{{- else -}}
plaintext
{{- end -}}
{{- end -}}

{{/* OB_<KEY> for a dotted setting key: redis.port -> OB_REDIS_PORT. */}}
{{- define "onboard.envName" -}}
{{- printf "OB_%s" (. | upper | replace "." "_" | replace "-" "_") -}}
{{- end -}}

{{- define "onboard.triggerAuthName" -}}
{{- printf "%s-kafka" (include "onboard.fullname" .) -}}
{{- end -}}

{{/* A scalar setting as the worker reads it: whole numbers without an exponent
     (values files give numbers as float64: 2592000000 would print 2.592e+09). */}}
{{- define "onboard.scalar" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* The worker's env entries (secrets by reference, extra env): (dict "root" $ "kind" K).
     Kind "lifecycle": the lifecycle process, with its own settings. */}}
{{- define "onboard.workerEnv" -}}
{{- $root := .root -}}
{{- $kind := .kind -}}
{{- $w := $root.Values.lifecycle -}}
{{- if ne $kind "lifecycle" -}}
{{- $w = index $root.Values.workers $kind -}}
{{- end -}}
{{- if eq $kind "lifecycle" }}
- name: OB_WATCHER_INTERVAL
  value: {{ include "onboard.scalar" $w.watcher.interval | quote }}
- name: OB_WATCHER_MAX_PER_INTERVAL
  value: {{ include "onboard.scalar" $w.watcher.maxPerInterval | quote }}
- name: OB_VERIFY_INTERVAL
  value: {{ include "onboard.scalar" $w.verify.interval | quote }}
- name: OB_VERIFY_REPAIR
  value: {{ include "onboard.scalar" $w.verify.repair | quote }}
- name: OB_VERIFY_MAX_PER_ROUND
  value: {{ include "onboard.scalar" $w.verify.maxPerRound | quote }}
- name: OB_LIFECYCLE_LEASE_TTL
  value: {{ include "onboard.scalar" $w.leaseTtl | quote }}
{{- end }}
{{- $sasl := $root.Values.kafka.sasl -}}
{{- if $sasl.enabled }}
- name: OB_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $sasl.existingSecret | quote }}
      key: {{ $sasl.usernameKey | quote }}
- name: OB_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sasl.existingSecret | quote }}
      key: {{ $sasl.passwordKey | quote }}
{{- end }}
{{- if and (eq $root.Values.workload "StatefulSet") (ne $kind "lifecycle") }}
- name: OB_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- with $root.Values.redis.existingSecret }}
- name: OB_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $root.Values.redis.passwordKey | quote }}
{{- end }}
{{- with $root.Values.redis.sentinel }}
{{- if and .hosts .existingSecret }}
- name: OB_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | quote }}
      key: {{ .passwordKey | quote }}
{{- end }}
{{- end }}
{{- if and (eq $kind "connect") $root.Values.billing.existingSecret }}
- name: OB_BILLING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.billing.existingSecret | quote }}
      key: {{ $root.Values.billing.secretKey | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- with $w.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end -}}

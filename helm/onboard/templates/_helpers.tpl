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

{{/* The labels selectors use: they never change for a release (a Deployment's,
     StatefulSet's, PDB's or Service's selector is immutable or must keep matching),
     so nothing else goes into them. The NetworkPolicy selects every pod of the
     release with these; a workload adds app.kubernetes.io/component. */}}
{{- define "onboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "onboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The recommended labels every object and pod carries, besides the selector
     labels (and app.kubernetes.io/component on a workload's objects and pods). */}}
{{- define "onboard.recommendedLabels" -}}
{{ include "onboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: onboard
{{- end -}}

{{/* The labels of an object: the recommended ones and helm.sh/chart, then
     commonLabels. Call with the root context: {{ include "onboard.labels" . }}. */}}
{{- define "onboard.labels" -}}
{{- include "onboard.labelsWith" (dict "root" .) -}}
{{- end -}}

{{/* The same with more: (dict "root" $ ["component" KIND] ["extra" MAP]). The chart's
     own labels win over `extra` (an object's own labels, e.g. the ServiceMonitor's),
     which wins over commonLabels; the schema refuses the chart's keys in those maps. */}}
{{- define "onboard.labelsWith" -}}
{{- $own := include "onboard.recommendedLabels" .root | fromYaml -}}
{{- $_ := set $own "helm.sh/chart" (include "onboard.chart" .root) -}}
{{- with .component }}
{{- $_ := set $own "app.kubernetes.io/component" . -}}
{{- end }}
{{- toYaml (merge $own (deepCopy (.extra | default dict)) (deepCopy (.root.Values.commonLabels | default dict))) -}}
{{- end -}}

{{/* The annotations of an object: `extra` (its own, e.g. a Service's) over
     commonAnnotations; empty when there are none. (dict "root" $ ["extra" MAP]):
       {{- with include "onboard.annotations" (dict "root" .) }}
       annotations:
         {{- . | nindent 4 }}
       {{- end }} */}}
{{- define "onboard.annotations" -}}
{{- $a := merge (dict) (deepCopy (.extra | default dict)) (deepCopy (.root.Values.commonAnnotations | default dict)) -}}
{{- with $a }}
{{- toYaml . -}}
{{- end }}
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
{{- include "onboard.labelsWith" (dict "root" .root "component" .kind "extra" .extra) -}}
{{- end -}}

{{/* A worker's pod labels: the recommended ones with its component (no helm.sh/chart,
     so that a chart release alone rolls no pods), then podLabels and commonLabels. */}}
{{- define "onboard.podLabels" -}}
{{- $own := include "onboard.recommendedLabels" .root | fromYaml -}}
{{- $_ := set $own "app.kubernetes.io/component" .kind -}}
{{- toYaml (merge $own (deepCopy (.root.Values.podLabels | default dict)) (deepCopy (.root.Values.commonLabels | default dict))) -}}
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
     process and the lag exporter when enabled. Neither consumes a topic, so neither
     is a kind of onboard.kinds (no consumer group, KEDA or lag alert of its own). */}}
{{- define "onboard.deployedKinds" -}}
{{- $out := list -}}
{{- with include "onboard.enabledKinds" . -}}
{{- $out = splitList " " . -}}
{{- end -}}
{{- if .Values.lifecycle.enabled -}}
{{- $out = append $out "lifecycle" -}}
{{- end -}}
{{- if .Values.lagExporter.enabled -}}
{{- $out = append $out "lag-exporter" -}}
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

{{/* The image: registry/repository, then @digest or :tag (the appVersion when
     empty). The registry is required: the fleet's image is built from this
     repository's Dockerfile and pushed to a registry of yours (the chart's
     README, "The image"); without one, "onboard" would be looked up on Docker Hub. */}}
{{- define "onboard.image" -}}
{{- $registry := required "image.registry is required: the registry you pushed the image built from this repository's Dockerfile to (helm/onboard/README.md, \"The image\"), e.g. --set image.registry=registry.example.com/platform" .Values.image.registry | trimSuffix "/" -}}
{{- $ref := printf "%s/%s" $registry .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .Chart.AppVersion .Values.image.tag) -}}
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
     Kind "lifecycle": the lifecycle process, with its own settings. Kind "lag-exporter":
     the lag exporter, with its own settings and the Kafka secrets only (it uses no Redis,
     no AWS and no instance id). */}}
{{- define "onboard.workerEnv" -}}
{{- $root := .root -}}
{{- $kind := .kind -}}
{{- $lx := eq $kind "lag-exporter" -}}
{{- $w := $root.Values.lifecycle -}}
{{- if $lx -}}
{{- $w = $root.Values.lagExporter -}}
{{- else if ne $kind "lifecycle" -}}
{{- $w = index $root.Values.workers $kind -}}
{{- end -}}
{{- if $lx }}
- name: OB_LAG_INTERVAL
  value: {{ include "onboard.scalar" $w.interval | quote }}
- name: OB_LAG_CLUSTER_NAME
  value: {{ $w.clusterName | quote }}
{{- end }}
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
{{- /* A stage worker's pods only: StatefulSet pods, static members of their group. */}}
{{- if and (eq $root.Values.workload "StatefulSet") (has $kind (splitList " " (include "onboard.kinds" $root))) }}
- name: OB_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- if not $lx }}
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
{{- end }}
{{- if and (eq $kind "connect") $root.Values.billing.existingSecret }}
- name: OB_BILLING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.billing.existingSecret | quote }}
      key: {{ $root.Values.billing.secretKey | quote }}
{{- end }}
{{- /* The stage workers only: the lifecycle process and the lag exporter assume no
     role for a stage, so they get no session key ring. */}}
{{- if and $root.Values.sessionKeys.existingSecret (has $kind (splitList " " (include "onboard.kinds" $root))) }}
- name: OB_SESSION_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.sessionKeys.existingSecret | quote }}
      key: {{ $root.Values.sessionKeys.secretKey | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- with $w.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end -}}

{{/* The chart's name, or nameOverride. */}}
{{- define "weir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: fullnameOverride, else the release name when it already
contains the chart's name (release "weir" gives "weir", "weir-jobmanager"), else
<release>-<name>. At most 45 characters, so that "-jobmanager" and a pod's suffix fit.
*/}}
{{- define "weir.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := include "weir.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "weir.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; call with (dict "ctx" $ "component" "jobmanager"). */}}
{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* All labels; call with (dict "ctx" $ "component" "jobmanager"), component optional. */}}
{{- define "weir.labels" -}}
{{ include "weir.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "weir.chart" .ctx }}
{{- end }}

{{- define "weir.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "weir.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "weir.tag" .) }}
{{- end }}

{{- define "weir.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "weir.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* The Secret with the S3 keys: the chart's own when keys are given, else existingSecret. */}}
{{- define "weir.s3Secret" -}}
{{- if or .Values.s3.accessKeyId .Values.s3.secretAccessKey }}
{{- if not (and .Values.s3.accessKeyId .Values.s3.secretAccessKey) }}
{{- fail "s3.accessKeyId and s3.secretAccessKey go together: give both, or neither and use s3.existingSecret" }}
{{- end }}
{{- printf "%s-s3" (include "weir.fullname" .) }}
{{- else }}
{{- .Values.s3.existingSecret }}
{{- end }}
{{- end }}

{{/*
The state dir, checked: every job manager (the leader and its standby, the old and the new
pod) and every task manager must see the same folder, and a pod's local folder is its own.
*/}}
{{- define "weir.stateDir" -}}
{{- if not (hasPrefix "s3://" .Values.stateDir) }}
{{- fail (printf "stateDir must be an s3:// URL (any S3-compatible store: see s3.endpoint), not %q: job managers elect their leader and keep job records and checkpoints there, and task managers write checkpointed state there, so every pod must see the same folder; a local folder is the pod's own and is lost with it" .Values.stateDir) }}
{{- end }}
{{- .Values.stateDir }}
{{- end }}

{{/* The pod's IP (for --advertise) and the S3 settings; both components get them. */}}
{{- define "weir.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- with .Values.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AWS_REGION
  value: {{ .Values.s3.region | quote }}
{{- if .Values.s3.allowHttp }}
- name: AWS_ALLOW_HTTP
  value: "true"
{{- end }}
{{- with include "weir.s3Secret" . }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.s3.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/* Pod-level settings both Deployments share. */}}
{{- define "weir.podSpec" -}}
serviceAccountName: {{ include "weir.serviceAccountName" . }}
automountServiceAccountToken: false
# Weir reads its settings from WEIR_* variables: no Service's *_PORT variables beside them.
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{- define "weir.containerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
{{- end }}

{{/* Names: "<release>" when the release name holds the chart's name, else "<release>-kubevision". */}}
{{- define "kubevision.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: kubevision.name (dict "ctx" . "component" "gateway") */}}
{{- define "kubevision.name" -}}
{{- printf "%s-%s" (include "kubevision.fullname" .ctx) .component -}}
{{- end -}}

{{/* Labels that select a component's pods; they never change after install. */}}
{{- define "kubevision.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels (Helm's standard set). */}}
{{- define "kubevision.labels" -}}
{{ include "kubevision.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubevision
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* A KubeVision image: kubevision.image (dict "ctx" . "name" "operator") */}}
{{- define "kubevision.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .name (.ctx.Values.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{/* The pod-level security of every pod: non-root, the runtime's default seccomp profile. */}}
{{- define "kubevision.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security of every container. */}}
{{- define "kubevision.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The pod's imagePullSecrets, or nothing: templates wrap it in a `with`, so that no blank line is left. */}}
{{- define "kubevision.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* A generated secret value, base64-encoded: the one already in the cluster on upgrades (lookup), else a new
random one, remembered for the rest of this render so that every template that needs it gets the same.
kubevision.secretValue (dict "ctx" . "secret" NAME "key" KEY) */}}
{{- define "kubevision.secretValue" -}}
{{- $cache := .ctx.Values._generated | default dict -}}
{{- $id := printf "%s/%s" .secret .key -}}
{{- if not (hasKey $cache $id) -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- $value := "" -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- $value = index $existing.data .key -}}
{{- else -}}
{{- $value = randAlphaNum 32 | b64enc -}}
{{- end -}}
{{- $_ := set $cache $id $value -}}
{{- $_ := set .ctx.Values "_generated" $cache -}}
{{- end -}}
{{- index $cache $id -}}
{{- end -}}

{{/* S3: the in-chart MinIO's or the external one's endpoint, and the Secret with accessKey and secretKey. */}}
{{- define "kubevision.s3Endpoint" -}}
{{- if .Values.minio.enabled -}}
{{- printf "%s.%s.svc:9000" (include "kubevision.name" (dict "ctx" . "component" "minio")) .Release.Namespace -}}
{{- else -}}
{{- required "s3.endpoint is needed when minio.enabled is false" .Values.s3.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "kubevision.s3Secure" -}}
{{- and (not .Values.minio.enabled) .Values.s3.secure -}}
{{- end -}}

{{/* The operator's pods read S3 keys from a Secret of this name in each project namespace. */}}
{{- define "kubevision.s3SecretName" -}}
{{- if .Values.minio.enabled -}}
kubevision-s3
{{- else -}}
{{- required "s3.existingSecret is needed when minio.enabled is false" .Values.s3.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "kubevision.mlflowUri" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc:5000" (include "kubevision.name" (dict "ctx" . "component" "mlflow")) .Release.Namespace -}}
{{- else -}}
{{- required "mlflow.trackingUri is needed when mlflow.enabled is false" .Values.mlflow.trackingUri -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the database URLs (keys gatewayUrl and mlflowUrl). */}}
{{- define "kubevision.databaseSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "kubevision.name" (dict "ctx" . "component" "database") -}}
{{- else -}}
{{- required "postgresql.existingSecret is needed when postgresql.enabled is false" .Values.postgresql.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* S3 settings of a KubeVision container (KUBEVISION_S3_*, the fields of S3Settings). */}}
{{- define "kubevision.s3Env" -}}
- name: KUBEVISION_S3_ENDPOINT
  value: {{ include "kubevision.s3Endpoint" . | quote }}
- name: KUBEVISION_S3_SECURE
  value: {{ include "kubevision.s3Secure" . | quote }}
- name: KUBEVISION_S3_MODELS_BUCKET
  value: {{ .Values.s3.modelsBucket | quote }}
- name: KUBEVISION_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "kubevision.s3SecretName" . }}, key: accessKey}
- name: KUBEVISION_S3_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "kubevision.s3SecretName" . }}, key: secretKey}
{{- end -}}

{{/* Writable scratch space: every root filesystem is read-only. */}}
{{- define "kubevision.tmpVolume" -}}
- name: tmp
  emptyDir: {sizeLimit: 1Gi}
{{- end -}}

{{- define "kubevision.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* A component's ClusterRole bound cluster-wide, or in each of `namespaces` only.
kubevision.bindings (dict "ctx" . "name" NAME) */}}
{{- define "kubevision.bindings" -}}
{{- $ctx := .ctx -}}
{{- if not $ctx.Values.namespaces }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .name }}
  labels:
    {{- include "kubevision.labels" (dict "ctx" $ctx "component" "rbac") | nindent 4 }}
{{- include "kubevision.bindingBody" (dict "ctx" $ctx "name" .name) }}
{{- else }}
{{- range $ctx.Values.namespaces }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $.name }}
  namespace: {{ . }}
  labels:
    {{- include "kubevision.labels" (dict "ctx" $ctx "component" "rbac") | nindent 4 }}
{{- include "kubevision.bindingBody" (dict "ctx" $ctx "name" $.name) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "kubevision.bindingBody" }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ .ctx.Release.Namespace }}
{{- end -}}

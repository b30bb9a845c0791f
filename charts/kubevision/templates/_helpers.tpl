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

{{/* The limits file (the `limits` value, in the limits ConfigMap) where the gateway and the operator read it:
a mounted folder, not a subPath, so that a changed ConfigMap reaches running pods. */}}
{{- define "kubevision.limitsFileName" -}}
limits.yaml
{{- end -}}

{{- define "kubevision.limitsFolder" -}}
/etc/kubevision/limits
{{- end -}}

{{- define "kubevision.limitsEnv" -}}
- name: KUBEVISION_LIMITS_FILE
  value: {{ printf "%s/%s" (include "kubevision.limitsFolder" .) (include "kubevision.limitsFileName" .) | quote }}
{{- end -}}

{{- define "kubevision.limitsVolume" -}}
- name: limits
  configMap:
    name: {{ include "kubevision.name" (dict "ctx" . "component" "limits") }}
{{- end -}}

{{- define "kubevision.limitsMount" -}}
- name: limits
  mountPath: {{ include "kubevision.limitsFolder" . }}
  readOnly: true
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

{{/* NetworkPolicy peers and egress rules (templates/networkpolicies/). */}}

{{/* A component's pods of this release, from any namespace: kubevision.releasePeer (dict "ctx" . "component" C) */}}
{{- define "kubevision.releasePeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .ctx.Release.Namespace }}
  podSelector:
    matchLabels:
      {{- include "kubevision.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* The namespaces whose projects are served: those of `namespaces`, or every one. */}}
{{- define "kubevision.projectNamespaces" -}}
{{- if .Values.namespaces -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- range .Values.namespaces }}
        - {{ . }}
        {{- end }}
{{- else -}}
namespaceSelector: {}
{{- end -}}
{{- end -}}

{{/* The pods the operator makes in project namespaces: kubevision.projectPeer (dict "ctx" . "names" (list ...)) */}}
{{- define "kubevision.projectPeer" -}}
- {{ include "kubevision.projectNamespaces" .ctx | indent 2 | trimPrefix "  " }}
  podSelector:
    matchExpressions:
      - key: app.kubernetes.io/name
        operator: In
        values:
          {{- range .names }}
          - {{ . }}
          {{- end }}
{{- end -}}

{{/* The port of host:port, or of a URL, else the scheme's: kubevision.portOf (dict "address" A "secure" B) */}}
{{- define "kubevision.portOf" -}}
{{- $found := regexFind ":[0-9]+$" (trimSuffix "/" (regexReplaceAll "^[a-z]+://([^/]*).*$" .address "${1}")) -}}
{{- if $found -}}{{ trimPrefix ":" $found }}{{- else if .secure -}}443{{- else -}}80{{- end -}}
{{- end -}}

{{/* Egress to S3: the in-chart MinIO, or the external endpoint's port anywhere. */}}
{{- define "kubevision.s3Egress" -}}
{{- if .Values.minio.enabled -}}
- to:
    {{- include "kubevision.releasePeer" (dict "ctx" . "component" "minio") | nindent 4 }}
  ports:
    - {port: 9000, protocol: TCP}
{{- else -}}
- ports:
    - {port: {{ include "kubevision.portOf" (dict "address" .Values.s3.endpoint "secure" .Values.s3.secure) }}, protocol: TCP}
{{- end -}}
{{- end -}}

{{/* Egress to MLflow: the in-chart server, or the external tracking URI's port anywhere. */}}
{{- define "kubevision.mlflowEgress" -}}
{{- if .Values.mlflow.enabled -}}
- to:
    {{- include "kubevision.releasePeer" (dict "ctx" . "component" "mlflow") | nindent 4 }}
  ports:
    - {port: 5000, protocol: TCP}
{{- else -}}
- ports:
    - {port: {{ include "kubevision.portOf" (dict "address" .Values.mlflow.trackingUri "secure" (hasPrefix "https://" .Values.mlflow.trackingUri)) }}, protocol: TCP}
{{- end -}}
{{- end -}}

{{/* Egress to PostgreSQL: the in-chart server, or PostgreSQL's port anywhere. */}}
{{- define "kubevision.postgresqlEgress" -}}
{{- if .Values.postgresql.enabled -}}
- to:
    {{- include "kubevision.releasePeer" (dict "ctx" . "component" "postgresql") | nindent 4 }}
  ports:
    - {port: 5432, protocol: TCP}
{{- else -}}
- ports:
    - {port: 5432, protocol: TCP}
{{- end -}}
{{- end -}}

{{/* Egress to the Kubernetes API server (its Service's port 443, or the server's own 6443 after the Service). */}}
{{- define "kubevision.apiServerEgress" -}}
- to:
    {{- range .Values.networkPolicies.apiServerCidrs }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  ports:
    - {port: 443, protocol: TCP}
    - {port: 6443, protocol: TCP}
{{- end -}}

{{/* Who may scrape metrics: networkPolicies.metricsFrom, or nobody when it is empty. */}}
{{- define "kubevision.metricsIngress" -}}
{{- with .ctx.Values.networkPolicies.metricsFrom -}}
- from:
    {{- toYaml . | nindent 4 }}
  ports:
    - {port: {{ $.port }}, protocol: TCP}
{{- end -}}
{{- end -}}

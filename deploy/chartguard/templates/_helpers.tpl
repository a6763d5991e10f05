{{- define "chartguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chartguard.serviceAccountName" -}}
{{- default (include "chartguard.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "chartguard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
The namespaced rules of `chartguard run`, one source for the ClusterRole (all namespaces) and
the per-namespace Roles. README "RBAC" says why each is there.
*/}}
{{- define "chartguard.namespacedRules" -}}
# kopf watches Flux's source kinds; the operator reads one on a cache miss
- apiGroups: ["source.toolkit.fluxcd.io"]
  resources: ["helmrepositories", "helmcharts"]
  verbs: ["get", "list", "watch", "patch"]
# Flux's finalizers.fluxcd.io, added and removed with JSON patches (the "patch" above);
# status is written only as merge patches of the status subresource
- apiGroups: ["source.toolkit.fluxcd.io"]
  resources: ["helmrepositories/status", "helmcharts/status"]
  verbs: ["patch"]
# verify keys, trusted roots, registry credentials and TLS: watched (a rotated key re-verifies
# at once) and read on a cache miss
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Flux-worded core v1 Events (ChartPullSucceeded, VerificationError, ...): created, never patched
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

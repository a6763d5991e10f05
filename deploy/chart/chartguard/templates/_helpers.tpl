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
# the HelmChart a HelmRelease's spec.chart implies: created, merge-patched, deleted with it
- apiGroups: ["source.toolkit.fluxcd.io"]
  resources: ["helmcharts"]
  verbs: ["create", "delete"]
# HelmReleases: watched, read for dependsOn, finalizer patched
- apiGroups: ["helm.toolkit.fluxcd.io"]
  resources: ["helmreleases"]
  verbs: ["get", "list", "watch", "patch"]
# Flux's finalizers.fluxcd.io, added and removed with JSON patches (the "patch" above);
# status is written only as merge patches of the status subresource
- apiGroups: ["source.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io"]
  resources: ["helmrepositories/status", "helmcharts/status", "helmreleases/status"]
  verbs: ["patch"]
# valuesFrom ConfigMaps: watched (a change re-reconciles its releases), read on a cache miss
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
# verify keys, trusted roots, registry credentials, TLS and valuesFrom Secrets: watched (a
# rotated key re-verifies at once) and read on a cache miss; helm's release records are listed
# by label to learn a release's state without starting helm
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Flux-worded core v1 Events (ChartPullSucceeded, VerificationError, ...): created, never patched
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.rbac.workloadIdentity }}
# spec.kubeConfig.configMapRef (provider generic): ServiceAccount tokens for remote clusters
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- end }}
{{- end -}}

{{- define "chartguard.releasesServiceAccountName" -}}
{{- default (printf "%s-releases" (include "chartguard.fullname" .)) .Values.rbac.releases.serviceAccountName -}}
{{- end -}}

{{- define "chartguard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* More than one replica: kopf peering, one replica reconciles at a time. */}}
{{- define "chartguard.peering" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end -}}
{{- end -}}

{{- define "chartguard.peeringName" -}}
{{- default (include "chartguard.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* "namespace/name" of the releases' identity, or "" when none is configured. */}}
{{- define "chartguard.releasesIdentity" -}}
{{- if and .Values.rbac.create .Values.rbac.releases.create -}}
{{ .Release.Namespace }}/{{ include "chartguard.releasesServiceAccountName" . }}
{{- else if .Values.rbac.releases.serviceAccountName -}}
{{ .Release.Namespace }}/{{ .Values.rbac.releases.serviceAccountName }}
{{- end -}}
{{- end -}}

{{/*
Rules for kopf's peering objects (replicas > 1): kopf reads, watches and patches them (its
keep-alive in status); chartguard creates its peering object when it is absent.
*/}}
{{- define "chartguard.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ if .Values.watchNamespaces }}"kopfpeerings"{{ else }}"clusterkopfpeerings"{{ end }}]
  verbs: ["get", "list", "watch", "patch", "create"]
{{- end -}}

{{/* Names, labels and the little logic shared by the templates. */}}

{{- define "stevie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stevie.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stevie.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's selector labels (never the trainer pods': those are managed-by
stevie-operator and have other components). */}}
{{- define "stevie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stevie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "stevie.labels" -}}
helm.sh/chart: {{ include "stevie.chart" . }}
app.kubernetes.io/name: {{ include "stevie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stevie
{{- end }}

{{- define "stevie.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stevie.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stevie.trainerServiceAccountName" -}}
{{- default (printf "%s-trainer" (include "stevie.fullname" .)) .Values.trainer.serviceAccount.name }}
{{- end }}

{{- define "stevie.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "stevie.trainerImage" -}}
{{- printf "%s:%s" .Values.trainer.image.repository (default .Chart.AppVersion .Values.trainer.image.tag) }}
{{- end }}

{{/* The Lease of leader election, in the release namespace. */}}
{{- define "stevie.leaseName" -}}
{{- default (include "stevie.fullname" .) .Values.leaderElection.name }}
{{- end }}

{{/* The namespaces the operator serves, as JSON ([]: every namespace). With PVC storage
only the release namespace: a claim is namespaced, so trainer pods elsewhere would mount
another namespace's claim (or none) while the operator reads its own; serving other
namespaces needs S3. */}}
{{- define "stevie.watchNamespaces" -}}
{{- $claim := include "stevie.claimName" . }}
{{- if and $claim .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
{{- if ne . $.Release.Namespace }}
{{- fail (printf "watchNamespaces: %s is not the release namespace (%s): with PVC storage (storage.pvc) the operator can only serve its own namespace, where the claim is; use S3 storage (storage.s3.uri) to serve others" . $.Release.Namespace) }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else if $claim }}
{{- toJson (list .Release.Namespace) }}
{{- else }}
{{- toJson (list) }}
{{- end }}
{{- end }}

{{/* The namespaces trainer ServiceAccounts go to: the watched ones, else the release's. */}}
{{- define "stevie.trainerNamespaces" -}}
{{- $watch := include "stevie.watchNamespaces" . | fromJsonArray }}
{{- toJson (default (list .Release.Namespace) $watch) }}
{{- end }}

{{/* The claim the operator and trainer pods mount; empty with S3 storage. */}}
{{- define "stevie.claimName" -}}
{{- if .Values.storage.pvc.existingClaim }}
{{- .Values.storage.pvc.existingClaim }}
{{- else if .Values.storage.pvc.create }}
{{- printf "%s-data" (include "stevie.fullname" .) }}
{{- end }}
{{- end }}

{{- define "stevie.storageUri" -}}
{{- if .Values.storage.uri }}
{{- .Values.storage.uri }}
{{- else if .Values.storage.s3.uri }}
{{- .Values.storage.s3.uri }}
{{- else }}
{{- printf "file://%s/stevie" (.Values.storage.pvc.mountPath | trimSuffix "/") }}
{{- end }}
{{- end }}

{{/* The rule sets of files/rbac.yaml (generated from operator/stevie_operator/rbac.py). */}}
{{- define "stevie.rules" -}}
{{- $all := .context.Files.Get "files/rbac.yaml" | fromYaml }}
{{- $rules := list }}
{{- range .sets }}
{{- $rules = concat $rules (required (printf "files/rbac.yaml has no rule set %s" .) (get $all .)) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

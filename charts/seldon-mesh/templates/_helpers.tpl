{{/* The release's base name: <release> when it contains the chart name, else <release>-<chart>. */}}
{{- define "seldon-mesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "seldon-mesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seldon-mesh
{{- end -}}

{{/* Selector labels of one component: include with (list . "operator"). */}}
{{- define "seldon-mesh.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* An image reference: include with (list . .Values.x.image). registry/repository:tag, the registry and
tag defaulting to .Values.image.registry and .Values.image.tag, the tag then to the appVersion. */}}
{{- define "seldon-mesh.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $registry := $image.registry | default $root.Values.image.registry -}}
{{- $tag := $image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The ingress the operator renders (RenderSettings.ingress). With none enabled: seldon-mesh without
its gateway, i.e. workloads only, for a gateway of the user's own. */}}
{{- define "seldon-mesh.ingress" -}}
{{- $ingress := .Values.ingress | default (ternary "seldon-mesh" (ternary "gateway-api" (ternary "istio" "seldon-mesh" .Values.istio.enabled) .Values.gatewayApi.enabled) .Values.gateway.enabled) -}}
{{- if not (has $ingress (list "istio" "gateway-api" "seldon-mesh")) -}}
{{- fail (printf "ingress must be istio, gateway-api or seldon-mesh, got %q" $ingress) -}}
{{- end -}}
{{- if and (eq $ingress "istio") (not .Values.istio.enabled) -}}
{{- fail "ingress istio needs istio.enabled (the operator's Istio permissions)" -}}
{{- end -}}
{{- if and (eq $ingress "gateway-api") (not .Values.gatewayApi.enabled) -}}
{{- fail "ingress gateway-api needs gatewayApi.enabled (the operator's Gateway API permissions)" -}}
{{- end -}}
{{- $ingress -}}
{{- end -}}

{{- define "seldon-mesh.operatorServiceAccount" -}}
{{ include "seldon-mesh.fullname" . }}-operator
{{- end -}}

{{- define "seldon-mesh.gatewayServiceAccount" -}}
{{ include "seldon-mesh.fullname" . }}-gateway-controller
{{- end -}}

{{/* The pod security context of every pod of ours: non-root, numeric uid (the images' USER). */}}
{{- define "seldon-mesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 1000 }}
runAsGroup: {{ .uid | default 1000 }}
fsGroup: {{ .uid | default 1000 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "seldon-mesh.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

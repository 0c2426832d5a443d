{{/*
Names, labels and other snippets shared by the templates.
*/}}

{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object name: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "cairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cairn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn.labels" -}}
helm.sh/chart: {{ include "cairn.chart" . }}
app.kubernetes.io/name: {{ include "cairn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cairn
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "control-plane"). */}}
{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cairn.componentLabels" -}}
{{ include "cairn.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cairn.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "cairn.fullname" .) -}}
{{- end -}}

{{- define "cairn.agent.fullname" -}}
{{- printf "%s-agent" (include "cairn.fullname" .) -}}
{{- end -}}

{{- define "cairn.controlPlane.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create -}}
{{- default (include "cairn.controlPlane.fullname" .) .Values.controlPlane.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controlPlane.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cairn.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (include "cairn.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference: call with (dict "image" .Values.controlPlane.image "ctx" $). */}}
{{- define "cairn.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Lease both control-plane replicas compete for (--leader-election-name). */}}
{{- define "cairn.leaseName" -}}
{{- default (include "cairn.controlPlane.fullname" .) .Values.controlPlane.leaderElection.leaseName -}}
{{- end -}}

{{/* Secret the control plane mounts as --tls-dir: ca.pem (the agent CA), server.pem, server-key.pem. */}}
{{- define "cairn.tls.controlPlaneSecretName" -}}
{{- default (printf "%s-tls" (include "cairn.controlPlane.fullname" .)) .Values.tls.secretNames.controlPlane -}}
{{- end -}}

{{/* Secret of the agent DaemonSet: ca.pem + ca-key.pem (the agent CA) and server-ca.pem. */}}
{{- define "cairn.tls.agentSecretName" -}}
{{- default (printf "%s-ca" (include "cairn.agent.fullname" .)) .Values.tls.secretNames.agent -}}
{{- end -}}

{{/* The DNS names of the agent Service, all of which the server certificate carries. */}}
{{- define "cairn.controlPlane.serviceNames" -}}
{{- $svc := include "cairn.controlPlane.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) -}}
{{- if .Values.controlPlane.api.enabled -}}
{{- $api := printf "%s-api" (include "cairn.fullname" .) -}}
{{- $names = concat $names (list $api (printf "%s.%s" $api $ns) (printf "%s.%s.svc" $api $ns) (printf "%s.%s.svc.%s" $api $ns .Values.clusterDomain)) -}}
{{- end -}}
{{- toJson (concat $names .Values.tls.extraServerNames) -}}
{{- end -}}

{{/* What agents dial (--control-plane). */}}
{{- define "cairn.agent.controlPlaneAddress" -}}
{{- if .Values.agent.controlPlaneAddress -}}
{{- .Values.agent.controlPlaneAddress -}}
{{- else -}}
{{- printf "https://%s.%s.svc:%v" (include "cairn.controlPlane.fullname" .) .Release.Namespace .Values.controlPlane.ports.agent -}}
{{- end -}}
{{- end -}}

{{/* A listen address for a port: "HOST:PORT", with IPv6 hosts in brackets. */}}
{{- define "cairn.listen" -}}
{{- $host := .host -}}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) -}}
{{- $host = printf "[%s]" $host -}}
{{- end -}}
{{- printf "%s:%v" $host .port -}}
{{- end -}}

{{/* cert-manager mode (tls.certManager.enabled): the Secret of the server CA, which cert-manager
signs the server certificate with. */}}
{{- define "cairn.tls.serverCaSecretName" -}}
{{- printf "%s-server-ca" (include "cairn.fullname" .) -}}
{{- end -}}

{{/* The control plane's --tls-dir volume: ca.pem (agent CA certificate), server.pem and
server-key.pem, from the chart's Secret or, with cert-manager, projected from its Secrets. */}}
{{- define "cairn.tls.controlPlaneVolume" -}}
{{- if .Values.tls.certManager.enabled -}}
projected:
  defaultMode: 0440
  sources:
    - secret:
        name: {{ include "cairn.tls.agentSecretName" . }}
        items:
          - key: tls.crt
            path: ca.pem
    - secret:
        name: {{ include "cairn.tls.controlPlaneSecretName" . }}
        items:
          - key: tls.crt
            path: server.pem
          - key: tls.key
            path: server-key.pem
{{- else -}}
secret:
  secretName: {{ include "cairn.tls.controlPlaneSecretName" . }}
  defaultMode: 0440
{{- end -}}
{{- end -}}

{{/* The agent CA (ca.pem, ca-key.pem) for the agent's init container only. */}}
{{- define "cairn.tls.agentCaVolume" -}}
{{- $cm := .Values.tls.certManager.enabled -}}
secret:
  secretName: {{ include "cairn.tls.agentSecretName" . }}
  defaultMode: 0400
  items:
    - key: {{ ternary "tls.crt" "ca.pem" $cm }}
      path: ca.pem
    - key: {{ ternary "tls.key" "ca-key.pem" $cm }}
      path: ca-key.pem
{{- end -}}

{{/* The server CA certificate (server-ca.pem) the agent trusts. With cert-manager it is the
ca.crt of the server certificate's Secret, so the agent never sees the server CA's own Secret. */}}
{{- define "cairn.tls.serverCaVolume" -}}
{{- if .Values.tls.certManager.enabled -}}
secret:
  secretName: {{ include "cairn.tls.controlPlaneSecretName" . }}
  defaultMode: 0444
  items:
    - key: ca.crt
      path: server-ca.pem
{{- else -}}
secret:
  secretName: {{ include "cairn.tls.agentSecretName" . }}
  defaultMode: 0444
  items:
    - key: server-ca.pem
      path: server-ca.pem
{{- end -}}
{{- end -}}

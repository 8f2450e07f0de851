{{/*
The labels kustomize gives every object of the base (manifests/base/kustomization.yaml
`labels`; not to an overlay's own objects, `overlay`), and Helm's own.
*/}}
{{- define "jitguard.label" -}}
{{- $obj := .obj -}}
{{- $meta := $obj.metadata -}}
{{- $labels := default (dict) $meta.labels -}}
{{- if not .overlay -}}
{{- range $pair := (fromYaml (.root.Files.Get "files/base/kustomization.yaml")).labels -}}
{{- range $k, $v := $pair.pairs -}}
{{- $_ := set $labels $k $v -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $labels "app.kubernetes.io/managed-by" .root.Release.Service -}}
{{- $_ := set $labels "helm.sh/chart" (printf "%s-%s" .root.Chart.Name .root.Chart.Version) -}}
{{- $_ := set $meta "labels" $labels -}}
{{- end -}}

{{/* The base's namespace for a namespaced object without one, as kustomize sets it. */}}
{{- define "jitguard.namespace" -}}
{{- (fromYaml (.Files.Get "files/base/kustomization.yaml")).namespace -}}
{{- end -}}

{{/* Names and labels ------------------------------------------------------------------------------------ */}}

{{- define "ktb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ktb.fullname" -}}
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

{{- define "ktb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ktb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ktb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ktb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-token-broker
{{- end -}}

{{- define "ktb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ktb.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ktb.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "ktb.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "ktb.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the pod (config.toml names them) ---------------------------------------------------------- */}}

{{- define "ktb.configDir" -}}/etc/token-broker/config{{- end -}}
{{- define "ktb.tlsDir" -}}/etc/token-broker/tls{{- end -}}
{{- define "ktb.clientCADir" -}}/etc/token-broker/client-ca{{- end -}}

{{/* config.toml ---------------------------------------------------------------------------------------------
The values under .Values.config, with the [server] keys the chart owns filled in, rendered as TOML: plain tables
become [headers] (their map children [sub.headers], their lists of maps [[arrays.of.tables]]); inside an array of
tables every map stays an inline table. Strings go through toJson: a JSON string is a valid TOML basic string.
*/}}

{{- define "ktb.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $server := deepCopy (default (dict) $config.server) -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.ports.api)) -}}
{{- $_ := set $server "metrics_listen" (printf "0.0.0.0:%d" (int .Values.ports.metrics)) -}}
{{- $_ := set $server "tls_cert" (printf "%s/tls.crt" (include "ktb.tlsDir" .)) -}}
{{- $_ := set $server "tls_key" (printf "%s/tls.key" (include "ktb.tlsDir" .)) -}}
{{- if .Values.clientCA.enabled -}}
{{- $_ := set $server "client_ca" (printf "%s/%s" (include "ktb.clientCADir" .) .Values.clientCA.key) -}}
{{- end -}}
{{- $_ := set $config "server" $server -}}
{{- /* the embedded SQLite store lives on the data volume: the root filesystem and the config mount are read-only */ -}}
{{- $audit := deepCopy (default (dict) $config.audit) -}}
{{- if and (ne ($audit.backend | default "sqlite") "postgres") (not (hasKey $audit "sqlite_path")) -}}
{{- $_ := set $audit "sqlite_path" (printf "%s/audit.sqlite3" .Values.persistence.mountPath) -}}
{{- end -}}
{{- $_ := set $config "audit" $audit -}}
{{- /* the janitor's Lease lives in the release namespace, where the chart grants access to it */ -}}
{{- $janitor := deepCopy (default (dict) $config.janitor) -}}
{{- if not (hasKey $janitor "lease_namespace") -}}
{{- $_ := set $janitor "lease_namespace" .Release.Namespace -}}
{{- end -}}
{{- $_ := set $config "janitor" $janitor -}}
{{- $keys := list -}}
{{- range $key := list "server" "clusters" "roles" "grants" "auth" "audit" "janitor" -}}
{{- if hasKey $config $key -}}{{- $keys = append $keys $key -}}{{- end -}}
{{- end -}}
{{- range $key := keys $config | sortAlpha -}}
{{- if not (has $key $keys) -}}{{- $keys = append $keys $key -}}{{- end -}}
{{- end -}}
# config.toml rendered by the kube-token-broker chart from .Values.config; edit the values, not this file.
{{- /* Plain keys before the first [header], or TOML would file them under it. Empty tables and lists at the
       top are left out: an absent section means its defaults. */ -}}
{{- range $key := $keys }}
{{- $value := get $config $key }}
{{- if and (not (kindIs "map" $value)) (not (include "ktb.toml.isArrayOfTables" $value)) (not (kindIs "invalid" $value)) (not (and (kindIs "slice" $value) (empty $value))) }}
{{ include "ktb.toml.key" $key }} = {{ include "ktb.toml.value" $value }}
{{- end }}
{{- end }}
{{- range $key := $keys }}
{{- $value := get $config $key }}
{{- if or (and (kindIs "map" $value) (not (empty $value))) (include "ktb.toml.isArrayOfTables" $value) }}
{{- include "ktb.toml.section" (dict "key" $key "value" $value) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* One top-level [table] or [[array of tables]] */}}
{{- define "ktb.toml.section" -}}
{{- $key := include "ktb.toml.key" .key -}}
{{- if kindIs "map" .value }}

[{{ $key }}]
{{- include "ktb.toml.table" (dict "path" $key "table" .value "inline" false) }}
{{- else }}
{{- range $item := .value }}

[[{{ $key }}]]
{{- include "ktb.toml.table" (dict "path" $key "table" $item "inline" true) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The keys of one table. inline=false: map children and lists of maps become sub-headers after the keys. */}}
{{- define "ktb.toml.table" -}}
{{- $path := .path -}}
{{- $inline := .inline -}}
{{- range $k, $v := .table }}
{{- $section := and (not $inline) (or (kindIs "map" $v) (include "ktb.toml.isArrayOfTables" $v)) }}
{{- if and (not $section) (not (kindIs "invalid" $v)) }}
{{ include "ktb.toml.key" $k }} = {{ include "ktb.toml.value" $v }}
{{- end }}
{{- end }}
{{- if not $inline }}
{{- range $k, $v := .table }}
{{- $sub := printf "%s.%s" $path (include "ktb.toml.key" $k) }}
{{- if kindIs "map" $v }}

[{{ $sub }}]
{{- include "ktb.toml.table" (dict "path" $sub "table" $v "inline" false) }}
{{- else if include "ktb.toml.isArrayOfTables" $v }}
{{- range $item := $v }}

[[{{ $sub }}]]
{{- include "ktb.toml.table" (dict "path" $sub "table" $item "inline" true) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A value on the right of "=": inline table, array, or a JSON scalar (string, number, boolean) */}}
{{- define "ktb.toml.value" -}}
{{- if kindIs "map" . -}}
{{- $parts := list -}}
{{- range $k, $v := . -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $parts = append $parts (printf "%s = %s" (include "ktb.toml.key" $k) (include "ktb.toml.value" $v)) -}}
{{- end -}}
{{- end -}}
{{- if $parts -}}{ {{ join ", " $parts }} }{{- else -}}{}{{- end -}}
{{- else if kindIs "slice" . -}}
{{- $parts := list -}}
{{- range $v := . -}}
{{- $parts = append $parts (include "ktb.toml.value" $v) -}}
{{- end -}}
[{{ join ", " $parts }}]
{{- else if kindIs "invalid" . -}}
{{- fail "config: null is not a TOML value (remove the key instead)" -}}
{{- else if kindIs "string" . -}}
{{- include "ktb.toml.string" . -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end -}}

{{- define "ktb.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ include "ktb.toml.string" . }}{{- end -}}
{{- end -}}

{{/* A TOML basic string. toJson escapes quotes, backslashes and C0 controls but leaves DEL and the C1 controls,
which TOML (DEL) and the ConfigMap's YAML (both) refuse raw: escape those as \uXXXX too. */}}
{{- define "ktb.toml.string" -}}
{{- $s := toJson . -}}
{{- if regexMatch "[\\x{7f}-\\x{9f}\\x{fffe}\\x{ffff}]" $s -}}
{{- range $code := concat (untilStep 127 160 1) (list 65534 65535) -}}
{{- $s = replace (printf "%c" $code) (printf "\\u%04x" $code) $s -}}
{{- end -}}
{{- end -}}
{{- $s -}}
{{- end -}}

{{- define "ktb.toml.isArrayOfTables" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) -}}
{{- $all := true -}}
{{- range $v := . -}}{{- if not (kindIs "map" $v) -}}{{- $all = false -}}{{- end -}}{{- end -}}
{{- if $all -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* RBAC -----------------------------------------------------------------------------------------------------
The rules of broker/rbac_manifest.py broker_rules(), computed here from the roles of the in_cluster clusters
(tests/ops compares both for the same roles), plus TokenReview creation when [auth.kubernetes] reviews tokens
against an in_cluster cluster.
*/}}

{{- define "ktb.rbac.roles" -}}
{{- $clusters := .Values.config.clusters | default list -}}
{{- $inCluster := list -}}
{{- range $clusters -}}{{- if .in_cluster -}}{{- $inCluster = append $inCluster .name -}}{{- end -}}{{- end -}}
{{- /* like config.py: a role may omit `cluster` when exactly one cluster is configured */ -}}
{{- $onlyCluster := "" -}}
{{- if eq (len $clusters) 1 -}}{{- $onlyCluster = (index $clusters 0).name -}}{{- end -}}
{{- $roles := list -}}
{{- range $role := .Values.config.roles | default list -}}
{{- if has ($role.cluster | default $onlyCluster) $inCluster -}}{{- $roles = append $roles $role -}}{{- end -}}
{{- end -}}
{{- toJson $roles -}}
{{- end -}}

{{- define "ktb.rbac.rules" -}}
{{- /* {"resource": rules a Role can hold, "clusterScoped": rules only a ClusterRole can, "nonResource": URLs} */ -}}
{{- $sa := dict "get" true -}}
{{- $secrets := dict -}}
{{- $tokenRequest := false -}}
{{- $selector := false -}}
{{- range $role := include "ktb.rbac.roles" . | fromJsonArray -}}
{{- $create := true -}}
{{- if hasKey $role "create_service_account" -}}{{- $create = $role.create_service_account -}}{{- end -}}
{{- if $create -}}{{- $_ := set $sa "create" true -}}{{- end -}}
{{- /* the janitor deletes an on-demand account once its last token has expired */ -}}
{{- if $role.ephemeral_service_account -}}{{- $_ := set $sa "delete" true -}}{{- end -}}
{{- if eq ($role.mode | default "token-request") "legacy-secret" -}}
{{- /* find the Secret made earlier (list by label), create one, poll it until the token controller fills it */ -}}
{{- $_ := set $secrets "create" true -}}{{- $_ := set $secrets "get" true -}}{{- $_ := set $secrets "list" true -}}
{{- else -}}
{{- $tokenRequest = true -}}
{{- if $role.revocable -}}
{{- /* the Secret a token is bound to; deleting it revokes the token */ -}}
{{- $_ := set $secrets "create" true -}}{{- $_ := set $secrets "get" true -}}{{- $_ := set $secrets "delete" true -}}
{{- /* start-up repair finds the Secret of an interrupted issuance by its token-id label */ -}}
{{- $_ := set $secrets "list" true -}}
{{- end -}}
{{- end -}}
{{- if trim ($role.namespace_selector | default "") -}}{{- $selector = true -}}{{- end -}}
{{- end -}}
{{- $rules := list (dict "apiGroups" (list "") "resources" (list "serviceaccounts") "verbs" (keys $sa | sortAlpha)) -}}
{{- if $tokenRequest -}}
{{- $rules = append $rules (dict "apiGroups" (list "") "resources" (list "serviceaccounts/token") "verbs" (list "create")) -}}
{{- end -}}
{{- if $secrets -}}
{{- $rules = append $rules (dict "apiGroups" (list "") "resources" (list "secrets") "verbs" (keys $secrets | sortAlpha)) -}}
{{- end -}}
{{- if $selector -}}
{{- $rules = append $rules (dict "apiGroups" (list "") "resources" (list "namespaces") "verbs" (list "get")) -}}
{{- end -}}
{{- /* [auth.kubernetes] callers: the broker asks this cluster for TokenReviews (cluster-scoped, so never in a Role) */ -}}
{{- $clusterScoped := list -}}
{{- $review := ((.Values.config.auth | default dict).kubernetes | default dict) -}}
{{- if $review.enabled -}}
{{- $clusters := .Values.config.clusters | default list -}}
{{- $reviewCluster := $review.cluster | default (index $clusters 0).name -}}
{{- range $clusters -}}
{{- if and .in_cluster (eq .name $reviewCluster) -}}
{{- $clusterScoped = append $clusterScoped (dict "apiGroups" (list "authentication.k8s.io") "resources" (list "tokenreviews") "verbs" (list "create")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* issuer discovery and JWKS: granted to service accounts by default (system:service-account-issuer-discovery),
       but a cluster may have removed that binding */ -}}
{{- $nonResource := list (dict "nonResourceURLs" (list "/.well-known/openid-configuration" "/openid/v1/jwks") "verbs" (list "get")) -}}
{{- toJson (dict "resource" $rules "clusterScoped" $clusterScoped "nonResource" $nonResource) -}}
{{- end -}}

{{/* The janitor's Lease name, as config.py defaults it */}}
{{- define "ktb.janitor.leaseName" -}}
{{- (.Values.config.janitor | default dict).lease_name | default "kube-token-broker-janitor" -}}
{{- end -}}

{{- define "ktb.janitor.enabled" -}}
{{- $janitor := .Values.config.janitor | default dict -}}
{{- if or (not (hasKey $janitor "enabled")) $janitor.enabled -}}true{{- end -}}
{{- end -}}

{{/* Literal namespaces of in-cluster roles that rbac.namespaced does not list: they would fail with 403 */}}
{{- define "ktb.rbac.checkNamespaced" -}}
{{- $namespaced := .Values.rbac.namespaced -}}
{{- range $role := include "ktb.rbac.roles" . | fromJsonArray -}}
{{- range $ns := $role.namespaces | default list -}}
{{- if and (not (contains "*" $ns)) (not (contains "?" $ns)) (not (has $ns $namespaced)) -}}
{{- fail (printf "rbac.namespaced does not list namespace %q of role %q: add it, or leave rbac.namespaced empty for a ClusterRole" $ns $role.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

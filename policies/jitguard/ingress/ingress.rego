# Ingress and HTTPRoute: changing them in a protected namespace needs a just-in-time
# grant; wildcard hosts, hosts outside the allowed domains and removing TLS are denied
# everywhere; a route to a Service in another namespace outside the allowed ones is
# warned about.
package jitguard.ingress

import data.jitguard.lib

params := data.jitguard.ingress.settings

resource := input.request.resource

is_ingress if {
	resource.group == "networking.k8s.io"
	resource.resource == "ingresses"
}

is_route if {
	resource.group == "gateway.networking.k8s.io"
	resource.resource == "httproutes"
}

governed if is_ingress

governed if is_route

writing if input.request.operation in {"CREATE", "UPDATE"}

hosts(o) := {h | some rule in o.spec.rules; h := rule.host} if is_ingress

hosts(o) := {h | some h in o.spec.hostnames} if is_route

tls_hosts(o) := {h | some t in o.spec.tls; some h in t.hosts} if is_ingress

wildcard(host) if contains(host, "*")

allowed_domain(host) if host in params.allowed_domains

allowed_domain(host) if {
	some d in params.allowed_domains
	endswith(host, concat("", [".", d]))
}

require_grant contains msg if {
	governed
	lib.mutating
	lib.in_protected_namespace
	not lib.exempt
	msg := sprintf("%s of %s in protected namespace %s needs a just-in-time grant", [
		verb[input.request.operation], lib.describe, input.request.namespace,
	])
}

verb := {"CREATE": "creation", "UPDATE": "change", "DELETE": "deletion"}

deny contains msg if {
	governed
	writing
	some host in hosts(input.request.object)
	wildcard(host)
	msg := sprintf("%s: wildcard host %s is not allowed; name each host", [lib.describe, host])
}

deny contains msg if {
	governed
	writing
	some host in hosts(input.request.object)
	not wildcard(host)
	not allowed_domain(host)
	msg := sprintf("%s: host %s is outside the allowed domains %v", [lib.describe, host, params.allowed_domains])
}

# Removing TLS: hosts that had TLS before and have none now.
deny contains msg if {
	is_ingress
	input.request.operation == "UPDATE"
	some host in tls_hosts(input.request.oldObject) - tls_hosts(input.request.object)
	msg := sprintf("%s: removing TLS for %s is not allowed", [lib.describe, host])
}

warn contains msg if {
	is_route
	writing
	some rule in input.request.object.spec.rules
	some ref in rule.backendRefs
	ns := object.get(ref, "namespace", input.request.namespace)
	ns != input.request.namespace
	not backend_namespace_allowed(ns)
	msg := sprintf("%s: backend %s/%s is in another namespace that is not allowed (%v)", [lib.describe, ns, ref.name, params.backend_namespaces])
}

backend_namespace_allowed(ns) if {
	some pattern in params.backend_namespaces
	glob.match(pattern, [], ns)
}

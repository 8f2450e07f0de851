# Ingress and HTTPRoute: changing them in a protected namespace needs a just-in-time
# grant; wildcard hosts (also by omission: no host), hosts outside the allowed domains and
# removing TLS are denied
# everywhere; a route to a Service in another namespace outside the allowed ones is
# warned about.
package jitguard.ingress

import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace

params := data.jitguard.ingress.settings

# Every contract rule starts with tests of the request written inline: jitguard reads
# them and skips this package for requests about other resources, and where a body is
# evaluated, each helper rule or function it calls costs regorus some 20 000 instructions
# of bookkeeping, more than the tests themselves.

is_ingress if {
	input.request.resource.resource == "ingresses"
	input.request.resource.group == "networking.k8s.io"
}

is_route if {
	input.request.resource.resource == "httproutes"
	input.request.resource.group == "gateway.networking.k8s.io"
}

# The hosts of the new object, once per request.
hosts := {h | some rule in input.request.object.spec.rules; h := rule.host} if is_ingress

hosts := {h | some h in input.request.object.spec.hostnames} if is_route

tls_hosts(o) := {h | some t in o.spec.tls; some h in t.hosts} if is_ingress

allowed_domain(host) if host in params.allowed_domains

allowed_domain(host) if {
	some d in params.allowed_domains
	endswith(host, concat("", [".", d]))
}

require_grant contains msg if {
	input.request.resource.resource in {"ingresses", "httproutes"}
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	[input.request.resource.group, input.request.resource.resource] in governed
	in_protected_namespace
	not exempt
	msg := sprintf("%s of %s in protected namespace %s needs a just-in-time grant", [
		{"CREATE": "creation", "UPDATE": "change", "DELETE": "deletion"}[input.request.operation],
		describe,
		input.request.namespace,
	])
}

# [group, resource] of what this package governs: a custom resource that shares a name is not.
governed := {["networking.k8s.io", "ingresses"], ["gateway.networking.k8s.io", "httproutes"]}

deny contains msg if {
	input.request.resource.resource in {"ingresses", "httproutes"}
	input.request.operation in {"CREATE", "UPDATE"}
	[input.request.resource.group, input.request.resource.resource] in governed
	some host in hosts
	contains(host, "*")
	msg := sprintf("%s: wildcard host %s is not allowed; name each host", [describe, host])
}

# A rule without a host, an Ingress's defaultBackend or an HTTPRoute without hostnames
# serves every host name the controller or Gateway receives: a wildcard by omission.
deny contains msg if {
	input.request.resource.resource in {"ingresses", "httproutes"}
	input.request.operation in {"CREATE", "UPDATE"}
	[input.request.resource.group, input.request.resource.resource] in governed
	catch_all(input.request.object)
	msg := sprintf("%s serves every host name (a rule without a host, a defaultBackend, or no hostnames); name each host", [describe])
}

catch_all(o) if {
	is_ingress
	some rule in o.spec.rules
	object.get(rule, "host", "") == ""
}

catch_all(o) if {
	is_ingress
	o.spec.defaultBackend
}

catch_all(o) if {
	is_route
	count(object.get(o.spec, "hostnames", [])) == 0
}

deny contains msg if {
	input.request.resource.resource in {"ingresses", "httproutes"}
	input.request.operation in {"CREATE", "UPDATE"}
	[input.request.resource.group, input.request.resource.resource] in governed
	some host in hosts
	not contains(host, "*")
	not allowed_domain(host)
	msg := sprintf("%s: host %s is outside the allowed domains %v", [describe, host, params.allowed_domains])
}

# Removing TLS: hosts that had TLS before and have none now.
deny contains msg if {
	input.request.resource.resource == "ingresses"
	is_ingress
	input.request.operation == "UPDATE"
	some host in tls_hosts(input.request.oldObject) - tls_hosts(input.request.object)
	msg := sprintf("%s: removing TLS for %s is not allowed", [describe, host])
}

warn contains msg if {
	input.request.resource.resource == "httproutes"
	input.request.operation in {"CREATE", "UPDATE"}
	is_route
	some rule in input.request.object.spec.rules
	some ref in rule.backendRefs
	ns := object.get(ref, "namespace", input.request.namespace)
	ns != input.request.namespace
	not backend_namespace_allowed(ns)
	msg := sprintf("%s: backend %s/%s is in another namespace that is not allowed (%v)", [describe, ns, ref.name, params.backend_namespaces])
}

backend_namespace_allowed(ns) if {
	some pattern in params.backend_namespaces
	glob.match(pattern, [], ns)
}

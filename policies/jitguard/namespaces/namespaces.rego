# Protected namespaces: creating, changing or deleting anything in them needs a
# just-in-time grant, and a protected namespace cannot be deleted at all.
package jitguard.namespaces

import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace
import data.jitguard.lib.protected_namespace_object
import data.jitguard.lib.workload_identity

deny contains msg if {
	input.request.operation == "DELETE"
	protected_namespace_object
	msg := sprintf("namespace %s is protected and cannot be deleted, not even with a grant", [input.request.name])
}

# The operation is tested first, inline (lib's `mutating`, written out): jitguard then
# skips this package for the requests it excludes (exec, port-forward ...).
require_grant contains msg if {
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	in_protected_namespace
	not exempt
	not workload_identity
	not governed_elsewhere
	msg := sprintf("%s of %s in protected namespace %s needs a just-in-time grant", [
		{"CREATE": "creation", "UPDATE": "change", "DELETE": "deletion"}[input.request.operation],
		describe,
		input.request.namespace,
	])
}

require_grant contains msg if {
	input.request.operation == "UPDATE"
	protected_namespace_object
	not exempt
	msg := sprintf("changing protected namespace %s needs a just-in-time grant", [input.request.name])
}

# Namespaces themselves are handled above; debug containers by jitguard.interactive;
# Ingresses and HTTPRoutes by jitguard.ingress (one finding per request, not two). Each
# by its API group too: a custom resource that shares a name is guarded here.
governed_elsewhere if {
	[input.request.resource.group, input.request.resource.resource] in {
		["", "namespaces"],
		["networking.k8s.io", "ingresses"],
		["gateway.networking.k8s.io", "httproutes"],
	}
}

governed_elsewhere if {
	input.request.subResource == "ephemeralcontainers"
	input.request.resource.resource == "pods"
	input.request.resource.group == ""
}

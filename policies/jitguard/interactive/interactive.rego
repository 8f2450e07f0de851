# Interactive access: exec, attach and port-forward into pods (CONNECT), and ephemeral
# debug containers, in protected namespaces need a just-in-time grant.
package jitguard.interactive

import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace

verbs := {"exec": "exec", "attach": "attach", "portforward": "port-forward"}

require_grant contains msg if {
	input.request.operation == "CONNECT"
	input.request.resource.resource == "pods"
	verb := verbs[input.request.subResource]
	in_protected_namespace
	not exempt
	msg := sprintf("kubectl %s into pod %s/%s needs a just-in-time grant", [verb, input.request.namespace, input.request.name])
}

require_grant contains msg if {
	input.request.operation == "UPDATE"
	input.request.resource.resource == "pods"
	input.request.subResource == "ephemeralcontainers"
	in_protected_namespace
	not exempt
	msg := sprintf("adding a debug container to pod %s/%s needs a just-in-time grant", [input.request.namespace, input.request.name])
}

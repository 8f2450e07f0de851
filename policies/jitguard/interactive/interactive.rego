# Interactive access: exec, attach, port-forward and proxy into pods, proxy into services
# (CONNECT), and ephemeral debug containers, in protected namespaces need a just-in-time
# grant.
package jitguard.interactive

import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace

# What each CONNECT is called in a denial, by resource and subresource. The API server's
# proxy reaches the pod's or service's ports as port-forward does.
connect := {
	"pods": {
		"exec": "kubectl exec into pod",
		"attach": "kubectl attach into pod",
		"portforward": "kubectl port-forward into pod",
		"proxy": "proxying through the API server to pod",
	},
	"services": {"proxy": "proxying through the API server to service"},
}

require_grant contains msg if {
	input.request.operation == "CONNECT"
	input.request.resource.group == ""
	what := connect[input.request.resource.resource][input.request.subResource]
	in_protected_namespace
	not exempt
	msg := sprintf("%s %s/%s needs a just-in-time grant", [what, input.request.namespace, input.request.name])
}

require_grant contains msg if {
	input.request.operation == "UPDATE"
	input.request.resource.resource == "pods"
	input.request.resource.group == ""
	input.request.subResource == "ephemeralcontainers"
	in_protected_namespace
	not exempt
	msg := sprintf("adding a debug container to pod %s/%s needs a just-in-time grant", [input.request.namespace, input.request.name])
}

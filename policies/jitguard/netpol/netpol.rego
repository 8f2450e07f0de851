# NetworkPolicies: creating, changing or deleting one needs a just-in-time grant, so that
# traffic rules are time-bound (a policy created under a grant carries the grant's label
# and jitguard's reaper removes it when the grant ends). Rules that allow all ingress or
# all egress are denied in protected namespaces.
package jitguard.netpol

import data.jitguard.lib

params := data.jitguard.netpol.settings

is_netpol if {
	input.request.resource.group == "networking.k8s.io"
	input.request.resource.resource == "networkpolicies"
}

governed_namespace(ns) if {
	some pattern in params.namespaces
	glob.match(pattern, [], ns)
}

verb := {"CREATE": "Creating", "UPDATE": "Changing", "DELETE": "Deleting"}

require_grant contains msg if {
	is_netpol
	lib.mutating
	governed_namespace(input.request.namespace)
	not lib.exempt
	msg := sprintf("%s NetworkPolicy %s/%s needs a just-in-time grant (policies created under a grant are removed when it ends)", [
		verb[input.request.operation], input.request.namespace, input.request.name,
	])
}

# A peer list that admits everyone: no peers at all, or a catch-all peer.
open_peers(peers) if count(peers) == 0

open_peers(peers) if {
	some peer in peers
	peer.ipBlock.cidr in {"0.0.0.0/0", "::/0"}
	count(object.get(peer.ipBlock, "except", [])) == 0
}

open_peers(peers) if {
	some peer in peers
	peer.namespaceSelector == {}
	not peer.podSelector
}

allows_all(rules, field) if {
	some rule in rules
	open_peers(object.get(rule, field, []))
}

deny contains msg if {
	is_netpol
	input.request.operation in {"CREATE", "UPDATE"}
	lib.in_protected_namespace
	some direction, field in {"ingress": "from", "egress": "to"}
	allows_all(object.get(input.request.object.spec, direction, []), field)
	msg := sprintf("NetworkPolicy %s/%s allows all %s traffic, which protected namespace %s does not allow", [
		input.request.namespace, input.request.name, direction, input.request.namespace,
	])
}

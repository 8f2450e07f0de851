# NetworkPolicies: creating, changing or deleting one needs a just-in-time grant, so that
# traffic rules are time-bound (a policy created under a grant carries the grant's label
# and jitguard's reaper removes it when the grant ends). Rules that allow all ingress or
# all egress are denied in protected namespaces.
package jitguard.netpol

import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace
import data.jitguard.lib.mutating

params := data.jitguard.netpol.settings

# Every contract rule starts with a test of input.request.resource written inline: most
# requests are about other resources, and for them that one comparison is all the rule
# costs (a helper rule such as is_netpol costs regorus about ten times more).

is_netpol if {
	input.request.resource.resource == "networkpolicies"
	input.request.resource.group == "networking.k8s.io"
}

governed_namespace(ns) if {
	some pattern in params.namespaces
	glob.match(pattern, [], ns)
}

verb := {"CREATE": "Creating", "UPDATE": "Changing", "DELETE": "Deleting"}

require_grant contains msg if {
	input.request.resource.resource == "networkpolicies"
	is_netpol
	mutating
	governed_namespace(input.request.namespace)
	not exempt
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
	input.request.resource.resource == "networkpolicies"
	is_netpol
	input.request.operation in {"CREATE", "UPDATE"}
	in_protected_namespace
	some direction, field in {"ingress": "from", "egress": "to"}
	allows_all(object.get(input.request.object.spec, direction, []), field)
	msg := sprintf("NetworkPolicy %s/%s allows all %s traffic, which protected namespace %s does not allow", [
		input.request.namespace, input.request.name, direction, input.request.namespace,
	])
}

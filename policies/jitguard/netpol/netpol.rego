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

# IP blocks without exceptions that together cover every address of a family (0.0.0.0/0,
# or 0.0.0.0/1 with 128.0.0.0/1, and the same for IPv6). CIDRs either nest or do not
# overlap: the outermost ones are disjoint, and they cover everything when their sizes add
# up to the whole space. (net.cidr_merge would say it directly, but regorus lacks it.)
open_peers(peers) if {
	some family in ["v4", "v6"]
	cidrs := {c |
		some p in peers
		c := p.ipBlock.cidr
		count(object.get(p.ipBlock, "except", [])) == 0
		ip_family(c) == family
	}
	outer := {c | some c in cidrs; not inside_another(c, cidrs)}
	sum([block_size(c) | some c in outer]) == whole_space[family]
}

ip_family(cidr) := "v6" if contains(cidr, ":")

ip_family(cidr) := "v4" if not contains(cidr, ":")

inside_another(c, cidrs) if {
	some d in cidrs
	d != c
	net.cidr_contains(d, c)
	not net.cidr_contains(c, d)
}

# The same block written twice (10.0.0.0/8 and 10.0.0.1/8): one of them counts.
inside_another(c, cidrs) if {
	some d in cidrs
	d < c
	net.cidr_contains(d, c)
	net.cidr_contains(c, d)
}

# Sizes in units that fit a 64-bit integer: addresses for IPv4, /62 blocks for IPv6
# (longer IPv6 prefixes are too small to matter: covering the space with them would take
# more than 2^62 blocks).
prefix_bits := {"v4": 32, "v6": 62}

whole_space := {"v4": 4294967296, "v6": 4611686018427387904}

block_size(cidr) := bits.lsh(1, prefix_bits[family] - length) if {
	family := ip_family(cidr)
	length := to_number(split(cidr, "/")[1])
	length <= prefix_bits[family]
}

# Every pod of every namespace: an empty namespaceSelector, with no podSelector or an
# empty one.
open_peers(peers) if {
	some peer in peers
	peer.namespaceSelector == {}
	object.get(peer, "podSelector", {}) == {}
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

package jitguard.netpol_test

import data.jitguard.netpol
import data.jitguard.testing

policy(ns, spec) := {
	"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
	"metadata": {"name": "np", "namespace": ns},
	"spec": object.union({"podSelector": {}}, spec),
}

from_frontend := {"ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}]}]}

test_every_change_to_a_network_policy_needs_a_grant if {
	count(netpol.require_grant) == 1 with input as testing.create(policy("dev", from_frontend), "networkpolicies")
	count(netpol.require_grant) == 1 with input as testing.update(policy("prod", from_frontend), "networkpolicies")
	netpol.require_grant == {"Deleting NetworkPolicy dev/np needs a just-in-time grant (policies created under a grant are removed when it ends)"} with input as testing.delete(policy("dev", from_frontend), "networkpolicies")
}

test_jitguard_itself_needs_no_grant_to_remove_them if {
	r := testing.as_user(testing.delete(policy("dev", from_frontend), "networkpolicies"), {"username": "system:serviceaccount:jitguard:jitguard", "groups": []})
	count(netpol.require_grant) == 0 with input as r
}

test_allow_all_ingress_is_denied_in_protected_namespaces if {
	count(netpol.deny) == 1 with input as testing.create(policy("prod", {"ingress": [{}]}), "networkpolicies")
	count(netpol.deny) == 1 with input as testing.create(policy("prod", {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}), "networkpolicies")
	count(netpol.deny) == 1 with input as testing.create(policy("prod", {"ingress": [{"from": [{"namespaceSelector": {}}]}]}), "networkpolicies")
	count(netpol.deny) == 0 with input as testing.create(policy("prod", from_frontend), "networkpolicies")
	count(netpol.deny) == 0 with input as testing.create(policy("dev", {"ingress": [{}]}), "networkpolicies")
}

test_allow_all_written_differently_is_denied_too if {
	every_pod := {"ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {}}]}]}
	count(netpol.deny) == 1 with input as testing.create(policy("prod", every_pod), "networkpolicies")
	halves := {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}]}]}
	count(netpol.deny) == 1 with input as testing.create(policy("prod", halves), "networkpolicies")
	v6 := {"egress": [{"to": [{"ipBlock": {"cidr": "::/1"}}, {"ipBlock": {"cidr": "8000::/1"}}]}]}
	count(netpol.deny) == 1 with input as testing.create(policy("prod", v6), "networkpolicies")
	twice := {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "0.0.0.5/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}, {"ipBlock": {"cidr": "fd00::/8"}}]}]}
	count(netpol.deny) == 1 with input as testing.create(policy("prod", twice), "networkpolicies")
	one_half := {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}]}]}
	count(netpol.deny) == 0 with input as testing.create(policy("prod", one_half), "networkpolicies")
	excepted := {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1", "except": ["10.0.0.0/8"]}}]}]}
	count(netpol.deny) == 0 with input as testing.create(policy("prod", excepted), "networkpolicies")
	some_pods := {"ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "a"}}}]}]}
	count(netpol.deny) == 0 with input as testing.create(policy("prod", some_pods), "networkpolicies")
}

test_allow_all_egress_is_denied_too if {
	netpol.deny == {"NetworkPolicy prod/np allows all egress traffic, which protected namespace prod does not allow"} with input as testing.create(policy("prod", {"egress": [{"to": [{"ipBlock": {"cidr": "::/0"}}]}]}), "networkpolicies")
	count(netpol.deny) == 0 with input as testing.create(policy("prod", {"egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}]}), "networkpolicies")
}

package jitguard.interactive_test

import data.jitguard.interactive
import data.jitguard.testing

test_exec_into_a_protected_pod_needs_a_grant if {
	interactive.require_grant == {"kubectl exec into pod prod/web-0 needs a just-in-time grant"} with input as testing.connect("prod", "web-0", "exec")
}

test_attach_and_port_forward_need_a_grant_too if {
	count(interactive.require_grant) == 1 with input as testing.connect("prod", "web-0", "attach")
	interactive.require_grant == {"kubectl port-forward into pod prod/web-0 needs a just-in-time grant"} with input as testing.connect("prod", "web-0", "portforward")
}

test_exec_elsewhere_is_free if {
	count(interactive.require_grant) == 0 with input as testing.connect("dev", "web-0", "exec")
}

test_proxy_to_a_protected_pod_or_service_needs_a_grant if {
	interactive.require_grant == {"proxying through the API server to pod prod/web-0 needs a just-in-time grant"} with input as testing.connect("prod", "web-0", "proxy")
	r := object.union(testing.connect("prod", "web", "proxy"), {"request": {"resource": {"resource": "services"}, "kind": {"kind": "ServiceProxyOptions"}}})
	interactive.require_grant == {"proxying through the API server to service prod/web needs a just-in-time grant"} with input as r
}

test_other_connect_subresources_are_not_interactive if {
	count(interactive.require_grant) == 0 with input as testing.connect("prod", "web-0", "binding")
	r := object.union(testing.connect("prod", "web", "exec"), {"request": {"resource": {"resource": "services"}}})
	count(interactive.require_grant) == 0 with input as r
}

test_debug_containers_need_a_grant if {
	r := object.union(testing.update(testing.pod("prod", "web-0", testing.plain_spec), "pods"), {"request": {"subResource": "ephemeralcontainers"}})
	interactive.require_grant == {"adding a debug container to pod prod/web-0 needs a just-in-time grant"} with input as r
}

test_nodes_are_exempt if {
	r := testing.as_user(testing.connect("prod", "web-0", "exec"), {"username": "system:node:n1", "groups": ["system:nodes"]})
	count(interactive.require_grant) == 0 with input as r
}

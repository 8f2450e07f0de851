package jitguard.ingress_test

import data.jitguard.ingress
import data.jitguard.testing

ing(ns, hosts, tls) := {
	"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
	"metadata": {"name": "web", "namespace": ns},
	"spec": {
		"rules": [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}} | some h in hosts],
		"tls": [{"hosts": tls, "secretName": "web-tls"} | count(tls) > 0],
	},
}

route(ns, hostnames, backend_ns) := {
	"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
	"metadata": {"name": "web", "namespace": ns},
	"spec": {"hostnames": hostnames, "rules": [{"backendRefs": [{"name": "api", "namespace": backend_ns, "port": 80}]}]},
}

test_changing_an_ingress_in_a_protected_namespace_needs_a_grant if {
	ingress.require_grant == {"change of Ingress prod/web in protected namespace prod needs a just-in-time grant"} with input as testing.update(ing("prod", ["shop.example.com"], ["shop.example.com"]), "ingresses")
	count(ingress.require_grant) == 1 with input as testing.delete(ing("prod", ["shop.example.com"], []), "ingresses")
	count(ingress.require_grant) == 0 with input as testing.create(ing("dev", ["shop.example.com"], []), "ingresses")
}

test_routes_in_a_protected_namespace_need_a_grant if {
	count(ingress.require_grant) == 1 with input as testing.create(route("prod", ["shop.example.com"], "prod"), "httproutes")
}

test_wildcard_hosts_are_denied_everywhere if {
	ingress.deny == {"Ingress dev/web: wildcard host *.example.com is not allowed; name each host"} with input as testing.create(ing("dev", ["*.example.com"], []), "ingresses")
	count(ingress.deny) == 1 with input as testing.create(route("dev", ["*.example.com"], "dev"), "httproutes")
}

test_a_catch_all_is_a_wildcard_too if {
	no_host := json.patch(ing("dev", ["shop.example.com"], []), [{"op": "remove", "path": "/spec/rules/0/host"}])
	ingress.deny == {"Ingress dev/web serves every host name (a rule without a host, a defaultBackend, or no hostnames); name each host"} with input as testing.create(no_host, "ingresses")
	default_backend := json.patch(ing("dev", [], []), [{"op": "add", "path": "/spec/defaultBackend", "value": {"service": {"name": "web", "port": {"number": 80}}}}])
	count(ingress.deny) == 1 with input as testing.create(default_backend, "ingresses")
	count(ingress.deny) == 1 with input as testing.create(route("dev", [], "dev"), "httproutes")
	count(ingress.deny) == 0 with input as testing.create(ing("dev", ["shop.example.com"], []), "ingresses")
}

test_hosts_outside_the_allowed_domains_are_denied if {
	count(ingress.deny) == 1 with input as testing.create(ing("dev", ["shop.evil.com"], []), "ingresses")
	count(ingress.deny) == 1 with input as testing.create(ing("dev", ["notexample.com"], []), "ingresses")
	count(ingress.deny) == 0 with input as testing.create(ing("dev", ["example.org", "a.b.example.com"], []), "ingresses")
}

test_removing_tls_is_denied if {
	old := ing("dev", ["shop.example.com"], ["shop.example.com"])
	new := ing("dev", ["shop.example.com"], [])
	r := object.union(testing.update(new, "ingresses"), {"request": {"oldObject": old}})
	ingress.deny == {"Ingress dev/web: removing TLS for shop.example.com is not allowed"} with input as r
	kept := object.union(testing.update(old, "ingresses"), {"request": {"oldObject": old}})
	count(ingress.deny) == 0 with input as kept
}

test_backends_in_other_namespaces_are_warned_unless_allowed if {
	count(ingress.warn) == 1 with input as testing.create(route("dev", ["shop.example.com"], "payments"), "httproutes")
	count(ingress.warn) == 0 with input as testing.create(route("dev", ["shop.example.com"], "shared-api"), "httproutes")
	count(ingress.warn) == 0 with input as testing.create(route("dev", ["shop.example.com"], "dev"), "httproutes")
}

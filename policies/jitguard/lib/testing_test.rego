# Builders for the pack's tests: AdmissionReviews shaped like the API server's.
# A *_test.rego file, so jitguard never serves it.
package jitguard.testing

alice := {"username": "alice@example.com", "groups": ["developers", "system:authenticated"]}

controller := {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts", "system:authenticated"]}

# Thursday 2026-01-01T12:00:00Z
noon := 1767268800000000000

review(request) := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"request": object.union(
		{"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "userInfo": alice, "dryRun": false, "oldObject": null},
		request,
	),
	"jit": {"now_ns": noon, "grants": []},
}

# A request about object o; resource is its plural.
about(operation, o, resource) := review({
	"operation": operation,
	"kind": {"group": group(o), "version": version(o), "kind": o.kind},
	"resource": {"group": group(o), "version": version(o), "resource": resource},
	"namespace": object.get(o.metadata, "namespace", ""),
	"name": o.metadata.name,
	"object": o,
})

create(o, resource) := about("CREATE", o, resource)

update(o, resource) := about("UPDATE", o, resource)

delete(o, resource) := object.union(about("DELETE", o, resource), {"request": {"object": null, "oldObject": o}})

as_user(r, user) := object.union(r, {"request": {"userInfo": user}})

at(r, ns) := object.union(r, {"jit": {"now_ns": ns}})

group(o) := g if {
	contains(o.apiVersion, "/")
	g := split(o.apiVersion, "/")[0]
}

group(o) := "" if not contains(o.apiVersion, "/")

version(o) := v if {
	parts := split(o.apiVersion, "/")
	v := parts[count(parts) - 1]
}

pod(ns, name, spec) := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": name, "namespace": ns},
	"spec": spec,
}

plain_spec := {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}

connect(ns, pod_name, subresource) := review({
	"operation": "CONNECT",
	"kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"subResource": subresource,
	"namespace": ns,
	"name": pod_name,
	"object": {"apiVersion": "v1", "kind": "PodExecOptions", "stdin": true, "tty": true, "container": "app", "command": ["sh"]},
})

namespace(name, labels) := {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}

# A request whose namespace jitguard knows, with these labels (input.jit.namespaces).
in_labelled(r, labels) := labelled(r, r.request.namespace, labels)

labelled(r, ns, labels) := object.union(r, {"jit": {"namespaces": {ns: {"name": ns, "labels": labels}}}})

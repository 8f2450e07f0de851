package jitguard.namespaces_test

import data.jitguard.namespaces
import data.jitguard.testing

prod_pod := testing.pod("prod", "web", testing.plain_spec)

test_changes_in_a_protected_namespace_need_a_grant if {
	count(namespaces.require_grant) == 1 with input as testing.create(prod_pod, "pods")
	count(namespaces.require_grant) == 1 with input as testing.update(prod_pod, "pods")
	count(namespaces.require_grant) == 1 with input as testing.delete(prod_pod, "pods")
}

test_prefixed_namespaces_are_protected if {
	count(namespaces.require_grant) == 1 with input as testing.create(testing.pod("prod-eu", "web", testing.plain_spec), "pods")
}

test_other_namespaces_need_nothing if {
	r := testing.create(testing.pod("dev", "web", testing.plain_spec), "pods")
	count(namespaces.require_grant) == 0 with input as r
	count(namespaces.deny) == 0 with input as r
}

test_controllers_need_no_grant if {
	count(namespaces.require_grant) == 0 with input as testing.as_user(testing.create(prod_pod, "pods"), testing.controller)
}

test_the_message_says_what_and_where if {
	namespaces.require_grant == {"creation of Pod prod/web in protected namespace prod needs a just-in-time grant"} with input as testing.create(prod_pod, "pods")
}

test_deleting_a_protected_namespace_is_denied if {
	r := testing.delete(testing.namespace("prod", {}), "namespaces")
	namespaces.deny == {"namespace prod is protected and cannot be deleted, not even with a grant"} with input as r
}

test_deleting_a_labelled_namespace_is_denied if {
	r := testing.delete(testing.namespace("team-a", {"jitguard.dev/protected": "true"}), "namespaces")
	count(namespaces.deny) == 1 with input as r
}

test_deleting_another_namespace_is_allowed if {
	r := testing.delete(testing.namespace("scratch", {}), "namespaces")
	count(namespaces.deny) == 0 with input as r
	count(namespaces.require_grant) == 0 with input as r
}

test_changing_a_protected_namespace_needs_a_grant if {
	r := testing.update(testing.namespace("prod", {"team": "x"}), "namespaces")
	namespaces.require_grant == {"changing protected namespace prod needs a just-in-time grant"} with input as r
}

test_debug_containers_are_left_to_the_interactive_package if {
	r := object.union(testing.update(prod_pod, "pods"), {"request": {"subResource": "ephemeralcontainers"}})
	count(namespaces.require_grant) == 0 with input as r
}

test_ingresses_are_left_to_the_ingress_package if {
	i := {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "prod"}, "spec": {}}
	count(namespaces.require_grant) == 0 with input as testing.update(i, "ingresses")
}

test_everything_in_a_namespace_labelled_protected_needs_a_grant if {
	pod := testing.pod("team-a", "web", testing.plain_spec)
	r := testing.in_labelled(testing.create(pod, "pods"), {"jitguard.dev/protected": "true"})
	namespaces.require_grant == {"creation of Pod team-a/web in protected namespace team-a needs a just-in-time grant"} with input as r
	count(namespaces.require_grant) == 0 with input as testing.in_labelled(testing.create(pod, "pods"), {"team": "a"})
}

test_removing_the_protection_label_needs_a_grant if {
	r := testing.update(testing.namespace("team-a", {}), "namespaces")
	labelled := object.union(r, {"request": {"oldObject": testing.namespace("team-a", {"jitguard.dev/protected": "true"})}})
	namespaces.require_grant == {"changing protected namespace team-a needs a just-in-time grant"} with input as labelled
	count(namespaces.require_grant) == 0 with input as r
}

own_sa := {"username": "system:serviceaccount:prod:checkout", "groups": ["system:serviceaccounts"]}

test_a_namespaces_own_service_accounts_need_no_grant_for_what_workloads_write if {
	cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leader", "namespace": "prod"}}
	count(namespaces.require_grant) == 0 with input as testing.as_user(testing.update(cm, "configmaps"), own_sa)
	lease := {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader", "namespace": "prod"}}
	count(namespaces.require_grant) == 0 with input as testing.as_user(testing.update(lease, "leases"), own_sa)
	other := {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]}
	count(namespaces.require_grant) == 1 with input as testing.as_user(testing.update(cm, "configmaps"), other)
	count(namespaces.require_grant) == 1 with input as testing.as_user(testing.update(cm, "configmaps"), own_sa) with data.jitguard.config.exempt.namespace_service_accounts as []
}

# Anyone who can run a pod as the service account (or mint its token) would have what it
# has: never what changes who or what runs.
test_a_namespaces_own_service_accounts_need_a_grant_for_anything_else if {
	binding := {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "me-admin", "namespace": "prod"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}}
	count(namespaces.require_grant) == 1 with input as testing.as_user(testing.create(binding, "rolebindings"), own_sa)
	deploy := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "checkout", "namespace": "prod"}}
	count(namespaces.require_grant) == 1 with input as testing.as_user(testing.update(deploy, "deployments"), own_sa)
	secret := {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "prod"}, "type": "kubernetes.io/service-account-token"}
	count(namespaces.require_grant) == 1 with input as testing.as_user(testing.create(secret, "secrets"), own_sa)
	pod := testing.pod("prod", "shell", testing.plain_spec)
	count(namespaces.require_grant) == 1 with input as testing.as_user(testing.create(pod, "pods"), own_sa)
	cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leader", "namespace": "prod"}}
	status := object.union(testing.update(cm, "configmaps"), {"request": {"subResource": "status"}})
	count(namespaces.require_grant) == 1 with input as testing.as_user(status, own_sa)
}

# Look-alikes: a custom resource named like a Namespace or an Ingress is an object in the
# namespace like any other, not a way around the guardrail.
test_a_custom_kind_called_namespace_needs_a_grant_like_any_object if {
	o := {"apiVersion": "example.com/v1", "kind": "Namespace", "metadata": {"name": "shadow", "namespace": "prod"}}
	count(namespaces.require_grant) == 1 with input as testing.create(o, "namespaces")
	count(namespaces.deny) == 0 with input as testing.delete(o, "namespaces")
}

test_a_custom_ingresses_resource_needs_a_grant_like_any_object if {
	o := {"apiVersion": "example.com/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "prod"}}
	count(namespaces.require_grant) == 1 with input as testing.create(o, "ingresses")
}

test_a_custom_pods_ephemeralcontainers_needs_a_grant_like_any_object if {
	o := {"apiVersion": "example.com/v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"}}
	r := object.union(testing.update(o, "pods"), {"request": {"subResource": "ephemeralcontainers"}})
	count(namespaces.require_grant) == 1 with input as r
}

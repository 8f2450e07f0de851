package jitguard.rbac_test

import data.jitguard.rbac
import data.jitguard.testing

crb(name, role) := {
	"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
	"metadata": {"name": name},
	"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
	"subjects": [{"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"}],
}

rb(ns, role) := object.union(crb("rb", role), {"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": ns}})

role(verbs) := {
	"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
	"metadata": {"name": "r"},
	"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
}

test_cluster_role_bindings_need_a_grant if {
	rbac.require_grant == {"creating ClusterRoleBinding viewers needs a just-in-time grant"} with input as testing.create(crb("viewers", "view"), "clusterrolebindings")
	count(rbac.require_grant) == 1 with input as testing.delete(crb("viewers", "view"), "clusterrolebindings")
}

test_binding_cluster_admin_needs_a_grant_even_in_a_role_binding if {
	rbac.require_grant == {"binding cluster-admin (RoleBinding rb) needs a just-in-time grant"} with input as testing.create(rb("dev", "cluster-admin"), "rolebindings")
	count(rbac.require_grant) == 0 with input as testing.create(rb("dev", "view"), "rolebindings")
}

test_escalating_roles_need_a_grant if {
	rbac.require_grant == {"ClusterRole r with verbs bind, escalate needs a just-in-time grant"} with input as testing.create(role(["get", "escalate", "bind"]), "clusterroles")
	count(rbac.require_grant) == 1 with input as testing.create(role(["*"]), "clusterroles")
	count(rbac.require_grant) == 0 with input as testing.create(role(["get", "list"]), "clusterroles")
}

test_roles_that_take_in_more_than_they_name_need_a_grant if {
	wild := object.union(role(["get"]), {"rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]})
	rbac.require_grant == {"ClusterRole r with wildcard resources needs a just-in-time grant"} with input as testing.create(wild, "clusterroles")
	aggregated := object.union(role(["get"]), {"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]}})
	rbac.require_grant == {"ClusterRole r with an aggregationRule needs a just-in-time grant"} with input as testing.create(aggregated, "clusterroles")
	into_admin := object.union(role(["get"]), {"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}})
	rbac.require_grant == {"ClusterRole r with the label rbac.authorization.k8s.io/aggregate-to-admin needs a just-in-time grant"} with input as testing.update(into_admin, "clusterroles")
	namespaced := object.union(wild, {"kind": "Role", "metadata": {"name": "r", "namespace": "dev"}})
	count(rbac.require_grant) == 1 with input as testing.create(namespaced, "roles")
}

test_the_data_can_deny_outright if {
	strict := {"deny": {"cluster_admin_bindings": true, "escalating_roles": true}}
	rbac.deny == {"binding cluster-admin (ClusterRoleBinding admins) is not allowed"} with input as testing.create(crb("admins", "cluster-admin"), "clusterrolebindings") with data.jitguard.rbac.settings as strict
	count(rbac.require_grant) == 0 with input as testing.create(crb("admins", "cluster-admin"), "clusterrolebindings") with data.jitguard.rbac.settings as strict
	count(rbac.deny) == 1 with input as testing.create(role(["impersonate"]), "clusterroles") with data.jitguard.rbac.settings as strict
}

test_the_control_plane_is_exempt if {
	r := testing.as_user(testing.create(crb("viewers", "view"), "clusterrolebindings"), {"username": "system:apiserver", "groups": []})
	count(rbac.require_grant) == 0 with input as r
}

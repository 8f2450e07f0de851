# RBAC: creating ClusterRoleBindings, binding cluster-admin, and roles with escalate, bind,
# impersonate or wildcard verbs need a just-in-time grant, or are denied outright where
# the data says so.
package jitguard.rbac

import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.mutating
import data.jitguard.lib.obj

params := data.jitguard.rbac.settings

# Every contract rule starts with a test of input.request.resource written inline: most
# requests are about other resources, and for them that one comparison is all the rule
# costs (a helper rule such as rbac_resource costs regorus about ten times more).

rbac_resource(name) if {
	input.request.resource.group == "rbac.authorization.k8s.io"
	input.request.resource.resource == name
}

writing if input.request.operation in {"CREATE", "UPDATE"}

binds_cluster_admin if {
	some kind in ["rolebindings", "clusterrolebindings"]
	rbac_resource(kind)
	obj.roleRef.kind == "ClusterRole"
	obj.roleRef.name == "cluster-admin"
}

escalating_verbs contains v if {
	some kind in ["roles", "clusterroles"]
	rbac_resource(kind)
	some rule in input.request.object.rules
	some v in rule.verbs
	v in {"escalate", "bind", "impersonate", "*"}
}

# What about this request needs a grant (or is denied).
sensitive contains sprintf("%s ClusterRoleBinding %s", [verb[input.request.operation], input.request.name]) if {
	rbac_resource("clusterrolebindings")
	mutating
	not binds_cluster_admin
}

sensitive contains sprintf("binding cluster-admin (%s %s)", [obj.kind, input.request.name]) if {
	mutating
	binds_cluster_admin
	not params.deny.cluster_admin_bindings
}

sensitive contains sprintf("%s with verbs %s", [describe, concat(", ", sort(escalating_verbs))]) if {
	writing
	count(escalating_verbs) > 0
	not params.deny.escalating_roles
}

verb := {"CREATE": "creating", "UPDATE": "changing", "DELETE": "deleting"}

require_grant contains sprintf("%s needs a just-in-time grant", [what]) if {
	input.request.resource.group == "rbac.authorization.k8s.io"
	some what in sensitive
	not exempt
}

deny contains msg if {
	input.request.resource.group == "rbac.authorization.k8s.io"
	binds_cluster_admin
	mutating
	not exempt
	params.deny.cluster_admin_bindings
	msg := sprintf("binding cluster-admin (%s %s) is not allowed", [obj.kind, input.request.name])
}

deny contains msg if {
	input.request.resource.group == "rbac.authorization.k8s.io"
	writing
	count(escalating_verbs) > 0
	not exempt
	params.deny.escalating_roles
	msg := sprintf("%s grants %s, which is not allowed", [describe, concat(", ", sort(escalating_verbs))])
}

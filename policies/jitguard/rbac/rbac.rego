# RBAC: creating ClusterRoleBindings, binding cluster-admin, and roles that grant more
# than they name (escalate, bind, impersonate or wildcard verbs, wildcard resources, an
# aggregationRule, a label that adds their rules to a built-in role) need a just-in-time
# grant, or are denied outright where the data says so.
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

role_resource if {
	some kind in ["roles", "clusterroles"]
	rbac_resource(kind)
}

escalating_verbs contains v if {
	role_resource
	some rule in input.request.object.rules
	some v in rule.verbs
	v in {"escalate", "bind", "impersonate", "*"}
}

# Ways a role grants more than it names, as said in a finding.
escalations contains sprintf("verbs %s", [concat(", ", sort(escalating_verbs))]) if {
	count(escalating_verbs) > 0
}

escalations contains "wildcard resources" if {
	role_resource
	some rule in input.request.object.rules
	"*" in rule.resources
}

# An aggregated ClusterRole takes in the rules of every role its selectors match, now and
# later.
escalations contains "an aggregationRule" if {
	rbac_resource("clusterroles")
	input.request.object.aggregationRule
}

# The built-in admin, edit and view roles (and any other aggregated role) take in the
# rules of roles labelled to aggregate into them.
escalations contains sprintf("the label %s", [k]) if {
	role_resource
	some k, v in input.request.object.metadata.labels
	startswith(k, "rbac.authorization.k8s.io/aggregate-to-")
	v == "true"
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

sensitive contains sprintf("%s with %s", [describe, concat("; ", sort(escalations))]) if {
	writing
	count(escalations) > 0
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
	count(escalations) > 0
	not exempt
	params.deny.escalating_roles
	msg := sprintf("%s has %s, which is not allowed", [describe, concat("; ", sort(escalations))])
}

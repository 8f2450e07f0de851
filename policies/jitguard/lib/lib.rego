# Helpers for every jitguard policy. The package has no contract rules (deny, warn, ...),
# so jitguard never evaluates it on its own: it is reached through the packages that
# import it.
#
# Import the helpers you use by name (`import data.jitguard.lib.exempt`, then `exempt`),
# not the package (`import data.jitguard.lib`, then `lib.exempt`): regorus, jitguard's
# engine, evaluates every rule of a package the first time one is reached through a
# package import, which cost about 490 000 instructions per request for this one, against
# some 50 000 for the rule a request needs. OPA treats both forms alike.
package jitguard.lib

config := data.jitguard.config

operation := input.request.operation

# The object a request is about: the new object, or on DELETE the one being removed.
obj := input.request.object if operation != "DELETE"

obj := input.request.oldObject if operation == "DELETE"

mutating if input.request.operation in {"CREATE", "UPDATE", "DELETE"}

# A namespace is protected if it is listed, has a listed prefix, or carries the
# protection label.
protected_namespace(ns) if ns in config.protected.namespaces

protected_namespace(ns) if {
	some prefix in config.protected.prefixes
	startswith(ns, prefix)
}

# The API server does not send the labels of a request's namespace; jitguard adds those
# it knows from its namespace cache as input.jit.namespaces (the request's namespace, and
# those an AccessRequest's scope names).
protected_namespace(ns) if input.jit.namespaces[ns].labels[config.protected.label] == "true"

# protected_namespace(input.request.namespace), written out: it is asked on nearly every
# request, and a function call costs regorus more than the three tests.
in_protected_namespace if input.request.namespace in config.protected.namespaces

in_protected_namespace if {
	some prefix in config.protected.prefixes
	startswith(input.request.namespace, prefix)
}

in_protected_namespace if input.jit.namespaces[input.request.namespace].labels[config.protected.label] == "true"

# A Namespace of the core group (the object, or its status): a custom resource whose kind
# is also called Namespace is not one, and is guarded like any other object.
namespace_request if {
	input.request.resource.resource == "namespaces"
	input.request.resource.group == ""
}

protected_namespace_object if {
	namespace_request
	protected_namespace(input.request.name)
}

protected_namespace_object if {
	namespace_request
	obj.metadata.labels[config.protected.label] == "true"
}

# Removing the label is a change to a protected namespace too, not a way out of it.
protected_namespace_object if {
	namespace_request
	operation == "UPDATE"
	input.request.oldObject.metadata.labels[config.protected.label] == "true"
}

# Identities that never need a grant (control plane, nodes, jitguard itself).
exempt if input.request.userInfo.username in config.exempt.users

exempt if {
	some prefix in config.exempt.user_prefixes
	startswith(input.request.userInfo.username, prefix)
}

exempt if {
	some group in input.request.userInfo.groups
	group in config.exempt.groups
}

# A service account of the request's own namespace writing what the data lists
# (config.exempt.namespace_service_accounts: what workloads write on their own, such as
# leader-election Leases, ConfigMaps and Events). The namespace and change-window
# guardrails do not ask them for a grant for those; anything else needs one, and the deny
# rules (privileged pods, allow-all policies, ...) still apply.
workload_identity if {
	# Cheap first: people are turned away before the sprintf.
	startswith(input.request.userInfo.username, "system:serviceaccount:")
	input.request.namespace != ""
	startswith(input.request.userInfo.username, sprintf("system:serviceaccount:%s:", [input.request.namespace]))
	object.get(input.request, "subResource", "") == ""
	some allowed in config.exempt.namespace_service_accounts
	allowed.group == input.request.resource.group
	input.request.resource.resource in allowed.resources
	input.request.operation in allowed.operations
}

# The request's time (not time.now_ns()), so that decisions can be replayed.
now_ns := input.jit.now_ns

# Wall-clock time in an IANA zone: [hour, minute, second], the weekday's English name,
# and [year, month, day].
clock(tz) := time.clock([now_ns, tz])

weekday(tz) := time.weekday([now_ns, tz])

date(tz) := time.date([now_ns, tz])

# "Kind namespace/name" for messages.
describe := sprintf("%s %s/%s", [input.request.kind.kind, input.request.namespace, input.request.name]) if {
	input.request.namespace != ""
}

describe := sprintf("%s %s", [input.request.kind.kind, input.request.name]) if {
	object.get(input.request, "namespace", "") == ""
}

# The pod spec inside any workload kind.
pod_spec(o) := o.spec if o.kind == "Pod"

pod_spec(o) := o.spec.template.spec if {
	o.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}
}

pod_spec(o) := o.spec.jobTemplate.spec.template.spec if o.kind == "CronJob"

# Every container of a pod spec: regular, init and ephemeral.
containers(spec) := array.concat(
	object.get(spec, "containers", []),
	array.concat(object.get(spec, "initContainers", []), object.get(spec, "ephemeralContainers", [])),
)

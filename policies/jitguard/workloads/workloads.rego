# Workload basics: privileged containers, hostPath volumes and the host's network, PID
# and IPC namespaces are denied in protected namespaces and warned about elsewhere.
package jitguard.workloads

import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace

# The pod spec of the object (lib's pod_spec, written out: deny and warn only look at
# CREATE and UPDATE, whose object is the new one, and rules inline cost regorus less than
# a function call).
spec := input.request.object.spec if input.request.object.kind == "Pod"

spec := input.request.object.spec.template.spec if {
	input.request.object.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}
}

spec := input.request.object.spec.jobTemplate.spec.template.spec if input.request.object.kind == "CronJob"

# Every container: regular, init and ephemeral.
problems contains msg if {
	some field in ["containers", "initContainers", "ephemeralContainers"]
	some c in spec[field]
	c.securityContext.privileged == true
	msg := sprintf("container %s is privileged", [c.name])
}

problems contains msg if {
	some v in spec.volumes
	v.hostPath
	msg := sprintf("volume %s mounts the host path %s", [v.name, v.hostPath.path])
}

problems contains sprintf("the pod uses the host's %s namespace (%s: true)", [what, field]) if {
	some field, what in {"hostNetwork": "network", "hostPID": "PID", "hostIPC": "IPC"}
	spec[field] == true
}

# Both rules open with inline tests of the request, the object's kind first (the kinds
# with a pod spec, written out: jitguard reads literal tests only) so that jitguard skips
# this package for other requests.
deny contains msg if {
	input.request.object.kind in {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController", "CronJob"}
	input.request.operation in {"CREATE", "UPDATE"}
	not exempt
	in_protected_namespace
	some p in problems
	msg := sprintf("%s: %s, which protected namespace %s does not allow", [describe, p, input.request.namespace])
}

warn contains msg if {
	input.request.object.kind in {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController", "CronJob"}
	input.request.operation in {"CREATE", "UPDATE"}
	not exempt
	not in_protected_namespace
	some p in problems
	msg := sprintf("%s: %s", [describe, p])
}

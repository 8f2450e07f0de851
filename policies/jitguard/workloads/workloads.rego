# Workload basics: privileged containers, hostPath volumes and the host's network, PID
# and IPC namespaces are denied in protected namespaces and warned about elsewhere.
package jitguard.workloads

import data.jitguard.lib.containers
import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.in_protected_namespace
import data.jitguard.lib.obj
import data.jitguard.lib.pod_spec

spec := pod_spec(obj)

problems contains msg if {
	some c in containers(spec)
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

deny contains msg if {
	input.request.operation in {"CREATE", "UPDATE"}
	not exempt
	in_protected_namespace
	some p in problems
	msg := sprintf("%s: %s, which protected namespace %s does not allow", [describe, p, input.request.namespace])
}

warn contains msg if {
	input.request.operation in {"CREATE", "UPDATE"}
	not exempt
	not in_protected_namespace
	some p in problems
	msg := sprintf("%s: %s", [describe, p])
}

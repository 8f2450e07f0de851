# Workload basics: privileged containers, hostPath volumes and the host's network, PID
# and IPC namespaces are denied in protected namespaces and warned about elsewhere.
package jitguard.workloads

import data.jitguard.lib

spec := lib.pod_spec(lib.obj)

problems contains msg if {
	some c in lib.containers(spec)
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

checked if {
	input.request.operation in {"CREATE", "UPDATE"}
	not lib.exempt
}

deny contains msg if {
	checked
	lib.in_protected_namespace
	some p in problems
	msg := sprintf("%s: %s, which protected namespace %s does not allow", [lib.describe, p, input.request.namespace])
}

warn contains msg if {
	checked
	not lib.in_protected_namespace
	some p in problems
	msg := sprintf("%s: %s", [lib.describe, p])
}

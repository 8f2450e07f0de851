package jitguard.workloads_test

import data.jitguard.testing
import data.jitguard.workloads

privileged_spec := {"containers": [{"name": "app", "image": "x", "securityContext": {"privileged": true}}]}

host_spec := {
	"hostNetwork": true,
	"hostPID": true,
	"containers": [{"name": "app", "image": "x"}],
	"volumes": [{"name": "root", "hostPath": {"path": "/"}}],
}

test_privileged_is_denied_in_protected_namespaces if {
	workloads.deny == {"Pod prod/p: container app is privileged, which protected namespace prod does not allow"} with input as testing.create(testing.pod("prod", "p", privileged_spec), "pods")
}

test_privileged_is_warned_elsewhere if {
	r := testing.create(testing.pod("dev", "p", privileged_spec), "pods")
	count(workloads.deny) == 0 with input as r
	workloads.warn == {"Pod dev/p: container app is privileged"} with input as r
}

test_host_namespaces_and_paths_are_each_reported if {
	r := testing.create(testing.pod("prod", "p", host_spec), "pods")
	count(workloads.deny) == 3 with input as r
}

test_pod_templates_of_workloads_are_checked if {
	d := {
		"apiVersion": "apps/v1",
		"kind": "Deployment",
		"metadata": {"name": "d", "namespace": "prod"},
		"spec": {"template": {"spec": privileged_spec}},
	}
	count(workloads.deny) == 1 with input as testing.create(d, "deployments")
	c := {
		"apiVersion": "batch/v1",
		"kind": "CronJob",
		"metadata": {"name": "c", "namespace": "dev"},
		"spec": {"jobTemplate": {"spec": {"template": {"spec": host_spec}}}},
	}
	count(workloads.warn) == 3 with input as testing.create(c, "cronjobs")
}

test_plain_pods_pass if {
	r := testing.create(testing.pod("prod", "p", testing.plain_spec), "pods")
	count(workloads.deny) == 0 with input as r
	count(workloads.warn) == 0 with input as r
}

test_deletes_are_not_checked if {
	count(workloads.deny) == 0 with input as testing.delete(testing.pod("prod", "p", privileged_spec), "pods")
}

test_a_namespaces_own_service_accounts_are_still_denied_privileged_pods if {
	own := {"username": "system:serviceaccount:prod:operator", "groups": ["system:serviceaccounts"]}
	p := testing.pod("prod", "web", object.union(testing.plain_spec, {"hostNetwork": true}))
	count(workloads.deny) == 1 with input as testing.as_user(testing.create(p, "pods"), own)
}

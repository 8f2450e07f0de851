package jitguard.lib_test

import data.jitguard.lib
import data.jitguard.testing

test_obj_is_the_new_object_on_create if {
	p := testing.pod("dev", "web", testing.plain_spec)
	lib.obj == p with input as testing.create(p, "pods")
}

test_obj_is_the_old_object_on_delete if {
	p := testing.pod("dev", "web", testing.plain_spec)
	lib.obj == p with input as testing.delete(p, "pods")
}

test_listed_and_prefixed_namespaces_are_protected if {
	lib.protected_namespace("prod")
	lib.protected_namespace("prod-eu")
	not lib.protected_namespace("dev")
	not lib.protected_namespace("production-like")
}

test_control_plane_is_exempt if {
	p := testing.pod("prod", "web", testing.plain_spec)
	lib.exempt with input as testing.as_user(testing.create(p, "pods"), testing.controller)
	not lib.exempt with input as testing.create(p, "pods")
}

test_clock_is_read_in_the_zone if {
	r := testing.create(testing.pod("dev", "web", testing.plain_spec), "pods")
	lib.clock("Europe/Paris") == [13, 0, 0] with input as r
	lib.clock("America/New_York") == [7, 0, 0] with input as r
	lib.weekday("Asia/Tokyo") == "Thursday" with input as r
	lib.date("Pacific/Auckland") == [2026, 1, 2] with input as r
}

test_pod_spec_of_workloads if {
	spec := testing.plain_spec
	lib.pod_spec({"kind": "Deployment", "spec": {"template": {"spec": spec}}}) == spec
	lib.pod_spec({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}) == spec
	count(lib.containers({"containers": [{"name": "a"}], "initContainers": [{"name": "b"}]})) == 2
}

test_a_namespace_labelled_protected_protects_what_is_inside_it if {
	r := testing.create(testing.pod("team-a", "web", testing.plain_spec), "pods")
	not lib.in_protected_namespace with input as r
	lib.in_protected_namespace with input as testing.in_labelled(r, {"jitguard.dev/protected": "true"})
	not lib.in_protected_namespace with input as testing.in_labelled(r, {"jitguard.dev/protected": "false"})
}

test_labels_of_another_namespace_do_not_count if {
	r := testing.create(testing.pod("team-a", "web", testing.plain_spec), "pods")
	other := testing.labelled(r, "team-b", {"jitguard.dev/protected": "true"})
	not lib.in_protected_namespace with input as other
}

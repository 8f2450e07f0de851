package jitguard.access_test

import data.jitguard.access
import data.jitguard.testing

request(spec) := {
	"apiVersion": "jitguard.dev/v1alpha1",
	"kind": "AccessRequest",
	"metadata": {"name": "r1"},
	"spec": object.union({"reason": "debugging INC-1", "duration": "30m"}, spec),
}

scope(ops, groups, resources, namespaces) := {"operations": ops, "apiGroups": groups, "resources": resources, "namespaces": namespaces}

exec_in(ns) := [scope(["CONNECT"], [""], ["pods/exec"], [ns])]

create(spec) := testing.create(request(spec), "accessrequests")

test_debugging_outside_protected_is_requestable_and_auto_approved if {
	r := create({"scope": exec_in("dev")})
	count(access.deny) == 0 with input as r
	access.auto_approve == {"short-debug-outside-protected"} with input as r
	access.approval_requirements == [{"name": "team lead", "groups": ["team-leads", "sre-leads"], "count": 1}] with input as r
}

test_protected_scopes_need_a_ticket_and_two_approvals if {
	r := create({"scope": exec_in("prod")})
	access.deny == {"requests that touch a protected namespace must name a ticket (spec.ticket)"} with input as r
	count(access.auto_approve) == 0 with input as r
	count(access.approval_requirements) == 2 with input as r
	count(access.deny) == 0 with input as create({"scope": exec_in("prod"), "ticket": "INC-1"})
	count(access.deny) == 1 with input as create({"scope": exec_in("prod"), "ticket": null})
	count(access.deny) == 1 with input as create({"scope": exec_in("prod"), "ticket": " "})
}

test_a_wildcard_namespace_counts_as_protected if {
	r := create({"scope": exec_in("*"), "ticket": "INC-1"})
	count(access.approval_requirements) == 2 with input as r
}

test_rbac_scopes_are_for_platform_admins_only if {
	rbac := [scope(["CREATE"], ["rbac.authorization.k8s.io"], ["rolebindings"], ["dev"])]
	count(access.deny) == 1 with input as create({"scope": rbac})
	admin := {"username": "pat@example.com", "groups": ["platform-admins", "system:authenticated"]}
	count(access.deny) == 0 with input as testing.as_user(create({"scope": rbac}), admin)
}

test_durations_are_capped_per_scope if {
	r := create({"scope": exec_in("dev"), "duration": "5h"})
	access.deny == {"duration 5h is longer than this scope allows (240m); ask for less"} with input as r
	rbac := [scope(["CREATE"], ["rbac.authorization.k8s.io"], ["rolebindings"], ["dev"])]
	admin := {"username": "pat@example.com", "groups": ["platform-admins", "system:authenticated"]}
	count(access.deny) == 1 with input as testing.as_user(create({"scope": rbac, "duration": "2h"}), admin)
}

test_long_or_writing_requests_are_not_auto_approved if {
	count(access.auto_approve) == 0 with input as create({"scope": exec_in("dev"), "duration": "2h"})
	writes := [scope(["CREATE"], [""], ["pods"], ["dev"])]
	count(access.auto_approve) == 0 with input as create({"scope": writes})
}

test_only_listed_roles_may_be_bound if {
	r := create({"scope": exec_in("dev"), "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}})
	count(access.deny) == 1 with input as r
	ok := create({"scope": exec_in("dev"), "roleRef": {"kind": "ClusterRole", "name": "view"}})
	count(access.deny) == 0 with input as ok
	count(access.auto_approve) == 0 with input as ok
}

test_workflow_parameters_are_exposed if {
	access.break_glass_groups == ["sre-oncall"]
	access.break_glass_max_duration == "1h"
	access.admin_groups == ["jitguard-admins"]
	access.pending_ttl == "24h"
	access.allow_escalating_roles == false
}

test_other_requests_are_not_judged_here if {
	r := testing.create(testing.pod("dev", "p", testing.plain_spec), "pods")
	count(access.deny) == 0 with input as r
}

test_a_namespace_labelled_protected_counts_as_protected if {
	r := testing.labelled(create({"scope": exec_in("team-a")}), "team-a", {"jitguard.dev/protected": "true"})
	access.deny == {"requests that touch a protected namespace must name a ticket (spec.ticket)"} with input as r
	count(access.auto_approve) == 0 with input as r
	count(access.auto_approve) == 1 with input as create({"scope": exec_in("team-a")})
}

test_notifications_are_routed_by_namespace_group_and_break_glass if {
	access.notify == {"approvers"} with input as create({"scope": exec_in("dev")})
	access.notify == {"approvers", "security"} with input as create({"scope": exec_in("prod-eu")})
	access.notify == {"approvers", "security"} with input as create({"scope": exec_in("dev"), "breakGlass": true})
	admin := testing.as_user(create({"scope": exec_in("dev")}), {"username": "pat", "groups": ["platform-admins"]})
	access.notify == {"approvers", "security"} with input as admin
}

test_without_notification_settings_every_sink_hears if {
	settings := object.remove(data.jitguard.access.settings, ["notifications"])
	not access.notify with input as create({"scope": exec_in("prod")})
		with data.jitguard.access.settings as settings
}

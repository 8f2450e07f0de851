package jitguard.changewindow_test

import data.jitguard.changewindow
import data.jitguard.testing

ns(rfc3339) := time.parse_rfc3339_ns(rfc3339)

deployment(namespace) := {
	"apiVersion": "apps/v1", "kind": "Deployment",
	"metadata": {"name": "web", "namespace": namespace},
	"spec": {"template": {"spec": testing.plain_spec}},
}

change(namespace, at) := testing.at(testing.update(deployment(namespace), "deployments"), ns(at))

# Tuesday 2026-11-24, 10:00 in Berlin.
test_inside_the_window_no_grant_is_needed if {
	count(changewindow.require_grant) == 0 with input as change("staging", "2026-11-24T09:00:00Z")
}

test_after_hours_in_the_zone_needs_a_grant if {
	# 16:30 in Berlin is 15:30 UTC: the zone decides, not UTC.
	changewindow.require_grant == {"Deployment staging/web outside the change window of namespace staging (changes are made between 09:00 and 16:00, Europe/Berlin) needs a just-in-time grant"} with input as change("staging", "2026-11-24T15:30:00Z")
	count(changewindow.require_grant) == 0 with input as change("staging", "2026-11-24T14:59:00Z")
}

test_before_hours_needs_a_grant if {
	count(changewindow.require_grant) == 1 with input as change("staging", "2026-11-24T07:59:00Z")
}

# 09:00 and 16:00 in Berlin are 08:00 and 15:00 UTC in November: start inclusive, end exclusive.
test_the_window_includes_its_start_and_excludes_its_end if {
	count(changewindow.require_grant) == 0 with input as change("staging", "2026-11-24T08:00:00Z")
	count(changewindow.require_grant) == 1 with input as change("staging", "2026-11-24T15:00:00Z")
}

# 10:05 in Berlin is 09:05 UTC; hours may be written with one digit.
test_window_bounds_are_read_to_the_minute if {
	count(changewindow.require_grant) == 0 with input as change("staging", "2026-11-24T09:05:00Z")
		with data.jitguard.changewindow.settings.hours as {"start": "10:05", "end": "16:00"}
	count(changewindow.require_grant) == 1 with input as change("staging", "2026-11-24T09:04:00Z")
		with data.jitguard.changewindow.settings.hours as {"start": "10:05", "end": "16:00"}
	count(changewindow.require_grant) == 0 with input as change("staging", "2026-11-24T08:00:00Z")
		with data.jitguard.changewindow.settings.hours as {"start": "9:00", "end": "16:00"}
}

test_fridays_and_weekends_need_a_grant if {
	some msg in changewindow.require_grant with input as change("staging", "2026-11-27T10:00:00Z")
	contains(msg, "Friday is not a change day")
	count(changewindow.require_grant) == 1 with input as change("staging", "2026-11-29T10:00:00Z")
}

test_holidays_need_a_grant if {
	some msg in changewindow.require_grant with input as change("staging", "2026-12-24T10:00:00Z")
	contains(msg, "2026-12-24 is a holiday")
}

test_a_freeze_needs_a_grant_even_inside_the_hours if {
	some msg in changewindow.require_grant with input as change("staging", "2026-12-22T10:00:00Z")
	contains(msg, "the year-end freeze is on")
	count(changewindow.require_grant) == 0 with input as change("staging", "2027-01-05T10:00:00Z")
}

test_prefixed_namespaces_are_controlled_and_others_are_not if {
	count(changewindow.require_grant) == 1 with input as change("staging-eu", "2026-11-29T10:00:00Z")
	count(changewindow.require_grant) == 0 with input as change("dev", "2026-11-29T10:00:00Z")
}

test_reads_and_control_plane_are_not_changes if {
	r := testing.as_user(change("staging", "2026-11-29T10:00:00Z"), testing.controller)
	count(changewindow.require_grant) == 0 with input as r
	c := testing.at(testing.connect("staging", "web-0", "exec"), ns("2026-11-29T10:00:00Z"))
	count(changewindow.require_grant) == 0 with input as c
}

test_the_namespaces_own_workloads_keep_working_after_hours if {
	own := {"username": "system:serviceaccount:staging:web", "groups": ["system:serviceaccounts"]}
	cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leader", "namespace": "staging"}}
	after_hours := testing.at(testing.update(cm, "configmaps"), ns("2026-11-24T15:30:00Z"))
	count(changewindow.require_grant) == 0 with input as testing.as_user(after_hours, own)

	# Changing what runs is not what a workload does on its own: a grant, like anyone.
	count(changewindow.require_grant) == 1 with input as testing.as_user(change("staging", "2026-11-24T15:30:00Z"), own)
}

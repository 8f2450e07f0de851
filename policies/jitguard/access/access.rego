# The just-in-time request workflow's rules: which scopes may be requested and for how
# long, who approves, what is approved by policy, who may break glass. jitguard reads the
# rules below when an AccessRequest is created, approved or revoked; the identity,
# self-approval and immutability rules are built into jitguard and cannot be changed here.
package jitguard.access

import data.jitguard.lib.protected_namespace

params := data.jitguard.access.settings

# Every contract rule starts with a test of input.request.resource written inline: most
# requests are about other resources, and for them that one comparison is all the rule
# costs (a helper rule such as creating costs regorus about ten times more).

ar := input.request.object

user := input.request.userInfo

creating if {
	input.request.resource.resource == "accessrequests"
	input.request.resource.group == "jitguard.dev"
	input.request.operation == "CREATE"
	not input.request.subResource
}

duration_ns(text) := time.parse_duration_ns(text)

# A scope rule is inside an entry when every value it names is allowed there.
within(rule, entry) if {
	every op in rule.operations {
		allowed(op, entry.operations)
	}
	every g in rule.apiGroups {
		allowed(g, entry.apiGroups)
	}
	every r in rule.resources {
		allowed(r, entry.resources)
	}
	every ns in object.get(rule, "namespaces", []) {
		allowed(ns, entry.namespaces)
	}
}

allowed(value, list) if "*" in list

allowed(value, list) if value in list

# The entries that let this requester ask for this scope rule.
entries_for(rule) := [entry |
	some entry in params.requestable
	some g in user.groups
	g in entry.groups
	within(rule, entry)
]

deny contains msg if {
	input.request.resource.resource == "accessrequests"
	input.request.resource.group == "jitguard.dev"
	creating
	some i, rule in ar.spec.scope
	count(entries_for(rule)) == 0
	msg := sprintf("scope rule %d (%s %s in %s) is not requestable by you; see data.jitguard.access.params.requestable", [
		i, concat(",", rule.operations), concat(",", rule.resources), concat(",", object.get(rule, "namespaces", [])),
	])
}

# The longest a request may last: for each scope rule the most generous entry, and the
# strictest of those over the rules.
max_duration_ns := min({m |
	some rule in ar.spec.scope
	m := max({duration_ns(e.max_duration) | some e in entries_for(rule)})
})

deny contains msg if {
	input.request.resource.resource == "accessrequests"
	input.request.resource.group == "jitguard.dev"
	creating
	not ar.spec.breakGlass
	duration_ns(ar.spec.duration) > max_duration_ns
	msg := sprintf("duration %s is longer than this scope allows (%s); ask for less", [ar.spec.duration, max_text])
}

max_text := sprintf("%dm", [max_duration_ns / 60000000000])

touches_protected if {
	some rule in ar.spec.scope
	some ns in object.get(rule, "namespaces", [])
	protected_namespace(ns)
}

touches_protected if {
	some rule in ar.spec.scope
	"*" in object.get(rule, "namespaces", [])
}

has_ticket if {
	is_string(ar.spec.ticket)
	trim_space(ar.spec.ticket) != ""
}

deny contains "requests that touch a protected namespace must name a ticket (spec.ticket)" if {
	input.request.resource.resource == "accessrequests"
	input.request.resource.group == "jitguard.dev"
	creating
	params.ticket_required_for_protected
	touches_protected
	not has_ticket
}

deny contains msg if {
	input.request.resource.resource == "accessrequests"
	input.request.resource.group == "jitguard.dev"
	creating
	role := ar.spec.roleRef
	not role.name in object.get(params.bindable_roles, role.kind, [])
	msg := sprintf("%s %s may not be bound by a grant; bindable: %v", [role.kind, role.name, params.bindable_roles])
}

# Who approves this request (read by jitguard).
approval_requirements := params.approval.protected if touches_protected

approval_requirements := params.approval.default if not touches_protected

# Names of the rules that approve this request at creation (read by jitguard).
auto_approve contains rule.name if {
	not touches_protected
	not ar.spec.roleRef
	some rule in params.auto_approve
	duration_ns(ar.spec.duration) <= duration_ns(rule.max_duration)
	every scope in ar.spec.scope {
		every op in scope.operations {
			op in rule.operations
		}
	}
}

break_glass_groups := params.break_glass.groups

break_glass_max_duration := params.break_glass.max_duration

admin_groups := params.admin_groups

pending_ttl := params.pending_ttl

allow_escalating_roles := params.allow_escalating_roles

# Which notification sinks (named in the file given to `jitguard serve --notifications`)
# hear about this request (read by jitguard): every route whose namespaces (globs) cover
# one of the request's namespaces, or whose groups include one of the requester's; for
# break-glass, the break_glass sinks too; when nothing matches, the default sinks.
# Undefined without settings.notifications: then every sink hears about every request.
notify := routed if count(routed) > 0

notify := {sink | some sink in params.notifications["default"]} if {
	params.notifications
	count(routed) == 0
}

routed contains sink if {
	some route in object.get(params.notifications, "routes", [])
	route_matches(route)
	some sink in route.sinks
}

routed contains sink if {
	ar.spec.breakGlass
	some sink in object.get(params.notifications, "break_glass", [])
}

route_matches(route) if {
	some rule in ar.spec.scope
	some ns in object.get(rule, "namespaces", [])
	some pattern in object.get(route, "namespaces", [])
	glob.match(pattern, [], ns)
}

route_matches(route) if {
	some group in object.get(route, "groups", [])
	group in user.groups
}

# Change windows: creating, changing or deleting anything in a namespace under change
# control, outside the window (weekday and hours in the configured zone, not a holiday,
# not in a freeze), needs a just-in-time grant. The request's own time is used
# (input.jit.now_ns), so `jitguard dry-run --at` replays any moment.
package jitguard.changewindow

import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.workload_identity

params := data.jitguard.changewindow.settings

# Each reason is computed in its own body with the builtins written inline: in regorus,
# jitguard's engine, every rule or function reached costs some 20 000 instructions of
# bookkeeping, more than the builtin itself.

controlled if input.request.namespace in params.namespaces

controlled if {
	some prefix in params.prefixes
	startswith(input.request.namespace, prefix)
}

# Why now is outside the window (a set: more than one may hold).
outside contains sprintf("%s is not a change day", [day]) if {
	day := time.weekday([input.jit.now_ns, params.timezone])
	not day in params.weekdays
}

# The hours are read as durations since midnight: "09:05" as "09h05m" ("9:05" works too;
# a malformed time fails the evaluation, and so the request, closed).
outside contains sprintf("changes are made between %s and %s", [params.hours.start, params.hours.end]) if {
	c := time.clock([input.jit.now_ns, params.timezone])
	now := (c[0] * 3600000000000) + (c[1] * 60000000000)
	not between(
		now,
		time.parse_duration_ns(concat("", [replace(params.hours.start, ":", "h"), "m"])),
		time.parse_duration_ns(concat("", [replace(params.hours.end, ":", "h"), "m"])),
	)
}

between(x, start, end) if {
	start <= x
	x < end
}

outside contains sprintf("%s is a holiday", [today]) if {
	today := sprintf("%04d-%02d-%02d", time.date([input.jit.now_ns, params.timezone]))
	today in params.holidays
}

outside contains sprintf("the %s is on", [f.name]) if {
	some f in params.freezes
	time.parse_rfc3339_ns(f.from) <= input.jit.now_ns
	input.jit.now_ns < time.parse_rfc3339_ns(f.to)
}

# The operation is tested first, inline (lib's `mutating`, written out): jitguard then
# skips this package for the requests it excludes (exec, port-forward ...).
require_grant contains msg if {
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	controlled
	not exempt
	not workload_identity
	count(outside) > 0
	msg := sprintf("%s outside the change window of namespace %s (%s, %s) needs a just-in-time grant", [
		describe, input.request.namespace, concat("; ", sort(outside)), params.timezone,
	])
}

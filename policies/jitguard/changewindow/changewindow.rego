# Change windows: creating, changing or deleting anything in a namespace under change
# control, outside the window (weekday and hours in the configured zone, not a holiday,
# not in a freeze), needs a just-in-time grant. The request's own time is used
# (input.jit.now_ns), so `jitguard dry-run --at` replays any moment.
package jitguard.changewindow

import data.jitguard.lib

params := data.jitguard.changewindow.settings

controlled(ns) if ns in params.namespaces

controlled(ns) if {
	some prefix in params.prefixes
	startswith(ns, prefix)
}

# Minutes since midnight of "HH:MM".
minutes(hhmm) := (number(parts[0]) * 60) + number(parts[1]) if parts := split(hhmm, ":")

# to_number("09") is 9 in OPA but an error in regorus (JSON numbers have no leading
# zeros): drop them first, so both engines agree.
number(digits) := 0 if trim_left(digits, "0") == ""

number(digits) := to_number(trimmed) if {
	trimmed := trim_left(digits, "0")
	trimmed != ""
}

now_minutes := (c[0] * 60) + c[1] if c := lib.clock(params.timezone)

today := sprintf("%04d-%02d-%02d", lib.date(params.timezone))

# Why now is outside the window (a set: more than one may hold).
outside contains sprintf("%s is not a change day", [lib.weekday(params.timezone)]) if {
	not lib.weekday(params.timezone) in params.weekdays
}

outside contains sprintf("changes are made between %s and %s", [params.hours.start, params.hours.end]) if {
	now_minutes < minutes(params.hours.start)
}

outside contains sprintf("changes are made between %s and %s", [params.hours.start, params.hours.end]) if {
	now_minutes >= minutes(params.hours.end)
}

outside contains sprintf("%s is a holiday", [today]) if today in params.holidays

outside contains sprintf("the %s is on", [f.name]) if {
	some f in params.freezes
	time.parse_rfc3339_ns(f.from) <= lib.now_ns
	lib.now_ns < time.parse_rfc3339_ns(f.to)
}

require_grant contains msg if {
	lib.mutating
	controlled(input.request.namespace)
	not lib.exempt
	not lib.workload_identity
	count(outside) > 0
	msg := sprintf("%s outside the change window of namespace %s (%s, %s) needs a just-in-time grant", [
		lib.describe, input.request.namespace, concat("; ", sort(outside)), params.timezone,
	])
}

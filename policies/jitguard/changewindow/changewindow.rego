# Change windows: creating, changing or deleting anything in a namespace under change
# control, outside the window (weekday and hours in the configured zone, not a holiday,
# not in a freeze), needs a just-in-time grant. The request's own time is used
# (input.jit.now_ns), so `jitguard dry-run --at` replays any moment.
package jitguard.changewindow

import data.jitguard.lib.clock
import data.jitguard.lib.date
import data.jitguard.lib.describe
import data.jitguard.lib.exempt
import data.jitguard.lib.mutating
import data.jitguard.lib.now_ns
import data.jitguard.lib.weekday
import data.jitguard.lib.workload_identity

params := data.jitguard.changewindow.settings

controlled(ns) if ns in params.namespaces

controlled(ns) if {
	some prefix in params.prefixes
	startswith(ns, prefix)
}

# Minutes since midnight of "HH:MM", read as the duration "HHhMMm": one builtin call, and
# leading zeros ("09") are fine in both OPA and regorus.
minutes(hhmm) := time.parse_duration_ns(concat("", [parts[0], "h", parts[1], "m"])) / 60000000000 if {
	parts := split(hhmm, ":")
	count(parts) == 2
}

now_minutes := (c[0] * 60) + c[1] if c := clock(params.timezone)

today := sprintf("%04d-%02d-%02d", date(params.timezone))

# Why now is outside the window (a set: more than one may hold).
outside contains sprintf("%s is not a change day", [weekday(params.timezone)]) if {
	not weekday(params.timezone) in params.weekdays
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
	time.parse_rfc3339_ns(f.from) <= now_ns
	now_ns < time.parse_rfc3339_ns(f.to)
}

require_grant contains msg if {
	mutating
	controlled(input.request.namespace)
	not exempt
	not workload_identity
	count(outside) > 0
	msg := sprintf("%s outside the change window of namespace %s (%s, %s) needs a just-in-time grant", [
		describe, input.request.namespace, concat("; ", sort(outside)), params.timezone,
	])
}

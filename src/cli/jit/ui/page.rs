//! The pages of `kubectl jit ui`, rendered on the server from the requests as the user's
//! own identity reads them. Pure: no I/O, every value escaped. Scripts and styles are
//! separate files (the Content-Security-Policy allows no inline ones); forms carry the
//! session's CSRF token.

use std::fmt::Write as _;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::access::quorum;
use crate::grant::resource::ApprovalDecision;
use crate::grant::{AccessRequest, Phase};
use crate::policy::Requirement;

/// Who looks, and when.
pub struct Viewer<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub now: Timestamp,
    pub csrf: &'a str,
}

/// One Event about a request, as the history shows it.
pub struct EventRow {
    pub time: String,
    pub kind: String,
    pub reason: String,
    pub note: String,
    pub count: i32,
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    crate::text::escape_markup(text)
}

/// A name as a URL path segment (request names are DNS subdomains; anything else is
/// percent-encoded all the same).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn phase(ar: &AccessRequest) -> Phase {
    ar.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// What the webhook stamped at creation as the approval's requirements.
fn requirements(ar: &AccessRequest) -> Vec<Requirement> {
    ar.annotations()
        .get(crate::access::admit::REQUIREMENTS_ANNOTATION)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// What a pending request still needs, e.g. `1 of security (security)`.
pub fn still_needs(ar: &AccessRequest) -> Option<String> {
    let requirements = requirements(ar);
    let status = ar.status.clone().unwrap_or_default();
    let approvals: Vec<_> = status
        .approvals
        .iter()
        .filter(|a| a.decision == ApprovalDecision::Approve)
        .collect();
    crate::access::requirements_text(quorum::unmet(&requirements, &approvals))
}

/// Whether `viewer` could decide on `ar` now: pending, someone else's, not for a group
/// of theirs, not decided by them yet, and they are in an approver group. The webhook
/// decides for real; this only chooses what to show.
pub fn waits_for(ar: &AccessRequest, viewer: &Viewer<'_>) -> bool {
    let status = ar.status.clone().unwrap_or_default();
    let eligible = requirements(ar)
        .iter()
        .any(|r| r.groups.iter().any(|g| viewer.groups.contains(g)));
    status.phase == Phase::Pending
        && !ar.spec.break_glass
        && ar.spec.requester != viewer.user
        && !ar
            .spec
            .group
            .as_ref()
            .is_some_and(|g| viewer.groups.contains(g))
        && !status.approvals.iter().any(|a| a.approver == viewer.user)
        && eligible
}

/// Live now: approved, started, not ended.
pub fn live(ar: &AccessRequest, now: Timestamp) -> bool {
    let Some(status) = &ar.status else {
        return false;
    };
    status.phase == Phase::Approved
        && status.approved_at.as_ref().is_some_and(|t| t.0 <= now)
        && status.expires_at.as_ref().is_some_and(|t| now < t.0)
}

/// `1h 02m 05s`, `4m 10s`, `9s`.
pub fn left(until: Timestamp, now: Timestamp) -> String {
    let seconds = until.duration_since(now).as_secs().max(0);
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

fn countdown(ar: &AccessRequest, now: Timestamp) -> String {
    match ar.status.as_ref().and_then(|s| s.expires_at.as_ref()) {
        Some(end) => format!(
            r#"<span class="countdown" data-expires="{}">{} left</span>"#,
            esc(&end.0.to_string()),
            left(end.0, now)
        ),
        None => String::new(),
    }
}

/// The page around `body`: title, navigation, and the break-glass banner while any
/// break-glass grant is live.
pub fn layout(title: &str, viewer: &Viewer<'_>, all: &[AccessRequest], body: &str) -> String {
    let mut banner = String::new();
    for ar in all
        .iter()
        .filter(|ar| ar.spec.break_glass && live(ar, viewer.now))
    {
        let _ = write!(
            banner,
            r#"<div class="banner" role="alert">BREAK-GLASS grant live: <a href="/requests/{}">{}</a> by {}, {} — {}</div>"#,
            segment(&ar.name_any()),
            esc(&ar.name_any()),
            esc(&ar.spec.requester),
            countdown(ar, viewer.now),
            esc(&ar.spec.reason),
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · jitguard</title>
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body data-refresh="15">
<header><a class="brand" href="/">jitguard</a>
<nav><a href="/">Requests</a> <a href="/new">New request</a></nav>
<span class="who">{user} ({groups})</span></header>
{banner}
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
        user = esc(viewer.user),
        groups = esc(&viewer.groups.join(", ")),
    )
}

pub(super) fn csrf(viewer: &Viewer<'_>) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(viewer.csrf)
    )
}

fn decide_form(ar: &AccessRequest, viewer: &Viewer<'_>) -> String {
    let name = segment(&ar.name_any());
    format!(
        r#"<form class="decide" method="post" action="/requests/{name}/approve">{}
<input name="comment" placeholder="comment (optional)" aria-label="comment">
<button class="approve" type="submit">Approve</button>
<button class="deny" type="submit" formaction="/requests/{name}/deny">Deny</button></form>"#,
        csrf(viewer)
    )
}

fn revoke_form(ar: &AccessRequest, viewer: &Viewer<'_>) -> String {
    format!(
        r#"<form class="inline" method="post" action="/requests/{}/revoke">{}<button class="revoke" type="submit">Revoke</button></form>"#,
        segment(&ar.name_any()),
        csrf(viewer)
    )
}

fn extend_form(ar: &AccessRequest, viewer: &Viewer<'_>) -> String {
    format!(
        r#"<form class="inline" method="post" action="/requests/{}/extend">{}
<input name="duration" value="30m" size="5" aria-label="more time">
<input name="reason" placeholder="why more time" required aria-label="reason">
<button class="extend" type="submit">Extend</button></form>"#,
        segment(&ar.name_any()),
        csrf(viewer)
    )
}

fn scope_lines(ar: &AccessRequest) -> String {
    ar.spec
        .scope
        .iter()
        .map(|r| esc(&r.summary()))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn link(ar: &AccessRequest) -> String {
    let mut name = format!(
        r#"<a href="/requests/{}">{}</a>"#,
        segment(&ar.name_any()),
        esc(&ar.name_any())
    );
    if ar.spec.break_glass {
        name.push_str(r#" <span class="tag">break-glass</span>"#);
    }
    name
}

/// The home page: what waits for me, my requests, the live grants.
pub fn overview(viewer: &Viewer<'_>, all: &[AccessRequest], flash: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(text) = flash {
        let _ = write!(body, r#"<p class="flash">{}</p>"#, esc(text));
    }
    let mut sorted: Vec<&AccessRequest> = all.iter().collect();
    sorted
        .sort_by_key(|ar| std::cmp::Reverse(ar.metadata.creation_timestamp.as_ref().map(|t| t.0)));

    let waiting: Vec<&&AccessRequest> = sorted.iter().filter(|ar| waits_for(ar, viewer)).collect();
    body.push_str(r#"<section id="waiting"><h2>Waiting for you</h2>"#);
    if waiting.is_empty() {
        body.push_str(r#"<p class="empty">Nothing waits for your decision.</p>"#);
    } else {
        body.push_str("<table><tr><th>Request</th><th>Requester</th><th>Scope</th><th>Duration</th><th>Reason</th><th>Still needs</th><th>Decide</th></tr>");
        for ar in waiting {
            let _ = write!(
                body,
                r#"<tr id="waiting-{id}"><td>{link}</td><td>{who}</td><td>{scope}</td><td>{duration}</td><td>{reason}{ticket}</td><td class="needs">{needs}</td><td>{form}</td></tr>"#,
                id = esc(&ar.name_any()),
                link = link(ar),
                who = esc(&ar.spec.requester),
                scope = scope_lines(ar),
                duration = esc(&ar.spec.duration),
                reason = esc(&ar.spec.reason),
                ticket = ar
                    .spec
                    .ticket
                    .as_ref()
                    .map(|t| format!(r#" <span class="tag">{}</span>"#, esc(t)))
                    .unwrap_or_default(),
                needs = esc(&still_needs(ar).unwrap_or_default()),
                form = decide_form(ar, viewer),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</section>");

    let mine: Vec<&&AccessRequest> = sorted
        .iter()
        .filter(|ar| ar.spec.requester == viewer.user)
        .collect();
    body.push_str(r#"<section id="mine"><h2>Your requests</h2>"#);
    if mine.is_empty() {
        body.push_str(r#"<p class="empty">You have asked for nothing. <a href="/new">Ask for access</a>.</p>"#);
    } else {
        body.push_str("<table><tr><th>Request</th><th>Phase</th><th>Scope</th><th>Duration</th><th>Status</th><th></th></tr>");
        for ar in mine {
            let p = phase(ar);
            let status = if live(ar, viewer.now) {
                countdown(ar, viewer.now)
            } else if p == Phase::Pending {
                still_needs(ar)
                    .map(|n| format!("needs {}", esc(&n)))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let mut actions = String::new();
            if p == Phase::Pending || p == Phase::Approved {
                actions.push_str(&revoke_form(ar, viewer));
            }
            if live(ar, viewer.now) {
                actions.push_str(&extend_form(ar, viewer));
            }
            let _ = write!(
                body,
                r#"<tr id="mine-{id}" class="phase-{phase}"><td>{link}</td><td class="phase">{phase}</td><td>{scope}</td><td>{duration}</td><td class="status">{status}</td><td>{actions}</td></tr>"#,
                id = esc(&ar.name_any()),
                link = link(ar),
                phase = p.as_str(),
                scope = scope_lines(ar),
                duration = esc(&ar.spec.duration),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</section>");

    let live_grants: Vec<&&AccessRequest> =
        sorted.iter().filter(|ar| live(ar, viewer.now)).collect();
    body.push_str(r#"<section id="live"><h2>Live grants</h2>"#);
    if live_grants.is_empty() {
        body.push_str(r#"<p class="empty">No grant is live.</p>"#);
    } else {
        body.push_str(
            "<table><tr><th>Request</th><th>For</th><th>Scope</th><th>Time left</th></tr>",
        );
        for ar in live_grants {
            let _ = write!(
                body,
                r#"<tr id="live-{id}"><td>{link}</td><td>{who}</td><td>{scope}</td><td>{left}</td></tr>"#,
                id = esc(&ar.name_any()),
                link = link(ar),
                who = esc(ar.spec.group.as_deref().unwrap_or(&ar.spec.requester)),
                scope = scope_lines(ar),
                left = countdown(ar, viewer.now),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</section>");
    layout("Access requests", viewer, all, &body)
}

/// One request in full: what it asks, what approval needs and still needs, its decisions
/// and Events, and what the viewer may do.
pub fn detail(
    viewer: &Viewer<'_>,
    ar: &AccessRequest,
    all: &[AccessRequest],
    events: &Result<Vec<EventRow>, String>,
    flash: Option<&str>,
) -> String {
    let status = ar.status.clone().unwrap_or_default();
    let spec = &ar.spec;
    let mut body = String::new();
    if let Some(text) = flash {
        let _ = write!(body, r#"<p class="flash">{}</p>"#, esc(text));
    }
    let mut rows = vec![
        (
            "Phase",
            format!(r#"<span class="phase">{}</span>"#, status.phase.as_str()),
        ),
        (
            "Requester",
            esc(&format!(
                "{} ({})",
                spec.requester,
                spec.requester_groups.join(", ")
            )),
        ),
        ("Reason", esc(&spec.reason)),
        ("Duration", esc(&spec.duration)),
        ("Scope", scope_lines(ar)),
    ];
    if let Some(t) = &spec.ticket {
        rows.push(("Ticket", esc(t)));
    }
    if let Some(g) = &spec.group {
        rows.push(("For group", esc(g)));
    }
    if let Some(r) = &spec.role_ref {
        rows.push(("Role", esc(&format!("{}/{}", r.kind, r.name))));
    }
    if let Some(x) = &spec.extends {
        rows.push((
            "Extends",
            format!(r#"<a href="/requests/{}">{}</a>"#, segment(x), esc(x)),
        ));
    }
    if spec.break_glass {
        rows.push(("Break-glass", "yes".into()));
    }
    if let Some(needs) = crate::access::needs_text(ar) {
        rows.push(("Approval needs", esc(&needs)));
    }
    if status.phase == Phase::Pending {
        if let Some(more) = still_needs(ar) {
            rows.push((
                "Still needs",
                format!(r#"<span class="needs">{}</span>"#, esc(&more)),
            ));
        }
    }
    if let Some(t) = &status.approved_at {
        rows.push(("Approved at", esc(&t.0.to_string())));
    }
    if let Some(t) = &status.expires_at {
        rows.push(("Ends at", esc(&t.0.to_string())));
    }
    if live(ar, viewer.now) {
        rows.push(("Time left", countdown(ar, viewer.now)));
    }
    if let (Some(by), Some(at)) = (&status.revoked_by, &status.revoked_at) {
        rows.push(("Revoked", esc(&format!("by {by} at {}", at.0))));
    }
    body.push_str(r#"<table class="fields">"#);
    for (k, v) in rows {
        let _ = write!(body, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    body.push_str("</table>");

    let mut actions = String::new();
    if waits_for(ar, viewer) {
        actions.push_str(&decide_form(ar, viewer));
    }
    if matches!(status.phase, Phase::Pending | Phase::Approved) {
        actions.push_str(&revoke_form(ar, viewer));
    }
    if live(ar, viewer.now) && spec.requester == viewer.user {
        actions.push_str(&extend_form(ar, viewer));
    }
    if !actions.is_empty() {
        let _ = write!(
            body,
            r#"<section id="actions"><h2>Act</h2>{actions}</section>"#
        );
    }

    body.push_str(r#"<section id="decisions"><h2>Decisions</h2>"#);
    if status.approvals.is_empty() {
        body.push_str(r#"<p class="empty">No decision yet.</p>"#);
    } else {
        body.push_str("<ul>");
        for a in &status.approvals {
            let verb = a.decision.past_tense();
            let comment = a
                .comment
                .as_deref()
                .map(|c| format!(": {}", esc(c)))
                .unwrap_or_default();
            let _ = write!(
                body,
                r#"<li class="{verb}">{verb} by {} at {}{comment}</li>"#,
                esc(&a.approver),
                esc(&a.at.0.to_string())
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");

    body.push_str(r#"<section id="events"><h2>Events</h2>"#);
    match events {
        Ok(list) if list.is_empty() => body.push_str(r#"<p class="empty">No Events.</p>"#),
        Ok(list) => {
            body.push_str("<table><tr><th>Time</th><th>Type</th><th>Reason</th><th>Note</th></tr>");
            for e in list {
                let count = if e.count > 1 {
                    format!(" (×{})", e.count)
                } else {
                    String::new()
                };
                let _ = write!(
                    body,
                    r#"<tr class="event-{}"><td>{}</td><td>{}</td><td>{}{count}</td><td>{}</td></tr>"#,
                    esc(&e.kind.to_lowercase()),
                    esc(&e.time),
                    esc(&e.kind),
                    esc(&e.reason),
                    esc(&e.note)
                );
            }
            body.push_str("</table>");
        }
        Err(why) => {
            let _ = write!(body, r#"<p class="empty">{}</p>"#, esc(why));
        }
    }
    body.push_str("</section>");
    layout(&format!("Request {}", ar.name_any()), viewer, all, &body)
}

/// A page that says what went wrong and how to go on.
pub fn problem(title: &str, text: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t} · jitguard</title>
<link rel="stylesheet" href="/assets/app.css"></head>
<body><main><h1>{t}</h1><p class="error" role="alert">{x}</p><p><a href="/">Back to the requests</a></p></main></body></html>
"#,
        t = esc(title),
        x = esc(text)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn request(requester: &str, phase: &str, approvals: serde_json::Value) -> AccessRequest {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": {"name": "fix-<db>", "creationTimestamp": "2026-12-01T10:00:00Z",
                "annotations": {"jitguard.dev/approval-requirements":
                    "[{\"name\":\"lead\",\"groups\":[\"leads\"],\"count\":1},{\"name\":\"security\",\"groups\":[\"security\"],\"count\":1}]"}},
            "spec": {"requester": requester, "reason": "<script>alert(1)</script>", "duration": "30m",
                     "scope": [{"operations": ["CREATE"], "apiGroups": [""], "resources": ["configmaps"], "namespaces": ["prod"]}]},
            "status": {"phase": phase, "approvals": approvals,
                       "approvedAt": "2026-12-01T10:05:00Z", "expiresAt": "2026-12-01T10:35:00Z"}
        }))
        .unwrap()
    }

    fn viewer<'a>(user: &'a str, groups: &'a [String]) -> Viewer<'a> {
        Viewer {
            user,
            groups,
            now: at("2026-12-01T10:10:00Z"),
            csrf: "tok",
        }
    }

    #[test]
    fn an_approver_sees_what_waits_for_them_and_what_it_still_needs() {
        let leads = vec!["leads".to_string()];
        let bob = viewer("bob", &leads);
        let fresh = request("alice", "Pending", serde_json::json!([]));
        assert!(waits_for(&fresh, &bob));
        assert!(
            !waits_for(&fresh, &viewer("alice", &leads)),
            "not one's own"
        );
        assert!(
            !waits_for(&fresh, &viewer("dave", &[])),
            "not outside the approver groups"
        );
        let after_bob = request(
            "alice",
            "Pending",
            serde_json::json!([{"approver": "bob", "approverGroups": ["leads"], "decision": "Approve",
                                "at": "2026-12-01T10:01:00Z", "uid": "", "generation": 1}]),
        );
        assert!(!waits_for(&after_bob, &bob), "decided already");
        assert_eq!(still_needs(&after_bob).unwrap(), "1 of security (security)");
        let page = overview(&bob, std::slice::from_ref(&fresh), None);
        assert!(
            page.contains(r#"<tr id="waiting-fix-&lt;db&gt;">"#),
            "{page}"
        );
        assert!(page.contains("1 of lead (leads) and 1 of security (security)"));
        assert!(
            page.contains(r#"action="/requests/fix-%3Cdb%3E/approve""#),
            "{page}"
        );
        assert!(page.contains(r#"name="csrf" value="tok""#));
        // What people wrote is text, never markup.
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn a_live_grant_shows_its_countdown_and_break_glass_a_banner() {
        let none: Vec<String> = Vec::new();
        let alice = viewer("alice", &none);
        let grant = request("alice", "Approved", serde_json::json!([]));
        assert!(live(&grant, alice.now));
        let page = overview(&alice, std::slice::from_ref(&grant), None);
        assert!(
            page.contains(
                r#"<span class="countdown" data-expires="2026-12-01T10:35:00Z">25m 00s left</span>"#
            ),
            "{page}"
        );
        assert!(!page.contains("class=\"banner\""));
        let mut glass = grant.clone();
        glass.spec.break_glass = true;
        glass.spec.requester = "carol".into();
        let page = overview(&alice, &[grant, glass], None);
        assert!(page.contains(r#"<div class="banner" role="alert">BREAK-GLASS grant live"#));
        assert_eq!(
            left(at("2026-12-01T12:00:05Z"), at("2026-12-01T10:00:00Z")),
            "2h 00m 05s"
        );
        assert_eq!(
            left(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:00:09Z")),
            "0s"
        );
    }
}

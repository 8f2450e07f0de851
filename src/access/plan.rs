//! What the controller does next with one AccessRequest, decided without I/O: approve it
//! by policy or by break-glass, let a pending request lapse, end a grant at its expiry,
//! provision its RoleBindings once it is live, reap what it left behind once it ended.
//! The controller carries the plan out; every step here is idempotent, so a plan made
//! from a slightly stale view only costs a refused write (409) and a retry.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::POLICY_APPROVER;
use crate::grant::resource::{parse_duration, Approval, ApprovalDecision};
use crate::grant::{AccessRequest, AccessRequestStatus, Phase};
use crate::policy::AccessPolicy;

/// Condition types the controller writes.
pub const LIVE: &str = "Live";
pub const REAPED: &str = "Reaped";
pub const BREAK_GLASS: &str = "BreakGlass";
pub const LAPSED: &str = "Lapsed";

/// One lifecycle step: an audit record (`audit`) and a Kubernetes Event (`reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub audit: &'static str,
    pub reason: &'static str,
    pub note: String,
    /// Who did it: a person, `policy:<rule>`, or the controller (empty).
    pub by: String,
    pub warning: bool,
}

impl Step {
    pub fn new(audit: &'static str, reason: &'static str, note: String, by: &str) -> Self {
        Self {
            audit,
            reason,
            note,
            by: by.to_string(),
            warning: false,
        }
    }

    fn warning(mut self) -> Self {
        self.warning = true;
        self
    }
}

/// The controller's next moves for one AccessRequest.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Create the grant's RoleBindings (before writing `status`; the outcome becomes
    /// the Live condition).
    pub provision: bool,
    /// Delete every object labelled with the grant (before writing `status`).
    pub reap: bool,
    /// The status to write, if it changes.
    pub status: Option<AccessRequestStatus>,
    /// Recorded once the status write succeeded.
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.provision && !self.reap && self.status.is_none()
    }
}

/// What the plan needs to know besides the object.
pub struct Context<'a> {
    pub now: Timestamp,
    /// The access policy evaluated for this request as its requester created it; `None`
    /// when it could not be evaluated (then nothing is approved by policy).
    pub policy: Option<&'a AccessPolicy>,
    /// For `spec.extends`: when the extended grant ends.
    pub extended_end: Option<Timestamp>,
    /// For `spec.extends`: the extended grant was revoked, which ends this one too.
    pub extended_revoked: bool,
    /// The namespace cache has its first full list. Until then a namespace protected by
    /// its label looks unprotected, so nothing pending is decided.
    pub namespaces_synced: bool,
}

/// Whether planning this request needs the access policy (only pending requests and
/// grants about to bind a role do; evaluating it for every settled request would be waste).
pub fn needs_policy(ar: &AccessRequest) -> bool {
    match &ar.status {
        None => true,
        Some(status) => match status.phase {
            Phase::Pending => true,
            Phase::Approved => ar.spec.role_ref.is_some() && condition(status, LIVE).is_none(),
            _ => false,
        },
    }
}

/// When this request next needs the controller if nothing about it changes: a pending
/// request lapses, an approved grant goes live (an extension starts when the grant it
/// extends ends) or ends. `None` when only a change can make something happen.
/// `policy`: the access policy of a pending request (its `pending_ttl`).
pub fn next_deadline(ar: &AccessRequest, policy: Option<&AccessPolicy>) -> Option<Timestamp> {
    let status = ar.status.clone().unwrap_or_default();
    match status.phase {
        Phase::Pending => {
            let ttl = policy.map_or_else(|| AccessPolicy::default().pending_ttl, |p| p.pending_ttl);
            let created = ar.metadata.creation_timestamp.as_ref()?.0;
            created
                .checked_add(SignedDuration::try_from(ttl).ok()?)
                .ok()
        }
        Phase::Approved => {
            let starts = status.approved_at.as_ref().map(|t| t.0);
            let ends = status.expires_at.as_ref().map(|t| t.0);
            match (starts, condition(&status, LIVE)) {
                (Some(start), None) => Some(start),
                _ => ends,
            }
        }
        _ => None,
    }
}

pub fn plan(ar: &AccessRequest, cx: &Context<'_>) -> Plan {
    let status = ar.status.clone().unwrap_or_default();
    let now = cx.now;
    let mut plan = Plan::default();
    if cx.extended_revoked && matches!(status.phase, Phase::Pending | Phase::Approved) {
        // Revoking a grant ends its chain: an extension must not start when the revoked
        // grant would have ended, nor at once when approved.
        let mut next = status;
        next.phase = Phase::Revoked;
        next.revoked_at = Some(Time(now));
        let extended = ar.spec.extends.clone().unwrap_or_default();
        plan.steps.push(Step::new(
            "access.revoked",
            "Revoked",
            format!("the grant it extends, {extended}, was revoked"),
            "",
        ));
        plan.reap = next.approved_at.is_some();
        plan.status = Some(next);
        return plan;
    }
    match status.phase {
        Phase::Pending => pending(ar, status, cx, &mut plan),
        Phase::Approved => {
            let expires = status.expires_at.as_ref().map(|t| t.0);
            let starts = status.approved_at.as_ref().map(|t| t.0);
            if expires.is_none_or(|end| now >= end) {
                let mut next = status;
                next.phase = Phase::Expired;
                let at = expires.map_or_else(|| "an unknown time".into(), |t| t.to_string());
                plan.steps.push(Step::new(
                    "access.expired",
                    "Expired",
                    format!("the grant ended at {at}"),
                    "",
                ));
                // Whatever the grant created goes with it, in the same pass.
                plan.reap = true;
                plan.status = Some(next);
            } else if starts.is_some_and(|s| s <= now) && condition(&status, LIVE).is_none() {
                // Live: bind the role (if any) and say so once.
                plan.provision = ar.spec.role_ref.is_some();
                let mut next = status;
                if !plan.provision {
                    set_condition(&mut next, LIVE, true, "Active", "the grant is live", now);
                }
                plan.steps.push(Step::new(
                    "access.live",
                    "Live",
                    format!(
                        "live until {}",
                        expires.map(|t| t.to_string()).unwrap_or_default()
                    ),
                    "",
                ));
                plan.status = Some(next);
            }
        }
        Phase::Expired | Phase::Revoked => {
            // Only a grant that was approved can have left anything behind.
            if status.approved_at.is_some() && condition(&status, REAPED).is_none() {
                plan.reap = true;
                plan.status = Some(status);
            }
        }
        Phase::Denied => {}
    }
    plan
}

/// Records the reaper's outcome in the status (the controller calls this after reaping).
pub fn reaped(next: &mut AccessRequestStatus, removed: &[String], now: Timestamp) -> Step {
    let message = if removed.is_empty() {
        "nothing labelled with the grant was left".to_string()
    } else {
        format!("removed {}", removed.join(", "))
    };
    set_condition(next, REAPED, true, "Reaped", &message, now);
    Step::new("access.reaped", "Reaped", message, "")
}

/// Records provisioning's outcome (the controller calls this after trying).
pub fn provisioned(
    next: &mut AccessRequestStatus,
    outcome: &Result<Vec<String>, String>,
    now: Timestamp,
) -> Step {
    match outcome {
        Ok(bindings) => {
            let message = format!("bound with {}", bindings.join(", "));
            set_condition(next, LIVE, true, "Provisioned", &message, now);
            Step::new("access.provisioned", "Provisioned", message, "")
        }
        Err(e) => {
            set_condition(next, LIVE, false, "ProvisionFailed", e, now);
            Step::new("access.provision_failed", "ProvisionFailed", e.clone(), "").warning()
        }
    }
}

fn pending(ar: &AccessRequest, status: AccessRequestStatus, cx: &Context<'_>, plan: &mut Plan) {
    // Auto-approval and break-glass read the namespaces' labels (a labelled namespace is
    // protected): decided on a cache that has not loaded yet, they would treat it as not.
    if !cx.namespaces_synced {
        return;
    }
    let now = cx.now;
    let spec = &ar.spec;
    let created = ar.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let approve = |mut next: AccessRequestStatus, start: Timestamp| {
        next.phase = Phase::Approved;
        next.approved_at = Some(Time(start));
        next.expires_at = spec.end_from(start).map(Time);
        next
    };
    let start = cx.extended_end.map_or(now, |end| end.max(now));

    if let Some(policy) = cx.policy {
        if spec.break_glass {
            // The webhook checked these at creation; the access policy may have changed
            // since, and a request that got past the webhook must not go live either.
            let refusals = policy.break_glass_refusals(
                &spec.requester_groups,
                spec.group.as_deref(),
                parse_duration(&spec.duration).ok(),
            );
            let mut next = status;
            let refusal = (!refusals.is_empty()).then(|| {
                format!(
                    "the access policy does not allow this break-glass request: {}",
                    refusals.join("; ")
                )
            });
            if let Some(message) = refusal {
                next.phase = Phase::Denied;
                set_condition(&mut next, BREAK_GLASS, false, "NotAllowed", &message, now);
                plan.steps
                    .push(Step::new("access.denied", "Denied", message, "").warning());
                plan.status = Some(next);
            } else {
                let mut next = approve(next, now);
                next.review_required = true;
                set_condition(
                    &mut next,
                    BREAK_GLASS,
                    true,
                    "ReviewRequired",
                    "live without approval (break-glass); every use is audited and must be reviewed",
                    now,
                );
                plan.steps.push(
                    Step::new(
                        "access.break_glass_live",
                        "BreakGlass",
                        format!(
                            "break-glass access for {} is live at once for {}; review required",
                            spec.requester, spec.duration
                        ),
                        &spec.requester,
                    )
                    .warning(),
                );
                plan.status = Some(next);
            }
            return;
        }
        if let Some(rule) = policy.auto_approve.first() {
            let mut next = status;
            next.approvals.push(Approval {
                approver: format!("{POLICY_APPROVER}{rule}"),
                approver_groups: Vec::new(),
                decision: ApprovalDecision::Approve,
                at: Time(now),
                comment: Some(format!("approved by policy rule {rule}")),
                uid: ar.metadata.uid.clone().unwrap_or_default(),
                generation: ar.metadata.generation.unwrap_or_default(),
            });
            plan.status = Some(approve(next, start));
            plan.steps.push(Step::new(
                "access.auto_approved",
                "AutoApproved",
                format!("approved by policy rule {rule}"),
                &format!("{POLICY_APPROVER}{rule}"),
            ));
            return;
        }
    }
    let ttl = cx
        .policy
        .map_or_else(|| AccessPolicy::default().pending_ttl, |p| p.pending_ttl);
    let lapses = created.and_then(|c| {
        SignedDuration::try_from(ttl)
            .ok()
            .and_then(|t| c.checked_add(t).ok())
    });
    if lapses.is_some_and(|at| now >= at) {
        let mut next = status;
        next.phase = Phase::Expired;
        let message = format!(
            "nobody decided within {}; ask again if access is still needed",
            crate::grant::resource::format_duration(ttl)
        );
        set_condition(&mut next, LAPSED, true, "PendingTTL", &message, now);
        plan.steps
            .push(Step::new("access.lapsed", "Lapsed", message, ""));
        plan.status = Some(next);
    }
}

pub fn condition<'a>(status: &'a AccessRequestStatus, kind: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == kind)
}

/// Sets a condition, keeping its transition time when the status does not change.
pub fn set_condition(
    status: &mut AccessRequestStatus,
    kind: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let value = if value { "True" } else { "False" }.to_string();
    let fresh = Condition {
        type_: kind.to_string(),
        status: value.clone(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: Time(now),
        observed_generation: None,
    };
    match status.conditions.iter_mut().find(|c| c.type_ == kind) {
        Some(existing) => {
            let kept = (existing.status == value).then(|| existing.last_transition_time.clone());
            *existing = fresh;
            if let Some(t) = kept {
                existing.last_transition_time = t;
            }
        }
        None => status.conditions.push(fresh),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::grant::resource::RoleRef;
    use std::time::Duration;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn request(phase: Phase) -> AccessRequest {
        crate::access::fixture::request(
            "alice-debug",
            "alice",
            &["dev", "sre-oncall"],
            "shop",
            phase,
        )
    }

    fn policy() -> AccessPolicy {
        AccessPolicy {
            auto_approve: vec!["short-debug".into()],
            break_glass_groups: vec!["sre-oncall".into()],
            break_glass_max: Some(Duration::from_secs(3600)),
            ..Default::default()
        }
    }

    #[test]
    fn the_next_deadline_is_the_lapse_the_start_or_the_end() {
        let pending = request(Phase::Pending);
        let ttl = AccessPolicy {
            pending_ttl: Duration::from_secs(600),
            ..AccessPolicy::default()
        };
        assert_eq!(
            next_deadline(&pending, Some(&ttl)),
            Some(at("2026-11-23T10:10:00Z"))
        );
        // An approved grant not live yet (an extension waiting for its start): its start.
        let mut approved = request(Phase::Approved);
        let status = approved.status.as_mut().unwrap();
        status.approved_at = Some(Time(at("2026-11-23T11:00:00Z")));
        status.expires_at = Some(Time(at("2026-11-23T11:30:00Z")));
        assert_eq!(
            next_deadline(&approved, None),
            Some(at("2026-11-23T11:00:00Z"))
        );
        // Live: its end.
        set_condition(
            approved.status.as_mut().unwrap(),
            LIVE,
            true,
            "Live",
            "live",
            at("2026-11-23T11:00:00Z"),
        );
        assert_eq!(
            next_deadline(&approved, None),
            Some(at("2026-11-23T11:30:00Z"))
        );
        // Ended: nothing more happens by itself.
        for phase in [Phase::Expired, Phase::Revoked, Phase::Denied] {
            assert_eq!(
                next_deadline(&request(phase), Some(&ttl)),
                None,
                "{phase:?}"
            );
        }
    }

    fn cx<'a>(now: &str, policy: Option<&'a AccessPolicy>) -> Context<'a> {
        Context {
            now: at(now),
            policy,
            extended_end: None,
            extended_revoked: false,
            namespaces_synced: true,
        }
    }

    #[test]
    fn auto_approval_is_recorded_as_the_policy_rule_and_starts_the_clock() {
        let p = policy();
        let plan = plan(
            &request(Phase::Pending),
            &cx("2026-11-23T10:00:05Z", Some(&p)),
        );
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Phase::Approved);
        assert_eq!(status.approvals[0].approver, "policy:short-debug");
        assert_eq!(status.approvals[0].uid, "uid-1");
        assert_eq!(status.approved_at.unwrap().0, at("2026-11-23T10:00:05Z"));
        assert_eq!(status.expires_at.unwrap().0, at("2026-11-23T10:30:05Z"));
        assert_eq!(plan.steps[0].audit, "access.auto_approved");
    }

    #[test]
    fn an_auto_approved_extension_starts_when_the_extended_grant_ends() {
        let p = policy();
        let mut c = cx("2026-11-23T10:00:05Z", Some(&p));
        c.extended_end = Some(at("2026-11-23T10:20:00Z"));
        let status = plan(&request(Phase::Pending), &c).status.unwrap();
        assert_eq!(status.approved_at.unwrap().0, at("2026-11-23T10:20:00Z"));
        assert_eq!(status.expires_at.unwrap().0, at("2026-11-23T10:50:00Z"));
    }

    #[test]
    fn break_glass_is_live_at_once_with_a_review_required_and_no_approver() {
        let p = policy();
        let mut ar = request(Phase::Pending);
        ar.spec.break_glass = true;
        let plan = plan(&ar, &cx("2026-11-23T10:00:05Z", Some(&p)));
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Phase::Approved);
        assert!(status.approvals.is_empty());
        assert!(status.review_required);
        assert_eq!(condition(&status, BREAK_GLASS).unwrap().status, "True");
        assert!(plan.steps[0].warning);
    }

    #[test]
    fn break_glass_outside_the_group_or_too_long_is_denied() {
        let p = policy();
        let mut ar = request(Phase::Pending);
        ar.spec.break_glass = true;
        ar.spec.requester_groups = vec!["dev".into()];
        let status = plan(&ar, &cx("2026-11-23T10:00:05Z", Some(&p)))
            .status
            .unwrap();
        assert_eq!(status.phase, Phase::Denied);
        let mut ar = request(Phase::Pending);
        ar.spec.break_glass = true;
        ar.spec.duration = "2h".into();
        let status = plan(&ar, &cx("2026-11-23T10:00:05Z", Some(&p)))
            .status
            .unwrap();
        assert_eq!(status.phase, Phase::Denied);
    }

    #[test]
    fn revoking_a_grant_revokes_its_extensions_pending_or_approved() {
        let p = policy();
        let mut ar = request(Phase::Pending);
        ar.spec.extends = Some("first".into());
        let mut c = cx("2026-11-23T10:00:05Z", Some(&p));
        c.extended_revoked = true;
        let pending = plan(&ar, &c);
        let status = pending.status.unwrap();
        assert_eq!(status.phase, Phase::Revoked, "not approved by policy");
        assert!(!pending.reap, "nothing approved, nothing to reap");
        assert!(pending.steps[0].note.contains("first, was revoked"));

        let mut later = approved("2026-11-23T11:00:00Z", "2026-11-23T11:30:00Z");
        later.spec.extends = Some("first".into());
        let approved = plan(&later, &c);
        assert_eq!(approved.status.unwrap().phase, Phase::Revoked);
        assert!(approved.reap);
    }

    #[test]
    fn nothing_pending_is_decided_before_the_namespace_cache_has_synced() {
        let p = policy();
        let mut c = cx("2026-11-23T10:00:05Z", Some(&p));
        c.namespaces_synced = false;
        assert!(
            plan(&request(Phase::Pending), &c).is_empty(),
            "no auto-approval"
        );
        let mut glass = request(Phase::Pending);
        glass.spec.break_glass = true;
        assert!(plan(&glass, &c).is_empty(), "no break-glass");
        c.namespaces_synced = true;
        assert!(!plan(&request(Phase::Pending), &c).is_empty());
    }

    #[test]
    fn break_glass_for_a_group_is_denied_even_to_a_member() {
        let p = policy();
        let mut ar = request(Phase::Pending);
        ar.spec.break_glass = true;
        ar.spec.group = Some("oncall".into());
        let plan = plan(&ar, &cx("2026-11-23T10:00:05Z", Some(&p)));
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Phase::Denied);
        assert!(condition(&status, BREAK_GLASS)
            .unwrap()
            .message
            .contains("break-glass is for the requester alone, not for a group"));
    }

    #[test]
    fn a_pending_request_waits_then_lapses_after_the_ttl() {
        let p = AccessPolicy::default();
        assert!(plan(
            &request(Phase::Pending),
            &cx("2026-11-24T09:59:59Z", Some(&p))
        )
        .is_empty());
        let plan = plan(
            &request(Phase::Pending),
            &cx("2026-11-24T10:00:00Z", Some(&p)),
        );
        let status = plan.status.unwrap();
        assert_eq!(status.phase, Phase::Expired);
        assert_eq!(condition(&status, LAPSED).unwrap().reason, "PendingTTL");
        assert!(
            !plan.reap,
            "a request that never was live left nothing behind"
        );
    }

    #[test]
    fn without_a_policy_nothing_is_approved_by_policy() {
        let mut ar = request(Phase::Pending);
        ar.spec.break_glass = true;
        assert!(plan(&ar, &cx("2026-11-23T10:00:05Z", None)).is_empty());
    }

    fn approved(start: &str, end: &str) -> AccessRequest {
        let mut ar = request(Phase::Approved);
        let status = ar.status.as_mut().unwrap();
        status.approved_at = Some(Time(at(start)));
        status.expires_at = Some(Time(at(end)));
        ar
    }

    #[test]
    fn a_live_grant_with_a_role_is_provisioned_once() {
        let mut ar = approved("2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z");
        ar.spec.role_ref = Some(RoleRef {
            kind: "ClusterRole".into(),
            name: "view".into(),
        });
        assert!(needs_policy(&ar));
        let first = plan(&ar, &cx("2026-11-23T10:00:01Z", None));
        assert!(first.provision);
        let mut status = first.status.unwrap();
        provisioned(
            &mut status,
            &Ok(vec!["shop/jit-alice-debug".into()]),
            at("2026-11-23T10:00:01Z"),
        );
        ar.status = Some(status);
        assert!(plan(&ar, &cx("2026-11-23T10:00:02Z", None)).is_empty());
        assert!(!needs_policy(&ar));
    }

    #[test]
    fn a_grant_approved_for_later_waits_for_its_start() {
        let ar = approved("2026-11-23T10:20:00Z", "2026-11-23T10:50:00Z");
        assert!(plan(&ar, &cx("2026-11-23T10:19:59Z", None)).is_empty());
        assert!(plan(&ar, &cx("2026-11-23T10:20:00Z", None))
            .status
            .is_some());
    }

    #[test]
    fn at_expiry_the_grant_expires_and_is_reaped_in_the_same_pass() {
        let ar = approved("2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z");
        let plan = plan(&ar, &cx("2026-11-23T10:30:00Z", None));
        assert!(plan.reap);
        assert_eq!(plan.status.unwrap().phase, Phase::Expired);
    }

    #[test]
    fn a_revoked_grant_is_reaped_once() {
        let mut ar = approved("2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z");
        ar.status.as_mut().unwrap().phase = Phase::Revoked;
        let first = plan(&ar, &cx("2026-11-23T10:10:00Z", None));
        assert!(first.reap);
        let mut status = first.status.unwrap();
        reaped(&mut status, &[], at("2026-11-23T10:10:00Z"));
        ar.status = Some(status);
        assert!(plan(&ar, &cx("2026-11-23T10:10:01Z", None)).is_empty());
    }

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let mut s = AccessRequestStatus::default();
        set_condition(&mut s, LIVE, true, "A", "a", at("2026-11-23T10:00:00Z"));
        set_condition(&mut s, LIVE, true, "B", "b", at("2026-11-23T11:00:00Z"));
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(
            s.conditions[0].last_transition_time.0,
            at("2026-11-23T10:00:00Z")
        );
        set_condition(&mut s, LIVE, false, "C", "c", at("2026-11-23T12:00:00Z"));
        assert_eq!(
            s.conditions[0].last_transition_time.0,
            at("2026-11-23T12:00:00Z")
        );
    }
}

//! What the webhook admits: the workflow's rules for AccessRequests, as enforced on
//! CREATE, UPDATE and the status subresource. Pure: the caller's identity comes from the
//! AdmissionReview's userInfo, the time from the server, the parameters (approvers,
//! thresholds, break-glass group, ...) from the access policy in Rego; the identity,
//! self-approval and immutability rules are here, in code, and no policy can change them.
//!
//! On `/mutate` jitguard stamps what only it may say (who asked, who approved and when,
//! the phase that follows); on `/validate` it recomputes the same and refuses any
//! difference, so a request that skipped the mutating webhook is refused, not trusted.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::quorum::satisfied;
use super::POLICY_APPROVER;
use crate::grant::resource::{parse_duration, Approval, ApprovalDecision};
use crate::grant::{AccessRequest, AccessRequestStatus, Phase};
use crate::policy::AccessPolicy;
use crate::request::Operation;

/// How far a stamped time may lie behind the validating webhook's clock: the mutating
/// webhook stamped it moments before, on this or another replica.
const STAMP_TOLERANCE: SignedDuration = SignedDuration::from_secs(60);

/// Who is asking, from the AdmissionReview's userInfo (never from the object).
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
}

impl Caller<'_> {
    fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

/// Everything a decision on one AccessRequest admission needs.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    pub caller: Caller<'a>,
    pub operation: Operation,
    /// `""` or `"status"`.
    pub sub_resource: &'a str,
    pub object: &'a AccessRequest,
    pub old: Option<&'a AccessRequest>,
    pub policy: &'a AccessPolicy,
    pub now: Timestamp,
    /// jitguard's own identity (its service account): the only one that may set
    /// phase, approvedAt and expiresAt directly.
    pub controller: &'a str,
    /// For `spec.extends`: when the extended grant ends, if it is a live grant of the
    /// requester with the same scope.
    pub extended_end: Option<Timestamp>,
}

/// What jitguard says about one AccessRequest admission.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Reasons to refuse. Not policy-overridable, not subject to audit mode.
    pub denials: Vec<String>,
    /// On `/mutate`: the stamps.
    pub patch: Vec<json_patch::PatchOperation>,
    /// Lifecycle steps this admission records, for the audit log.
    pub events: Vec<(&'static str, String)>,
}

impl Outcome {
    fn deny(&mut self, reason: impl Into<String>) {
        self.denials.push(reason.into());
    }
}

/// The workflow's verdict on an AccessRequest admission.
pub fn admit(change: &Change<'_>, mutating: bool) -> Outcome {
    let mut out = Outcome::default();
    match (change.operation, change.sub_resource) {
        (Operation::Create, "") => create(change, mutating, &mut out),
        (Operation::Update, "") => update_spec(change, &mut out),
        (Operation::Update, "status") => update_status(change, mutating, &mut out),
        _ => {}
    }
    out
}

fn op(value: serde_json::Value) -> Option<json_patch::PatchOperation> {
    serde_json::from_value(value).ok()
}

/// The annotation jitguard stamps on a new request: what its approval needs, as the
/// access policy said when it was asked for (JSON: `[{name, groups, count}]`), for
/// requesters and approvers to read (`kubectl jit do`, `show`). Approval itself is
/// always checked against the policy of the moment, never against this.
pub const REQUIREMENTS_ANNOTATION: &str = "jitguard.dev/approval-requirements";

/// The notifications already claimed for a request (see the notify module), comma-separated,
/// written only by jitguard's controller: the webhook refuses it from anyone else, at
/// creation and after.
pub const NOTIFIED_ANNOTATION: &str = "jitguard.dev/notified";

fn requirements_json(policy: &AccessPolicy) -> String {
    serde_json::to_string(&policy.requirements).unwrap_or_else(|_| "[]".into())
}

fn stamped_requirements(object: &AccessRequest) -> Option<&str> {
    object
        .annotations()
        .get(REQUIREMENTS_ANNOTATION)
        .map(String::as_str)
}

fn create(change: &Change<'_>, mutating: bool, out: &mut Outcome) {
    let Change {
        caller,
        object,
        policy,
        ..
    } = *change;
    let spec = &object.spec;
    if mutating {
        // Who asks is who the API server says asks: a requester written by the client
        // is overwritten, never trusted.
        out.patch.extend(op(
            serde_json::json!({"op": "add", "path": "/spec/requester", "value": caller.user}),
        ));
        out.patch.extend(op(serde_json::json!({"op": "add", "path": "/spec/requesterGroups", "value": caller.groups})));
        let requirements = requirements_json(policy);
        out.patch.extend(op(if object.metadata.annotations.is_some() {
            // A JSON Pointer writes the key's `/` as `~1`.
            let path = format!(
                "/metadata/annotations/{}",
                REQUIREMENTS_ANNOTATION.replace('/', "~1")
            );
            serde_json::json!({"op": "add", "path": path, "value": requirements})
        } else {
            serde_json::json!({"op": "add", "path": "/metadata/annotations", "value": {REQUIREMENTS_ANNOTATION: requirements}})
        }));
    } else {
        if object.annotations().contains_key(NOTIFIED_ANNOTATION) {
            out.deny(format!(
                "metadata.annotations[{NOTIFIED_ANNOTATION}] is jitguard's record of the notifications sent; leave it out"
            ));
        }
        if stamped_requirements(object) != Some(requirements_json(policy).as_str()) {
            out.deny(format!(
                "metadata.annotations[{REQUIREMENTS_ANNOTATION}] is stamped by jitguard with what approval needs; leave it out"
            ));
        }
        if spec.requester != caller.user {
            out.deny(format!(
                "spec.requester is {:?} but you are {:?}: a request is always for the user who makes it",
                spec.requester, caller.user
            ));
        }
        if spec.requester_groups.as_slice() != caller.groups {
            out.deny(
                "spec.requesterGroups must be the requesting user's groups (jitguard stamps them)",
            );
        }
    }
    if spec.reason.trim().is_empty() {
        out.deny("spec.reason is required: say why you need access");
    }
    let duration = match parse_duration(&spec.duration) {
        Ok(d) => Some(d),
        Err(e) => {
            out.deny(format!("spec.duration: {e}"));
            None
        }
    };
    if spec.scope.is_empty() {
        out.deny("spec.scope is empty: name what you need access to");
    }
    for (i, rule) in spec.scope.iter().enumerate() {
        if rule.operations.is_empty() || rule.api_groups.is_empty() || rule.resources.is_empty() {
            out.deny(format!(
                "spec.scope[{i}] needs operations, apiGroups and resources"
            ));
        }
        for o in &rule.operations {
            if o != "*" && Operation::parse(o).is_none() {
                out.deny(format!(
                    "spec.scope[{i}].operations: {o:?} is not CREATE, UPDATE, DELETE, CONNECT or *"
                ));
            }
        }
    }
    if let Some(group) = &spec.group {
        if group.starts_with("system:") {
            out.deny(format!(
                "spec.group {group:?}: grants for system: groups are not allowed"
            ));
        } else if !caller.groups.contains(group) {
            out.deny(format!(
                "spec.group {group:?}: you can only ask for a group grant for a group you are in"
            ));
        }
    }
    if spec.break_glass {
        // Emergency access goes to the person on call, never to everyone in a group: a
        // group grant would make it live, unapproved, for people who did not ask.
        for refusal in policy.break_glass_refusals(caller.groups, spec.group.as_deref(), duration) {
            out.deny(refusal);
        }
    }
    if spec.extends.is_some() && change.extended_end.is_none() {
        out.deny("spec.extends must name a live grant of yours with the same scope");
    }
    if out.denials.is_empty() && !mutating {
        let kind = if spec.break_glass {
            "access.break_glass_requested"
        } else {
            "access.requested"
        };
        out.events.push((kind, caller.user.to_string()));
    }
}

fn list_or_none(groups: &[String]) -> String {
    if groups.is_empty() {
        "no group (the access policy names none)".into()
    } else {
        groups.join(", ")
    }
}

/// The API server always sends the stored object with an UPDATE; a review without it
/// cannot be checked, so it is refused rather than let through.
const NO_OLD_OBJECT: &str =
    "an AccessRequest update without request.oldObject cannot be checked; refused";

fn update_spec(change: &Change<'_>, out: &mut Outcome) {
    let Some(old) = change.old else {
        return out.deny(NO_OLD_OBJECT);
    };
    let annotation_changed = stamped_requirements(change.object) != stamped_requirements(old);
    // Removing it would notify the approvers again; setting it would silence a
    // break-glass notice.
    let notified_changed = change.object.annotations().get(NOTIFIED_ANNOTATION)
        != old.annotations().get(NOTIFIED_ANNOTATION);
    if notified_changed && change.caller.user != change.controller {
        out.deny(format!(
            "metadata.annotations[{NOTIFIED_ANNOTATION}] is jitguard's record of the notifications sent; only jitguard changes it"
        ));
    }
    let (new, old) = (&change.object.spec, &old.spec);
    if annotation_changed && change.caller.user != change.controller {
        out.deny(format!(
            "metadata.annotations[{REQUIREMENTS_ANNOTATION}] cannot change after creation: jitguard stamped it"
        ));
    }
    let changed: Vec<&str> = [
        ("scope", new.scope != old.scope),
        ("duration", new.duration != old.duration),
        ("roleRef", new.role_ref != old.role_ref),
        (
            "requester",
            new.requester != old.requester || new.requester_groups != old.requester_groups,
        ),
        ("group", new.group != old.group),
        ("breakGlass", new.break_glass != old.break_glass),
        ("extends", new.extends != old.extends),
        (
            "reason/ticket",
            new.reason != old.reason || new.ticket != old.ticket,
        ),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect();
    if !changed.is_empty() {
        out.deny(format!(
            "spec.{} cannot change after creation; to extend access, create a new request with spec.extends (kubectl jit extend)",
            changed.join(", spec.")
        ));
    }
}

/// A status change by a person: record one decision, or revoke. Everything else in
/// status is jitguard's to write.
fn update_status(change: &Change<'_>, mutating: bool, out: &mut Outcome) {
    let Change {
        caller,
        object,
        old,
        now,
        ..
    } = *change;
    let Some(old) = old else {
        return out.deny(NO_OLD_OBJECT);
    };
    if caller.user == change.controller {
        return;
    }
    let empty = AccessRequestStatus::default();
    let before = old.status.as_ref().unwrap_or(&empty);
    let after = object.status.as_ref().unwrap_or(&empty);

    let expected = match expected_status(change, before, after, mutating) {
        Ok(expected) => expected,
        Err(reasons) => {
            out.denials.extend(reasons);
            return;
        }
    };
    if mutating {
        // Stamp what the caller may do; refuse, rather than quietly undo, what they may not.
        if let Some(refusal) = hand_edits(before, after, &expected) {
            out.deny(refusal);
        } else if let Ok(value) = serde_json::to_value(&expected) {
            out.patch.extend(op(
                serde_json::json!({"op": "add", "path": "/status", "value": value}),
            ));
        }
        return;
    }
    if &expected != after {
        out.deny(differences(after, &expected));
        return;
    }
    let _ = now;
    if expected.approvals.len() > before.approvals.len() {
        let decided = match expected.phase {
            Phase::Approved => "access.approved",
            Phase::Denied => "access.denied",
            _ => "access.approval_recorded",
        };
        out.events.push((decided, caller.user.to_string()));
    }
    if expected.phase == Phase::Revoked && before.phase != Phase::Revoked {
        out.events.push(("access.revoked", caller.user.to_string()));
    }
}

/// On `/mutate`: the status fields a person set by hand. Each may stay as it was or take
/// the value jitguard computes; the new approval's stamps are jitguard's to overwrite.
fn hand_edits(
    before: &AccessRequestStatus,
    after: &AccessRequestStatus,
    expected: &AccessRequestStatus,
) -> Option<String> {
    fn kept_or_computed<T: PartialEq>(after: &T, before: &T, computed: &T) -> bool {
        after == before || after == computed
    }
    let mut fields = Vec::new();
    if !kept_or_computed(&after.phase, &before.phase, &expected.phase) {
        fields.push(format!(
            "phase {} (it follows from the approvals: {})",
            after.phase.as_str(),
            expected.phase.as_str()
        ));
    }
    let times = |s: &AccessRequestStatus| (s.approved_at.clone(), s.expires_at.clone());
    if !kept_or_computed(&times(after), &times(before), &times(expected)) {
        fields.push("approvedAt/expiresAt".to_string());
    }
    let revoke = |s: &AccessRequestStatus| (s.revoked_by.clone(), s.revoked_at.clone());
    if !kept_or_computed(&revoke(after), &revoke(before), &revoke(expected)) {
        fields.push("revokedBy/revokedAt".to_string());
    }
    if after.conditions != before.conditions || after.review_required != before.review_required {
        fields.push("conditions/reviewRequired".to_string());
    }
    (!fields.is_empty()).then(|| only_jitguard(&fields))
}

/// On `/validate`: the stored status must be exactly what jitguard computes.
fn differences(got: &AccessRequestStatus, expected: &AccessRequestStatus) -> String {
    let mut fields = Vec::new();
    if got.phase != expected.phase {
        fields.push(format!(
            "phase {} (it follows from the approvals: {})",
            got.phase.as_str(),
            expected.phase.as_str()
        ));
    }
    if got.approved_at != expected.approved_at || got.expires_at != expected.expires_at {
        fields.push("approvedAt/expiresAt".to_string());
    }
    if got.approvals != expected.approvals {
        fields.push("approvals (who and when are stamped by jitguard)".to_string());
    }
    if got.revoked_by != expected.revoked_by || got.revoked_at != expected.revoked_at {
        fields.push("revokedBy/revokedAt".to_string());
    }
    if got.conditions != expected.conditions || got.review_required != expected.review_required {
        fields.push("conditions/reviewRequired".to_string());
    }
    only_jitguard(&fields)
}

fn only_jitguard(fields: &[String]) -> String {
    format!(
        "only jitguard sets these status fields: {}; record a decision with kubectl jit approve|deny, or revoke with kubectl jit revoke",
        fields.join("; ")
    )
}

/// The status that follows from the old one and what the caller may do: add their own
/// decision, or revoke. Stamps come from the caller's identity and the server's clock
/// (on `/mutate`), or are checked to be recent stamps (on `/validate`).
fn expected_status(
    change: &Change<'_>,
    before: &AccessRequestStatus,
    after: &AccessRequestStatus,
    mutating: bool,
) -> Result<AccessRequestStatus, Vec<String>> {
    let Change {
        caller,
        object,
        policy,
        now,
        ..
    } = *change;
    let spec = &object.spec;
    let mut reasons = Vec::new();
    let mut next = before.clone();

    // Approvals are append-only, one decision per request.
    let kept = after.approvals.get(..before.approvals.len());
    if kept != Some(before.approvals.as_slice()) {
        return Err(vec![
            "status.approvals is append-only: earlier decisions cannot be changed or removed"
                .into(),
        ]);
    }
    let added = after
        .approvals
        .get(before.approvals.len()..)
        .unwrap_or_default();
    if added.len() > 1 {
        return Err(vec!["record one decision at a time".into()]);
    }
    if let Some(entry) = added.first() {
        let at = if mutating {
            now
        } else {
            recent(&entry.at, now, "approvals[].at").unwrap_or_else(|e| {
                reasons.push(e);
                now
            })
        };
        let stamped = Approval {
            approver: caller.user.to_string(),
            approver_groups: caller.groups.to_vec(),
            decision: entry.decision,
            at: Time(at),
            comment: entry.comment.clone(),
            uid: object.metadata.uid.clone().unwrap_or_default(),
            generation: object.metadata.generation.unwrap_or_default(),
        };
        if !mutating && entry.approver != caller.user {
            reasons.push(format!(
                "the approval names {:?} but you are {:?}: decisions are recorded under the identity that makes them",
                entry.approver, caller.user
            ));
        }
        reasons.extend(may_decide(change, before));
        next.approvals.push(stamped);
        if reasons.is_empty() {
            if entry.decision == ApprovalDecision::Deny {
                next.phase = Phase::Denied;
            } else if satisfied(
                &policy.requirements,
                &valid_approvals(change, &next.approvals),
            ) {
                let start = change.extended_end.map_or(at, |end| end.max(at));
                next.phase = Phase::Approved;
                next.approved_at = Some(Time(start));
                next.expires_at = spec.end_from(start).map(Time);
            }
        }
    } else if after.phase == Phase::Revoked && before.phase != Phase::Revoked {
        if !matches!(before.phase, Phase::Pending | Phase::Approved) {
            reasons.push(format!(
                "a {} request cannot be revoked",
                before.phase.as_str()
            ));
        } else if caller.user != spec.requester
            && !caller.in_any(&policy.admin_groups)
            && !policy.eligible(caller.groups)
        {
            reasons.push(format!(
                "only the requester, an approver of this request ({}) or an admin ({}) may revoke it",
                policy.approver_groups(),
                list_or_none(&policy.admin_groups)
            ));
        }
        let at = if mutating {
            Ok(now)
        } else {
            after
                .revoked_at
                .as_ref()
                .ok_or_else(|| "status.revokedAt is stamped by jitguard".to_string())
                .and_then(|t| recent(t, now, "revokedAt"))
        };
        match at {
            Ok(at) => {
                next.phase = Phase::Revoked;
                next.revoked_by = Some(caller.user.to_string());
                next.revoked_at = Some(Time(at));
            }
            Err(e) => reasons.push(e),
        }
    }
    if reasons.is_empty() {
        Ok(next)
    } else {
        Err(reasons)
    }
}

/// A stamp written by jitguard's mutating webhook moments ago.
fn recent(t: &Time, now: Timestamp, what: &str) -> Result<Timestamp, String> {
    let at = t.0;
    if at > now + SignedDuration::from_secs(5) || at < now - STAMP_TOLERANCE {
        return Err(format!(
            "status.{what} is stamped by jitguard with the server's time; leave it to the webhook"
        ));
    }
    Ok(at)
}

/// Why the caller may not record a decision on this request, if they may not.
fn may_decide(change: &Change<'_>, before: &AccessRequestStatus) -> Vec<String> {
    let Change {
        caller,
        object,
        policy,
        ..
    } = *change;
    let spec = &object.spec;
    let mut reasons = Vec::new();
    if before.phase != Phase::Pending {
        reasons.push(format!(
            "the request is {}: there is nothing left to decide",
            before.phase.as_str()
        ));
    }
    reasons.extend(self_interest(caller, spec));
    if !policy.eligible(caller.groups) {
        reasons.push(format!(
            "you are not an approver of this request: approvers are members of {}",
            policy.approver_groups()
        ));
    }
    if before.approvals.iter().any(|a| a.approver == caller.user) {
        reasons.push("you already recorded a decision on this request".into());
    }
    reasons
}

/// The rules no policy can override: nobody approves their own access.
fn self_interest(caller: Caller<'_>, spec: &crate::grant::AccessRequestSpec) -> Vec<String> {
    let mut reasons = Vec::new();
    if caller.user == spec.requester {
        reasons.push("you cannot approve or deny your own request".into());
    }
    if let Some(group) = &spec.group {
        if caller.groups.contains(group) {
            reasons.push(format!(
                "this grant is for group {group}, which you are in: you would be approving your own access"
            ));
        }
    }
    // Service accounts of one namespace are controlled by whoever controls that namespace:
    // one cannot approve for another.
    if let (Some(a), Some(r)) = (
        service_account_namespace(caller.user),
        service_account_namespace(&spec.requester),
    ) {
        if a == r {
            reasons.push(format!(
                "service accounts of namespace {a} cannot approve requests of service accounts of the same namespace"
            ));
        }
    }
    reasons
}

fn service_account_namespace(user: &str) -> Option<&str> {
    user.strip_prefix("system:serviceaccount:")?
        .split(':')
        .next()
}

/// The approvals that count: decisions to approve, for this object and this generation
/// (not replayed from another object or an earlier spec), by people with no stake.
fn valid_approvals<'a>(change: &Change<'_>, approvals: &'a [Approval]) -> Vec<&'a Approval> {
    let object = change.object;
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let generation = object.metadata.generation.unwrap_or_default();
    approvals
        .iter()
        .filter(|a| a.decision == ApprovalDecision::Approve)
        .filter(|a| a.uid == uid && a.generation == generation)
        .filter(|a| !a.approver.starts_with(POLICY_APPROVER))
        .filter(|a| {
            let caller = Caller {
                user: &a.approver,
                groups: &a.approver_groups,
            };
            self_interest(caller, &object.spec).is_empty()
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! The access workflow, in one place and without I/O: what the webhook admits on an
//! AccessRequest ([`admit`]: who may ask, approve, deny, revoke, and what only jitguard
//! may stamp), when approvals suffice ([`quorum`]), and what the controller does next
//! with nobody calling ([`plan`]: approve by policy or break-glass, go live, expire,
//! lapse, reap). The webhook (`review`) and the controller carry these decisions out.

pub mod admit;
#[cfg(test)]
mod fixture;
pub mod plan;
pub mod quorum;

/// Prefix of approvals recorded by policy rather than by a person.
pub const POLICY_APPROVER: &str = "policy:";

/// What the request's approval needs, as jitguard stamped it when it was asked for:
/// `1 of lead (leads) and 1 of security (security)`.
pub fn needs_text(ar: &crate::grant::AccessRequest) -> Option<String> {
    let stamped = kube::ResourceExt::annotations(ar).get(admit::REQUIREMENTS_ANNOTATION)?;
    let requirements: Vec<crate::policy::Requirement> = serde_json::from_str(stamped).ok()?;
    requirements_text(requirements.iter().map(|r| (r, r.count)))
}

/// Requirements with a number of approvers each, as people read them:
/// `1 of lead (leads) and 2 of security (security)`; `None` when there are none.
pub fn requirements_text<'r>(
    needed: impl IntoIterator<Item = (&'r crate::policy::Requirement, usize)>,
) -> Option<String> {
    let parts: Vec<String> = needed
        .into_iter()
        .map(|(r, count)| {
            let name = if r.name.is_empty() {
                "approver"
            } else {
                &r.name
            };
            format!("{count} of {name} ({})", r.groups.join(", "))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// What a new request says, one line: `alice asks for 30m of access: REASON` (its Event
/// and its notification).
pub fn asks_text(ar: &crate::grant::AccessRequest) -> String {
    format!(
        "{} asks for {} of access: {}",
        ar.spec.requester, ar.spec.duration, ar.spec.reason
    )
}

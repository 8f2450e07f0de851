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

//! What the leader has seen of each request: the steps the webhook admitted (requested,
//! decided, approved, revoked) become Events here, since the webhook must not call the
//! API server on the request path.

use std::collections::HashMap;

use kube::ResourceExt;

use crate::access::plan::Step;
use crate::access::POLICY_APPROVER;
use crate::grant::resource::ApprovalDecision;
use crate::grant::{AccessRequest, Phase};

/// What the leader has seen of each request, to turn the webhook's steps into Events.
/// Starts empty at each new leadership: what happened before is taken as known (the
/// audit log has it), so a failover does not repeat Events.
#[derive(Default)]
pub struct Observed {
    seen: HashMap<String, (Phase, usize)>,
    baselined: bool,
}

impl Observed {
    pub fn changes(&mut self, ar: &AccessRequest) -> Vec<Step> {
        let uid = ar.metadata.uid.clone().unwrap_or_else(|| ar.name_any());
        let status = ar.status.clone().unwrap_or_default();
        let now = (status.phase, status.approvals.len());
        let before = self.seen.insert(uid, now);
        if !self.baselined {
            return Vec::new();
        }
        let mut steps = Vec::new();
        let (old_phase, old_count) = match before {
            Some(b) => b,
            None => {
                let note = crate::access::asks_text(ar);
                steps.push(Step::new(
                    "access.requested",
                    "Requested",
                    note,
                    &ar.spec.requester,
                ));
                (Phase::Pending, 0)
            }
        };
        for a in status.approvals.iter().skip(old_count) {
            if a.approver.starts_with(POLICY_APPROVER) {
                continue; // the controller recorded its own
            }
            let reason = match a.decision {
                ApprovalDecision::Approve => "Approval",
                ApprovalDecision::Deny => "Denied",
            };
            let verb = a.decision.past_tense();
            let comment = a
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            steps.push(Step::new(
                "access.decision",
                reason,
                format!("{verb} by {}{comment}", a.approver),
                &a.approver,
            ));
        }
        if status.phase != old_phase {
            match status.phase {
                Phase::Approved
                    if !status
                        .approvals
                        .iter()
                        .any(|a| a.approver.starts_with(POLICY_APPROVER))
                        && !status.review_required =>
                {
                    let until = status
                        .expires_at
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default();
                    steps.push(Step::new(
                        "access.approved",
                        "Approved",
                        format!("approval requirements met; live until {until}"),
                        "",
                    ));
                }
                Phase::Revoked => {
                    let by = status.revoked_by.clone().unwrap_or_default();
                    steps.push(Step::new(
                        "access.revoked",
                        "Revoked",
                        format!("revoked by {by}"),
                        &by,
                    ));
                }
                _ => {}
            }
        }
        steps
    }

    /// After the first pass: later passes report changes.
    pub fn baseline(&mut self) {
        self.baselined = true;
    }

    pub fn forget(&mut self, uid: &str) {
        self.seen.remove(uid);
    }
}

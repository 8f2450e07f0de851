//! What the workflow's unit tests start from: an AccessRequest (someone's request to exec
//! into pods of one namespace for 30 minutes, created 2026-11-23T10:00:00Z, uid `uid-1`,
//! generation 1, no decisions yet), an approval of it, and an approval requirement.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::grant::resource::{Approval, ApprovalDecision, ScopeRule};
use crate::grant::{AccessRequest, AccessRequestSpec, AccessRequestStatus, Phase};
use crate::policy::Requirement;

pub fn request(
    name: &str,
    requester: &str,
    groups: &[&str],
    namespace: &str,
    phase: Phase,
) -> AccessRequest {
    let mut ar = AccessRequest::new(
        name,
        AccessRequestSpec {
            requester: requester.into(),
            requester_groups: groups.iter().map(|g| g.to_string()).collect(),
            scope: vec![ScopeRule {
                operations: vec!["CONNECT".into()],
                api_groups: vec!["".into()],
                resources: vec!["pods/exec".into()],
                namespaces: vec![namespace.into()],
                names: vec![],
            }],
            reason: "debug".into(),
            duration: "30m".into(),
            ..Default::default()
        },
    );
    ar.metadata.uid = Some("uid-1".into());
    ar.metadata.generation = Some(1);
    ar.metadata.creation_timestamp = "2026-11-23T10:00:00Z".parse().ok().map(Time);
    ar.status = Some(AccessRequestStatus {
        phase,
        ..Default::default()
    });
    ar
}

/// `who`'s approval, as a member of `groups`, of the request above.
pub fn approval(who: &str, groups: &[&str]) -> Approval {
    Approval {
        approver: who.into(),
        approver_groups: groups.iter().map(|g| g.to_string()).collect(),
        decision: ApprovalDecision::Approve,
        at: Time(
            "2030-01-01T10:00:00Z"
                .parse()
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        ),
        comment: None,
        uid: "uid-1".into(),
        generation: 1,
    }
}

/// `count` approvals from members of `groups`.
pub fn req(name: &str, groups: &[&str], count: usize) -> Requirement {
    Requirement {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        count,
    }
}

//! The AccessRequest the workflow's unit tests start from: someone's request to exec into
//! pods of one namespace for 30 minutes, created 2026-11-23T10:00:00Z, uid `uid-1`,
//! generation 1, in `phase` with no decisions yet.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::grant::resource::ScopeRule;
use crate::grant::{AccessRequest, AccessRequestSpec, AccessRequestStatus, Phase};

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

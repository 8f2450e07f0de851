//! Just-in-time grants: the `AccessRequest` resource, the live grant cache every decision
//! consults in-line, and coverage of a request by a grant.
//!
//! The sources (a kube watcher in a cluster, a YAML file locally: [`crate::sources`])
//! differ only in how they fill a [`GrantStore`]; after loading, one code path serves both.

pub mod coverage;
pub mod file;
pub mod resource;
pub mod store;

use std::sync::Arc;

use crate::request::RequestInfo;

pub use resource::{AccessRequest, AccessRequestSpec, AccessRequestStatus, Phase, ScopeRule};
pub use store::{Grant, GrantFeed, GrantIndex, GrantStore};

/// Whether a live grant covers this request (computed by [`check`]).
#[derive(Clone, Debug, PartialEq)]
pub enum GrantCheck {
    /// A live grant of the requester covers the request.
    Covered(GrantUse),
    /// None does; `request` is the `kubectl jit request ...` line that would ask for one.
    NotCovered { request: String },
    /// The grant cache cannot be trusted (its source has been broken too long).
    Stale { reason: String },
}

/// The grant that allowed a request.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GrantUse {
    pub name: String,
    /// RFC 3339.
    pub expires_at: String,
    pub break_glass: bool,
}

/// The duration suggested in a denial's `kubectl jit request` line.
pub const SUGGESTED_DURATION: &str = "30m";

/// Whether one of the requester's live grants covers the request. A normal grant is
/// preferred to a break-glass one, then the one that lasts longest.
pub fn check(live: &[Arc<Grant>], req: &RequestInfo, store: &GrantStore) -> GrantCheck {
    if let Some(broken_for) = store.stale_for() {
        return GrantCheck::Stale {
            reason: format!(
                "the AccessRequest watch has been broken for {}s",
                broken_for.as_secs()
            ),
        };
    }
    let best = live
        .iter()
        .filter(|g| g.scope.iter().any(|rule| coverage::covers(rule, req)))
        .max_by_key(|g| (!g.break_glass, g.expires_at));
    match best {
        Some(g) => GrantCheck::Covered(GrantUse {
            name: g.name.to_string(),
            expires_at: g.expires_at.to_string(),
            break_glass: g.break_glass,
        }),
        None => GrantCheck::NotCovered {
            request: coverage::request_command(req, SUGGESTED_DURATION),
        },
    }
}

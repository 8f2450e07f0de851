//! Just-in-time grants: the `AccessRequest` resource, the live grant cache every decision
//! consults in-line, and coverage of a request by a grant.
//!
//! Sources (a kube watcher in a cluster, a YAML file locally) differ only in how they
//! fill a [`GrantStore`]; after loading, one code path serves both.

pub mod coverage;
pub mod file;
pub mod resource;
pub mod store;
pub mod watch;

use std::sync::Arc;

use crate::admission::RequestInfo;
use crate::decision::{GrantCheck, GrantUse};

pub use resource::{AccessRequest, AccessRequestSpec, AccessRequestStatus, Phase, ScopeRule};
pub use store::{Grant, GrantIndex, GrantStore};

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

//! The `AccessRequest` custom resource (`jitguard.dev/v1alpha1`, cluster-scoped): defined
//! once here; `jitguard crd` prints the CRD generated from these types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request for temporary access. Live iff phase is Approved, approvedAt <= now <
/// expiresAt and it is not revoked; expiresAt = approvedAt + duration.
// clippy reads the repeated `printcolumn(type_ = ...)` arguments as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "jitguard.dev",
    version = "v1alpha1",
    kind = "AccessRequest",
    plural = "accessrequests",
    singular = "accessrequest",
    shortname = "jit",
    category = "jitguard",
    status = "AccessRequestStatus",
    doc = "A just-in-time access request: who asks for which scope, why and for how long; live only while approved and unexpired.",
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Duration", type_ = "string", json_path = ".spec.duration"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".spec.reason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestSpec {
    /// Who the grant is for. Stamped by the webhook from the creating request's
    /// userInfo; a value written by the client is overwritten.
    #[serde(default)]
    pub requester: String,
    /// The requester's groups when the request was created (stamped like requester).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requester_groups: Vec<String>,
    /// A group grant: every member of this group may use the grant while it is live.
    /// The requester must be a member when asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What the grant allows.
    pub scope: Vec<ScopeRule>,
    /// Why access is needed (required).
    pub reason: String,
    /// A change or incident ticket, where policy asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// How long the grant is live once approved, e.g. `30m`, `2h`, `1h30m`.
    pub duration: String,
    /// A Role or ClusterRole bound to the requester while the grant is live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<RoleRef>,
    /// Emergency access: live at once without approval, for a short time, loudly audited.
    #[serde(default, skip_serializing_if = "is_false")]
    pub break_glass: bool,
    /// For an extension: the grant this one continues; it starts when that one ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
}

impl AccessRequestSpec {
    /// When a grant that starts at `start` ends: `start + duration`. The one place this
    /// is computed (the webhook's expected status, the controller's approval, the grant
    /// cache). `None` when the duration does not parse or the end is out of range.
    pub fn end_from(&self, start: jiff::Timestamp) -> Option<jiff::Timestamp> {
        parse_duration(&self.duration)
            .ok()
            .and_then(|d| jiff::SignedDuration::try_from(d).ok())
            .and_then(|d| start.checked_add(d).ok())
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// One rule of a grant's scope, read like an RBAC rule plus namespaces.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRule {
    /// CREATE, UPDATE, DELETE, CONNECT, or `*`.
    pub operations: Vec<String>,
    /// API groups: `""` for the core group, `*` for any.
    pub api_groups: Vec<String>,
    /// Plural resources, with subresources as in RBAC (`pods/exec`, `pods/*`), or `*`.
    pub resources: Vec<String>,
    /// Namespaces, or `*`. Empty: cluster-scoped objects only.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Object names. Empty: all names.
    #[serde(default)]
    pub names: Vec<String>,
}

impl ScopeRule {
    /// One line: `CREATE,UPDATE configmaps (core) in prod named app`.
    pub fn summary(&self) -> String {
        let groups: Vec<&str> = self
            .api_groups
            .iter()
            .map(|g| if g.is_empty() { "core" } else { g.as_str() })
            .collect();
        let mut text = format!(
            "{} {} ({})",
            self.operations.join(","),
            self.resources.join(","),
            groups.join(",")
        );
        if !self.namespaces.is_empty() {
            text.push_str(&format!(" in {}", self.namespaces.join(",")));
        }
        if !self.names.is_empty() {
            text.push_str(&format!(" named {}", self.names.join(",")));
        }
        text
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum Phase {
    #[default]
    Pending,
    Approved,
    Denied,
    Expired,
    Revoked,
}

impl Phase {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Approved => "Approved",
            Self::Denied => "Denied",
            Self::Expired => "Expired",
            Self::Revoked => "Revoked",
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestStatus {
    #[serde(default)]
    pub phase: Phase,
    /// One entry per approver (or per policy rule for auto-approval).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    /// Set on break-glass grants: a person must review the use afterwards.
    #[serde(default, skip_serializing_if = "is_false")]
    pub review_required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The approver's username, from the approving request's userInfo, or
    /// `policy:<rule>` for an auto-approval.
    pub approver: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver_groups: Vec<String>,
    /// `Approve` or `Deny`.
    pub decision: ApprovalDecision,
    /// Stamped with the server's time.
    pub at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The object uid and generation approved: an approval cannot be replayed onto a
    /// changed or re-created request.
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub generation: i64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ApprovalDecision {
    #[default]
    Approve,
    Deny,
}

impl ApprovalDecision {
    /// As people read it after a name: "approved by bob".
    pub const fn past_tense(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Deny => "denied",
        }
    }
}

/// Why a grant duration was refused; the text says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty; write it like 30m, 2h or 1h30m")]
    Empty,
    #[error("duration {text:?}: unknown unit {unit:?}; use h, m and s, like 1h30m")]
    Unit { text: String, unit: char },
    #[error("duration {text:?}: a number must come before {unit:?}")]
    NoNumber { text: String, unit: char },
    #[error("duration {text:?} is too long")]
    TooLong { text: String },
    #[error("duration {text:?}: {number} has no unit; write {number}m or {number}s")]
    NoUnit { text: String, number: String },
    #[error("duration {text:?} must be longer than zero")]
    Zero { text: String },
}

/// Parses a grant duration: Go-style `30m`, `2h`, `1h30m`, `90s`. Calendar units (days,
/// months) are refused: a grant lasts a fixed number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(DurationError::Unit {
                    text: text.to_string(),
                    unit: c,
                })
            }
        };
        let n: u64 = number.parse().map_err(|_| DurationError::NoNumber {
            text: text.to_string(),
            unit: c,
        })?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| DurationError::TooLong {
                text: text.to_string(),
            })?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(DurationError::NoUnit {
            text: text.to_string(),
            number,
        });
    }
    if total == 0 {
        return Err(DurationError::Zero {
            text: text.to_string(),
        });
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Formats seconds back in the same style (`1h30m`).
pub fn format_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_go_style_and_refuse_the_rest() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        for bad in ["", "30", "1d", "m", "0m", "-5m", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}

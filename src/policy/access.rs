//! The access policy's parameters (package `jitguard.access`): who approves what, what
//! is approved by policy, break-glass, admins, how long a request may wait. Read from the
//! policy's rules by [`super::PolicyEngine::access_policy`], used by the workflow.

use std::collections::BTreeSet;
use std::time::Duration;

use regorus::Value;

use crate::grant::resource::parse_duration;

/// One requirement: `count` different approvers, each a member of one of `groups`.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
pub struct Requirement {
    #[serde(default)]
    pub name: String,
    pub groups: Vec<String>,
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

/// The workflow parameters the access policy (`jitguard.access`) provides.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessPolicy {
    /// Every requirement must be met (AND); one person counts for one requirement only.
    pub requirements: Vec<Requirement>,
    /// Names of the policy rules that approve this request at creation.
    pub auto_approve: Vec<String>,
    pub break_glass_groups: Vec<String>,
    pub break_glass_max: Option<Duration>,
    pub admin_groups: Vec<String>,
    pub pending_ttl: Duration,
    pub allow_escalating_roles: bool,
    /// The notification sinks that hear about this request; `None` (the rule is not
    /// defined): every sink.
    pub notify: Option<Vec<String>>,
}

impl Default for AccessPolicy {
    /// Without an access policy nobody can approve, break glass or revoke but the
    /// requester: requests stay pending and lapse. Safe, and visibly so.
    fn default() -> Self {
        Self {
            requirements: Vec::new(),
            auto_approve: Vec::new(),
            break_glass_groups: Vec::new(),
            break_glass_max: None,
            admin_groups: Vec::new(),
            pending_ttl: Duration::from_secs(24 * 3600),
            allow_escalating_roles: false,
            notify: None,
        }
    }
}

/// Why the access policy gave no parameters: it failed to evaluate, or a rule's value is
/// not of the shape the workflow reads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccessPolicyError {
    #[error("the access policy (jitguard.access) failed: {0}")]
    Evaluation(String),
    #[error("the access policy (jitguard.access): {0}")]
    Shape(String),
    /// The input for it could not be built (the controller's view of a request).
    #[error("the access policy's input cannot be built: {0}")]
    Input(String),
}

impl AccessPolicy {
    /// Reads the values of the policy's rules (`null` where a rule is not defined).
    pub fn from_value(value: &Value) -> Result<Self, AccessPolicyError> {
        Self::read(value).map_err(AccessPolicyError::Shape)
    }

    fn read(value: &Value) -> Result<Self, String> {
        let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
        let mut policy = Self::default();
        let field = |name: &str| json.get(name).filter(|v| !v.is_null());
        if let Some(v) = field("approval_requirements") {
            policy.requirements = serde_json::from_value(v.clone()).map_err(|e| {
                format!("approval_requirements must be a list of {{name, groups, count}}: {e}")
            })?;
        }
        if let Some(v) = field("auto_approve") {
            policy.auto_approve = strings(v, "auto_approve")?;
        }
        if let Some(v) = field("break_glass_groups") {
            policy.break_glass_groups = strings(v, "break_glass_groups")?;
        }
        if let Some(v) = field("break_glass_max_duration") {
            policy.break_glass_max = Some(duration(v, "break_glass_max_duration")?);
        }
        if let Some(v) = field("admin_groups") {
            policy.admin_groups = strings(v, "admin_groups")?;
        }
        if let Some(v) = field("pending_ttl") {
            policy.pending_ttl = duration(v, "pending_ttl")?;
        }
        if let Some(v) = field("allow_escalating_roles") {
            policy.allow_escalating_roles = v
                .as_bool()
                .ok_or("allow_escalating_roles must be true or false")?;
        }
        if let Some(v) = field("notify") {
            policy.notify = Some(strings(v, "notify")?);
        }
        Ok(policy)
    }

    /// Why a break-glass request by someone in `groups`, for `for_group` (a group grant)
    /// and `duration`, may not be: empty when it may. The webhook says these at creation;
    /// the controller checks them again before making the request live, in case the
    /// policy changed meanwhile.
    pub fn break_glass_refusals(
        &self,
        groups: &[String],
        for_group: Option<&str>,
        duration: Option<Duration>,
    ) -> Vec<String> {
        let mut refusals = Vec::new();
        // Emergency access goes to the person on call, never to everyone in a group: a
        // group grant would make it live, unapproved, for people who did not ask.
        if let Some(group) = for_group {
            refusals.push(format!(
                "break-glass is for the requester alone, not for a group ({group:?}); ask without --group"
            ));
        }
        if !self.break_glass_groups.iter().any(|g| groups.contains(g)) {
            refusals.push(format!(
                "break-glass is reserved to members of {}; you are not one",
                if self.break_glass_groups.is_empty() {
                    "no group (the access policy names none)".to_string()
                } else {
                    self.break_glass_groups.join(", ")
                }
            ));
        }
        match (self.break_glass_max, duration) {
            (Some(max), Some(d)) if d > max => refusals.push(format!(
                "a break-glass request lasts at most {}",
                crate::grant::resource::format_duration(max)
            )),
            (None, _) => refusals.push("break-glass is not enabled by the access policy".into()),
            (Some(_), None) => refusals.push("a break-glass request needs a valid duration".into()),
            _ => {}
        }
        refusals
    }

    pub(crate) fn eligible(&self, groups: &[String]) -> bool {
        self.requirements
            .iter()
            .any(|r| r.groups.iter().any(|g| groups.contains(g)))
    }

    pub(crate) fn approver_groups(&self) -> String {
        let all: BTreeSet<&str> = self
            .requirements
            .iter()
            .flat_map(|r| r.groups.iter().map(String::as_str))
            .collect();
        if all.is_empty() {
            "none: the access policy names no approvers".into()
        } else {
            all.into_iter().collect::<Vec<_>>().join(", ")
        }
    }
}

fn strings(v: &serde_json::Value, name: &str) -> Result<Vec<String>, String> {
    serde_json::from_value(v.clone()).map_err(|_| format!("{name} must be a list of strings"))
}

fn duration(v: &serde_json::Value, name: &str) -> Result<Duration, String> {
    let text = v
        .as_str()
        .ok_or(format!("{name} must be a duration like 1h"))?;
    parse_duration(text).map_err(|e| format!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_access_package() {
        for e in [
            AccessPolicyError::Evaluation("x".into()),
            AccessPolicyError::Shape("x".into()),
        ] {
            assert!(e.to_string().contains(crate::policy::ACCESS_PACKAGE), "{e}");
        }
    }

    #[test]
    fn break_glass_is_for_members_alone_within_the_maximum() {
        let policy = AccessPolicy {
            break_glass_groups: vec!["oncall".into()],
            break_glass_max: Some(Duration::from_secs(3600)),
            ..AccessPolicy::default()
        };
        let oncall = ["oncall".to_string()];
        let hour = Some(Duration::from_secs(3600));
        assert!(policy.break_glass_refusals(&oncall, None, hour).is_empty());
        let refusals = |groups: &[String], group, duration| {
            policy
                .break_glass_refusals(groups, group, duration)
                .join("; ")
        };
        assert!(refusals(&[], None, hour).contains("reserved to members of oncall"));
        assert!(refusals(&oncall, Some("oncall"), hour).contains("not for a group"));
        assert!(refusals(&oncall, None, Some(Duration::from_secs(7200))).contains("at most 1h"));
        assert!(refusals(&oncall, None, None).contains("valid duration"));
        let off = AccessPolicy::default();
        assert!(off
            .break_glass_refusals(&oncall, None, hour)
            .join("; ")
            .contains("not enabled by the access policy"));
    }
}

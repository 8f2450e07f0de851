//! The decision: a pure function from what the policies found and what grants cover to
//! allow / deny / warn / patch. No I/O, no clock, no Kubernetes client: everything it
//! needs is passed in, so the server, `dry-run` and `verify` decide identically.

use std::fmt::Write as _;

use crate::grant::{GrantCheck, GrantUse};
use crate::policy::{Enforcement, Evaluation, PackageResult, RuleKind, ACCESS_PACKAGE};
use crate::request::Operation;
use crate::text::truncate;

/// Kubernetes shows at most this many characters of a warning without truncating it.
pub const WARNING_LIMIT: usize = 120;

/// A denial lists at most this many findings and a response carries at most this many
/// warnings; the rest are counted, not listed (the audit record has them all). An object
/// with thousands of offending containers must not become a megabyte-long answer.
pub const LISTED_MAX: usize = 20;

/// One finding in a denial message is cut to this many characters.
pub const FINDING_LIMIT: usize = 512;

/// Which endpoint asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }
}

/// How a finding of a package in warn or audit mode starts in the answer's warnings
/// (`would deny (audit): msg`); dry-run lists those findings itself and skips them.
pub const WOULD_DENY: &str = "would deny";

/// What to do when a package cannot decide (runtime error, time-out, broken contract).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail closed: deny, with the error in the message.
    #[default]
    Deny,
    /// Fail open: allow, with a warning.
    Allow,
}

/// Server-wide settings that shape every decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `--enforcement audit|warn`: every package behaves as if it set that mode.
    pub enforcement: Option<Enforcement>,
    pub on_error: OnError,
}

/// The outcome label used in metrics, audit records and dry-run output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Warn,
    Deny,
}

impl Verdict {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Warn => "warn",
            Self::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub verdict: Verdict,
    /// Why it was denied; empty when allowed.
    pub message: String,
    pub warnings: Vec<String>,
    /// JSON Patch for `/mutate`; always empty for `/validate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<json_patch::PatchOperation>,
    /// The grant that satisfied the require_grant findings, if any were raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantUse>,
    /// Findings of packages in audit/warn mode that would have denied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_deny: Vec<String>,
    /// Packages that could not decide, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// When only a grant is missing: the `kubectl jit request ...` line that asks for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_access: Option<String>,
}

/// Why the answer is the deadline answer: `timeout` is the API server's webhook timeout.
pub fn deadline_message(timeout: std::time::Duration) -> String {
    format!(
        "jitguard could not decide within the API server's {}ms webhook timeout (evaluation queue or policies too slow)",
        timeout.as_millis()
    )
}

impl Decision {
    /// The answer sent when the API server's deadline came before a decision: a denial
    /// with the reason, or under `--on-error allow` an allow with it as a warning.
    pub fn deadline(message: &str, on_error: OnError) -> Self {
        let (allowed, verdict, text, warnings) = match on_error {
            OnError::Deny => (false, Verdict::Deny, message.to_string(), Vec::new()),
            OnError::Allow => (
                true,
                Verdict::Warn,
                String::new(),
                vec![format!("{message}; allowed (--on-error allow)")],
            ),
        };
        Self {
            allowed,
            verdict,
            message: text,
            warnings,
            patch: Vec::new(),
            grant: None,
            would_deny: Vec::new(),
            errors: vec![format!("[deadline] {message}")],
            request_access: None,
        }
    }
}

/// What the decision needs to know about the request itself.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub webhook: Webhook,
    pub operation: Operation,
    /// The object, as JSON, when something may patch it (`/mutate` only).
    pub object: Option<&'a serde_json::Value>,
    /// What the built-in approval workflow refuses (AccessRequests only). Identity,
    /// self-approval and immutability are not policy: these deny in every enforcement
    /// mode, even `--enforcement audit`.
    pub workflow_denials: &'a [String],
    /// The workflow's stamps, applied on `/mutate`.
    pub workflow_patch: &'a [json_patch::PatchOperation],
}

/// Combines findings:
/// any enforced deny → denied (the message lists every finding with its package);
/// else an enforced require_grant not covered by a live grant → denied, with the command
/// that requests the grant; else allowed, with warnings and (on `/mutate`) patches.
pub fn decide(
    evaluation: &Evaluation,
    grant: &GrantCheck,
    target: Target<'_>,
    options: Options,
) -> Decision {
    let Target {
        webhook,
        operation,
        object,
        workflow_denials,
        workflow_patch,
    } = target;
    let mut denies = Vec::new();
    let mut needs_grant = Vec::new();
    let mut warnings = Vec::new();
    let mut would_deny = Vec::new();
    let mut errors = Vec::new();
    let mut patch = Vec::new();
    // Which package contributed which run of `patch`, to name the one that does not apply.
    let mut patch_sources: Vec<(&str, usize)> = Vec::new();

    for pkg in &evaluation.packages {
        let mode = mode(pkg, options);
        if let Some(error) = &pkg.error {
            let line = format!("[{}] policy error: {error}", pkg.package);
            errors.push(line.clone());
            match options.on_error {
                OnError::Deny => denies.push(line),
                OnError::Allow => warnings.push(format!(
                    "policy {} failed and was skipped (--on-error allow)",
                    pkg.package
                )),
            }
            continue;
        }
        for finding in &pkg.findings {
            let line = format!("[{}] {}", pkg.package, finding.msg);
            match finding.rule {
                RuleKind::Deny | RuleKind::Violation if mode.enforced() => denies.push(line),
                RuleKind::RequireGrant if mode.enforced() => needs_grant.push(line),
                RuleKind::Deny | RuleKind::Violation | RuleKind::RequireGrant => {
                    warnings.push(format!("{WOULD_DENY} ({}): {}", mode.name(), finding.msg));
                    would_deny.push(line);
                }
                RuleKind::Warn => warnings.push(finding.msg.clone()),
                RuleKind::Patch => {}
            }
        }
        if webhook == Webhook::Mutate && !pkg.patch.is_empty() {
            patch_sources.push((&*pkg.package, pkg.patch.len()));
            patch.extend(pkg.patch.iter().cloned());
        }
    }

    denies.extend(
        workflow_denials
            .iter()
            .map(|d| format!("[jitguard.workflow] {d}")),
    );
    if webhook == Webhook::Mutate && !workflow_patch.is_empty() {
        patch_sources.push(("jitguard.workflow", workflow_patch.len()));
        patch.extend(workflow_patch.iter().cloned());
    }

    let mut grant_used = None;
    let mut grant_denial = None;
    let mut request_access = None;
    if !needs_grant.is_empty() {
        match grant {
            GrantCheck::Covered(used) => {
                if used.break_glass {
                    warnings.push(format!(
                        "allowed by break-glass grant {}: this use is audited and will be reviewed",
                        used.name
                    ));
                }
                grant_used = Some(used.clone());
            }
            GrantCheck::NotCovered { request } => {
                request_access = Some(request.clone());
                grant_denial = Some(format!(
                    "a just-in-time grant is required and none of yours covers this request; ask for one with:\n  {request}"
                ));
            }
            GrantCheck::Stale { reason } => {
                grant_denial = Some(format!(
                    "a just-in-time grant is required, but the grant cache is stale ({reason}), so grants cannot be trusted: denied until it recovers"
                ));
            }
        }
    }

    if webhook == Webhook::Mutate {
        // Only what a grant creates is its own: an object merely changed under a grant
        // must not be taken away when the grant ends.
        if let (Some(used), Operation::Create) = (&grant_used, operation) {
            let provenance = provenance_patch(object, used);
            patch_sources.push(("jitguard.provenance", provenance.len()));
            patch.extend(provenance);
        }
        if !patch.is_empty() {
            if let Err(e) = check_patch(object, &patch) {
                let culprit = failing_patch_source(object, &patch, &patch_sources);
                let line = format!("[{culprit}] patch: {e}");
                errors.push(line.clone());
                patch.clear();
                match options.on_error {
                    OnError::Deny => denies.push(line),
                    OnError::Allow => warnings.push(
                        "the policies' patch did not apply and was dropped (--on-error allow)"
                            .to_string(),
                    ),
                }
            }
        }
    }

    let all_warnings = warnings.len();
    let mut warnings: Vec<String> = warnings
        .iter()
        .take(LISTED_MAX)
        .map(|w| truncate(w, WARNING_LIMIT))
        .collect();
    if all_warnings > LISTED_MAX {
        warnings.push(format!(
            "... and {} more warnings (see the audit record)",
            all_warnings - LISTED_MAX
        ));
    }
    if !denies.is_empty() || grant_denial.is_some() {
        let mut message = String::from("jitguard denied the request:");
        let findings = denies.len() + needs_grant.len();
        for line in denies.iter().chain(&needs_grant).take(LISTED_MAX) {
            let _ = write!(message, "\n- {}", truncate(line, FINDING_LIMIT));
        }
        if findings > LISTED_MAX {
            let _ = write!(
                message,
                "\n... and {} more findings (see the audit record)",
                findings - LISTED_MAX
            );
        }
        // A grant cannot lift a deny: only point at one when it is all that is missing.
        if !denies.is_empty() {
            request_access = None;
        } else if let Some(grant_denial) = grant_denial {
            let _ = write!(message, "\n{grant_denial}");
        }
        return Decision {
            allowed: false,
            verdict: Verdict::Deny,
            message,
            warnings,
            patch: Vec::new(),
            grant: None,
            would_deny,
            errors,
            request_access,
        };
    }
    let verdict = if warnings.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Warn
    };
    Decision {
        allowed: true,
        verdict,
        message: String::new(),
        warnings,
        patch,
        grant: grant_used,
        would_deny,
        errors,
        request_access: None,
    }
}

/// Whether any package raised an enforced require_grant: the grant lookup's coverage
/// check is only needed then.
pub fn needs_grant(evaluation: &Evaluation, options: Options) -> bool {
    evaluation.packages.iter().any(|p| {
        p.error.is_none()
            && mode(p, options).enforced()
            && p.of_kind(RuleKind::RequireGrant).next().is_some()
    })
}

/// The contributor whose run of operations first fails to apply, in order: the patch
/// is one list, but a failure must name the package to fix.
fn failing_patch_source<'a>(
    object: Option<&serde_json::Value>,
    patch: &[json_patch::PatchOperation],
    sources: &[(&'a str, usize)],
) -> &'a str {
    let Some(mut copy) = object.cloned() else {
        return sources.first().map_or("patch", |(name, _)| name);
    };
    let mut start = 0;
    for (name, len) in sources {
        let ops = patch.get(start..start + len).unwrap_or_default();
        if json_patch::patch(&mut copy, ops).is_err() {
            return name;
        }
        start += len;
    }
    "patch"
}

/// How a package's findings count: the server-wide `--enforcement` (roll-out mode) or the
/// package's own. The access policy's rules (what is requestable, for how long, tickets)
/// guard the workflow's integrity, not the cluster: roll-out mode never relaxes them,
/// like the workflow's own refusals.
pub fn mode(pkg: &PackageResult, options: Options) -> Enforcement {
    if &*pkg.package == ACCESS_PACKAGE {
        Enforcement::Deny
    } else {
        options.enforcement.unwrap_or(pkg.enforcement)
    }
}

/// Label and annotate what a grant creates or changes, so that the reaper can remove
/// temporary objects when the grant ends (approval issue) and readers can see why an
/// object exists.
fn provenance_patch(
    object: Option<&serde_json::Value>,
    grant: &GrantUse,
) -> Vec<json_patch::PatchOperation> {
    let Some(metadata) = object.and_then(|o| o.get("metadata")) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    for (field, key, value) in [
        ("labels", "jitguard.dev~1grant", grant.name.as_str()),
        (
            "annotations",
            "jitguard.dev~1expires-at",
            grant.expires_at.as_str(),
        ),
    ] {
        let op = if metadata.get(field).is_some_and(|m| m.is_object()) {
            serde_json::json!({"op": "add", "path": format!("/metadata/{field}/{key}"), "value": value})
        } else {
            let key = key.replace("~1", "/");
            serde_json::json!({"op": "add", "path": format!("/metadata/{field}"), "value": {key: value}})
        };
        if let Ok(op) = serde_json::from_value(op) {
            ops.push(op);
        }
    }
    ops
}

/// A patch that does not apply to the object is an error, not a silent skip: the API
/// server would reject it anyway, with a message that helps nobody.
fn check_patch(
    object: Option<&serde_json::Value>,
    ops: &[json_patch::PatchOperation],
) -> Result<(), String> {
    let Some(object) = object else {
        return Err("the policies produced a patch, but the request has no object to patch".into());
    };
    let mut copy = object.clone();
    json_patch::patch(&mut copy, ops)
        .map_err(|e| format!("the policies' patch does not apply to the object: {e}"))
}

#[cfg(test)]
mod tests;

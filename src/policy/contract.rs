//! Reading one package's answer by the policy contract: findings of `deny`,
//! `violation`, `require_grant` and `warn` (strings, or objects with a string `msg`),
//! JSON Patch operations of `patch`, and the `enforcement` mode. A value of the wrong
//! shape is the package's error, named with what was expected.

use regorus::Value;

use std::sync::Arc;

use super::{Enforcement, Finding, PackageInfo, PackageResult, RuleKind, FINDING_RULES};
use crate::gatekeeper::{Action, Pack};

pub(super) fn package_result(pkg: &PackageInfo, value: &Value) -> PackageResult {
    match parse_package_value(value) {
        Ok((enforcement, findings, patch)) => PackageResult {
            package: pkg.name.clone(),
            enforcement,
            findings,
            patch,
            error: None,
        },
        Err(message) => PackageResult::failed(pkg.name.clone(), message),
    }
}

type Parsed = (Enforcement, Vec<Finding>, Vec<json_patch::PatchOperation>);

fn parse_package_value(value: &Value) -> Result<Parsed, String> {
    let mut findings = Vec::new();
    let mut patch = Vec::new();
    for kind in FINDING_RULES {
        let items = match &value[kind.name()] {
            Value::Undefined => continue,
            Value::Set(set) => set.iter().collect::<Vec<_>>(),
            Value::Array(array) => array.iter().collect(),
            other => {
                return Err(format!(
                    "`{}` must be a multi-value rule (`{} contains ... if {{ ... }}`), but it is {other}",
                    kind.name(),
                    kind.name()
                ))
            }
        };
        for item in items {
            if kind == RuleKind::Patch {
                patch.push(patch_operation(item)?);
            } else {
                findings.push(finding(kind, item)?);
            }
        }
    }
    let enforcement = match &value["enforcement"] {
        Value::Undefined => Enforcement::Deny,
        Value::String(s) => Enforcement::parse(s).ok_or_else(|| {
            format!("`enforcement` must be \"deny\", \"warn\" or \"audit\", not {s:?}")
        })?,
        other => return Err(format!("`enforcement` must be a string, not {other}")),
    };
    Ok((enforcement, findings, patch))
}

fn finding(rule: RuleKind, item: &Value) -> Result<Finding, String> {
    match item {
        Value::String(msg) => Ok(Finding {
            rule,
            msg: msg.to_string(),
            details: None,
        }),
        Value::Object(fields) => match fields.get(&Value::from("msg")) {
            Some(Value::String(msg)) => {
                let rest: std::collections::BTreeMap<Value, Value> = fields
                    .iter()
                    .filter(|(k, _)| k.as_string().map(|k| &**k != "msg").unwrap_or(true))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok(Finding {
                    rule,
                    msg: msg.to_string(),
                    details: (!rest.is_empty()).then(|| Value::from(rest)),
                })
            }
            _ => Err(format!(
                "a `{}` finding must be a string or an object with a string `msg`, got {item}",
                rule.name()
            )),
        },
        other => Err(format!(
            "a `{}` finding must be a string or an object with a string `msg`, got {other}",
            rule.name()
        )),
    }
}

fn patch_operation(item: &Value) -> Result<json_patch::PatchOperation, String> {
    serde_json::to_value(item)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            format!("`patch` must yield JSON Patch operations ({{\"op\", \"path\", \"value\"}}); {item} is not one: {e}")
        })
}

/// Gatekeeper's constraints that select the request, as packages of their own named by
/// the constraint, so that a denial reads `[constraint-name] msg` as Gatekeeper prints
/// it. `enforcementAction` maps to the package's mode (warn → warn, dryrun → audit); a
/// constraint annotated for exceptions raises `require_grant`, which a grant can lift.
pub(super) fn constraint_results(pack: &mut Pack, input: &Value) -> Vec<PackageResult> {
    let review = &input["request"];
    let namespace = review["namespace"]
        .as_string()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let labels = serde_json::to_value(&input["jit"]["namespaces"][namespace.as_str()]["labels"])
        .ok()
        .filter(serde_json::Value::is_object);
    pack.evaluate(review, labels.as_ref())
        .into_iter()
        .map(|outcome| {
            let c = outcome.constraint;
            let package: Arc<str> = Arc::from(c.name.as_str());
            let enforcement = match c.action {
                Action::Deny => Enforcement::Deny,
                Action::Warn => Enforcement::Warn,
                Action::DryRun => Enforcement::Audit,
            };
            let rule = if c.grant_exception {
                RuleKind::RequireGrant
            } else {
                RuleKind::Violation
            };
            match outcome.result {
                Ok(violations) => PackageResult {
                    package,
                    enforcement,
                    findings: violations
                        .into_iter()
                        .map(|v| Finding {
                            rule,
                            msg: v.msg,
                            details: None,
                        })
                        .collect(),
                    patch: Vec::new(),
                    error: None,
                },
                Err(e) => PackageResult::failed(package, e),
            }
        })
        .collect()
}

//! gator test suites, run unchanged (`kind: Suite`, `test.gatekeeper.sh/v1alpha1`): each
//! test names a template and a constraint, each case an object (or an AdmissionReview),
//! inventory files, and assertions `violations: yes | no | N`, optionally only counting
//! violations whose message matches `message` (a regular expression, as gator reads it).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use super::{inventory, review_of, Constraint, Template};

#[derive(Deserialize)]
struct Suite {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    tests: Vec<Test>,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Test {
    #[serde(default)]
    name: String,
    template: String,
    constraint: String,
    #[serde(default)]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(default)]
    name: String,
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    assertions: Vec<Assertion>,
}

#[derive(Deserialize)]
struct Assertion {
    /// gator's default: at least one.
    #[serde(default = "at_least_one")]
    violations: yaml_serde::Value,
    #[serde(default)]
    message: Option<String>,
}

fn at_least_one() -> yaml_serde::Value {
    yaml_serde::Value::String("yes".into())
}

/// Whether a YAML document is a gator suite.
pub fn is_suite(text: &str) -> bool {
    yaml_serde::from_str::<Json>(text).is_ok_and(|v| {
        v["kind"] == "Suite"
            && v["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("test.gatekeeper.sh/"))
    })
}

/// One case's result: `suite/test/case` and `Err(what went wrong)`.
pub type CaseResult = (String, Result<(), String>);

/// Runs every case of the suite at `path`. `Err`: the suite itself cannot be read.
pub fn run(path: &Path) -> Result<Vec<CaseResult>, String> {
    let suite: Suite = crate::text::read_yaml(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let suite_name = if suite.metadata.name.is_empty() {
        base.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        suite.metadata.name.clone()
    };
    let mut results = Vec::new();
    for test in &suite.tests {
        let label = |case: &str| format!("{suite_name}/{}/{case}", test.name);
        let prepared = documents(&base.join(&test.template))
            .and_then(|t| first(t, &test.template))
            .and_then(|t| Template::compile(&t).map_err(|e| e.to_string()))
            .and_then(|template| {
                let constraint = documents(&base.join(&test.constraint))
                    .and_then(|c| first(c, &test.constraint))
                    .and_then(|c| Constraint::parse(&c).map_err(|e| e.to_string()))?;
                if constraint.kind != template.kind {
                    return Err(format!(
                        "constraint kind {} is not the template's {}",
                        constraint.kind, template.kind
                    ));
                }
                let constraint = template.admit(constraint).map_err(|e| e.to_string())?;
                Ok((template, constraint))
            });
        let (mut template, constraint) = match prepared {
            Ok(p) => p,
            Err(e) => {
                for case in &test.cases {
                    results.push((label(&case.name), Err(e.clone())));
                }
                continue;
            }
        };
        for case in &test.cases {
            let outcome = decide_case(base, case, &mut template, &constraint);
            results.push((label(&case.name), outcome));
        }
    }
    Ok(results)
}

fn decide_case(
    base: &Path,
    case: &Case,
    template: &mut Template,
    constraint: &Constraint,
) -> Result<(), String> {
    let object = documents(&base.join(&case.object)).and_then(|d| first(d, &case.object))?;
    let mut objects = Vec::new();
    for file in &case.inventory {
        objects.extend(documents(&base.join(file))?);
    }
    let review = review_of(&object);
    let violations = if selected(&review, constraint, &objects) {
        template.violations(&review, &constraint.parameters, &inventory(&objects))?
    } else {
        Vec::new()
    };
    for assertion in &case.assertions {
        let counted: Vec<&str> = match &assertion.message {
            Some(pattern) => {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| format!("message {pattern:?} is not a regular expression: {e}"))?;
                violations
                    .iter()
                    .map(|v| v.msg.as_str())
                    .filter(|m| re.is_match(m))
                    .collect()
            }
            None => violations.iter().map(|v| v.msg.as_str()).collect(),
        };
        let ok = match &assertion.violations {
            yaml_serde::Value::Bool(true) => !counted.is_empty(),
            yaml_serde::Value::Bool(false) => counted.is_empty(),
            yaml_serde::Value::String(s) if s == "yes" => !counted.is_empty(),
            yaml_serde::Value::String(s) if s == "no" => counted.is_empty(),
            yaml_serde::Value::Number(n) => n.as_u64() == Some(counted.len() as u64),
            other => return Err(format!("violations: {other:?} is not yes, no or a number")),
        };
        if !ok {
            let all: Vec<&str> = violations.iter().map(|v| v.msg.as_str()).collect();
            return Err(format!(
                "expected violations: {}{}, got {}: {all:?}",
                yaml_serde::to_string(&assertion.violations)
                    .unwrap_or_default()
                    .trim(),
                assertion
                    .message
                    .as_ref()
                    .map(|m| format!(" matching {m:?}"))
                    .unwrap_or_default(),
                counted.len()
            ));
        }
    }
    Ok(())
}

/// Whether the constraint's match selects the review's object (namespace labels from
/// Namespace objects in the inventory).
fn selected(review: &Json, constraint: &Constraint, objects: &[Json]) -> bool {
    let namespace = review["namespace"].as_str().unwrap_or_default();
    let namespace_labels = objects
        .iter()
        .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == namespace)
        .map(|o| &o["metadata"]["labels"]);
    constraint.selects(review, namespace_labels)
}

fn documents(path: &PathBuf) -> Result<Vec<Json>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (line, doc) in crate::text::yaml_documents(&text) {
        let value: Json = yaml_serde::from_str(doc).map_err(|e| {
            let (at, message) = crate::text::yaml_error(&e);
            format!("{}:{}: {message}", path.display(), line + at)
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn first(mut docs: Vec<Json>, file: &str) -> Result<Json, String> {
    if docs.is_empty() {
        return Err(format!("{file} holds no object"));
    }
    Ok(docs.swap_remove(0))
}

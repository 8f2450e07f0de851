//! OPA Gatekeeper's policies, run as they are: ConstraintTemplates (their Rego, in Rego v0
//! syntax as Gatekeeper accepts it) and Constraints (parameters, `spec.match`,
//! `enforcementAction`), each template compiled in an engine of its own so that it sees
//! neither the other templates nor jitguard's packages.
//!
//! A template's Rego gets Gatekeeper's input: `input.review` (the AdmissionRequest, or for
//! a bare object the review Gatekeeper builds for it), `input.parameters` (the constraint's
//! `spec.parameters`) and `data.inventory` (cached cluster objects, for referential
//! templates). Its `violation` rule's entries (`{msg, details}`) are the constraint's
//! violations, reported as Gatekeeper prints them: `[constraint-name] msg`.
//!
//! Templates and constraints found among the policy folder's YAML files are served with
//! the Rego pack ([`Pack`]); a constraint annotated `jitguard.dev/exception: grant` asks
//! for a just-in-time grant instead of denying.

// Documents are read with serde_json's `value["key"]`, which returns Null for a missing
// key or a non-object and never panics (only its IndexMut can, which is not used here).
#![allow(clippy::indexing_slicing)]

mod dialect;
pub mod feed;
pub mod matching;
mod schema;
pub mod suite;

use std::sync::Arc;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};
use serde_json::Value as Json;

/// Why a template or constraint cannot be used; the text names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatekeeperError {
    #[error("ConstraintTemplate {name}: {problem}")]
    Template { name: String, problem: String },
    #[error("{kind} {name}: {problem}")]
    Constraint {
        kind: String,
        name: String,
        problem: String,
    },
}

pub const TEMPLATE_GROUP: &str = "templates.gatekeeper.sh";
pub const CONSTRAINT_GROUP: &str = "constraints.gatekeeper.sh";

/// Whether a document is a ConstraintTemplate (`templates.gatekeeper.sh/v1` or `v1beta1`).
pub fn is_template(doc: &Json) -> bool {
    doc["kind"] == "ConstraintTemplate"
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("{TEMPLATE_GROUP}/")))
}

/// Whether a document is a Constraint (`constraints.gatekeeper.sh/...`).
pub fn is_constraint(doc: &Json) -> bool {
    doc["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with(&format!("{CONSTRAINT_GROUP}/")))
}

/// A compiled ConstraintTemplate.
#[derive(Clone)]
pub struct Template {
    pub name: String,
    /// The constraint kind it defines (`spec.crd.spec.names.kind`).
    pub kind: String,
    /// `data.<package>.violation`.
    query: String,
    /// Its Rego and then its libs, as written (before `dialect`): for running the same
    /// template under another engine.
    sources: Arc<[String]>,
    engine: Engine,
    /// The inventory last loaded into `engine`.
    inventory: Option<Json>,
    /// `spec.crd.spec.validation.openAPIV3Schema`: what its constraints' parameters must be.
    schema: Json,
    /// Whether its Rego may read `data.inventory` (a referential template): only those
    /// are given the inventory, whose every change re-prepares the engine. Erring
    /// towards yes: any mention of `inventory` or a computed `data[...]` reference.
    referential: bool,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// One entry of a template's `violation` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub msg: String,
    pub details: Json,
}

impl Template {
    /// Compiles a ConstraintTemplate document (`targets[].rego`, or the Rego engine's
    /// entry of `targets[].code`, with its `libs`).
    pub fn compile(doc: &Json) -> Result<Self, GatekeeperError> {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let fail = |problem: String| GatekeeperError::Template {
            name: name.clone(),
            problem,
        };
        let kind = doc["spec"]["crd"]["spec"]["names"]["kind"]
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| fail("spec.crd.spec.names.kind is missing".into()))?
            .to_string();
        let target = doc["spec"]["targets"]
            .as_array()
            .and_then(|t| {
                t.iter()
                    .find(|t| t["target"] == "admission.k8s.gatekeeper.sh")
            })
            .ok_or_else(|| fail("no target admission.k8s.gatekeeper.sh".into()))?;
        let rego_source = target["code"]
            .as_array()
            .and_then(|code| code.iter().find(|c| c["engine"] == "Rego"))
            .map(|c| &c["source"]);
        let (rego, libs) = match rego_source {
            Some(source) => (&source["rego"], &source["libs"]),
            None => (&target["rego"], &target["libs"]),
        };
        // Gatekeeper reads `targets[].rego` as Rego v0; the Rego engine's `code` entry may
        // say `version: v1`.
        let v0 = match rego_source.map(|s| &s["version"]) {
            None | Some(Json::Null) => true,
            Some(v) if v == "v0" => true,
            Some(v) if v == "v1" => false,
            Some(other) => return Err(fail(format!("Rego version {other} is not v0 or v1"))),
        };
        let rego = rego
            .as_str()
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                fail("the target has no Rego (a CEL-only template is not supported)".into())
            })?;
        let package = package_of(rego).ok_or_else(|| fail("its Rego has no package".into()))?;
        let mut engine = Engine::new();
        engine.set_rego_v0(v0);
        engine
            .add_policy(format!("{name}.rego"), dialect::as_opa_reads_it(rego))
            .map_err(|e| fail(rego_error(&e)))?;
        let mut sources = vec![rego.to_string()];
        for (i, lib) in libs.as_array().into_iter().flatten().enumerate() {
            let lib = lib.as_str().unwrap_or_default();
            engine
                .add_policy(format!("{name}.lib{i}.rego"), dialect::as_opa_reads_it(lib))
                .map_err(|e| fail(rego_error(&e)))?;
            sources.push(lib.to_string());
        }
        Ok(Self {
            name,
            kind,
            query: format!("data.{package}.violation"),
            sources: sources.into(),
            engine,
            inventory: None,
            schema: doc["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"].clone(),
            referential: std::iter::once(rego)
                .chain(
                    libs.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Json::as_str),
                )
                .any(|r| r.contains("inventory") || r.contains("data[")),
        })
    }

    /// The query for its violations: `data.<package>.violation`.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Its Rego, then its libs, as the template writes them (Rego v0 unless its `code`
    /// entry says v1): to run the same template under OPA.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// A constraint of this template with its parameters checked against the template's
    /// schema and its defaults filled in, as the API server admits a constraint.
    pub fn admit(&self, mut constraint: Constraint) -> Result<Constraint, GatekeeperError> {
        let parameters =
            schema::check(&self.schema, &constraint.parameters).map_err(|problem| {
                GatekeeperError::Constraint {
                    kind: constraint.kind.clone(),
                    name: constraint.name.clone(),
                    problem,
                }
            })?;
        constraint.parameters_value = Value::from(parameters.clone());
        constraint.parameters = parameters;
        Ok(constraint)
    }

    /// The violations for one review with one constraint's parameters and the inventory.
    pub fn violations(
        &mut self,
        review: &Json,
        parameters: &Json,
        inventory: &Json,
    ) -> Result<Vec<Violation>, String> {
        self.set_inventory(inventory)?;
        self.evaluate(Value::from(review.clone()), Value::from(parameters.clone()))
    }

    /// Replaces `data.inventory` (the engine re-prepares after a data change: done only
    /// when the inventory changes, never per request).
    fn set_inventory(&mut self, inventory: &Json) -> Result<(), String> {
        if self.inventory.as_ref() == Some(inventory) {
            return Ok(());
        }
        let mut data = serde_json::Map::new();
        data.insert("inventory".into(), inventory.clone());
        self.engine.clear_data();
        self.engine
            .add_data(Value::from(Json::Object(data)))
            .map_err(|e| e.to_string())?;
        self.inventory = Some(inventory.clone());
        Ok(())
    }

    /// One evaluation, with the review and parameters already as policy values (shared
    /// by every constraint of a request).
    fn evaluate(&mut self, review: Value, parameters: Value) -> Result<Vec<Violation>, String> {
        let mut input = std::collections::BTreeMap::new();
        input.insert(Value::from("review"), review);
        input.insert(Value::from("parameters"), parameters);
        self.engine.set_input(Value::from(input));
        let value = self
            .engine
            .eval_rule(self.query.clone())
            .map_err(|e| rego_error(&e))?;
        let items = match &value {
            Value::Set(items) => items.iter().cloned().collect::<Vec<_>>(),
            Value::Array(items) => items.iter().cloned().collect(),
            Value::Undefined | Value::Null => Vec::new(),
            other => return Err(format!("violation must be a set, not {other}")),
        };
        Ok(items
            .into_iter()
            .map(|item| Violation {
                msg: item["msg"]
                    .as_string()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                details: serde_json::to_value(&item["details"]).unwrap_or(Json::Null),
            })
            .collect())
    }
}

/// `file:line:col: message`, without regorus's multi-line source excerpt.
fn rego_error(e: &anyhow::Error) -> String {
    let formatted = crate::text::format_rego_error(&e.to_string());
    crate::text::one_line(formatted.lines().next().unwrap_or_default())
}

/// The cluster's templates and constraints that can be served beside the folder's
/// (`folder`), each checked on its own as the API server and Gatekeeper check them: one
/// that does not compile, whose kind another template already defines, whose template is
/// missing or whose parameters do not fit is refused with its name and the reason, and
/// the others are served. (A folder's bad document refuses the folder's change instead:
/// its author is there to fix it, and the last good policies keep serving meanwhile.)
pub fn screen(
    folder: &[(String, Json)],
    cluster: &[(String, Json)],
) -> (Vec<(String, Json)>, Vec<String>) {
    let mut kinds: Vec<(String, Template)> = folder
        .iter()
        .filter(|(_, d)| is_template(d))
        .filter_map(|(_, d)| Template::compile(d).ok())
        .map(|t| ("the policy folder".to_string(), t))
        .collect();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for (at, doc) in cluster.iter().filter(|(_, d)| is_template(d)) {
        match Template::compile(doc) {
            Err(e) => refused.push(format!("{at}: {e}")),
            Ok(t) => match kinds.iter().find(|(_, k)| k.kind == t.kind) {
                Some((owner, other)) => refused.push(format!(
                    "{at}: ConstraintTemplate {}: kind {} is already defined by ConstraintTemplate {} in {owner}",
                    t.name, t.kind, other.name
                )),
                None => {
                    accepted.push((at.clone(), doc.clone()));
                    kinds.push(("the cluster".to_string(), t));
                }
            },
        }
    }
    for (at, doc) in cluster.iter().filter(|(_, d)| is_constraint(d)) {
        let checked = Constraint::parse(doc).and_then(|c| {
            match kinds.iter().find(|(_, t)| t.kind == c.kind) {
                Some((_, template)) => template.admit(c).map(|_| ()),
                None => Err(GatekeeperError::Constraint {
                    problem: format!("no ConstraintTemplate defines kind {}", c.kind),
                    kind: c.kind,
                    name: c.name,
                }),
            }
        });
        match checked {
            Ok(()) => accepted.push((at.clone(), doc.clone())),
            Err(e) => refused.push(format!("{at}: {e}")),
        }
    }
    (accepted, refused)
}

/// The annotation that turns a constraint's violations into findings a just-in-time
/// grant can lift (`require_grant`): `jitguard.dev/exception: grant`.
pub const EXCEPTION_ANNOTATION: &str = "jitguard.dev/exception";

/// The Gatekeeper part of a policy snapshot: every template with its constraints.
#[derive(Clone, Default)]
pub struct Pack {
    entries: Vec<(Template, Arc<[Constraint]>)>,
}

/// What one constraint said about one request.
#[derive(Debug)]
pub struct Outcome<'a> {
    pub constraint: &'a Constraint,
    pub result: Result<Vec<Violation>, String>,
}

impl Pack {
    /// Builds the pack from the ConstraintTemplate and Constraint documents found in the
    /// policy folder (`(file, document)`). A constraint without its template, or a
    /// template or constraint that does not compile, refuses the whole change with its
    /// file and name, as a Rego error does.
    pub fn build(documents: &[(String, Json)], budget: Duration) -> Result<Self, String> {
        let mut templates = Vec::new();
        for (file, doc) in documents.iter().filter(|(_, d)| is_template(d)) {
            let mut template = Template::compile(doc).map_err(|e| format!("{file}: {e}"))?;
            template
                .engine
                .set_execution_timer_config(ExecutionTimerConfig {
                    limit: budget.max(Duration::from_millis(1)),
                    check_interval: std::num::NonZeroU32::MIN.saturating_add(31),
                });
            if templates
                .iter()
                .any(|(t, _): &(Template, Vec<Constraint>)| t.kind == template.kind)
            {
                return Err(format!(
                    "{file}: a second ConstraintTemplate defines kind {}",
                    template.kind
                ));
            }
            // The server has no inventory yet: loaded once, not per request.
            template
                .set_inventory(&inventory(&[]))
                .map_err(|e| format!("{file}: {e}"))?;
            templates.push((template, Vec::new()));
        }
        for (file, doc) in documents.iter().filter(|(_, d)| is_constraint(d)) {
            let constraint = Constraint::parse(doc).map_err(|e| format!("{file}: {e}"))?;
            let Some((template, list)) = templates
                .iter_mut()
                .find(|(t, _)| t.kind == constraint.kind)
            else {
                return Err(format!(
                    "{file}: {} {}: no ConstraintTemplate in the policy folder defines kind {}",
                    constraint.kind, constraint.name, constraint.kind
                ));
            };
            list.push(
                template
                    .admit(constraint)
                    .map_err(|e| format!("{file}: {e}"))?,
            );
        }
        Ok(Self {
            entries: templates
                .into_iter()
                .map(|(t, c)| (t, Arc::from(c)))
                .collect(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces `data.inventory` for the referential templates.
    pub fn set_inventory(&mut self, inventory: &Json) -> Result<(), String> {
        for (template, _) in self.entries.iter_mut().filter(|(t, _)| t.referential) {
            template
                .set_inventory(inventory)
                .map_err(|e| format!("ConstraintTemplate {}: {e}", template.name))?;
        }
        Ok(())
    }

    /// Constraint names, for metrics and logs.
    pub fn constraint_names(&self) -> Vec<&str> {
        self.entries
            .iter()
            .flat_map(|(_, cs)| cs.iter().map(|c| c.name.as_str()))
            .collect()
    }

    /// Evaluates each constraint whose match selects the request (`review`: the
    /// AdmissionRequest), and only those: Gatekeeper's semantics.
    pub fn evaluate(
        &mut self,
        review: &Value,
        namespace_labels: Option<&Json>,
    ) -> Vec<Outcome<'_>> {
        // What matching reads, taken out of the review once; the review itself goes to
        // every template as it is (a policy value, cloned by reference), never converted.
        let matched = match_fields(review);
        let empty = Json::Object(serde_json::Map::new());
        let target = target_of(&matched, namespace_labels, &empty);
        let mut out = Vec::new();
        for (template, constraints) in &mut self.entries {
            for constraint in constraints.iter() {
                if constraint.matcher.selects(&target) {
                    let result =
                        template.evaluate(review.clone(), constraint.parameters_value.clone());
                    out.push(Outcome { constraint, result });
                }
            }
        }
        out
    }
}

/// The parts of an AdmissionRequest that `spec.match` reads (kind, namespace, name, and
/// the object's name and labels), as the JSON [`Constraint::selects`] takes.
fn match_fields(review: &Value) -> Json {
    let json = |v: &Value| match v {
        Value::Undefined => Json::Null,
        v => serde_json::to_value(v).unwrap_or(Json::Null),
    };
    let metadata = |key: &str| {
        let m = &review[key]["metadata"];
        serde_json::json!({"name": json(&m["name"]), "labels": json(&m["labels"])})
    };
    let object = match &review["object"] {
        Value::Object(_) => "object",
        _ => "oldObject",
    };
    serde_json::json!({
        "kind": json(&review["kind"]),
        "namespace": json(&review["namespace"]),
        "name": json(&review["name"]),
        "object": {"metadata": metadata(object)},
    })
}

/// What `spec.match` reads of a review, read once for every constraint (`empty`: the
/// labels of an object that has none).
fn target_of<'a>(
    review: &'a Json,
    namespace_labels: Option<&'a Json>,
    empty: &'a Json,
) -> matching::Target<'a> {
    let object = if review["object"].is_object() {
        &review["object"]
    } else {
        &review["oldObject"]
    };
    let labels = match &object["metadata"]["labels"] {
        Json::Null => empty,
        l => l,
    };
    matching::Target {
        group: review["kind"]["group"].as_str().unwrap_or_default(),
        kind: review["kind"]["kind"].as_str().unwrap_or_default(),
        namespace: review["namespace"].as_str().unwrap_or_default(),
        name: review["name"]
            .as_str()
            .or_else(|| object["metadata"]["name"].as_str())
            .unwrap_or_default(),
        labels,
        namespace_labels,
    }
}

/// `package a.b` → `a.b`.
fn package_of(rego: &str) -> Option<String> {
    rego.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.trim().to_string())
}

/// What a constraint does with its violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deny,
    Warn,
    DryRun,
}

/// A Constraint: which requests (`spec.match`), with which parameters, and what its
/// violations do.
#[derive(Clone, Debug)]
pub struct Constraint {
    pub kind: String,
    pub name: String,
    pub parameters: Json,
    pub action: Action,
    pub matcher: matching::Match,
    /// Annotated `jitguard.dev/exception: grant`: a covering live grant lifts it.
    pub grant_exception: bool,
    /// `parameters` as a policy value, converted once.
    parameters_value: Value,
}

impl Constraint {
    /// Whether `spec.match` selects the review's object (`namespace_labels`: those of
    /// its namespace, where known).
    pub fn selects(&self, review: &Json, namespace_labels: Option<&Json>) -> bool {
        let empty = Json::Object(serde_json::Map::new());
        self.matcher
            .selects(&target_of(review, namespace_labels, &empty))
    }

    pub fn parse(doc: &Json) -> Result<Self, GatekeeperError> {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let fail = |problem: String| GatekeeperError::Constraint {
            kind: kind.clone(),
            name: name.clone(),
            problem,
        };
        let action = match doc["spec"]["enforcementAction"].as_str().unwrap_or("deny") {
            "deny" | "" => Action::Deny,
            "warn" => Action::Warn,
            "dryrun" => Action::DryRun,
            other => {
                return Err(fail(format!(
                    "enforcementAction {other:?} is not deny, warn or dryrun"
                )))
            }
        };
        let matcher = matching::Match::parse(&doc["spec"]["match"]).map_err(fail)?;
        let grant_exception = match doc["metadata"]["annotations"][EXCEPTION_ANNOTATION].as_str() {
            None => false,
            Some("grant") => true,
            Some(other) => {
                return Err(fail(format!(
                    "annotation {EXCEPTION_ANNOTATION}: {other:?} is not \"grant\""
                )))
            }
        };
        let parameters = match &doc["spec"]["parameters"] {
            Json::Null => Json::Object(serde_json::Map::new()),
            p => p.clone(),
        };
        Ok(Self {
            grant_exception,
            parameters_value: Value::from(parameters.clone()),
            parameters,
            kind,
            name,
            action,
            matcher,
        })
    }
}

/// The review Gatekeeper evaluates for a bare object (audit, `gator`): the object as a
/// CREATE by nobody in particular. An AdmissionReview is used as it is.
pub fn review_of(object: &Json) -> Json {
    if object["kind"] == "AdmissionReview" {
        return object["request"].clone();
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    serde_json::json!({
        "kind": {"group": group, "version": version, "kind": object["kind"]},
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"],
        "operation": "CREATE",
        "object": object,
        "userInfo": {"username": "", "groups": []},
        "dryRun": false,
    })
}

/// `data.inventory` as Gatekeeper's sync fills it: namespaced objects under
/// `namespace[ns][apiVersion][kind][name]`, the others under `cluster[apiVersion][kind][name]`.
pub fn inventory(objects: &[Json]) -> Json {
    let mut cluster = serde_json::Map::new();
    let mut namespaced = serde_json::Map::new();
    for o in objects {
        let api_version = o["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let root = match o["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() => namespaced
                .entry(ns.to_string())
                .or_insert_with(|| Json::Object(serde_json::Map::new())),
            _ => {
                let entry = cluster
                    .entry(api_version.clone())
                    .or_insert_with(|| Json::Object(serde_json::Map::new()));
                insert(entry, &[&kind, &name], o.clone());
                continue;
            }
        };
        insert(root, &[&api_version, &kind, &name], o.clone());
    }
    serde_json::json!({"cluster": cluster, "namespace": namespaced})
}

fn insert(at: &mut Json, path: &[&str], value: Json) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = at;
    for key in parents {
        if !here.is_object() {
            *here = Json::Object(serde_json::Map::new());
        }
        let Some(map) = here.as_object_mut() else {
            return;
        };
        here = map
            .entry((*key).to_string())
            .or_insert_with(|| Json::Object(serde_json::Map::new()));
    }
    if let Some(map) = here.as_object_mut() {
        map.insert((*last).to_string(), value);
    }
}

#[cfg(test)]
mod tests;

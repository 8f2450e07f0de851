//! Which packages a request can concern, read from the policies themselves, so that the
//! others are not evaluated for it.
//!
//! Most contract rules open with tests of what the request is about, written inline:
//! `input.request.resource.resource == "ingresses"`, `input.request.operation in {"CREATE",
//! "UPDATE"}`. Such a test uses no variable, so regorus schedules it in its place before
//! everything else in the body, and stops the body at the first one that fails; a
//! comparison of a reference with a string can neither raise an error nor depend on
//! another rule. A body whose leading tests a request fails therefore yields nothing and
//! raises nothing, and a package all of whose contract-rule bodies are excluded that way
//! says nothing about the request: evaluating it only costs time (on a Pod CREATE the
//! ingress package cost about 190 000 instructions, all of it rule bookkeeping).
//!
//! The tests are read at load time from regorus's parsed modules, never declared beside
//! the Rego, so they cannot drift from it. Whatever this reading does not understand (a
//! body that opens with anything else, a `with`, a default, a rule or data document at a
//! prefix of the contract path) keeps its package evaluated for every request; the
//! property test in `tests/integration/relevance.rs` holds that skipping never changes
//! an evaluation.

use std::collections::{BTreeSet, HashMap};

use regorus::Value;
use serde_json::Value as Json;

/// At most this many combinations of tested values are enumerated to find the sets of
/// packages requests can need; past it, every request evaluates every package.
const MAX_COMBINATIONS: usize = 1 << 17;

/// One leading test: the string at `input.request.<field>` is one of `values`.
#[derive(Clone, Debug, PartialEq)]
struct Test {
    field: usize,
    values: BTreeSet<String>,
}

/// The packages (by index) a request can concern, as a bit set.
pub(super) type Mask = u64;

/// What the packages' contract rules test first, and the evaluation rule for each set of
/// packages a request can concern.
#[derive(Clone, Debug, Default)]
pub(super) struct Relevance {
    /// Paths under `input.request` that some test reads.
    fields: Vec<Vec<String>>,
    /// Per package: `None` if it must always be evaluated, otherwise the leading tests of
    /// each of its contract-rule bodies (a body with no test cannot be excluded, so it
    /// makes the package `None`).
    packages: Vec<Option<Vec<Vec<Test>>>>,
    /// The generated rule that evaluates exactly the packages of a mask.
    rules: HashMap<Mask, String>,
}

impl Relevance {
    /// Reads the tests from regorus's AST (`Engine::get_ast_as_json`) for `packages`
    /// (their path components) and the contract rule names. `data` holds the data
    /// documents, each nested under its path.
    pub(super) fn read(
        ast: &Json,
        packages: &[Vec<String>],
        contract: &[&str],
        data: &[Value],
    ) -> Self {
        // Without the modules, nothing is known: every package is evaluated.
        let Some(modules) = ast.as_array().filter(|_| packages.len() <= 64) else {
            return Self::default();
        };
        let rules = rules_of(modules);
        let mut fields = Vec::new();
        let packages = packages
            .iter()
            .map(|package| {
                let mut bodies = Vec::new();
                for name in contract {
                    let mut path = package.clone();
                    path.push((*name).to_string());
                    if data.iter().any(|d| defined_at(d, &path)) {
                        return None;
                    }
                    for rule in &rules {
                        if rule.path == path {
                            for body in rule.bodies.as_ref()? {
                                let tests = leading_tests(body, &mut fields);
                                if tests.is_empty() {
                                    return None;
                                }
                                bodies.push(tests);
                            }
                        } else if rule.path.starts_with(&path) || path.starts_with(&rule.path) {
                            // A rule inside the contract rule's value or holding it whole.
                            return None;
                        }
                    }
                }
                // Nothing read for a package with contract rules: whatever happened, it
                // is not evidence that they can be skipped.
                (!bodies.is_empty()).then_some(bodies)
            })
            .collect();
        Self {
            fields,
            packages,
            rules: HashMap::new(),
        }
    }

    /// Every mask some request can produce, found by trying each combination of the
    /// tested values (and of none of them) over the tested fields. Empty when there are
    /// too many combinations: every request then evaluates every package.
    pub(super) fn reachable_masks(&self) -> BTreeSet<Mask> {
        let mut domains: Vec<Vec<Option<&str>>> = vec![vec![None]; self.fields.len()];
        for tests in self.packages.iter().flatten().flatten() {
            for test in tests {
                if let Some(domain) = domains.get_mut(test.field) {
                    domain.extend(test.values.iter().map(|v| Some(v.as_str())));
                }
            }
        }
        for domain in &mut domains {
            domain.sort_unstable();
            domain.dedup();
        }
        let combinations = domains
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(d.len()))
            .unwrap_or(usize::MAX);
        let mut masks = BTreeSet::new();
        if self.packages.is_empty() || combinations > MAX_COMBINATIONS {
            return masks;
        }
        let mut values = vec![None; domains.len()];
        for mut n in 0..combinations {
            for (slot, domain) in values.iter_mut().zip(&domains) {
                *slot = domain.get(n % domain.len()).copied().flatten();
                n /= domain.len();
            }
            masks.insert(self.mask_of(&values));
        }
        masks
    }

    /// Registers the generated rule that evaluates a mask's packages.
    pub(super) fn set_rule(&mut self, mask: Mask, rule: String) {
        self.rules.insert(mask, rule);
    }

    /// The generated rule for this input's packages, or `None` to evaluate them all.
    pub(super) fn rule_for(&self, input: &Value) -> Option<&str> {
        let mask = self.mask_for(input)?;
        self.rules.get(&mask).map(String::as_str)
    }

    /// The packages an evaluation of this input runs; `None` for all of them.
    pub(super) fn mask_for(&self, input: &Value) -> Option<Mask> {
        if self.rules.is_empty() {
            return None;
        }
        let request = &input["request"];
        let values: Vec<Option<&str>> = self
            .fields
            .iter()
            .map(|path| {
                let value = path.iter().fold(request, |v, field| &v[field.as_str()]);
                match value {
                    Value::String(s) => Some(&**s),
                    _ => None,
                }
            })
            .collect();
        let mask = self.mask_of(&values);
        self.rules.contains_key(&mask).then_some(mask)
    }

    /// The packages that must be evaluated when the tested fields hold `values` (`None`:
    /// absent or not a string, which no test accepts).
    fn mask_of(&self, values: &[Option<&str>]) -> Mask {
        let mut mask = 0;
        for (i, package) in self.packages.iter().enumerate() {
            let needed = match package {
                None => true,
                Some(bodies) => bodies.iter().any(|tests| {
                    tests.iter().all(|t| {
                        values
                            .get(t.field)
                            .copied()
                            .flatten()
                            .is_some_and(|v| t.values.contains(v))
                    })
                }),
            };
            if needed {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// Whether the package at `index` can ever be skipped.
    #[cfg(test)]
    fn guarded(&self, index: usize) -> bool {
        matches!(self.packages.get(index), Some(Some(_)))
    }
}

/// A rule's full path (package and head) and its bodies, `None` when it cannot be read
/// as a multi-value rule with plain bodies.
struct RuleInfo {
    path: Vec<String>,
    bodies: Option<Vec<Json>>,
}

/// Every rule of every module. A rule this cannot read is kept with its path as far as
/// it is known (the package's, or none at all) and no bodies: whatever contract rule it
/// may be, its package is then never skipped. Dropping it instead would skip a package
/// for a rule nobody read.
fn rules_of(modules: &[Json]) -> Vec<RuleInfo> {
    let unreadable = |path: Vec<String>| RuleInfo { path, bodies: None };
    let mut out = Vec::new();
    for module in modules {
        let ast = &module["ast"];
        let Some(package) = ast
            .get("package")
            .and_then(|p| p.get("refr"))
            .and_then(static_path)
        else {
            out.push(unreadable(Vec::new()));
            continue;
        };
        let Some(rules) = ast.get("rules").and_then(Json::as_array) else {
            out.push(unreadable(package));
            continue;
        };
        for rule in rules {
            let (spec, default) = match (rule.get("Spec"), rule.get("Default")) {
                (Some(spec), _) => (spec, false),
                (None, Some(default)) => (default, true),
                _ => {
                    out.push(unreadable(package.clone()));
                    continue;
                }
            };
            let (refr, set) = match spec.get("head") {
                Some(head) => match (head.get("Set"), head.get("Compr"), head.get("Func")) {
                    (Some(h), _, _) => (&h["refr"], true),
                    (_, Some(h), _) => (&h["refr"], false),
                    (_, _, Some(h)) => (&h["refr"], false),
                    _ => {
                        out.push(unreadable(package.clone()));
                        continue;
                    }
                },
                None => (&spec["refr"], false),
            };
            let mut path = package.clone();
            // A multi-value rule's head is a static path (`deny`, also for v0's
            // `deny[msg]`); anything else is read no further than its static prefix.
            let static_head = static_path(refr);
            let plain = static_head.is_some();
            path.extend(static_head.unwrap_or_else(|| head_path(refr)));
            let bodies = spec["bodies"]
                .as_array()
                .filter(|b| set && plain && !default && !b.is_empty())
                .cloned();
            out.push(RuleInfo { path, bodies });
        }
    }
    out
}

/// `a.b["c"]` as components; `None` past the first non-string index.
fn static_path(expr: &Json) -> Option<Vec<String>> {
    if let Some(var) = expr.get("Var") {
        return Some(vec![var["value"].as_str()?.to_string()]);
    }
    if let Some(dot) = expr.get("RefDot") {
        let mut path = static_path(&dot["refr"])?;
        path.push(dot["field"].get(1)?.as_str()?.to_string());
        return Some(path);
    }
    if let Some(brack) = expr.get("RefBrack") {
        let mut path = static_path(&brack["refr"])?;
        path.push(string_literal(&brack["index"])?.to_string());
        return Some(path);
    }
    None
}

/// A rule head's path as far as it is static (`a.b[x].c` is `a.b`).
fn head_path(refr: &Json) -> Vec<String> {
    if let Some(path) = static_path(refr) {
        return path;
    }
    for kind in ["RefBrack", "RefDot"] {
        if let Some(inner) = refr.get(kind) {
            return head_path(&inner["refr"]);
        }
    }
    Vec::new()
}

fn string_literal(expr: &Json) -> Option<&str> {
    expr.get("String")
        .or_else(|| expr.get("RawString"))
        .and_then(|s| s["value"].as_str())
}

/// The body's leading statements that test a field of `input.request` against strings.
fn leading_tests(body: &Json, fields: &mut Vec<Vec<String>>) -> Vec<Test> {
    if body["assign"].is_object() || body["is_else"] == Json::Bool(true) {
        return Vec::new();
    }
    let mut tests = Vec::new();
    let stmts = body.get("query").and_then(|q| q.get("stmts"));
    for stmt in stmts.and_then(Json::as_array).into_iter().flatten() {
        let plain = stmt
            .get("with_mods")
            .and_then(Json::as_array)
            .is_none_or(Vec::is_empty);
        let Some(expr) = stmt["literal"].get("Expr").map(|e| &e["expr"]) else {
            break;
        };
        let Some((path, values)) = plain.then(|| test_of(expr)).flatten() else {
            break;
        };
        let field = match fields.iter().position(|f| *f == path) {
            Some(i) => i,
            None => {
                fields.push(path);
                fields.len() - 1
            }
        };
        tests.push(Test { field, values });
    }
    tests
}

/// `input.request.x == "s"` (either way round) or `input.request.x in {"s", ...}` (a set
/// or an array of strings): the field's path under `input.request`, and the strings.
fn test_of(expr: &Json) -> Option<(Vec<String>, BTreeSet<String>)> {
    if let Some(b) = expr.get("BoolExpr") {
        if b["op"] != "Eq" {
            return None;
        }
        let (field, literal) = match (request_field(&b["lhs"]), request_field(&b["rhs"])) {
            (Some(f), None) => (f, string_literal(&b["rhs"])?),
            (None, Some(f)) => (f, string_literal(&b["lhs"])?),
            _ => return None,
        };
        return Some((field, BTreeSet::from([literal.to_string()])));
    }
    let m = expr.get("Membership")?;
    if !m["key"].is_null() {
        return None;
    }
    let field = request_field(&m["value"])?;
    let collection = &m["collection"];
    let items = collection
        .get("Set")
        .or_else(|| collection.get("Array"))?
        .get("items")?
        .as_array()?;
    let values = items
        .iter()
        .map(|item| string_literal(item).map(str::to_string))
        .collect::<Option<BTreeSet<_>>>()?;
    Some((field, values))
}

/// The path of `input.request.a.b` under `input.request` (at least one component).
fn request_field(expr: &Json) -> Option<Vec<String>> {
    let path = static_path(expr)?;
    match path.as_slice() {
        [input, request, rest @ ..] if input == "input" && request == "request" => {
            (!rest.is_empty()).then(|| rest.to_vec())
        }
        _ => None,
    }
}

/// Whether a data document defines anything at `path` or at a prefix of it.
fn defined_at(document: &Value, path: &[String]) -> bool {
    let mut value = document;
    for component in path {
        match value {
            Value::Object(fields) => match fields.get(&Value::from(component.as_str())) {
                Some(inner) => value = inner,
                None => return false,
            },
            Value::Undefined => return false,
            _ => return true,
        }
    }
    true
}

#[cfg(test)]
mod tests;

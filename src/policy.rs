//! Policies: a folder of Rego modules and data documents, compiled once into an immutable
//! [`PolicySet`] snapshot. The server swaps snapshots atomically on reload; every eval
//! worker clones the snapshot's prepared engine once and reuses it for every request.
//!
//! The policy contract (see README "Writing policies"): every package may define the
//! multi-value rules `deny`, `violation` (Gatekeeper alias of deny), `require_grant`, `warn`
//! and `patch`, and the single-value rule `enforcement`. jitguard collects them from every
//! package in one evaluation of a generated aggregate module.

mod access;
mod aggregate;
mod contract;
mod relevance;
pub mod source;
pub mod testing;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::text::one_line;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

pub use access::{AccessPolicy, AccessPolicyError, Requirement};
use aggregate::reference;
use contract::package_result;
pub use source::{LoadError, Sources};

/// Multi-value rules of the contract, in the order they are reported.
const FINDING_RULES: [RuleKind; 5] = [
    RuleKind::Deny,
    RuleKind::Violation,
    RuleKind::RequireGrant,
    RuleKind::Warn,
    RuleKind::Patch,
];

/// The package whose rules parameterise the approval workflow (see `crate::access`).
pub const ACCESS_PACKAGE: &str = "jitguard.access";

/// The workflow parameters the access package may define.
const ACCESS_RULES: [&str; 8] = [
    "approval_requirements",
    "auto_approve",
    "break_glass_groups",
    "break_glass_max_duration",
    "admin_groups",
    "pending_ttl",
    "allow_escalating_roles",
    "notify",
];

const ACCESS_RULE: &str = "data.__jitguard.access";

/// The generated package that gathers every package's contract rules in one evaluation.
/// Reserved: user packages may not use it.
const AGGREGATE_PACKAGE: &str = "__jitguard";
const AGGREGATE_RULE: &str = "data.__jitguard.findings";

/// Which contract rule produced a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Deny,
    Violation,
    RequireGrant,
    Warn,
    Patch,
}

impl RuleKind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Violation => "violation",
            Self::RequireGrant => "require_grant",
            Self::Warn => "warn",
            Self::Patch => "patch",
        }
    }
}

/// How a package's deny and require_grant findings take effect (Gatekeeper's
/// enforcementAction, Kyverno's validationFailureAction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Findings deny the request.
    #[default]
    Deny,
    /// Findings are logged as would-deny and returned as warnings; nothing is enforced.
    Warn,
    /// As `warn`: the rollout mode for a new policy, recorded as `audit`.
    Audit,
}

impl Enforcement {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::Audit => "audit",
        }
    }

    pub const fn enforced(self) -> bool {
        matches!(self, Self::Deny)
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "deny" | "enforce" => Some(Self::Deny),
            "warn" => Some(Self::Warn),
            "audit" | "dryrun" => Some(Self::Audit),
            _ => None,
        }
    }
}

/// One message from a contract rule. Rules may yield a string, or an object with a string
/// `msg` (Gatekeeper style) whose other fields are kept as `details`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Finding {
    pub rule: RuleKind,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Everything one package said about one request.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PackageResult {
    pub package: Arc<str>,
    pub enforcement: Enforcement,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<json_patch::PatchOperation>,
    /// A runtime error, a time-out or a broken contract: the package could not decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PackageResult {
    fn failed(package: Arc<str>, error: String) -> Self {
        Self {
            package,
            enforcement: Enforcement::Deny,
            findings: Vec::new(),
            patch: Vec::new(),
            error: Some(error),
        }
    }

    pub fn of_kind(&self, kind: RuleKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.rule == kind)
    }
}

/// The result of evaluating every package against one input.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub packages: Vec<PackageResult>,
}

/// A package found in the policy folder and the contract rules it declares.
#[derive(Clone, Debug)]
pub struct PackageInfo {
    pub name: Arc<str>,
    /// `data["a"]["b"]`: a reference that is valid whatever characters the path holds.
    reference: String,
    components: Vec<String>,
    declares: Vec<&'static str>,
}

impl PackageInfo {
    pub fn declares(&self, rule: &str) -> bool {
        self.declares.contains(&rule)
    }
}

/// Limits applied to every evaluation.
#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    /// Wall-clock budget of one evaluation (regorus's cooperative execution timer).
    pub budget: Duration,
    /// Leave out the packages a request cannot concern (see `relevance`). Off only to
    /// show that it changes nothing, and to measure what it saves.
    pub skip_unconcerned: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            budget: Duration::from_millis(250),
            skip_unconcerned: true,
        }
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// What a snapshot was compiled from: the policy folder's digest and that of the
/// Gatekeeper documents given beside it (0 for none, leaving the folder's).
pub fn combined_digest(folder: u64, gatekeeper: u64) -> u64 {
    folder ^ gatekeeper.rotate_left(17)
}

/// A compiled, immutable set of policies and data.
pub struct PolicySet {
    template: Engine,
    packages: Vec<PackageInfo>,
    /// Gatekeeper ConstraintTemplates and Constraints found in the folder.
    gatekeeper: crate::gatekeeper::Pack,
    /// Whether the access package defines workflow parameters.
    has_access: bool,
    /// The evaluation budget (`--eval-timeout`).
    budget: Duration,
    /// Which packages each request can concern, and the rule that evaluates just those.
    relevance: relevance::Relevance,
    generation: u64,
    digest: u64,
    files: usize,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("generation", &self.generation)
            .field("packages", &self.package_names())
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Reads and compiles the policy folder.
    pub fn load(root: &std::path::Path, options: EvalOptions) -> Result<Self, LoadError> {
        Self::compile(&Sources::read(root)?, options)
    }

    /// Compiles sources (tests excluded) into a snapshot ready to serve.
    pub fn compile(sources: &Sources, options: EvalOptions) -> Result<Self, LoadError> {
        Self::compile_with(sources, &[], options)
    }

    /// As [`PolicySet::compile`], with Gatekeeper templates and constraints from elsewhere
    /// (`(where, document)`: `dry-run`'s files) beside those of the folder.
    pub fn compile_with(
        sources: &Sources,
        gatekeeper: &[(String, serde_json::Value)],
        options: EvalOptions,
    ) -> Result<Self, LoadError> {
        let mut engine = new_engine(options);
        for module in &sources.modules {
            check_rule_shapes(module)?;
            engine
                .add_policy(module.display(), module.contents.clone())
                .map_err(|e| LoadError::compile(&e))?;
        }
        let documents = sources.add_data(&mut engine)?;
        let all = discover_packages(&engine)?;
        let access = all
            .iter()
            .find(|p| &*p.name == ACCESS_PACKAGE && ACCESS_RULES.iter().any(|r| p.declares(r)))
            .cloned();
        let packages: Vec<PackageInfo> = all.into_iter().filter(has_contract_rules).collect();
        if packages.is_empty() {
            return Err(LoadError::Empty(sources.root.clone()));
        }
        let mut relevance = if options.skip_unconcerned {
            // An AST regorus cannot render reads as no rules: every package is evaluated.
            let ast = engine
                .get_ast_as_json()
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default();
            let components: Vec<Vec<String>> =
                packages.iter().map(|p| p.components.clone()).collect();
            let contract: Vec<&str> = FINDING_RULES.iter().map(|k| k.name()).collect();
            relevance::Relevance::read(&ast, &components, &contract, &documents)
        } else {
            relevance::Relevance::default()
        };
        let (module, rules) =
            aggregate::module(&packages, access.as_ref(), &relevance.reachable_masks());
        for (mask, rule) in rules {
            relevance.set_rule(mask, rule);
        }
        engine
            .add_policy("<jitguard aggregate>".to_string(), module)
            .map_err(|e| LoadError::compile(&e))?;
        prepare(&mut engine)?;
        check_functions(&engine)?;
        let mut documents = sources.gatekeeper_documents()?;
        documents.extend_from_slice(gatekeeper);
        let pack = crate::gatekeeper::Pack::build(&documents, options.budget)
            .map_err(LoadError::Contract)?;
        Ok(Self {
            template: engine,
            gatekeeper: pack,
            has_access: access.is_some(),
            budget: options.budget,
            relevance,
            packages,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            digest: combined_digest(sources.digest, crate::gatekeeper::feed::digest(gatekeeper)),
            files: sources.modules.len(),
        })
    }

    /// Unique per compiled snapshot: workers compare it to know when to re-clone.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Hash of the sources this set was compiled from ([`combined_digest`]): the reloader
    /// compares it.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn packages(&self) -> &[PackageInfo] {
        &self.packages
    }

    /// Names what the set was compiled from where that is more than its sources (the
    /// cluster's Gatekeeper objects, some of them refused).
    pub fn set_digest(&mut self, digest: u64) {
        self.digest = digest;
    }

    /// The packages an evaluation of `input` runs: those it can concern (all of them with
    /// `skip_unconcerned` off).
    pub fn concerned_packages(&self, input: &Value) -> Vec<&str> {
        let mask = self.relevance.mask_for(input);
        self.packages
            .iter()
            .enumerate()
            .filter(|(i, _)| mask.is_none_or(|m| m & (1 << i) != 0))
            .map(|(_, p)| &*p.name)
            .collect()
    }

    pub fn package_names(&self) -> Vec<&str> {
        self.packages.iter().map(|p| &*p.name).collect()
    }

    /// The Gatekeeper constraints served beside the packages.
    pub fn constraint_names(&self) -> Vec<&str> {
        self.gatekeeper.constraint_names()
    }

    /// Fills Gatekeeper's `data.inventory` with these objects, for the templates that
    /// read it (before the set is shared: workers' engines are cloned from it).
    pub fn set_inventory(&mut self, objects: &[serde_json::Value]) -> Result<(), String> {
        self.gatekeeper
            .set_inventory(&crate::gatekeeper::inventory(objects))
    }

    pub fn module_count(&self) -> usize {
        self.files
    }

    /// A private engine for one worker thread. Cloning is paid once per snapshot and
    /// thread, never per request (a fresh clone's first evaluation is much slower).
    pub fn engine(self: &Arc<Self>) -> PolicyEngine {
        PolicyEngine {
            set: Arc::clone(self),
            engine: self.template.clone(),
            gatekeeper: self.gatekeeper.clone(),
        }
    }
}

/// A worker's own evaluator over one snapshot.
pub struct PolicyEngine {
    set: Arc<PolicySet>,
    engine: Engine,
    gatekeeper: crate::gatekeeper::Pack,
}

impl PolicyEngine {
    pub fn generation(&self) -> u64 {
        self.set.generation
    }

    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Replaces Gatekeeper's `data.inventory` in this worker's referential templates.
    pub fn set_inventory(&mut self, inventory: &serde_json::Value) -> Result<(), String> {
        self.gatekeeper.set_inventory(inventory)
    }

    /// Evaluates every package. Never fails: a package that cannot decide carries an
    /// error, which the decision turns into a deny (or an allow with `--on-error allow`).
    ///
    /// All packages are evaluated at once within half the budget. If that fails (an error,
    /// or a package running away with the time), they are evaluated one by one, each
    /// within its share of what is left: the package at fault fails alone and the others
    /// still decide. The whole stays within the budget.
    pub fn evaluate(&mut self, input: &Value) -> Evaluation {
        let mut evaluation = self.evaluate_packages(input);
        if !self.gatekeeper.is_empty() {
            evaluation
                .packages
                .extend(contract::constraint_results(&mut self.gatekeeper, input));
        }
        evaluation
    }

    fn evaluate_packages(&mut self, input: &Value) -> Evaluation {
        let started = Instant::now();
        let budget = self.set.budget;
        self.engine.set_input(input.clone());
        self.limit(budget / 2);
        let rule = self.set.relevance.rule_for(input).unwrap_or(AGGREGATE_RULE);
        let outcome = self.engine.eval_rule(rule.to_string());
        let deadline = started + budget;
        match outcome {
            Ok(Value::Array(results)) if results.len() == self.set.packages.len() => Evaluation {
                packages: self
                    .set
                    .packages
                    .iter()
                    .zip(results.iter())
                    .map(|(pkg, value)| package_result(pkg, value))
                    .collect(),
            },
            Ok(other) => {
                self.evaluate_each(&format!("unexpected aggregate result {other}"), deadline)
            }
            Err(e) => self.evaluate_each(&one_line(&e.to_string()), deadline),
        }
    }

    /// The wall-clock limit of the next evaluation (at least 1 ms: regorus checks the
    /// timer as it goes, and a zero limit would stop everything at once).
    fn limit(&mut self, limit: Duration) {
        self.engine
            .set_execution_timer_config(ExecutionTimerConfig {
                limit: limit.max(Duration::from_millis(1)),
                check_interval: TIMER_CHECK_INTERVAL,
            });
    }

    /// The approval workflow's parameters for an AccessRequest admission (`input` as for
    /// `evaluate`). Without an access package: the safe defaults of [`AccessPolicy`].
    pub fn access_policy(&mut self, input: &Value) -> Result<AccessPolicy, AccessPolicyError> {
        if !self.set.has_access {
            return Ok(AccessPolicy::default());
        }
        // The whole budget: the last evaluation may have left a package's share set.
        self.limit(self.set.budget);
        self.engine.set_input(input.clone());
        let value = self
            .engine
            .eval_rule(ACCESS_RULE.to_string())
            .map_err(|e| AccessPolicyError::Evaluation(runtime_error(&e)))?;
        AccessPolicy::from_value(&value)
    }

    /// Slow path after the aggregate failed: evaluate package by package so the error is
    /// attributed to the package that raised it and the others still decide, each within
    /// its share of the time left before `deadline`.
    fn evaluate_each(&mut self, aggregate_error: &str, deadline: Instant) -> Evaluation {
        tracing::debug!(
            error = aggregate_error,
            "aggregate evaluation failed; evaluating packages one by one"
        );
        let count = self.set.packages.len();
        let set = Arc::clone(&self.set);
        let packages = set
            .packages
            .iter()
            .enumerate()
            .map(|(i, pkg)| {
                // Time a package does not use goes to the ones after it.
                let left = deadline.saturating_duration_since(Instant::now());
                let share = left / u32::try_from(count - i).unwrap_or(u32::MAX);
                self.limit(share);
                match self
                    .engine
                    .eval_rule(format!("data.{AGGREGATE_PACKAGE}.p{i}"))
                {
                    Ok(Value::Undefined) => PackageResult::failed(
                        pkg.name.clone(),
                        "a contract rule is undefined: deny, violation, require_grant, warn and patch must be multi-value rules (`deny contains msg if { ... }`)".to_string(),
                    ),
                    Ok(value) => package_result(pkg, &value),
                    Err(e) if is_time_limit(&e) => {
                        PackageResult::failed(pkg.name.clone(), time_limit_message(&e))
                    }
                    Err(e) => PackageResult::failed(pkg.name.clone(), runtime_error(&e)),
                }
            })
            .collect();
        Evaluation { packages }
    }
}

/// How often regorus looks at the clock while evaluating (in steps).
const TIMER_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::MIN.saturating_add(31);

fn new_engine(options: EvalOptions) -> Engine {
    let mut engine = Engine::new();
    // Builtin errors are errors (OPA's --strict-builtin-errors, which is how the reference
    // engine in CI runs): a policy fed input it cannot handle fails closed instead of
    // silently finding nothing.
    engine.set_strict_builtin_errors(true);
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: options.budget,
        check_interval: TIMER_CHECK_INTERVAL,
    });
    engine
}

/// Forces regorus to analyse and schedule every module now (unsafe variables, unknown
/// functions, recursion...) so that such errors refuse the snapshot instead of surfacing
/// on the first request. The query evaluates no policy rule.
fn prepare(engine: &mut Engine) -> Result<(), LoadError> {
    engine
        .eval_query("true".to_string(), false)
        .map(|_| ())
        .map_err(|e| LoadError::compile(&e))
}

/// regorus's interpreter finds an unknown function only when it reaches the call, which
/// may be on some request long after the reload succeeded (OPA refuses such a module at
/// compile time). Its RVM compiler resolves every call up front: use it as a static
/// check. Only unknown-function errors count; constructs the RVM does not support yet
/// (`with`, some partial objects) are the interpreter's business, not errors.
fn check_functions(engine: &Engine) -> Result<(), LoadError> {
    use regorus::languages::rego::compiler::{Compiler, CompilerError};
    let Ok(compiled) = engine
        .clone()
        .compile_with_entrypoint(&AGGREGATE_RULE.into())
    else {
        return Ok(());
    };
    match Compiler::compile_from_policy(&compiled, &[AGGREGATE_RULE]) {
        // regorus reports a call to an unknown name (`sprintff`) as a general error with
        // this text, and one of a disabled builtin (`http.send`) with its own variant.
        Err(e)
            if matches!(
                e.error,
                CompilerError::UnknownBuiltinFunction { .. }
                    | CompilerError::UnknownFunction { .. }
            ) || matches!(&e.error, CompilerError::General { message } if message.contains("Unknown function")) =>
        {
            Err(LoadError::Compile(crate::text::format_rego_error(
                &e.to_string(),
            )))
        }
        _ => Ok(()),
    }
}

/// The contract rules are multi-value rules. One written as a single value (`deny :=
/// "x"`, `deny if { ... }`) is not a finding set: every request it matches would fail
/// closed on it. Refused at load, with its place, rather than found on a request.
fn check_rule_shapes(module: &source::SourceFile) -> Result<(), LoadError> {
    for (n, line) in module.contents.lines().enumerate() {
        let text = line.trim_start();
        for kind in FINDING_RULES {
            let Some(after) = text.strip_prefix(kind.name()) else {
                continue;
            };
            // `denylist := ...` is another rule; `deny contains` and `deny[msg]` are fine.
            let boundary = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
            let rest = after.trim_start();
            let single = rest.starts_with(":=")
                || (rest.starts_with('=') && !rest.starts_with("=="))
                || rest.starts_with('{')
                || rest
                    .strip_prefix("if")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '{'));
            if single && boundary {
                return Err(LoadError::Contract(format!(
                    "{}:{}:{}: `{}` must be a multi-value rule (`{} contains msg if {{ ... }}`); a single-value one is not a set of findings",
                    module.display(),
                    n + 1,
                    line.len() - text.len() + 1,
                    kind.name(),
                    kind.name(),
                )));
            }
        }
    }
    Ok(())
}

fn discover_packages(engine: &Engine) -> Result<Vec<PackageInfo>, LoadError> {
    let components = engine
        .get_policy_package_components()
        .map_err(|e| LoadError::compile(&e))?;
    let mut packages: Vec<PackageInfo> = Vec::new();
    for module in components {
        if module.components.first().map(String::as_str) == Some(AGGREGATE_PACKAGE) {
            return Err(LoadError::Contract(format!(
                "{}: package {AGGREGATE_PACKAGE} is reserved for jitguard; rename the package",
                module.source_file
            )));
        }
        let name: Arc<str> = module.components.join(".").into();
        let mut declared = Vec::new();
        for rule in FINDING_RULES
            .iter()
            .map(|k| k.name())
            .chain(std::iter::once("enforcement"))
            .chain(ACCESS_RULES)
        {
            let has = engine
                .has_declared_rule_rooted_at(&module.source_file, rule)
                .map_err(|e| LoadError::compile(&e))?;
            if has {
                declared.push(rule);
            }
        }
        match packages.iter_mut().find(|p| p.name == name) {
            Some(existing) => {
                for rule in declared {
                    if !existing.declares.contains(&rule) {
                        existing.declares.push(rule);
                    }
                }
            }
            None => packages.push(PackageInfo {
                reference: reference(&module.components),
                components: module.components,
                name,
                declares: declared,
            }),
        }
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

/// Packages with contract rules are evaluated on every request; packages that declare
/// none (libraries such as jitguard.lib) are only reached through those that use them.
fn has_contract_rules(p: &PackageInfo) -> bool {
    FINDING_RULES
        .iter()
        .map(|k| k.name())
        .chain(std::iter::once("enforcement"))
        .any(|r| p.declares(r))
}

fn is_time_limit(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<regorus::LimitError>(),
            Some(regorus::LimitError::TimeLimitExceeded { .. })
        )
    }) || e.to_string().contains("exceeded time limit")
}

/// A runtime error as `file:line:col: message`: regorus's text spans several lines (an
/// arrow, the source line, a caret), which made into one line reads as noise.
fn runtime_error(e: &anyhow::Error) -> String {
    let formatted = crate::text::format_rego_error(&e.to_string());
    one_line(formatted.lines().next().unwrap_or_default())
}

fn time_limit_message(e: &anyhow::Error) -> String {
    format!(
        "policy evaluation ran out of its time budget and was stopped ({}); simplify the policy or raise --eval-timeout",
        one_line(&e.to_string())
    )
}

#[cfg(test)]
mod tests;

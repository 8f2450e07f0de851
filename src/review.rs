//! One AdmissionReview from bytes to answer, synchronously: parse, look up the
//! requester's live grants, evaluate policies, decide, audit, encode. The server's
//! evaluation workers and `dry-run` / `verify` run exactly this code.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use jiff::Timestamp;
use regorus::Value;

use crate::access::admit;
use crate::admission::{self, AdmissionInput, ReviewError};
use crate::audit::{Audit, DecisionRecord};
use crate::decision::{self, Decision, Options, Webhook};
use crate::gatekeeper::feed::ClusterFeed;
use crate::grant::GrantCheck;
use crate::grant::{self, AccessRequest, GrantStore};
use crate::metrics::Metrics;
use crate::namespace::Namespaces;
use crate::policy::{Evaluation, PolicyEngine, PolicySet, RuleKind};
use crate::request::{Operation, RequestInfo};

/// What every worker shares: the current policies, the grant cache and the sinks.
#[derive(Clone)]
pub struct Reviewer {
    pub policies: Arc<ArcSwap<PolicySet>>,
    pub grants: GrantStore,
    /// Labels of the cluster's namespaces, shown to policies as `input.jit.namespace`.
    pub namespaces: Namespaces,
    pub options: Options,
    pub audit: Audit,
    pub metrics: Metrics,
    /// jitguard's own identity in the cluster (its service account's username): the
    /// only one the approval workflow lets set phase, approvedAt and expiresAt.
    pub controller: Arc<str>,
    /// The cluster's Gatekeeper objects; workers read its inventory.
    pub gatekeeper: ClusterFeed,
}

/// Why an offline reviewer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error(transparent)]
    Grants(#[from] grant::file::GrantFileError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Reviewer {
    /// For the offline commands (dry-run, verify): these policies, the grants of a file
    /// (or none), the server's default options, no audit. Errors name the file and line.
    pub fn offline(
        policies: Arc<ArcSwap<PolicySet>>,
        grants_file: Option<&std::path::Path>,
    ) -> Result<Self, OfflineError> {
        let namespaces = Namespaces::default();
        let grants = match grants_file {
            Some(path) => {
                let state = grant::file::read(path)?;
                for problem in state.problems() {
                    tracing::warn!("{}: {problem}", path.display());
                }
                namespaces.replace(&state.namespaces);
                GrantStore::of(grant::GrantIndex::from_resources(&state.grants))
            }
            None => GrantStore::empty_synced(),
        };
        Ok(Self {
            policies,
            grants,
            namespaces,
            options: Options {
                enforcement: None,
                on_error: crate::decision::OnError::Deny,
            },
            audit: Audit::disabled(),
            metrics: Metrics::new()?,
            controller: DEFAULT_CONTROLLER.into(),
            gatekeeper: ClusterFeed::none(),
        })
    }
}

/// The default identity of jitguard's controller (manifests/: namespace and account
/// `jitguard`).
pub const DEFAULT_CONTROLLER: &str = "system:serviceaccount:jitguard:jitguard";

/// A decided review.
#[derive(Debug)]
pub struct Reviewed {
    pub input: AdmissionInput,
    pub evaluation: Evaluation,
    pub decision: Decision,
    /// The AdmissionReview answer, encoded.
    pub body: Vec<u8>,
    pub webhook: Webhook,
    /// Workflow steps (audit event, who) to record if this answer is the one sent.
    workflow_events: Vec<(&'static str, String)>,
}

/// A worker's private state: its own engine over the current snapshot.
pub struct Worker {
    reviewer: Reviewer,
    engine: Option<PolicyEngine>,
    /// The inventory generation loaded into `engine` (0: the snapshot's own).
    inventory_generation: u64,
}

impl Worker {
    pub fn new(reviewer: Reviewer) -> Self {
        Self {
            reviewer,
            engine: None,
            inventory_generation: 0,
        }
    }

    pub fn reviewer(&self) -> &Reviewer {
        &self.reviewer
    }

    /// The engine for the current snapshot, cloned once per snapshot.
    fn engine(&mut self) -> &mut PolicyEngine {
        let current = self.reviewer.policies.load_full();
        let stale = self
            .engine
            .as_ref()
            .is_none_or(|e| e.generation() != current.generation());
        if stale {
            self.engine = None;
            self.inventory_generation = 0;
        }
        let engine = self.engine.get_or_insert_with(|| current.engine());
        // The cluster's inventory, loaded when it moved (its referential templates
        // re-prepare then, never per request).
        if let Some((generation, inventory)) = self
            .reviewer
            .gatekeeper
            .inventory_newer_than(self.inventory_generation)
        {
            // Tried once per generation: a failure is not paid again on every request.
            self.inventory_generation = generation;
            if let Err(e) = engine.set_inventory(&inventory) {
                tracing::error!(error = %e, generation, "cannot load the Gatekeeper inventory; referential constraints see the last one loaded");
            }
        }
        engine
    }

    /// Decides one body received at `now` (the request's time; `--at` in dry-run), and
    /// records it (audit, metrics, workflow steps): for callers whose answer always goes
    /// out, as dry-run's does.
    pub fn review(
        &mut self,
        body: &[u8],
        webhook: Webhook,
        now: Timestamp,
        received: Instant,
    ) -> Result<Reviewed, ReviewError> {
        let reviewed = self.decide(body, webhook, now)?;
        self.commit(&reviewed, received.elapsed());
        Ok(reviewed)
    }

    /// Decides one body without recording anything: the server records only once it
    /// knows which answer was sent (this one, or its deadline answer).
    pub fn decide(
        &mut self,
        body: &[u8],
        webhook: Webhook,
        now: Timestamp,
    ) -> Result<Reviewed, ReviewError> {
        let mut input = admission::parse(body)?;
        let request = &input.request;
        let live = self
            .reviewer
            .grants
            .index()
            .live_for(&request.user, &request.groups, now);
        let namespaces = self.known_namespaces(&input);
        add_jit(&mut input.review, now, &live, namespaces);

        let evaluation = self.engine().evaluate(&input.review);
        let options = self.reviewer.options;
        let metrics = &self.reviewer.metrics;
        for pkg in &evaluation.packages {
            if pkg.error.is_some() {
                metrics
                    .policy_errors
                    .with_label_values(&[&pkg.package])
                    .inc();
            }
            for finding in pkg.findings.iter().filter(|f| f.rule != RuleKind::Patch) {
                metrics
                    .policy_findings
                    .with_label_values(&[&pkg.package, finding.rule.name()])
                    .inc();
            }
        }

        let check = if decision::needs_grant(&evaluation, options) {
            let check = grant::check(&live, &input.request, &self.reviewer.grants);
            let label = match check {
                GrantCheck::Covered(_) => "covered",
                GrantCheck::NotCovered { .. } => "not_covered",
                GrantCheck::Stale { .. } => "stale",
            };
            // A dry run is decided like the request but uses no grant (sideEffects:
            // NoneOnDryRun): neither this count nor a Used Event.
            if !input.request.dry_run {
                metrics.grant_uses.with_label_values(&[label]).inc();
            }
            check
        } else {
            GrantCheck::NotCovered {
                request: String::new(),
            }
        };

        let workflow = if is_access_request(&input.request) {
            self.workflow(&input, webhook, now)
        } else {
            admit::Outcome::default()
        };

        // The object is converted for JSON Patch only when something will patch it.
        let wants_object = webhook == Webhook::Mutate
            && (matches!(check, GrantCheck::Covered(_))
                || !workflow.patch.is_empty()
                || evaluation.packages.iter().any(|p| !p.patch.is_empty()));
        let object = wants_object
            .then(|| serde_json::to_value(&input.review["request"]["object"]).ok())
            .flatten()
            .filter(|o| !o.is_null());
        let target = decision::Target {
            webhook,
            operation: input.request.operation,
            object: object.as_ref(),
            workflow_denials: &workflow.denials,
            workflow_patch: &workflow.patch,
        };
        let decision = decision::decide(&evaluation, &check, target, options);
        let review = admission::respond(&input.request.uid, &decision);
        let body = admission::encode(&review);
        Ok(Reviewed {
            input,
            evaluation,
            decision,
            body,
            webhook,
            workflow_events: workflow.events,
        })
    }

    /// Records a decision that was sent: the workflow steps it admitted, its audit record
    /// and its metrics.
    pub fn commit(&self, reviewed: &Reviewed, latency: std::time::Duration) {
        let Reviewed {
            input,
            evaluation,
            decision,
            webhook,
            workflow_events,
            ..
        } = reviewed;
        if decision.allowed && !input.request.dry_run {
            for (event, by) in workflow_events {
                self.reviewer
                    .audit
                    .access_event(event, &input.request.name, by);
            }
        }
        self.record(*webhook, input, evaluation, decision, latency);
    }

    /// Records what was sent instead when the API server's deadline came first: the
    /// deadline answer (a denial, or an allow with a warning under `--on-error allow`),
    /// with what the evaluation had found, if it ran; no workflow step, no grant use.
    pub fn commit_deadline(
        &self,
        input: &AdmissionInput,
        webhook: Webhook,
        evaluation: &Evaluation,
        timeout: std::time::Duration,
        latency: std::time::Duration,
    ) {
        let message = decision::deadline_message(timeout);
        let decision = decision::Decision::deadline(&message, self.reviewer.options.on_error);
        self.record(webhook, input, evaluation, &decision, latency);
    }

    /// The approval workflow's verdict on an AccessRequest admission. A request that
    /// cannot be read, or an access policy that cannot decide, is refused: the workflow
    /// fails closed like every other decision.
    fn workflow(
        &mut self,
        input: &AdmissionInput,
        webhook: Webhook,
        now: Timestamp,
    ) -> admit::Outcome {
        let request = &input.request;
        let read = |v: &Value| -> Result<Option<AccessRequest>, String> {
            if matches!(v, Value::Undefined | Value::Null) {
                return Ok(None);
            }
            let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
            serde_json::from_value(json)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        let refuse = |reason: String| admit::Outcome {
            denials: vec![reason],
            ..Default::default()
        };
        let object = match read(&input.review["request"]["object"]) {
            Ok(Some(o)) => o,
            Ok(None) => return admit::Outcome::default(),
            Err(e) => return refuse(format!("the AccessRequest does not match its schema: {e}")),
        };
        let old = match read(&input.review["request"]["oldObject"]) {
            Ok(old) => old,
            Err(e) => {
                return refuse(format!(
                    "the stored AccessRequest does not match its schema: {e}"
                ))
            }
        };
        let policy = match self.engine().access_policy(&input.review) {
            Ok(p) => p,
            Err(e) => return refuse(e.to_string()),
        };
        // For spec.extends: the end of the requester's live grant being extended.
        let spec = &object.spec;
        let requester = if request.operation == Operation::Create {
            (request.user.as_str(), request.groups.as_slice())
        } else {
            (spec.requester.as_str(), spec.requester_groups.as_slice())
        };
        let extended_end = spec.extends.as_deref().and_then(|name| {
            self.reviewer
                .grants
                .index()
                .live_for(requester.0, requester.1, now)
                .iter()
                .find(|g| &*g.name == name && g.requester == requester.0 && g.scope == spec.scope)
                .map(|g| g.expires_at)
        });
        let change = admit::Change {
            caller: admit::Caller {
                user: &request.user,
                groups: &request.groups,
            },
            operation: request.operation,
            sub_resource: &request.sub_resource,
            object: &object,
            old: old.as_ref(),
            policy: &policy,
            now,
            controller: &self.reviewer.controller,
            extended_end,
        };
        admit::admit(&change, webhook == Webhook::Mutate)
    }

    /// `input.jit.namespaces`: the request's namespace and, for an AccessRequest, every
    /// namespace its scope names, where they are known.
    fn known_namespaces(&self, input: &AdmissionInput) -> Value {
        let mut names = vec![input.request.namespace.as_str()];
        if is_access_request(&input.request) {
            if let Ok(rules) = input.review["request"]["object"]["spec"]["scope"].as_array() {
                for rule in rules {
                    if let Ok(list) = rule["namespaces"].as_array() {
                        names.extend(list.iter().filter_map(|n| n.as_string().ok()).map(|n| &**n));
                    }
                }
            }
        }
        self.reviewer.namespaces.known(names)
    }

    fn record(
        &self,
        webhook: Webhook,
        input: &AdmissionInput,
        evaluation: &Evaluation,
        decision: &Decision,
        latency: std::time::Duration,
    ) {
        let metrics = &self.reviewer.metrics;
        let request = &input.request;
        metrics
            .requests
            .with_label_values(&[
                webhook.name(),
                request.operation.as_str(),
                metrics.kind_label(&request.kind),
                decision.verdict.name(),
            ])
            .inc();
        metrics
            .duration
            .with_label_values(&[webhook.name()])
            .observe(latency.as_secs_f64());
        self.reviewer.audit.decision(&DecisionRecord::new(
            webhook,
            request,
            evaluation,
            decision,
            self.reviewer.options,
            latency,
        ));
    }
}

fn is_access_request(request: &RequestInfo) -> bool {
    request.group == "jitguard.dev" && request.resource == "accessrequests"
}

/// `input.jit`: the request's time, which policies use instead of `time.now_ns()` so
/// that decisions are reproducible, the requester's live grants, and the namespaces the
/// request is about with their labels, where they are known.
fn add_jit(review: &mut Value, now: Timestamp, live: &[Arc<grant::Grant>], namespaces: Value) {
    let now_ns = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
    let grants: Vec<Value> = live.iter().map(|g| g.value()).collect();
    let mut jit = std::collections::BTreeMap::new();
    jit.insert(Value::from("now_ns"), Value::from(now_ns));
    jit.insert(Value::from("grants"), Value::from(grants));
    jit.insert(Value::from("namespaces"), namespaces);
    if let Ok(fields) = review.as_object_mut() {
        // Overwrites a `jit` a client may have put there: only jitguard says what time
        // it is and which grants are live.
        fields.insert(Value::from("jit"), Value::from(jit));
    }
}

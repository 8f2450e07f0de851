//! The audit of what already runs: guardrails added to a running cluster say nothing
//! about the objects already there, so these are listed and each is decided as the API
//! server would present it, an UPDATE of the object to itself by no user. What the
//! policies find (`deny`, `violation`, `warn`) is reported; `require_grant` findings are
//! about who changes what, not about state, and are left out.
//!
//! `jitguard audit` prints the findings; `serve --audit-interval` has the controller's
//! Lease holder run the same and write them as PolicyReports ([`report`]).

pub mod report;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde::Serialize;

use crate::decision::Webhook;
use crate::manifest::{self, Requester};
use crate::policy::RuleKind;
use crate::request::Operation;
use crate::review::{Reviewer, Worker};

/// The resources listed by default: what the shipped pack judges by state (workloads and
/// their Pods, Ingresses, NetworkPolicies, RBAC), and Namespaces (for their labels).
/// `--audit-resource GROUP/VERSION/KIND/PLURAL` adds others.
pub fn default_resources() -> Vec<ApiResource> {
    [
        ("", "v1", "Namespace", "namespaces"),
        ("", "v1", "Pod", "pods"),
        ("apps", "v1", "Deployment", "deployments"),
        ("apps", "v1", "StatefulSet", "statefulsets"),
        ("apps", "v1", "DaemonSet", "daemonsets"),
        ("apps", "v1", "ReplicaSet", "replicasets"),
        ("batch", "v1", "Job", "jobs"),
        ("batch", "v1", "CronJob", "cronjobs"),
        ("networking.k8s.io", "v1", "Ingress", "ingresses"),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
        ),
    ]
    .into_iter()
    .map(|(group, version, kind, plural)| resource(group, version, kind, plural))
    .collect()
}

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// One finding about one object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub package: String,
    pub rule: String,
    pub message: String,
}

impl Finding {
    /// `fail` for deny and violation, `warn` for warn: the PolicyReport result.
    pub fn result(&self) -> &'static str {
        if self.rule == RuleKind::Warn.name() {
            "warn"
        } else {
            "fail"
        }
    }

    pub fn object(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// What one pass found: every object looked at (by namespace, `None` for cluster-scoped),
/// and the findings.
#[derive(Debug, Default)]
pub struct Outcome {
    pub audited: Vec<(Option<String>, String)>,
    pub findings: Vec<Finding>,
    /// Resources that could not be listed (not served here, or not allowed), with why.
    pub skipped: Vec<String>,
}

/// The AdmissionReview the API server would send for an UPDATE of `object` to itself by
/// no user, as dry-run wraps a manifest, with the resource as listed (its plural is known
/// here, where dry-run can only guess a custom kind's).
pub fn review(
    object: &serde_json::Value,
    resource: &ApiResource,
) -> Result<serde_json::Value, String> {
    let nobody = Requester {
        user: String::new(),
        groups: Vec::new(),
        operation: Operation::Update,
    };
    let mut review = manifest::review_for(object, &nobody, 0)?;
    if let Some(request) = review.get_mut("request").and_then(|r| r.as_object_mut()) {
        let gvr = serde_json::json!({"group": resource.group, "version": resource.version, "resource": resource.plural});
        request.insert("resource".into(), gvr.clone());
        request.insert("requestResource".into(), gvr);
        request.insert(
            "uid".into(),
            format!("audit-{}", text(object, "/metadata/uid")).into(),
        );
    }
    Ok(review)
}

/// A string field of an object, or "".
fn text(object: &serde_json::Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Decides each object with `worker` and keeps what is state: deny, violation, warn.
/// `pace`: after each object, rest as long as its evaluation took (at most half of one
/// core), so that an audit never competes with admission for long.
pub fn judge(
    worker: &mut Worker,
    objects: &[(ApiResource, serde_json::Value)],
    now: Timestamp,
    pace: bool,
) -> Outcome {
    let mut out = Outcome::default();
    for (resource, object) in objects {
        let started = Instant::now();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .map(String::from);
        let name = text(object, "/metadata/name");
        out.audited.push((namespace.clone(), name.clone()));
        let decided = review(object, resource).and_then(|body| {
            worker
                .decide(body.to_string().as_bytes(), Webhook::Validate, now)
                .map_err(|e| e.to_string())
        });
        let reviewed = match decided {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(object = %name, kind = %resource.kind, error = %e, "audit: cannot decide this object");
                continue;
            }
        };
        for package in &reviewed.evaluation.packages {
            for f in &package.findings {
                if !matches!(
                    f.rule,
                    RuleKind::Deny | RuleKind::Violation | RuleKind::Warn
                ) {
                    continue;
                }
                out.findings.push(Finding {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: text(object, "/metadata/uid"),
                    package: package.package.to_string(),
                    rule: f.rule.name().to_string(),
                    message: f.msg.clone(),
                });
            }
        }
        if pace {
            std::thread::sleep(started.elapsed().min(Duration::from_millis(50)));
        }
    }
    out
}

/// Lists every object of `resources` (Namespaces first, so that policies see their
/// labels), each as JSON. A resource that is not served or not allowed is skipped with
/// its reason.
pub async fn list(
    client: &Client,
    resources: &[ApiResource],
) -> (Vec<(ApiResource, serde_json::Value)>, Vec<String>) {
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for resource in resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let mut params = ListParams::default().limit(500);
        loop {
            match api.list(&params).await {
                Ok(page) => {
                    let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
                    for item in page.items {
                        let mut value = serde_json::to_value(&item).unwrap_or_default();
                        // A list's items carry no apiVersion and kind; the review's object does.
                        if let Some(map) = value.as_object_mut() {
                            map.insert("apiVersion".into(), resource.api_version.clone().into());
                            map.insert("kind".into(), resource.kind.clone().into());
                        }
                        objects.push((resource.clone(), value));
                    }
                    match next {
                        Some(token) => params = params.continue_token(&token),
                        None => break,
                    }
                }
                Err(e) => {
                    skipped.push(format!("{}: {}", resource.plural, short_error(&e)));
                    break;
                }
            }
        }
    }
    (objects, skipped)
}

fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Lists and judges: the whole audit, for the CLI and the controller.
pub async fn run(
    client: &Client,
    reviewer: Reviewer,
    resources: &[ApiResource],
    pace: bool,
) -> Outcome {
    let (objects, skipped) = list(client, resources).await;
    // The namespaces' labels, for policies that protect by label.
    let namespaces: Vec<k8s_openapi::api::core::v1::Namespace> = objects
        .iter()
        .filter(|(r, _)| r.kind == "Namespace" && r.group.is_empty())
        .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
        .collect();
    // Only an offline reviewer's (the CLI's) is empty here; serve's is the live cache.
    if !reviewer.namespaces.is_synced() {
        reviewer.namespaces.replace(&namespaces);
    }
    let now = Timestamp::now();
    let judged = tokio::task::spawn_blocking(move || {
        let mut worker = Worker::new(reviewer);
        judge(&mut worker, &objects, now, pace)
    })
    .await;
    let mut outcome = judged.unwrap_or_else(|e| {
        tracing::error!(error = %e, "audit: the evaluation task failed");
        Outcome::default()
    });
    outcome.skipped = skipped;
    outcome
}

/// The controller's audit: every `every`, on the Lease holder only (`leading`), a paced
/// pass whose findings become the reports and `jitguard_audit_findings`.
pub async fn periodic(
    client: Client,
    reviewer: Reviewer,
    resources: Vec<ApiResource>,
    every: Duration,
    leading: std::sync::Arc<std::sync::atomic::AtomicBool>,
    metrics: crate::metrics::Metrics,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The live namespace cache, once full: a pass never fills it itself (that would
        // write the webhook's cache from here).
        if !leading.load(std::sync::atomic::Ordering::Acquire) || !reviewer.namespaces.is_synced() {
            continue;
        }
        let started = Instant::now();
        let outcome = run(&client, reviewer.clone(), &resources, true).await;
        metrics.audit_findings.reset();
        for f in &outcome.findings {
            metrics
                .audit_findings
                .with_label_values(&[f.package.as_str(), f.namespace.as_deref().unwrap_or("")])
                .inc();
        }
        for s in &outcome.skipped {
            tracing::warn!(skipped = %s, "audit: a resource could not be listed (RBAC, or not served here)");
        }
        match report::write(&client, &outcome).await {
            Ok(()) => tracing::info!(
                audited = outcome.audited.len(),
                findings = outcome.findings.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "audit pass written to the PolicyReports"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "audit: cannot write the PolicyReports (are their CRDs installed?); trying again next pass")
            }
        }
    }
}

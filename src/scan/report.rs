//! An audit's findings as the Policy WG's reports (`wgpolicyk8s.io/v1alpha2`), the format
//! Kyverno and the Policy Reporter UI read: a PolicyReport named `jitguard-audit` in each
//! namespace with audited objects, and a ClusterPolicyReport of the same name for
//! cluster-scoped ones. Each pass replaces them whole, so a fixed object leaves them.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use super::{resource, Outcome};

/// The name of every report jitguard writes.
pub const NAME: &str = "jitguard-audit";
/// The field manager of its writes (server-side apply).
const MANAGER: &str = "jitguard-audit";

pub fn policy_reports() -> ApiResource {
    resource(
        "wgpolicyk8s.io",
        "v1alpha2",
        "PolicyReport",
        "policyreports",
    )
}

pub fn cluster_policy_reports() -> ApiResource {
    resource(
        "wgpolicyk8s.io",
        "v1alpha2",
        "ClusterPolicyReport",
        "clusterpolicyreports",
    )
}

/// The reports of one pass: by namespace, and the cluster's. Pure.
pub fn build(outcome: &Outcome, now: Timestamp) -> (BTreeMap<String, Value>, Value) {
    let mut scopes: BTreeMap<Option<&str>, (usize, Vec<Value>)> = BTreeMap::new();
    scopes.entry(None).or_default();
    let flagged: BTreeSet<(Option<&str>, &str)> = outcome
        .findings
        .iter()
        .map(|f| (f.namespace.as_deref(), f.name.as_str()))
        .collect();
    for (namespace, name) in &outcome.audited {
        let scope = scopes.entry(namespace.as_deref()).or_default();
        if !flagged.contains(&(namespace.as_deref(), name.as_str())) {
            scope.0 += 1;
        }
    }
    for f in &outcome.findings {
        let mut reference = json!({
            "apiVersion": f.api_version, "kind": f.kind, "name": f.name, "uid": f.uid,
        });
        if let (Some(ns), Some(map)) = (&f.namespace, reference.as_object_mut()) {
            map.insert("namespace".into(), ns.clone().into());
        }
        let result = json!({
            "source": "jitguard",
            "policy": f.package,
            "rule": f.rule,
            "result": f.result(),
            "scored": true,
            "message": f.message,
            "timestamp": {"seconds": now.as_second(), "nanos": 0},
            "resources": [reference],
            "properties": {"object": f.object()},
        });
        scopes
            .entry(f.namespace.as_deref())
            .or_default()
            .1
            .push(result);
    }
    let report = |kind: &str, namespace: Option<&str>, pass: usize, results: &[Value]| {
        let count = |r: &str| results.iter().filter(|x| x["result"] == r).count();
        let mut metadata = json!({
            "name": NAME,
            "labels": {"app.kubernetes.io/managed-by": "jitguard"},
        });
        if let (Some(ns), Some(map)) = (namespace, metadata.as_object_mut()) {
            map.insert("namespace".into(), ns.into());
        }
        json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": kind,
            "metadata": metadata,
            "summary": {"pass": pass, "fail": count("fail"), "warn": count("warn"), "error": 0, "skip": 0},
            "results": results,
        })
    };
    let mut by_namespace = BTreeMap::new();
    let mut cluster = Value::Null;
    for (scope, (pass, results)) in &scopes {
        match scope {
            Some(ns) => {
                by_namespace.insert(
                    ns.to_string(),
                    report("PolicyReport", Some(ns), *pass, results),
                );
            }
            None => cluster = report("ClusterPolicyReport", None, *pass, results),
        }
    }
    (by_namespace, cluster)
}

/// Writes this pass's reports (server-side apply) and deletes the ones of namespaces that
/// had no object audited this time.
pub async fn write(client: &Client, outcome: &Outcome) -> Result<(), kube::Error> {
    let (by_namespace, cluster) = build(outcome, Timestamp::now());
    let params = PatchParams::apply(MANAGER).force();
    let namespaced = policy_reports();
    for (namespace, report) in &by_namespace {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &namespaced);
        api.patch(NAME, &params, &Patch::Apply(report)).await?;
    }
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &namespaced);
    let existing = all
        .list(&ListParams::default().fields(&format!("metadata.name={NAME}")))
        .await?;
    for old in existing.items {
        let Some(namespace) = old.namespace() else {
            continue;
        };
        if !by_namespace.contains_key(&namespace) {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &namespaced);
            api.delete(NAME, &DeleteParams::default()).await?;
        }
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_policy_reports());
    api.patch(NAME, &params, &Patch::Apply(&cluster)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::scan::Finding;

    #[test]
    fn a_report_per_namespace_counts_passes_failures_and_warnings() {
        let finding = |ns: Option<&str>, name: &str, rule: &str| Finding {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: ns.map(String::from),
            name: name.into(),
            uid: format!("u-{name}"),
            package: "jitguard.workloads".into(),
            rule: rule.into(),
            message: format!("{name} is privileged"),
        };
        let outcome = Outcome {
            audited: vec![
                (Some("prod".into()), "root".into()),
                (Some("prod".into()), "web".into()),
                (Some("dev".into()), "debug".into()),
                (Some("staging".into()), "ok".into()),
                (None, "prod".into()),
            ],
            findings: vec![
                finding(Some("prod"), "root", "deny"),
                finding(Some("dev"), "debug", "warn"),
            ],
            skipped: vec![],
        };
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let (by_namespace, cluster) = build(&outcome, now);
        assert_eq!(
            by_namespace.keys().collect::<Vec<_>>(),
            ["dev", "prod", "staging"]
        );
        let prod = &by_namespace["prod"];
        assert_eq!(prod["metadata"]["namespace"], "prod");
        assert_eq!(
            prod["summary"],
            json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
        );
        assert_eq!(prod["results"][0]["policy"], "jitguard.workloads");
        assert_eq!(prod["results"][0]["result"], "fail");
        assert_eq!(prod["results"][0]["resources"][0]["name"], "root");
        assert_eq!(prod["results"][0]["timestamp"]["seconds"], now.as_second());
        assert_eq!(by_namespace["dev"]["results"][0]["result"], "warn");
        // A clean namespace has a report with nothing in it: fixed objects leave it.
        assert_eq!(by_namespace["staging"]["results"], json!([]));
        assert_eq!(cluster["kind"], "ClusterPolicyReport");
        assert_eq!(cluster["summary"]["pass"], 1);
    }
}

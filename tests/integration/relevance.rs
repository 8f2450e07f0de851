//! Skipping the packages a request cannot concern changes no evaluation: the shipped pack
//! with and without it, over generated requests (the kinds, operations and subresources
//! the pack tests and others, in every namespace kind, by every kind of user), gives the
//! same findings, messages, enforcement and errors.

use std::sync::Arc;

use jitguard::policy::{EvalOptions, Evaluation, PackageResult, PolicySet};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::common::{review, root};

fn pack(skip_unconcerned: bool, policies: &std::path::Path) -> Arc<PolicySet> {
    Arc::new(
        PolicySet::load(
            policies,
            EvalOptions {
                skip_unconcerned,
                ..EvalOptions::default()
            },
        )
        .unwrap(),
    )
}

fn evaluate(set: &Arc<PolicySet>, input: &Value) -> Evaluation {
    set.engine().evaluate(&value(input))
}

fn value(input: &Value) -> regorus::Value {
    regorus::Value::from_json_str(&input.to_string()).unwrap()
}

/// The packages an evaluation of `input` runs.
fn concerned(set: &PolicySet, input: &Value) -> Vec<String> {
    set.concerned_packages(&value(input))
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// A policy folder holding `files` (`(path, Rego)`).
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn package<'a>(evaluation: &'a Evaluation, name: &str) -> &'a PackageResult {
    evaluation
        .packages
        .iter()
        .find(|p| &*p.package == name)
        .unwrap()
}

/// The AdmissionReview `input` as jitguard builds it: the review and `jit`.
fn input(mut review: Value, now_ns: i64, labels: Value) -> Value {
    let ns = review["request"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    review["jit"] = json!({
        "now_ns": now_ns,
        "grants": [],
        "namespaces": {ns.clone(): {"name": ns, "labels": labels}},
    });
    review
}

#[test]
fn a_pod_create_in_prod_evaluates_only_the_packages_it_concerns() {
    let set = pack(true, &root().join("policies"));
    let i = input(
        review("pod-create-prod"),
        1_795_000_000_000_000_000,
        json!({}),
    );
    assert_eq!(
        concerned(&set, &i),
        [
            "jitguard.changewindow",
            "jitguard.namespaces",
            "jitguard.workloads"
        ]
    );
    let exec = input(
        review("pod-exec-prod"),
        1_795_000_000_000_000_000,
        json!({}),
    );
    assert_eq!(concerned(&set, &exec), ["jitguard.interactive"]);
    // An Ingress is no workload: workloads opens with a test of the object's kind.
    let path = root().join("policies/suites/reviews/ingress-remove-tls-dev.json");
    let review = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ingress = input(review, 1_795_000_000_000_000_000, json!({}));
    assert_eq!(
        concerned(&set, &ingress),
        [
            "jitguard.changewindow",
            "jitguard.ingress",
            "jitguard.namespaces"
        ]
    );
    let all = pack(false, &root().join("policies"));
    assert_eq!(concerned(&all, &ingress).len(), all.package_names().len());
}

/// Skipping a package leaves out its contract rules, nothing else: a concerned package
/// that reads a skipped one's other rules, by import or by a `data` reference, however
/// indirectly, reads them as before. (A reference made undefined would fail open: mallory
/// would pass.)
#[test]
fn a_skipped_package_still_answers_the_packages_that_read_it() {
    // guard: concerned by CREATE; it denies unless `exempt`, which it reads from
    // helpers, which reads from flags; flags also has contract rules of its own that a
    // CREATE does not concern. And it denies what helpers calls `risky`: without helpers
    // in the engine, mallory would pass. other: concerned by DELETE only, referred to by
    // no one.
    let dir = folder(&[
        (
            "guard/guard.rego",
            "package guard\nimport data.helpers.exempt\ndeny contains \"guarded\" if {\n\tinput.request.operation == \"CREATE\"\n\tnot exempt\n}\ndeny contains \"risky\" if {\n\tinput.request.operation == \"CREATE\"\n\tdata.helpers.risky\n}\n",
        ),
        (
            "helpers/helpers.rego",
            "package helpers\nexempt if data.flags.off\nrisky if input.request.userInfo.username == \"mallory\"\n",
        ),
        (
            "flags/flags.rego",
            "package flags\noff := input.request.userInfo.username == \"root\"\nwarn contains \"flags\" if input.request.operation == \"DELETE\"\n",
        ),
        (
            "other/other.rego",
            "package other\nwarn contains \"other\" if input.request.operation == \"DELETE\"\n",
        ),
    ]);
    let request = |user: &str| {
        input(
            json!({"request": {"uid": "1", "operation": "CREATE", "namespace": "dev",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "userInfo": {"username": user}, "object": {}}}),
            0,
            json!({}),
        )
    };
    let skipping = pack(true, dir.path());
    let every = pack(false, dir.path());
    assert_eq!(
        concerned(&skipping, &request("alice")),
        ["guard"],
        "flags is skipped"
    );
    for user in ["mallory", "alice", "root"] {
        let (a, b) = (
            evaluate(&skipping, &request(user)),
            evaluate(&every, &request(user)),
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{user}");
    }
    let findings = |user: &str| -> usize {
        evaluate(&skipping, &request(user))
            .packages
            .iter()
            .map(|p| p.findings.len())
            .sum()
    };
    assert_eq!(findings("alice"), 1, "alice is denied");
    assert_eq!(findings("root"), 0, "root is exempt through flags");
    assert_eq!(findings("mallory"), 2, "mallory is risky, and not exempt");
}

/// What the generated requests are made of: the values the pack tests, and others.
const OPERATIONS: &[&str] = &["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH"];
const RESOURCES: &[(&str, &str, &str)] = &[
    ("", "pods", "Pod"),
    ("", "services", "Service"),
    ("", "namespaces", "Namespace"),
    ("", "configmaps", "ConfigMap"),
    ("", "events", "Event"),
    ("apps", "deployments", "Deployment"),
    ("networking.k8s.io", "ingresses", "Ingress"),
    ("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
    ("gateway.networking.k8s.io", "httproutes", "HTTPRoute"),
    ("rbac.authorization.k8s.io", "roles", "Role"),
    ("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    ("rbac.authorization.k8s.io", "clusterroles", "ClusterRole"),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
    ),
    ("jitguard.dev", "accessrequests", "AccessRequest"),
    ("coordination.k8s.io", "leases", "Lease"),
    ("example.com", "namespaces", "Namespace"),
    ("example.com", "pods", "Pod"),
];
const SUBRESOURCES: &[&str] = &[
    "",
    "exec",
    "attach",
    "portforward",
    "proxy",
    "ephemeralcontainers",
    "status",
    "log",
];
const NAMESPACES: &[&str] = &["prod", "prod-eu", "staging", "dev", "kube-system", ""];
const USERS: &[&str] = &[
    "alice@example.com",
    "system:serviceaccount:prod:default",
    "system:kube-scheduler",
    "system:node:n1",
];

/// The objects of the shipped suites' manifests, as the requests' objects.
fn objects() -> Vec<Value> {
    let dir = root().join("policies/suites/manifests");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in text.split("\n---") {
            if let Ok(v) = yaml_serde::from_str::<Value>(doc) {
                if v.is_object() {
                    out.push(v);
                }
            }
        }
    }
    assert!(out.len() >= 20, "{} objects", out.len());
    out
}

#[test]
fn skipping_never_changes_an_evaluation_of_generated_requests() {
    let skipping = pack(true, &root().join("policies"));
    let all = pack(false, &root().join("policies"));
    let objects = objects();
    let cases = std::env::var("JITGUARD_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..OPERATIONS.len(),
        0..RESOURCES.len(),
        0..SUBRESOURCES.len(),
        0..NAMESPACES.len(),
        0..USERS.len(),
        0..objects.len(),
        any::<bool>(),
        any::<bool>(),
        // Any moment of 2026-2027 (weekdays, hours, holidays and the freeze).
        1_767_225_600_000_000_000_i64..1_830_297_600_000_000_000_i64,
    );
    let skipped = std::cell::Cell::new(0usize);
    runner
        .run(
            &strategy,
            |(op, res, sub, ns, user, object, old, protected_label, now)| {
                let (group, resource, kind) = RESOURCES[res];
                let mut request = json!({
                    "uid": "u",
                    "kind": {"group": group, "version": "v1", "kind": kind},
                    "resource": {"group": group, "version": "v1", "resource": resource},
                    "operation": OPERATIONS[op],
                    "namespace": NAMESPACES[ns],
                    "name": objects[object]["metadata"]["name"],
                    "userInfo": {"username": USERS[user], "groups": ["system:authenticated"]},
                    "object": objects[object],
                });
                if !SUBRESOURCES[sub].is_empty() {
                    request["subResource"] = json!(SUBRESOURCES[sub]);
                }
                if old {
                    request["oldObject"] = objects[(object + 1) % objects.len()].clone();
                }
                let labels = if protected_label {
                    json!({"jitguard.dev/protected": "true"})
                } else {
                    json!({})
                };
                let i = input(
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}),
                    now,
                    labels,
                );
                if concerned(&skipping, &i).len() < all.package_names().len() {
                    skipped.set(skipped.get() + 1);
                }
                prop_assert_eq!(evaluate(&skipping, &i), evaluate(&all, &i), "{}", i);
                Ok(())
            },
        )
        .unwrap();
    // Most generated requests concern few packages: the skipping was exercised.
    let skipped = skipped.get();
    assert!(
        skipped * 2 > cases as usize,
        "{skipped} of {cases} skipped any"
    );
}

/// The premise, checked on regorus itself: a body stops at its first failed test, so an
/// error later in it is never raised for a request the test excludes, and skipping the
/// package gives what evaluating it gives, errors included.
#[test]
fn a_body_stops_at_its_leading_test_so_skipping_keeps_errors() {
    let dir = folder(&[
        (
            "p.rego",
            r#"package p

deny contains "exec" if {
	input.request.operation == "CONNECT"
	input.request.subResource in {"exec"}
	to_number(input.request.name) > 0
}

warn contains "w" if {
	input.request.operation == "CONNECT"
	input.request.subResource == "exec"
	true
}
"#,
        ),
        (
            "q.rego",
            "package q\n\ndeny contains \"q\" if input.request.operation == \"DELETE\"\n",
        ),
    ]);
    let skipping = pack(true, dir.path());
    let all = pack(false, dir.path());
    let req = |op: &str, sub: &str| {
        json!({"request": {"operation": op, "subResource": sub, "name": "not-a-number",
            "resource": {"group": "", "resource": "pods"}}})
    };
    // Excluded: no error with or without skipping, and p is skipped.
    let create = req("CREATE", "exec");
    assert_eq!(concerned(&skipping, &create), Vec::<&str>::new());
    assert_eq!(evaluate(&skipping, &create), evaluate(&all, &create));
    assert!(evaluate(&all, &create)
        .packages
        .iter()
        .all(|p| p.error.is_none()));
    // Concerned: the error is raised either way.
    let exec = req("CONNECT", "exec");
    let failed = evaluate(&skipping, &exec);
    assert_eq!(failed, evaluate(&all, &exec));
    let p = package(&failed, "p");
    assert!(
        p.error.as_deref().is_some_and(|e| e.contains("p.rego:6")),
        "{p:?}"
    );
}

/// A skipped package's `enforcement` is still evaluated: it is part of its answer, and
/// may fail or say `warn` for a request none of its rules concern.
#[test]
fn a_skipped_packages_enforcement_is_still_evaluated() {
    let dir = folder(&[
        (
            "w.rego",
            "package w

enforcement := \"warn\"

deny contains \"w\" if input.request.operation == \"DELETE\"
",
        ),
        (
            "e.rego",
            "package e

enforcement := \"warn\" if to_number(input.request.name) > 0

deny contains \"e\" if input.request.operation == \"DELETE\"
",
        ),
    ]);
    let skipping = pack(true, dir.path());
    let all = pack(false, dir.path());
    let create = json!({"request": {"operation": "CREATE", "name": "not-a-number"}});
    assert_eq!(concerned(&skipping, &create), Vec::<&str>::new());
    let evaluation = evaluate(&skipping, &create);
    assert_eq!(evaluation, evaluate(&all, &create));
    let w = package(&evaluation, "w");
    assert_eq!(w.enforcement, jitguard::policy::Enforcement::Warn, "{w:?}");
    let e = package(&evaluation, "e");
    assert!(e.error.is_some(), "{e:?}");
}

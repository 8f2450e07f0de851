//! A Gatekeeper constraint beside the shipped pack, through the real API server: its
//! violations deny with Gatekeeper's text, and, annotated for exceptions, a just-in-time
//! grant asked for with `kubectl jit`, approved by a team lead, lifts it for that person.

use std::time::Duration;

use crate::cluster::{copy_dir, eventually, root, scope, unique, Cluster, Options};

const LIMIT: Duration = Duration::from_secs(60);

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredlabels
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredLabels
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredlabels

        violation[{"msg": msg}] {
          provided := {label | input.review.object.metadata.labels[label]}
          required := {label | label := input.parameters.labels[_]}
          missing := required - provided
          count(missing) > 0
          msg := sprintf("you must provide labels: %v", [missing])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata:
  name: configmaps-need-a-cost-center
  annotations:
    jitguard.dev/exception: grant
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["ConfigMap"]}]
    namespaces: ["dev"]
  parameters:
    labels: ["costcenter"]
"#;

#[test]
fn a_gatekeeper_constraint_denies_and_a_grant_makes_a_time_boxed_exception() {
    let policies = root()
        .join("target/e2e/tests")
        .join(format!("policies-{}-gatekeeper", std::process::id()));
    let _ = std::fs::remove_dir_all(&policies);
    copy_dir(&root().join("policies"), &policies);
    std::fs::create_dir_all(policies.join("gatekeeper")).unwrap();
    std::fs::write(policies.join("gatekeeper/cost-center.yaml"), TEMPLATE).unwrap();
    let c = Cluster::up(Options {
        serve_args: Vec::new(),
        policies: Some(policies.clone()),
    });

    // Without a grant: Gatekeeper's text, and how to ask for an exception.
    let name = unique("gk");
    let denied = c.create_configmap("alice", "dev", &name, &[]);
    let text = denied.text();
    assert!(!denied.ok, "{text}");
    assert!(
        text.contains("[configmaps-need-a-cost-center] you must provide labels: {\"costcenter\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "kubectl jit request --namespace dev --resource configmaps --operation CREATE"
        ),
        "{text}"
    );
    // Meeting the constraint needs no grant.
    let labelled = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-ok\n  namespace: dev\n  labels: {{costcenter: \"42\"}}\n"
    );
    c.apply("alice", &labelled).success();

    // The exception: asked for, approved by a team lead, then used.
    let request = unique("gk-exception");
    c.ask(
        "alice",
        &request,
        &scope("dev", "configmaps", "CREATE", "30m"),
    )
    .success();
    c.jit("bob", &["approve", &request, "-m", "one-off"])
        .success();
    eventually("the exception is live", LIMIT, || {
        c.phase(&request) == "Approved"
    });
    eventually(
        "alice's ConfigMap is allowed under the grant",
        LIMIT,
        || c.create_configmap("alice", "dev", &name, &[]).ok,
    );
    // It is hers alone: bob has no grant.
    let bob = c.create_configmap("bob", "dev", &unique("gk-bob"), &[]);
    assert!(
        !bob.ok && bob.text().contains("configmaps-need-a-cost-center"),
        "{}",
        bob.text()
    );
    // The audit record names the constraint and the grant.
    let record = c
        .audit()
        .into_iter()
        .find(|r| r["request"]["name"] == name.as_str() && r["allowed"] == true)
        .unwrap();
    assert_eq!(record["grant"]["name"], request.as_str(), "{record}");
    assert!(
        record["findings"]
            .to_string()
            .contains("configmaps-need-a-cost-center"),
        "{record}"
    );
    let _ = std::fs::remove_dir_all(&policies);
}

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

/// A referential template, as a cluster moving from Gatekeeper has it: a ConfigMap may not
/// be written in a namespace labelled `frozen: "true"`, read from the synced inventory.
const FROZEN: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sfrozennamespace
spec:
  crd:
    spec:
      names:
        kind: K8sFrozenNamespace
      validation:
        openAPIV3Schema:
          type: object
          properties:
            reason: {type: string}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sfrozennamespace

        violation[{"msg": msg}] {
          ns := data.inventory.cluster["v1"]["Namespace"][input.review.namespace]
          ns.metadata.labels.frozen == "true"
          msg := sprintf("namespace %v is frozen: %v", [input.review.namespace, input.parameters.reason])
        }
---
apiVersion: v1
kind: Namespace
metadata:
  name: gatekeeper-system
---
apiVersion: config.gatekeeper.sh/v1alpha1
kind: Config
metadata:
  name: config
  namespace: gatekeeper-system
spec:
  sync:
    syncOnly:
      - {group: "", version: v1, kind: Namespace}
"#;

fn frozen_constraint(name: &str, reason: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sFrozenNamespace\nmetadata:\n  name: {name}\nspec:\n  match:\n    kinds: [{{apiGroups: [\"\"], kinds: [\"ConfigMap\"]}}]\n  parameters:\n    reason: {reason}\n"
    )
}

/// Templates, constraints and the sync configuration (Config, SyncSet) that live in the
/// cluster are served as they change, with the synced objects as `data.inventory`; a constraint whose
/// parameters do not fit its template is refused alone, and the others keep serving.
#[test]
fn gatekeeper_objects_in_the_cluster_are_served_with_their_inventory() {
    let c = Cluster::up(Options {
        serve_args: Vec::new(),
        policies: None,
    });
    let crds = std::fs::read_to_string(root().join("tests/fixtures/gatekeeper/crds.yaml")).unwrap();
    c.setup(&crds).success();
    c.wait_for_crds(&[
        "constrainttemplates.templates.gatekeeper.sh",
        "configs.config.gatekeeper.sh",
        "syncsets.syncset.gatekeeper.sh",
        "k8sfrozennamespace.constraints.gatekeeper.sh",
    ]);
    let ns = unique("frozen");
    // A ConfigMap in the namespace, as admin, decided but not stored.
    let allowed = || {
        c.create_configmap("admin", &ns, &unique("cm"), &["--dry-run=server"])
            .ok
    };
    c.setup(&format!(
        "{FROZEN}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels: {{frozen: \"true\"}}\n---\n{}---\n{}",
        frozen_constraint("frozen-namespaces", "release freeze"),
        // Given a number where the template's schema says string: refused alone.
        frozen_constraint("frozen-badly", "5").replace("reason: 5", "reason: 5\n    extra: true"),
    ))
    .success();

    // Served once the watches see them: Gatekeeper's text, the inventory's labels.
    let denial = "[frozen-namespaces] namespace ".to_string() + &ns + " is frozen: release freeze";
    eventually(
        "the cluster's constraint denies in the frozen namespace",
        LIMIT,
        || {
            let r = c.create_configmap("admin", &ns, &unique("cm"), &["--dry-run=server"]);
            !r.ok && r.text().contains(&denial)
        },
    );
    let r = c.create_configmap("admin", &ns, &unique("cm"), &["--dry-run=server"]);
    assert!(!r.text().contains("frozen-badly"), "{}", r.text());
    let log = std::fs::read_to_string(c.dir.join("run/logs/jitguard.log")).unwrap_or_default();
    assert!(
        log.contains("K8sFrozenNamespace frozen-badly: spec.parameters.extra: unknown field"),
        "{log}"
    );
    // Other namespaces are not frozen: the inventory is per object.
    c.create_configmap("admin", "dev", &unique("cm"), &["--dry-run=server"])
        .success();

    // The inventory follows the cluster: unfrozen, then frozen again.
    c.kubectl("admin", &["label", "namespace", &ns, "frozen-"])
        .success();
    eventually("unfreezing the namespace lifts the denial", LIMIT, allowed);
    c.kubectl("admin", &["label", "namespace", &ns, "frozen=true"])
        .success();
    eventually("freezing it again denies again", LIMIT, || !allowed());

    // Without a sync configuration the inventory is empty; a SyncSet fills it again.
    c.kubectl(
        "admin",
        &["-n", "gatekeeper-system", "delete", "config", "config"],
    )
    .success();
    eventually("without the Config, nothing is synced", LIMIT, allowed);
    c.setup("apiVersion: syncset.gatekeeper.sh/v1alpha1\nkind: SyncSet\nmetadata:\n  name: namespaces\nspec:\n  gvks:\n    - {group: \"\", version: v1, kind: Namespace}\n")
        .success();
    eventually("a SyncSet syncs the namespaces again", LIMIT, || !allowed());

    // Deleting the constraint ends its enforcement.
    c.kubectl(
        "admin",
        &["delete", "k8sfrozennamespace", "frozen-namespaces"],
    )
    .success();
    eventually("a deleted constraint no longer denies", LIMIT, allowed);
}

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use serde_json::json;

fn template(rego: &str) -> Json {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {"name": "k8srequiredowner"},
        "spec": {
            "crd": {"spec": {"names": {"kind": "K8sRequiredOwner"}}},
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}],
        },
    })
}

const OWNER: &str = r#"package k8srequiredowner

violation[{"msg": msg}] {
  not input.review.object.metadata.labels[input.parameters.label]
  msg := sprintf("%v needs the label %v", [input.review.object.metadata.name, input.parameters.label])
}
"#;

#[test]
fn a_v0_template_sees_the_review_and_the_parameters() {
    let mut t = Template::compile(&template(OWNER)).unwrap();
    assert_eq!(t.kind, "K8sRequiredOwner");
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "dev"}});
    let found = t
        .violations(
            &review_of(&pod),
            &json!({"label": "owner"}),
            &inventory(&[]),
        )
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].msg, "web needs the label owner");
    let owned = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"owner": "a"}}});
    assert!(t
        .violations(
            &review_of(&owned),
            &json!({"label": "owner"}),
            &inventory(&[])
        )
        .unwrap()
        .is_empty());
}

#[test]
fn templates_cannot_see_each_other() {
    let mut a = Template::compile(&template(OWNER)).unwrap();
    let mut other = template(
        "package other\nviolation[{\"msg\": \"x\"}] { data.k8srequiredowner.violation[_] }\n",
    );
    other["metadata"]["name"] = json!("other");
    let mut b = Template::compile(&other).unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}});
    let p = json!({"label": "owner"});
    assert_eq!(
        a.violations(&review_of(&pod), &p, &inventory(&[]))
            .unwrap()
            .len(),
        1
    );
    assert!(b
        .violations(&review_of(&pod), &p, &inventory(&[]))
        .unwrap()
        .is_empty());
}

#[test]
fn a_broken_template_or_constraint_is_refused_with_its_name() {
    let e =
        Template::compile(&template("package x\nviolation[{\"msg\": m}] { m := }\n")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ConstraintTemplate k8srequiredowner:"),
        "{e}"
    );
    let c = json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredOwner",
        "metadata": {"name": "must-own"}, "spec": {"enforcementAction": "sometimes"}});
    let e = Constraint::parse(&c).unwrap_err();
    assert!(
        e.to_string().starts_with("K8sRequiredOwner must-own:"),
        "{e}"
    );
}

#[test]
fn the_inventory_is_keyed_as_gatekeeper_syncs_it() {
    let inv = inventory(&[
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "a", "namespace": "shop"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ]);
    assert_eq!(
        inv["namespace"]["shop"]["networking.k8s.io/v1"]["Ingress"]["a"]["metadata"]["name"],
        "a"
    );
    assert_eq!(
        inv["cluster"]["v1"]["Namespace"]["shop"]["kind"],
        "Namespace"
    );
}

#[test]
fn a_cluster_scoped_review_has_no_namespace_for_matching() {
    let mut t = template(OWNER);
    t["metadata"]["name"] = json!("owner");
    let namespaced = json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredOwner",
        "metadata": {"name": "namespaced-only"}, "spec": {"match": {"scope": "Namespaced"}, "parameters": {"label": "owner"}}});
    let docs = vec![("t".to_string(), t), ("c".to_string(), namespaced)];
    let mut pack = Pack::build(&docs, std::time::Duration::from_millis(250)).unwrap();
    let role = Value::from(
        json!({"kind": {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole"},
        "name": "r", "operation": "CREATE", "object": {"metadata": {"name": "r"}}}),
    );
    assert!(pack.evaluate(&role, None).is_empty());
    let pod = Value::from(
        json!({"kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "dev",
        "name": "web", "operation": "CREATE", "object": {"metadata": {"name": "web"}}}),
    );
    let outcomes = pack.evaluate(&pod, None);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0].result.as_ref().unwrap()[0].msg,
        "web needs the label owner"
    );
}

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

fn constraint(kind: &str, name: &str, parameters: Json) -> Json {
    json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"parameters": parameters},
    })
}

#[test]
fn the_clusters_objects_are_refused_one_by_one_with_their_reasons() {
    let mut typed = template(OWNER);
    typed["spec"]["crd"]["spec"]["validation"] = json!({"openAPIV3Schema": {
        "type": "object", "properties": {"label": {"type": "string"}}}});
    let mut broken = template("package x\nviolation[{\"msg\": m}] { m := }\n");
    broken["metadata"]["name"] = json!("broken");
    broken["spec"]["crd"]["spec"]["names"]["kind"] = json!("K8sBroken");
    let mut twin = template(OWNER);
    twin["metadata"]["name"] = json!("twin");
    let folder = vec![("policies/labels.yaml:1".to_string(), template(OWNER))];
    let cluster: Vec<(String, Json)> = vec![
        ("cluster ConstraintTemplate twin".into(), twin),
        ("cluster ConstraintTemplate broken".into(), broken),
        (
            "cluster K8sRequiredOwner good".into(),
            constraint("K8sRequiredOwner", "good", json!({"label": "owner"})),
        ),
        (
            "cluster K8sRequiredOwner typo".into(),
            constraint("K8sRequiredOwner", "typo", json!({"lable": "owner"})),
        ),
        (
            "cluster K8sNothing orphan".into(),
            constraint("K8sNothing", "orphan", json!({})),
        ),
    ];
    // With the folder's template, which has no schema, `lable` is accepted as Gatekeeper
    // would (no schema, no check); the twin defining its kind again is refused.
    let (accepted, refused) = screen(&folder, &cluster);
    let names: Vec<&str> = accepted.iter().map(|(at, _)| at.as_str()).collect();
    assert_eq!(
        names,
        [
            "cluster K8sRequiredOwner good",
            "cluster K8sRequiredOwner typo"
        ]
    );
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].contains("kind K8sRequiredOwner is already defined by ConstraintTemplate k8srequiredowner in the policy folder"), "{refused:?}");
    assert!(
        refused[1].starts_with("cluster ConstraintTemplate broken: ConstraintTemplate broken:"),
        "{refused:?}"
    );
    assert!(
        refused[2].ends_with("K8sNothing orphan: no ConstraintTemplate defines kind K8sNothing"),
        "{refused:?}"
    );
    // From the cluster alone, with the typed template: the typo is refused by its schema.
    let cluster = vec![
        ("cluster ConstraintTemplate k8srequiredowner".into(), typed),
        cluster[2].clone(),
        cluster[3].clone(),
    ];
    let (accepted, refused) = screen(&[], &cluster);
    assert_eq!(accepted.len(), 2);
    assert_eq!(
        refused,
        ["cluster K8sRequiredOwner typo: K8sRequiredOwner typo: spec.parameters.lable: unknown field (the template's schema has: label)"]
    );
    // What is accepted builds a pack.
    assert!(Pack::build(&accepted, Duration::from_millis(100)).is_ok());
}

#[test]
fn a_rego_code_entry_may_say_it_is_rego_v1() {
    let mut doc = template("");
    doc["spec"]["targets"][0] = json!({
        "target": "admission.k8s.gatekeeper.sh",
        "code": [{"engine": "Rego", "source": {
            "version": "v1",
            "rego": "package k8srequiredowner\n\nviolation contains {\"msg\": msg} if {\n  not input.review.object.metadata.labels.owner\n  msg := \"needs an owner\"\n}\n",
        }}],
    });
    let mut t = Template::compile(&doc).unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}});
    let found = t
        .violations(&review_of(&pod), &json!({}), &inventory(&[]))
        .unwrap();
    assert_eq!(found[0].msg, "needs an owner");
    doc["spec"]["targets"][0]["code"][0]["source"]["version"] = json!("v2");
    let e = Template::compile(&doc).unwrap_err().to_string();
    assert!(e.contains("Rego version \"v2\" is not v0 or v1"), "{e}");
}

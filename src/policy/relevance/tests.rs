#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

fn relevance(modules: &[&str], data: &[Value]) -> Relevance {
    let mut engine = regorus::Engine::new();
    for (i, m) in modules.iter().enumerate() {
        engine
            .add_policy(format!("m{i}.rego"), (*m).to_string())
            .unwrap();
    }
    let ast: Json = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
    let packages = vec![vec!["p".to_string()], vec!["q".to_string()]];
    Relevance::read(&ast, &packages, &["deny", "warn"], data)
}

fn request(operation: &str, resource: &str) -> Value {
    Value::from_json_str(&format!(
        r#"{{"request": {{"operation": "{operation}", "resource": {{"group": "", "resource": "{resource}"}}}}}}"#
    ))
    .unwrap()
}

const Q: &str = "package q\ndeny contains \"q\" if input.request.operation == \"DELETE\"";

#[test]
fn leading_tests_on_the_request_exclude_a_package() {
    let r = relevance(
        &[
            r#"package p
deny contains "x" if {
	input.request.operation in {"CREATE", "UPDATE"}
	"pods" == input.request.resource.resource
	count(input.request.object.spec.containers) > 0
}
warn contains "y" if {
	input.request.operation == "CONNECT"
	input.request.subResource in ["exec", "attach"]
}"#,
            Q,
        ],
        &[],
    );
    assert!(r.guarded(0) && r.guarded(1));
    fn fields<'a>(
        r: &Relevance,
        op: &'a str,
        res: &'a str,
        sub: Option<&'a str>,
    ) -> Vec<Option<&'a str>> {
        r.fields
            .iter()
            .map(|f| match f.join(".").as_str() {
                "operation" => Some(op),
                "resource.resource" => Some(res),
                "subResource" => sub,
                other => unreachable!("{other}"),
            })
            .collect()
    }
    assert_eq!(r.mask_of(&fields(&r, "CREATE", "pods", None)), 0b01);
    assert_eq!(r.mask_of(&fields(&r, "CREATE", "services", None)), 0b00);
    assert_eq!(
        r.mask_of(&fields(&r, "CONNECT", "pods", Some("exec"))),
        0b01
    );
    assert_eq!(r.mask_of(&fields(&r, "CONNECT", "pods", Some("log"))), 0b00);
    assert_eq!(r.mask_of(&fields(&r, "DELETE", "pods", None)), 0b10);
    // Every combination of the tested values: each package alone, and neither.
    assert_eq!(r.reachable_masks(), BTreeSet::from([0b00, 0b01, 0b10]));
}

#[test]
fn a_body_that_opens_with_anything_else_keeps_its_package_evaluated() {
    for body in [
        // Not a test of the request first: it runs, and may fail, whatever the request.
        "deny contains \"x\" if {\n\tcount(input.request.object.spec) > 0\n\tinput.request.operation == \"CREATE\"\n}",
        "deny contains \"x\" if {\n\tinput.request.operation != \"CREATE\"\n}",
        "deny contains \"x\" if {\n\tnot input.request.operation == \"CREATE\"\n}",
        "deny contains \"x\" if {\n\tinput.request.operation == input.request.name\n}",
        "deny contains \"x\" if {\n\tinput.request.operation == \"CREATE\" with input.request.operation as \"CREATE\"\n}",
        "deny contains \"x\" if {\n\tinput.operation == \"CREATE\"\n}",
        "deny contains \"x\" if {\n\tinput.request == \"CREATE\"\n}",
        "deny contains \"x\" if {\n\tinput.request.operation in {\"CREATE\", 1}\n}",
        // No body at all: always a finding.
        "deny contains \"x\"",
    ] {
        let r = relevance(&[&format!("package p\n{body}"), Q], &[]);
        assert!(!r.guarded(0), "{body}");
        assert!(r.guarded(1), "{body}");
        assert!(
            r.reachable_masks().iter().all(|m| m & 1 == 1),
            "{body}: {:?}",
            r.reachable_masks()
        );
    }
}

#[test]
fn rules_or_data_at_or_inside_a_contract_path_keep_the_package_evaluated() {
    let guarded = "package p\ndeny contains \"x\" if input.request.operation == \"CREATE\"";
    // A package under the contract rule's path.
    let r = relevance(&[guarded, Q, "package p.warn\nx := 1"], &[]);
    assert!(!r.guarded(0));
    // Data at the contract rule's path.
    let data = Value::from_json_str(r#"{"p": {"warn": ["w"]}}"#).unwrap();
    assert!(!relevance(&[guarded, Q], &[data]).guarded(0));
    // Data beside it is fine.
    let data = Value::from_json_str(r#"{"p": {"settings": {"a": 1}}}"#).unwrap();
    assert!(relevance(&[guarded, Q], &[data]).guarded(0));
}

#[test]
fn the_rule_for_an_input_is_the_one_registered_for_its_mask() {
    let mut r = relevance(
        &[
            "package p\ndeny contains \"x\" if input.request.resource.resource == \"pods\"",
            Q,
        ],
        &[],
    );
    assert_eq!(r.rule_for(&request("CREATE", "pods")), None, "no rules yet");
    for mask in r.reachable_masks() {
        r.set_rule(mask, format!("m{mask}"));
    }
    assert_eq!(r.rule_for(&request("CREATE", "pods")), Some("m1"));
    assert_eq!(r.rule_for(&request("DELETE", "pods")), Some("m3"));
    assert_eq!(r.rule_for(&request("DELETE", "services")), Some("m2"));
    assert_eq!(r.rule_for(&request("CREATE", "services")), Some("m0"));
    // A field that is not a string passes no test.
    let odd = Value::from_json_str(
        r#"{"request": {"operation": 1, "resource": {"resource": ["pods"]}}}"#,
    )
    .unwrap();
    assert_eq!(r.rule_for(&odd), Some("m0"));
}

/// What the reader cannot read never lets a package be skipped: no AST at all, a module
/// whose rules are missing, a rule of a shape it does not know, a head it cannot follow.
#[test]
fn what_cannot_be_read_keeps_packages_evaluated() {
    let p = "package p\ndeny contains \"x\" if input.request.operation == \"CREATE\"";
    let packages = vec![vec!["p".to_string()], vec!["q".to_string()]];
    let read = |ast: &Json| Relevance::read(ast, &packages, &["deny", "warn"], &[]);
    let mut engine = regorus::Engine::new();
    engine.add_policy("p.rego".into(), p.into()).unwrap();
    engine.add_policy("q.rego".into(), Q.into()).unwrap();
    let ast: Json = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
    let which = |ast: &Json, name: &str| {
        ast.as_array()
            .unwrap()
            .iter()
            .position(|m| m["ast"]["package"]["refr"]["Var"]["value"] == name)
            .unwrap()
    };
    let (ip, iq) = (which(&ast, "p"), which(&ast, "q"));
    assert!(read(&ast).guarded(0) && read(&ast).guarded(1));

    let none = read(&Json::Null);
    assert!(none.reachable_masks().is_empty());
    assert_eq!(none.rule_for(&request("DELETE", "pods")), None);

    let mut missing = ast.clone();
    missing[iq]["ast"].as_object_mut().unwrap().remove("rules");
    assert!(read(&missing).guarded(0) && !read(&missing).guarded(1));

    let mut unknown = ast.clone();
    unknown[ip]["ast"]["rules"][0] = serde_json::json!({"Weird": {}});
    assert!(!read(&unknown).guarded(0) && read(&unknown).guarded(1));

    let mut dynamic = ast.clone();
    let head = &mut dynamic[ip]["ast"]["rules"][0]["Spec"]["head"]["Set"]["refr"];
    *head =
        serde_json::json!({"RefBrack": {"refr": head.clone(), "index": {"Var": {"value": "k"}}}});
    assert!(!read(&dynamic).guarded(0) && read(&dynamic).guarded(1));

    let mut no_package = ast.clone();
    no_package[iq]["ast"]["package"] = Json::Null;
    assert!(!read(&no_package).guarded(0) && !read(&no_package).guarded(1));
}

#[test]
fn rego_v0_partial_sets_are_read_like_v1_ones() {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine
        .add_policy(
            "p.rego".into(),
            "package p\ndeny[msg] {\n\tinput.request.operation == \"CREATE\"\n\tmsg := \"x\"\n}\n"
                .into(),
        )
        .unwrap();
    let ast: Json = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
    let r = Relevance::read(&ast, &[vec!["p".to_string()]], &["deny"], &[]);
    assert!(r.guarded(0));
}

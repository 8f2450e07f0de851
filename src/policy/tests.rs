#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use super::*;

fn set_of(files: &[(&str, &str)]) -> Result<Arc<PolicySet>, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    PolicySet::load(dir.path(), EvalOptions::default()).map(Arc::new)
}

fn eval(set: &Arc<PolicySet>, input: &str) -> Evaluation {
    set.engine().evaluate(&Value::from_json_str(input).unwrap())
}

#[test]
fn collects_every_rule_kind_from_every_package() {
    let set = set_of(&[
        (
            "a.rego",
            "package a\ndeny contains \"no\" if input.x == 1\nwarn contains {\"msg\": \"careful\", \"code\": 7} if true\n",
        ),
        (
            "b/b.rego",
            "package b.c\nrequire_grant contains \"grant\" if true\npatch contains {\"op\": \"add\", \"path\": \"/x\", \"value\": 1} if true\nenforcement := \"audit\"\n",
        ),
    ])
    .unwrap();
    assert_eq!(set.package_names(), vec!["a", "b.c"]);
    let out = eval(&set, r#"{"x": 1}"#);
    let a = &out.packages[0];
    assert_eq!(a.of_kind(RuleKind::Deny).next().unwrap().msg, "no");
    let warn = a.of_kind(RuleKind::Warn).next().unwrap();
    assert_eq!(warn.msg, "careful");
    assert!(warn.details.is_some());
    let b = &out.packages[1];
    assert_eq!(b.enforcement, Enforcement::Audit);
    assert_eq!(b.of_kind(RuleKind::RequireGrant).count(), 1);
    assert_eq!(b.patch.len(), 1);
}

#[test]
fn library_packages_without_contract_rules_are_not_evaluated() {
    let set = set_of(&[
        ("lib.rego", "package lib\nbad(x) := y if y := x\n"),
        (
            "p.rego",
            "package p\nimport data.lib\ndeny contains \"d\" if lib.bad(1) == 1\n",
        ),
    ])
    .unwrap();
    assert_eq!(set.package_names(), vec!["p"]);
    assert_eq!(eval(&set, "{}").packages[0].findings.len(), 1);
}

#[test]
fn a_runtime_error_is_attributed_to_its_package_and_others_still_decide() {
    let set = set_of(&[
        (
            "a.rego",
            "package a\nx := 1 if true\nx := 2 if true\ndeny contains \"a\" if x > 0\n",
        ),
        ("b.rego", "package b\ndeny contains \"b says no\" if true\n"),
    ])
    .unwrap();
    let out = eval(&set, "{}");
    assert!(out.packages[0].error.is_some(), "{out:?}");
    assert_eq!(out.packages[1].findings[0].msg, "b says no");
}

#[test]
fn broken_contract_shapes_are_errors_not_silent_passes() {
    let set = set_of(&[
        ("a.rego", "package a\ndeny contains 42 if true\n"),
        (
            "b.rego",
            "package b\npatch contains \"not a patch\" if true\n",
        ),
        (
            "c.rego",
            "package c\nenforcement := \"sometimes\"\ndeny contains \"x\" if false\n",
        ),
    ])
    .unwrap();
    let out = eval(&set, "{}");
    for p in &out.packages {
        assert!(p.error.is_some(), "{} should fail: {p:?}", p.package);
    }
}

#[test]
fn compile_errors_name_file_line_and_column() {
    let err = set_of(&[(
        "bad/x.rego",
        "package x\ndeny contains msg if {\n  msg := \n}\n",
    )])
    .unwrap_err()
    .to_string();
    assert!(err.contains("x.rego:"), "{err}");
    assert!(err.contains(":3:") || err.contains(":4:"), "{err}");
}

#[test]
fn unknown_functions_fail_at_load_not_on_the_first_request() {
    let err = set_of(&[(
        "x.rego",
        "package x\ndeny contains \"x\" if http.send({})\n",
    )])
    .unwrap_err();
    assert!(err.to_string().contains("x.rego"), "{err}");
}

#[test]
fn a_misspelt_function_inside_a_rule_fails_at_load() {
    let err = set_of(&[(
        "acme/typo.rego",
        "package acme.typo\n\ndeny contains msg if {\n\tinput.request.operation == \"CREATE\"\n\tmsg := sprintff(\"x %s\", [\"y\"])\n}\n",
    )])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("typo.rego:5:") && err.contains("sprintff"),
        "{err}"
    );
}

#[test]
fn a_contract_rule_of_the_wrong_shape_fails_at_load() {
    for (text, line) in [
        ("package x\n\ndeny := \"oops\"\n", 3),
        ("package x\n\nwarn if {\n  input.x\n}\n", 3),
        ("package x\n  violation = {\"a\"}\n", 2),
    ] {
        let err = set_of(&[("x.rego", text)]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("x.rego:{line}:")) && err.contains("multi-value rule"),
            "{text}: {err}"
        );
    }
    // Other rules that merely start with a contract rule's name are fine.
    assert!(set_of(&[(
        "x.rego",
        "package x\n\ndenylist := {\"a\"}\n\ndeny contains msg if {\n\tsome msg in denylist\n}\n"
    )])
    .is_ok());
}

#[test]
fn an_empty_folder_is_refused() {
    let err = set_of(&[("README.md", "hi")]).unwrap_err();
    assert!(matches!(err, LoadError::Empty(_)), "{err}");
}

/// 25 million cheap steps: far more than a test's budget.
const SLOW_POLICY: &str = "package slow\ndeny contains \"x\" if { count([1 | some a in numbers.range(1, 5000); some b in numbers.range(1, 5000); a < b]) < 0 }\n";

#[test]
fn a_runaway_policy_is_stopped_by_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.rego"), SLOW_POLICY).unwrap();
    let set = Arc::new(
        PolicySet::load(
            dir.path(),
            EvalOptions {
                budget: Duration::from_millis(20),
                ..EvalOptions::default()
            },
        )
        .unwrap(),
    );
    let out = set.engine().evaluate(&Value::new_object());
    let err = out.packages[0].error.as_deref().unwrap_or_default();
    assert!(err.contains("time budget"), "{out:?}");
}

#[test]
fn a_runaway_package_fails_alone_and_the_others_still_decide() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.rego"), SLOW_POLICY).unwrap();
    std::fs::write(
        dir.path().join("steady.rego"),
        "package steady\nrequire_grant contains \"needs a grant\" if { true }\n",
    )
    .unwrap();
    let set = Arc::new(
        PolicySet::load(
            dir.path(),
            EvalOptions {
                budget: Duration::from_millis(100),
                ..EvalOptions::default()
            },
        )
        .unwrap(),
    );
    let out = set.engine().evaluate(&Value::new_object());
    let slow = out.packages.iter().find(|p| &*p.package == "slow").unwrap();
    assert!(
        slow.error.as_deref().unwrap_or("").contains("time budget"),
        "{out:?}"
    );
    let steady = out
        .packages
        .iter()
        .find(|p| &*p.package == "steady")
        .unwrap();
    assert!(steady.error.is_none(), "{out:?}");
    assert_eq!(steady.findings[0].msg, "needs a grant");
}

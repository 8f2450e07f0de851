//! OPA compatibility, checked rather than assumed: the reference engine (OPA's own Go
//! evaluator, through ../shared/tools/opa-eval) runs the same files.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{root, run, suite_reviews};

/// The reference engine: `$JITGUARD_OPA_EVAL`, else `../shared/tools/opa-eval`.
pub(crate) fn opa_eval() -> PathBuf {
    let path = std::env::var_os("JITGUARD_OPA_EVAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/tools/opa-eval"));
    assert!(
        path.exists(),
        "the reference OPA engine is missing at {} (set JITGUARD_OPA_EVAL to its path)",
        path.display()
    );
    path
}

fn opa(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(opa_eval())
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn counts(summary: &str) -> (usize, usize) {
    let last = summary
        .lines()
        .rev()
        .find(|l| l.contains(" passed, "))
        .unwrap();
    let nums: Vec<usize> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn the_shipped_pack_tests_pass_under_jitguard_and_under_opa_alike() {
    let (code, out, err) = run(&["test", "policies"]);
    assert_eq!(code, 0, "{out}{err}");
    let (opa_code, opa_out, opa_err) = opa(&["test", "policies"]);
    assert_eq!(opa_code, 0, "OPA: {opa_out}{opa_err}");
    let ours = counts(&out);
    assert_eq!(ours, counts(&opa_out), "jitguard: {out}\nOPA: {opa_out}");
    assert!(ours.0 > 20, "{out}");
}

/// For every AdmissionReview of the fixtures and of the shipped suites, the findings
/// jitguard computes equal what OPA computes for the same packages, on the same input
/// (with the same `input.jit`).
#[test]
fn decisions_on_every_fixture_and_suite_case_equal_the_reference_engines() {
    let dir = tempfile::tempdir().unwrap();
    let policies = root().join("policies");
    let set = std::sync::Arc::new(
        jitguard::policy::PolicySet::load(&policies, jitguard::policy::EvalOptions::default())
            .unwrap(),
    );
    let mut engine = set.engine();
    let mut inputs = Vec::new();
    let mut ours = Vec::new();
    let fixtures = root().join("tests/fixtures/admission");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut reviews: Vec<Value> = names
        .iter()
        .map(|path| {
            let mut review: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            review["jit"] = json!({"now_ns": 1_767_268_800_000_000_000_i64, "grants": []});
            review
        })
        .collect();
    let fixtures_count = reviews.len();
    reviews.extend(suite_reviews());
    assert!(
        reviews.len() > fixtures_count + 25,
        "the suites' cases are compared too"
    );
    for (i, review) in reviews.iter().enumerate() {
        let file = dir.path().join(format!("review-{i:03}.json"));
        std::fs::write(&file, serde_json::to_vec(review).unwrap()).unwrap();
        inputs.push(file.display().to_string());
        let input = regorus::Value::from_json_str(&review.to_string()).unwrap();
        ours.push(engine.evaluate(&input));
    }
    let mut args = vec!["batch", "-p", "policies", "-q", "jitguard"];
    args.extend(inputs.iter().map(String::as_str));
    let (code, out, err) = opa(&args);
    assert_eq!(code, 0, "OPA: {err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), ours.len());
    let mut compared = 0;
    for (line, evaluation) in lines.iter().zip(&ours) {
        for pkg in &evaluation.packages {
            assert!(pkg.error.is_none(), "{}: {:?}", line["input"], pkg.error);
            let name = pkg.package.strip_prefix("jitguard.").unwrap();
            let theirs = &line["result"][name];
            for rule in ["deny", "violation", "require_grant", "warn"] {
                let mut expected: Vec<String> = theirs[rule]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v["msg"].as_str().unwrap().to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut got: Vec<String> = pkg
                    .findings
                    .iter()
                    .filter(|f| f.rule.name() == rule)
                    .map(|f| f.msg.clone())
                    .collect();
                expected.sort();
                got.sort();
                assert_eq!(got, expected, "{} {} {rule}", line["input"], pkg.package);
                compared += 1;
            }
        }
    }
    assert!(compared >= 100, "only {compared} comparisons");
}

/// `dry-run -o input` prints the input exactly as policies saw it, `jit` included, so a
/// decision can be replayed under OPA: the findings match, including the change window
/// (which reads `input.jit.now_ns`).
#[test]
fn dry_run_input_output_replays_the_same_decision_under_opa() {
    let dir = tempfile::tempdir().unwrap();
    let review = root().join("tests/fixtures/admission/pod-create-prod.json");
    // A Saturday: the change window adds its finding to the namespace one.
    let at = "2026-11-21T12:00:00Z";
    let dry_run = |output: &str| {
        run(&[
            "dry-run",
            "-f",
            review.to_str().unwrap(),
            "--at",
            at,
            "-o",
            output,
        ])
    };
    let (code, out, err) = dry_run("input");
    // The inputs were produced: a success, whatever they decide (`set -e` replay scripts).
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let input: Value = serde_json::from_str(out.trim()).unwrap();
    let at_ns = at.parse::<jiff::Timestamp>().unwrap().as_nanosecond();
    assert_eq!(input["jit"]["now_ns"].as_i64().map(i128::from), Some(at_ns));
    assert_eq!(input["jit"]["grants"], json!([]));
    assert_eq!(input["request"]["name"], "web");
    let file = dir.path().join("input.json");
    std::fs::write(&file, out.trim()).unwrap();

    let (code, explained, err) = dry_run("json");
    assert_eq!(code, 1, "{explained}{err}");
    let ours: Value = serde_json::from_str(&explained).unwrap();
    let mut ours: Vec<String> = ours[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["package"].as_str().unwrap(),
                f["msg"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        ours.iter().any(|f| f.starts_with("jitguard.changewindow ")),
        "{ours:?}"
    );

    let (code, out, err) = opa(&[
        "batch",
        "-p",
        "policies",
        "-q",
        "jitguard",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "OPA: {err}");
    let result: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let mut theirs = Vec::new();
    for (package, rules) in result["result"].as_object().unwrap() {
        for rule in ["deny", "violation", "require_grant", "warn"] {
            for msg in rules[rule].as_array().into_iter().flatten() {
                theirs.push(format!("jitguard.{package} {}", msg.as_str().unwrap()));
            }
        }
    }
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

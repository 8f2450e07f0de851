//! Gatekeeper conformance: gatekeeper-library's general policies (templates, sample
//! constraints and their gator suites, unchanged, in ../shared/conformance), run by
//! jitguard's Gatekeeper support. Every case runs; the count that passes may only grow.

use crate::common::root;

#[test]
fn gatekeeper_library_suites_pass() {
    let library = root().join("../shared/conformance/gatekeeper-library/library/general");
    assert!(
        library.is_dir(),
        "the conformance data is missing at {}",
        library.display()
    );
    let mut suites: Vec<_> = std::fs::read_dir(&library)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path().join("suite.yaml")))
        .filter(|p| p.exists())
        .collect();
    suites.sort();
    let (mut passed, mut failed) = (0, Vec::new());
    for suite in &suites {
        for (case, result) in jitguard::gatekeeper::suite::run(suite).unwrap() {
            match result {
                Ok(()) => passed += 1,
                Err(e) => failed.push(format!("{case}: {e}")),
            }
        }
    }
    let total = passed + failed.len();
    eprintln!("gatekeeper-library: {passed} of {total} cases pass");
    for f in &failed {
        eprintln!("  FAIL {f}");
    }
    assert_eq!(suites.len(), 30);
    assert!(total >= 130, "{total} cases");
    // Every case passes; the count may only grow with the library.
    assert!(
        passed >= PASSING,
        "{passed} of {total} pass, fewer than {PASSING}:\n{}",
        failed.join("\n")
    );
}

const PASSING: usize = 130;

/// gatekeeper-library's templates under OPA's own evaluator (v1.20, built from its Go
/// module by tests/opa/build.sh, reading Rego v0 as Gatekeeper does): for every case
/// whose constraint selects the object, OPA finds the violations jitguard finds, given
/// the same `input.review`, `input.parameters` and `data.inventory`.
#[test]
fn the_library_templates_find_under_opa_what_they_find_under_jitguard() {
    use jitguard::gatekeeper::{inventory, review_of, Constraint, Template};
    use serde_json::{json, Value};

    let opa = std::process::Command::new("bash")
        .arg(root().join("tests/opa/build.sh"))
        .output()
        .unwrap();
    assert!(
        opa.status.success(),
        "{}",
        String::from_utf8_lossy(&opa.stderr)
    );
    let opa = String::from_utf8(opa.stdout).unwrap().trim().to_string();
    let library = root().join("../shared/conformance/gatekeeper-library/library/general");
    let read = |path: &std::path::Path| -> Vec<Value> {
        let text = std::fs::read_to_string(path).unwrap();
        text.split("\n---")
            .filter_map(|d| yaml_serde::from_str::<Value>(d).ok())
            .filter(|v| !v.is_null())
            .collect()
    };
    let mut suites: Vec<_> = std::fs::read_dir(&library)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("suite.yaml").exists())
        .collect();
    suites.sort();
    let (mut compared, mut differ) = (0, Vec::new());
    for dir in suites {
        let suite = read(&dir.join("suite.yaml")).remove(0);
        for test in suite["tests"].as_array().unwrap() {
            let template_doc = read(&dir.join(test["template"].as_str().unwrap())).remove(0);
            let mut template = Template::compile(&template_doc).unwrap();
            let constraint = template
                .admit(
                    Constraint::parse(
                        &read(&dir.join(test["constraint"].as_str().unwrap())).remove(0),
                    )
                    .unwrap(),
                )
                .unwrap();
            let work = tempfile::tempdir().unwrap();
            for (i, rego) in template.sources().iter().enumerate() {
                std::fs::write(work.path().join(format!("{i}.rego")), rego).unwrap();
            }
            std::fs::write(
                work.path().join("check.rego"),
                format!(
                    "package jitguard_check\n\nresults = [r | c := data.jitguard_cases[_]; r := msgs with input as c.input with data.inventory as c.inventory]\n\nmsgs = sort([v.msg | v := {}[_]])\n",
                    template.query()
                ),
            )
            .unwrap();
            let (mut labels, mut cases, mut ours) = (Vec::new(), Vec::new(), Vec::new());
            for case in test["cases"].as_array().unwrap() {
                let object = read(&dir.join(case["object"].as_str().unwrap())).remove(0);
                let objects: Vec<Value> = case["inventory"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|f| read(&dir.join(f.as_str().unwrap())))
                    .collect();
                let review = review_of(&object);
                let namespace_labels = objects
                    .iter()
                    .find(|o| {
                        o["kind"] == "Namespace" && o["metadata"]["name"] == review["namespace"]
                    })
                    .map(|o| &o["metadata"]["labels"]);
                if !constraint.selects(&review, namespace_labels) {
                    continue;
                }
                let inventory = inventory(&objects);
                let found = template
                    .violations(&review, &constraint.parameters, &inventory)
                    .map(|v| {
                        let mut msgs: Vec<String> = v.into_iter().map(|v| v.msg).collect();
                        msgs.sort();
                        json!(msgs)
                    })
                    .unwrap_or_else(|e| json!(format!("error: {e}")));
                labels.push(format!(
                    "{}/{}/{}",
                    dir.file_name().unwrap().to_string_lossy(),
                    test["name"].as_str().unwrap_or_default(),
                    case["name"].as_str().unwrap_or_default()
                ));
                cases.push(json!({"input": {"review": review, "parameters": constraint.parameters}, "inventory": inventory}));
                ours.push(found);
            }
            std::fs::write(
                work.path().join("data.json"),
                json!({"jitguard_cases": cases}).to_string(),
            )
            .unwrap();
            let out = std::process::Command::new(&opa)
                .args(["eval", "--v0-compatible", "--format", "json", "--data"])
                .arg(work.path())
                .arg("data.jitguard_check.results")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "opa eval for {}: {}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
            let theirs = answer["result"][0]["expressions"][0]["value"].clone();
            for (i, label) in labels.iter().enumerate() {
                compared += 1;
                if theirs[i] != ours[i] {
                    differ.push(format!("{label}: OPA {} jitguard {}", theirs[i], ours[i]));
                }
            }
        }
    }
    eprintln!(
        "gatekeeper-library under OPA: {compared} selected cases compared, {} differ",
        differ.len()
    );
    for d in &differ {
        eprintln!("  {d}");
    }
    assert!(compared >= 100, "{compared} cases compared");
    assert!(differ.is_empty(), "{differ:#?}");
}

/// `dry-run -f` reads templates and constraints among its files as `gator test` does:
/// policy beside the folder's, not objects to decide; and every object in the files is
/// the inventory, so a referential template (unique Ingress hosts) sees the others.
#[test]
fn dry_run_decides_manifests_with_the_files_templates_constraints_and_inventory() {
    let sample =
        root().join("../shared/conformance/gatekeeper-library/library/general/uniqueingresshost");
    let at = |p: &str| sample.join(p).display().to_string();
    let policies = root().join("tests/fixtures/policies/gatekeeper");
    let policies = policies.to_str().unwrap();
    let (template, constraint) = (
        at("template.yaml"),
        at("samples/unique-ingress-host/constraint.yaml"),
    );
    let ingress = at("samples/unique-ingress-host/example_disallowed.yaml");
    let other = at("samples/unique-ingress-host/example_inventory_disallowed.yaml");
    let dry_run = |files: &[&str]| {
        let mut args = vec!["dry-run", "--policies", policies, "-f"];
        args.extend_from_slice(files);
        crate::common::run(&args)
    };
    let (code, out, err) = dry_run(&[&template, &constraint, &ingress, &other]);
    assert_eq!(code, 1, "{out}{err}");
    // Two objects decided (the template and constraint are not), each in conflict with
    // the other through the inventory.
    assert_eq!(out.matches("DENY  Ingress").count(), 2, "{out}");
    assert!(
        out.contains("[unique-ingress-host] violation: ingress host conflicts with an existing ingress <example-host.example.com>"),
        "{out}"
    );
    assert!(!out.contains("ConstraintTemplate"), "{out}");
    // Alone, the Ingress has nothing to conflict with.
    let (code, out, err) = dry_run(&[&template, &constraint, &ingress]);
    assert_eq!(code, 0, "{out}{err}");
    // A constraint in the files without its template is refused, naming it.
    let (code, _, err) = dry_run(&[&constraint, &ingress]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unique-ingress-host: no ConstraintTemplate"),
        "{err}"
    );
}

mod served {
    use jiff::{SignedDuration, Timestamp};

    use crate::common::{grant, grants_yaml, review, scope, with_label, Options, Server};

    fn server(grants: &[serde_json::Value]) -> Server {
        Server::with(Options {
            policies: Some("gatekeeper"),
            grants: Some(grants_yaml(grants)),
            ..Options::default()
        })
    }

    /// Templates and constraints in the policy folder are served beside the Rego pack:
    /// denials read as Gatekeeper prints them, only selected constraints are evaluated,
    /// and warn and dryrun do not deny.
    #[tokio::test]
    async fn constraints_in_the_policy_folder_decide_admissions() {
        let server = server(&[]);
        let r = server.decide("/validate", &review("pod-create-dev")).await;
        assert_eq!(r["allowed"], false, "{r}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("[cost-center-dev] you must provide labels: {\"costcenter\"}"),
            "{message}"
        );
        // Selected constraints only: the Services one, and the others' selectors, stay out.
        for other in [
            "cost-center-services",
            "cost-center-warn",
            "cost-center-prod",
        ] {
            assert!(!message.contains(other), "{message}");
        }
        let labelled = with_label(review("pod-create-dev"), "costcenter", "42");
        assert_eq!(server.decide("/validate", &labelled).await["allowed"], true);
        let warn = with_label(review("pod-create-dev"), "mode", "warn");
        let r = server.decide("/validate", &warn).await;
        assert_eq!(r["allowed"], true, "{r}");
        assert!(
            r["warnings"]
                .to_string()
                .contains("you must provide labels"),
            "{r}"
        );
        let dryrun = with_label(review("pod-create-dev"), "mode", "dryrun");
        assert_eq!(server.decide("/validate", &dryrun).await["allowed"], true);
        // Each constraint has its series, counted whether or not it was enforced; those
        // that selected nothing are at zero.
        let metrics = server.metrics().await;
        for series in [
            r#"jitguard_policy_findings_total{package="cost-center-dev",rule="violation"} 1"#,
            r#"jitguard_policy_findings_total{package="cost-center-warn",rule="violation"} 1"#,
            r#"jitguard_policy_findings_total{package="cost-center-dryrun",rule="violation"} 1"#,
            r#"jitguard_policy_findings_total{package="cost-center-services",rule="violation"} 0"#,
            r#"jitguard_policy_errors_total{package="cost-center-dev"} 0"#,
        ] {
            assert!(metrics.contains(series), "{series} not in\n{metrics}");
        }
        // The Rego pack still decides beside them.
        let forbidden = with_label(labelled, "forbidden", "true");
        let r = server.decide("/validate", &forbidden).await;
        assert!(
            r["status"]["message"]
                .to_string()
                .contains("[test.base] objects labelled forbidden=true"),
            "{r}"
        );
    }

    /// A constraint annotated `jitguard.dev/exception: grant` asks for a grant instead of
    /// denying outright: without one the denial says how to ask; a covering live grant
    /// lifts it, and the answer names the grant.
    #[tokio::test]
    async fn a_grant_lifts_a_constraint_annotated_for_exceptions() {
        let server = server(&[]);
        let r = server.decide("/validate", &review("pod-create-prod")).await;
        assert_eq!(r["allowed"], false, "{r}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("[cost-center-prod] you must provide labels"),
            "{message}"
        );
        assert!(
            message.contains(
                "kubectl jit request --namespace prod --resource pods --operation CREATE"
            ),
            "{message}"
        );
        let server = server_with_grant();
        let r = server.decide("/validate", &review("pod-create-prod")).await;
        assert_eq!(r["allowed"], true, "{r}");
        assert_eq!(
            r["auditAnnotations"]["jitguard.dev/grant"],
            "alice-costcenter"
        );
    }

    /// Parameters are checked against the template's openAPIV3Schema: a constraint whose
    /// parameters do not fit is refused with its name, the field and the reason, and the
    /// last good policies keep serving.
    #[tokio::test]
    async fn parameters_that_do_not_fit_the_templates_schema_are_refused() {
        refused_and_the_last_good_policies_serve(
            "typo.yaml",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata:\n  name: one-label\nspec:\n  parameters:\n    labels: costcenter\n",
            "K8sRequiredLabels one-label: spec.parameters.labels: must be an array, not a string",
        )
        .await;
    }

    fn server_with_grant() -> Server {
        server(&[grant(
            "alice-costcenter",
            "alice@example.com",
            scope(&["CREATE"], &[""], &["pods"], &["prod"], &[]),
            Timestamp::now() - SignedDuration::from_mins(5),
            "1h",
        )])
    }

    /// A constraint whose kind no template defines refuses the whole policy change, with
    /// the file and the constraint named; the last good policies keep serving.
    #[tokio::test]
    async fn a_constraint_without_its_template_is_refused_with_its_name() {
        refused_and_the_last_good_policies_serve(
            "broken.yaml",
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoSuchThing\nmetadata:\n  name: orphan\nspec: {}\n",
            "no ConstraintTemplate in the policy folder defines kind K8sNoSuchThing",
        )
        .await;
    }

    /// Writes `text` as `file` into a served policy folder: the change is refused with
    /// `reason` in the log, and the fixture's constraints still decide.
    async fn refused_and_the_last_good_policies_serve(file: &str, text: &str, reason: &str) {
        let server = server(&[]);
        std::fs::write(server.policies().join(file), text).unwrap();
        assert!(
            server
                .wait_for_log(reason, std::time::Duration::from_secs(10))
                .await,
            "{reason}"
        );
        let r = server.decide("/validate", &review("pod-create-dev")).await;
        assert!(
            r["status"]["message"]
                .to_string()
                .contains("[cost-center-dev]"),
            "{r}"
        );
    }
}

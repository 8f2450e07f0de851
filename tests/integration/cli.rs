//! The CI-facing commands: dry-run, test, check, certs, crd. Exit codes are the contract.

use crate::common::{root, run};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const DEV_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: dev\nspec:\n  containers:\n  - name: web\n    image: nginx\n";

#[test]
fn dry_run_exits_0_when_everything_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "ok.yaml", DEV_POD);
    let (code, out, err) = run(&["dry-run", "-f", &f]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ALLOW Pod dev/web"), "{out}");
}

#[test]
fn dry_run_exits_1_on_a_denial_and_names_package_message_and_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "m/all.yaml",
        &format!("{DEV_POD}---\n{}", DEV_POD.replace("dev", "prod")),
    );
    let (code, out, _) = run(&[
        "dry-run",
        "-f",
        dir.path().to_str().unwrap(),
        "--user",
        "alice@example.com",
    ]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ALLOW Pod dev/web") && lines[0].ends_with(&format!("{f}:1)")),
        "{out}"
    );
    assert!(
        lines[1].starts_with("DENY  Pod prod/web") && lines[1].ends_with(&format!("{f}:11)")),
        "{out}"
    );
    assert!(out.contains("[jitguard.namespaces] require_grant: creation of Pod prod/web in protected namespace prod needs a just-in-time grant"), "{out}");
    assert!(out.contains("to get access: kubectl jit request --namespace prod --resource pods --operation CREATE --name web"), "{out}");
}

#[test]
fn dry_run_json_output_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "p.yaml", &DEV_POD.replace("dev", "prod"));
    let (code, out, _) = run(&["dry-run", "-f", &f, "-o", "json", "--operation", "DELETE"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["decision"], "deny");
    // Other packages (the change window, depending on the hour) may add findings.
    let findings = v[0]["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["package"] == "jitguard.namespaces" && f["rule"] == "require_grant"),
        "{out}"
    );
    assert!(v[0]["request_access"]
        .as_str()
        .unwrap()
        .contains("--operation DELETE"));
}

#[test]
fn dry_run_uses_admission_review_files_as_they_are() {
    let f = root().join("tests/fixtures/admission/pod-exec-prod.json");
    let (code, out, _) = run(&["dry-run", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("kubectl exec into pod prod/web needs a just-in-time grant"),
        "{out}"
    );
}

#[test]
fn dry_run_replays_grants_at_any_moment() {
    let f = root().join("tests/fixtures/admission/pod-exec-prod-bob.json");
    let f = f.to_str().unwrap();
    let grants = "manifests/dev/grants.yaml";
    let (code, out, _) = run(&[
        "dry-run",
        "-f",
        f,
        "--grants",
        grants,
        "--at",
        "2026-06-01T00:00:00Z",
        "--explain",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("allowed by grant bob-exec-prod"), "{out}");
    // Before approval, the grant is not live.
    let (code, _, _) = run(&[
        "dry-run",
        "-f",
        f,
        "--grants",
        grants,
        "--at",
        "2025-12-31T23:59:59Z",
    ]);
    assert_eq!(code, 1);
}

/// What `kubectl kustomize` renders: a labelled Namespace and a Deployment inside it. The
/// Namespace's label protects the Deployment beside it, as it would in the cluster.
#[test]
fn dry_run_reads_namespace_labels_from_the_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let deployment =
        std::fs::read_to_string(root().join("policies/suites/manifests/deployment-staging.yaml"))
            .unwrap();
    let namespace = |protected: &str| {
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: staging\n  labels: {{jitguard.dev/protected: \"{protected}\"}}\n---\n{deployment}")
    };
    let file = dir.path().join("rendered.yaml");
    // Inside staging's change window (Tuesday 11:00 in Berlin), so that only the label
    // decides, whatever the time the test runs at.
    let at = ["--at", "2026-11-24T10:00:00Z"];
    std::fs::write(&file, namespace("true")).unwrap();
    let (code, out, err) = run(&[&["dry-run", "-f", file.to_str().unwrap()][..], &at].concat());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("creation of Deployment staging/checkout in protected namespace staging needs a just-in-time grant"),
        "{out}"
    );
    std::fs::write(&file, namespace("false")).unwrap();
    let (code, out, err) = run(&[&["dry-run", "-f", file.to_str().unwrap()][..], &at].concat());
    assert_eq!(code, 0, "{out}{err}");
}

/// The CI gate cannot be talked out of a protection: a Namespace document among the
/// manifests does not override what the grants file (standing in for the cluster) says,
/// and unlabelling a protected namespace is itself a finding.
#[test]
fn dry_run_keeps_known_namespace_labels_over_the_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = write(
        dir.path(),
        "cluster.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: staging\n  labels: {jitguard.dev/protected: \"true\"}\n",
    );
    let deployment =
        std::fs::read_to_string(root().join("policies/suites/manifests/deployment-staging.yaml"))
            .unwrap();
    let change = write(
        dir.path(),
        "change.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: staging\n  labels: {{jitguard.dev/protected: \"false\"}}\n---\n{deployment}"),
    );
    let (code, out, err) = run(&[
        "dry-run",
        "-f",
        &change,
        "--grants",
        &cluster,
        "--at",
        "2026-11-24T10:00:00Z",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("changing protected namespace staging needs a just-in-time grant"),
        "{out}"
    );
    assert!(
        out.contains("creation of Deployment staging/checkout in protected namespace staging needs a just-in-time grant"),
        "{out}"
    );
}

#[test]
fn dry_run_exits_2_on_parse_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "bad.yaml", &format!("{DEV_POD}---\nkind: [\n"));
    let (code, out, err) = run(&["dry-run", "-f", &f]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(&format!("{f}:1")), "{err}");
    let (code, _, err) = run(&["dry-run", "-f", "/nonexistent.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.yaml"), "{err}");
}

#[test]
fn dry_run_exits_2_on_policy_compile_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("p");
    write(
        &policies,
        "broken.rego",
        "package broken\n\ndeny contains msg if {\n  msg := \n}\n",
    );
    let f = write(dir.path(), "ok.yaml", DEV_POD);
    let (code, _, err) = run(&[
        "dry-run",
        "--policies",
        policies.to_str().unwrap(),
        "-f",
        &f,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("broken.rego:4:") || err.contains("broken.rego:5:"),
        "{err}"
    );
}

#[test]
fn test_runs_the_shipped_pack_and_reports_each_test() {
    let (code, out, err) = run(&["test", "policies"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("PASS ") || l.ends_with(" passed, 0 failed")),
        "{out}"
    );
    assert!(out.contains(
        "PASS  data.jitguard.interactive_test.test_exec_into_a_protected_pod_needs_a_grant"
    ));
}

/// Nothing run is not a pass: an empty or wrong folder, or a filter that matches no
/// test, exits 2 and says why.
#[test]
fn test_with_no_tests_to_run_exits_2_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().to_str().unwrap();
    let (code, out, err) = run(&["test", empty]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(&format!("no tests under {empty}")), "{err}");
    let (code, _, err) = run(&["test", "policies", "--run", "no-such-test"]);
    assert_eq!(code, 2);
    assert!(err.contains("matching --run \"no-such-test\""), "{err}");
}

#[test]
fn test_exits_1_on_a_failing_test_and_2_on_a_compile_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package p\n\ndeny contains \"x\" if input.x == 1\n",
    );
    write(
        dir.path(),
        "p_test.rego",
        "package p_test\n\nimport data.p\n\ntest_ok if { \"x\" in p.deny with input as {\"x\": 1} }\n\ntest_wrong if { \"x\" in p.deny with input as {\"x\": 2} }\n",
    );
    let (code, out, _) = run(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PASS  data.p_test.test_ok"), "{out}");
    assert!(out.contains("FAIL  data.p_test.test_wrong"), "{out}");
    assert!(out.trim_end().ends_with("1 passed, 1 failed"), "{out}");
    write(
        dir.path(),
        "p_test.rego",
        "package p_test\n\ntest_broken if {\n",
    );
    let (code, _, err) = run(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p_test.rego:"), "{err}");
}

#[test]
fn check_compiles_only() {
    let (code, out, _) = run(&["check", "policies"]);
    assert_eq!(code, 0);
    assert!(out.contains("jitguard.namespaces"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.rego",
        "package x\n\ndeny contains \"x\" if http.send({\"url\": \"https://example.com\"})\n",
    );
    let (code, _, err) = run(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "network builtins must not compile: {err}");
    assert!(err.contains("x.rego:3:"), "{err}");
}

#[test]
fn certs_writes_a_pair_and_prints_the_ca_bundle() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("c");
    let (code, out, err) = run(&[
        "certs",
        "--out",
        out_dir.to_str().unwrap(),
        "--dns",
        "jitguard.jitguard.svc",
    ]);
    assert_eq!(code, 0, "{err}");
    let bundle = out.lines().last().unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .unwrap();
    assert_eq!(pem, std::fs::read(out_dir.join("ca.pem")).unwrap());
    jitguard::server::tls::load_pair(&out_dir.join("tls.crt"), &out_dir.join("tls.key")).unwrap();
    let (_, again, _) = run(&["certs", "--out", out_dir.to_str().unwrap()]);
    assert!(again.contains("reused CA"), "{again}");
    assert_eq!(again.lines().last().unwrap(), bundle);
}

#[test]
fn the_committed_crd_is_what_the_code_generates() {
    let (code, out, _) = run(&["crd"]);
    assert_eq!(code, 0);
    let committed =
        std::fs::read_to_string(root().join("manifests/base/accessrequest-crd.yaml")).unwrap();
    assert!(
        committed == out,
        "manifests/base/accessrequest-crd.yaml is stale: run `cargo run -- crd > manifests/base/accessrequest-crd.yaml`"
    );
}

#[test]
fn the_shipped_suites_pass_under_verify() {
    let (code, out, err) = run(&["verify", "policies/suites"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("37 passed, 0 failed"), "{out}");
    // Every package of the pack has a suite.
    for package in [
        "access",
        "changewindow",
        "ingress",
        "interactive",
        "namespaces",
        "netpol",
        "rbac",
        "workloads",
    ] {
        assert!(
            out.contains(&format!("(jitguard.{package})")),
            "no suite for {package}: {out}"
        );
    }
}

#[test]
fn verify_fails_a_case_whose_expectation_is_wrong_and_says_what_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let suites = root().join("policies/suites");
    let suite = format!(
        "name: wrong on purpose\npolicies: {}\ncases:\n  - name: prod change claimed to pass\n    file: {}\n    operation: UPDATE\n    at: \"2026-11-24T10:00:00Z\"\n    expect: {{allowed: true}}\n  - name: right decision, wrong message\n    file: {}\n    operation: UPDATE\n    at: \"2026-11-24T10:00:00Z\"\n    expect: {{allowed: false, messages: [\"no such message\"]}}\n  - name: dev is fine\n    file: {}\n    expect: {{allowed: true}}\n",
        root().join("policies").display(),
        suites.join("manifests/deployment-prod.yaml").display(),
        suites.join("manifests/deployment-prod.yaml").display(),
        suites.join("manifests/deployment-dev.yaml").display(),
    );
    let f = write(dir.path(), "suite.yaml", &suite);
    let (code, out, _) = run(&["verify", &f]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL") && out.contains("prod change claimed to pass"),
        "{out}"
    );
    assert!(
        out.contains("expected allowed, got denied with findings"),
        "{out}"
    );
    assert!(
        out.contains("expected a message containing \"no such message\""),
        "{out}"
    );
    assert!(
        out.contains("PASS") && out.contains("1 passed, 2 failed"),
        "{out}"
    );
}

#[test]
fn a_malformed_suite_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.yaml",
        "name: x\ncases:\n  - name: c\n    fille: typo.yaml\n    expect: {allowed: true}\n",
    );
    let (code, _, err) = run(&["verify", &f]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.yaml:") && err.contains("unknown field `fille`"),
        "{err}"
    );
    let (code, _, err) = run(&["verify", "no/such/suite.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such suite file or folder"), "{err}");
}

/// A fatal error is said once, with each cause once, and a log written to a pipe or a
/// file carries no colour codes.
#[test]
fn a_fatal_serve_error_is_printed_once_without_colour_codes() {
    let (code, out, err) = run(&[
        "serve",
        "--tls-cert",
        "/nonexistent/tls.crt",
        "--tls-key",
        "/nonexistent/tls.key",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    let all = format!("{out}{err}");
    assert_eq!(
        all.matches("cannot read /nonexistent/tls.crt").count(),
        1,
        "{all}"
    );
    assert_eq!(all.matches("No such file or directory").count(), 1, "{all}");
    assert!(!all.contains('\u{1b}'), "colour codes in a pipe: {all:?}");
}

/// Run as the kubectl plugin, the usage lines name `kubectl jit` (what the user types),
/// every argument and flag says what it is for, and an unreachable cluster is one
/// friendly line, without a raw client log line before it.
#[test]
fn the_kubectl_plugin_explains_itself_and_an_unreachable_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-jit");
    std::os::unix::fs::symlink(crate::common::BIN, &plugin).unwrap();
    let run_plugin = |args: &[&str]| {
        let out = std::process::Command::new(&plugin)
            .args(args)
            .env_remove("JITGUARD_LOG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, help, _) = run_plugin(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        help.contains("Usage: kubectl jit [OPTIONS] <COMMAND>"),
        "{help}"
    );
    for command in [
        "request", "list", "show", "approve", "deny", "revoke", "extend",
    ] {
        let (code, help, err) = run_plugin(&[command, "--help"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            help.contains(&format!("Usage: kubectl jit {command}")),
            "{help}"
        );
        // clap prints an argument without help text as a bare name: every line under
        // Arguments/Options carries a description.
        for line in help.lines().filter(|l| l.starts_with("  ")) {
            let trimmed = line.trim_start();
            if trimmed.starts_with('-') || trimmed.starts_with('<') {
                assert!(
                    trimmed.split("  ").filter(|p| !p.trim().is_empty()).count() >= 2,
                    "{command}: no help text on {line:?}\n{help}"
                );
            }
        }
    }
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: \"https://127.0.0.1:1\"}\n  name: c\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- context: {cluster: c, user: u}\n  name: x\ncurrent-context: x\n",
    )
    .unwrap();
    let (code, out, err) = run_plugin(&["list", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kubectl jit: cannot reach the cluster"),
        "{err}"
    );
    assert!(
        err.contains("Connection refused") && err.contains("--context"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

fn run_with(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(crate::common::BIN)
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("JITGUARD_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `serve`'s stumbling points for a new user: --dev away from the repository, its
/// variable, a broken grants file at start-up, `--enforcement deny`.
#[test]
fn serve_says_what_is_wrong_before_it_starts() {
    let elsewhere = tempfile::tempdir().unwrap();
    for (env, args) in [
        (vec![], vec!["serve", "--dev"]),
        (vec![("JITGUARD_DEV", "true")], vec!["serve"]),
    ] {
        let (code, out) = run_with(elsewhere.path(), &env, &args);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("has no policies (or pass --policies DIR)")
                && out.contains("run it from the root of the jitguard repository"),
            "{out}"
        );
        assert!(!elsewhere.path().join(".jitguard-dev").exists());
    }
    let (code, out) = run_with(
        &root(),
        &[("JITGUARD_ENFORCEMENT", "deny")],
        &[
            "serve",
            "--dev",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "off",
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("`deny` is not a roll-out mode"), "{out}");

    let grants = write(
        elsewhere.path(),
        "g.yaml",
        "apiVersion: jitguard.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: a\nspec: [\n",
    );
    let (code, out) = run_with(
        &root(),
        &[],
        &[
            "serve",
            "--dev",
            "--grants",
            &grants,
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "off",
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("the grants file (--grants) cannot be loaded"),
        "{out}"
    );
    assert!(!out.contains("last good grants"), "there are none: {out}");
    // One line number, the file's: not the document's beside it.
    assert!(out.contains(&format!("{grants}:6: ")), "{out}");
    assert!(!out.contains("at line"), "{out}");
}

/// A hand-written grant whose expiresAt is later than approvedAt + duration ends at
/// approvedAt + duration, and the user is told why.
#[test]
fn a_grant_file_expiry_past_its_duration_is_cut_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let grants = write(
        dir.path(),
        "g.yaml",
        "apiVersion: jitguard.dev/v1alpha1\nkind: AccessRequest\nmetadata: {name: long}\nspec:\n  requester: alice@example.com\n  scope: [{operations: [CREATE], apiGroups: [\"\"], resources: [pods], namespaces: [prod]}]\n  reason: r\n  duration: 30m\nstatus: {phase: Approved, approvedAt: \"2026-11-24T09:00:00Z\", expiresAt: \"2026-11-24T12:00:00Z\"}\n",
    );
    let review = root().join("tests/fixtures/admission/pod-create-prod.json");
    let decide = |at: &str| {
        run(&[
            "dry-run",
            "-f",
            review.to_str().unwrap(),
            "--grants",
            &grants,
            "--at",
            at,
        ])
    };
    let (code, out, err) = decide("2026-11-24T09:10:00Z");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = decide("2026-11-24T10:00:00Z");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("AccessRequest long: status.expiresAt 2026-11-24T12:00:00Z is later than approvedAt + duration, which is when it ends: 2026-11-24T09:30:00Z"),
        "{err}"
    );
}

/// dry-run's stumbling points for a new user.
#[test]
fn dry_run_says_what_it_did_not_decide_and_how_each_finding_counted() {
    let dir = tempfile::tempdir().unwrap();
    // An empty file: nothing was decided, which is not a pass.
    let empty = write(dir.path(), "empty.yaml", "");
    let (code, out, err) = run(&["dry-run", "-f", &empty]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no Kubernetes object to decide"), "{err}");
    // A generated name is shown as such, not as `default/`.
    let generated = write(
        dir.path(),
        "gen.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: cfg-\n",
    );
    let (_, out, _) = run(&["dry-run", "-f", &generated]);
    assert!(out.starts_with("ALLOW ConfigMap default/cfg-*  ("), "{out}");
    // Requester flags do not apply to an AdmissionReview file: said, not ignored silently.
    let review = root().join("tests/fixtures/admission/pod-create-dev.json");
    let review = review.to_str().unwrap();
    let (code, _, err) = run(&["dry-run", "-f", review, "--user", "bob"]);
    assert_eq!(code, 0);
    assert!(
        err.contains(
            "is an AdmissionReview: it is decided as it is, with its own userInfo and operation"
        ),
        "{err}"
    );
    let (_, _, err) = run(&["dry-run", "-f", review]);
    assert!(!err.contains("AdmissionReview"), "{err}");
    // An audit-mode package's finding under a DENY caused by another package is marked.
    let both = write(
        dir.path(),
        "both.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: dev\n  labels: {rollout: deny, forbidden: \"true\"}\n",
    );
    let policies = root().join("tests/fixtures/policies/core");
    let policies = policies.to_str().unwrap();
    let (code, out, _) = run(&["dry-run", "--policies", policies, "-f", &both]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[test.core] deny: objects labelled forbidden=true"),
        "{out}"
    );
    assert!(
        out.contains("[test.rollout] would deny (audit): rollout would deny this"),
        "{out}"
    );
    assert!(!out.contains("warning: would deny"), "listed once: {out}");
    // `-o input` saves inputs: a denial among them is not a failure of the command.
    let prod = root().join("tests/fixtures/admission/pod-exec-prod.json");
    let (code, out, _) = run(&["dry-run", "-f", prod.to_str().unwrap(), "-o", "input"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"jit\""), "{out}");
    // A policy error reads as file:line:col: message, not a flattened source excerpt.
    let broken = dir.path().join("policies");
    std::fs::create_dir_all(&broken).unwrap();
    write(
        &broken,
        "boom.rego",
        "package acme.boom\n\ndeny contains msg if {\n\tx := to_number(\"abc\")\n\tmsg := sprintf(\"%v\", [x])\n}\n",
    );
    let (code, out, _) = run(&[
        "dry-run",
        "--policies",
        broken.to_str().unwrap(),
        "-f",
        review,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("boom.rego:4:") && out.contains(": could not parse string as number"),
        "{out}"
    );
    assert!(!out.contains("-->") && !out.contains(" | "), "{out}");
    // --webhook mutate shows the patch without --explain.
    let patchme = write(
        dir.path(),
        "patchme.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\n  namespace: dev\n  labels: {patchme: \"true\"}\n",
    );
    let (code, out, _) = run(&[
        "dry-run",
        "--policies",
        policies,
        "-f",
        &patchme,
        "--webhook",
        "mutate",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("      patch: {\"op\":"), "{out}");
}

/// `jitguard verify` runs gator suites as they are, with the same closing line, and says
/// what a failing case got.
#[test]
fn verify_runs_gator_suites_unchanged() {
    let library =
        root().join("../shared/conformance/gatekeeper-library/library/general/requiredlabels");
    let suite = library.join("suite.yaml");
    let (code, out, err) = run(&["verify", suite.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("PASS  ") && out.contains("requiredlabels/must-have-owner/example-disallowed"),
        "{out}"
    );
    assert!(out.ends_with("5 passed, 0 failed\n"), "{out}");
    // The same files with a wrong expectation: exit 1 and what the template said.
    let dir = tempfile::tempdir().unwrap();
    crate::common::copy_dir(&library, dir.path());
    let text = std::fs::read_to_string(dir.path().join("suite.yaml")).unwrap();
    let wrong = text.replacen("violations: yes", "violations: no", 1);
    std::fs::write(dir.path().join("suite.yaml"), wrong).unwrap();
    let (code, out, _) = run(&["verify", dir.path().join("suite.yaml").to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  ") && out.contains("expected violations: no, got 1"),
        "{out}"
    );
    assert!(out.contains("must have an `owner` label"), "{out}");
    assert!(
        out.contains("requiredlabels/must-have-owner/example-disallowed"),
        "named by the suite: {out}"
    );
}

/// `kubectl jit do` reaches the cluster only when there is a grant to ask for: a command
/// that succeeds, or fails for a reason of its own, is passed through with its exit code,
/// even with no usable kubeconfig.
#[test]
fn jit_do_passes_a_command_through_that_needs_no_grant() {
    let jit_do = |command: &[&str]| {
        let mut args = vec![
            "jit",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "do",
            "--reason",
            "x",
            "--",
        ];
        args.extend_from_slice(command);
        run(&args)
    };
    let (code, _, err) = jit_do(&["true"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = jit_do(&["sh", "-c", "echo nope >&2; exit 3"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err, "nope\n");
    let (code, _, err) = run(&["jit", "do", "--reason", "x", "--", "/nonexistent/kubectl"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("kubectl jit do: cannot run /nonexistent/kubectl"),
        "{err}"
    );
}

#[test]
fn audit_without_a_cluster_exits_2_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-kubeconfig");
    let (code, out, err) = run(&["audit", "--kubeconfig", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.starts_with("jitguard audit: "), "{err}");
    assert!(err.contains("kubeconfig"), "{err}");
    // A cluster that does not answer: nothing could be listed.
    let config = write(
        dir.path(),
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    );
    let (code, _, err) = run(&["audit", "--kubeconfig", &config]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing could be listed"), "{err}");
    assert!(
        err.contains("check the kubeconfig context and your RBAC"),
        "{err}"
    );
}

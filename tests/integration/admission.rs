//! Every rule kind of the policy contract, through the real server.

use serde_json::json;

use crate::common::{self, apply_patch, review, with_label, Options, Server};

#[tokio::test]
async fn a_clean_request_is_allowed_without_warnings() {
    let server = Server::start();
    let r = server.decide("/validate", &review("pod-create-dev")).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("warnings").is_none(), "{r}");
}

#[tokio::test]
async fn deny_and_violation_deny_with_every_finding_and_its_package() {
    let server = Server::start();
    let body = with_label(
        with_label(review("pod-create-dev"), "forbidden", "true"),
        "violate",
        "true",
    );
    let r = server.decide("/validate", &body).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("[test.core] objects labelled forbidden=true are not allowed"),
        "{msg}"
    );
    assert!(
        msg.contains("[test.core] gatekeeper-style violation"),
        "{msg}"
    );
}

#[tokio::test]
async fn require_grant_denies_with_the_command_that_asks_for_access() {
    let server = Server::start();
    let r = server.decide("/validate", &review("pod-create-prod")).await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("[test.core] create in prod needs a grant"),
        "{msg}"
    );
    assert!(
        msg.contains("kubectl jit request --namespace prod --resource pods --operation CREATE --name web --duration 30m"),
        "{msg}"
    );
}

#[tokio::test]
async fn warnings_are_returned_and_cut_to_120_characters() {
    let server = Server::start();
    let mut body = with_label(review("pod-create-dev"), "longwarn", "true");
    body["request"]["object"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("owner");
    let r = server.decide("/validate", &body).await;
    assert_eq!(r["allowed"], true);
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.contains(&"objects should carry an owner label"),
        "{warnings:?}"
    );
    let long = warnings
        .iter()
        .find(|w| w.starts_with("a long warning"))
        .unwrap();
    assert_eq!(long.chars().count(), 120, "{long}");
    assert!(long.ends_with('…'));
}

#[tokio::test]
async fn mutate_returns_a_json_patch_that_applies_to_the_object() {
    let server = Server::start();
    let body = with_label(review("pod-create-dev"), "patchme", "true");
    let r = server.decide("/mutate", &body).await;
    assert_eq!(r["allowed"], true, "{r}");
    let patched = apply_patch(&r, &body["request"]["object"]);
    assert_eq!(patched["metadata"]["labels"]["patched-by"], "jitguard");
    assert_eq!(patched["spec"], body["request"]["object"]["spec"]);
    // The same request on /validate carries no patch.
    let v = server.decide("/validate", &body).await;
    assert!(v.get("patch").is_none(), "{v}");
}

#[tokio::test]
async fn a_patch_that_does_not_apply_is_an_error_not_a_silent_skip() {
    let server = Server::start();
    let body = with_label(review("pod-create-dev"), "badpatch", "true");
    let r = server.decide("/mutate", &body).await;
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    // Named by the package to fix, although the patch is applied as one list.
    assert!(
        message.contains("[test.core] patch: the policies' patch does not apply"),
        "{r}"
    );
}

#[tokio::test]
async fn a_package_in_audit_mode_warns_instead_of_denying() {
    let server = Server::start();
    let r = server
        .decide(
            "/validate",
            &with_label(review("pod-create-dev"), "rollout", "deny"),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("would deny (audit): rollout would deny this"),
        "{warnings}"
    );
}

#[tokio::test]
async fn global_audit_enforcement_lets_everything_through_with_warnings() {
    let server = Server::with(Options {
        args: vec!["--enforcement".into(), "audit".into()],
        ..Options::default()
    });
    let r = server
        .decide(
            "/validate",
            &with_label(review("pod-create-prod"), "forbidden", "true"),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("would deny (audit): objects labelled forbidden=true"),
        "{warnings}"
    );
    assert!(
        warnings.contains("would deny (audit): create in prod needs a grant"),
        "{warnings}"
    );
}

#[tokio::test]
async fn a_runtime_error_fails_closed_with_the_error_and_is_counted() {
    let server = Server::start();
    let r = server
        .decide(
            "/validate",
            &with_label(review("pod-create-dev"), "boom", "true"),
        )
        .await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.contains("[test.fragile] policy error:"), "{msg}");
    assert!(server
        .metrics()
        .await
        .contains("jitguard_policy_errors_total{package=\"test.fragile\"} 1"));
}

#[tokio::test]
async fn on_error_allow_fails_open_with_a_warning() {
    let server = Server::with(Options {
        args: vec!["--on-error".into(), "allow".into()],
        ..Options::default()
    });
    let body = with_label(
        with_label(review("pod-create-dev"), "boom", "true"),
        "forbidden",
        "true",
    );
    let r = server.decide("/validate", &body).await;
    // The broken package is skipped; the healthy one still denies.
    assert_eq!(r["allowed"], false, "{r}");
    let r = server
        .decide(
            "/validate",
            &with_label(review("pod-create-dev"), "boom", "true"),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        r["warnings"]
            .to_string()
            .contains("test.fragile failed and was skipped"),
        "{r}"
    );
}

#[tokio::test]
async fn a_runaway_policy_is_cut_off_by_the_evaluation_budget() {
    let server = Server::with(Options {
        args: vec!["--eval-timeout".into(), "50ms".into()],
        ..Options::default()
    });
    let r = server
        .decide(
            "/validate",
            &with_label(review("pod-create-dev"), "slow", "true"),
        )
        .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("time budget"),
        "{r}"
    );
    // And the server keeps deciding other requests, also while runaways are running.
    let r = server.decide("/validate", &review("pod-create-dev")).await;
    assert_eq!(r["allowed"], true);
    let started = std::time::Instant::now();
    let slow = with_label(review("pod-create-dev"), "slow", "true");
    let plain = review("pod-create-dev");
    let (runaway, normal) = tokio::join!(
        futures::future::join_all((0..3).map(|_| server.decide("/validate", &slow))),
        futures::future::join_all((0..10).map(|_| server.decide("/validate", &plain))),
    );
    for r in runaway {
        assert_eq!(r["allowed"], false, "{r}");
    }
    for r in normal {
        assert_eq!(r["allowed"], true, "{r}");
    }
    // Bounded by the budget (50 ms each), not by the policy: a generous bound, not a
    // speed measurement.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// One runaway package beside the shipped pack must not switch the others off: it fails
/// within its share of the budget, and the namespace guardrail still denies a change in
/// prod without a grant, whatever --on-error says.
#[tokio::test]
async fn a_runaway_package_does_not_switch_off_the_shipped_pack() {
    for on_error in ["deny", "allow"] {
        let server = Server::with(Options {
            policies: None,
            args: vec![
                "--eval-timeout".into(),
                "300ms".into(),
                "--on-error".into(),
                on_error.into(),
            ],
            ..Options::default()
        });
        std::fs::create_dir_all(server.policies().join("acme")).unwrap();
        std::fs::write(
            server.policies().join("acme/runaway.rego"),
            "package acme.runaway\n\ndeny contains \"x\" if {\n\tcount([1 | some a in numbers.range(1, 20000); some b in numbers.range(1, 20000); a < b]) < 0\n}\n",
        )
        .unwrap();
        assert!(
            server
                .wait_for_log("policies reloaded", std::time::Duration::from_secs(20))
                .await
        );
        let r = server.decide("/validate", &review("pod-create-prod")).await;
        assert_eq!(r["allowed"], false, "--on-error {on_error}: {r}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("[jitguard.namespaces] creation of Pod prod/"),
            "--on-error {on_error}: {message}"
        );
        if on_error == "allow" {
            assert!(
                r["warnings"]
                    .to_string()
                    .contains("policy acme.runaway failed and was skipped"),
                "{r}"
            );
        } else {
            assert!(message.contains("[acme.runaway] policy error"), "{message}");
        }
    }
}

#[tokio::test]
async fn delete_connect_dry_run_and_deleting_objects_are_all_evaluated() {
    let server = Server::start();
    for name in [
        "pod-delete-prod",
        "pod-exec-prod",
        "pod-create-prod-dryrun",
        "pod-update-prod-deleting",
        "pod-update-prod",
    ] {
        let r = server.decide("/validate", &review(name)).await;
        assert_eq!(r["allowed"], false, "{name}: {r}");
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(msg.contains("in prod needs a grant"), "{name}: {msg}");
    }
}

#[tokio::test]
async fn policies_see_the_request_time_in_input_jit() {
    let server = Server::start();
    let before = jiff::Timestamp::now().as_nanosecond();
    let r = server
        .decide(
            "/validate",
            &with_label(review("pod-create-dev"), "clock", "true"),
        )
        .await;
    let warning = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|w| w.as_str()?.strip_prefix("now is "))
        .unwrap()
        .to_string();
    let seen: i128 = warning.parse().unwrap();
    assert!(
        seen >= before && seen <= jiff::Timestamp::now().as_nanosecond(),
        "{seen}"
    );
    // A client cannot choose the time: jitguard overwrites input.jit.
    let mut forged = with_label(review("pod-create-dev"), "clock", "true");
    forged["jit"] = json!({"now_ns": 1, "grants": [{"name": "forged"}]});
    let r = server.decide("/validate", &forged).await;
    assert!(!r["warnings"].to_string().contains("now is 1\""), "{r}");
}

#[tokio::test]
async fn every_decision_is_one_audit_record_of_one_shape_in_the_log_and_the_audit_file() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Server::with(Options {
        args: vec!["--audit-file".into(), audit.display().to_string()],
        ..Options::default()
    });
    // Denied by an enforcing package, with a finding of an audit-mode package beside it.
    let both = with_label(
        with_label(review("pod-create-prod"), "rollout", "deny"),
        "forbidden",
        "true",
    );
    server.decide("/validate", &both).await;
    server.decide("/validate", &review("pod-create-dev")).await;
    let records = crate::common::audit_records(&audit, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let exec = &records[0];
    assert_eq!(exec["event"], "admission");
    assert_eq!(exec["decision"], "deny");
    assert_eq!(exec["request"]["user"], "alice@example.com");
    assert!(exec["request"]["groups"].is_array(), "{exec}");
    assert_eq!(exec["request"]["operation"], "CREATE");
    assert_eq!(exec["request"]["namespace"], "prod");
    assert_eq!(exec["request"]["dry_run"], false);
    assert!(
        exec["reason"].as_str().unwrap().contains("forbidden=true"),
        "{exec}"
    );
    assert!(exec["latency_us"].as_u64().is_some());
    // Each finding says how it counted: its own package's mode.
    let findings = exec["findings"].as_array().unwrap();
    let mode_of = |package: &str| {
        findings
            .iter()
            .find(|f| f["package"] == package)
            .map(|f| f["enforcement"].clone())
    };
    assert_eq!(mode_of("test.core"), Some(json!("deny")), "{exec}");
    assert_eq!(mode_of("test.rollout"), Some(json!("audit")), "{exec}");
    assert!(
        exec["would_deny"]
            .to_string()
            .contains("rollout would deny this"),
        "{exec}"
    );
    assert!(exec.get("enforcement_override").is_none(), "{exec}");
    // Without --client-ca anyone who reaches the port could have sent it: said so.
    assert_eq!(exec["caller"], "unverified");
    // The same record, field for field, on the JSON log: lists are lists there too.
    assert!(
        server
            .wait_for_log("admission decision", std::time::Duration::from_secs(5))
            .await
    );
    let logged = server.log_events("admission decision");
    let mut line = logged
        .into_iter()
        .find(|l| l["request"]["uid"] == exec["request"]["uid"])
        .unwrap_or_else(|| panic!("no log record of {exec}"));
    assert_eq!(line["target"], "jitguard::audit");
    let fields = line.as_object_mut().unwrap();
    for header in ["timestamp", "level", "target", "message"] {
        assert!(
            fields.remove(header).is_some(),
            "log header {header} missing"
        );
    }
    assert_eq!(&line, exec);
}

#[tokio::test]
async fn the_audit_record_names_a_server_wide_enforcement_override() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Server::with(Options {
        args: vec![
            "--audit-file".into(),
            audit.display().to_string(),
            "--enforcement".into(),
            "warn".into(),
        ],
        ..Options::default()
    });
    server
        .decide(
            "/validate",
            &with_label(review("pod-create-dev"), "forbidden", "true"),
        )
        .await;
    let record = crate::common::audit_records(&audit, 1)
        .await
        .into_iter()
        .next()
        .unwrap_or_default();
    assert_eq!(record["enforcement_override"], "warn", "{record}");
    assert_eq!(record["findings"][0]["enforcement"], "warn", "{record}");
    assert_eq!(record["decision"], "warn", "{record}");
}

#[tokio::test]
async fn decisions_are_counted_by_webhook_operation_kind_and_outcome() {
    let server = Server::start();
    server.decide("/validate", &review("pod-create-dev")).await;
    server.decide("/validate", &review("pod-exec-prod")).await;
    let m = server.metrics().await;
    assert!(m.contains(r#"jitguard_admission_requests_total{decision="allow",kind="Pod",operation="CREATE",webhook="validate"} 1"#), "{m}");
    assert!(m.contains(r#"jitguard_admission_requests_total{decision="deny",kind="PodExecOptions",operation="CONNECT",webhook="validate"} 1"#), "{m}");
    assert!(
        m.contains("jitguard_admission_duration_seconds_count{webhook=\"validate\"} 2"),
        "{m}"
    );
    assert!(m.contains("jitguard_policies_loaded 3"), "{m}");
}

#[tokio::test]
async fn http1_and_http2_clients_are_both_served() {
    let server = Server::start();
    let ca = server.certs().join("ca.pem");
    for client in [
        common::client_builder(&ca, None)
            .http1_only()
            .build()
            .unwrap(),
        common::client_builder(&ca, None).build().unwrap(),
    ] {
        let response = client
            .post(server.url("/validate"))
            .header("content-type", "application/json")
            .json(&review("pod-create-dev"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

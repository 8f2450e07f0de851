//! The audit of what already runs, on a cluster of its own (its webhooks are taken away
//! and put back): objects made while jitguard was not registered show up in the
//! PolicyReports with their findings, in `jitguard audit` and in the metrics, and leave
//! them once fixed.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{eventually, unique, Cluster, Options};

const LIMIT: Duration = Duration::from_secs(90);

/// Takes jitguard's webhooks away, runs `change`, and registers them again as the
/// playground did (the same overlay).
fn unregistered(c: &Cluster, change: impl FnOnce()) {
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        c.kubectl("admin", &["delete", kind, "jitguard"]).success();
    }
    change();
    let overlay = c.dir.join("run/webhooks");
    c.kubectl("admin", &["apply", "-k", overlay.to_str().unwrap()])
        .success();
}

fn report(c: &Cluster, namespace: &str) -> Value {
    let run = c.kubectl(
        "admin",
        &[
            "-n",
            namespace,
            "get",
            "policyreport",
            "jitguard-audit",
            "-o",
            "json",
        ],
    );
    if run.ok {
        run.json()
    } else {
        Value::Null
    }
}

fn names_in(report: &Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["resources"][0]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["policy"].as_str().unwrap_or_default().to_string(),
                r["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn objects_made_while_jitguard_was_away_are_reported_until_fixed() {
    let c = Cluster::up(Options {
        serve_args: vec!["--audit-interval".into(), "3s".into()],
        policies: None,
    });
    let open = unique("allow-all");
    let debug = unique("debug");
    unregistered(&c, || {
        // Open to everything, in a protected namespace; privileged, in dev.
        c.setup(&format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {open}, namespace: prod}}
spec:
  podSelector: {{}}
  ingress: [{{}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: {debug}, namespace: dev}}
spec:
  containers:
  - {{name: sh, image: busybox, securityContext: {{privileged: true}}}}
"#
        ))
        .success();
    });

    eventually("the reports name both objects", LIMIT, || {
        names_in(&report(&c, "prod")).contains(&(
            open.clone(),
            "jitguard.netpol".into(),
            "fail".into(),
        )) && names_in(&report(&c, "dev")).contains(&(
            debug.clone(),
            "jitguard.workloads".into(),
            "warn".into(),
        ))
    });
    let prod = report(&c, "prod");
    assert!(prod["summary"]["fail"].as_i64().unwrap() >= 1, "{prod}");
    let result = prod["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"][0]["name"] == open.as_str())
        .unwrap();
    assert_eq!(result["source"], "jitguard");
    assert_eq!(result["rule"], "deny");
    assert_eq!(result["resources"][0]["kind"], "NetworkPolicy");
    assert_eq!(result["resources"][0]["namespace"], "prod");
    let cluster = c
        .kubectl(
            "admin",
            &["get", "clusterpolicyreport", "jitguard-audit", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(cluster["kind"], "ClusterPolicyReport");
    assert!(
        cluster["summary"]["pass"].as_i64().unwrap() > 0,
        "{cluster}"
    );

    // The same from the command line, with the admin's kubeconfig.
    let cli = Command::new(env!("CARGO_BIN_EXE_jitguard"))
        .current_dir(crate::cluster::root())
        .args(["audit", "--kubeconfig"])
        .arg(c.kubeconfig())
        .args(["--context", "admin"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(
        cli.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "FAIL  NetworkPolicy prod/{open}  [jitguard.netpol] deny: "
        ))),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "WARN  Pod dev/{debug}  [jitguard.workloads] warn: "
        ))),
        "{out}"
    );
    assert!(out.contains(
        "require_grant findings are about who changes what, not about state: they are left out"
    ));

    // Counted by package and namespace on the replica that audits.
    let metrics = Command::new("curl")
        .args(["-fsS", &format!("{}/metrics", c.env("JITGUARD_METRICS"))])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "jitguard_audit_findings{namespace=\"prod\",package=\"jitguard.netpol\"} "
        ) && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Fixed (the policy narrowed, the Pod gone): they leave the reports.
    unregistered(&c, || {
        c.kubectl(
            "admin",
            &[
                "-n",
                "prod",
                "patch",
                "networkpolicy",
                &open,
                "--type=merge",
                "-p",
                r#"{"spec":{"ingress":[{"from":[{"podSelector":{}}]}]}}"#,
            ],
        )
        .success();
        c.kubectl(
            "admin",
            &["-n", "dev", "delete", "pod", &debug, "--wait=false"],
        )
        .success();
    });
    eventually("the fixed objects leave the reports", LIMIT, || {
        let prod = names_in(&report(&c, "prod"));
        let dev = names_in(&report(&c, "dev"));
        !prod.iter().any(|(n, _, _)| *n == open) && !dev.iter().any(|(n, _, _)| *n == debug)
    });
}

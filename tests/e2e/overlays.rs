//! The shipped kustomize overlays, applied with `--dry-run=server`: the real API server
//! validates every object (the CRD's structural schema, the webhook configurations'
//! matchConditions CEL, the Deployment, RBAC) without storing any.

use std::process::Command;

use crate::cluster::{copy_dir, root, Cluster};

/// What the cert-manager overlay needs present: cert-manager's two kinds. Their real
/// schemas are not available offline; these accept any spec, so the API server checks
/// only that the kinds exist and the objects are well-formed.
fn cert_manager_crd(kind: &str, plural: &str) -> String {
    let singular = kind.to_lowercase();
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.cert-manager.io}}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, singular: {singular}, listKind: {kind}List}}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"#
    )
}

/// Both overlays are accepted by `c`'s API server, every object of them. Run as the
/// cluster's admin, where jitguard's own webhooks are not registered (an install or a
/// re-install after the emergency procedure).
pub fn are_accepted_by_the_api_server(c: &Cluster) {
    // A copy of the tree, so that the plain overlay's certificate is not written into the
    // work tree.
    let tree = c.dir.join("overlays");
    let _ = std::fs::remove_dir_all(&tree);
    copy_dir(&root().join("manifests"), &tree.join("manifests"));
    copy_dir(&root().join("policies"), &tree.join("policies"));
    let certs = Command::new(env!("CARGO_BIN_EXE_jitguard"))
        .args(["certs", "--out"])
        .arg(tree.join("manifests/overlays/plain/tls"))
        .output()
        .unwrap();
    assert!(certs.status.success());

    for (kind, plural) in [("Issuer", "issuers"), ("Certificate", "certificates")] {
        c.apply("admin", &cert_manager_crd(kind, plural)).success();
    }
    c.wait_for_crds(&["issuers.cert-manager.io", "certificates.cert-manager.io"]);
    for overlay in ["plain", "plain-client-ca", "cert-manager"] {
        let dir = tree.join("manifests/overlays").join(overlay);
        let run = c
            .kubectl(
                "admin",
                &["apply", "--dry-run=server", "-k", dir.to_str().unwrap()],
            )
            .success();
        // One line per object, each accepted: nothing skipped or refused.
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert!(
            lines.len() >= 15 && lines.iter().all(|l| l.ends_with("(server dry run)")),
            "overlay {overlay}:\n{}",
            run.text()
        );
        for kind in [
            "validatingwebhookconfiguration.admissionregistration.k8s.io/jitguard",
            "mutatingwebhookconfiguration.admissionregistration.k8s.io/jitguard",
            "customresourcedefinition.apiextensions.k8s.io/accessrequests.jitguard.dev",
            "deployment.apps/jitguard",
        ] {
            assert!(
                run.stdout.contains(kind),
                "{overlay}: {kind} missing:\n{}",
                run.stdout
            );
        }
    }

    // The Helm chart, in both certificate modes, as `helm template | kubectl apply`.
    let helm = Command::new("bash")
        .arg(root().join("tests/helm/build.sh"))
        .output()
        .unwrap();
    assert!(
        helm.status.success(),
        "{}",
        String::from_utf8_lossy(&helm.stderr)
    );
    let helm = String::from_utf8_lossy(&helm.stdout).trim().to_string();
    let tls = tree.join("manifests/overlays/plain/tls");
    let provided = [
        "--set".to_string(),
        "tls.mode=provided".into(),
        "--set-file".into(),
        format!("tls.cert={}", tls.join("tls.crt").display()),
        "--set-file".into(),
        format!("tls.key={}", tls.join("tls.key").display()),
        "--set-file".into(),
        format!("tls.ca={}", tls.join("ca.pem").display()),
        "--set".into(),
        "auditInterval=10m".into(),
    ];
    for (mode, args) in [
        ("cert-manager", Vec::new()),
        ("provided", provided.to_vec()),
    ] {
        let rendered = Command::new(&helm)
            .current_dir(root())
            .args(["template", "jitguard", "charts/jitguard"])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let run = c
            .kubectl_with_input(
                "admin",
                &["apply", "--dry-run=server", "-f", "-"],
                Some(&String::from_utf8_lossy(&rendered.stdout)),
            )
            .success();
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert!(
            lines.len() >= 15 && lines.iter().all(|l| l.ends_with("(server dry run)")),
            "chart ({mode}):\n{}",
            run.text()
        );
        assert!(
            run.stdout.contains("deployment.apps/jitguard"),
            "{}",
            run.stdout
        );
    }
}

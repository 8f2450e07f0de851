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
    let helm = crate::helm::helm(&root());
    let mut provided = crate::helm::provided(&tree.join("manifests/overlays/plain/tls"));
    provided.extend(["--set".to_string(), "auditInterval=10m".to_string()]);
    for (mode, args) in [
        ("cert-manager", Vec::new()),
        ("provided", provided.to_vec()),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let rendered = crate::helm::template(&helm, &root(), &args);
        let run = c
            .kubectl_with_input(
                "admin",
                &["apply", "--dry-run=server", "-f", "-"],
                Some(&rendered),
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

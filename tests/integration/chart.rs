//! The Helm chart (charts/jitguard) renders the kustomize base's objects, read from the
//! base itself: with each certificate mode it renders exactly what the matching overlay
//! renders, the values change only what they name, `helm lint` is clean, and the output
//! validates strictly offline. Helm is built from its Go module (tests/helm/build.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::root;

fn helm() -> PathBuf {
    crate::common::helm::helm(&root())
}

fn template(helm: &Path, args: &[&str]) -> String {
    crate::common::helm::template(helm, &root(), args)
}

/// Objects by kind, namespace and name, without the labels only Helm adds.
fn objects(yaml: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for doc in yaml.split("\n---") {
        let Ok(mut value) = yaml_serde::from_str::<Value>(doc) else {
            continue;
        };
        if !value.is_object() {
            continue;
        }
        if let Some(labels) = value
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("app.kubernetes.io/managed-by");
            labels.remove("helm.sh/chart");
        }
        let empty = value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty);
        if let (true, Some(meta)) = (
            empty,
            value.get_mut("metadata").and_then(Value::as_object_mut),
        ) {
            meta.remove("labels");
        }
        // kustomize wraps base64 at 70 columns, Helm does not: the same bytes.
        unwrap_base64(&mut value, false);
        let key = format!(
            "{} {}/{}",
            value["kind"].as_str().unwrap_or_default(),
            value["metadata"]["namespace"].as_str().unwrap_or_default(),
            value["metadata"]["name"].as_str().unwrap_or_default()
        );
        out.insert(key, value);
    }
    out
}

/// Removes the line breaks of base64 values (`caBundle`, a Secret's `data`).
fn unwrap_base64(value: &mut Value, inside_data: bool) {
    let secret = value["kind"] == "Secret";
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let base64 = key == "caBundle" || inside_data;
                match v {
                    Value::String(text) if base64 => text.retain(|c| c != '\n'),
                    _ => unwrap_base64(v, secret && key == "data"),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| unwrap_base64(v, false)),
        _ => {}
    }
}

fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir)
        .output()
        .expect("kubectl (kustomize) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn provided(tree: &Path) -> Vec<String> {
    crate::common::helm::provided(&tree.join("manifests/overlays/plain/tls"))
}

#[track_caller]
fn assert_same(chart: &str, overlay: &str, what: &str) {
    let (chart, overlay) = (objects(chart), objects(overlay));
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        overlay.keys().collect::<Vec<_>>(),
        "{what}: the same objects"
    );
    for (key, object) in &overlay {
        assert_eq!(&chart[key], object, "{what}: {key} differs");
    }
}

#[test]
fn the_chart_renders_what_the_overlays_render() {
    let helm = helm();
    let tree = crate::common::manifests_with_certs();
    let overlays = tree.path().join("manifests/overlays");
    assert_same(
        &template(&helm, &[]),
        &kustomize(&overlays.join("cert-manager")),
        "cert-manager",
    );
    let args = provided(tree.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_same(
        &template(&helm, &args),
        &kustomize(&overlays.join("plain")),
        "provided certificate (the plain overlay)",
    );
    let mtls = [&args[..], &["--set", "mtls.enabled=true"]].concat();
    assert_same(
        &template(&helm, &mtls),
        &kustomize(&overlays.join("plain-client-ca")),
        "mTLS (the plain-client-ca overlay)",
    );
}

#[test]
fn values_change_what_they_name() {
    let helm = helm();
    let rendered = objects(&template(
        &helm,
        &[
            "--set",
            "replicas=5",
            "--set",
            "enforcement=audit",
            "--set",
            "auditInterval=10m",
            "--set",
            "notifications.secretName=jitguard-notifications",
            "--set",
            "resources.requests.cpu=1",
            "--set",
            "resources.requests.memory=512Mi",
            "--set",
            "resources.limits.memory=512Mi",
            "--set",
            "protectedNamespaces={prod,finance}",
            "--set",
            "image.tag=v9.9.9",
        ],
    ));
    let deployment = &rendered["Deployment jitguard/jitguard"];
    assert_eq!(deployment["spec"]["replicas"], 5);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/jitguard/jitguard:v9.9.9");
    assert_eq!(container["resources"]["requests"]["cpu"], 1);
    let env: BTreeMap<String, Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect();
    assert_eq!(env["JITGUARD_ENFORCEMENT"], "audit");
    assert_eq!(env["JITGUARD_AUDIT_INTERVAL"], "10m");
    assert_eq!(
        env["JITGUARD_NOTIFICATIONS"],
        "/etc/jitguard/notifications/notifications.yaml"
    );
    let volumes = deployment["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains(r#""secretName":"jitguard-notifications""#),
        "{volumes}"
    );
    let config = rendered["ConfigMap jitguard/jitguard-policies"]["data"]
        ["jitguard.config.data.yaml"]
        .as_str()
        .unwrap();
    let config: Value = yaml_serde::from_str(config).unwrap();
    assert_eq!(
        config["protected"]["namespaces"],
        serde_json::json!(["prod", "finance"])
    );
    // Everything else is the base's.
    let defaults = objects(&template(&helm, &[]));
    assert_eq!(
        rendered["ValidatingWebhookConfiguration /jitguard"],
        defaults["ValidatingWebhookConfiguration /jitguard"]
    );
    // A bad mode is refused with the reason.
    let bad = Command::new(&helm)
        .current_dir(root())
        .args([
            "template",
            "jitguard",
            "charts/jitguard",
            "--set",
            "tls.mode=self",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("tls.mode must be cert-manager or provided"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn helm_lint_is_clean_and_the_output_validates_strictly() {
    let helm = helm();
    let tree = crate::common::manifests_with_certs();
    let args = provided(tree.path());
    for extra in [Vec::new(), args.clone()] {
        let out = Command::new(&helm)
            .current_dir(root())
            .args(["lint", "--strict", "charts/jitguard"])
            .args(&extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{text}"
        );
        assert!(
            !text.contains("[WARNING]") && !text.contains("[ERROR]"),
            "{text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut files = Vec::new();
    for (i, rendered) in [
        template(&helm, &[]),
        template(
            &helm,
            &[
                &refs[..],
                &["--set", "mtls.enabled=true", "--set", "replicas=2"],
            ]
            .concat(),
        ),
    ]
    .iter()
    .enumerate()
    {
        let file = dir.path().join(format!("chart-{i}.yaml"));
        std::fs::write(&file, rendered).unwrap();
        files.push(file);
    }
    crate::manifests::validate_strictly(&files);
}

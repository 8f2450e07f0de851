//! What a platform engineer applies (manifests/: the kustomize base and its overlays),
//! checked without a cluster: rendered by kustomize, parsed into the Kubernetes types,
//! validated against the Kubernetes schemas by `kubernetes-validate --strict`, and read
//! against the policy pack (webhook rules, exemptions, RBAC, the policies ConfigMap).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::common::{root, suite_reviews};

/// The Kubernetes version the manifests are validated against (k8s-openapi's feature).
const KUBERNETES: &str = "1.34.0";
const VALIDATOR: &str = "kubernetes-validate==1.37.0";

/// Every overlay (and the base), rendered: (name, YAML). With kubectl's kustomize where
/// the machine has it; otherwise the base's files as they are (the overlays need it).
fn rendered() -> Vec<(String, String)> {
    let dir = crate::common::manifests_with_certs();
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    if kubectl.is_err() {
        eprintln!("kubectl is not installed: checking the base's files without kustomize");
        let base = root().join("manifests/base");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
            .collect();
        files.sort();
        return files
            .iter()
            .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
            .collect();
    }
    [
        "base",
        "overlays/plain",
        "overlays/plain-client-ca",
        "overlays/cert-manager",
    ]
    .iter()
    .map(|name| {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir.path().join("manifests").join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize manifests/{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (name.to_string(), String::from_utf8(out.stdout).unwrap())
    })
    .collect()
}

fn documents(yaml: &str) -> Vec<Value> {
    jitguard::text::yaml_documents(yaml)
        .into_iter()
        .filter_map(|(_, doc)| yaml_serde::from_str::<Option<Value>>(doc).unwrap())
        .collect()
}

/// kustomize wraps long base64 strings over lines; the API server's decoder skips the
/// line breaks, k8s-openapi's does not.
fn unwrap_base64(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\n') => {
            let joined: String = s.split_whitespace().collect();
            let base64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
            if !joined.is_empty() && joined.chars().all(base64) {
                *s = joined;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(unwrap_base64),
        Value::Object(o) => o.values_mut().for_each(unwrap_base64),
        _ => {}
    }
}

/// Parses `doc` as `T` and back: a field k8s-openapi does not know (a typo, a field of
/// another version) is dropped on the way and shows as a difference.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, what: &str) -> T {
    let parsed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} does not parse as its Kubernetes type: {e}"));
    let back = serde_json::to_value(&parsed).unwrap();
    let mut dropped = Vec::new();
    differences(doc, &back, String::new(), &mut dropped);
    assert!(
        dropped.is_empty(),
        "{what}: fields its Kubernetes type does not have: {dropped:?}"
    );
    parsed
}

/// Paths where `a` and `b` differ.
fn differences(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let sub = format!("{path}.{k}");
                match y.get(k) {
                    Some(w) => differences(v, w, sub, out),
                    None => out.push(sub),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(path),
        _ => {}
    }
}

#[test]
fn every_rendered_document_is_a_kubernetes_object_without_unknown_fields() {
    let mut kinds = BTreeSet::new();
    for (name, yaml) in rendered() {
        for mut doc in documents(&yaml) {
            unwrap_base64(&mut doc);
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let what = format!("{name}: {kind} {}", doc["metadata"]["name"]);
            match kind.as_str() {
                "Namespace" => drop(typed::<Namespace>(&doc, &what)),
                "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(&doc, &what)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(&doc, &what)),
                "ClusterRole" => drop(typed::<ClusterRole>(&doc, &what)),
                "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(&doc, &what)),
                "Role" => drop(typed::<Role>(&doc, &what)),
                "RoleBinding" => drop(typed::<RoleBinding>(&doc, &what)),
                "ConfigMap" => drop(typed::<ConfigMap>(&doc, &what)),
                "Secret" => drop(typed::<Secret>(&doc, &what)),
                "Service" => drop(typed::<Service>(&doc, &what)),
                "Deployment" => drop(typed::<Deployment>(&doc, &what)),
                "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(&doc, &what)),
                "NetworkPolicy" => drop(typed::<NetworkPolicy>(&doc, &what)),
                "ValidatingWebhookConfiguration" => {
                    drop(typed::<ValidatingWebhookConfiguration>(&doc, &what))
                }
                "MutatingWebhookConfiguration" => {
                    drop(typed::<MutatingWebhookConfiguration>(&doc, &what))
                }
                "Issuer" | "Certificate" => {
                    assert_eq!(api_version, "cert-manager.io/v1", "{what}")
                }
                other => panic!("{what}: no check for kind {other}"),
            }
            kinds.insert(kind);
        }
    }
    for wanted in [
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "CustomResourceDefinition",
    ] {
        assert!(kinds.contains(wanted), "no {wanted} in {kinds:?}");
    }
}

/// `kubernetes-validate` from PyPI: `$JITGUARD_KUBERNETES_VALIDATE`, else a virtualenv
/// under target/tools, made on first use (`.ci/run` makes it before the tests).
fn kubernetes_validate() -> PathBuf {
    if let Some(path) = std::env::var_os("JITGUARD_KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    let venv = root().join("target/tools/kubernetes-validate");
    let bin = venv.join("bin/kubernetes-validate");
    if !bin.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv {}", venv.display());
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", VALIDATOR])
            .status()
            .unwrap();
        assert!(installed.success(), "pip install {VALIDATOR}");
    }
    bin
}

/// `kubernetes-validate --strict` accepts every object of `files`; only the kinds it has
/// no schema for (cert-manager's) may be skipped.
pub fn validate_strictly(files: &[PathBuf]) {
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .args(files)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    for line in report
        .lines()
        .filter(|l| l.contains("Couldn't find schema"))
    {
        assert!(line.contains("cert-manager.io/v1"), "{report}");
    }
}

#[test]
fn rendered_overlays_validate_against_the_kubernetes_schemas_in_strict_mode() {
    let validator = kubernetes_validate();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (_, yaml)) in rendered().iter().enumerate() {
        let file = dir.path().join(format!("rendered-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        files.push(file);
    }
    validate_strictly(&files);
    // ... and it does reject what is wrong.
    let broken = dir.path().join("broken.yaml");
    let base = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(
        &broken,
        base.replace(
            "  revisionHistoryLimit: 5",
            "  revisionHistoryLimit: 5\n  replicaz: 3",
        ),
    )
    .unwrap();
    let out = Command::new(&validator)
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field was accepted");
}

fn base_documents(file: &str) -> Vec<Value> {
    documents(&std::fs::read_to_string(root().join("manifests/base").join(file)).unwrap())
}

/// The object of `kind` in a file of manifests/base, typed.
fn base_object<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    let doc = base_documents(file)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in manifests/base/{file}"));
    serde_json::from_value(doc).unwrap()
}

fn webhooks() -> (ValidatingWebhookConfiguration, MutatingWebhookConfiguration) {
    (
        base_object("webhooks.yaml", "ValidatingWebhookConfiguration"),
        base_object("webhooks.yaml", "MutatingWebhookConfiguration"),
    )
}

/// The entries of `wanted` that `have` lacks, each as the line to add (`line(key, value)`).
fn missing_lines(
    wanted: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
    line: impl Fn(&str, &str) -> String,
) -> String {
    wanted
        .iter()
        .filter(|(k, _)| !have.contains_key(*k))
        .map(|(k, v)| line(k, v))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a webhook rule sends this request (the API server's matching: operation,
/// group, version, resource with subresource, scope).
fn rule_matches(rule: &RuleWithOperations, request: &Value) -> bool {
    let any = |list: &Option<Vec<String>>, v: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|x| x == "*" || x == v))
    };
    let operation = request["operation"].as_str().unwrap_or_default();
    let group = request["resource"]["group"].as_str().unwrap_or_default();
    let version = request["resource"]["version"].as_str().unwrap_or_default();
    let resource = request["resource"]["resource"].as_str().unwrap_or_default();
    let sub = request["subResource"].as_str().unwrap_or_default();
    let resource_ok = rule.resources.as_ref().is_some_and(|rs| {
        rs.iter().any(|r| {
            let (res, rsub) = r.split_once('/').unwrap_or((r, ""));
            (res == "*" || res == resource) && (rsub == sub || (rsub == "*" && !sub.is_empty()))
        })
    });
    let cluster_scoped = matches!(
        (group, resource),
        ("", "namespaces")
            | (
                "rbac.authorization.k8s.io",
                "clusterroles" | "clusterrolebindings"
            )
            | ("jitguard.dev", "accessrequests")
    );
    let scope_ok = match rule.scope.as_deref() {
        Some("Namespaced") => !cluster_scoped,
        Some("Cluster") => cluster_scoped,
        _ => true,
    };
    any(&rule.operations, operation)
        && any(&rule.api_groups, group)
        && any(&rule.api_versions, version)
        && resource_ok
        && scope_ok
}

/// The namespaces the webhooks never see (namespaceSelector NotIn on the name).
fn excluded(
    selector: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Vec<String> {
    selector
        .iter()
        .flat_map(|s| s.match_expressions.iter().flatten())
        .filter(|e| e.key == "kubernetes.io/metadata.name" && e.operator == "NotIn")
        .flat_map(|e| e.values.clone().unwrap_or_default())
        .collect()
}

/// Every request the shipped policy pack has a finding for, in every fixture and every
/// suite case, reaches jitguard through the validating webhook's rules; what the mutating
/// webhook patches (AccessRequests, objects created under a grant) reaches it too.
#[test]
fn the_webhook_rules_send_jitguard_every_request_the_pack_inspects() {
    let (validating, mutating) = webhooks();
    let set = std::sync::Arc::new(
        jitguard::policy::PolicySet::load(
            &root().join("policies"),
            jitguard::policy::EvalOptions::default(),
        )
        .unwrap(),
    );
    let mut engine = set.engine();
    let fixtures = root().join("tests/fixtures/admission");
    let mut reviews: Vec<Value> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    reviews.extend(suite_reviews());
    let mut inspected = BTreeSet::new();
    for review in &reviews {
        let request = &review["request"];
        let input = regorus::Value::from_json_str(&review.to_string()).unwrap();
        let evaluation = engine.evaluate(&input);
        let found = evaluation.packages.iter().any(|p| !p.findings.is_empty())
            || request["resource"]["resource"] == "accessrequests";
        if !found {
            continue;
        }
        let key = format!(
            "{} {}/{}{}",
            request["operation"].as_str().unwrap(),
            request["resource"]["group"].as_str().unwrap(),
            request["resource"]["resource"].as_str().unwrap(),
            request["subResource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        );
        let namespace = request["namespace"].as_str().unwrap_or_default();
        let sent = validating.webhooks.iter().flatten().any(|w| {
            !excluded(&w.namespace_selector)
                .iter()
                .any(|n| n == namespace)
                && w.rules.iter().flatten().any(|r| rule_matches(r, request))
        });
        assert!(
            sent,
            "the validating webhook does not send {key} in {namespace:?}"
        );
        if request["operation"] == "CREATE" && request["subResource"].is_null() {
            let mutated = mutating.webhooks.iter().flatten().any(|w| {
                !excluded(&w.namespace_selector)
                    .iter()
                    .any(|n| n == namespace)
                    && w.rules.iter().flatten().any(|r| rule_matches(r, request))
            });
            assert!(mutated, "the mutating webhook does not send {key}");
        }
        inspected.insert(key);
    }
    // The checks above covered every guardrail's kind of request.
    for wanted in [
        "CONNECT /pods/exec",
        "DELETE /namespaces",
        "UPDATE networking.k8s.io/ingresses",
        "CREATE networking.k8s.io/networkpolicies",
        "CREATE rbac.authorization.k8s.io/clusterrolebindings",
        "CREATE jitguard.dev/accessrequests",
        "UPDATE apps/deployments",
        "CREATE /pods",
    ] {
        assert!(
            inspected.contains(wanted),
            "no case for {wanted}: {inspected:?}"
        );
    }
    // Nothing the pack protects is excluded, and jitguard's own namespace is.
    for w in validating.webhooks.iter().flatten() {
        let out = excluded(&w.namespace_selector);
        for ns in ["prod", "staging", "payments"] {
            assert!(!out.contains(&ns.to_string()), "{} skips {ns}", w.name);
        }
        if w.namespace_selector.is_some() {
            for ns in ["kube-system", "kube-node-lease", "jitguard"] {
                assert!(out.contains(&ns.to_string()), "{} sends {ns}", w.name);
            }
        }
        assert_eq!(w.admission_review_versions, vec!["v1".to_string()]);
        assert_eq!(w.match_policy.as_deref(), Some("Equivalent"));
        assert!(w.timeout_seconds.is_some_and(|t| t <= 5), "{}", w.name);
    }
    for w in mutating.webhooks.iter().flatten() {
        assert!(w.timeout_seconds.is_some_and(|t| t <= 2), "{}", w.name);
    }
}

/// The matchConditions skip only identities the policy pack exempts anyway, so cutting
/// traffic never changes a decision.
#[test]
fn match_conditions_skip_only_identities_the_pack_exempts() {
    let config: Value = yaml_serde::from_str(
        &std::fs::read_to_string(root().join("policies/jitguard/config/data.yaml")).unwrap(),
    )
    .unwrap();
    let strings = |key: &str| -> Vec<String> {
        serde_json::from_value(config["exempt"][key].clone()).unwrap()
    };
    let users = strings("users");
    let prefixes = strings("user_prefixes");
    let (validating, mutating) = webhooks();
    let conditions: Vec<String> = validating
        .webhooks
        .iter()
        .flatten()
        .flat_map(|w| w.match_conditions.clone().unwrap_or_default())
        .chain(
            mutating
                .webhooks
                .iter()
                .flatten()
                .flat_map(|w| w.match_conditions.clone().unwrap_or_default()),
        )
        .map(|c| c.expression)
        .collect();
    let identities: Vec<&String> = conditions
        .iter()
        .filter(|e| e.contains("userInfo.username"))
        .collect();
    assert!(!identities.is_empty());
    for expression in identities {
        for quoted in expression.split('\'').skip(1).step_by(2) {
            assert!(
                users.iter().any(|u| u == quoted) || prefixes.iter().any(|p| p == quoted),
                "matchConditions skip {quoted:?}, which policies/jitguard/config/data.yaml does not exempt"
            );
        }
    }
}

/// The policies ConfigMap holds every served policy file, and the Deployment mounts each
/// at its path (ConfigMap keys cannot hold `/`).
#[test]
fn the_policies_configmap_and_its_volume_hold_every_served_policy_file() {
    let policies = root().join("policies");
    let mut served = BTreeSet::new();
    let mut stack = vec![policies.join("jitguard")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".rego") && !name.ends_with("_test.rego")
                || name == "data.yaml"
                || name == "data.json"
            {
                let rel = path.strip_prefix(&policies).unwrap();
                served.insert(rel.display().to_string());
            }
        }
    }
    let key = |path: &str| path.replace('/', ".");
    let kustomization: Value = yaml_serde::from_str(
        &std::fs::read_to_string(policies.join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let listed: BTreeMap<String, String> = kustomization["configMapGenerator"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let (k, v) = f.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let wanted: BTreeMap<String, String> = served.iter().map(|p| (key(p), p.clone())).collect();
    let missing = missing_lines(&wanted, &listed, |k, v| format!("      - {k}={v}"));
    assert!(
        missing.is_empty(),
        "policies/kustomization.yaml misses served policy files; add:\n{missing}"
    );
    assert_eq!(
        listed, wanted,
        "policies/kustomization.yaml lists files that are not served"
    );

    let deployment: Deployment = base_object("deployment.yaml", "Deployment");
    let spec = deployment.spec.unwrap().template.spec.unwrap();
    let volume = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "policies")
        .unwrap();
    let config_map = volume.config_map.unwrap();
    assert_eq!(config_map.name, "jitguard-policies");
    let items: BTreeMap<String, String> = config_map
        .items
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.path))
        .collect();
    let missing = missing_lines(&wanted, &items, |k, v| {
        format!("                - {{key: {k}, path: {v}}}")
    });
    assert!(
        missing.is_empty(),
        "the policies volume in manifests/base/deployment.yaml misses items; add:\n{missing}"
    );
    assert_eq!(
        items, wanted,
        "the policies volume maps keys to other paths"
    );
}

/// With the client-ca component, jitguard requires a client certificate signed by the CA
/// its Secret carries, and the Secret carries one.
#[test]
fn the_client_ca_overlay_makes_jitguard_require_the_api_servers_certificate() {
    let Some((_, yaml)) = rendered()
        .into_iter()
        .find(|(name, _)| name == "overlays/plain-client-ca")
    else {
        eprintln!("kubectl is not installed: the overlay is not rendered here");
        return;
    };
    let docs = documents(&yaml);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "JITGUARD_CLIENT_CA" && e["value"] == "/etc/jitguard/tls/ca.crt"),
        "{env}"
    );
    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "jitguard-tls")
        .unwrap();
    assert!(secret["data"]["ca.crt"].is_string(), "{secret}");
}

/// The Deployment's safety properties, one by one (each is a lesson from webhooks that
/// took clusters down).
#[test]
fn the_deployment_is_spread_budgeted_and_locked_down() {
    let deployment: Deployment = base_object("deployment.yaml", "Deployment");
    let pdb: PodDisruptionBudget = base_object("deployment.yaml", "PodDisruptionBudget");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        pdb.spec.unwrap().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let keys: BTreeSet<String> = pod
        .topology_spread_constraints
        .unwrap()
        .into_iter()
        .map(|c| c.topology_key)
        .collect();
    assert!(
        keys.contains("kubernetes.io/hostname") && keys.contains("topology.kubernetes.io/zone")
    );
    // Longer than serve's default --shutdown-delay (5s) plus --drain-timeout (20s).
    assert!(pod.termination_grace_period_seconds.unwrap() > 25);
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.unwrap().type_,
        "RuntimeDefault"
    );
    let container = &pod.containers[0];
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    let resources = container.resources.clone().unwrap();
    assert_eq!(
        resources.requests.unwrap()["memory"],
        resources.limits.unwrap()["memory"],
        "memory request = limit"
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/healthz")
    );
}

/// jitguard may bind exactly the roles the access policy lets grants bind.
#[test]
fn rbac_bind_is_limited_to_the_roles_the_access_policy_may_bind() {
    let access: Value = yaml_serde::from_str(
        &std::fs::read_to_string(root().join("policies/jitguard/access/data.yaml")).unwrap(),
    )
    .unwrap();
    let mut bindable: Vec<String> =
        serde_json::from_value(access["settings"]["bindable_roles"]["ClusterRole"].clone())
            .unwrap();
    bindable.sort();
    let role: ClusterRole = base_object("rbac.yaml", "ClusterRole");
    let rules = role.rules.unwrap();
    let bind: Vec<_> = rules
        .iter()
        .filter(|r| r.verbs.iter().any(|v| v == "bind" || v == "*"))
        .collect();
    assert_eq!(bind.len(), 1);
    let mut names = bind[0].resource_names.clone().unwrap_or_default();
    names.sort();
    assert_eq!(names, bindable, "ClusterRole jitguard bind resourceNames");
    // No wildcard anywhere, but one: reading every resource of constraints.gatekeeper.sh,
    // whose kinds are made by ConstraintTemplates and cannot be listed ahead.
    for rule in &rules {
        let groups = rule.api_groups.as_ref().unwrap();
        let constraints_read =
            groups == &["constraints.gatekeeper.sh"] && rule.verbs == ["get", "list", "watch"];
        for list in [&rule.verbs, rule.resources.as_ref().unwrap(), groups] {
            let wildcard = list.iter().any(|x| x == "*");
            assert!(!wildcard || constraints_read, "{rule:?}");
        }
    }
}

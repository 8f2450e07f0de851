//! Manifests to AdmissionReviews, for `dry-run` and `verify`: each object of a YAML or
//! JSON file becomes the AdmissionReview the API server would send for it; an
//! AdmissionReview file is used as it is.

use std::path::{Path, PathBuf};

use k8s_openapi::api::{
    admissionregistration::v1 as admreg, apps::v1 as apps, batch::v1 as batch, core::v1 as core,
    networking::v1 as net, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
    storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource, SubResourceScope};
use serde_json::{json, Value};

use crate::request::Operation;
use crate::text::{yaml_documents, yaml_error};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}: no manifests (*.yaml, *.yml, *.json) found")]
    Empty(PathBuf),
    #[error("{0}: no Kubernetes object to decide (the files hold no YAML or JSON document)")]
    NoObjects(String),
    #[error("-f - (standard input) can be given once")]
    StdinTwice,
}

/// The file argument that means standard input, and how its documents are named
/// (`stdin:LINE`).
const STDIN_ARG: &str = "-";
const STDIN_NAME: &str = "stdin";

/// Who asks, and how, for objects wrapped from manifests.
#[derive(Clone, Debug)]
pub struct Requester {
    pub user: String,
    pub groups: Vec<String>,
    pub operation: Operation,
}

/// One AdmissionReview to decide, and where it came from.
#[derive(Clone, Debug)]
pub struct Item {
    /// `file:line` of the document.
    pub source: String,
    /// `Kind namespace/name`, for humans.
    pub label: String,
    pub body: Vec<u8>,
    /// An AdmissionReview file, used as it is: it says who asks and how itself.
    pub review_file: bool,
}

/// What a set of manifest files holds.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The AdmissionReviews to decide, in path order.
    pub items: Vec<Item>,
    /// Gatekeeper ConstraintTemplates and Constraints (`(file:line, document)`): policy,
    /// not objects to decide, as `gator test` reads them.
    pub gatekeeper: Vec<(String, Value)>,
    /// Every object (an AdmissionReview's `request.object`): Gatekeeper's inventory for
    /// referential templates, as `gator test` fills it from its files.
    pub objects: Vec<Value>,
}

/// Reads files and folders (recursively) into AdmissionReviews, in path order.
pub fn load(paths: &[PathBuf], requester: &Requester) -> Result<Vec<Item>, ManifestError> {
    read(paths, requester).map(|m| m.items)
}

/// As [`load`], with Gatekeeper's documents set apart and the objects kept.
pub fn read(paths: &[PathBuf], requester: &Requester) -> Result<Manifests, ManifestError> {
    let mut files = Vec::new();
    for path in paths {
        // `-`: standard input, as `kubectl kustomize ... | jitguard dry-run -f -` gives it.
        if path.as_os_str() == STDIN_ARG {
            if files.iter().any(|f: &PathBuf| f.as_os_str() == STDIN_ARG) {
                return Err(ManifestError::StdinTwice);
            }
            files.push(path.clone());
            continue;
        }
        collect(path, &mut files)?;
        if files.is_empty() {
            return Err(ManifestError::Empty(path.clone()));
        }
    }
    let mut out = Manifests::default();
    for file in files {
        let (file, text) = if file.as_os_str() == STDIN_ARG {
            let mut text = String::new();
            let file = PathBuf::from(STDIN_NAME);
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
                ManifestError::Io {
                    path: file.clone(),
                    source,
                }
            })?;
            (file, text)
        } else {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
                path: file.clone(),
                source,
            })?;
            (file, text)
        };
        for (line, doc) in yaml_documents(&text) {
            let err = |at: usize, message: String| ManifestError::Parse {
                path: file.clone(),
                line: line + at,
                message,
            };
            let value: Value = yaml_serde::from_str(doc).map_err(|e| {
                let (at, message) = yaml_error(&e);
                err(at, message)
            })?;
            let source = format!("{}:{line}", file.display());
            wrap_document(value, &source, requester, &mut out).map_err(|m| err(0, m))?;
        }
    }
    if out.items.is_empty() {
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ManifestError::NoObjects(named.join(", ")));
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let meta = std::fs::metadata(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, out)?;
        } else if entry
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(entry);
        }
    }
    Ok(())
}

fn wrap_document(
    value: Value,
    source: &str,
    requester: &Requester,
    out: &mut Manifests,
) -> Result<(), String> {
    if crate::gatekeeper::is_template(&value) || crate::gatekeeper::is_constraint(&value) {
        out.gatekeeper.push((source.to_string(), value));
        return Ok(());
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (api_version, kind) {
        ("admission.k8s.io/v1", "AdmissionReview") => {
            let request = value.get("request");
            let label = format!(
                "{} {}",
                request
                    .and_then(|r| r.pointer("/kind/kind"))
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                object_path(
                    request
                        .and_then(|r| r.get("namespace"))
                        .and_then(Value::as_str),
                    request.and_then(|r| r.get("name")).and_then(Value::as_str)
                )
            );
            let body = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
            if let Some(object) = request
                .and_then(|r| r.get("object"))
                .filter(|o| o.is_object())
            {
                out.objects.push(object.clone());
            }
            out.items.push(Item {
                source: source.to_string(),
                label,
                body,
                review_file: true,
            });
        }
        (_, "List") => {
            for (i, item) in value
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let source = format!("{source} (item {i})");
                wrap_document(item.clone(), &source, requester, out)?;
            }
        }
        ("", _) | (_, "") => {
            return Err("not a Kubernetes object: apiVersion and kind are required".into())
        }
        _ => {
            let review = review_for(&value, requester, out.items.len())?;
            let generated = value
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
                .map(|g| format!("{g}*"));
            let name = review
                .pointer("/request/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .or(generated);
            let label = format!(
                "{kind} {}",
                object_path(
                    review.pointer("/request/namespace").and_then(Value::as_str),
                    name.as_deref()
                )
            );
            out.items.push(Item {
                source: source.to_string(),
                label,
                body: serde_json::to_vec(&review).map_err(|e| e.to_string())?,
                review_file: false,
            });
            out.objects.push(value);
        }
    }
    Ok(())
}

fn object_path(namespace: Option<&str>, name: Option<&str>) -> String {
    match (
        namespace.filter(|n| !n.is_empty()),
        name.filter(|n| !n.is_empty()),
    ) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.to_string(),
        (Some(ns), None) => format!("{ns}/(unnamed)"),
        (None, None) => "(unnamed)".to_string(),
    }
}

/// The AdmissionReview the API server would send for `object`.
/// The AdmissionReview the API server would send when `requester` submits `object`
/// (`n` numbers its uid). An UPDATE has the object on both sides.
pub fn review_for(object: &Value, requester: &Requester, n: usize) -> Result<Value, String> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let info = kind_info(group, kind);
    let metadata = object.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| match info.namespaced {
            // kubectl's default namespace for namespaced objects without one.
            Some(true) => "default".into(),
            _ => String::new(),
        });
    let (object_field, old_object) = match requester.operation {
        Operation::Create | Operation::Connect => (object.clone(), Value::Null),
        // Without the live object, the manifest stands in for both sides of the update.
        Operation::Update => (object.clone(), object.clone()),
        Operation::Delete => (Value::Null, object.clone()),
    };
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": info.plural});
    let options_kind = match requester.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => "PodExecOptions",
    };
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-4000-8000-{n:012}"),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": name,
            "namespace": namespace,
            "operation": requester.operation.as_str(),
            "userInfo": {"username": requester.user, "groups": requester.groups},
            "object": object_field,
            "oldObject": old_object,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
        }
    }))
}

/// What jitguard knows of a kind: its plural resource and whether it is namespaced
/// (`None`: not known, e.g. a custom resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindInfo {
    pub plural: String,
    pub namespaced: Option<bool>,
}

trait Scope {
    const NAMESPACED: bool;
}
impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}
impl Scope for SubResourceScope {
    const NAMESPACED: bool = false;
}

fn entry<T: Resource>() -> (&'static str, &'static str, &'static str, bool)
where
    T::Scope: Scope,
{
    (
        T::GROUP,
        T::KIND,
        T::URL_PATH_SEGMENT,
        <T::Scope as Scope>::NAMESPACED,
    )
}

/// Built-in kinds, read from k8s-openapi's own metadata rather than typed by hand.
fn builtin() -> Vec<(&'static str, &'static str, &'static str, bool)> {
    vec![
        entry::<core::Pod>(),
        entry::<core::Service>(),
        entry::<core::ConfigMap>(),
        entry::<core::Secret>(),
        entry::<core::Namespace>(),
        entry::<core::ServiceAccount>(),
        entry::<core::PersistentVolume>(),
        entry::<core::PersistentVolumeClaim>(),
        entry::<core::Node>(),
        entry::<core::Endpoints>(),
        entry::<core::LimitRange>(),
        entry::<core::ResourceQuota>(),
        entry::<apps::Deployment>(),
        entry::<apps::StatefulSet>(),
        entry::<apps::DaemonSet>(),
        entry::<apps::ReplicaSet>(),
        entry::<batch::Job>(),
        entry::<batch::CronJob>(),
        entry::<net::Ingress>(),
        entry::<net::IngressClass>(),
        entry::<net::NetworkPolicy>(),
        entry::<rbac::Role>(),
        entry::<rbac::RoleBinding>(),
        entry::<rbac::ClusterRole>(),
        entry::<rbac::ClusterRoleBinding>(),
        entry::<policy::PodDisruptionBudget>(),
        entry::<scheduling::PriorityClass>(),
        entry::<storage::StorageClass>(),
        entry::<admreg::ValidatingWebhookConfiguration>(),
        entry::<admreg::MutatingWebhookConfiguration>(),
        entry::<apiext::CustomResourceDefinition>(),
        // Not in k8s-openapi: Gateway API, and jitguard's own resource.
        ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
        ("gateway.networking.k8s.io", "Gateway", "gateways", true),
        ("jitguard.dev", "AccessRequest", "accessrequests", false),
    ]
}

pub fn kind_info(group: &str, kind: &str) -> KindInfo {
    if let Some((_, _, plural, namespaced)) = builtin()
        .into_iter()
        .find(|(g, k, _, _)| *g == group && *k == kind)
    {
        return KindInfo {
            plural: plural.to_string(),
            namespaced: Some(namespaced),
        };
    }
    KindInfo {
        plural: guess_plural(kind),
        namespaced: None,
    }
}

/// English plural of a kind, as Kubernetes guesses it for CRDs without a plural.
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) {
            return format!("{stem}ies");
        }
    }
    if lower.ends_with('s')
        || lower.ends_with("x")
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    fn requester(op: Operation) -> Requester {
        Requester {
            user: "alice".into(),
            groups: vec!["dev".into()],
            operation: op,
        }
    }

    #[test]
    fn kinds_map_to_resources_and_scopes() {
        assert_eq!(
            kind_info("", "Pod"),
            KindInfo {
                plural: "pods".into(),
                namespaced: Some(true)
            }
        );
        assert_eq!(
            kind_info("networking.k8s.io", "Ingress").plural,
            "ingresses"
        );
        assert_eq!(
            kind_info("rbac.authorization.k8s.io", "ClusterRoleBinding").namespaced,
            Some(false)
        );
        assert_eq!(kind_info("example.com", "Policy").plural, "policies");
        assert_eq!(kind_info("example.com", "Gateway").plural, "gateways");
    }

    #[test]
    fn wraps_objects_as_the_api_server_would() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let review = review_for(&pod, &requester(Operation::Delete), 0).unwrap();
        let r = &review["request"];
        assert_eq!(r["namespace"], "default");
        assert_eq!(r["resource"]["resource"], "pods");
        assert!(r["object"].is_null());
        assert_eq!(r["oldObject"]["metadata"]["name"], "p");
        assert_eq!(r["userInfo"]["username"], "alice");
        crate::admission::parse(&serde_json::to_vec(&review).unwrap()).unwrap();
    }

    #[test]
    fn reads_multi_document_files_lists_and_reviews_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.yaml");
        std::fs::write(
            &f,
            "# comment\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, namespace: x}\n",
        )
        .unwrap();
        let items = load(&[dir.path().to_path_buf()], &requester(Operation::Create)).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].source.ends_with("m.yaml:1"));
        assert_eq!(items[1].label, "Pod x/a");
        std::fs::write(&f, "apiVersion: v1\nkind: Pod\n---\nkind: [\n").unwrap();
        let err = load(std::slice::from_ref(&f), &requester(Operation::Create))
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.yaml:"), "{err}");
    }
}

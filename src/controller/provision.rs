//! Temporary access in the cluster: the RoleBindings a live grant's `roleRef` asks for,
//! and the reaper that removes every object labelled with a grant once it ended.
//!
//! RoleBindings cover what admission webhooks never see (get, list, watch, logs), so the
//! role is checked before it is bound: cluster-admin never, and nothing that can grant
//! more than itself (escalate, bind, impersonate, wildcards) unless the access policy
//! says `allow_escalating_roles`.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::core::ObjectMeta;
use kube::{Api, Client, Resource, ResourceExt};

use crate::grant::AccessRequest;
use crate::policy::AccessPolicy;

/// The label on everything a grant created or the controller bound for it.
pub const GRANT_LABEL: &str = "jitguard.dev/grant";

/// What the reaper looks for by default: the RoleBindings it made and the
/// NetworkPolicies created under grants (the time-bound traffic rules).
pub fn default_reap_resources() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("networking.k8s.io", "v1", "NetworkPolicy"),
            "networkpolicies",
        ),
    ]
}

/// A `--reap` value that does not name a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: write GROUP/VERSION/KIND/PLURAL, e.g. networking.k8s.io/v1/NetworkPolicy/networkpolicies (core for the core group)")]
pub struct ReapResourceError(String);

/// Parses `--reap GROUP/VERSION/KIND/PLURAL` (`core` for the core group).
pub fn parse_reap_resource(text: &str) -> Result<ApiResource, ReapResourceError> {
    let parts: Vec<&str> = text.split('/').collect();
    let [group, version, kind, plural] = parts.as_slice() else {
        return Err(ReapResourceError(text.to_string()));
    };
    let group = if *group == "core" { "" } else { group };
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// Verbs that let a holder grant itself or others more than the role holds.
const ESCALATING_VERBS: &[&str] = &["escalate", "bind", "impersonate", "*"];

/// Why binding these rules would hand out more than a temporary, bounded role.
pub fn escalation(rules: &[PolicyRule]) -> Option<String> {
    let mut found = BTreeSet::new();
    for rule in rules {
        for verb in &rule.verbs {
            if ESCALATING_VERBS.contains(&verb.as_str()) {
                found.insert(format!("verb {verb}"));
            }
        }
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == "*"))
        {
            found.insert("resources *".to_string());
        }
    }
    (!found.is_empty()).then(|| found.into_iter().collect::<Vec<_>>().join(", "))
}

/// The subject of a grant's bindings: the group of a group grant, else the requester
/// (a service account when the username says so).
pub fn subject(ar: &AccessRequest) -> Subject {
    if let Some(group) = &ar.spec.group {
        return Subject {
            kind: "Group".into(),
            name: group.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        };
    }
    let user = &ar.spec.requester;
    if let Some((ns, name)) = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        return Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            api_group: Some(String::new()),
            namespace: Some(ns.into()),
        };
    }
    Subject {
        kind: "User".into(),
        name: user.clone(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    }
}

/// The namespaces a grant's bindings go to, or why there are none to bind in.
pub fn namespaces(ar: &AccessRequest) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for (i, rule) in ar.spec.scope.iter().enumerate() {
        if rule.namespaces.is_empty() || rule.namespaces.iter().any(|n| n == "*") {
            return Err(format!(
                "spec.scope[{i}] is not limited to named namespaces; a roleRef is bound per namespace, so name them"
            ));
        }
        out.extend(rule.namespaces.iter().cloned());
    }
    Ok(out)
}

/// The name of the grant's RoleBinding in every namespace.
pub fn binding_name(ar: &AccessRequest) -> String {
    let mut name = format!("jit-{}", ar.name_any());
    name.truncate(253);
    name
}

/// Why a grant's role was not bound.
#[derive(Debug, PartialEq, Eq)]
pub enum BindError {
    /// It never will be (the role is refused, missing, or the scope has no namespaces):
    /// recorded in the status as ProvisionFailed.
    Refused(String),
    /// The API server could not be asked or answered with an error: tried again on the
    /// next pass, nothing recorded.
    Transient(String),
}

/// Creates the grant's RoleBindings (already existing ones count as made). Returns
/// `namespace/name` of each, or why the role was not bound.
pub async fn bind(
    client: &Client,
    ar: &AccessRequest,
    policy: &AccessPolicy,
) -> Result<Vec<String>, BindError> {
    use BindError::{Refused, Transient};
    let Some(role) = &ar.spec.role_ref else {
        return Ok(Vec::new());
    };
    if role.name == "cluster-admin" {
        return Err(Refused("cluster-admin is never bound by a grant".into()));
    }
    let namespaces = namespaces(ar).map_err(Refused)?;
    let rules = match role.kind.as_str() {
        "ClusterRole" => {
            let api: Api<ClusterRole> = Api::all(client.clone());
            match api.get_opt(&role.name).await {
                Ok(Some(r)) => r.rules.unwrap_or_default(),
                Ok(None) => {
                    return Err(Refused(format!("ClusterRole {} does not exist", role.name)))
                }
                Err(e) => {
                    return Err(Transient(format!(
                        "cannot read ClusterRole {}: {e}",
                        role.name
                    )))
                }
            }
        }
        "Role" => {
            let mut all = Vec::new();
            for ns in &namespaces {
                let api: Api<Role> = Api::namespaced(client.clone(), ns);
                match api.get_opt(&role.name).await {
                    Ok(Some(r)) => all.extend(r.rules.unwrap_or_default()),
                    Ok(None) => {
                        return Err(Refused(format!(
                            "Role {} does not exist in namespace {ns}",
                            role.name
                        )))
                    }
                    Err(e) => {
                        return Err(Transient(format!(
                            "cannot read Role {ns}/{}: {e}",
                            role.name
                        )))
                    }
                }
            }
            all
        }
        other => {
            return Err(Refused(format!(
                "roleRef.kind {other:?} is not Role or ClusterRole"
            )))
        }
    };
    if let Some(what) = escalation(&rules) {
        if !policy.allow_escalating_roles {
            return Err(Refused(format!(
                "{} {} has {what}; such roles are not bound by grants unless the access policy sets allow_escalating_roles",
                role.kind, role.name
            )));
        }
    }
    let name = binding_name(ar);
    let expires = ar
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let owner = ar.controller_owner_ref(&());
    let mut made = Vec::new();
    for ns in &namespaces {
        let binding = RoleBinding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some([(GRANT_LABEL.to_string(), ar.name_any())].into()),
                annotations: Some(
                    [
                        ("jitguard.dev/expires-at".to_string(), expires.clone()),
                        ("jitguard.dev/reason".to_string(), ar.spec.reason.clone()),
                    ]
                    .into(),
                ),
                // Deleting the request takes its bindings along, even if the reaper never ran.
                owner_references: owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: role.kind.clone(),
                name: role.name.clone(),
            },
            subjects: Some(vec![subject(ar)]),
        };
        let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
        match api.create(&PostParams::default(), &binding).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(kube::Error::Api(e)) if e.code == 403 => {
                return Err(Refused(format!(
                    "jitguard may not create RoleBindings in {ns}: {}; grant it bind on this role (manifests/ RBAC)",
                    e.message
                )))
            }
            Err(e) => {
                return Err(Transient(format!(
                    "cannot create RoleBinding {ns}/{name}: {e}"
                )))
            }
        }
        made.push(format!("RoleBinding {ns}/{name}"));
    }
    Ok(made)
}

/// Deletes every object of `resources` labelled with the grant, in every namespace.
/// Returns what it removed.
pub async fn reap(
    client: &Client,
    grant: &str,
    resources: &[ApiResource],
) -> Result<Vec<String>, String> {
    let selector = format!("{GRANT_LABEL}={grant}");
    let mut removed = Vec::new();
    for resource in resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("cannot list {}: {e}", resource.plural))?;
        for object in list {
            let name = object.name_any();
            let ns = object.namespace().unwrap_or_default();
            let scoped: Api<DynamicObject> = if ns.is_empty() {
                Api::all_with(client.clone(), resource)
            } else {
                Api::namespaced_with(client.clone(), &ns, resource)
            };
            match scoped.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(format!("cannot delete {} {ns}/{name}: {e}", resource.kind)),
            }
            removed.push(if ns.is_empty() {
                format!("{} {name}", resource.kind)
            } else {
                format!("{} {ns}/{name}", resource.kind)
            });
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::grant::resource::ScopeRule;
    use crate::grant::AccessRequestSpec;

    fn rule(verbs: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            api_groups: Some(vec![String::new()]),
            ..PolicyRule::default()
        }
    }

    #[test]
    fn roles_that_can_grant_more_than_themselves_are_named() {
        assert_eq!(escalation(&[rule(&["get", "list"], &["pods"])]), None);
        assert_eq!(
            escalation(&[rule(&["bind"], &["clusterroles"]), rule(&["get"], &["*"])]),
            Some("resources *, verb bind".into())
        );
        assert!(escalation(&[rule(&["impersonate"], &["users"])]).is_some());
        assert!(escalation(&[rule(&["*"], &["pods"])]).is_some());
    }

    fn ar(user: &str, namespaces: &[&str]) -> AccessRequest {
        AccessRequest::new(
            "r1",
            AccessRequestSpec {
                requester: user.into(),
                scope: vec![ScopeRule {
                    operations: vec!["*".into()],
                    api_groups: vec!["".into()],
                    resources: vec!["pods".into()],
                    namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                    names: vec![],
                }],
                ..Default::default()
            },
        )
    }

    #[test]
    fn subjects_follow_the_username() {
        assert_eq!(subject(&ar("alice", &["a"])).kind, "User");
        let sa = subject(&ar("system:serviceaccount:ci:deployer", &["a"]));
        assert_eq!(
            (sa.kind.as_str(), sa.namespace.as_deref(), sa.name.as_str()),
            ("ServiceAccount", Some("ci"), "deployer")
        );
        let mut group = ar("alice", &["a"]);
        group.spec.group = Some("oncall".into());
        assert_eq!(subject(&group).kind, "Group");
    }

    #[test]
    fn bindings_need_named_namespaces() {
        assert_eq!(namespaces(&ar("a", &["x", "y"])).unwrap().len(), 2);
        assert!(namespaces(&ar("a", &["*"])).is_err());
        assert!(namespaces(&ar("a", &[])).is_err());
    }

    #[test]
    fn reap_resources_parse_with_a_clear_error() {
        let r = parse_reap_resource("core/v1/ConfigMap/configmaps").unwrap();
        assert_eq!((r.group.as_str(), r.plural.as_str()), ("", "configmaps"));
        assert!(parse_reap_resource("networkpolicies")
            .unwrap_err()
            .to_string()
            .contains("GROUP/VERSION/KIND/PLURAL"));
    }
}

//! Whether a grant's scope covers a request, and the command that asks for one that does.

use crate::request::RequestInfo;

use super::resource::ScopeRule;

/// RBAC-style matching: `*` matches anything; a resource `pods` does not cover its
/// subresources (`pods/exec`), `pods/*` covers all of them; empty `names` = all names;
/// empty `namespaces` = cluster-scoped objects only.
pub fn covers(rule: &ScopeRule, req: &RequestInfo) -> bool {
    let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
    any(&rule.operations, req.operation.as_str())
        && any(&rule.api_groups, &req.group)
        && rule.resources.iter().any(|r| resource_matches(r, req))
        && namespace_matches(&rule.namespaces, &req.namespace)
        && (rule.names.is_empty() || any(&rule.names, &req.name))
}

fn resource_matches(pattern: &str, req: &RequestInfo) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('/') {
        None => req.sub_resource.is_empty() && pattern == req.resource,
        Some((resource, sub)) => {
            (resource == "*" || resource == req.resource)
                && !req.sub_resource.is_empty()
                && (sub == "*" || sub == req.sub_resource)
        }
    }
}

fn namespace_matches(namespaces: &[String], namespace: &str) -> bool {
    if namespaces.is_empty() {
        return namespace.is_empty();
    }
    namespaces.iter().any(|n| n == "*" || n == namespace)
}

/// The `kubectl jit request` line for exactly this request, which the denial shows.
pub fn request_command(req: &RequestInfo, duration: &str) -> String {
    let mut cmd = String::from("kubectl jit request");
    if !req.namespace.is_empty() {
        cmd.push_str(&format!(" --namespace {}", shell_word(&req.namespace)));
    }
    if !req.group.is_empty() {
        cmd.push_str(&format!(" --api-group {}", shell_word(&req.group)));
    }
    cmd.push_str(&format!(
        " --resource {} --operation {}",
        shell_word(&req.resource_path()),
        req.operation
    ));
    if !req.name.is_empty() {
        cmd.push_str(&format!(" --name {}", shell_word(&req.name)));
    }
    cmd.push_str(&format!(" --duration {duration} --reason \"...\""));
    cmd
}

/// Kubernetes names are shell-safe; anything else (a hostile client's) is quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | ':'))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Operation;

    fn req(op: Operation, resource: &str, sub: &str, ns: &str, name: &str) -> RequestInfo {
        RequestInfo {
            uid: "u".into(),
            operation: op,
            group: if resource == "ingresses" {
                "networking.k8s.io".into()
            } else {
                String::new()
            },
            version: "v1".into(),
            kind: "K".into(),
            resource: resource.into(),
            sub_resource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            user: "alice".into(),
            groups: vec![],
            dry_run: false,
        }
    }

    fn rule(ops: &[&str], groups: &[&str], res: &[&str], ns: &[&str], names: &[&str]) -> ScopeRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        ScopeRule {
            operations: v(ops),
            api_groups: v(groups),
            resources: v(res),
            namespaces: v(ns),
            names: v(names),
        }
    }

    #[test]
    fn matches_operation_group_resource_namespace_and_name() {
        let r = rule(
            &["DELETE"],
            &["networking.k8s.io"],
            &["ingresses"],
            &["prod"],
            &["web"],
        );
        assert!(covers(
            &r,
            &req(Operation::Delete, "ingresses", "", "prod", "web")
        ));
        assert!(!covers(
            &r,
            &req(Operation::Update, "ingresses", "", "prod", "web")
        ));
        assert!(!covers(
            &r,
            &req(Operation::Delete, "ingresses", "", "staging", "web")
        ));
        assert!(!covers(
            &r,
            &req(Operation::Delete, "ingresses", "", "prod", "api")
        ));
        assert!(!covers(
            &r,
            &req(Operation::Delete, "services", "", "prod", "web")
        ));
    }

    #[test]
    fn subresources_are_covered_only_when_named() {
        let exec = req(Operation::Connect, "pods", "exec", "prod", "p");
        assert!(!covers(
            &rule(&["*"], &[""], &["pods"], &["prod"], &[]),
            &exec
        ));
        assert!(covers(
            &rule(&["*"], &[""], &["pods/exec"], &["prod"], &[]),
            &exec
        ));
        assert!(covers(
            &rule(&["*"], &[""], &["pods/*"], &["prod"], &[]),
            &exec
        ));
        assert!(!covers(
            &rule(&["*"], &[""], &["pods/attach"], &["prod"], &[]),
            &exec
        ));
        assert!(covers(&rule(&["*"], &["*"], &["*"], &["*"], &[]), &exec));
    }

    #[test]
    fn empty_namespaces_mean_cluster_scoped_only() {
        let crb = req(Operation::Create, "clusterrolebindings", "", "", "x");
        assert!(covers(
            &rule(&["CREATE"], &[""], &["clusterrolebindings"], &[], &[]),
            &crb
        ));
        let pod = req(Operation::Create, "pods", "", "prod", "x");
        assert!(!covers(
            &rule(&["CREATE"], &[""], &["pods"], &[], &[]),
            &pod
        ));
    }

    #[test]
    fn the_request_command_names_this_exact_request() {
        let cmd = request_command(
            &req(Operation::Delete, "ingresses", "", "prod", "web"),
            "30m",
        );
        assert_eq!(
            cmd,
            "kubectl jit request --namespace prod --api-group networking.k8s.io --resource ingresses --operation DELETE --name web --duration 30m --reason \"...\""
        );
        let hostile = request_command(
            &req(Operation::Create, "pods", "", "prod", "x; rm -rf /"),
            "30m",
        );
        assert!(hostile.contains("--name 'x; rm -rf /'"), "{hostile}");
    }
}

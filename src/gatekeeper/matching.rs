//! A constraint's `spec.match`, as Gatekeeper documents it: `kinds`, `scope`,
//! `namespaces` and `excludedNamespaces` (with `prefix*` and `*suffix` globs), `name`
//! (glob), `labelSelector` and `namespaceSelector` (matchLabels, matchExpressions with
//! In, NotIn, Exists, DoesNotExist). A constraint is evaluated only for the requests its
//! match selects.

use serde_json::Value as Json;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Match {
    /// `(apiGroups, kinds)` pairs; empty: every kind.
    kinds: Vec<(Vec<String>, Vec<String>)>,
    scope: Scope,
    namespaces: Option<Vec<String>>,
    excluded: Vec<String>,
    name: Option<String>,
    labels: Option<Selector>,
    namespace_labels: Option<Selector>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scope {
    #[default]
    Any,
    Cluster,
    Namespaced,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Selector {
    labels: Vec<(String, String)>,
    expressions: Vec<(String, String, Vec<String>)>,
}

/// What a request is, for matching.
pub struct Target<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    /// Empty for a cluster-scoped object.
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a Json,
    /// The labels of the request's namespace, where known.
    pub namespace_labels: Option<&'a Json>,
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

impl Match {
    pub fn parse(spec: &Json) -> Result<Self, String> {
        if spec.is_null() {
            return Ok(Self::default());
        }
        let kinds = spec["kinds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| (strings(&k["apiGroups"]), strings(&k["kinds"])))
            .collect();
        let scope = match spec["scope"].as_str().unwrap_or("*") {
            "*" => Scope::Any,
            "Cluster" => Scope::Cluster,
            "Namespaced" => Scope::Namespaced,
            other => {
                return Err(format!(
                    "match.scope {other:?} is not *, Cluster or Namespaced"
                ))
            }
        };
        Ok(Self {
            kinds,
            scope,
            namespaces: spec.get("namespaces").filter(|v| !v.is_null()).map(strings),
            excluded: strings(&spec["excludedNamespaces"]),
            name: spec["name"].as_str().map(str::to_string),
            labels: selector(&spec["labelSelector"])?,
            namespace_labels: selector(&spec["namespaceSelector"])?,
        })
    }

    pub fn selects(&self, t: &Target<'_>) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        if !self.kinds.is_empty()
            && !self
                .kinds
                .iter()
                .any(|(groups, kinds)| any(groups, t.group) && any(kinds, t.kind))
        {
            return false;
        }
        match (self.scope, t.namespace.is_empty()) {
            (Scope::Cluster, false) | (Scope::Namespaced, true) => return false,
            _ => {}
        }
        // Namespace lists apply to namespaced objects (and to a Namespace, by its name).
        let is_namespace = t.namespace.is_empty() && t.kind == "Namespace" && t.group.is_empty();
        let namespace = if is_namespace { t.name } else { t.namespace };
        if !namespace.is_empty() {
            if let Some(list) = &self.namespaces {
                if !list.iter().any(|p| glob(p, namespace)) {
                    return false;
                }
            }
            if self.excluded.iter().any(|p| glob(p, namespace)) {
                return false;
            }
        }
        if let Some(name) = &self.name {
            if !glob(name, t.name) {
                return false;
            }
        }
        if let Some(selector) = &self.labels {
            if !selector.selects(t.labels) {
                return false;
            }
        }
        if let Some(selector) = &self.namespace_labels {
            // A Namespace is matched by its own labels. Where the namespace's labels are
            // not known (a namespace created a moment ago, a cluster-scoped object) the
            // constraint is evaluated: skipping it would let the request through unchecked.
            let labels = if is_namespace {
                Some(t.labels)
            } else {
                t.namespace_labels
            };
            if labels.is_some_and(|l| !selector.selects(l)) {
                return false;
            }
        }
        true
    }
}

fn selector(v: &Json) -> Result<Option<Selector>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let labels = v["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let mut expressions = Vec::new();
    for e in v["matchExpressions"].as_array().into_iter().flatten() {
        let operator = e["operator"].as_str().unwrap_or_default().to_string();
        if !matches!(
            operator.as_str(),
            "In" | "NotIn" | "Exists" | "DoesNotExist"
        ) {
            return Err(format!(
                "selector operator {operator:?} is not In, NotIn, Exists or DoesNotExist"
            ));
        }
        expressions.push((
            e["key"].as_str().unwrap_or_default().to_string(),
            operator,
            strings(&e["values"]),
        ));
    }
    Ok(Some(Selector {
        labels,
        expressions,
    }))
}

impl Selector {
    fn selects(&self, labels: &Json) -> bool {
        let get = |k: &str| labels.get(k).and_then(Json::as_str);
        self.labels.iter().all(|(k, v)| get(k) == Some(v.as_str()))
            && self.expressions.iter().all(|(k, op, values)| {
                let value = get(k);
                match op.as_str() {
                    "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                    "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
                    "Exists" => value.is_some(),
                    _ => value.is_none(),
                }
            })
    }
}

/// Gatekeeper's namespace globs: `*` alone, a `prefix*` or a `*suffix`.
fn glob(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn target<'a>(kind: &'a str, namespace: &'a str, labels: &'a Json) -> Target<'a> {
        Target {
            group: "",
            kind,
            namespace,
            name: "web",
            labels,
            namespace_labels: None,
        }
    }

    #[test]
    fn kinds_scope_namespaces_and_globs() {
        let none = json!({});
        let m = Match::parse(&json!({
            "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}],
            "namespaces": ["prod-*", "shop"],
            "excludedNamespaces": ["*-system"],
        }))
        .unwrap();
        assert!(m.selects(&target("Pod", "prod-eu", &none)));
        assert!(m.selects(&target("Pod", "shop", &none)));
        assert!(!m.selects(&target("Pod", "dev", &none)));
        assert!(!m.selects(&target("Service", "shop", &none)));
        let m = Match::parse(&json!({"excludedNamespaces": ["kube-*"], "scope": "Namespaced"}))
            .unwrap();
        assert!(!m.selects(&target("Pod", "kube-system", &none)));
        assert!(!m.selects(&target("ClusterRole", "", &none)));
        assert!(m.selects(&target("Pod", "dev", &none)));
    }

    #[test]
    fn label_selectors_with_expressions() {
        let m = Match::parse(&json!({"labelSelector": {
            "matchLabels": {"team": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["test"]}],
        }}))
        .unwrap();
        assert!(m.selects(&target("Pod", "dev", &json!({"team": "web"}))));
        assert!(!m.selects(&target(
            "Pod",
            "dev",
            &json!({"team": "web", "tier": "test"})
        )));
        assert!(!m.selects(&target("Pod", "dev", &json!({}))));
        assert!(Match::parse(
            &json!({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}})
        )
        .is_err());
    }

    /// namespaceSelector never lets a request skip a constraint by its namespace being
    /// unknown, and a Namespace is matched by its own labels.
    #[test]
    fn a_namespace_selector_fails_closed_and_reads_a_namespaces_own_labels() {
        let m =
            Match::parse(&json!({"namespaceSelector": {"matchLabels": {"tier": "prod"}}})).unwrap();
        let none = json!({});
        let prod = json!({"tier": "prod"});
        let dev = json!({"tier": "dev"});
        let mut pod = target("Pod", "shop", &none);
        assert!(m.selects(&pod), "unknown namespace labels: evaluated");
        pod.namespace_labels = Some(&prod);
        assert!(m.selects(&pod));
        pod.namespace_labels = Some(&dev);
        assert!(!m.selects(&pod));
        assert!(m.selects(&target("Namespace", "", &prod)));
        assert!(!m.selects(&target("Namespace", "", &dev)));
    }
}

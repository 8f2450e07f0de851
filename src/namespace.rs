//! The labels of the cluster's namespaces, so that a policy can protect a namespace by
//! label (`jitguard.dev/protected: "true"`) and not only by name.
//!
//! The API server sends the object of a request but not the labels of the namespace it
//! lives in, so jitguard keeps them: from a watch on Namespaces in a cluster, from the
//! Namespace documents of the grants file without one, and from the manifests themselves
//! in `dry-run`. A review shows policies the namespaces it is about (the request's, and
//! those an AccessRequest's scope names) as `input.jit.namespaces`
//! (`{name: {"name": ..., "labels": {...}}}`); unknown namespaces are absent.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use regorus::Value;

/// Labels by namespace name, swapped whole on change; readers never wait.
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    inner: Arc<ArcSwap<HashMap<String, Value>>>,
    /// A full set has been loaded once (the first list, or the file).
    synced: Arc<AtomicBool>,
}

impl Namespaces {
    /// Replaces every namespace (a fresh list, a reloaded file).
    pub fn replace<'a>(&self, items: impl IntoIterator<Item = &'a Namespace>) {
        let map = items.into_iter().filter_map(entry).collect();
        self.inner.store(Arc::new(map));
        self.synced.store(true, Ordering::Release);
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Adds or changes some namespaces, keeping the others.
    pub fn apply<'a>(&self, items: impl IntoIterator<Item = &'a Namespace>) {
        let mut map = HashMap::clone(&self.inner.load());
        map.extend(items.into_iter().filter_map(entry));
        self.inner.store(Arc::new(map));
    }

    pub fn remove(&self, name: &str) {
        let mut map = HashMap::clone(&self.inner.load());
        if map.remove(name).is_some() {
            self.inner.store(Arc::new(map));
        }
    }

    pub fn len(&self) -> usize {
        self.inner.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Learns the Namespace a review creates (`dry-run`: Namespace documents among the
    /// manifests), unless that namespace is known already. What jitguard knows (the grants
    /// file, the cluster) wins over the change under review: a change must not unprotect
    /// its own namespace by carrying a Namespace document. Returns the known namespace, as
    /// a Namespace object, when there is one (the change is then an UPDATE of it).
    pub fn learn(&self, review_body: &[u8]) -> Option<serde_json::Value> {
        #[derive(serde::Deserialize)]
        struct Review {
            request: Request,
        }
        #[derive(serde::Deserialize)]
        struct Request {
            kind: Kind,
            object: Option<Namespace>,
        }
        #[derive(serde::Deserialize)]
        struct Kind {
            group: String,
            kind: String,
        }
        let Review { request } = serde_json::from_slice::<Review>(review_body).ok()?;
        if !(request.kind.group.is_empty() && request.kind.kind == "Namespace") {
            return None;
        }
        let ns = request.object?;
        let name = ns.metadata.name.clone()?;
        if let Some(known) = self.inner.load().get(&name) {
            let labels = serde_json::to_value(&known["labels"]).unwrap_or_default();
            return Some(serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels},
            }));
        }
        self.apply([&ns]);
        None
    }

    /// `input.jit.namespaces`: name → `{"name", "labels"}` for each of `names` that is
    /// known (a request's namespace; the namespaces an AccessRequest's scope names).
    pub fn known<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Value {
        let map = self.inner.load();
        let known: BTreeMap<Value, Value> = names
            .into_iter()
            .filter_map(|n| Some((Value::from(n), map.get(n)?.clone())))
            .collect();
        Value::from(known)
    }
}

fn entry(ns: &Namespace) -> Option<(String, Value)> {
    let name = ns.metadata.name.clone().filter(|n| !n.is_empty())?;
    let labels: BTreeMap<String, String> = ns.metadata.labels.clone().unwrap_or_default();
    let value = Value::from(serde_json::json!({"name": name, "labels": labels}));
    Some((name, value))
}

/// Keeps `store` in step with the cluster's Namespaces until the task is dropped.
///
/// kube-runtime's watcher re-lists after 410 Gone and, with its default backoff, retries
/// every other failure; meanwhile the last known labels keep serving (a namespace's
/// labels change rarely, and names listed in the policy data never depend on this).
pub async fn run_cluster(client: Client, store: Namespaces) {
    let api: Api<Namespace> = Api::all(client);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    tokio::pin!(stream);
    let mut buffer: Vec<Namespace> = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => buffer.clear(),
            Ok(watcher::Event::InitApply(ns)) => buffer.push(ns),
            Ok(watcher::Event::InitDone) => {
                store.replace(&buffer);
                tracing::info!(namespaces = store.len(), "namespace labels listed");
                buffer.clear();
            }
            Ok(watcher::Event::Apply(ns)) => store.apply([&ns]),
            Ok(watcher::Event::Delete(ns)) => {
                if let Some(name) = ns.metadata.name.as_deref() {
                    store.remove(name);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Namespace watch failed; the last known namespace labels keep serving while it retries");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
        }))
        .unwrap()
    }

    #[test]
    fn known_namespaces_show_their_labels_and_unknown_ones_nothing() {
        let store = Namespaces::default();
        assert!(!store.is_synced());
        store.replace(&[ns("payments", &[("jitguard.dev/protected", "true")])]);
        let known = store.known(["payments", "dev", ""]);
        assert_eq!(
            known["payments"]["labels"]["jitguard.dev/protected"],
            Value::from("true")
        );
        assert_eq!(known["payments"]["name"], Value::from("payments"));
        assert_eq!(
            known.as_object().unwrap().len(),
            1,
            "unknown ones are absent"
        );
        assert!(store.is_synced());

        store.apply([&ns("dev", &[])]);
        assert_eq!(
            store.known(["dev", "payments"]).as_object().unwrap().len(),
            2
        );
        store.remove("payments");
        assert_eq!(store.known(["payments"]).as_object().unwrap().len(), 0);
        store.replace(&[]);
        assert!(store.is_empty());
    }
}

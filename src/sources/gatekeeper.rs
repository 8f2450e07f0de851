//! Gatekeeper's objects in the cluster, mirrored into a [`ClusterFeed`], so that a
//! cluster moving from Gatekeeper keeps its ConstraintTemplates, Constraints and sync
//! configuration as they are:
//!
//! - ConstraintTemplates (`templates.gatekeeper.sh/v1`), where their CRD exists;
//! - for each template's kind, its Constraints (`constraints.gatekeeper.sh/v1beta1`,
//!   plural the lower-cased kind, as Gatekeeper generates the CRD);
//! - the `Config` named `config` in Gatekeeper's namespace (`config.gatekeeper.sh`), whose
//!   `spec.sync.syncOnly` names kinds copied into `data.inventory`, and SyncSets
//!   (`syncset.gatekeeper.sh`, cluster-scoped), whose `spec.gvks` name more.
//!
//! Each is a kube-runtime watcher of its own, started and stopped as the templates and
//! the Config change. A kind whose CRD does not exist is empty (and looked for again
//! later); the feed is synced once every watch has listed once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::Value as Json;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};

use crate::gatekeeper::feed::ClusterFeed;

/// Changes that arrive together are published together.
const SETTLE: Duration = Duration::from_millis(200);
/// How long a kind whose CRD does not exist waits before it is looked for again.
const ABSENT_RETRY: Duration = Duration::from_secs(10);

/// What one watch mirrors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Watched {
    Templates,
    Config,
    SyncSets,
    Constraints(String),
    /// group, version, kind.
    Inventory(String, String, String),
}

#[derive(Default)]
struct Mirror {
    /// By namespace/name.
    objects: BTreeMap<String, Json>,
    /// Listed at least once (or known not to exist).
    synced: bool,
}

#[derive(Default)]
struct State {
    mirrors: HashMap<Watched, Mirror>,
}

/// Mirrors the cluster's Gatekeeper objects into `feed` until dropped. `namespace`:
/// where Gatekeeper's `Config` lives (`gatekeeper-system` by default).
pub async fn run_cluster(client: Client, feed: ClusterFeed, namespace: String) {
    let state = Arc::new(Mutex::new(State::default()));
    let changed = Arc::new(Notify::new());
    // Every watch stops with this task: a JoinSet aborts its tasks when dropped.
    let mut running = JoinSet::new();
    let mut tasks: HashMap<Watched, AbortHandle> = HashMap::new();
    let spawn = |running: &mut JoinSet<()>, what: Watched| {
        running.spawn(mirror(
            client.clone(),
            what,
            namespace.clone(),
            state.clone(),
            changed.clone(),
        ))
    };
    for what in [Watched::Templates, Watched::Config, Watched::SyncSets] {
        tasks.insert(what.clone(), spawn(&mut running, what));
    }
    loop {
        changed.notified().await;
        tokio::time::sleep(SETTLE).await;
        // Reap the watches aborted below on earlier rounds.
        while running.try_join_next().is_some() {}
        let wanted = wanted(&state);
        tasks.retain(|what, task| {
            let keep = matches!(
                what,
                Watched::Templates | Watched::Config | Watched::SyncSets
            ) || wanted.contains(what);
            if !keep {
                task.abort();
                if let Ok(mut s) = state.lock() {
                    s.mirrors.remove(what);
                }
            }
            keep
        });
        for what in wanted {
            if !tasks.contains_key(&what) {
                tasks.insert(what.clone(), spawn(&mut running, what));
            }
        }
        publish(&state, &feed, &tasks);
    }
}

/// The constraint kinds the templates define and the kinds the Config and SyncSets sync.
fn wanted(state: &Mutex<State>) -> Vec<Watched> {
    let Ok(s) = state.lock() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(templates) = s.mirrors.get(&Watched::Templates) {
        for t in templates.objects.values() {
            if let Some(kind) = t
                .pointer("/spec/crd/spec/names/kind")
                .and_then(Json::as_str)
            {
                out.push(Watched::Constraints(kind.to_string()));
            }
        }
    }
    // The Config's `spec.sync.syncOnly` and each SyncSet's `spec.gvks`: the same
    // `{group, version, kind}` entries.
    let sync_lists = [
        (Watched::Config, "/spec/sync/syncOnly"),
        (Watched::SyncSets, "/spec/gvks"),
    ];
    for (source, pointer) in sync_lists {
        for object in s
            .mirrors
            .get(&source)
            .into_iter()
            .flat_map(|m| m.objects.values())
        {
            for kind in object
                .pointer(pointer)
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let field = |k: &str| kind.get(k).and_then(Json::as_str).unwrap_or_default();
                if !field("kind").is_empty() && !field("version").is_empty() {
                    out.push(Watched::Inventory(
                        field("group").to_string(),
                        field("version").to_string(),
                        field("kind").to_string(),
                    ));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn publish(state: &Mutex<State>, feed: &ClusterFeed, tasks: &HashMap<Watched, AbortHandle>) {
    let Ok(s) = state.lock() else {
        return;
    };
    let synced = tasks
        .keys()
        .all(|what| s.mirrors.get(what).is_some_and(|m| m.synced));
    let mut documents = Vec::new();
    let mut inventory = Vec::new();
    let mut keys: Vec<&Watched> = s.mirrors.keys().collect();
    keys.sort();
    for what in keys {
        let Some(mirror) = s.mirrors.get(what) else {
            continue;
        };
        for (name, object) in &mirror.objects {
            match what {
                Watched::Templates => {
                    documents.push((format!("cluster ConstraintTemplate {name}"), object.clone()))
                }
                Watched::Constraints(kind) => {
                    documents.push((format!("cluster {kind} {name}"), object.clone()))
                }
                Watched::Inventory(..) => inventory.push(object.clone()),
                Watched::Config | Watched::SyncSets => {}
            }
        }
    }
    // Templates sort before constraints (the enum's order), as the pack reads them.
    feed.publish_documents(documents, synced);
    feed.publish_inventory(crate::gatekeeper::inventory(&inventory));
}

fn resource(what: &Watched) -> Option<ApiResource> {
    let (gvk, plural) = match what {
        Watched::Templates => (
            GroupVersionKind::gvk("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
            "constrainttemplates".to_string(),
        ),
        Watched::Config => (
            GroupVersionKind::gvk("config.gatekeeper.sh", "v1alpha1", "Config"),
            "configs".to_string(),
        ),
        Watched::SyncSets => (
            GroupVersionKind::gvk("syncset.gatekeeper.sh", "v1alpha1", "SyncSet"),
            "syncsets".to_string(),
        ),
        Watched::Constraints(kind) => (
            GroupVersionKind::gvk("constraints.gatekeeper.sh", "v1beta1", kind),
            kind.to_lowercase(),
        ),
        Watched::Inventory(..) => return None,
    };
    Some(ApiResource::from_gvk_with_plural(&gvk, &plural))
}

/// One kind, mirrored into `state` until aborted.
async fn mirror(
    client: Client,
    what: Watched,
    namespace: String,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
) {
    // A full list (or the knowledge that there is nothing to list): synced.
    let replace = |objects: BTreeMap<String, Json>| {
        edit(&state, &changed, &what, |m| {
            m.objects = objects;
            m.synced = true;
        });
    };
    let mut backoff = watcher::DefaultBackoff::default();
    loop {
        // The inventory's kinds are any the Config names: their plural and scope come
        // from discovery.
        let found = match &what {
            Watched::Inventory(group, version, kind) => {
                kube::discovery::pinned_kind(&client, &GroupVersionKind::gvk(group, version, kind))
                    .await
                    .map(|(r, _)| r)
                    .map_err(|e| e.to_string())
            }
            other => resource(other).ok_or_else(|| "no resource".to_string()),
        };
        let resource = match found {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(watch = ?what, error = %e, "a kind Gatekeeper's Config syncs is not served by the cluster; its inventory stays empty");
                replace(BTreeMap::new());
                tokio::time::sleep(ABSENT_RETRY).await;
                continue;
            }
        };
        let api: Api<DynamicObject> = match what {
            Watched::Config => Api::namespaced_with(client.clone(), &namespace, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let api_version = resource.api_version.clone();
        let kind = resource.kind.clone();
        let as_json = |o: DynamicObject| -> Option<(String, Json)> {
            let key = match &o.metadata.namespace {
                Some(ns) => format!("{ns}/{}", o.metadata.name.clone().unwrap_or_default()),
                None => o.metadata.name.clone().unwrap_or_default(),
            };
            if what == Watched::Config && o.metadata.name.as_deref() != Some("config") {
                return None;
            }
            let mut json = serde_json::to_value(o).ok()?;
            if let Some(map) = json.as_object_mut() {
                // List items may come without their type; the inventory is keyed by it.
                map.insert("apiVersion".into(), api_version.clone().into());
                map.insert("kind".into(), kind.clone().into());
                if let Some(meta) = map.get_mut("metadata").and_then(Json::as_object_mut) {
                    meta.remove("managedFields");
                }
            }
            Some((key, json))
        };
        let stream = watcher(api, watcher::Config::default());
        tokio::pin!(stream);
        let mut buffer = BTreeMap::new();
        let failure = loop {
            let Some(event) = stream.next().await else {
                break Failure::Ended;
            };
            match event {
                Ok(watcher::Event::Init) => buffer.clear(),
                Ok(watcher::Event::InitApply(o)) => {
                    if let Some((k, v)) = as_json(o) {
                        buffer.insert(k, v);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    replace(std::mem::take(&mut buffer));
                    backoff = watcher::DefaultBackoff::default();
                }
                Ok(watcher::Event::Apply(o)) => {
                    if let Some((k, v)) = as_json(o) {
                        edit(&state, &changed, &what, |m| {
                            m.objects.insert(k, v);
                        });
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    if let Some((k, _)) = as_json(o) {
                        edit(&state, &changed, &what, |m| {
                            m.objects.remove(&k);
                        });
                    }
                }
                Err(e) => break Failure::Watch(e),
            }
        };
        if failure.is_not_found() {
            // No CRD for this kind (Gatekeeper not installed, or a template whose
            // constraint CRD Gatekeeper has not made): nothing to serve from it.
            tracing::debug!(watch = ?what, "not served by the cluster; looked for again later");
            replace(BTreeMap::new());
            tokio::time::sleep(ABSENT_RETRY).await;
            continue;
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        tracing::warn!(watch = ?what, error = %failure.to_string(), retry_in_ms = delay.as_millis() as u64, "Gatekeeper watch failed; serving the last known objects until it recovers");
        tokio::time::sleep(delay).await;
    }
}

/// One change to a kind's mirror, then a word to the publisher.
fn edit(state: &Mutex<State>, changed: &Notify, what: &Watched, change: impl FnOnce(&mut Mirror)) {
    if let Ok(mut s) = state.lock() {
        change(s.mirrors.entry(what.clone()).or_default());
    }
    changed.notify_one();
}

/// Why a watch stopped.
enum Failure {
    Ended,
    Watch(watcher::Error),
}

impl Failure {
    /// The API server does not serve the kind (no CRD): an answer, not a failure.
    fn is_not_found(&self) -> bool {
        let status = match self {
            Self::Watch(
                watcher::Error::InitialListFailed(e)
                | watcher::Error::WatchStartFailed(e)
                | watcher::Error::WatchFailed(e),
            ) => match e {
                kube::Error::Api(status) => status,
                _ => return false,
            },
            Self::Watch(watcher::Error::WatchError(status)) => status,
            _ => return false,
        };
        status.code == 404
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ended => f.write_str("the watch stream ended"),
            Self::Watch(e) => write!(f, "{e}"),
        }
    }
}

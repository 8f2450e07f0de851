//! Feeding the grant cache: from the cluster (a kube-runtime watcher over AccessRequests)
//! or from a local file. Both end in [`GrantFeed::replace`]; lifecycle changes (a grant
//! became live, expired, was revoked) become audit records.

pub mod gatekeeper;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::audit::Audit;
use crate::grant::resource::{AccessRequest, Phase};
use crate::grant::store::{Grant, GrantFeed, GrantIndex};
use crate::metrics::Metrics;
use crate::namespace::Namespaces;

/// Events that arrive together are applied together: one index swap per batch.
const BATCH: usize = 1024;

/// The writer side: every approved grant by name, published as a fresh index.
struct Writer {
    store: GrantFeed,
    grants: HashMap<String, Arc<Grant>>,
    lifecycle: Lifecycle,
}

impl Writer {
    fn new(store: GrantFeed, audit: Audit, metrics: Metrics) -> Self {
        Self {
            store,
            grants: HashMap::new(),
            lifecycle: Lifecycle::new(audit, metrics),
        }
    }

    fn apply(&mut self, ar: &AccessRequest) {
        let Some(name) = ar.metadata.name.clone() else {
            return;
        };
        match Grant::from_resource(ar) {
            Some(grant) => {
                self.grants.insert(name, Arc::new(grant));
            }
            None => {
                if self.grants.remove(&name).is_some() {
                    self.lifecycle.ended(&name, ar);
                }
            }
        }
    }

    fn delete(&mut self, ar: &AccessRequest) {
        if let Some(name) = &ar.metadata.name {
            if self.grants.remove(name).is_some() {
                self.lifecycle.ended(name, ar);
            }
        }
    }

    fn replace_all(&mut self, items: &[AccessRequest]) {
        let fresh: HashMap<String, Arc<Grant>> = items
            .iter()
            .filter_map(|ar| {
                Some((
                    ar.metadata.name.clone()?,
                    Arc::new(Grant::from_resource(ar)?),
                ))
            })
            .collect();
        for ar in items {
            if let Some(name) = &ar.metadata.name {
                if self.grants.contains_key(name) && !fresh.contains_key(name) {
                    self.lifecycle.ended(name, ar);
                }
            }
        }
        self.grants = fresh;
    }

    fn publish(&mut self) {
        self.store
            .replace(GrantIndex::build(self.grants.values().cloned()));
        self.tick();
    }

    /// Time-driven changes: grants become live at approval and expire at their end
    /// without any event from the source.
    fn tick(&mut self) {
        self.lifecycle.observe(&self.grants, Timestamp::now());
    }
}

/// Tracks which grants are live to emit `grant.live` / `grant.expired` /
/// `grant.revoked` audit records and the `jitguard_grants_live` gauge.
struct Lifecycle {
    live: HashSet<String>,
    audit: Audit,
    metrics: Metrics,
}

impl Lifecycle {
    fn new(audit: Audit, metrics: Metrics) -> Self {
        Self {
            live: HashSet::new(),
            audit,
            metrics,
        }
    }

    fn observe(&mut self, grants: &HashMap<String, Arc<Grant>>, now: Timestamp) {
        let mut live_now = HashSet::with_capacity(self.live.len());
        for (name, grant) in grants {
            if grant.live_at(now) {
                if !self.live.contains(name) {
                    self.audit.grant_event("grant.live", grant, "");
                }
                live_now.insert(name.clone());
            }
        }
        for name in self.live.difference(&live_now) {
            if let Some(grant) = grants.get(name) {
                if now >= grant.expires_at {
                    self.audit.grant_event("grant.expired", grant, "");
                }
            }
        }
        self.metrics.grants_live.set(live_now.len() as i64);
        self.live = live_now;
    }

    /// A grant left the cache because its AccessRequest changed or went away.
    fn ended(&mut self, name: &str, ar: &AccessRequest) {
        if !self.live.remove(name) {
            return;
        }
        let status = ar.status.as_ref();
        let kind = match status.map(|s| s.phase) {
            Some(Phase::Revoked) => "grant.revoked",
            Some(Phase::Expired) => "grant.expired",
            _ if status.is_some_and(|s| s.revoked_at.is_some()) => "grant.revoked",
            _ => "grant.removed",
        };
        let by = status
            .and_then(|s| s.revoked_by.clone())
            .unwrap_or_default();
        self.audit
            .grant_event_named(kind, name, &ar.spec.requester, &by);
    }
}

/// Runs the cluster source until the task is dropped.
///
/// kube-runtime's watcher lists, then watches, re-lists by itself after 410 Gone and
/// resumes dropped watches. On any other error this loop marks the cache broken (stale
/// after the configured bound, so require_grant fails closed), backs off on kube's
/// `DefaultBackoff` schedule and starts a fresh watcher: a full list, so the cache is
/// known good again exactly when that list completes.
pub async fn run_cluster(client: Client, store: GrantFeed, audit: Audit, metrics: Metrics) {
    let api: Api<AccessRequest> = Api::all(client);
    let mut writer = Writer::new(store, audit, metrics.clone());
    let mut backoff = watcher::DefaultBackoff::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stream = watcher(api.clone(), watcher::Config::default()).ready_chunks(BATCH);
        tokio::pin!(stream);
        let mut buffer: Option<Vec<AccessRequest>> = None;
        let failure = loop {
            let batch = tokio::select! {
                batch = stream.next() => batch,
                _ = ticker.tick() => { writer.tick(); continue; }
            };
            let Some(batch) = batch else {
                break "the watch stream ended".to_string();
            };
            let mut changed = false;
            let mut error = None;
            for event in batch {
                match event {
                    Ok(watcher::Event::Init) => buffer = Some(Vec::new()),
                    Ok(watcher::Event::InitApply(ar)) => {
                        buffer.get_or_insert_with(Vec::new).push(ar)
                    }
                    Ok(watcher::Event::InitDone) => {
                        writer.replace_all(&buffer.take().unwrap_or_default());
                        changed = true;
                        backoff = watcher::DefaultBackoff::default();
                    }
                    Ok(watcher::Event::Apply(ar)) => {
                        writer.apply(&ar);
                        changed = true;
                    }
                    Ok(watcher::Event::Delete(ar)) => {
                        writer.delete(&ar);
                        changed = true;
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            if changed {
                writer.publish();
                metrics.grant_source_events.with_label_values(&["ok"]).inc();
            }
            if let Some(e) = error {
                break e;
            }
        };
        writer.store.mark_broken();
        metrics
            .grant_source_events
            .with_label_values(&["error"])
            .inc();
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        tracing::warn!(error = %failure, retry_in_ms = delay.as_millis() as u64, "AccessRequest watch failed; serving the last known grants until it recovers");
        tokio::time::sleep(delay).await;
    }
}

/// Re-reads the grants file when its content changes. A file that does not parse is
/// refused (logged, counted) and the last good set keeps serving.
pub struct FileSource {
    path: PathBuf,
    writer: Writer,
    namespaces: Namespaces,
    digest: Option<u64>,
    /// A good set has been loaded: only then does a refused change leave one serving.
    loaded: bool,
}

impl FileSource {
    pub fn new(
        path: PathBuf,
        store: GrantFeed,
        namespaces: Namespaces,
        audit: Audit,
        metrics: Metrics,
    ) -> Self {
        Self {
            path,
            writer: Writer::new(store, audit, metrics),
            namespaces,
            digest: None,
            loaded: false,
        }
    }

    /// Checks the file and reloads it if it changed. Returns an error the first time a
    /// changed file fails to parse.
    pub fn poll(&mut self) -> Result<bool, crate::grant::file::GrantFileError> {
        let text =
            std::fs::read(&self.path).map_err(|source| crate::grant::file::GrantFileError::Io {
                path: self.path.clone(),
                source,
            });
        let digest = match &text {
            Ok(bytes) => crate::reload::digest(bytes),
            Err(_) => 0,
        };
        if Some(digest) == self.digest {
            self.writer.tick();
            return Ok(false);
        }
        self.digest = Some(digest);
        let result = text.and_then(|bytes| {
            crate::grant::file::parse(&String::from_utf8_lossy(&bytes), &self.path)
        });
        let metrics = self.writer.lifecycle.metrics.clone();
        match result {
            Ok(state) => {
                self.writer.replace_all(&state.grants);
                self.writer.publish();
                self.namespaces.replace(&state.namespaces);
                self.loaded = true;
                for problem in state.problems() {
                    tracing::warn!(path = %self.path.display(), "{problem}");
                }
                metrics.grant_source_events.with_label_values(&["ok"]).inc();
                tracing::info!(path = %self.path.display(), grants = self.writer.grants.len(), "grants file loaded");
                Ok(true)
            }
            Err(e) => {
                metrics
                    .grant_source_events
                    .with_label_values(&["error"])
                    .inc();
                // Before the first good load the caller refuses to start and says why.
                if self.loaded {
                    tracing::error!(error = %e, "grants file refused; the last good grants keep serving");
                }
                Err(e)
            }
        }
    }
}

//! What the cluster holds of Gatekeeper, as its watch ([`crate::sources::gatekeeper`])
//! last saw it: the ConstraintTemplates and Constraints to serve beside the policy
//! folder's, and the objects a Gatekeeper `Config` syncs (`data.inventory`).
//!
//! The policy reload compiles the documents into the serving snapshot; workers load the
//! inventory into their referential templates when its generation moves. Neither waits
//! on the watch: they read the last snapshot.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value as Json;

/// One view of the cluster's Gatekeeper objects.
#[derive(Debug, Default)]
pub struct ClusterSnapshot {
    /// Templates, then constraints, each as `(where, document)`.
    pub documents: Vec<(String, Json)>,
    /// [`digest`] of `documents`: the policy reload compares it.
    pub digest: u64,
    /// Whether every watched kind has finished its first list.
    pub synced: bool,
    /// `data.inventory`.
    pub inventory: Arc<Json>,
    /// Moves with every change of `inventory`; 0 before the first.
    pub inventory_generation: u64,
}

/// Shared between the watch (writer), the policy reload and the workers (readers).
#[derive(Clone, Debug)]
pub struct ClusterFeed {
    current: Arc<ArcSwap<ClusterSnapshot>>,
    /// The serving policies include a synced snapshot's documents: readiness waits for
    /// it, so that a replica never serves without the cluster's constraints.
    applied: Arc<AtomicBool>,
}

impl ClusterFeed {
    /// Nothing to watch (no cluster, or offline commands): ready, empty.
    pub fn none() -> Self {
        let feed = Self::watching();
        feed.publish_documents(Vec::new(), true);
        feed.mark_applied();
        feed
    }

    /// A feed the cluster watch will fill; not ready until its first full list is served.
    pub fn watching() -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(ClusterSnapshot::default())),
            applied: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        self.current.load_full()
    }

    /// Replaces the templates and constraints (keeping the inventory).
    pub fn publish_documents(&self, documents: Vec<(String, Json)>, synced: bool) {
        self.current.rcu(|old| ClusterSnapshot {
            digest: digest(&documents),
            documents: documents.clone(),
            synced,
            inventory: old.inventory.clone(),
            inventory_generation: old.inventory_generation,
        });
    }

    /// Replaces the inventory, if it changed.
    pub fn publish_inventory(&self, inventory: Json) {
        if *self.current.load().inventory == inventory {
            return;
        }
        let inventory = Arc::new(inventory);
        self.current.rcu(|old| ClusterSnapshot {
            documents: old.documents.clone(),
            digest: old.digest,
            synced: old.synced,
            inventory: inventory.clone(),
            inventory_generation: old.inventory_generation + 1,
        });
    }

    /// The inventory and its generation, if it moved past `generation`. Read on every
    /// request, so without taking a reference to the snapshot unless it moved.
    pub fn inventory_newer_than(&self, generation: u64) -> Option<(u64, Arc<Json>)> {
        let current = self.current.load();
        (current.inventory_generation != generation)
            .then(|| (current.inventory_generation, current.inventory.clone()))
    }

    pub fn mark_applied(&self) {
        self.applied.store(true, Ordering::Release);
    }

    /// Whether the serving policies include the cluster's constraints.
    pub fn is_applied(&self) -> bool {
        self.applied.load(Ordering::Acquire)
    }
}

/// A digest of Gatekeeper documents (0 for none), combined with the policy folder's to
/// name what a policy snapshot was compiled from.
pub fn digest(documents: &[(String, Json)]) -> u64 {
    if documents.is_empty() {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (at, doc) in documents {
        at.hash(&mut h);
        doc.to_string().hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_generation_moves_only_when_it_changes() {
        let feed = ClusterFeed::watching();
        assert!(!feed.is_applied());
        assert_eq!(feed.snapshot().inventory_generation, 0);
        feed.publish_inventory(serde_json::json!({"cluster": {}}));
        feed.publish_inventory(serde_json::json!({"cluster": {}}));
        assert_eq!(feed.snapshot().inventory_generation, 1);
        feed.publish_documents(vec![("x".into(), serde_json::json!({}))], true);
        let s = feed.snapshot();
        assert!(s.synced && s.digest != 0 && s.inventory_generation == 1);
        assert!(ClusterFeed::none().is_applied());
        assert_eq!(feed.inventory_newer_than(1), None);
        assert_eq!(feed.inventory_newer_than(0).map(|(g, _)| g), Some(1));
    }
}

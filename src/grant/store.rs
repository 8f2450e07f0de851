//! The live grant cache: an immutable index of approved grants, keyed by subject (user,
//! group), swapped atomically by whichever source feeds it. Readers never lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use regorus::Value;

use super::resource::{AccessRequest, Phase, ScopeRule};

/// An approved grant, compiled for lookups. Whether it is live is decided per request,
/// against the request's own time, so a grant stops working exactly at `expires_at`
/// without any sweep.
#[derive(Debug)]
pub struct Grant {
    pub name: Arc<str>,
    pub requester: String,
    pub group: Option<String>,
    pub scope: Vec<ScopeRule>,
    pub approved_at: Timestamp,
    pub expires_at: Timestamp,
    pub break_glass: bool,
    pub reason: String,
    pub ticket: Option<String>,
    /// What policies see in `input.jit.grants`: built on a grant's first use and kept,
    /// so that the many grants never used cost no policy value at all.
    value: OnceLock<Value>,
}

/// What an AccessRequest's status makes of it.
enum Judged {
    /// Not approved, or revoked: no grant, as intended.
    NotAGrant,
    /// Says Approved but cannot be a grant: why.
    Broken(String),
    Grant {
        approved_at: Timestamp,
        expires_at: Timestamp,
        /// The status's `expiresAt`, when it is later than approvedAt + duration and so
        /// was not believed.
        ignored_expiry: Option<Timestamp>,
    },
}

fn judge(ar: &AccessRequest) -> Judged {
    let Some(status) = ar.status.as_ref() else {
        return Judged::NotAGrant;
    };
    if status.phase != Phase::Approved || status.revoked_at.is_some() {
        return Judged::NotAGrant;
    }
    let Some(approved_at) = status.approved_at.as_ref().map(|t| t.0) else {
        return Judged::Broken(
            "is Approved but has no status.approvedAt, so it grants nothing".into(),
        );
    };
    let Some(by_duration) = ar.spec.end_from(approved_at) else {
        return Judged::Broken(format!(
            "has a duration {:?} that is not a duration like 30m or 2h, so it grants nothing",
            ar.spec.duration
        ));
    };
    // expiresAt = approvedAt + duration. If a status disagrees, the earlier end wins:
    // a hand-edited expiresAt can shorten a grant, never lengthen it.
    match status.expires_at.as_ref().map(|t| t.0) {
        Some(t) if t < by_duration => Judged::Grant {
            approved_at,
            expires_at: t,
            ignored_expiry: None,
        },
        Some(t) if t > by_duration => Judged::Grant {
            approved_at,
            expires_at: by_duration,
            ignored_expiry: Some(t),
        },
        _ => Judged::Grant {
            approved_at,
            expires_at: by_duration,
            ignored_expiry: None,
        },
    }
}

/// What a person who wrote an AccessRequest by hand (a grants file) should know: why one
/// that says Approved grants nothing, or ends earlier than its `expiresAt` says.
pub fn status_problem(ar: &AccessRequest) -> Option<String> {
    let name = ar.metadata.name.as_deref().unwrap_or_default();
    match judge(ar) {
        Judged::NotAGrant => None,
        Judged::Broken(why) => Some(format!("AccessRequest {name} {why}")),
        Judged::Grant {
            expires_at,
            ignored_expiry: Some(said),
            ..
        } => Some(format!(
            "AccessRequest {name}: status.expiresAt {said} is later than approvedAt + duration, which is when it ends: {expires_at} (a status can shorten a grant, never lengthen it)"
        )),
        Judged::Grant { .. } => None,
    }
}

impl Grant {
    /// `None` unless the request is Approved (or break-glass), unrevoked and has a valid
    /// approval time and duration: only those can ever be live.
    pub fn from_resource(ar: &AccessRequest) -> Option<Self> {
        let name = ar.metadata.name.as_deref()?;
        let Judged::Grant {
            approved_at,
            expires_at,
            ..
        } = judge(ar)
        else {
            return None;
        };
        let spec = &ar.spec;
        Some(Self {
            name: name.into(),
            requester: spec.requester.clone(),
            group: spec.group.clone().filter(|g| !g.is_empty()),
            scope: spec.scope.clone(),
            approved_at,
            expires_at,
            break_glass: spec.break_glass,
            reason: spec.reason.clone(),
            ticket: spec.ticket.clone(),
            value: OnceLock::new(),
        })
    }

    pub fn live_at(&self, now: Timestamp) -> bool {
        self.approved_at <= now && now < self.expires_at
    }

    /// The grant as `input.jit.grants` shows it.
    pub fn value(&self) -> Value {
        self.value
            .get_or_init(|| {
                let nanos = |t: Timestamp| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX);
                let mut value = serde_json::json!({
                    "name": &*self.name,
                    "requester": self.requester,
                    "scope": self.scope,
                    "reason": self.reason,
                    "breakGlass": self.break_glass,
                    "approvedAt": self.approved_at.to_string(),
                    "expiresAt": self.expires_at.to_string(),
                    "approvedAtNs": nanos(self.approved_at),
                    "expiresAtNs": nanos(self.expires_at),
                });
                // Absent rather than null, so that `not grant.ticket` reads as policies
                // expect.
                for (key, field) in [("ticket", &self.ticket), ("group", &self.group)] {
                    if let (Some(v), Some(map)) = (field, value.as_object_mut()) {
                        map.insert(key.to_string(), serde_json::Value::from(v.clone()));
                    }
                }
                Value::from(value)
            })
            .clone()
    }
}

/// Grants by subject. A lookup costs a hash probe per subject of the requester (the user
/// and each group), whatever the number of grants held by others.
#[derive(Debug, Default)]
pub struct GrantIndex {
    by_user: HashMap<Arc<str>, Vec<Arc<Grant>>>,
    by_group: HashMap<Arc<str>, Vec<Arc<Grant>>>,
    len: usize,
}

impl GrantIndex {
    pub fn build(grants: impl IntoIterator<Item = Arc<Grant>>) -> Self {
        let mut index = Self::default();
        for grant in grants {
            index.len += 1;
            match &grant.group {
                Some(group) => index
                    .by_group
                    .entry(Arc::from(group.as_str()))
                    .or_default()
                    .push(grant),
                None => index
                    .by_user
                    .entry(Arc::from(grant.requester.as_str()))
                    .or_default()
                    .push(grant),
            }
        }
        index
    }

    pub fn from_resources<'a>(items: impl IntoIterator<Item = &'a AccessRequest>) -> Self {
        Self::build(
            items
                .into_iter()
                .filter_map(Grant::from_resource)
                .map(Arc::new),
        )
    }

    /// Approved grants held, live or not at this moment.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The grants of `user` and of its `groups` that are live at `now`.
    pub fn live_for(&self, user: &str, groups: &[String], now: Timestamp) -> Vec<Arc<Grant>> {
        let mut out = Vec::new();
        let users = self.by_user.get(user).into_iter();
        let groups = groups.iter().filter_map(|g| self.by_group.get(g.as_str()));
        for list in users.chain(groups) {
            out.extend(list.iter().filter(|g| g.live_at(now)).cloned());
        }
        out
    }

    /// Live at `now`, for the `jitguard_grants_live` gauge.
    pub fn count_live(&self, now: Timestamp) -> usize {
        self.by_user
            .values()
            .chain(self.by_group.values())
            .flatten()
            .filter(|g| g.live_at(now))
            .count()
    }
}

/// How fresh the cache is: sources report here, readiness and the decision read it.
#[derive(Debug)]
struct Health {
    synced: AtomicBool,
    /// Milliseconds since `epoch` when the source broke; 0 while healthy.
    broken_since_ms: AtomicU64,
    epoch: Instant,
    stale_after: Duration,
}

/// The read handle every worker holds: lookups and the source's health, nothing that
/// changes them. Only the [`GrantFeed`] its source holds writes.
#[derive(Clone, Debug)]
pub struct GrantStore {
    index: Arc<ArcSwap<GrantIndex>>,
    health: Arc<Health>,
}

/// The write side of a [`GrantStore`], held by its one source (the AccessRequest watch
/// or the grants file): whole-index swaps and health flags. Not `Clone`, so that nothing
/// else can write.
#[derive(Debug)]
pub struct GrantFeed {
    store: GrantStore,
}

impl GrantFeed {
    /// An empty store, not yet synced, and the feed that fills it.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            store: GrantStore {
                index: Arc::new(ArcSwap::from_pointee(GrantIndex::default())),
                health: Arc::new(Health {
                    synced: AtomicBool::new(false),
                    broken_since_ms: AtomicU64::new(0),
                    epoch: Instant::now(),
                    stale_after,
                }),
            },
        }
    }

    /// A read handle on what this feed writes.
    pub fn store(&self) -> GrantStore {
        self.store.clone()
    }

    /// Replaces the whole index and marks the source synced and healthy.
    pub fn replace(&self, index: GrantIndex) {
        self.store.index.store(Arc::new(index));
        self.store.health.synced.store(true, Ordering::Release);
        self.mark_healthy();
    }

    pub fn mark_healthy(&self) {
        self.store
            .health
            .broken_since_ms
            .store(0, Ordering::Release);
    }

    /// The source lost its feed (watch error). The cache keeps serving until
    /// `stale_after`, then require_grant fails closed.
    pub fn mark_broken(&self) {
        let health = &self.store.health;
        let now = health.epoch.elapsed().as_millis().max(1) as u64;
        let _ =
            health
                .broken_since_ms
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
    }
}

impl GrantStore {
    /// A store that never had and never needs a source (no `--grants`, no cluster).
    pub fn empty_synced() -> Self {
        Self::of(GrantIndex::default())
    }

    /// A store holding `index` for good (dry-run, verify, tests): synced, never stale.
    pub fn of(index: GrantIndex) -> Self {
        let feed = GrantFeed::new(Duration::MAX);
        feed.replace(index);
        feed.store()
    }

    pub fn index(&self) -> arc_swap::Guard<Arc<GrantIndex>> {
        self.index.load()
    }

    pub fn is_synced(&self) -> bool {
        self.health.synced.load(Ordering::Acquire)
    }

    /// `Some(how long it has been broken)` once that exceeds the staleness bound.
    pub fn stale_for(&self) -> Option<Duration> {
        let since = self.health.broken_since_ms.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let broken_for = self
            .health
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(since));
        (broken_for > self.health.stale_after).then_some(broken_for)
    }
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
    use crate::grant::resource::{AccessRequestSpec, AccessRequestStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub(crate) fn approved(
        name: &str,
        user: &str,
        group: Option<&str>,
        at: &str,
        duration: &str,
    ) -> AccessRequest {
        let mut ar = AccessRequest::new(
            name,
            AccessRequestSpec {
                requester: user.into(),
                group: group.map(Into::into),
                reason: "r".into(),
                duration: duration.into(),
                ..Default::default()
            },
        );
        ar.status = Some(AccessRequestStatus {
            phase: Phase::Approved,
            approved_at: Some(Time(at.parse().unwrap())),
            ..Default::default()
        });
        ar
    }

    #[test]
    fn a_grant_is_live_from_approval_until_exactly_its_end() {
        let g = Grant::from_resource(&approved("g", "alice", None, "2030-01-01T10:00:00Z", "30m"))
            .unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(!g.live_at(t("2030-01-01T09:59:59Z")));
        assert!(g.live_at(t("2030-01-01T10:00:00Z")));
        assert!(g.live_at(t("2030-01-01T10:29:59.999999999Z")));
        assert!(!g.live_at(t("2030-01-01T10:30:00Z")));
    }

    #[test]
    fn pending_revoked_and_malformed_requests_are_never_indexed() {
        let mut pending = approved("p", "a", None, "2030-01-01T10:00:00Z", "30m");
        pending.status.as_mut().unwrap().phase = Phase::Pending;
        let mut revoked = approved("r", "a", None, "2030-01-01T10:00:00Z", "30m");
        revoked.status.as_mut().unwrap().revoked_at =
            Some(Time("2030-01-01T10:05:00Z".parse().unwrap()));
        let bad = approved("b", "a", None, "2030-01-01T10:00:00Z", "forever");
        assert_eq!(
            GrantIndex::from_resources([&pending, &revoked, &bad]).len(),
            0
        );
    }

    #[test]
    fn a_shorter_expires_at_wins_a_longer_one_does_not() {
        let mut ar = approved("g", "a", None, "2030-01-01T10:00:00Z", "1h");
        ar.status.as_mut().unwrap().expires_at =
            Some(Time("2030-01-01T10:10:00Z".parse().unwrap()));
        assert_eq!(
            Grant::from_resource(&ar).unwrap().expires_at.to_string(),
            "2030-01-01T10:10:00Z"
        );
        ar.status.as_mut().unwrap().expires_at =
            Some(Time("2030-01-02T10:00:00Z".parse().unwrap()));
        assert_eq!(
            Grant::from_resource(&ar).unwrap().expires_at.to_string(),
            "2030-01-01T11:00:00Z"
        );
    }

    #[test]
    fn lookups_find_user_and_group_grants_only() {
        let index = GrantIndex::from_resources(&[
            approved("mine", "alice", None, "2030-01-01T10:00:00Z", "1h"),
            approved(
                "oncall",
                "bob",
                Some("oncall"),
                "2030-01-01T10:00:00Z",
                "1h",
            ),
            approved("bobs", "bob", None, "2030-01-01T10:00:00Z", "1h"),
        ]);
        let now: Timestamp = "2030-01-01T10:30:00Z".parse().unwrap();
        let names = |v: Vec<Arc<Grant>>| v.iter().map(|g| g.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(index.live_for("alice", &[], now)), vec!["mine"]);
        assert_eq!(
            names(index.live_for("alice", &["oncall".into()], now)),
            vec!["mine", "oncall"]
        );
        assert_eq!(index.count_live(now), 3);
    }

    #[test]
    fn staleness_starts_only_after_the_bound() {
        let feed = GrantFeed::new(Duration::from_millis(50));
        let store = feed.store();
        feed.replace(GrantIndex::default());
        assert!(store.is_synced() && store.stale_for().is_none());
        feed.mark_broken();
        assert!(store.stale_for().is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(store.stale_for().is_some());
        feed.mark_healthy();
        assert!(store.stale_for().is_none());
    }
}

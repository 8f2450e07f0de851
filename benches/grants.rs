//! The grant cache: lookup plus coverage for a user holding 3 grants, while the cache
//! holds 10, 10 000 or 1 000 000 grants of other people; and memory per cached grant.
//! `cargo bench --bench grants`.

#![allow(clippy::expect_used)] // a bench that cannot set up should stop loudly
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait: the counting allocator below

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jitguard::grant::{
    self, AccessRequest, AccessRequestSpec, AccessRequestStatus, Grant, GrantIndex, GrantStore,
    Phase, ScopeRule,
};
use jitguard::request::{Operation, RequestInfo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// mimalloc (the product's allocator), counting live heap bytes so that the memory per
/// cached grant is measured exactly rather than read off the noisy RSS.
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn request(name: &str, user: &str, namespace: &str, resource: &str) -> AccessRequest {
    let mut ar = AccessRequest::new(
        name,
        AccessRequestSpec {
            requester: user.to_string(),
            requester_groups: vec!["developers".into(), "system:authenticated".into()],
            scope: vec![ScopeRule {
                operations: vec!["CREATE".into(), "UPDATE".into(), "DELETE".into()],
                api_groups: vec!["".into()],
                resources: vec![resource.to_string()],
                namespaces: vec![namespace.to_string()],
                names: vec![],
            }],
            reason: "Roll out the hotfix for INC-1234 after the failed deploy".into(),
            ticket: Some("INC-1234".into()),
            duration: "2h".into(),
            ..Default::default()
        },
    );
    ar.status = Some(AccessRequestStatus {
        phase: Phase::Approved,
        approved_at: Some(Time("2030-01-01T10:00:00Z".parse().expect("time"))),
        ..Default::default()
    });
    ar
}

/// `others` grants spread over many users (3 each), plus alice's 3.
fn grants(others: usize) -> Vec<Arc<Grant>> {
    let mut out: Vec<Arc<Grant>> = (0..others)
        .map(|i| {
            request(
                &format!("g-{i}"),
                &format!("user-{}@example.com", i / 3),
                &format!("ns-{}", i % 50),
                "pods",
            )
        })
        .chain(
            ["configmaps", "secrets", "pods"]
                .iter()
                .enumerate()
                .map(|(i, r)| request(&format!("alice-{i}"), "alice@example.com", "prod", r)),
        )
        .map(|ar| Arc::new(Grant::from_resource(&ar).expect("approved")))
        .collect();
    out.shrink_to_fit();
    out
}

fn alice_creates_a_pod_in_prod() -> RequestInfo {
    RequestInfo {
        uid: "u".into(),
        operation: Operation::Create,
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        resource: "pods".into(),
        sub_resource: String::new(),
        namespace: "prod".into(),
        name: "web".into(),
        user: "alice@example.com".into(),
        groups: vec!["developers".into(), "system:authenticated".into()],
        dry_run: false,
    }
}

fn live_bytes() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn lookup(c: &mut Criterion) {
    let now: jiff::Timestamp = "2030-01-01T11:00:00Z".parse().expect("time");
    let req = alice_creates_a_pod_in_prod();
    let mut group = c.benchmark_group("grant_lookup");
    for size in [10usize, 10_000, 1_000_000] {
        let before = live_bytes();
        let store = GrantStore::of(GrantIndex::build(grants(size)));
        let held = live_bytes().saturating_sub(before);
        eprintln!(
            "grant cache with {} grants: {} KiB of heap, {} bytes per grant",
            size + 3,
            held / 1024,
            held / (size + 3)
        );
        group.bench_with_input(BenchmarkId::from_parameter(size), &store, |b, store| {
            b.iter(|| {
                let live = store.index().live_for(&req.user, &req.groups, now);
                let check = grant::check(&live, &req, store);
                assert!(matches!(check, jitguard::grant::GrantCheck::Covered(_)));
                check
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);

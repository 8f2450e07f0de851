//! One admission decision through the same code the server's workers run: parse the
//! AdmissionReview, look up the requester's grants, evaluate the shipped policy pack,
//! decide, encode the answer. `cargo bench --bench decision`.

#![allow(clippy::expect_used)] // a bench that cannot set up should stop loudly

use std::sync::Arc;
use std::time::Instant;

// The product's allocator, so that the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jitguard::audit::Audit;
use jitguard::decision::{Options, Webhook};
use jitguard::grant::GrantStore;
use jitguard::metrics::Metrics;
use jitguard::policy::{EvalOptions, PolicySet};
use jitguard::review::{Reviewer, Worker};

fn worker() -> Worker {
    let root = env!("CARGO_MANIFEST_DIR");
    let set = PolicySet::load(
        std::path::Path::new(&format!("{root}/policies")),
        EvalOptions::default(),
    )
    .expect("the shipped policies compile");
    let grants = GrantStore::empty_synced();
    grants.replace(
        jitguard::grant::watch::load_file(std::path::Path::new(&format!(
            "{root}/manifests/dev/grants.yaml"
        )))
        .expect("the dev grants load"),
    );
    Worker::new(Reviewer {
        policies: Arc::new(ArcSwap::from_pointee(set)),
        grants,
        namespaces: Default::default(),
        options: Options::default(),
        audit: Audit::disabled(),
        metrics: Metrics::new().expect("metrics"),
        controller: jitguard::review::DEFAULT_CONTROLLER.into(),
    })
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/admission/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn decision(c: &mut Criterion) {
    let mut worker = worker();
    let now = jiff::Timestamp::now();
    let mut group = c.benchmark_group("decision");
    for name in [
        "pod-create-dev",
        "pod-create-prod",
        "pod-exec-prod-bob",
        "pod-update-prod",
    ] {
        let body = fixture(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                worker
                    .review(body, Webhook::Validate, now, Instant::now())
                    .expect("decided")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision, phases);
criterion_main!(benches);

fn phases(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let set = Arc::new(
        PolicySet::load(
            std::path::Path::new(&format!("{root}/policies")),
            EvalOptions::default(),
        )
        .expect("the shipped policies compile"),
    );
    let mut engine = set.engine();
    let body = fixture("pod-create-prod");
    let mut group = c.benchmark_group("phase");
    group.bench_function("parse", |b| {
        b.iter(|| jitguard::admission::parse(&body).expect("parses"))
    });
    let mut input = jitguard::admission::parse(&body).expect("parses").review;
    if let Ok(obj) = input.as_object_mut() {
        let mut jit = std::collections::BTreeMap::new();
        jit.insert(
            regorus::Value::from("now_ns"),
            regorus::Value::from(1_767_268_800_000_000_000_i64),
        );
        jit.insert(
            regorus::Value::from("grants"),
            regorus::Value::from(Vec::<regorus::Value>::new()),
        );
        obj.insert(regorus::Value::from("jit"), regorus::Value::from(jit));
    }
    group.bench_function("evaluate", |b| b.iter(|| engine.evaluate(&input)));
    group.finish();
}

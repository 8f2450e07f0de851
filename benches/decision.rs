//! One admission decision through the same code the server's workers run: parse the
//! AdmissionReview, look up the requester's grants, evaluate the shipped policy pack,
//! decide (and on /mutate generate the patch), encode the answer; then evaluation alone
//! against the input's size, and the phases. `cargo bench --bench decision`.

#![allow(clippy::expect_used, clippy::indexing_slicing)] // a bench that cannot set up should stop loudly

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
use jitguard::request::Operation;
use jitguard::review::{Reviewer, Worker};

/// A grant for alice to create pods in prod, live around [`NOW`]: the mutating case
/// patches what it creates with the grant's label.
const GRANT: &str = "apiVersion: jitguard.dev/v1alpha1
kind: AccessRequest
metadata: {name: alice-pods-prod, uid: 5d6e}
spec:
  requester: alice@example.com
  scope: [{operations: [CREATE], apiGroups: [\"\"], resources: [pods], namespaces: [prod]}]
  reason: bench
  duration: 2h
status: {phase: Approved, approvedAt: \"2026-01-01T11:00:00Z\", expiresAt: \"2026-01-01T13:00:00Z\"}
";

/// The decisions' time: inside the grant above, on a Thursday at 13:00 in Berlin.
fn now() -> jiff::Timestamp {
    "2026-01-01T12:00:00Z".parse().expect("a time")
}

fn shipped_pack() -> PolicySet {
    PolicySet::load(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
        EvalOptions::default(),
    )
    .expect("the shipped policies compile")
}

fn worker() -> Worker {
    let root = env!("CARGO_MANIFEST_DIR");
    let set = shipped_pack();
    let mut grants = jitguard::grant::file::read(std::path::Path::new(&format!(
        "{root}/manifests/dev/grants.yaml"
    )))
    .expect("the dev grants load")
    .grants;
    grants.extend(
        jitguard::grant::file::parse(GRANT, std::path::Path::new("bench"))
            .expect("the bench grant parses")
            .grants,
    );
    let store = GrantStore::of(jitguard::grant::GrantIndex::from_resources(&grants));
    Worker::new(Reviewer {
        policies: Arc::new(ArcSwap::from_pointee(set)),
        grants: store,
        namespaces: Default::default(),
        options: Options::default(),
        audit: Audit::disabled(),
        metrics: Metrics::new().expect("metrics"),
        controller: jitguard::review::DEFAULT_CONTROLLER.into(),
        gatekeeper: jitguard::gatekeeper::feed::ClusterFeed::none(),
    })
}

/// An AdmissionReview for a suite manifest, as `dry-run` builds it.
fn manifest(file: &str, user: &str, groups: &[&str], operation: Operation) -> Vec<u8> {
    let requester = jitguard::manifest::Requester {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        operation,
    };
    let path = std::path::PathBuf::from(format!(
        "{}/policies/suites/manifests/{file}",
        env!("CARGO_MANIFEST_DIR")
    ));
    jitguard::manifest::load(&[path], &requester)
        .expect("the manifest loads")
        .remove(0)
        .body
}

/// A team lead approving alice's pending AccessRequest (an UPDATE of its status, as
/// `kubectl jit approve` sends it).
fn approval() -> Vec<u8> {
    let old = serde_json::json!({
        "apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": {"name": "alice-dev-exec", "uid": "9f1c", "generation": 1,
                     "creationTimestamp": "2026-01-01T11:55:00Z"},
        "spec": {"requester": "alice@example.com", "requesterGroups": ["developers"],
                 "scope": [{"operations": ["CONNECT"], "apiGroups": [""], "resources": ["pods/exec"], "namespaces": ["dev"]}],
                 "reason": "debugging", "duration": "30m"},
    });
    let mut new = old.clone();
    new["status"] = serde_json::json!({"approvals": [{
        "approver": "lead@example.com", "decision": "Approve", "at": "2026-01-01T12:00:00Z",
        "uid": "9f1c", "generation": 1,
    }]});
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "bench-approval",
            "kind": {"group": "jitguard.dev", "version": "v1alpha1", "kind": "AccessRequest"},
            "resource": {"group": "jitguard.dev", "version": "v1alpha1", "resource": "accessrequests"},
            "subResource": "status",
            "name": "alice-dev-exec",
            "operation": "UPDATE",
            "userInfo": {"username": "lead@example.com", "groups": ["team-leads", "system:authenticated"]},
            "object": new, "oldObject": old, "dryRun": false,
        },
    }))
    .expect("encodes")
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
    let now = now();
    let alice = (
        "alice@example.com",
        &["developers", "system:authenticated"][..],
    );
    let cases: Vec<(&str, Vec<u8>, Webhook)> = vec![
        (
            "pod-create-dev",
            fixture("pod-create-dev"),
            Webhook::Validate,
        ),
        (
            "pod-create-prod",
            fixture("pod-create-prod"),
            Webhook::Validate,
        ),
        (
            "pod-update-prod",
            fixture("pod-update-prod"),
            Webhook::Validate,
        ),
        (
            "ingress-update-prod",
            manifest("ingress-prod.yaml", alice.0, alice.1, Operation::Update),
            Webhook::Validate,
        ),
        (
            "pods-exec-connect-prod",
            fixture("pod-exec-prod-bob"),
            Webhook::Validate,
        ),
        ("accessrequest-approval", approval(), Webhook::Mutate),
        // Covered by a grant on /mutate: the provenance patch is generated.
        (
            "pod-create-prod-patched",
            fixture("pod-create-prod"),
            Webhook::Mutate,
        ),
    ];
    let mut group = c.benchmark_group("decision");
    for (name, body, webhook) in &cases {
        let reviewed = worker
            .review(body, *webhook, now, Instant::now())
            .expect("decided");
        if *name == "pod-create-prod-patched" {
            assert!(
                !reviewed.decision.patch.is_empty(),
                "the grant patch is generated"
            );
        }
        if *name == "accessrequest-approval" {
            assert!(reviewed.decision.allowed, "{}", reviewed.decision.message);
        }
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| {
                worker
                    .review(body, *webhook, now, Instant::now())
                    .expect("decided")
            })
        });
    }
    group.finish();
}

/// Evaluation alone, against the size of the object: a pod with 1 to 1000 containers.
fn input_size(c: &mut Criterion) {
    let mut engine = Arc::new(shipped_pack()).engine();
    let base: serde_json::Value =
        serde_json::from_slice(&fixture("pod-create-prod")).expect("a fixture");
    let mut group = c.benchmark_group("evaluate_by_containers");
    for n in [1usize, 10, 100, 1000] {
        let mut review = base.clone();
        review["request"]["object"]["spec"]["containers"] = (0..n)
            .map(|i| serde_json::json!({"name": format!("c{i}"), "image": "registry.example.com/app:1"}))
            .collect();
        review["jit"] = serde_json::json!({"now_ns": 1_767_268_800_000_000_000_i64, "grants": []});
        let text = review.to_string();
        let input = regorus::Value::from_json_str(&text).expect("parses");
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &input, |b, input| {
            b.iter(|| engine.evaluate(input))
        });
    }
    group.finish();
}

criterion_group!(benches, decision, input_size, phases, gatekeeper);
criterion_main!(benches);

fn phases(c: &mut Criterion) {
    let mut engine = Arc::new(shipped_pack()).engine();
    let body = fixture("pod-create-prod");
    let mut group = c.benchmark_group("phase");
    group.bench_function("parse", |b| {
        b.iter(|| jitguard::admission::parse(&body).expect("parses"))
    });
    let input = evaluation_input(&body);
    group.bench_function("evaluate", |b| b.iter(|| engine.evaluate(&input)));
    group.finish();
}

/// The policy input for a fixture: the AdmissionReview with `input.jit` (the time, no
/// grants), as a worker builds it.
fn evaluation_input(body: &[u8]) -> regorus::Value {
    let mut input = jitguard::admission::parse(body).expect("parses").review;
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
    input
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The shipped pack with gatekeeper-library's general templates beside it, one sample
/// constraint each (../shared/conformance, unchanged), against the shipped pack alone, on
/// a Pod CREATE in prod. The bar: at most twice the cost.
fn gatekeeper(c: &mut Criterion) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let library = root.join("../shared/conformance/gatekeeper-library/library/general");
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = dir.path().join("policies");
    copy_dir(&root.join("policies"), &policies);
    let mut templates = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&library)
        .expect("the conformance library")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("template.yaml").exists())
        .collect();
    entries.sort();
    for template in entries {
        let name = template
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut constraints: Vec<_> = std::fs::read_dir(template.join("samples"))
            .expect("samples")
            .flatten()
            .map(|e| e.path().join("constraint.yaml"))
            .filter(|p| p.exists())
            .collect();
        constraints.sort();
        let target = policies.join("gatekeeper").join(&name);
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::copy(template.join("template.yaml"), target.join("template.yaml")).expect("copy");
        std::fs::copy(&constraints[0], target.join("constraint.yaml")).expect("copy");
        templates += 1;
    }
    let with = PolicySet::load(&policies, EvalOptions::default()).expect("the templates load");
    eprintln!(
        "gatekeeper bench: {templates} templates, {} constraints beside {} packages",
        with.constraint_names().len(),
        with.packages().len()
    );
    let body = fixture("pod-create-prod");
    let input = evaluation_input(&body);
    let mut alone = Arc::new(shipped_pack()).engine();
    let mut beside = Arc::new(with).engine();
    let selected = beside.evaluate(&input).packages.len() - alone.evaluate(&input).packages.len();
    eprintln!("gatekeeper bench: {selected} constraints select the Pod");
    // The constraints that select the Pod: the packages only the second evaluation has.
    let pack: Vec<Arc<str>> = alone
        .evaluate(&input)
        .packages
        .into_iter()
        .map(|p| p.package)
        .collect();
    let constraints: Vec<String> = beside
        .evaluate(&input)
        .packages
        .into_iter()
        .filter(|p| !pack.contains(&p.package))
        .map(|p| p.package.to_string())
        .collect();
    under_opa(&policies, &constraints, &input);
    let mut group = c.benchmark_group("gatekeeper");
    group.bench_function("shipped pack alone", |b| b.iter(|| alone.evaluate(&input)));
    group.bench_function("shipped pack and the library's templates", |b| {
        b.iter(|| beside.evaluate(&input))
    });
    group.finish();
}

/// The same comparison under OPA's own evaluator (v1.20, Gatekeeper's engine, built by
/// tests/opa/build.sh): `opa bench` on every contract rule of the shipped pack, then on
/// the `violation` rule of each template whose constraint selected the Pod, with the
/// input Gatekeeper gives it. What the templates cost against the pack is a property of
/// their Rego as much as of the engine; this says how much of each. Printed, not timed by
/// criterion; skipped with a note when OPA cannot be built.
fn under_opa(policies: &std::path::Path, constraints: &[String], input: &regorus::Value) {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let build = std::process::Command::new("bash")
        .arg(root.join("tests/opa/build.sh"))
        .output()
        .expect("bash runs");
    if !build.status.success() {
        eprintln!(
            "gatekeeper bench: OPA not measured, tests/opa/build.sh failed: {}",
            String::from_utf8_lossy(&build.stderr)
        );
        return;
    }
    let opa = String::from_utf8_lossy(&build.stdout).trim().to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let bench = |dir: &std::path::Path, input: &serde_json::Value, query: &str, v0: bool| {
        let file = dir.join("input.json");
        std::fs::write(&file, input.to_string()).expect("write the input");
        let mut command = std::process::Command::new(&opa);
        command.args(["bench", "--format", "gobench", "--count", "3", "-d"]);
        command
            .arg(dir.join("rego"))
            .arg("-i")
            .arg(&file)
            .arg(query);
        if v0 {
            command.arg("--v0-compatible");
        }
        let out = command.output().expect("opa runs");
        let text = String::from_utf8_lossy(&out.stdout);
        // The fastest of the runs, in µs: `BenchmarkOPA... N  123456 ns/op ...`.
        let best = text
            .lines()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "ns/op")?;
                words.get(at.checked_sub(1)?)?.parse::<f64>().ok()
            })
            .fold(f64::INFINITY, f64::min);
        assert!(
            best.is_finite(),
            "opa bench {query}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        best / 1000.0
    };

    // The pack: its Rego and data without the tests, and one query over every contract
    // rule of every package (OPA has no skipping; its rule index makes the packages a
    // request does not concern cheap instead).
    let pack_dir = work.path().join("pack");
    copy_dir(
        &root.join("policies/jitguard"),
        &pack_dir.join("rego/jitguard"),
    );
    remove_tests(&pack_dir.join("rego"));
    let set = shipped_pack();
    let mut rules = Vec::new();
    for pkg in set.packages() {
        for rule in ["deny", "require_grant", "warn", "enforcement"] {
            if pkg.declares(rule) {
                rules.push(format!("data.{}.{rule}", pkg.name));
            }
        }
    }
    std::fs::write(
        pack_dir.join("rego/bench.rego"),
        format!(
            "package jitguard_bench\n\nresult := [\n\t{},\n]\n",
            rules.join(",\n\t")
        ),
    )
    .expect("write the query");
    let json = serde_json::to_value(input).expect("the input as JSON");
    let pack_us = bench(&pack_dir, &json, "data.jitguard_bench.result", false);

    // Each selected constraint's template, with its parameters (defaults filled in).
    let read = |path: &std::path::Path| -> serde_json::Value {
        yaml_serde::from_str(&std::fs::read_to_string(path).expect("read")).expect("yaml")
    };
    let mut total = 0.0;
    let mut each = Vec::new();
    for dir in std::fs::read_dir(policies.join("gatekeeper"))
        .expect("the templates")
        .flatten()
        .map(|e| e.path())
    {
        let doc = read(&dir.join("constraint.yaml"));
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        if !constraints.iter().any(|c| c == name) {
            continue;
        }
        let template_doc = read(&dir.join("template.yaml"));
        let template = jitguard::gatekeeper::Template::compile(&template_doc).expect("compiles");
        let constraint = template
            .admit(jitguard::gatekeeper::Constraint::parse(&doc).expect("parses"))
            .expect("admitted");
        let here = work.path().join(name);
        std::fs::create_dir_all(here.join("rego")).expect("mkdir");
        for (i, rego) in template.sources().iter().enumerate() {
            std::fs::write(here.join(format!("rego/{i}.rego")), rego).expect("write");
        }
        let review =
            serde_json::json!({"review": json["request"], "parameters": constraint.parameters});
        let us = bench(&here, &review, template.query(), true);
        total += us;
        each.push(format!("{name} {us:.0}"));
    }
    each.sort();
    eprintln!(
        "gatekeeper bench, under OPA (opa bench, best of 3): the pack {pack_us:.0} µs; the {} constraints that select the Pod {total:.0} µs ({}); pack and constraints = {:.1}x the pack alone",
        each.len(),
        each.join(", "),
        (pack_us + total) / pack_us
    );
}

/// Removes the `*_test.rego` files under `dir`: OPA would evaluate their rules too.
fn remove_tests(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_tests(&path);
        } else if path.to_string_lossy().ends_with("_test.rego") {
            std::fs::remove_file(&path).expect("remove");
        }
    }
}

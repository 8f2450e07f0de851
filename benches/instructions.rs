//! Policy evaluation, counted in instructions rather than time: `bash benches/instructions.sh`.
//!
//! Wall time on a shared machine drifts by tens of percent between runs; the number of
//! instructions an evaluation executes does not. This binary evaluates the shipped pack
//! on each fixture `JITGUARD_ITER` times (default 10); `instructions.sh` runs it under
//! valgrind's callgrind at two iteration counts and divides the difference, so start-up
//! and the first, slower evaluation cancel out.

#![allow(clippy::expect_used)] // a bench that cannot set up should stop loudly

use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use jitguard::policy::{EvalOptions, PolicySet};
use regorus::Value;

fn main() {
    let iterations: usize = std::env::var("JITGUARD_ITER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let policies = std::env::var_os("JITGUARD_POLICIES").unwrap_or_else(|| "policies".into());
    // JITGUARD_SKIP=0 evaluates every package for every request, to measure what leaving
    // out the packages a request cannot concern saves.
    let options = EvalOptions {
        skip_unconcerned: std::env::var("JITGUARD_SKIP").map_or(true, |v| v != "0"),
        ..EvalOptions::default()
    };
    let set = Arc::new(
        PolicySet::load(std::path::Path::new(&policies), options).expect("the policy folder loads"),
    );
    let mut engine = set.engine();
    // `cargo bench` passes `--bench`; everything else is a fixture.
    for fixture in std::env::args().skip(1).filter(|a| !a.starts_with("--")) {
        let text = std::fs::read_to_string(&fixture).expect("a readable fixture");
        let mut input = Value::from_json_str(&text).expect("an AdmissionReview");
        // A fixed moment (a Wednesday, 12:06 in Berlin) and the request's namespace known
        // without labels, as jitguard's own input would carry them.
        let namespace = input["request"]["namespace"]
            .as_string()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let jit = serde_json::json!({
            "now_ns": 1_795_000_000_000_000_000_i64,
            "grants": [],
            "namespaces": {&namespace: {"name": &namespace, "labels": {"kubernetes.io/metadata.name": &namespace}}},
        });
        input.as_object_mut().expect("an object").insert(
            Value::from("jit"),
            Value::from_json_str(&jit.to_string()).expect("json"),
        );
        let mut findings = 0;
        for _ in 0..iterations {
            findings = engine
                .evaluate(&input)
                .packages
                .iter()
                .map(|p| p.findings.len())
                .sum();
        }
        println!("{fixture} findings={findings}");
    }
}

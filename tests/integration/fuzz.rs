//! Hostile input, generated: property tests (proptest, on stable) over the AdmissionReview
//! decoder, the whole decision path, the grants file parser and the suite parser. Every
//! input is decided or refused with a reason; none panics. Bounded (`JITGUARD_FUZZ_CASES`,
//! default 256 per property) so that CI runs them on every change.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use jitguard::decision::Webhook;
use jitguard::review::{Reviewer, Worker};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

use crate::common::{review, root, run};

fn cases(default: u32) -> Config {
    let cases = std::env::var("JITGUARD_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

thread_local! {
    /// The shipped pack and the dev grants, compiled once per test thread.
    static WORKER: RefCell<Worker> = RefCell::new({
        let set = jitguard::policy::PolicySet::load(
            &root().join("policies"),
            jitguard::policy::EvalOptions::default(),
        )
        .unwrap();
        Worker::new(
            Reviewer::offline(
                Arc::new(ArcSwap::from_pointee(set)),
                Some(&root().join("manifests/dev/grants.yaml")),
            )
            .unwrap(),
        )
    });
}

/// Any JSON value, nested a few levels, with unicode strings.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("CREATE"),
            Just("prod"),
            Just("system:masters"),
            Just("аlice@example.com"), // a Cyrillic а
            Just("jitguard.dev/grant"),
            Just("*"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path into a value (objects and arrays), as JSON Pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn fixture_pointers(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    pointers(&review(name), String::new(), &mut out);
    out.retain(|p| !p.is_empty());
    out
}

/// Decides `body` on both webhooks: an answer that is a well-formed AdmissionReview for
/// this uid, or an error with a reason. A panic fails the property.
fn decide_or_refuse(body: &[u8]) -> Result<(), TestCaseError> {
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let outcome = WORKER.with(|w| {
            w.borrow_mut()
                .review(body, webhook, jiff::Timestamp::now(), Instant::now())
        });
        match outcome {
            Ok(reviewed) => {
                let answer: Value = serde_json::from_slice(&reviewed.body)
                    .map_err(|e| TestCaseError::fail(format!("answer is not JSON: {e}")))?;
                prop_assert_eq!(&answer["kind"], "AdmissionReview");
                prop_assert!(answer["response"]["allowed"].is_boolean());
                if answer["response"]["allowed"] == false {
                    prop_assert!(answer["response"]["status"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()));
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_bytes_are_decoded_or_refused_with_a_reason(
        body in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        if let Err(e) = jitguard::admission::parse(&body) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// A valid review with one field (any field, at any depth) replaced by any value:
    /// wrong types, unicode, nesting.
    #[test]
    fn any_value_in_any_field_is_decided_or_refused(
        fixture in proptest::sample::select(vec![
            "pod-create-prod", "pod-exec-prod", "pod-update-prod", "namespace-delete-prod",
        ]),
        pick in any::<proptest::sample::Index>(),
        value in json(),
    ) {
        let mut body = review(fixture);
        let paths = fixture_pointers(fixture);
        let path = pick.get(&paths);
        if let Some(slot) = body.pointer_mut(path) {
            *slot = value;
        }
        decide_or_refuse(&serde_json::to_vec(&body).unwrap())?;
    }

    /// A valid review cut anywhere, or with bytes flipped.
    #[test]
    fn truncated_and_corrupted_reviews_are_refused_or_decided(
        cut in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut body = serde_json::to_vec(&review("pod-create-prod")).unwrap();
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        decide_or_refuse(&body)?;
    }

    /// The grants file parser on mutated grants files: a set of grants, or an error that
    /// names the file and line.
    #[test]
    fn grants_files_parse_or_fail_naming_file_and_line(
        lines in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        junk in proptest::collection::vec(".{0,30}", 0..4),
        cut in any::<proptest::sample::Index>(),
    ) {
        let text = std::fs::read_to_string(root().join("manifests/dev/grants.yaml")).unwrap();
        let mut all: Vec<String> = text.lines().map(str::to_string).collect();
        for (at, j) in lines.iter().zip(&junk) {
            let i = at.index(all.len());
            all[i] = j.clone();
        }
        let mut text = all.join("\n");
        let mut end = cut.index(text.len() + 1);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        let path = std::path::Path::new("fuzz-grants.yaml");
        if let Err(e) = jitguard::grant::file::parse(&text, path) {
            prop_assert!(e.to_string().starts_with("fuzz-grants.yaml:"), "{}", e);
        }
    }
}

proptest! {
    // Each case runs the binary: fewer of them.
    #![proptest_config(cases(24))]

    /// `jitguard verify` on mutated suites: it runs them (exit 0/1) or says what is wrong
    /// (exit 2 with a message); never a panic (exit 101).
    #[test]
    fn suites_run_or_fail_with_a_reason(
        lines in proptest::collection::vec(any::<proptest::sample::Index>(), 1..3),
        junk in proptest::collection::vec(prop_oneof![
            Just("  - name: [".to_string()),
            Just("    expect: {allowed: maybe}".to_string()),
            Just("    file: /dev/null".to_string()),
            Just("    at: yesterday".to_string()),
            Just("defaults: 7".to_string()),
            ".{0,20}",
        ], 1..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        crate::common::copy_dir(&root().join("policies/suites"), dir.path());
        let file = dir.path().join("namespaces.yaml");
        let text = std::fs::read_to_string(&file).unwrap().replace("policies: ..", &format!("policies: {}", root().join("policies").display()));
        let mut all: Vec<String> = text.lines().map(str::to_string).collect();
        for (at, j) in lines.iter().zip(&junk) {
            let i = at.index(all.len());
            all[i] = j.clone();
        }
        std::fs::write(&file, all.join("\n")).unwrap();
        let (code, out, err) = run(&["verify", file.to_str().unwrap()]);
        prop_assert!(matches!(code, 0..=2), "exit {}: {}{}", code, out, err);
        if code == 2 {
            prop_assert!(err.contains("jitguard verify:"), "{}", err);
        }
    }
}

//! Gatekeeper conformance: gatekeeper-library's general policies (templates, sample
//! constraints and their gator suites, unchanged, in ../shared/conformance), run by
//! jitguard's Gatekeeper support. Every case runs; the count that passes may only grow.

use crate::common::root;

#[test]
fn gatekeeper_library_suites_pass() {
    let library = root().join("../shared/conformance/gatekeeper-library/library/general");
    assert!(
        library.is_dir(),
        "the conformance data is missing at {}",
        library.display()
    );
    let mut suites: Vec<_> = std::fs::read_dir(&library)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path().join("suite.yaml")))
        .filter(|p| p.exists())
        .collect();
    suites.sort();
    let (mut passed, mut failed) = (0, Vec::new());
    for suite in &suites {
        for (case, result) in jitguard::gatekeeper::suite::run(suite).unwrap() {
            match result {
                Ok(()) => passed += 1,
                Err(e) => failed.push(format!("{case}: {e}")),
            }
        }
    }
    let total = passed + failed.len();
    eprintln!("gatekeeper-library: {passed} of {total} cases pass");
    for f in &failed {
        eprintln!("  FAIL {f}");
    }
    assert_eq!(suites.len(), 30);
    assert!(total >= 130, "{total} cases");
    // Raised as support grows; the bar is 99%. The five that fail today are regorus
    // differences from OPA on Gatekeeper's Rego v0: a line starting with `(` read as a call
    // of the line before (horizontalpodautoscaler, 3 cases), sprintf with fewer arguments
    // than verbs (Go prints %!v(MISSING); 1 case), and a rule with two bodies `{ } { }`
    // (noupdateserviceaccount, 1 case).
    assert!(
        passed >= PASSING,
        "{passed} of {total} pass, fewer than {PASSING}:\n{}",
        failed.join("\n")
    );
}

const PASSING: usize = 125;

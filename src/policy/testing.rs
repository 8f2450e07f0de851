//! `jitguard test`: runs every `test_*` rule of a policy folder, as `opa test` does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use regorus::unstable::{Parser, Rule, RuleHead};
use regorus::Value;

use super::source::{LoadError, Sources};
use super::{new_engine, prepare, reference, EvalOptions};
use crate::text::one_line;

/// A test gets far more time than a request does, but not forever.
const TEST_BUDGET: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    pub package: String,
    pub name: String,
    pub file: PathBuf,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The rule was undefined or false.
    Fail,
    /// The rule raised an error.
    Error(String),
}

#[derive(Clone, Debug)]
pub struct TestResult {
    pub case: TestCase,
    pub outcome: Outcome,
    pub duration: Duration,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Compiles policies, data and tests together, as `jitguard check` and `test` do.
pub fn compile(sources: &Sources) -> Result<regorus::Engine, LoadError> {
    let mut engine = new_engine(EvalOptions {
        budget: TEST_BUDGET,
        ..EvalOptions::default()
    });
    for file in sources.modules.iter().chain(&sources.tests) {
        engine
            .add_policy(file.display(), file.contents.clone())
            .map_err(|e| LoadError::compile(&e))?;
    }
    sources.add_data(&mut engine)?;
    prepare(&mut engine)?;
    Ok(engine)
}

/// Compiles policies, data and tests together and runs each `test_*` rule once, in file
/// order. A compile error is returned as such; a failing test is a result, not an error.
pub fn run(sources: &Sources, filter: Option<&str>) -> Result<Vec<TestResult>, LoadError> {
    let mut engine = compile(sources)?;

    let test_files: Vec<String> = sources.tests.iter().map(|t| t.display()).collect();
    let mut cases = Vec::new();
    for module in engine.get_modules().iter() {
        let file = module.package.span.source.get_path().to_string();
        if !test_files.contains(&file) {
            continue;
        }
        let package: Vec<String> = Parser::get_path_ref_components(&module.package.refr)
            .map_err(|e| LoadError::compile(&e))?
            .iter()
            .map(|s| s.text().trim_matches('"').to_string())
            .collect();
        for rule in &module.policy {
            let Rule::Spec {
                head: RuleHead::Compr { refr, .. },
                span,
                ..
            } = rule.as_ref()
            else {
                continue;
            };
            let Ok(path) = Parser::get_path_ref_components(refr) else {
                continue;
            };
            let [name] = path.as_slice() else { continue };
            let name = name.text();
            if !name.starts_with("test_") || filter.is_some_and(|f| !name.contains(f)) {
                continue;
            }
            let case = TestCase {
                package: package.join("."),
                name: name.to_string(),
                file: PathBuf::from(&file),
                line: span.line,
            };
            // A rule defined by several bodies is one rule: run it once.
            if !cases.contains(&case)
                && !cases
                    .iter()
                    .any(|c: &TestCase| c.package == case.package && c.name == case.name)
            {
                cases.push(case);
            }
        }
    }

    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let components: Vec<String> = case
            .package
            .split('.')
            .map(str::to_string)
            .chain(std::iter::once(case.name.clone()))
            .collect();
        let started = Instant::now();
        let outcome = match engine.eval_rule(reference(&components)) {
            Ok(Value::Undefined | Value::Bool(false)) => Outcome::Fail,
            Ok(_) => Outcome::Pass,
            Err(e) => Outcome::Error(one_line(&e.to_string())),
        };
        results.push(TestResult {
            case,
            outcome,
            duration: started.elapsed(),
        });
    }
    Ok(results)
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

    #[test]
    fn runs_tests_with_with_and_reports_failures_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("p.rego"),
            "package p\ndeny contains \"no\" if input.x == data.p.limit\n",
        )
        .unwrap();
        std::fs::write(p.join("data.json"), r#"{"p": {"limit": 3}}"#).unwrap();
        std::fs::write(
            p.join("p_test.rego"),
            "package p_test\nimport data.p\n\
             test_denies if { \"no\" in p.deny with input as {\"x\": 3} }\n\
             test_allows if { count(p.deny) == 0 with input as {\"x\": 1} }\n\
             test_wrong if { \"no\" in p.deny with input as {\"x\": 1} }\n\
             test_boom if { 1 / 0 == 1 }\n\
             helper := 1\n",
        )
        .unwrap();
        let results = run(&Sources::read(p).unwrap(), None).unwrap();
        let by_name = |n: &str| results.iter().find(|r| r.case.name == n).unwrap();
        assert_eq!(results.len(), 4);
        assert!(by_name("test_denies").passed());
        assert!(by_name("test_allows").passed());
        assert_eq!(by_name("test_wrong").outcome, Outcome::Fail);
        assert!(!by_name("test_boom").passed());
        assert_eq!(by_name("test_denies").case.line, 3);
    }
}

//! `jitguard test` and `jitguard check`: the policy author's loop.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{exit, w};
use crate::policy::testing::{self, Outcome};
use crate::policy::{EvalOptions, PolicySet, Sources};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Policy folder (policies, data and *_test.rego).
    #[arg(default_value_os_t = super::default_policies())]
    pub dir: PathBuf,
    /// Only run tests whose name contains this.
    #[arg(long)]
    pub run: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Policy folder.
    #[arg(default_value_os_t = super::default_policies())]
    pub dir: PathBuf,
}

pub fn run_tests(args: &TestArgs) -> ExitCode {
    let results = Sources::read(&args.dir).and_then(|s| testing::run(&s, args.run.as_deref()));
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jitguard test: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // Nothing run is not a pass: a wrong folder or a filter that matches nothing would
    // otherwise turn a CI step green.
    if results.is_empty() {
        let filter = args
            .run
            .as_deref()
            .map(|r| format!(" matching --run {r:?}"))
            .unwrap_or_default();
        eprintln!(
            "jitguard test: no tests{filter} under {}: tests are test_* rules in *_test.rego files; pass the folder that holds them",
            args.dir.display()
        );
        return ExitCode::from(exit::ERROR);
    }
    let mut failed = 0;
    let mut out = String::new();
    for r in &results {
        let case = &r.case;
        let micros = r.duration.as_micros();
        let at = format!("{}:{}", case.file.display(), case.line);
        match &r.outcome {
            Outcome::Pass => w!(
                out,
                "PASS  data.{}.{}  {at} ({micros}µs)",
                case.package,
                case.name
            ),
            Outcome::Fail => {
                failed += 1;
                w!(
                    out,
                    "FAIL  data.{}.{}  {at} ({micros}µs)",
                    case.package,
                    case.name
                );
            }
            Outcome::Error(e) => {
                failed += 1;
                w!(
                    out,
                    "FAIL  data.{}.{}  {at}: error: {e}",
                    case.package,
                    case.name
                );
            }
        }
    }
    w!(out, "{} passed, {failed} failed", results.len() - failed);
    super::emit(&out);
    if failed > 0 {
        ExitCode::from(exit::FAILED)
    } else {
        ExitCode::from(exit::OK)
    }
}

pub fn run_check(args: &CheckArgs) -> ExitCode {
    let checked = Sources::read(&args.dir).and_then(|sources| {
        let set = PolicySet::compile(&sources, EvalOptions::default())?;
        testing::compile(&sources)?;
        Ok((sources, set))
    });
    match checked {
        Ok((sources, set)) => {
            let mut out = String::new();
            w!(
                out,
                "ok: {} policy files, {} test files, {} data files; packages: {}",
                sources.modules.len(),
                sources.tests.len(),
                sources.data.len(),
                set.package_names().join(", ")
            );
            super::emit(&out);
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("jitguard check: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

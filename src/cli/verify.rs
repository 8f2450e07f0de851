//! `jitguard verify SUITE...`: example-based policy suites for CI, in the spirit of
//! `gator verify` and `kyverno test`. Each case is a manifest or AdmissionReview file
//! decided by the server's own code at a given time, as a given user, with a given grants
//! file, and compared with what the suite expects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use clap::Args;
use serde::Deserialize;

use super::{exit, report, w};
use crate::decision::Webhook;
use crate::gatekeeper;
use crate::manifest::{self, Requester};
use crate::policy::{EvalOptions, PolicySet};
use crate::request::Operation;
use crate::review::{Reviewed, Reviewer, Worker};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Suite files, or folders of them (every *.yaml directly inside).
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    /// Policy folder for suites that do not name one.
    #[arg(long, default_value_os_t = super::default_policies())]
    pub policies: PathBuf,
    /// `text` for people; for CI `junit` (test reports), `github` (annotations),
    /// `sarif` (code scanning) or `tap`.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Junit,
    Github,
    Sarif,
    Tap,
}

/// A suite file. Paths in it are relative to the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    /// What the suite covers.
    #[serde(default)]
    name: String,
    /// Policy folder [default: --policies].
    policies: Option<PathBuf>,
    /// Defaults for every case.
    #[serde(default)]
    defaults: Setting,
    cases: Vec<Case>,
}

/// Who asks, when, with which grants: set on the suite, overridden per case.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Setting {
    user: Option<String>,
    groups: Option<Vec<String>>,
    operation: Option<String>,
    /// RFC 3339.
    at: Option<String>,
    /// A YAML file of AccessRequests.
    grants: Option<PathBuf>,
    /// `validate` (default) or `mutate`.
    webhook: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// A manifest (YAML/JSON, every object in it) or an AdmissionReview file.
    file: PathBuf,
    user: Option<String>,
    groups: Option<Vec<String>>,
    operation: Option<String>,
    at: Option<String>,
    grants: Option<PathBuf>,
    webhook: Option<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allowed: bool,
    /// Each must be part of some finding's message (or of the denial).
    #[serde(default)]
    messages: Vec<String>,
    /// Some finding must come from this package.
    package: Option<String>,
    /// Each must be part of some warning.
    #[serde(default)]
    warnings: Vec<String>,
    /// The grant that allowed it.
    grant: Option<String>,
}

pub fn run(args: &VerifyArgs) -> ExitCode {
    let files = match suite_files(&args.suites) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("jitguard verify: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut out = String::new();
    let (mut passed, mut failed) = (0, 0);
    let mut cases = Vec::new();
    let mut runner = Runner::default();
    for file in &files {
        // A gator suite (Gatekeeper's format) runs its templates and constraints as they are.
        let gator = std::fs::read_to_string(file).is_ok_and(|t| gatekeeper::suite::is_suite(&t));
        let outcome = if gator {
            gatekeeper::suite::run(file).map(|results| (String::new(), results))
        } else {
            runner.run_suite(file, &args.policies)
        };
        match outcome {
            Ok((name, results)) => {
                if !name.is_empty() {
                    w!(out, "# {name} ({})", file.display());
                }
                for (case, outcome) in results {
                    cases.push(report::Case {
                        file: file.display().to_string(),
                        line: None,
                        name: if name.is_empty() {
                            case.clone()
                        } else {
                            format!("{name}: {case}")
                        },
                        failed: outcome.is_err(),
                        findings: outcome
                            .as_ref()
                            .err()
                            .map(|why| report::Finding {
                                package: "verify".into(),
                                rule: "expectation".into(),
                                message: why.clone(),
                                level: report::Level::Error,
                            })
                            .into_iter()
                            .collect(),
                    });
                    match outcome {
                        Ok(()) => {
                            passed += 1;
                            w!(out, "PASS  {}: {case}", file.display());
                        }
                        Err(why) => {
                            failed += 1;
                            w!(out, "FAIL  {}: {case}\n      {why}", file.display());
                        }
                    }
                }
            }
            Err(e) => {
                if args.output == Output::Text {
                    super::emit(&out);
                }
                eprintln!("jitguard verify: {e}");
                return ExitCode::from(exit::ERROR);
            }
        }
    }
    w!(out, "{passed} passed, {failed} failed");
    super::emit(&match args.output {
        Output::Text => out,
        Output::Junit => report::junit("jitguard verify", &cases),
        Output::Github => report::github("jitguard verify", &cases),
        Output::Sarif => report::sarif("verify", &cases),
        Output::Tap => report::tap(&cases),
    });
    ExitCode::from(if failed > 0 { exit::FAILED } else { exit::OK })
}

fn suite_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such suite file or folder", path.display()));
        }
    }
    Ok(files)
}

/// Policies are compiled once per folder, and one worker (its engine, its grants) kept
/// per folder and grants file, however many cases use them.
#[derive(Default)]
struct Runner {
    policies: HashMap<PathBuf, Arc<ArcSwap<PolicySet>>>,
    workers: HashMap<(PathBuf, Option<PathBuf>), Worker>,
}

type CaseResult = (String, Result<(), String>);

impl Runner {
    fn run_suite(
        &mut self,
        file: &Path,
        default_policies: &Path,
    ) -> Result<(String, Vec<CaseResult>), String> {
        let suite: Suite = crate::text::read_yaml(file)?;
        let base = file.parent().unwrap_or(Path::new("."));
        let policies = match &suite.policies {
            Some(p) => base.join(p),
            None => default_policies.to_path_buf(),
        };
        // Compiled up front: a policy error is the suite's, not its first case's.
        self.policy_set(&policies)?;
        let mut results = Vec::new();
        for case in &suite.cases {
            let setting = merge(&suite.defaults, case);
            let outcome = self
                .decide(base, case, &setting, &policies)
                .map_err(|e| format!("{}: case {:?}: {e}", file.display(), case.name))?;
            results.push((case.name.clone(), outcome));
        }
        Ok((suite.name, results))
    }

    fn policy_set(&mut self, path: &Path) -> Result<Arc<ArcSwap<PolicySet>>, String> {
        if let Some(p) = self.policies.get(path) {
            return Ok(p.clone());
        }
        let set = PolicySet::load(path, EvalOptions::default()).map_err(|e| e.to_string())?;
        let set = Arc::new(ArcSwap::from_pointee(set));
        self.policies.insert(path.to_path_buf(), set.clone());
        Ok(set)
    }

    fn worker(&mut self, policies: &Path, grants: Option<PathBuf>) -> Result<&mut Worker, String> {
        let key = (policies.to_path_buf(), grants);
        if !self.workers.contains_key(&key) {
            let set = self.policy_set(policies)?;
            let worker =
                Worker::new(Reviewer::offline(set, key.1.as_deref()).map_err(|e| e.to_string())?);
            self.workers.insert(key.clone(), worker);
        }
        self.workers
            .get_mut(&key)
            .ok_or_else(|| "the worker just made is gone".to_string())
    }

    /// Errors: the case cannot be run (exit 2). `Ok(Err(..))`: it ran and failed.
    fn decide(
        &mut self,
        base: &Path,
        case: &Case,
        setting: &Setting,
        policies: &Path,
    ) -> Result<Result<(), String>, String> {
        let operation = match setting.operation.as_deref() {
            None => Operation::Create,
            Some(o) => Operation::parse(&o.to_uppercase()).ok_or_else(|| {
                format!("operation {o:?} is not CREATE, UPDATE, DELETE or CONNECT")
            })?,
        };
        let at = match setting.at.as_deref() {
            None => jiff::Timestamp::now(),
            Some(t) => t
                .parse()
                .map_err(|e| format!("at {t:?} is not an RFC 3339 time: {e}"))?,
        };
        let webhook = match setting.webhook.as_deref() {
            None | Some("validate") => Webhook::Validate,
            Some("mutate") => Webhook::Mutate,
            Some(other) => return Err(format!("webhook {other:?} is not validate or mutate")),
        };
        let requester = Requester {
            user: setting.user.clone().unwrap_or_else(|| "verify-user".into()),
            groups: setting
                .groups
                .clone()
                .unwrap_or_else(|| vec!["system:authenticated".into()]),
            operation,
        };
        let items =
            manifest::load(&[base.join(&case.file)], &requester).map_err(|e| e.to_string())?;
        if items.is_empty() {
            return Err(format!("{} holds no object", case.file.display()));
        }
        let grants = setting.grants.as_ref().map(|g| base.join(g));
        let worker = self.worker(policies, grants)?;
        for item in items {
            let reviewed = worker
                .review(&item.body, webhook, at, Instant::now())
                .map_err(|e| format!("{}: not a valid AdmissionReview: {e}", item.source))?;
            if let Err(why) = check(&case.expect, &reviewed) {
                return Ok(Err(format!("{}: {why}", item.label)));
            }
        }
        Ok(Ok(()))
    }
}

fn merge(defaults: &Setting, case: &Case) -> Setting {
    Setting {
        user: case.user.clone().or_else(|| defaults.user.clone()),
        groups: case.groups.clone().or_else(|| defaults.groups.clone()),
        operation: case
            .operation
            .clone()
            .or_else(|| defaults.operation.clone()),
        at: case.at.clone().or_else(|| defaults.at.clone()),
        grants: case.grants.clone().or_else(|| defaults.grants.clone()),
        webhook: case.webhook.clone().or_else(|| defaults.webhook.clone()),
    }
}

/// What differs from the expectation, said in one line.
fn check(expect: &Expect, reviewed: &Reviewed) -> Result<(), String> {
    let d = &reviewed.decision;
    let findings: Vec<(&str, &str)> = reviewed
        .evaluation
        .packages
        .iter()
        .flat_map(|p| {
            p.findings
                .iter()
                .map(move |f| (&*p.package, f.msg.as_str()))
        })
        .collect();
    let got = || {
        let listed: Vec<String> = findings.iter().map(|(p, m)| format!("[{p}] {m}")).collect();
        format!(
            "got {} with findings {:?}, warnings {:?}",
            if d.allowed { "allowed" } else { "denied" },
            listed,
            d.warnings
        )
    };
    if d.allowed != expect.allowed {
        let want = if expect.allowed { "allowed" } else { "denied" };
        return Err(format!("expected {want}, {}", got()));
    }
    for m in &expect.messages {
        if !findings.iter().any(|(_, f)| f.contains(m.as_str())) && !d.message.contains(m.as_str())
        {
            return Err(format!("expected a message containing {m:?}, {}", got()));
        }
    }
    if let Some(pkg) = &expect.package {
        if !findings.iter().any(|(p, _)| p == pkg) {
            return Err(format!("expected a finding from {pkg}, {}", got()));
        }
    }
    for warning in &expect.warnings {
        if !d.warnings.iter().any(|x| x.contains(warning.as_str())) {
            return Err(format!(
                "expected a warning containing {warning:?}, {}",
                got()
            ));
        }
    }
    if let Some(grant) = &expect.grant {
        let used = d.grant.as_ref().map(|g| g.name.as_str());
        if used != Some(grant.as_str()) {
            return Err(format!("expected grant {grant} to allow it, got {used:?}"));
        }
    }
    Ok(())
}

//! `jitguard dry-run`: decide manifests offline with the server's own code path.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::w;

use super::exit;
use super::report;
use crate::decision::{Options, Verdict, Webhook};
use crate::manifest::{self, Requester};
use crate::policy::{EvalOptions, PolicySet, RuleKind, Sources};
use crate::request::Operation;
use crate::review::{Reviewed, Reviewer, Worker};

#[derive(Args, Debug)]
pub struct DryRunArgs {
    /// Policy folder.
    #[arg(long, default_value_os_t = super::default_policies())]
    pub policies: PathBuf,
    /// Manifest files or folders (YAML/JSON, multi-document), or AdmissionReview files;
    /// `-` reads standard input (`kubectl kustomize overlays/prod | jitguard dry-run -f -`).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The requesting user, for manifests (an AdmissionReview file names its own)
    /// [default: dry-run-user].
    #[arg(long)]
    pub user: Option<String>,
    /// The requester's groups, for manifests (repeat the flag) [default:
    /// system:authenticated].
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// The operation the manifests are submitted with: CREATE, UPDATE, DELETE or CONNECT
    /// (an AdmissionReview file names its own) [default: CREATE].
    #[arg(long)]
    pub operation: Option<Operation>,
    /// The moment to decide at (RFC 3339), e.g. to replay a change window or a grant's end.
    #[arg(long)]
    pub at: Option<jiff::Timestamp>,
    /// A YAML file of AccessRequests to decide with.
    #[arg(long)]
    pub grants: Option<PathBuf>,
    /// Which webhook to simulate: `mutate` also shows the patch.
    #[arg(long, value_enum, default_value_t = WebhookArg::Validate)]
    pub webhook: WebhookArg,
    /// `input` prints, one JSON document per line, the exact input the policies saw
    /// (the AdmissionReview with `jit`: time, live grants, namespace labels), to replay
    /// a decision under `opa eval --input` or a Rego debugger. For CI: `junit` (test
    /// reports), `github` (annotations on the diff), `sarif` (code scanning), `tap`.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Fail (exit 1) on warnings too: `warn` findings and audit-mode packages' would-deny
    /// findings.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// For each finding, show the package and rule that produced it; also the grant
    /// check, would-deny findings of audit-mode packages and the patch.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Text,
    Json,
    Input,
    Junit,
    Github,
    Sarif,
    Tap,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WebhookArg {
    Validate,
    Mutate,
}

pub fn run(args: &DryRunArgs) -> ExitCode {
    match decide_all(args) {
        Ok(results) => {
            let requester_flags =
                args.user.is_some() || !args.groups.is_empty() || args.operation.is_some();
            if requester_flags {
                for (item, _) in results.iter().filter(|(i, _)| i.review_file) {
                    eprintln!(
                        "jitguard dry-run: note: {} is an AdmissionReview: it is decided as it is, with its own userInfo and operation; --user, --group and --operation apply to manifests",
                        item.source
                    );
                }
            }
            super::emit(&render(args, &results));
            // `-o input` produces inputs to replay, not a verdict: a denial among them
            // must not fail a `set -e` script that saves them.
            let verdict = !matches!(args.output, Output::Input);
            if verdict && cases(args, &results).iter().any(|c| c.failed) {
                ExitCode::from(exit::FAILED)
            } else {
                ExitCode::from(exit::OK)
            }
        }
        Err(message) => {
            eprintln!("jitguard dry-run: {message}");
            ExitCode::from(exit::ERROR)
        }
    }
}

type Results = Vec<(manifest::Item, Reviewed)>;

/// Errors here are "nothing was decided" (exit 2) and name the file and line.
fn decide_all(args: &DryRunArgs) -> Result<Results, String> {
    let requester = Requester {
        user: args.user.clone().unwrap_or_else(|| "dry-run-user".into()),
        groups: if args.groups.is_empty() {
            vec!["system:authenticated".into()]
        } else {
            args.groups.clone()
        },
        operation: args.operation.unwrap_or(Operation::Create),
    };
    let manifests = manifest::read(&args.files, &requester).map_err(|e| e.to_string())?;
    // Templates and constraints among the files are policy beside the folder's, and
    // the objects are the inventory, as `gator test` reads its files.
    let sources = Sources::read(&args.policies).map_err(|e| e.to_string())?;
    let mut set = PolicySet::compile_with(&sources, &manifests.gatekeeper, EvalOptions::default())
        .map_err(|e| e.to_string())?;
    set.set_inventory(&manifests.objects)?;
    let items = manifests.items;
    let mut worker = Worker::new(
        Reviewer::offline(Arc::new(ArcSwap::from_pointee(set)), args.grants.as_deref())
            .map_err(|e| e.to_string())?,
    );
    let mut items = items;
    for item in &mut items {
        if let Some(known) = worker.reviewer().namespaces.learn(&item.body) {
            item.body = as_update_of(&item.body, known);
        }
    }
    let now = args.at.unwrap_or_else(jiff::Timestamp::now);
    let webhook = match args.webhook {
        WebhookArg::Validate => Webhook::Validate,
        WebhookArg::Mutate => Webhook::Mutate,
    };
    items
        .into_iter()
        .map(|item| {
            let reviewed = worker
                .review(&item.body, webhook, now, Instant::now())
                .map_err(|e| format!("{}: not a valid AdmissionReview: {e}", item.source))?;
            Ok((item, reviewed))
        })
        .collect()
}

/// A Namespace document for a namespace jitguard knows is a change to it, as `kubectl
/// apply` would make it: an UPDATE, with what is known as the old object, so that the
/// guardrails see a protection label being removed.
fn as_update_of(body: &[u8], known: serde_json::Value) -> Vec<u8> {
    let Ok(mut review) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let Some(request) = review.get_mut("request").and_then(|r| r.as_object_mut()) else {
        return body.to_vec();
    };
    if request.get("operation").and_then(|o| o.as_str()) != Some("CREATE") {
        return body.to_vec();
    }
    request.insert("operation".into(), "UPDATE".into());
    request.insert("oldObject".into(), known);
    serde_json::to_vec(&review).unwrap_or_else(|_| body.to_vec())
}

/// Each decision as a report case: enforced findings and evaluation errors are errors,
/// `warn` findings and audit-mode packages' findings warnings.
fn cases(args: &DryRunArgs, results: &Results) -> Vec<report::Case> {
    results
        .iter()
        .map(|(item, r)| {
            let mut findings = Vec::new();
            for pkg in &r.evaluation.packages {
                let mode = crate::decision::mode(pkg, Options::default());
                for f in &pkg.findings {
                    let level = if mode.enforced() && !matches!(f.rule, RuleKind::Warn) {
                        report::Level::Error
                    } else {
                        report::Level::Warning
                    };
                    findings.push(report::Finding {
                        package: pkg.package.to_string(),
                        rule: f.rule.name().to_string(),
                        message: f.msg.clone(),
                        level,
                    });
                }
            }
            for e in &r.decision.errors {
                findings.push(report::Finding {
                    package: "jitguard".into(),
                    rule: "error".into(),
                    message: e.clone(),
                    level: report::Level::Error,
                });
            }
            let warned = findings.iter().any(|f| f.level == report::Level::Warning)
                || !r.decision.warnings.is_empty();
            let (file, line) = report::split_source(&item.source);
            report::Case {
                file,
                line,
                name: item.label.clone(),
                failed: !r.decision.allowed || (args.fail_on_warn && warned),
                findings,
            }
        })
        .collect()
}

fn render(args: &DryRunArgs, results: &Results) -> String {
    let mut out = String::new();
    match args.output {
        Output::Junit => out = report::junit("jitguard dry-run", &cases(args, results)),
        Output::Github => out = report::github("jitguard dry-run", &cases(args, results)),
        Output::Sarif => out = report::sarif("dry-run", &cases(args, results)),
        Output::Tap => out = report::tap(&cases(args, results)),
        Output::Input => {
            for (_, r) in results {
                // A regorus value read from JSON always serialises back.
                w!(
                    out,
                    "{}",
                    serde_json::to_string(&r.input.review).unwrap_or_default()
                );
            }
        }
        Output::Json => {
            let items: Vec<_> = results
                .iter()
                .map(|(item, r)| {
                    json!({
                        "source": item.source,
                        "object": item.label,
                        "decision": r.decision.verdict,
                        "allowed": r.decision.allowed,
                        "message": r.decision.message,
                        "warnings": r.decision.warnings,
                        "findings": r.evaluation.packages.iter().flat_map(|p| {
                            let enforcement = crate::decision::mode(p, Options::default());
                            p.findings.iter().map(move |f| json!({
                                "package": p.package, "rule": f.rule, "msg": f.msg, "enforcement": enforcement,
                            }))
                        }).collect::<Vec<_>>(),
                        "would_deny": r.decision.would_deny,
                        "errors": r.decision.errors,
                        "grant": r.decision.grant,
                        "request_access": r.decision.request_access,
                        "patch": r.decision.patch,
                    })
                })
                .collect();
            w!(
                out,
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            );
        }
        Output::Text => {
            for (item, r) in results {
                let d = &r.decision;
                let verdict = match d.verdict {
                    Verdict::Allow => "ALLOW",
                    Verdict::Warn => "WARN ",
                    Verdict::Deny => "DENY ",
                };
                w!(out, "{verdict} {}  ({})", item.label, item.source);
                for pkg in &r.evaluation.packages {
                    let mode = crate::decision::mode(pkg, Options::default());
                    for f in &pkg.findings {
                        if args.explain {
                            w!(
                                out,
                                "      package {} rule {} (enforcement {}): {}",
                                pkg.package,
                                f.rule.name(),
                                mode.name(),
                                f.msg
                            );
                        } else if matches!(f.rule, RuleKind::Warn) {
                        } else if mode.enforced() {
                            w!(out, "      [{}] {}: {}", pkg.package, f.rule.name(), f.msg);
                        } else {
                            // Not what denied it, even under a DENY from another package.
                            w!(
                                out,
                                "      [{}] would deny ({}): {}",
                                pkg.package,
                                mode.name(),
                                f.msg
                            );
                        }
                    }
                }
                for e in &d.errors {
                    w!(out, "      error: {e}");
                }
                // A would-deny warning repeats a finding listed above.
                for w in d
                    .warnings
                    .iter()
                    .filter(|w| !w.starts_with(crate::decision::WOULD_DENY))
                {
                    w!(out, "      warning: {w}");
                }
                if let Some(request) = &d.request_access {
                    w!(out, "      to get access: {request}");
                }
                // Without it, an allowed request's require_grant finding reads like a denial.
                if let Some(g) = &d.grant {
                    w!(
                        out,
                        "      allowed by grant {} (expires {})",
                        g.name,
                        g.expires_at
                    );
                }
                {
                    // Only `--webhook mutate` produces one: what it asked to see.
                    for op in &d.patch {
                        w!(
                            out,
                            "      patch: {}",
                            serde_json::to_string(op).unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    out
}

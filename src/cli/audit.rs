//! `jitguard audit`: the objects already in a cluster, judged by the policies as the API
//! server would present them (an UPDATE of each to itself, by no user). Read-only, with
//! the caller's kubeconfig.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::{Args, ValueEnum};

use super::{exit, w};
use crate::policy::PolicySet;
use crate::review::Reviewer;
use crate::scan;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Policy folder.
    #[arg(long, default_value_os_t = super::default_policies())]
    pub policies: PathBuf,
    /// kubeconfig file [default: $KUBECONFIG, else ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context [default: the current one].
    #[arg(long)]
    pub context: Option<String>,
    /// Also audit this resource, as GROUP/VERSION/KIND/PLURAL (`core` for the core group),
    /// beside workloads, Pods, Ingresses, NetworkPolicies, RBAC and Namespaces.
    #[arg(long = "resource", value_parser = crate::controller::provision::parse_reap_resource)]
    pub resources: Vec<kube::api::ApiResource>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Why `require_grant` findings are not in an audit, said wherever findings are shown.
pub const LEFT_OUT: &str =
    "require_grant findings are about who changes what, not about state: they are left out";

pub fn run(args: &AuditArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jitguard audit: cannot start: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(audit(args)) {
        Ok((text, failing)) => {
            super::emit(&text);
            ExitCode::from(if failing { exit::FAILED } else { exit::OK })
        }
        Err(message) => {
            eprintln!("jitguard audit: {message}");
            ExitCode::from(exit::ERROR)
        }
    }
}

async fn audit(args: &AuditArgs) -> Result<(String, bool), String> {
    let set = PolicySet::load(&args.policies, crate::policy::EvalOptions::default())
        .map_err(|e| e.to_string())?;
    let reviewer =
        Reviewer::offline(Arc::new(ArcSwap::from_pointee(set)), None).map_err(|e| e.to_string())?;
    let client =
        super::jit::kubeconfig_client(args.kubeconfig.as_deref(), args.context.clone()).await?;
    let mut resources = scan::default_resources();
    resources.extend(args.resources.iter().cloned());
    let outcome = scan::run(&client, reviewer, &resources, false).await;
    if outcome.skipped.len() == resources.len() {
        return Err(format!(
            "nothing could be listed ({}); check the kubeconfig context and your RBAC",
            outcome.skipped.join("; ")
        ));
    }
    let failing = outcome.findings.iter().any(|f| f.result() == "fail");
    let mut out = String::new();
    match args.output {
        Output::Json => {
            let doc = serde_json::json!({
                "audited": outcome.audited.len(),
                "findings": outcome.findings,
                "skipped": outcome.skipped,
                "note": LEFT_OUT,
            });
            w!(
                out,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
        Output::Text => {
            for f in &outcome.findings {
                let tag = if f.result() == "fail" { "FAIL" } else { "WARN" };
                w!(
                    out,
                    "{tag}  {}  [{}] {}: {}",
                    f.object(),
                    f.package,
                    f.rule,
                    f.message
                );
            }
            let count = |r: &str| outcome.findings.iter().filter(|f| f.result() == r).count();
            w!(
                out,
                "{} objects audited: {} failing, {} warning findings",
                outcome.audited.len(),
                count("fail"),
                count("warn")
            );
            w!(out, "{LEFT_OUT}");
            for s in &outcome.skipped {
                w!(out, "skipped {s}");
            }
        }
    }
    Ok((out, failing))
}

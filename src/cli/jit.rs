//! `kubectl jit`: the people's side of the workflow, as a kubectl plugin (the same binary,
//! installed or linked as `kubectl-jit`) or as `jitguard jit`. It talks to the cluster
//! with the user's kubeconfig; who the user is comes from the API server
//! (SelfSubjectReview), and everything the user may not write is refused or stamped by
//! jitguard's webhook, never trusted from here.
//!
//! This file is long because it holds seven of the subcommands, each short, beside the
//! client setup and the error explanations they share (`do`, longer, is attempt.rs).

mod attempt;
mod ui;

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};

use super::{emit, w};
use crate::grant::resource::{Approval, ApprovalDecision, RoleRef, ScopeRule};
use crate::grant::{AccessRequest, AccessRequestSpec, Phase};

/// The binary run as the kubectl plugin `kubectl-jit`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "kubectl-jit",
    bin_name = "kubectl jit",
    version,
    about = "Request, approve and revoke just-in-time access guarded by jitguard"
)]
pub struct PluginCli {
    #[command(flatten)]
    pub args: JitArgs,
    /// Log filter for the client library (tracing's EnvFilter syntax) [default: off].
    #[arg(long, global = true, env = "JITGUARD_LOG")]
    pub log: Option<String>,
}

#[derive(Args, Debug)]
pub struct JitArgs {
    #[command(subcommand)]
    pub command: JitCommand,
    /// kubeconfig file [default: $KUBECONFIG, else ~/.kube/config].
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// kubeconfig context [default: the current one].
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// `text` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum JitCommand {
    /// Ask for access: one scope rule from the flags (a denial prints the exact line).
    Request(RequestArgs),
    /// Your requests, or (--pending) the pending ones you could review.
    List(ListArgs),
    /// One request in full: scope, approvals, times, conditions.
    Show {
        /// The AccessRequest's name (see `kubectl jit list`).
        name: String,
    },
    /// Approve someone else's request (one decision per approver).
    Approve(DecideArgs),
    /// Deny someone else's request.
    Deny(DecideArgs),
    /// End a pending or live grant now (requester, approvers, admins).
    Revoke {
        /// The AccessRequest's name (see `kubectl jit list`).
        name: String,
    },
    /// Ask for more time: a new request, with the same scope, that starts when NAME ends.
    Extend(ExtendArgs),
    /// Run a command; if jitguard denies it for want of a grant, ask for exactly that
    /// access (and with --wait, run it again once the grant is live).
    Do(attempt::DoArgs),
    /// A page in your browser, served on loopback and acting as you: what waits for your
    /// decision, your requests, live grants, each request's history.
    Ui(ui::UiArgs),
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// Namespace(s) in scope; leave out for cluster-scoped objects.
    #[arg(long, short = 'n')]
    pub namespace: Vec<String>,
    /// API group(s): omit (or "") for the core group, `*` for any.
    #[arg(long = "api-group")]
    pub api_group: Vec<String>,
    /// Resource(s), with subresources as in RBAC: pods/exec, deployments, `*`.
    #[arg(long, required = true)]
    pub resource: Vec<String>,
    /// CREATE, UPDATE, DELETE, CONNECT or `*` [default: *].
    #[arg(long)]
    pub operation: Vec<String>,
    /// Object name(s) [default: all].
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// How long, once approved: 30m, 2h, 1h30m.
    #[arg(long, default_value = crate::grant::SUGGESTED_DURATION)]
    pub duration: String,
    /// Why you need it (required).
    #[arg(long, required = true)]
    pub reason: String,
    /// A ticket or incident reference (the access policy may require one).
    #[arg(long)]
    pub ticket: Option<String>,
    /// Bind this role while the grant is live: ClusterRole/NAME or Role/NAME.
    #[arg(long)]
    pub role: Option<String>,
    /// A grant for a group you are in instead of for you alone.
    #[arg(long)]
    pub group: Option<String>,
    /// Emergency: live at once without approval, if you are in the break-glass group.
    #[arg(long)]
    pub break_glass: bool,
    /// The request's name [default: generated from your user name].
    #[arg(long = "request-name")]
    pub request_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Pending requests of others, waiting for a decision.
    #[arg(long, conflicts_with = "all")]
    pub pending: bool,
    /// Everyone's requests.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The AccessRequest's name (see `kubectl jit list --pending`).
    pub name: String,
    /// A comment recorded with your decision.
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExtendArgs {
    /// The live or pending AccessRequest to extend.
    pub name: String,
    /// How much more time, from NAME's end: 30m, 2h.
    #[arg(long)]
    pub duration: String,
    /// Why you need more time (required; approvers read it).
    #[arg(long)]
    pub reason: String,
}

/// A failure, said so the user knows what to do.
#[derive(Debug)]
struct Failure(String);

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Self(s)
    }
}

pub fn run(args: &JitArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubectl jit: cannot start: {e}");
            return ExitCode::from(super::exit::ERROR);
        }
    };
    if let JitCommand::Do(d) = &args.command {
        return attempt::run(args, d, &runtime);
    }
    if let JitCommand::Ui(u) = &args.command {
        return ui::run(args, u, &runtime);
    }
    match runtime.block_on(execute(args)) {
        Ok(out) => {
            emit(&out);
            ExitCode::SUCCESS
        }
        Err(Failure(message)) => {
            eprintln!("kubectl jit: {message}");
            ExitCode::from(super::exit::FAILED)
        }
    }
}

async fn client(args: &JitArgs) -> Result<Client, Failure> {
    kubeconfig_client(args.kubeconfig.as_deref(), args.context.clone())
        .await
        .map_err(Failure)
}

/// A client as kubectl makes one: this kubeconfig (or $KUBECONFIG, or ~/.kube/config) and
/// context (or the current one). The error says what to do.
pub(super) async fn kubeconfig_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<Client, String> {
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| format!("no usable kubeconfig ({e}); set KUBECONFIG or pass --kubeconfig"))?;
    Client::try_from(config)
        .map_err(|e| format!("cannot set up the connection to the cluster: {e}"))
}

/// The innermost error: for a failed connection, what the operating system said
/// (`Connection refused`), rather than the client's wrapper text.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut texts = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(e) = cause {
        texts.push(e.to_string());
        cause = e.source();
    }
    let innermost = texts.pop().unwrap_or_default();
    match texts.first() {
        Some(outer) if !outer.contains(&innermost) => format!("{outer}: {innermost}"),
        Some(outer) => outer.clone(),
        None => innermost,
    }
}

/// Explains an API error for a person: what went wrong and what to do.
fn explain(e: kube::Error, verb: &str, name: Option<&str>) -> Failure {
    match e {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            let named = status.details.as_ref().is_some_and(|d| !d.name.is_empty());
            match status.code {
                404 if named || name.is_some() && message.contains("not found") => Failure(format!(
                    "there is no access request named {:?}; see `kubectl jit list --all`",
                    name.unwrap_or_default()
                )),
                404 => Failure(
                    "the AccessRequest API (accessrequests.jitguard.dev/v1alpha1) is not installed in this cluster; install jitguard first (manifests/base/accessrequest-crd.yaml)".into(),
                ),
                403 if message.contains("admission webhook") => Failure(format!("refused: {message}")),
                403 => Failure(format!(
                    "you may not {verb} access requests: {message}; ask a cluster admin for jitguard's requester or approver role"
                )),
                401 => Failure(format!(
                    "the cluster does not know who you are ({message}); log in again"
                )),
                409 => Failure(format!(
                    "the request changed while you were working on it ({message}); run the command again"
                )),
                _ => Failure(format!("the API server refused to {verb}: {message}")),
            }
        }
        other => Failure(format!(
            "cannot reach the cluster ({}); check that it is up and that your kubeconfig context points at it (--context, --kubeconfig)",
            root_cause(&other)
        )),
    }
}

async fn whoami(client: &Client) -> Result<(String, Vec<String>), Failure> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| explain(e, "look up", None))?;
    let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
    let user = info
        .username
        .ok_or_else(|| Failure("the API server did not say who you are".into()))?;
    Ok((user, info.groups.unwrap_or_default()))
}

async fn execute(args: &JitArgs) -> Result<String, Failure> {
    let client = client(args).await?;
    let api: Api<AccessRequest> = Api::all(client.clone());
    let json = args.output == Output::Json;
    match &args.command {
        JitCommand::Request(r) => {
            let ar = new_request(r)?;
            let created = create(&api, &ar).await?;
            Ok(if json {
                to_json(&created)
            } else {
                format!(
                    "accessrequest {} created (Pending); an approver runs: kubectl jit approve {}\n",
                    created.name_any(),
                    created.name_any()
                )
            })
        }
        JitCommand::List(l) => {
            let items = api
                .list(&ListParams::default())
                .await
                .map_err(|e| explain(e, "list", None))?
                .items;
            let (me, groups) = if l.all {
                (String::new(), Vec::new())
            } else {
                whoami(&client).await?
            };
            let mut shown: Vec<&AccessRequest> = items
                .iter()
                .filter(|ar| {
                    if l.all {
                        true
                    } else if l.pending {
                        phase(ar) == Phase::Pending
                            && ar.spec.requester != me
                            && !ar.spec.group.as_ref().is_some_and(|g| groups.contains(g))
                    } else {
                        ar.spec.requester == me
                    }
                })
                .collect();
            shown.sort_by_key(|ar| ar.metadata.creation_timestamp.as_ref().map(|t| t.0));
            Ok(if json { to_json(&shown) } else { table(&shown) })
        }
        JitCommand::Show { name } => {
            let ar = api
                .get(name)
                .await
                .map_err(|e| explain(e, "read", Some(name)))?;
            Ok(if json { to_json(&ar) } else { describe(&ar) })
        }
        JitCommand::Approve(d) | JitCommand::Deny(d) => {
            let decision = if matches!(args.command, JitCommand::Approve(_)) {
                ApprovalDecision::Approve
            } else {
                ApprovalDecision::Deny
            };
            let (me, updated) = decide(&client, &d.name, decision, d.comment.clone()).await?;
            Ok(if json {
                to_json(&updated)
            } else {
                let verb = decision.past_tense();
                format!(
                    "accessrequest {} {verb} by {me}; it is now {}\n",
                    d.name,
                    phase(&updated).as_str()
                )
            })
        }
        JitCommand::Revoke { name } => {
            let (me, updated) = revoke(&client, name).await?;
            Ok(if json {
                to_json(&updated)
            } else {
                format!("accessrequest {name} revoked by {me}\n")
            })
        }
        // `do` answers with the command's own exit code: run() takes it apart.
        JitCommand::Do(_) | JitCommand::Ui(_) => {
            Err(Failure("kubectl jit: internal dispatch error".into()))
        }
        JitCommand::Extend(x) => {
            let created = extend(&api, &x.name, &x.duration, &x.reason).await?;
            Ok(if json {
                to_json(&created)
            } else {
                format!(
                    "accessrequest {} created: extends {} by {} once approved\n",
                    created.name_any(),
                    x.name,
                    x.duration
                )
            })
        }
    }
}

/// Records the caller's decision on request `name`: who and when are stamped by the
/// webhook from the request itself; the values here only say what the user means.
async fn decide(
    client: &Client,
    name: &str,
    decision: ApprovalDecision,
    comment: Option<String>,
) -> Result<(String, AccessRequest), Failure> {
    let api: Api<AccessRequest> = Api::all(client.clone());
    let (me, _) = whoami(client).await?;
    let updated = update_status(&api, name, |ar| {
        let status = ar.status.get_or_insert_with(Default::default);
        status.approvals.push(Approval {
            approver: me.clone(),
            approver_groups: Vec::new(),
            decision,
            at: Time(Timestamp::now()),
            comment: comment.clone(),
            uid: ar.metadata.uid.clone().unwrap_or_default(),
            generation: ar.metadata.generation.unwrap_or_default(),
        });
    })
    .await?;
    Ok((me, updated))
}

/// Ends request `name` now (who revoked and when are jitguard's to stamp).
async fn revoke(client: &Client, name: &str) -> Result<(String, AccessRequest), Failure> {
    let api: Api<AccessRequest> = Api::all(client.clone());
    let (me, _) = whoami(client).await?;
    let updated = update_status(&api, name, |ar| {
        ar.status.get_or_insert_with(Default::default).phase = Phase::Revoked;
    })
    .await?;
    Ok((me, updated))
}

/// Asks for `duration` more of grant `name`: a new request with the same scope that starts
/// when it ends.
async fn extend(
    api: &Api<AccessRequest>,
    name: &str,
    duration: &str,
    reason: &str,
) -> Result<AccessRequest, Failure> {
    let old = api
        .get(name)
        .await
        .map_err(|e| explain(e, "read", Some(name)))?;
    let ar = AccessRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-ext-", crate::text::prefix_within(name, 50))),
            ..ObjectMeta::default()
        },
        spec: AccessRequestSpec {
            requester: String::new(),
            requester_groups: Vec::new(),
            group: old.spec.group.clone(),
            scope: old.spec.scope.clone(),
            reason: reason.to_string(),
            ticket: old.spec.ticket.clone(),
            duration: duration.to_string(),
            role_ref: old.spec.role_ref.clone(),
            break_glass: false,
            extends: Some(name.to_string()),
        },
        status: None,
    };
    create(api, &ar).await
}

async fn create(api: &Api<AccessRequest>, ar: &AccessRequest) -> Result<AccessRequest, Failure> {
    api.create(&PostParams::default(), ar)
        .await
        .map_err(|e| explain(e, "create", None))
}

/// Read, change, write the status with the version read; on a conflict (someone else
/// decided meanwhile) read again and retry, a few times.
async fn update_status(
    api: &Api<AccessRequest>,
    name: &str,
    change: impl Fn(&mut AccessRequest),
) -> Result<AccessRequest, Failure> {
    let mut attempts = 0;
    loop {
        let mut ar = api
            .get(name)
            .await
            .map_err(|e| explain(e, "read", Some(name)))?;
        change(&mut ar);
        match api.replace_status(name, &PostParams::default(), &ar).await {
            Ok(updated) => return Ok(updated),
            Err(kube::Error::Api(e)) if e.code == 409 && attempts < 3 => attempts += 1,
            Err(e) => return Err(explain(e, "update", Some(name))),
        }
    }
}

fn new_request(r: &RequestArgs) -> Result<AccessRequest, Failure> {
    crate::grant::resource::parse_duration(&r.duration)
        .map_err(|e| Failure(format!("--duration: {e}")))?;
    if r.reason.trim().is_empty() {
        return Err(Failure(
            "--reason is required: say why you need access".into(),
        ));
    }
    let role_ref = match &r.role {
        Some(text) => {
            let (kind, name) = text
                .split_once('/')
                .filter(|(k, n)| matches!(*k, "ClusterRole" | "Role") && !n.is_empty())
                .ok_or_else(|| {
                    Failure(format!(
                        "--role {text:?}: write ClusterRole/NAME or Role/NAME"
                    ))
                })?;
            Some(RoleRef {
                kind: kind.into(),
                name: name.into(),
            })
        }
        None => None,
    };
    let operations = if r.operation.is_empty() {
        vec!["*".to_string()]
    } else {
        r.operation.iter().map(|o| o.to_uppercase()).collect()
    };
    let api_groups = if r.api_group.is_empty() {
        vec![String::new()]
    } else {
        r.api_group.clone()
    };
    let metadata = match &r.request_name {
        Some(name) => ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        None => ObjectMeta {
            generate_name: Some("jit-".into()),
            ..ObjectMeta::default()
        },
    };
    Ok(AccessRequest {
        metadata,
        spec: AccessRequestSpec {
            requester: String::new(),
            requester_groups: Vec::new(),
            group: r.group.clone(),
            scope: vec![ScopeRule {
                operations,
                api_groups,
                resources: r.resource.clone(),
                namespaces: r.namespace.clone(),
                names: r.names.clone(),
            }],
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            duration: r.duration.clone(),
            role_ref,
            break_glass: r.break_glass,
            extends: None,
        },
        status: None,
    })
}

fn phase(ar: &AccessRequest) -> Phase {
    ar.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value)
        .map_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"), |s| s + "\n")
}

fn table(items: &[&AccessRequest]) -> String {
    if items.is_empty() {
        return "no access requests\n".into();
    }
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|ar| {
            let status = ar.status.clone().unwrap_or_default();
            let mut name = ar.name_any();
            if ar.spec.break_glass {
                name.push_str(" (break-glass)");
            }
            [
                name,
                ar.spec.requester.clone(),
                status.phase.as_str().to_string(),
                ar.spec.duration.clone(),
                status
                    .expires_at
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(|| "-".into()),
                ar.spec
                    .scope
                    .iter()
                    .map(ScopeRule::summary)
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    let header = ["NAME", "REQUESTER", "PHASE", "DURATION", "EXPIRES", "SCOPE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            l.push_str(&format!("{cell:<width$}   "));
        }
        l.trim_end().to_string()
    };
    w!(out, "{}", line(header.to_vec()));
    for row in &rows {
        w!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn describe(ar: &AccessRequest) -> String {
    let status = ar.status.clone().unwrap_or_default();
    let spec = &ar.spec;
    let mut out = String::new();
    w!(out, "Name:       {}", ar.name_any());
    w!(
        out,
        "Requester:  {} ({})",
        spec.requester,
        spec.requester_groups.join(", ")
    );
    if let Some(g) = &spec.group {
        w!(out, "For group:  {g}");
    }
    w!(out, "Phase:      {}", status.phase.as_str());
    w!(out, "Reason:     {}", spec.reason);
    if let Some(t) = &spec.ticket {
        w!(out, "Ticket:     {t}");
    }
    w!(out, "Duration:   {}", spec.duration);
    if let Some(needs) = crate::access::needs_text(ar) {
        w!(out, "Needs:      {needs}");
    }
    if spec.break_glass {
        w!(
            out,
            "Break-glass: yes{}",
            if status.review_required {
                " (review required)"
            } else {
                ""
            }
        );
    }
    if let Some(r) = &spec.role_ref {
        w!(out, "Role:       {}/{}", r.kind, r.name);
    }
    if let Some(x) = &spec.extends {
        w!(out, "Extends:    {x}");
    }
    w!(out, "Scope:");
    for rule in &spec.scope {
        w!(out, "  - {}", rule.summary());
    }
    if let Some(t) = &status.approved_at {
        w!(out, "Approved at: {}", t.0);
    }
    if let Some(t) = &status.expires_at {
        w!(out, "Expires at:  {}", t.0);
    }
    if let (Some(by), Some(at)) = (&status.revoked_by, &status.revoked_at) {
        w!(out, "Revoked:    by {by} at {}", at.0);
    }
    if !status.approvals.is_empty() {
        w!(out, "Decisions:");
        for a in &status.approvals {
            let comment = a
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            w!(
                out,
                "  - {} by {} at {}{comment}",
                a.decision.past_tense(),
                a.approver,
                a.at.0
            );
        }
    }
    if !status.conditions.is_empty() {
        w!(out, "Conditions:");
        for c in &status.conditions {
            w!(
                out,
                "  - {}={} ({}): {}",
                c.type_,
                c.status,
                c.reason,
                c.message
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn args(extra: &[&str]) -> RequestArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            r: RequestArgs,
        }
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        P::try_parse_from(argv).unwrap().r
    }

    #[test]
    fn a_denials_request_line_becomes_exactly_that_scope() {
        // The line a denial prints (grant/coverage.rs) parses into the scope it names.
        let r = args(&[
            "--namespace",
            "prod",
            "--api-group",
            "networking.k8s.io",
            "--resource",
            "ingresses",
            "--operation",
            "DELETE",
            "--name",
            "web",
            "--duration",
            "30m",
            "--reason",
            "fix",
        ]);
        let ar = new_request(&r).unwrap();
        let rule = &ar.spec.scope[0];
        assert_eq!(rule.namespaces, ["prod"]);
        assert_eq!(rule.api_groups, ["networking.k8s.io"]);
        assert_eq!(rule.operations, ["DELETE"]);
        assert_eq!(rule.names, ["web"]);
        assert_eq!(ar.metadata.generate_name.as_deref(), Some("jit-"));
    }

    #[test]
    fn bad_flags_get_a_clear_error_before_any_call() {
        let mut r = args(&[
            "--resource",
            "pods/exec",
            "--reason",
            "x",
            "--duration",
            "1d",
        ]);
        assert!(new_request(&r).unwrap_err().0.contains("--duration"));
        r.duration = "30m".into();
        r.role = Some("cluster-admin".into());
        assert!(new_request(&r).unwrap_err().0.contains("ClusterRole/NAME"));
    }
}

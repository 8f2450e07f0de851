//! `kubectl jit do -- kubectl ...`: access asked for from the attempt itself. The command
//! runs; if jitguard denies it for want of a grant, the AccessRequest for exactly that
//! action is created from the denial's own request line (the `kubectl jit request`
//! line jitguard writes from the request's fields, read here by the same parser as
//! `kubectl jit request`, never guessed from the prose around it); with `--wait` the
//! grant is waited for and the command runs again.
//!
//! Only a denial by jitguard's own webhook is read: a line that looks the same in
//! another webhook's message is not trusted to choose what is asked for.

use std::io::IsTerminal;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use kube::{Api, ResourceExt};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{client, create, new_request, phase, Failure, JitArgs, RequestArgs};
use crate::grant::{AccessRequest, Phase};

/// jitguard's webhooks whose denials name the grant that would lift them
/// (manifests/base: the mutating one runs first, so its denial is the one seen).
const JITGUARD_DENIALS: [&str; 2] = [
    "admission webhook \"grants.jitguard.dev\" denied the request",
    "admission webhook \"guardrails.jitguard.dev\" denied the request",
];
/// How often a pending request is looked at while waiting.
const POLL: Duration = Duration::from_secs(2);
/// How long a re-run may still meet the denial while jitguard's grant cache catches up
/// with the approval (a watch: usually well under a second).
const CATCH_UP: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct DoArgs {
    /// Why you need access (required: approvers read it).
    #[arg(long, required = true)]
    pub reason: String,
    /// How long, once approved [default: what the denial suggests].
    #[arg(long)]
    pub duration: Option<String>,
    /// A ticket or incident reference (the access policy may require one).
    #[arg(long)]
    pub ticket: Option<String>,
    /// Wait until the grant is live, then run the command again.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: go on waiting for these requests (from an earlier, interrupted
    /// `kubectl jit do`) instead of running the command first.
    #[arg(long = "request", requires = "wait")]
    pub requests: Vec<String>,
    /// With --wait: the longest wait for approval, e.g. 30m, 2h.
    #[arg(long, default_value = "1h", value_parser = wait_limit)]
    pub timeout: Duration,
    /// The command, after `--`: kubectl and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

fn wait_limit(text: &str) -> Result<Duration, String> {
    crate::grant::resource::parse_duration(text).map_err(|e| e.to_string())
}

/// What a failed command's error output says about jitguard.
#[derive(Debug, PartialEq)]
enum Denial {
    /// Not denied by jitguard (or not denied at all).
    Other,
    /// Denied by a rule no grant can lift.
    NoGrantLifts,
    /// Denied for want of a grant: the request lines, one per denied action.
    NeedsGrant(Vec<String>),
}

impl Denial {
    fn read(stderr: &str) -> Self {
        if !JITGUARD_DENIALS.iter().any(|d| stderr.contains(d)) {
            return Self::Other;
        }
        let mut lines: Vec<String> = Vec::new();
        for line in stderr.lines().map(str::trim) {
            if line.starts_with("kubectl jit request ") && !lines.iter().any(|l| l == line) {
                lines.push(line.to_string());
            }
        }
        if lines.is_empty() {
            Self::NoGrantLifts
        } else {
            Self::NeedsGrant(lines)
        }
    }
}

/// A denial's request line as `kubectl jit request` reads it.
fn parse_request_line(line: &str) -> Result<RequestArgs, Failure> {
    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        request: RequestArgs,
    }
    let words = shell_words(line.strip_prefix("kubectl jit ").unwrap_or(line))
        .ok_or_else(|| Failure(format!("cannot read jitguard's request line: {line}")))?;
    Line::try_parse_from(words)
        .map(|l| l.request)
        .map_err(|e| Failure(format!("cannot read jitguard's request line ({e}): {line}")))
}

/// Splits a line written by jitguard (`grant/coverage.rs`): words, `'...'` with `'\''`
/// for a quote inside, and `"..."`. `None` for an unclosed quote.
fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                words.extend(word.take());
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// One run of the command: its exit code and what it wrote to stderr.
struct Ran {
    code: u8,
    stderr: String,
}

/// Runs the command. `live`: its output goes to the terminal as it comes (the first
/// run); otherwise it is kept and shown once the outcome is known (re-runs).
async fn run_command(command: &[String], live: bool) -> Result<Ran, Failure> {
    let (program, args) = command.split_first().ok_or_else(|| {
        Failure("name the command after --, e.g. -- kubectl apply -f x.yaml".into())
    })?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if live {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(if live {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot run {program}: {e}")))?;
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if live {
                eprintln!("{line}");
            }
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| Failure(format!("cannot run {program}: {e}")))?;
    if !live {
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    let code = output
        .status
        .code()
        .map_or(1, |c| u8::try_from(c).unwrap_or(1));
    Ok(Ran { code, stderr })
}

pub fn run(args: &JitArgs, d: &DoArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    match runtime.block_on(attempt(args, d)) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(message)) => {
            eprintln!("kubectl jit do: {message}");
            ExitCode::from(crate::cli::exit::FAILED)
        }
    }
}

async fn attempt(args: &JitArgs, d: &DoArgs) -> Result<u8, Failure> {
    // The cluster is reached only once there is something to ask for or wait on: a
    // command that succeeds, or fails for another reason, needs no more than itself.
    let api = || async { client(args).await.map(Api::<AccessRequest>::all) };
    let (api, names) = if d.requests.is_empty() {
        let first = run_command(&d.command, true).await?;
        if first.code == 0 {
            return Ok(0);
        }
        let lines = match Denial::read(&first.stderr) {
            Denial::Other => return Ok(first.code),
            Denial::NoGrantLifts => {
                eprintln!(
                    "kubectl jit do: jitguard denied this by a rule no grant can lift; nothing was requested"
                );
                return Ok(first.code);
            }
            Denial::NeedsGrant(lines) => lines,
        };
        let api = api().await?;
        let mut names = Vec::new();
        for line in lines {
            let mut request = parse_request_line(&line)?;
            request.reason = d.reason.clone();
            request.ticket = d.ticket.clone();
            if let Some(duration) = &d.duration {
                request.duration = duration.clone();
            }
            let created = create(&api, &new_request(&request)?).await?;
            let name = created.name_any();
            eprintln!(
                "kubectl jit do: asked for access: accessrequest {name} (Pending){}; an approver runs: kubectl jit approve {name}",
                crate::access::needs_text(&created)
                    .map(|n| format!("; approval needs {n}"))
                    .unwrap_or_default()
            );
            names.push(name);
        }
        if !d.wait {
            eprintln!("kubectl jit do: once it is approved, run the command again (or use --wait)");
            return Ok(first.code);
        }
        (api, names)
    } else {
        (api().await?, d.requests.clone())
    };
    tokio::select! {
        waited = wait_until_live(&api, &names, d.timeout) => waited?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\nkubectl jit do: stopped waiting; {} stays pending. To go on waiting: kubectl jit do --wait{} --reason {:?} -- {}",
                names.join(", "),
                names.iter().map(|n| format!(" --request {n}")).collect::<String>(),
                d.reason,
                d.command.join(" ")
            );
            return Ok(130);
        }
    }
    // The grant is live; jitguard's cache follows the approval within moments.
    let started = Instant::now();
    loop {
        let again = run_command(&d.command, false).await?;
        let retry = again.code != 0
            && matches!(Denial::read(&again.stderr), Denial::NeedsGrant(_))
            && started.elapsed() < CATCH_UP;
        if !retry {
            eprint!("{}", again.stderr);
            return Ok(again.code);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the requests until every one is live; a status line says what each still
/// waits for. A denied, revoked or expired request ends the wait with why.
async fn wait_until_live(
    api: &Api<AccessRequest>,
    names: &[String],
    limit: Duration,
) -> Result<(), Failure> {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let mut waiting = Vec::new();
        for name in names {
            let ar = api
                .get(name)
                .await
                .map_err(|e| super::explain(e, "read", Some(name)))?;
            let live = phase(&ar) == Phase::Approved
                && ar
                    .status
                    .as_ref()
                    .and_then(|s| s.approved_at.as_ref())
                    .is_some_and(|t| t.0 <= jiff::Timestamp::now());
            match phase(&ar) {
                _ if live => {}
                Phase::Pending | Phase::Approved => waiting.push(progress(&ar)),
                other => {
                    return Err(Failure(format!(
                        "accessrequest {name} is {}: the command was not run again",
                        other.as_str()
                    )))
                }
            }
        }
        if waiting.is_empty() {
            if terminal {
                eprintln!();
            }
            eprintln!("kubectl jit do: access is live; running the command again");
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(Failure(format!(
                "still not approved after {}s (--timeout); the request stays pending",
                limit.as_secs()
            )));
        }
        let line = format!(
            "waiting {}s: {}",
            started.elapsed().as_secs(),
            waiting.join("; ")
        );
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else if line.split_once(": ").map(|(_, w)| w) != last.split_once(": ").map(|(_, w)| w) {
            // Not a terminal: a line only when something changed.
            eprintln!("kubectl jit do: {line}");
        }
        last = line;
        tokio::time::sleep(POLL).await;
    }
}

/// `NAME: approved by bob; needs 1 of lead (leads) and 1 of security (security)`.
fn progress(ar: &AccessRequest) -> String {
    let decided: Vec<String> = ar
        .status
        .iter()
        .flat_map(|s| &s.approvals)
        .map(|a| format!("{:?} by {}", a.decision, a.approver).to_lowercase())
        .collect();
    let mut text = ar.name_any();
    if decided.is_empty() {
        text.push_str(": no decision yet");
    } else {
        text.push_str(&format!(": {}", decided.join(", ")));
    }
    if let Some(needs) = crate::access::needs_text(ar) {
        text.push_str(&format!("; approval needs {needs}"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const DENIED: &str = "Error from server (Forbidden): error when creating \"cm.yaml\": admission webhook \"guardrails.jitguard.dev\" denied the request: jitguard denied the request:\n- [jitguard.namespaces] require_grant: creation of ConfigMap prod/x in protected namespace prod needs a just-in-time grant\na just-in-time grant is required and none of yours covers this request; ask for one with:\n  kubectl jit request --namespace prod --resource configmaps --operation CREATE --name x --duration 30m --reason \"...\"\n";

    #[test]
    fn a_denial_for_want_of_a_grant_names_exactly_the_action() {
        let denial = Denial::read(DENIED);
        let lines = match &denial {
            Denial::NeedsGrant(lines) => lines.clone(),
            other => Vec::from([format!("{other:?}")]),
        };
        assert!(matches!(denial, Denial::NeedsGrant(_)), "{denial:?}");
        assert_eq!(lines.len(), 1);
        let r = parse_request_line(&lines[0]).unwrap();
        assert_eq!(r.namespace, ["prod"]);
        assert_eq!(r.resource, ["configmaps"]);
        assert_eq!(r.operation, ["CREATE"]);
        assert_eq!(r.names, ["x"]);
        assert_eq!(r.duration, "30m");
        assert!(r.api_group.is_empty());
    }

    #[test]
    fn only_jitguards_own_denials_are_read() {
        let other = DENIED.replace("guardrails.jitguard.dev", "policy.example.com");
        assert_eq!(Denial::read(&other), Denial::Other);
        let deny_rule = "Error from server (Forbidden): admission webhook \"grants.jitguard.dev\" denied the request: jitguard denied the request:\n- [jitguard.workloads] deny: Pod prod/x: the pod uses the host's network namespace\n";
        assert_eq!(Denial::read(deny_rule), Denial::NoGrantLifts);
        assert_eq!(
            Denial::read("error: the server doesn't have a resource type \"x\""),
            Denial::Other
        );
    }

    #[test]
    fn quoted_names_are_read_back_as_jitguard_quoted_them() {
        assert_eq!(
            shell_words("request --name 'it'\\''s' --reason \"...\" --x a\\ b").unwrap(),
            ["request", "--name", "it's", "--reason", "...", "--x", "a b"]
        );
        assert_eq!(shell_words("request --name 'open"), None);
    }
}

//! Audit records: one per decision and one per grant lifecycle step.
//!
//! Each record is a tracing event on target `jitguard::audit` (structured JSON on stdout
//! with `--log-format json`) and, with `--audit-file`, a JSON line appended by a writer
//! thread so that no request waits on the disk.

use std::io::Write;
use std::path::Path;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};
use serde::Serialize;

use crate::admission::RequestInfo;
use crate::decision::{Decision, GrantUse, Webhook};
use crate::grant::Grant;
use crate::metrics::Metrics;
use crate::policy::{Evaluation, RuleKind};

pub const TARGET: &str = "jitguard::audit";

#[derive(Serialize)]
struct FindingRecord<'a> {
    package: &'a str,
    rule: RuleKind,
    msg: &'a str,
}

/// The audit record of one admission decision.
#[derive(Serialize)]
pub struct DecisionRecord<'a> {
    pub time: String,
    pub event: &'static str,
    pub webhook: Webhook,
    pub request: &'a RequestInfo,
    pub decision: &'a str,
    pub allowed: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub message: &'a str,
    findings: Vec<FindingRecord<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub warnings: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub would_deny: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub errors: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<&'a GrantUse>,
    pub enforcement: &'static str,
    pub latency_us: u64,
}

impl<'a> DecisionRecord<'a> {
    pub fn new(
        webhook: Webhook,
        request: &'a RequestInfo,
        evaluation: &'a Evaluation,
        decision: &'a Decision,
        enforcement: &'static str,
        latency: std::time::Duration,
    ) -> Self {
        let findings = evaluation
            .packages
            .iter()
            .flat_map(|p| {
                p.findings.iter().map(|f| FindingRecord {
                    package: &p.package,
                    rule: f.rule,
                    msg: &f.msg,
                })
            })
            .collect();
        Self {
            time: jiff::Timestamp::now().to_string(),
            event: "admission",
            webhook,
            request,
            decision: decision.verdict.name(),
            allowed: decision.allowed,
            message: &decision.message,
            findings,
            warnings: &decision.warnings,
            would_deny: &decision.would_deny,
            errors: &decision.errors,
            grant: decision.grant.as_ref(),
            enforcement,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

#[derive(Serialize)]
struct GrantRecord<'a> {
    time: String,
    event: &'a str,
    grant: &'a str,
    requester: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    break_glass: bool,
}

/// Where audit records go. Cheap to clone; every clone feeds the same file.
#[derive(Clone, Debug)]
pub struct Audit {
    file: Option<Sender<String>>,
    uses: Option<tokio::sync::mpsc::Sender<GrantUsed>>,
    caller: Caller,
}

/// Who can have sent the reviews this server decides, as recorded in each admission
/// record (`caller`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Only a client with a certificate from `--client-ca`: the API server.
    ApiServer,
    /// Anyone who reaches the port (no `--client-ca`): a record may come from a forged
    /// review, and says so.
    Unverified,
}

impl Caller {
    pub const fn name(self) -> &'static str {
        match self {
            Self::ApiServer => "api-server",
            Self::Unverified => "unverified",
        }
    }
}

/// A record with who sent the review it is about.
#[derive(Serialize)]
struct FromCaller<'a, T: Serialize> {
    #[serde(flatten)]
    record: &'a T,
    caller: &'static str,
}

/// A grant allowed an admission: becomes a `Used` Event on its AccessRequest (in a
/// cluster), published off the request path.
#[derive(Clone, Debug)]
pub struct GrantUsed {
    pub grant: String,
    pub break_glass: bool,
    /// `alice: CONNECT pods/exec prod/web`.
    pub summary: String,
}

/// Owns the file writer thread: dropping it flushes what is queued and waits.
pub struct AuditWriter {
    thread: Option<JoinHandle<()>>,
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Audit {
    /// Records go to tracing only.
    pub fn disabled() -> Self {
        Self {
            file: None,
            uses: None,
            caller: Caller::Unverified,
        }
    }

    /// Who can call this server: the API server alone (`--client-ca`) or anyone.
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    /// Grant uses also go to `tx` (bounded: when it is full a use is dropped from the
    /// Events, never from the audit record, and never waited for).
    pub fn with_grant_uses(mut self, tx: tokio::sync::mpsc::Sender<GrantUsed>) -> Self {
        self.uses = Some(tx);
        self
    }

    /// Records also go to `path`, appended as JSON lines. The writer ends (after a final
    /// flush) once every `Audit` clone is dropped.
    pub fn with_file(path: &Path, metrics: Metrics) -> std::io::Result<(Self, AuditWriter)> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = unbounded::<String>();
        let thread = std::thread::Builder::new()
            .name("jitguard-audit".into())
            .spawn(move || write_lines(file, &rx, &metrics))?;
        Ok((
            Self {
                file: Some(tx),
                uses: None,
                caller: Caller::Unverified,
            },
            AuditWriter {
                thread: Some(thread),
            },
        ))
    }

    pub fn decision(&self, record: &DecisionRecord<'_>) {
        // Counted once per admission: on the validating webhook, which every guarded
        // request reaches last. Only for reviews the API server sent: an Event on an
        // AccessRequest reads as a fact to approvers, and without --client-ca anyone who
        // reaches the port could make one up (the audit record keeps the use, marked).
        if let (Some(tx), Some(grant), Webhook::Validate, false, Caller::ApiServer) = (
            &self.uses,
            record.grant,
            record.webhook,
            record.request.dry_run,
            self.caller,
        ) {
            let r = record.request;
            let target = if r.namespace.is_empty() {
                r.name.clone()
            } else {
                format!("{}/{}", r.namespace, r.name)
            };
            let _ = tx.try_send(GrantUsed {
                grant: grant.name.clone(),
                break_glass: grant.break_glass,
                summary: format!(
                    "{}: {} {} {target}",
                    r.user,
                    r.operation.as_str(),
                    r.resource_path()
                ),
            });
        }
        let findings = serde_json::to_string(&record.findings).unwrap_or_default();
        tracing::info!(
            target: TARGET,
            event = record.event,
            webhook = record.webhook.name(),
            uid = %record.request.uid,
            user = %record.request.user,
            groups = ?record.request.groups,
            operation = record.request.operation.as_str(),
            group = %record.request.group,
            version = %record.request.version,
            kind = %record.request.kind,
            resource = %record.request.resource_path(),
            namespace = %record.request.namespace,
            name = %record.request.name,
            dry_run = record.request.dry_run,
            decision = record.decision,
            reason = %record.message,
            findings = %findings,
            grant = record.grant.map(|g| g.name.as_str()).unwrap_or(""),
            enforcement = record.enforcement,
            latency_us = record.latency_us,
            caller = self.caller.name(),
            "admission decision"
        );
        self.write(&FromCaller {
            record,
            caller: self.caller.name(),
        });
    }

    /// A grant lifecycle step (`grant.live`, `grant.expired`, ...).
    pub fn grant_event(&self, event: &str, grant: &Grant, by: &str) {
        let record = GrantRecord {
            time: jiff::Timestamp::now().to_string(),
            event,
            grant: &grant.name,
            requester: &grant.requester,
            by,
            expires_at: Some(grant.expires_at.to_string()),
            break_glass: grant.break_glass,
        };
        self.emit_grant(&record);
    }

    /// A step of the approval workflow admitted by the webhook (`access.requested`,
    /// `access.approved`, `access.revoked`, ...), from a review: marked with who can have
    /// sent it.
    pub fn access_event(&self, event: &str, request: &str, by: &str) {
        self.access_record(event, request, by, "", Some(self.caller));
    }

    /// A workflow step with what happened in words (the controller's steps: auto-approved,
    /// lapsed, provisioned, expired, reaped, ...).
    pub fn access_step(&self, event: &str, request: &str, by: &str, detail: &str) {
        self.access_record(event, request, by, detail, None);
    }

    fn access_record(
        &self,
        event: &str,
        request: &str,
        by: &str,
        detail: &str,
        caller: Option<Caller>,
    ) {
        #[derive(Serialize)]
        struct AccessRecord<'a> {
            time: String,
            event: &'a str,
            request: &'a str,
            by: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            detail: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            caller: Option<&'static str>,
        }
        let caller = caller.map(Caller::name);
        let record = AccessRecord {
            time: jiff::Timestamp::now().to_string(),
            event,
            request,
            by,
            detail,
            caller,
        };
        let shown = caller.unwrap_or("");
        if event.contains("break_glass") {
            tracing::warn!(target: TARGET, event, request, by, detail, caller = shown, "BREAK-GLASS access workflow");
        } else {
            tracing::info!(target: TARGET, event, request, by, detail, caller = shown, "access workflow");
        }
        self.write(&record);
    }

    pub fn grant_event_named(&self, event: &str, name: &str, requester: &str, by: &str) {
        let record = GrantRecord {
            time: jiff::Timestamp::now().to_string(),
            event,
            grant: name,
            requester,
            by,
            expires_at: None,
            break_glass: false,
        };
        self.emit_grant(&record);
    }

    fn emit_grant(&self, record: &GrantRecord<'_>) {
        if record.break_glass {
            tracing::warn!(target: TARGET, event = record.event, grant = record.grant, requester = record.requester, by = record.by, break_glass = true, "BREAK-GLASS grant lifecycle");
        } else {
            tracing::info!(target: TARGET, event = record.event, grant = record.grant, requester = record.requester, by = record.by, "grant lifecycle");
        }
        self.write(record);
    }

    fn write(&self, record: &impl Serialize) {
        if let Some(tx) = &self.file {
            if let Ok(line) = serde_json::to_string(record) {
                // Unbounded on purpose: appending a line is far faster than deciding one,
                // and an audit record must not be dropped.
                let _ = tx.send(line);
            }
        }
    }
}

fn write_lines(file: std::fs::File, rx: &Receiver<String>, metrics: &Metrics) {
    let mut out = std::io::BufWriter::new(file);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{line}").is_ok();
        // Drain what is already queued, then flush once: one write per burst.
        while let Ok(line) = rx.try_recv() {
            ok &= writeln!(out, "{line}").is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            metrics.audit_errors.inc();
            tracing::error!("cannot write to the audit file");
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::decision::Verdict;

    fn allowed_by_grant() -> Decision {
        Decision {
            allowed: true,
            verdict: Verdict::Allow,
            message: String::new(),
            warnings: vec![],
            patch: vec![],
            grant: Some(GrantUse {
                name: "alice-exec".into(),
                expires_at: "2026-12-01T18:00:00Z".into(),
                break_glass: false,
            }),
            would_deny: vec![],
            errors: vec![],
            request_access: None,
        }
    }

    #[test]
    fn grant_uses_become_events_only_for_reviews_the_api_server_sent() {
        let input = crate::admission::parse(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u1","kind":{"group":"","version":"v1","kind":"PodExecOptions"},
            "resource":{"group":"","version":"v1","resource":"pods"},"subResource":"exec",
            "name":"web","namespace":"prod","operation":"CONNECT",
            "userInfo":{"username":"alice","groups":[]}}}"#,
        )
        .unwrap();
        let decision = allowed_by_grant();
        let evaluation = Evaluation::default();
        let record = DecisionRecord::new(
            Webhook::Validate,
            &input.request,
            &evaluation,
            &decision,
            "deny",
            std::time::Duration::ZERO,
        );
        for (caller, published) in [(Caller::Unverified, false), (Caller::ApiServer, true)] {
            let (tx, mut rx) = tokio::sync::mpsc::channel(4);
            let audit = Audit::disabled().with_grant_uses(tx).with_caller(caller);
            audit.decision(&record);
            assert_eq!(rx.try_recv().is_ok(), published, "{caller:?}");
        }
    }
}

//! Audit records: one per decision and one per grant lifecycle step.
//!
//! Each record is serialized once and goes, in that one shape, to the log (target
//! `jitguard::audit`: the record itself with `--log-format json`, a readable summary in
//! text logs) and, with `--audit-file`, to a JSON line appended by a writer thread so
//! that no request waits on the disk.

use std::io::Write;
use std::path::Path;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};
use serde::Serialize;
use tracing::Level;

use crate::decision::Options;
use crate::decision::{Decision, Webhook};
use crate::grant::Grant;
use crate::grant::GrantUse;
use crate::metrics::Metrics;
use crate::policy::{Enforcement, Evaluation, RuleKind};
use crate::request::RequestInfo;

pub const TARGET: &str = "jitguard::audit";

#[derive(Serialize)]
struct FindingRecord<'a> {
    package: &'a str,
    rule: RuleKind,
    msg: &'a str,
    /// How this finding counted: its package's mode, or the server-wide override.
    enforcement: Enforcement,
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
    /// What the requester was told (the AdmissionResponse's status message).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'a str,
    findings: Vec<FindingRecord<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub warnings: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub would_deny: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub errors: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<&'a GrantUse>,
    /// `--enforcement`, when the server runs every package in that mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement_override: Option<Enforcement>,
    pub latency_us: u64,
}

impl<'a> DecisionRecord<'a> {
    pub fn new(
        webhook: Webhook,
        request: &'a RequestInfo,
        evaluation: &'a Evaluation,
        decision: &'a Decision,
        options: Options,
        latency: std::time::Duration,
    ) -> Self {
        let findings = evaluation
            .packages
            .iter()
            .flat_map(|p| {
                let enforcement = crate::decision::mode(p, options);
                p.findings.iter().map(move |f| FindingRecord {
                    package: &p.package,
                    rule: f.rule,
                    msg: &f.msg,
                    enforcement,
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
            reason: &decision.message,
            findings,
            warnings: &decision.warnings,
            would_deny: &decision.would_deny,
            errors: &decision.errors,
            grant: decision.grant.as_ref(),
            enforcement_override: options.enforcement,
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
    /// The log is JSON (`--log-format json`): records go there in their own shape.
    json_log: bool,
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
            json_log: false,
        }
    }

    /// The log is JSON lines on stdout: each record is written there as the same object
    /// the audit file gets (plus the log's `timestamp`, `level`, `target` and `message`),
    /// not flattened into tracing fields, where lists would become strings.
    pub fn with_json_log(mut self, json: bool) -> Self {
        self.json_log = json;
        self
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
                json_log: false,
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
        let r = record.request;
        self.emit(
            Level::INFO,
            "admission decision",
            &FromCaller {
                record,
                caller: self.caller.name(),
            },
            || {
                let target = if r.namespace.is_empty() {
                    r.name.clone()
                } else {
                    format!("{}/{}", r.namespace, r.name)
                };
                let mut text = format!(
                    "{} {}: {} {} {target}",
                    record.decision,
                    r.user,
                    r.operation.as_str(),
                    r.resource_path()
                );
                if r.dry_run {
                    text.push_str(" (dry run)");
                }
                if !record.reason.is_empty() {
                    text.push_str(&format!(": {}", crate::text::one_line(record.reason)));
                }
                for (label, list) in [
                    ("warning", record.warnings),
                    ("would deny", record.would_deny),
                    ("error", record.errors),
                ] {
                    for item in list {
                        text.push_str(&format!(" | {label}: {}", crate::text::one_line(item)));
                    }
                }
                if let Some(g) = record.grant {
                    text.push_str(&format!(" | grant {}", g.name));
                }
                text.push_str(&format!(
                    " | {} us, caller {}",
                    record.latency_us,
                    self.caller.name()
                ));
                text
            },
        );
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
        let (level, message) = if event.contains("break_glass") {
            (Level::WARN, "BREAK-GLASS access workflow")
        } else {
            (Level::INFO, "access workflow")
        };
        self.emit(level, message, &record, || {
            let mut text = format!("{event} {request} by {by}");
            if !detail.is_empty() {
                text.push_str(": ");
                text.push_str(detail);
            }
            if let Some(caller) = caller {
                text.push_str(" | caller ");
                text.push_str(caller);
            }
            text
        });
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
        let (level, message) = if record.break_glass {
            (Level::WARN, "BREAK-GLASS grant lifecycle")
        } else {
            (Level::INFO, "grant lifecycle")
        };
        self.emit(level, message, record, || {
            let mut text = format!("{} {} of {}", record.event, record.grant, record.requester);
            if !record.by.is_empty() {
                text.push_str(" by ");
                text.push_str(record.by);
            }
            if let Some(at) = &record.expires_at {
                text.push_str(" | expires ");
                text.push_str(at);
            }
            text
        });
    }

    /// Serializes a record once and sends that one shape everywhere: the audit file, and
    /// the JSON log; a text log gets `text()` (built only when the log wants it).
    fn emit(
        &self,
        level: Level,
        message: &str,
        record: &impl Serialize,
        text: impl FnOnce() -> String,
    ) {
        let enabled = match level {
            Level::WARN => tracing::enabled!(target: TARGET, Level::WARN),
            _ => tracing::enabled!(target: TARGET, Level::INFO),
        };
        if self.file.is_none() && !enabled {
            return;
        }
        let Ok(line) = serde_json::to_string(record) else {
            return;
        };
        if enabled {
            if self.json_log {
                log_json_line(level, message, &line);
            } else if level == Level::WARN {
                tracing::warn!(target: TARGET, "{message}: {}", text());
            } else {
                tracing::info!(target: TARGET, "{message}: {}", text());
            }
        }
        if let Some(tx) = &self.file {
            // Unbounded on purpose: appending a line is far faster than deciding one,
            // and an audit record must not be dropped.
            let _ = tx.send(line);
        }
    }
}

/// One JSON log line, as tracing-subscriber's flattened JSON lines look (`timestamp`,
/// `level`, `target`, `message`), followed by the record's own fields.
fn log_json_line(level: Level, message: &str, record: &str) {
    use std::io::Write as _;
    let Some(fields) = record.strip_prefix('{') else {
        return;
    };
    let head = serde_json::json!({
        "timestamp": jiff::Timestamp::now().to_string(),
        "level": level.as_str(),
        "target": TARGET,
        "message": message,
    })
    .to_string();
    let Some(head) = head.strip_suffix('}') else {
        return;
    };
    let separator = if fields.starts_with('}') { "" } else { "," };
    // One write under stdout's lock: the line cannot interleave with tracing's lines.
    let line = format!("{head}{separator}{fields}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
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
            Options::default(),
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

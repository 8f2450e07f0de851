//! Notifications: the approvers hear of a request when it is made, and the people
//! concerned when it is approved, denied, made live by break-glass, about to end, ended or
//! revoked.
//!
//! The controller's Lease holder sends them, never the admission path. Each event goes out
//! once, across restarts and failovers: what is due is derived from the request's state
//! (not from what one process remembers), and before sending, the leader records the event
//! in the request's [`NOTIFIED_ANNOTATION`] with a write that carries the resourceVersion
//! it read. Of two replicas that both believe they lead, only one write succeeds; a new
//! leader sends what its predecessor had not recorded.
//!
//! This module is the pure part: which events are due, and what a notice says. Sinks,
//! their payloads and delivery are in [`payload`] and [`deliver`].

pub mod deliver;
pub mod payload;

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde::Serialize;

use crate::access::POLICY_APPROVER;
use crate::grant::resource::ApprovalDecision;
use crate::grant::{AccessRequest, Phase};

pub use crate::access::admit::NOTIFIED_ANNOTATION;

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Requested,
    Approved,
    Denied,
    BreakGlass,
    Expiring,
    Expired,
    Revoked,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Requested,
        Kind::Approved,
        Kind::Denied,
        Kind::BreakGlass,
        Kind::Expiring,
        Kind::Expired,
        Kind::Revoked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Requested => "requested",
            Kind::Approved => "approved",
            Kind::Denied => "denied",
            Kind::BreakGlass => "break-glass",
            Kind::Expiring => "expiring",
            Kind::Expired => "expired",
            Kind::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// When notifications are due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Send `expiring` this long before a grant ends (`None`: never). Not for grants
    /// shorter than this: their approval already says when they end.
    pub expiring_before: Option<SignedDuration>,
    /// An event older than this is not sent: a controller that was down for a day, or
    /// notifications switched on in a cluster with history, must not flood the approvers
    /// with old news.
    pub max_age: SignedDuration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            expiring_before: Some(SignedDuration::from_mins(10)),
            max_age: SignedDuration::from_hours(1),
        }
    }
}

/// The events recorded as sent for this request.
pub fn claimed(ar: &AccessRequest) -> BTreeSet<Kind> {
    ar.annotations()
        .get(NOTIFIED_ANNOTATION)
        .map(|v| v.split(',').filter_map(|k| Kind::parse(k.trim())).collect())
        .unwrap_or_default()
}

/// The annotation's value once `kinds` are claimed too.
pub fn claim(ar: &AccessRequest, kinds: &[Kind]) -> String {
    let mut all = claimed(ar);
    all.extend(kinds.iter().copied());
    all.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
}

/// The events that happened to `ar` by `now`, are not claimed yet, and are recent enough
/// to be news.
pub fn due(ar: &AccessRequest, now: Timestamp, timing: &Timing) -> Vec<Kind> {
    let claimed = claimed(ar);
    happened(ar, now, timing)
        .into_iter()
        .filter(|(kind, at)| !claimed.contains(kind) && now.duration_since(*at) <= timing.max_age)
        .map(|(kind, _)| kind)
        .collect()
}

/// When `expiring` falls due, if it is still to come: the controller wakes up for it.
pub fn next_due(ar: &AccessRequest, now: Timestamp, timing: &Timing) -> Option<Timestamp> {
    let at = expiring_at(ar, timing)?;
    (at > now && !claimed(ar).contains(&Kind::Expiring)).then_some(at)
}

fn expiring_at(ar: &AccessRequest, timing: &Timing) -> Option<Timestamp> {
    let status = ar.status.as_ref()?;
    let before = timing.expiring_before?;
    let (start, end) = (
        status.approved_at.as_ref()?.0,
        status.expires_at.as_ref()?.0,
    );
    (status.phase == Phase::Approved && end.duration_since(start) > before)
        .then(|| end.checked_sub(before).ok())
        .flatten()
}

/// Every event the request's state says happened, with when.
fn happened(ar: &AccessRequest, now: Timestamp, timing: &Timing) -> Vec<(Kind, Timestamp)> {
    let status = ar.status.clone().unwrap_or_default();
    let created = ar.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut events = Vec::new();
    match status.phase {
        // Break-glass is live at once: its reviewers hear of it when it is.
        Phase::Pending if !ar.spec.break_glass => events.push((Kind::Requested, created)),
        Phase::Pending => {}
        Phase::Approved => {
            let at = status.approved_at.as_ref().map_or(now, |t| t.0);
            let kind = if ar.spec.break_glass {
                Kind::BreakGlass
            } else {
                Kind::Approved
            };
            events.push((kind, at.min(now)));
            let end = status.expires_at.as_ref().map(|t| t.0);
            if let Some(at) = expiring_at(ar, timing) {
                if at <= now && end.is_some_and(|end| now < end) {
                    events.push((Kind::Expiring, at));
                }
            }
        }
        Phase::Denied => {
            let at = status
                .approvals
                .iter()
                .filter(|a| a.decision == ApprovalDecision::Deny)
                .map(|a| a.at.0)
                .max()
                .unwrap_or(now);
            events.push((Kind::Denied, at));
        }
        Phase::Expired => {
            // A grant ends at its expiry; a pending request when it lapsed.
            let at = status.expires_at.as_ref().map(|t| t.0).or_else(|| {
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == crate::access::plan::LAPSED)
                    .map(|c| c.last_transition_time.0)
            });
            events.push((Kind::Expired, at.unwrap_or(now).min(now)));
        }
        Phase::Revoked => {
            let at = status.revoked_at.as_ref().map_or(now, |t| t.0);
            events.push((Kind::Revoked, at));
        }
    }
    events
}

/// What one notification says, whichever sink carries it. Its `id` is the same for the
/// same event whichever replica sends it, so a receiver can tell a retry from news.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub id: String,
    pub event: Kind,
    /// One line for people: what happened, to what.
    pub summary: String,
    pub request: String,
    pub requester: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    pub scope: Vec<String>,
    pub duration: String,
    pub break_glass: bool,
    pub phase: String,
    /// What approval needs, as the webhook stamped it at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<String>,
    /// Who decided or revoked, with their comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The commands to act on it (`kubectl jit approve NAME`, ...).
    pub commands: Vec<String>,
    /// The request's page, where one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    pub time: Timestamp,
}

impl Notice {
    /// The notice of `kind` for `ar`. `page`: the base URL of the request pages.
    pub fn new(ar: &AccessRequest, kind: Kind, page: Option<&str>, now: Timestamp) -> Self {
        let status = ar.status.clone().unwrap_or_default();
        let spec = &ar.spec;
        let name = ar.name_any();
        let expires_at = status.expires_at.as_ref().map(|t| t.0);
        let last = |decision: ApprovalDecision| {
            status
                .approvals
                .iter()
                .rev()
                .find(|a| a.decision == decision)
        };
        let (by, comment) = match kind {
            Kind::Approved => {
                let a = last(ApprovalDecision::Approve);
                (
                    a.map(|a| a.approver.clone()),
                    a.and_then(|a| a.comment.clone()),
                )
            }
            Kind::Denied => {
                let a = last(ApprovalDecision::Deny);
                (
                    a.map(|a| a.approver.clone()),
                    a.and_then(|a| a.comment.clone()),
                )
            }
            Kind::Revoked => (status.revoked_by.clone(), None),
            _ => (None, None),
        };
        let until = expires_at.map(|t| t.to_string()).unwrap_or_default();
        let who = &spec.requester;
        let summary = match kind {
            Kind::Requested => crate::access::asks_text(ar),
            Kind::Approved => match &by {
                Some(p) if p.starts_with(POLICY_APPROVER) => {
                    format!("{who}'s request was approved by {p}; live until {until}")
                }
                _ => format!("{who}'s request was approved; live until {until}"),
            },
            Kind::Denied => format!(
                "{who}'s request was denied by {}",
                by.as_deref().unwrap_or("an approver")
            ),
            Kind::BreakGlass => format!(
                "BREAK-GLASS: {who} has emergency access until {until}, without approval: {}",
                spec.reason
            ),
            Kind::Expiring => format!("{who}'s grant ends at {until}"),
            Kind::Expired if status.approved_at.is_some() => format!("{who}'s grant has ended"),
            Kind::Expired => format!("{who}'s request lapsed without approval"),
            Kind::Revoked => format!(
                "{who}'s grant was revoked by {}",
                by.as_deref().unwrap_or("someone")
            ),
        };
        let commands = match kind {
            Kind::Requested => vec![
                format!("kubectl jit approve {name}"),
                format!("kubectl jit deny {name} --comment REASON"),
            ],
            Kind::Approved | Kind::Expiring => vec![
                format!("kubectl jit extend {name} --duration DURATION --reason REASON"),
                format!("kubectl jit revoke {name}"),
            ],
            Kind::BreakGlass => vec![
                format!("kubectl jit show {name}"),
                format!("kubectl jit revoke {name}"),
            ],
            Kind::Denied | Kind::Expired | Kind::Revoked => {
                vec![format!("kubectl jit show {name}")]
            }
        };
        let uid = ar.metadata.uid.clone().unwrap_or_else(|| name.clone());
        Notice {
            id: format!("{uid}/{}", kind.as_str()),
            event: kind,
            summary,
            request: name.clone(),
            requester: spec.requester.clone(),
            group: spec.group.clone(),
            reason: spec.reason.clone(),
            ticket: spec.ticket.clone(),
            scope: spec.scope.iter().map(|r| r.summary()).collect(),
            duration: spec.duration.clone(),
            break_glass: spec.break_glass,
            phase: status.phase.as_str().to_string(),
            needs: crate::access::needs_text(ar),
            by,
            comment,
            expires_at,
            commands,
            page: page.map(|base| format!("{}/requests/{name}", base.trim_end_matches('/'))),
            time: now,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::grant::resource::Approval;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn request(phase: Phase) -> AccessRequest {
        let mut ar: AccessRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": {"name": "fix-db", "uid": "u-1", "creationTimestamp": "2026-12-01T10:00:00Z",
                         "annotations": {crate::access::admit::REQUIREMENTS_ANNOTATION:
                            "[{\"name\":\"lead\",\"groups\":[\"leads\"],\"count\":1}]"}},
            "spec": {"requester": "alice", "reason": "INC-1 disk full", "duration": "30m",
                     "scope": [{"operations": ["UPDATE"], "apiGroups": ["apps"],
                                "resources": ["deployments"], "namespaces": ["prod"]}]}
        }))
        .unwrap();
        let mut status = crate::grant::AccessRequestStatus {
            phase,
            ..Default::default()
        };
        if phase == Phase::Approved || phase == Phase::Expired || phase == Phase::Revoked {
            status.approved_at = Some(Time(at("2026-12-01T10:05:00Z")));
            status.expires_at = Some(Time(at("2026-12-01T10:35:00Z")));
        }
        ar.status = Some(status);
        ar
    }

    #[test]
    fn each_phase_makes_its_event_due_once_and_old_news_is_not_sent() {
        let timing = Timing::default();
        let pending = request(Phase::Pending);
        assert_eq!(
            due(&pending, at("2026-12-01T10:00:01Z"), &timing),
            [Kind::Requested]
        );
        // Claimed: not due again, whoever leads.
        let mut claimed_one = pending.clone();
        claimed_one.annotations_mut().insert(
            NOTIFIED_ANNOTATION.into(),
            claim(&pending, &[Kind::Requested]),
        );
        assert!(due(&claimed_one, at("2026-12-01T10:00:02Z"), &timing).is_empty());
        // An hour and more later it is history, not news.
        assert!(due(&pending, at("2026-12-01T11:00:01Z"), &timing).is_empty());

        let approved = request(Phase::Approved);
        assert_eq!(
            due(&approved, at("2026-12-01T10:05:01Z"), &timing),
            [Kind::Approved]
        );
        // Ten minutes before the end, expiring is due too; the controller wakes for it.
        assert_eq!(
            next_due(&approved, at("2026-12-01T10:05:01Z"), &timing),
            Some(at("2026-12-01T10:25:00Z"))
        );
        assert_eq!(
            due(&approved, at("2026-12-01T10:25:00Z"), &timing),
            [Kind::Approved, Kind::Expiring]
        );
        let off = Timing {
            expiring_before: None,
            ..timing
        };
        assert_eq!(next_due(&approved, at("2026-12-01T10:05:01Z"), &off), None);
        // A grant shorter than the warning gets none: its approval says when it ends.
        let short = Timing {
            expiring_before: Some(SignedDuration::from_hours(1)),
            ..timing
        };
        assert_eq!(
            due(&approved, at("2026-12-01T10:30:00Z"), &short),
            [Kind::Approved]
        );

        let mut glass = request(Phase::Approved);
        glass.spec.break_glass = true;
        assert_eq!(
            due(&glass, at("2026-12-01T10:05:01Z"), &timing),
            [Kind::BreakGlass]
        );
        glass.status.as_mut().unwrap().phase = Phase::Pending;
        assert!(
            due(&glass, at("2026-12-01T10:00:01Z"), &timing).is_empty(),
            "break-glass is announced when live, not as a request"
        );

        for (phase, kind) in [
            (Phase::Expired, Kind::Expired),
            (Phase::Revoked, Kind::Revoked),
        ] {
            let mut ended = request(phase);
            ended.status.as_mut().unwrap().revoked_at = Some(Time(at("2026-12-01T10:20:00Z")));
            assert_eq!(due(&ended, at("2026-12-01T10:40:00Z"), &timing), [kind]);
        }
    }

    #[test]
    fn a_notice_says_who_asks_what_approval_needs_and_how_to_act() {
        let pending = request(Phase::Pending);
        let now = at("2026-12-01T10:00:01Z");
        let notice = Notice::new(
            &pending,
            Kind::Requested,
            Some("http://127.0.0.1:8765/"),
            now,
        );
        assert_eq!(notice.id, "u-1/requested");
        assert_eq!(
            notice.summary,
            "alice asks for 30m of access: INC-1 disk full"
        );
        assert_eq!(notice.needs.as_deref(), Some("1 of lead (leads)"));
        assert_eq!(notice.scope, ["UPDATE deployments (apps) in prod"]);
        assert_eq!(notice.commands[0], "kubectl jit approve fix-db");
        assert_eq!(
            notice.page.as_deref(),
            Some("http://127.0.0.1:8765/requests/fix-db")
        );

        let mut denied = request(Phase::Denied);
        denied.status.as_mut().unwrap().approvals.push(Approval {
            approver: "bob".into(),
            approver_groups: vec![],
            decision: ApprovalDecision::Deny,
            at: Time(now),
            comment: Some("use the runbook".into()),
            uid: "u-1".into(),
            generation: 1,
        });
        let notice = Notice::new(&denied, Kind::Denied, None, now);
        assert_eq!(notice.summary, "alice's request was denied by bob");
        assert_eq!(notice.comment.as_deref(), Some("use the runbook"));
        assert_eq!(notice.page, None);
    }

    #[test]
    fn the_annotation_keeps_every_claim_and_ignores_what_it_does_not_know() {
        let mut ar = request(Phase::Approved);
        ar.annotations_mut()
            .insert(NOTIFIED_ANNOTATION.into(), "requested, bogus".into());
        assert_eq!(claimed(&ar), [Kind::Requested].into());
        assert_eq!(
            claim(&ar, &[Kind::Expiring, Kind::Approved]),
            "requested,approved,expiring"
        );
    }
}

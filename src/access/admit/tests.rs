#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use super::*;
use crate::access::fixture::{approval, req};
use std::time::Duration;

fn request(requester: &str, phase: Phase, approvals: Vec<Approval>) -> AccessRequest {
    let mut ar = crate::access::fixture::request("r1", requester, &["developers"], "prod", phase);
    if let Some(status) = ar.status.as_mut() {
        status.approvals = approvals;
    }
    ar
}

fn policy() -> AccessPolicy {
    AccessPolicy {
        requirements: vec![
            req("lead", &["leads"], 1),
            req("security", &["security"], 1),
        ],
        admin_groups: vec!["admins".into()],
        break_glass_groups: vec!["oncall".into()],
        break_glass_max: Some(Duration::from_secs(3600)),
        ..AccessPolicy::default()
    }
}

const NOW: &str = "2030-01-01T10:00:30Z";

fn change<'a>(
    caller: Caller<'a>,
    object: &'a AccessRequest,
    old: &'a AccessRequest,
    policy: &'a AccessPolicy,
) -> Change<'a> {
    Change {
        caller,
        operation: Operation::Update,
        sub_resource: "status",
        object,
        old: Some(old),
        policy,
        now: NOW.parse().unwrap(),
        controller: "system:serviceaccount:jitguard:jitguard",
        extended_end: None,
    }
}

/// Runs mutate then validate, as the API server does; returns the stored status.
fn decide(
    caller: Caller<'_>,
    mut object: AccessRequest,
    old: &AccessRequest,
    policy: &AccessPolicy,
) -> Result<AccessRequestStatus, Vec<String>> {
    let m = admit(&change(caller, &object, old, policy), true);
    if !m.denials.is_empty() {
        return Err(m.denials);
    }
    let mut json = serde_json::to_value(&object).unwrap();
    json_patch::patch(&mut json, &m.patch).unwrap();
    object = serde_json::from_value(json).unwrap();
    let v = admit(&change(caller, &object, old, policy), false);
    if v.denials.is_empty() {
        Ok(object.status.unwrap())
    } else {
        Err(v.denials)
    }
}

fn caller<'a>(user: &'a str, groups: &'a [String]) -> Caller<'a> {
    Caller { user, groups }
}

fn groups(g: &[&str]) -> Vec<String> {
    g.iter().map(|s| s.to_string()).collect()
}

fn with_entry(old: &AccessRequest, who: &str) -> AccessRequest {
    let mut next = old.clone();
    let mut entry = approval(who, &[]);
    entry.uid = String::new();
    next.status.as_mut().unwrap().approvals.push(entry);
    next
}

#[test]
fn approvals_are_stamped_and_the_last_one_needed_approves() {
    let p = policy();
    let old = request("alice", Phase::Pending, vec![]);
    let bob_groups = groups(&["leads"]);
    let bob = caller("bob", &bob_groups);
    let after_bob = decide(bob, with_entry(&old, "ignored-name"), &old, &p).unwrap();
    assert_eq!(after_bob.phase, Phase::Pending);
    assert_eq!(after_bob.approvals[0].approver, "bob");
    assert_eq!(after_bob.approvals[0].uid, "uid-1");
    let mut old2 = old.clone();
    old2.status = Some(after_bob);
    let carol_groups = groups(&["security"]);
    let carol = caller("carol", &carol_groups);
    let done = decide(carol, with_entry(&old2, "carol"), &old2, &p).unwrap();
    assert_eq!(done.phase, Phase::Approved);
    assert_eq!(
        done.approved_at.unwrap().0.to_string(),
        "2030-01-01T10:00:30Z"
    );
    assert_eq!(
        done.expires_at.unwrap().0.to_string(),
        "2030-01-01T10:30:30Z"
    );
}

#[test]
fn the_attacks_are_refused() {
    let p = policy();
    let old = request("alice", Phase::Pending, vec![]);
    let leads = groups(&["leads"]);
    let alice_leads = groups(&["leads", "developers"]);
    // Self-approval, even from an approver group.
    let alice = caller("alice", &alice_leads);
    let err = decide(alice, with_entry(&old, "alice"), &old, &p).unwrap_err();
    assert!(
        err.iter().any(|e| e.contains("your own request")),
        "{err:?}"
    );
    // Outside the approver groups.
    let dev = groups(&["developers"]);
    let mallory = caller("mallory", &dev);
    let err = decide(mallory, with_entry(&old, "mallory"), &old, &p).unwrap_err();
    assert!(err.iter().any(|e| e.contains("not an approver")), "{err:?}");
    // A forged approver name without the mutating webhook.
    let bob = caller("bob", &leads);
    let forged = with_entry(&old, "carol");
    let v = admit(&change(bob, &forged, &old, &p), false);
    assert!(
        v.denials.iter().any(|e| e.contains("you are \"bob\"")),
        "{:?}",
        v.denials
    );
    // Setting the phase by hand.
    let mut by_hand = old.clone();
    by_hand.status.as_mut().unwrap().phase = Phase::Approved;
    let err = decide(bob, by_hand, &old, &p).unwrap_err();
    assert!(
        err.iter().any(|e| e.contains("only jitguard sets")),
        "{err:?}"
    );
    // Rewriting history.
    let old_with = request("alice", Phase::Pending, vec![approval("bob", &["leads"])]);
    let mut rewritten = old_with.clone();
    rewritten.status.as_mut().unwrap().approvals[0].approver = "carol".into();
    let err = decide(bob, rewritten, &old_with, &p).unwrap_err();
    assert!(err.iter().any(|e| e.contains("append-only")), "{err:?}");
    // Deciding twice.
    let err = decide(bob, with_entry(&old_with, "bob"), &old_with, &p).unwrap_err();
    assert!(
        err.iter().any(|e| e.contains("already recorded")),
        "{err:?}"
    );
}

#[test]
fn a_replayed_approval_from_another_generation_does_not_count() {
    let p = AccessPolicy {
        requirements: vec![req("lead", &["leads"], 1), req("sec", &["security"], 1)],
        ..policy()
    };
    let mut stale = approval("bob", &["leads"]);
    stale.generation = 1;
    let mut old = request("alice", Phase::Pending, vec![stale]);
    old.metadata.generation = Some(2);
    let mut object = with_entry(&old, "carol");
    object.metadata.generation = Some(2);
    let sec = groups(&["security"]);
    let carol = caller("carol", &sec);
    let status = decide(carol, object, &old, &p).unwrap();
    assert_eq!(
        status.phase,
        Phase::Pending,
        "bob's approval was for generation 1"
    );
}

#[test]
fn a_deny_decision_denies() {
    let p = policy();
    let old = request("alice", Phase::Pending, vec![]);
    let mut object = with_entry(&old, "bob");
    object.status.as_mut().unwrap().approvals[0].decision = ApprovalDecision::Deny;
    let leads = groups(&["leads"]);
    let status = decide(caller("bob", &leads), object, &old, &p).unwrap();
    assert_eq!(status.phase, Phase::Denied);
}

#[test]
fn revocation_by_requester_approver_or_admin_only() {
    let p = policy();
    let old = request("alice", Phase::Approved, vec![]);
    let mut revoke = old.clone();
    revoke.status.as_mut().unwrap().phase = Phase::Revoked;
    let dev = groups(&["developers"]);
    let admins = groups(&["admins"]);
    assert!(decide(caller("mallory", &dev), revoke.clone(), &old, &p).is_err());
    let by_requester = decide(caller("alice", &dev), revoke.clone(), &old, &p).unwrap();
    assert_eq!(by_requester.revoked_by.as_deref(), Some("alice"));
    assert!(decide(caller("root", &admins), revoke, &old, &p).is_ok());
}

#[test]
fn only_jitguard_sets_expired() {
    let p = policy();
    let old = request("alice", Phase::Approved, vec![]);
    let mut expired = old.clone();
    expired.status.as_mut().unwrap().phase = Phase::Expired;
    let dev = groups(&["developers"]);
    assert!(decide(caller("alice", &dev), expired.clone(), &old, &p).is_err());
    let sa = "system:serviceaccount:jitguard:jitguard";
    assert!(admit(&change(caller(sa, &dev), &expired, &old, &p), false)
        .denials
        .is_empty());
}

fn create_change<'a>(
    caller: Caller<'a>,
    object: &'a AccessRequest,
    policy: &'a AccessPolicy,
) -> Change<'a> {
    Change {
        caller,
        operation: Operation::Create,
        sub_resource: "",
        object,
        old: None,
        policy,
        now: NOW.parse().unwrap(),
        controller: "system:serviceaccount:jitguard:jitguard",
        extended_end: None,
    }
}

#[test]
fn creation_stamps_the_requester_and_checks_break_glass() {
    let p = policy();
    let mut forged = request("carol", Phase::Pending, vec![]);
    forged.status = None;
    let dev = groups(&["developers"]);
    let alice = caller("alice", &dev);
    let m = admit(&create_change(alice, &forged, &p), true);
    assert!(m.denials.is_empty(), "{:?}", m.denials);
    assert_eq!(m.patch.len(), 3);
    // What approval needs, stamped for people to read.
    let mut stamped = serde_json::to_value(&forged).unwrap();
    json_patch::patch(&mut stamped, &m.patch).unwrap();
    let needs: Vec<crate::policy::Requirement> = serde_json::from_str(
        stamped["metadata"]["annotations"][REQUIREMENTS_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(needs, p.requirements);
    let stamped: AccessRequest = serde_json::from_value(stamped).unwrap();
    assert!(admit(&create_change(alice, &stamped, &p), false)
        .denials
        .is_empty());
    // Without the stamps (the mutating webhook skipped), the validating one refuses.
    let v = admit(&create_change(alice, &forged, &p), false);
    assert!(
        v.denials.iter().any(|d| d.contains("spec.requester")),
        "{:?}",
        v.denials
    );
    assert!(
        v.denials
            .iter()
            .any(|d| d.contains(REQUIREMENTS_ANNOTATION)),
        "{:?}",
        v.denials
    );
    // Nor may anyone but jitguard change it afterwards.
    let mut edited = stamped.clone();
    edited
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(REQUIREMENTS_ANNOTATION.into(), "[]".into());
    let mut update = create_change(alice, &edited, &p);
    update.operation = Operation::Update;
    update.old = Some(&stamped);
    assert!(
        admit(&update, false)
            .denials
            .iter()
            .any(|d| d.contains("cannot change after creation")),
        "an edited requirement annotation is refused"
    );
    // Break-glass by a user outside the group.
    let mut glass = request("alice", Phase::Pending, vec![]);
    glass.spec.requester_groups = dev.clone();
    glass.spec.break_glass = true;
    glass.metadata.annotations = stamped.metadata.annotations.clone();
    let v = admit(&create_change(alice, &glass, &p), false);
    assert!(
        v.denials
            .iter()
            .any(|d| d.contains("break-glass is reserved")),
        "{:?}",
        v.denials
    );
    let oncall = groups(&["oncall"]);
    glass.spec.requester_groups = oncall.clone();
    let ok = admit(&create_change(caller("alice", &oncall), &glass, &p), false);
    assert!(ok.denials.is_empty(), "{:?}", ok.denials);
    glass.spec.duration = "2h".into();
    let long = admit(&create_change(caller("alice", &oncall), &glass, &p), false);
    assert!(
        long.denials.iter().any(|d| d.contains("at most 1h")),
        "{:?}",
        long.denials
    );
    // For the whole on-call group: refused, even to a member.
    glass.spec.duration = "30m".into();
    glass.spec.group = Some("oncall".into());
    let group = admit(&create_change(caller("alice", &oncall), &glass, &p), false);
    assert!(
        group
            .denials
            .iter()
            .any(|d| d.contains("break-glass is for the requester alone")),
        "{:?}",
        group.denials
    );
}

#[test]
fn the_spec_is_immutable_after_creation() {
    let p = policy();
    let old = request("alice", Phase::Approved, vec![]);
    let mut wider = old.clone();
    wider.spec.scope[0].namespaces = vec!["*".into()];
    wider.spec.duration = "8h".into();
    let dev = groups(&["developers"]);
    let mut c = change(caller("alice", &dev), &wider, &old, &p);
    c.sub_resource = "";
    let v = admit(&c, false);
    assert!(
        v.denials[0].contains("spec.scope, spec.duration cannot change"),
        "{:?}",
        v.denials
    );
}

#[test]
fn an_update_without_the_stored_object_is_refused() {
    let p = policy();
    let old = request("alice", Phase::Pending, vec![]);
    let mut approved = old.clone();
    approved.status.get_or_insert_with(Default::default).phase = Phase::Approved;
    let dev = groups(&["developers"]);
    for sub in ["status", ""] {
        let mut c = change(caller("alice", &dev), &approved, &old, &p);
        c.sub_resource = sub;
        c.old = None;
        let v = admit(&c, false);
        assert!(
            v.denials
                .iter()
                .any(|d| d.contains("without request.oldObject")),
            "{sub:?}: {:?}",
            v.denials
        );
    }
}

#[test]
fn only_jitguard_records_which_notifications_were_sent() {
    let p = policy();
    let dev = groups(&["developers"]);
    let alice = caller("alice", &dev);
    let mut fresh = request("alice", Phase::Pending, vec![]);
    fresh.status = None;
    fresh.spec.requester_groups = dev.clone();
    let m = admit(&create_change(alice, &fresh, &p), true);
    let mut stamped = serde_json::to_value(&fresh).unwrap();
    json_patch::patch(&mut stamped, &m.patch).unwrap();
    let stamped: AccessRequest = serde_json::from_value(stamped).unwrap();
    let note = |ar: &AccessRequest, value: &str| {
        let mut ar = ar.clone();
        ar.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(super::NOTIFIED_ANNOTATION.into(), value.into());
        ar
    };
    // A break-glass requester cannot create the request as already announced.
    let silenced = note(&stamped, "break-glass");
    let v = admit(&create_change(alice, &silenced, &p), false);
    assert!(
        v.denials
            .iter()
            .any(|d| d.contains("jitguard.dev/notified")),
        "{:?}",
        v.denials
    );
    // Nor set or clear it afterwards; the controller may.
    let sent = note(&stamped, "requested");
    for (old, new) in [(&stamped, &sent), (&sent, &stamped)] {
        let mut update = create_change(alice, new, &p);
        update.operation = Operation::Update;
        update.old = Some(old);
        let v = admit(&update, false);
        assert!(
            v.denials
                .iter()
                .any(|d| d.contains("only jitguard changes it")),
            "{:?}",
            v.denials
        );
        update.caller = caller("system:serviceaccount:jitguard:jitguard", &[]);
        assert!(admit(&update, false).denials.is_empty());
    }
}

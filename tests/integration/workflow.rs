//! The approval workflow through the real webhook over TLS: AccessRequest CREATE, UPDATE
//! and status updates with real-looking userInfo, admitted the way the API server does
//! (mutating webhook, patch applied, then validating webhook), and the attacks on it.

use serde_json::{json, Value};

use crate::common::{apply_patch, Options, Server};

/// A user as the API server names it: username and groups.
type User = (&'static str, &'static [&'static str]);

const ALICE: User = ("alice@example.com", &["developers", "system:authenticated"]);
const BOB_LEAD: User = ("bob@example.com", &["team-leads", "system:authenticated"]);
const CAROL_SECURITY: User = ("carol@example.com", &["security", "system:authenticated"]);
const MALLORY: User = (
    "mallory@example.com",
    &["developers", "system:authenticated"],
);

fn server() -> Server {
    Server::with(Options {
        policies: None,
        ..Options::default()
    })
}

fn exec_in(ns: &str) -> Value {
    json!([{"operations": ["CONNECT"], "apiGroups": [""], "resources": ["pods/exec"], "namespaces": [ns]}])
}

fn access_request(spec: Value) -> Value {
    let mut base = json!({
        "apiVersion": "jitguard.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": "alice-exec-prod", "uid": "6f9b1c2e-0d3a-4b5c-8e7f-1a2b3c4d5e6f", "generation": 1, "resourceVersion": "100"},
        "spec": {"reason": "Debug INC-4211", "ticket": "INC-4211", "duration": "30m", "scope": exec_in("prod")},
    });
    for (k, v) in spec.as_object().unwrap() {
        base["spec"][k] = v.clone();
    }
    base
}

fn review(
    operation: &str,
    sub: Option<&str>,
    user: (&str, &[&str]),
    object: &Value,
    old: Option<&Value>,
) -> Value {
    let gvk = json!({"group": "jitguard.dev", "version": "v1alpha1", "kind": "AccessRequest"});
    let gvr = json!({"group": "jitguard.dev", "version": "v1alpha1", "resource": "accessrequests"});
    let mut request = json!({
        "uid": format!("{:x}", rand_uid(object, operation)),
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": object["metadata"]["name"],
        "operation": operation,
        "userInfo": {"username": user.0, "groups": user.1},
        "object": object,
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": false,
    });
    if let Some(sub) = sub {
        request["subResource"] = json!(sub);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn rand_uid(object: &Value, operation: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    object.to_string().hash(&mut h);
    operation.hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    h.finish()
}

/// What the API server does: the mutating webhook, its patch, then the validating one.
/// Returns the object that would be stored, or the denial message.
async fn admit(
    server: &Server,
    operation: &str,
    sub: Option<&str>,
    user: (&str, &[&str]),
    object: &Value,
    old: Option<&Value>,
) -> Result<Value, String> {
    let denial = |r: &Value| {
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let r = server
        .decide("/mutate", &review(operation, sub, user, object, old))
        .await;
    if r["allowed"] != true {
        return Err(denial(&r));
    }
    let patched = if r.get("patch").is_some() {
        apply_patch(&r, object)
    } else {
        object.clone()
    };
    let v = server
        .decide("/validate", &review(operation, sub, user, &patched, old))
        .await;
    if v["allowed"] != true {
        return Err(denial(&v));
    }
    Ok(patched)
}

/// `user` records `decision` on `stored` through the status subresource, naming itself.
async fn record_decision(
    server: &Server,
    user: (&str, &[&str]),
    stored: &Value,
    decision: &str,
) -> Result<Value, String> {
    let next = with_decision(stored, decision, user.0);
    admit(server, "UPDATE", Some("status"), user, &next, Some(stored)).await
}

/// The approver's client appends a decision to status.approvals.
fn with_decision(stored: &Value, decision: &str, claimed_approver: &str) -> Value {
    let mut next = stored.clone();
    if next.get("status").is_none() || next["status"].is_null() {
        next["status"] = json!({"phase": "Pending"});
    }
    let entry = json!({"approver": claimed_approver, "decision": decision, "at": "2020-01-01T00:00:00Z", "comment": "ok"});
    match next["status"]["approvals"].as_array_mut() {
        Some(list) => list.push(entry),
        None => next["status"]["approvals"] = json!([entry]),
    }
    next
}

async fn created(server: &Server, spec: Value) -> Value {
    let mut stored = admit(server, "CREATE", None, ALICE, &access_request(spec), None)
        .await
        .unwrap();
    stored["status"] = json!({"phase": "Pending"});
    stored
}

#[tokio::test]
async fn creating_stamps_the_requester_from_user_info_never_from_the_client() {
    let server = server();
    let forged =
        access_request(json!({"requester": "carol@example.com", "requesterGroups": ["security"]}));
    let stored = admit(&server, "CREATE", None, ALICE, &forged, None)
        .await
        .unwrap();
    assert_eq!(stored["spec"]["requester"], ALICE.0);
    assert_eq!(stored["spec"]["requesterGroups"], json!(ALICE.1));
    // Without the mutating webhook the validating one refuses the forgery.
    let v = server
        .decide("/validate", &review("CREATE", None, ALICE, &forged, None))
        .await;
    assert_eq!(v["allowed"], false);
    assert!(
        v["status"]["message"]
            .as_str()
            .unwrap()
            .contains("a request is always for the user who makes it"),
        "{v}"
    );
}

#[tokio::test]
async fn creating_checks_reason_scope_duration_ticket_and_break_glass() {
    let server = server();
    let cases: Vec<(Value, User, &str)> = vec![
        (json!({"reason": " "}), ALICE, "spec.reason is required"),
        (json!({"ticket": null}), ALICE, "must name a ticket"),
        (
            json!({"duration": "9h"}),
            ALICE,
            "longer than this scope allows",
        ),
        (json!({"duration": "forever"}), ALICE, "unknown unit"),
        (
            json!({"scope": [{"operations": ["CREATE"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "namespaces": ["dev"]}]}),
            ALICE,
            "not requestable by you",
        ),
        (
            json!({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}),
            ALICE,
            "may not be bound",
        ),
        (
            json!({"breakGlass": true, "duration": "15m"}),
            ALICE,
            "break-glass is reserved to members of sre-oncall",
        ),
        (json!({"group": "security"}), ALICE, "a group you are in"),
    ];
    for (spec, user, expected) in cases {
        let err = admit(
            &server,
            "CREATE",
            None,
            user,
            &access_request(spec.clone()),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            err.contains(expected),
            "{spec}: expected {expected:?} in {err}"
        );
    }
    // A break-glass request by the on-call group is admitted.
    let oncall = (
        "olivia@example.com",
        &["sre-oncall", "system:authenticated"][..],
    );
    admit(
        &server,
        "CREATE",
        None,
        oncall,
        &access_request(json!({"breakGlass": true, "duration": "15m"})),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn approvals_are_stamped_counted_and_the_last_one_needed_approves() {
    let server = server();
    let pending = created(&server, json!({})).await;
    // Bob records his decision under a made-up name and time: jitguard stamps his own.
    let after_bob = admit(
        &server,
        "UPDATE",
        Some("status"),
        BOB_LEAD,
        &with_decision(&pending, "Approve", "carol@example.com"),
        Some(&pending),
    )
    .await
    .unwrap();
    let entry = &after_bob["status"]["approvals"][0];
    assert_eq!(entry["approver"], BOB_LEAD.0);
    assert_eq!(entry["approverGroups"], json!(BOB_LEAD.1));
    assert_eq!(entry["uid"], pending["metadata"]["uid"]);
    assert_eq!(entry["generation"], 1);
    assert_ne!(entry["at"], "2020-01-01T00:00:00Z");
    // A protected scope needs a team lead AND security: still pending.
    assert_eq!(after_bob["status"]["phase"], "Pending");
    let approved = admit(
        &server,
        "UPDATE",
        Some("status"),
        CAROL_SECURITY,
        &with_decision(&after_bob, "Approve", "carol@example.com"),
        Some(&after_bob),
    )
    .await
    .unwrap();
    assert_eq!(approved["status"]["phase"], "Approved");
    let at: jiff::Timestamp = approved["status"]["approvedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let until: jiff::Timestamp = approved["status"]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        until.duration_since(at),
        jiff::SignedDuration::from_mins(30),
        "the clock starts at approval"
    );
    assert!(
        server
            .wait_for_log("access.approved", std::time::Duration::from_secs(5))
            .await
    );
}

#[tokio::test]
async fn self_approval_outsiders_and_double_decisions_are_refused() {
    let server = server();
    let pending = created(&server, json!({})).await;
    let alice_as_lead = ("alice@example.com", &["team-leads", "developers"][..]);
    let err = admit(
        &server,
        "UPDATE",
        Some("status"),
        alice_as_lead,
        &with_decision(&pending, "Approve", ALICE.0),
        Some(&pending),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("you cannot approve or deny your own request"),
        "{err}"
    );
    let err = record_decision(&server, MALLORY, &pending, "Approve")
        .await
        .unwrap_err();
    assert!(
        err.contains("you are not an approver of this request"),
        "{err}"
    );
    let once = record_decision(&server, BOB_LEAD, &pending, "Approve")
        .await
        .unwrap();
    let err = record_decision(&server, BOB_LEAD, &once, "Approve")
        .await
        .unwrap_err();
    assert!(err.contains("already recorded a decision"), "{err}");
}

#[tokio::test]
async fn a_forged_approver_name_is_refused_when_the_mutating_webhook_is_skipped() {
    let server = server();
    let pending = created(&server, json!({})).await;
    let forged = with_decision(&pending, "Approve", CAROL_SECURITY.0);
    let v = server
        .decide(
            "/validate",
            &review("UPDATE", Some("status"), MALLORY, &forged, Some(&pending)),
        )
        .await;
    assert_eq!(v["allowed"], false);
    assert!(
        v["status"]["message"]
            .as_str()
            .unwrap()
            .contains("recorded under the identity that makes them"),
        "{v}"
    );
}

#[tokio::test]
async fn the_phase_and_times_cannot_be_set_by_hand() {
    let server = server();
    let pending = created(&server, json!({})).await;
    let mut by_hand = pending.clone();
    by_hand["status"] = json!({"phase": "Approved", "approvedAt": "2030-01-01T00:00:00Z", "expiresAt": "2031-01-01T00:00:00Z"});
    let err = admit(
        &server,
        "UPDATE",
        Some("status"),
        ALICE,
        &by_hand,
        Some(&pending),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("only jitguard sets these status fields: phase Approved"),
        "{err}"
    );
    // jitguard's own service account may (expiry, auto-approval).
    let jitguard = (
        "system:serviceaccount:jitguard:jitguard",
        &["system:serviceaccounts", "system:serviceaccounts:jitguard"][..],
    );
    admit(
        &server,
        "UPDATE",
        Some("status"),
        jitguard,
        &by_hand,
        Some(&pending),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_scope_cannot_be_widened_after_approval() {
    let server = server();
    let mut approved = created(&server, json!({})).await;
    approved["status"] = json!({"phase": "Approved", "approvedAt": "2030-01-01T00:00:00Z", "expiresAt": "2030-01-01T00:30:00Z"});
    let mut wider = approved.clone();
    wider["spec"]["scope"] = exec_in("*");
    wider["metadata"]["generation"] = json!(2);
    let err = admit(&server, "UPDATE", None, ALICE, &wider, Some(&approved))
        .await
        .unwrap_err();
    assert!(
        err.contains("spec.scope cannot change after creation"),
        "{err}"
    );
    // Labels and annotations stay editable.
    let mut labelled = approved.clone();
    labelled["metadata"]["labels"] = json!({"team": "web"});
    admit(&server, "UPDATE", None, ALICE, &labelled, Some(&approved))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_approval_replayed_after_a_spec_change_does_not_count() {
    let server = server();
    // Bob approved generation 1; the spec then changed behind the webhook's back
    // (generation 2). Carol's approval alone must not approve generation 2.
    let pending = created(&server, json!({})).await;
    let after_bob = record_decision(&server, BOB_LEAD, &pending, "Approve")
        .await
        .unwrap();
    let mut changed = after_bob.clone();
    changed["metadata"]["generation"] = json!(2);
    changed["spec"]["duration"] = json!("4h");
    let after_carol = record_decision(&server, CAROL_SECURITY, &changed, "Approve")
        .await
        .unwrap();
    assert_eq!(
        after_carol["status"]["phase"], "Pending",
        "{}",
        after_carol["status"]
    );
}

#[tokio::test]
async fn revocation_by_the_requester_an_approver_or_an_admin_only() {
    let server = server();
    let mut approved = created(&server, json!({})).await;
    approved["status"] = json!({"phase": "Approved", "approvedAt": "2030-01-01T00:00:00Z", "expiresAt": "2030-01-01T00:30:00Z"});
    let mut revoke = approved.clone();
    revoke["status"]["phase"] = json!("Revoked");
    let err = admit(
        &server,
        "UPDATE",
        Some("status"),
        MALLORY,
        &revoke,
        Some(&approved),
    )
    .await
    .unwrap_err();
    assert!(err.contains("may revoke it"), "{err}");
    for who in [
        ALICE,
        BOB_LEAD,
        ("root@example.com", &["jitguard-admins"][..]),
    ] {
        let stored = admit(
            &server,
            "UPDATE",
            Some("status"),
            who,
            &revoke,
            Some(&approved),
        )
        .await
        .unwrap();
        assert_eq!(stored["status"]["revokedBy"], who.0);
        assert!(stored["status"]["revokedAt"].is_string());
    }
}

#[tokio::test]
async fn a_deny_decision_by_an_approver_denies_the_request() {
    let server = server();
    let pending = created(&server, json!({})).await;
    let denied = record_decision(&server, CAROL_SECURITY, &pending, "Deny")
        .await
        .unwrap();
    assert_eq!(denied["status"]["phase"], "Denied");
    // Nothing is left to decide.
    let err = record_decision(&server, BOB_LEAD, &denied, "Approve")
        .await
        .unwrap_err();
    assert!(err.contains("the request is Denied"), "{err}");
}

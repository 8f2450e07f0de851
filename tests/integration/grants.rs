//! Grants through the real server over TLS: coverage, expiry, revocation, group grants,
//! provenance and what policies see.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::common::{
    apply_patch, grant, grants_yaml, in_namespace, review, scope, with_label, with_user, Options,
    Server,
};

fn ago(minutes: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_mins(minutes)
}

fn pods_in_prod(ops: &[&str]) -> Value {
    scope(ops, &[""], &["pods"], &["prod"], &[])
}

fn server_with(grants: &[Value]) -> Server {
    Server::with(Options {
        grants: Some(grants_yaml(grants)),
        ..Options::default()
    })
}

#[tokio::test]
async fn a_covering_grant_allows_and_is_named_in_the_answer_and_the_audit() {
    let server = server_with(&[grant(
        "alice-pods",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        ago(5),
        "1h",
    )]);
    // A dry run is decided the same way but is not a use of the grant.
    let dry = server
        .decide("/validate", &review("pod-create-prod-dryrun"))
        .await;
    assert_eq!(dry["allowed"], true, "{dry}");
    let r = server.decide("/validate", &review("pod-create-prod")).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["auditAnnotations"]["jitguard.dev/grant"], "alice-pods");
    assert!(
        server
            .wait_for_log("admission decision", Duration::from_secs(5))
            .await
    );
    let logged = server.log_events("admission decision");
    assert_eq!(logged.last().unwrap()["grant"]["name"], "alice-pods");
    let m = server.metrics().await;
    assert!(
        m.contains("jitguard_grant_uses_total{result=\"covered\"} 1"),
        "{m}"
    );
    assert!(m.contains("jitguard_grants_live 1"), "{m}");
}

#[tokio::test]
async fn grants_for_another_namespace_name_subresource_or_operation_do_not_cover() {
    let exec_scope =
        |ops: &[&str], res: &[&str], ns: &[&str], names: &[&str]| scope(ops, &[""], res, ns, names);
    let server = server_with(&[
        grant(
            "other-namespace",
            "alice@example.com",
            exec_scope(&["CONNECT"], &["pods/exec"], &["staging"], &[]),
            ago(5),
            "1h",
        ),
        grant(
            "other-name",
            "alice@example.com",
            exec_scope(&["CONNECT"], &["pods/exec"], &["prod"], &["api"]),
            ago(5),
            "1h",
        ),
        grant(
            "other-subresource",
            "alice@example.com",
            exec_scope(&["CONNECT"], &["pods/attach"], &["prod"], &[]),
            ago(5),
            "1h",
        ),
        grant(
            "parent-resource-only",
            "alice@example.com",
            exec_scope(&["CONNECT"], &["pods"], &["prod"], &[]),
            ago(5),
            "1h",
        ),
        grant(
            "other-operation",
            "alice@example.com",
            exec_scope(&["CREATE"], &["pods/exec"], &["prod"], &[]),
            ago(5),
            "1h",
        ),
        grant(
            "someone-else",
            "bob@example.com",
            exec_scope(&["CONNECT"], &["pods/exec"], &["prod"], &[]),
            ago(5),
            "1h",
        ),
        grant(
            "not-yet",
            "alice@example.com",
            exec_scope(&["CONNECT"], &["pods/exec"], &["prod"], &[]),
            ago(-10),
            "1h",
        ),
    ]);
    let r = server.decide("/validate", &review("pod-exec-prod")).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(r["status"]["message"].as_str().unwrap().contains(
        "kubectl jit request --namespace prod --resource pods/exec --operation CONNECT --name web"
    ));
    // Bob's grant is his alone, and it does cover him.
    let r = server
        .decide(
            "/validate",
            &with_user(review("pod-exec-prod"), "bob@example.com", &["sre"]),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["auditAnnotations"]["jitguard.dev/grant"], "someone-else");
}

#[tokio::test]
async fn a_group_grant_covers_every_member_of_the_group() {
    let mut oncall = grant(
        "oncall-exec",
        "carol@example.com",
        scope(&["CONNECT"], &[""], &["pods/*"], &["prod"], &[]),
        ago(5),
        "1h",
    );
    oncall["spec"]["group"] = Value::from("oncall");
    let server = server_with(&[oncall]);
    let member = with_user(
        review("pod-exec-prod"),
        "dave@example.com",
        &["oncall", "system:authenticated"],
    );
    let r = server.decide("/validate", &member).await;
    assert_eq!(r["allowed"], true, "{r}");
    let outsider = with_user(review("pod-exec-prod"), "erin@example.com", &["developers"]);
    assert_eq!(
        server.decide("/validate", &outsider).await["allowed"],
        false
    );
}

#[tokio::test]
async fn a_grant_stops_working_at_its_end_without_any_sweep() {
    // Approved 29m58s ago for 30m: live for about two more seconds.
    let approved = Timestamp::now() - SignedDuration::from_secs(30 * 60 - 2);
    let g = grant(
        "short",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        approved,
        "30m",
    );
    let ends = approved + SignedDuration::from_mins(30);
    let server = server_with(&[g]);
    assert_eq!(
        server.decide("/validate", &review("pod-create-prod")).await["allowed"],
        true
    );
    // One second after expiresAt.
    let wait = ends.duration_since(Timestamp::now()) + SignedDuration::from_secs(1);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let r = server.decide("/validate", &review("pod-create-prod")).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        server
            .wait_for_log("grant.expired", Duration::from_secs(5))
            .await
    );
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let g = grant(
        "revocable",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        ago(5),
        "1h",
    );
    let server = server_with(std::slice::from_ref(&g));
    assert_eq!(
        server.decide("/validate", &review("pod-create-prod")).await["allowed"],
        true
    );
    let mut revoked = g;
    revoked["status"]["phase"] = Value::from("Revoked");
    revoked["status"]["revokedBy"] = Value::from("carol@example.com");
    revoked["status"]["revokedAt"] = Value::from(Timestamp::now().to_string());
    std::fs::write(server.grants_file(), grants_yaml(&[revoked])).unwrap();
    assert!(
        server
            .wait_for_log("grant.revoked", Duration::from_secs(10))
            .await
    );
    assert_eq!(
        server.decide("/validate", &review("pod-create-prod")).await["allowed"],
        false
    );
    let event = server
        .log_events("grant lifecycle")
        .into_iter()
        .find(|e| e["event"] == "grant.revoked")
        .unwrap();
    assert_eq!(event["by"], "carol@example.com");
}

#[tokio::test]
async fn a_broken_grants_file_is_refused_and_the_last_good_set_stays() {
    let server = server_with(&[grant(
        "keep",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        ago(5),
        "1h",
    )]);
    std::fs::write(
        server.grants_file(),
        "apiVersion: jitguard.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: x\nspec: [\n",
    )
    .unwrap();
    assert!(
        server
            .wait_for_log("grants file refused", Duration::from_secs(10))
            .await
    );
    let refused = server.log_events("grants file refused");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("grants.yaml:"),
        "{refused:?}"
    );
    assert_eq!(
        server.decide("/validate", &review("pod-create-prod")).await["allowed"],
        true
    );
}

#[tokio::test]
async fn objects_created_under_a_grant_are_labelled_with_it() {
    let server = server_with(&[grant(
        "alice-pods",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        ago(5),
        "1h",
    )]);
    let body = review("pod-create-prod");
    let r = server.decide("/mutate", &body).await;
    assert_eq!(r["allowed"], true, "{r}");
    let patched = apply_patch(&r, &body["request"]["object"]);
    assert_eq!(
        patched["metadata"]["labels"]["jitguard.dev/grant"],
        "alice-pods"
    );
    let expires: Timestamp = patched["metadata"]["annotations"]["jitguard.dev/expires-at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires > Timestamp::now());
    assert_eq!(
        patched["metadata"]["labels"]["app"], "web",
        "existing labels are kept"
    );
}

#[tokio::test]
async fn policies_see_the_requesters_live_grants() {
    let mut with_ticket = grant(
        "ticketed",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        ago(5),
        "1h",
    );
    with_ticket["spec"]["ticket"] = Value::from("CHG-1");
    let without = grant(
        "unticketed",
        "bob@example.com",
        pods_in_prod(&["CREATE"]),
        ago(5),
        "1h",
    );
    let server = server_with(&[with_ticket, without]);
    let body = with_label(review("pod-create-prod"), "needticket", "true");
    assert_eq!(server.decide("/validate", &body).await["allowed"], true);
    let r = server
        .decide("/validate", &with_user(body, "bob@example.com", &[]))
        .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("grants for prod must name a ticket"),
        "{r}"
    );
}

#[tokio::test]
async fn a_break_glass_grant_allows_with_a_warning_on_every_use() {
    let mut g = grant(
        "glass",
        "alice@example.com",
        pods_in_prod(&["CREATE"]),
        ago(1),
        "15m",
    );
    g["spec"]["breakGlass"] = Value::from(true);
    let server = server_with(&[g]);
    let r = server.decide("/validate", &review("pod-create-prod")).await;
    assert_eq!(r["allowed"], true);
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("break-glass grant glass"),
        "{r}"
    );
    assert_eq!(r["auditAnnotations"]["jitguard.dev/break-glass"], "true");
}

fn namespace_yaml(name: &str, protected: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    jitguard.dev/protected: \"{protected}\"\n"
    )
}

/// A pod created in `team-a` (not in the pack's list of protected namespaces).
fn pod_in_team_a() -> Value {
    in_namespace(review("pod-create-dev"), "team-a")
}

#[tokio::test]
async fn a_namespace_labelled_protected_in_the_grants_file_protects_its_objects() {
    let server = Server::with(Options {
        policies: None,
        grants: Some(namespace_yaml("team-a", true)),
        ..Options::default()
    });
    let answer = server.decide("/validate", &pod_in_team_a()).await;
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("protected namespace team-a needs a just-in-time grant"),
        "{message}"
    );
    // The label comes off (the file is the cluster's stand-in): the pod is allowed.
    std::fs::write(server.grants_file(), namespace_yaml("team-a", false)).unwrap();
    let answer = server.decide_until(&pod_in_team_a(), true).await;
    assert_eq!(answer["allowed"], true, "{answer}");
}

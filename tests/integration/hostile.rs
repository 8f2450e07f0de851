//! Crafted hostile input against the real server (TLS, the shipped pack): each gets a clear
//! 4xx or a decision with a reason, never a 5xx, a panic or a hang.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{grant, grants_yaml, review, scope, with_user, Options, Server};

/// The shipped pack, and a live grant for alice to exec into pods in prod.
fn shipped() -> Server {
    let exec = grant(
        "alice-exec-prod",
        "alice@example.com",
        scope(&["CONNECT"], &[""], &["pods/exec"], &["prod"], &[]),
        jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1),
        "1h",
    );
    Server::with(Options {
        policies: None,
        grants: Some(grants_yaml(&[exec])),
        ..Options::default()
    })
}

/// Posts and returns (status, body); a request must be answered within 10 s.
async fn post(server: &Server, client: &reqwest::Client, body: Vec<u8>) -> (u16, Value) {
    let sent = client
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = sent.status().as_u16();
    let text = sent.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A 200 with a decision (a denial says why), or a 4xx that says why.
fn answered(what: &str, status: u16, body: &Value) {
    match status {
        200 => {
            let response = &body["response"];
            assert!(response["allowed"].is_boolean(), "{what}: {body}");
            if response["allowed"] == false {
                assert!(
                    response["status"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{what}: a denial without a reason: {body}"
                );
            }
        }
        400..=499 => assert!(
            body.as_str().is_some_and(|t| !t.is_empty()) || body.is_object(),
            "{what}: {status} without a reason"
        ),
        _ => panic!("{what}: status {status}: {body}"),
    }
}

#[tokio::test]
async fn wrong_types_in_every_field_get_a_400_or_a_decision() {
    let server = shipped();
    let client = server.client();
    let wrong = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!("x"),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"a": {"b": []}}),
    ];
    let base = review("pod-create-prod");
    let mut fields: Vec<String> = vec!["/apiVersion".into(), "/kind".into(), "/request".into()];
    for (key, value) in base["request"].as_object().unwrap() {
        fields.push(format!("/request/{key}"));
        if let Some(inner) = value.as_object() {
            for k in inner.keys() {
                fields.push(format!("/request/{key}/{k}"));
            }
        }
    }
    let mut decided = 0;
    let mut refused = 0;
    for field in &fields {
        for value in &wrong {
            let mut body = base.clone();
            *body.pointer_mut(field).unwrap() = value.clone();
            let (status, answer) = post(&server, &client, serde_json::to_vec(&body).unwrap()).await;
            answered(&format!("{field} = {value}"), status, &answer);
            if status == 200 {
                decided += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(fields.len() > 30, "{fields:?}");
    assert!(
        decided > 0 && refused > 0,
        "decided {decided}, refused {refused}"
    );
    // The server is fine afterwards.
    let (status, answer) = post(&server, &client, serde_json::to_vec(&base).unwrap()).await;
    assert_eq!(
        (status, &answer["response"]["allowed"]),
        (200, &json!(false))
    );
}

#[tokio::test]
async fn crafted_inputs_get_a_4xx_or_a_reasoned_decision() {
    let server = shipped();
    let client = server.client();
    let base = review("pod-create-prod");
    let body = |v: &Value| serde_json::to_vec(v).unwrap();

    // Truncated anywhere.
    let whole = body(&base);
    for cut in [0, 1, whole.len() / 3, whole.len() / 2, whole.len() - 1] {
        let (status, answer) = post(&server, &client, whole[..cut].to_vec()).await;
        assert_eq!(status, 400, "cut at {cut}: {answer}");
    }

    // Nested 10 000 deep inside the object.
    let mut deep = base.clone();
    deep["request"]["object"]["metadata"]["annotations"] =
        serde_json::from_str::<Value>(&format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100)))
            .unwrap();
    let mut text = String::from_utf8(body(&deep)).unwrap();
    text = text.replacen(
        "\"annotations\":",
        &format!("\"annotations\":{}", "[".repeat(10_000)),
        1,
    );
    let at = text.rfind("}}").unwrap();
    text.insert_str(at, &"]".repeat(10_000));
    let (status, answer) = post(&server, &client, text.into_bytes()).await;
    assert_eq!(status, 400, "{answer}");

    // Huge label maps and thousands of containers: decided, within the budget.
    let mut labels = base.clone();
    let many: serde_json::Map<String, Value> =
        (0..20_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    labels["request"]["object"]["metadata"]["labels"] = Value::Object(many);
    let mut containers = base.clone();
    let privileged: Vec<Value> = (0..3_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox", "securityContext": {"privileged": true}}))
        .collect();
    containers["request"]["object"]["spec"]["containers"] = Value::from(privileged);
    for (what, v) in [
        ("20k labels", &labels),
        ("3k privileged containers", &containers),
    ] {
        let started = Instant::now();
        let (status, answer) = post(&server, &client, body(v)).await;
        answered(what, status, &answer);
        assert_eq!(answer["response"]["allowed"], false, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            started.elapsed()
        );
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.len() < 16 * 1024,
            "{what}: a {} byte message",
            message.len()
        );
    }

    // Look-alike and reserved identities get no one else's grant and no exemption.
    let exec = review("pod-exec-prod");
    assert_eq!(
        post(&server, &client, body(&exec)).await.1["response"]["allowed"],
        true,
        "alice's exec grant covers the real alice"
    );
    for (user, groups) in [
        ("аlice@example.com", vec!["developers"]), // Cyrillic а
        ("alice@example.com ", vec!["developers"]),
        ("ALICE@example.com", vec!["developers"]),
        ("mallory@example.com", vec!["system:masters"]),
        ("system:anonymous", vec!["system:unauthenticated"]),
        ("mallory@example.com", vec!["system:nodes "]),
    ] {
        let (status, answer) = post(
            &server,
            &client,
            body(&with_user(exec.clone(), user, &groups)),
        )
        .await;
        answered(user, status, &answer);
        assert_eq!(
            answer["response"]["allowed"], false,
            "{user:?} {groups:?}: {answer}"
        );
    }

    // A custom resource whose kind is Namespace, in prod: an object like any other.
    let mut lookalike = base.clone();
    lookalike["request"]["kind"] =
        json!({"group": "example.com", "version": "v1", "kind": "Namespace"});
    lookalike["request"]["resource"] =
        json!({"group": "example.com", "version": "v1", "resource": "namespaces"});
    lookalike["request"]["name"] = json!("shadow");
    lookalike["request"]["object"] = json!({"apiVersion": "example.com/v1", "kind": "Namespace",
        "metadata": {"name": "shadow", "namespace": "prod"}});
    let (status, answer) = post(&server, &client, body(&lookalike)).await;
    answered("a look-alike Namespace", status, &answer);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");

    // kubectl scale as the API server sends it: the grant to ask for is in the
    // resource's group (apps), not the kind's (autoscaling).
    let mut scale = base.clone();
    scale["request"]["operation"] = json!("UPDATE");
    scale["request"]["kind"] = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
    scale["request"]["resource"] =
        json!({"group": "apps", "version": "v1", "resource": "deployments"});
    scale["request"]["subResource"] = json!("scale");
    scale["request"]["name"] = json!("web");
    scale["request"]["object"] = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "prod"}, "spec": {"replicas": 0}});
    scale["request"]["oldObject"] = scale["request"]["object"].clone();
    let (status, answer) = post(&server, &client, body(&scale)).await;
    answered("kubectl scale", status, &answer);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("--api-group apps --resource deployments/scale"),
        "{message}"
    );

    // An AccessRequest approval without the stored object cannot be checked: refused.
    let ar = json!({"apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": {"name": "alice-prod", "uid": "u-1", "generation": 1},
        "spec": {"requester": "alice@example.com", "requesterGroups": ["developers"],
                 "reason": "x", "ticket": "INC-1", "duration": "30m",
                 "scope": [{"operations": ["CONNECT"], "apiGroups": [""], "resources": ["pods/exec"], "namespaces": ["prod"]}]},
        "status": {"phase": "Approved"}});
    let mut approval = base.clone();
    approval["request"]["operation"] = json!("UPDATE");
    approval["request"]["kind"] =
        json!({"group": "jitguard.dev", "version": "v1alpha1", "kind": "AccessRequest"});
    approval["request"]["resource"] =
        json!({"group": "jitguard.dev", "version": "v1alpha1", "resource": "accessrequests"});
    approval["request"]["subResource"] = json!("status");
    approval["request"]["namespace"] = json!("");
    approval["request"]["name"] = json!("alice-prod");
    approval["request"]["object"] = ar;
    approval["request"]["oldObject"] = Value::Null;
    let (status, answer) = post(&server, &client, body(&approval)).await;
    answered("a status update without oldObject", status, &answer);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("without request.oldObject"),
        "{answer}"
    );

    // Unicode in names and namespaces is decided like anything else.
    let mut unicode = base.clone();
    unicode["request"]["name"] = json!("wéb-☃-𝔁");
    unicode["request"]["object"]["metadata"]["name"] = json!("wéb-☃-𝔁");
    let (status, answer) = post(&server, &client, body(&unicode)).await;
    answered("unicode name", status, &answer);
    assert!(answer["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("wéb-☃-𝔁"));
}

#[tokio::test]
async fn a_100_mib_body_gets_a_413_and_the_server_carries_on() {
    let server = shipped();
    let client = server.client();
    let (status, answer) = post(&server, &client, vec![b' '; 100 * 1024 * 1024]).await;
    assert_eq!(status, 413, "{answer}");
    let (status, _) = post(
        &server,
        &client,
        serde_json::to_vec(&review("pod-create-dev")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

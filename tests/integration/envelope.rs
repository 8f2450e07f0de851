//! The HTTP envelope, in process: the webhook's router (`server::app`) with the real
//! worker pool and reviewer, called without TLS or a socket (`tower::ServiceExt::oneshot`),
//! where TLS is not the point: status codes, reasons, methods, content types, body limits.
//! bad_input.rs and the other files keep the same answers through the real server over TLS.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::{Method, Request};
use tower::ServiceExt as _;

use jitguard::decision::OnError;
use jitguard::policy::{EvalOptions, PolicySet};
use jitguard::pool::Pool;
use jitguard::review::Reviewer;
use jitguard::server::{self, AppState, Health};

use crate::bad_input::malformed_cases;
use crate::common::{review, root};

fn router(body_limit: usize) -> axum::Router {
    let set = PolicySet::load(
        &root().join("tests/fixtures/policies/core"),
        EvalOptions::default(),
    )
    .unwrap();
    let reviewer = Reviewer::offline(Arc::new(ArcSwap::from_pointee(set)), None).unwrap();
    let health = Health::new(
        reviewer.grants.clone(),
        reviewer.namespaces.clone(),
        reviewer.gatekeeper.clone(),
    );
    health.set_policies_loaded();
    let metrics = reviewer.metrics.clone();
    let pool = Arc::new(Pool::start(reviewer, 1, 8).unwrap());
    server::app(AppState {
        pool,
        health,
        metrics,
        body_limit,
        on_error: OnError::Deny,
    })
}

async fn send(
    app: &axum::Router,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (u16, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

const LIMIT: usize = 8 << 20;

#[tokio::test]
async fn every_malformed_body_gets_400_with_its_reason_on_both_webhooks() {
    let app = router(LIMIT);
    for path in ["/validate", "/mutate"] {
        for (body, reason) in malformed_cases() {
            let (status, text) =
                send(&app, Method::POST, path, Some("application/json"), body).await;
            assert_eq!(status, 400, "{path} {reason}: {text}");
            assert!(
                text.contains(reason),
                "{path}: expected {reason:?} in {text:?}"
            );
        }
    }
}

#[tokio::test]
async fn wrong_methods_content_types_and_paths_are_refused_with_the_reason() {
    let app = router(LIMIT);
    let body = serde_json::to_vec(&review("pod-create-dev")).unwrap();
    let (status, text) = send(&app, Method::GET, "/validate", None, Body::empty()).await;
    assert_eq!(status, 405);
    assert!(
        text.contains("send the AdmissionReview with POST"),
        "{text}"
    );
    let (status, text) = send(
        &app,
        Method::POST,
        "/mutate",
        Some("text/plain"),
        body.clone(),
    )
    .await;
    assert_eq!(status, 415);
    assert!(text.contains("application/json"), "{text}");
    let (status, _) = send(&app, Method::POST, "/validate", None, body.clone()).await;
    assert_eq!(status, 415);
    let (status, _) = send(
        &app,
        Method::POST,
        "/validate",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(status, 200);
    let (status, text) = send(
        &app,
        Method::POST,
        "/nope",
        Some("application/json"),
        Body::empty(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(text.contains("POST /validate"), "{text}");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_whether_announced_or_streamed() {
    let app = router(65536);
    let mut big = review("pod-create-dev");
    big["request"]["object"]["metadata"]["annotations"] =
        serde_json::json!({"blob": "x".repeat(100_000)});
    let (status, text) = send(
        &app,
        Method::POST,
        "/validate",
        Some("application/json"),
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert!(text.contains("65536 byte limit"), "{text}");
    let chunks = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096])));
    let (status, _) = send(
        &app,
        Method::POST,
        "/validate",
        Some("application/json"),
        Body::from_stream(chunks),
    )
    .await;
    assert_eq!(status, 413);
    let (status, _) = send(
        &app,
        Method::POST,
        "/validate",
        Some("application/json"),
        serde_json::to_vec(&review("pod-create-dev")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

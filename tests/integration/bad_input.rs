//! Bad input gets a clear 4xx with the reason, never a panic or a hang, and the
//! connection stays usable.

use serde_json::json;

use crate::common::{review, Options, Server};

async fn send(
    server: &Server,
    client: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = client.request(method, server.url(path)).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Bodies the API server would never send, each with the reason the answer must give.
pub(crate) fn malformed_cases() -> Vec<(Vec<u8>, &'static str)> {
    let mut missing_uid = review("pod-create-dev");
    missing_uid["request"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    let mut no_request = review("pod-create-dev");
    no_request.as_object_mut().unwrap().remove("request");
    let mut v1beta1 = review("pod-create-dev");
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut wrong_kind = review("pod-create-dev");
    wrong_kind["kind"] = json!("Pod");
    let mut bad_operation = review("pod-create-dev");
    bad_operation["request"]["operation"] = json!("PATCH");
    let mut bad_groups = review("pod-create-dev");
    bad_groups["request"]["userInfo"]["groups"] = json!({"a": 1});
    let mut bad_options = review("pod-create-dev");
    bad_options["request"]["options"] = json!("x");
    let mut numeric_name = review("pod-create-dev");
    numeric_name["request"]["object"]["metadata"]["name"] = json!(7);
    let mut numeric_label = review("pod-create-dev");
    numeric_label["request"]["object"]["metadata"]["labels"] = json!({"team": 1});
    let mut old_metadata = review("pod-create-dev");
    old_metadata["request"]["oldObject"] = json!({"metadata": "x"});
    let mut user_string = review("pod-create-dev");
    user_string["request"]["userInfo"] = json!("alice");
    vec![
        (
            serde_json::to_vec(&bad_options).unwrap(),
            "request.options must be an object or null",
        ),
        (
            serde_json::to_vec(&numeric_name).unwrap(),
            "request.object.metadata.name must be a string",
        ),
        (
            serde_json::to_vec(&numeric_label).unwrap(),
            "request.object.metadata.labels must map strings to strings",
        ),
        (
            serde_json::to_vec(&old_metadata).unwrap(),
            "request.oldObject.metadata must be an object",
        ),
        (
            serde_json::to_vec(&user_string).unwrap(),
            "request.userInfo must be an object",
        ),
        (b"{not json".to_vec(), "not valid JSON"),
        (b"".to_vec(), "not valid JSON"),
        (b"[]".to_vec(), "JSON object"),
        (b"\xff\xfe\x00".to_vec(), "UTF-8"),
        (
            serde_json::to_vec(&missing_uid).unwrap(),
            "request.uid is missing",
        ),
        (serde_json::to_vec(&no_request).unwrap(), "no `request`"),
        (
            serde_json::to_vec(&v1beta1).unwrap(),
            "admissionReviewVersions: [v1]",
        ),
        (serde_json::to_vec(&wrong_kind).unwrap(), "kind \"Pod\""),
        (
            serde_json::to_vec(&bad_operation).unwrap(),
            "request.operation",
        ),
        (serde_json::to_vec(&bad_groups).unwrap(), "userInfo.groups"),
        (
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes(),
            "not valid JSON",
        ),
    ]
}

/// Through the real server over TLS: every malformed body is a 400 with its reason (the
/// exhaustive checks of the envelope run in process, in envelope.rs), counted, and the
/// kept-alive connection still gets decisions afterwards.
#[tokio::test]
async fn malformed_bodies_get_400_with_the_reason() {
    let server = Server::start();
    let client = server.client();
    let cases = malformed_cases();
    let count = cases.len();
    for (body, reason) in cases {
        let (status, text) = send(
            &server,
            &client,
            reqwest::Method::POST,
            "/validate",
            Some("application/json"),
            body,
        )
        .await;
        assert_eq!(status, 400, "{reason}: {text}");
        assert!(text.contains(reason), "expected {reason:?} in {text:?}");
    }
    // The same client (and its kept-alive connection) still gets decisions.
    let (status, _) = send(
        &server,
        &client,
        reqwest::Method::POST,
        "/validate",
        Some("application/json"),
        serde_json::to_vec(&review("pod-create-dev")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(server.metrics().await.contains(&format!(
        "jitguard_admission_rejected_total{{reason=\"bad_request\"}} {count}"
    )));
}

#[tokio::test]
async fn bodies_over_the_limit_get_a_fast_413() {
    let server = Server::with(Options {
        args: vec!["--max-body-bytes".into(), "65536".into()],
        ..Options::default()
    });
    let mut big = review("pod-create-dev");
    big["request"]["object"]["metadata"]["annotations"] = json!({"blob": "x".repeat(100_000)});
    let (status, text) = send(
        &server,
        &server.client(),
        reqwest::Method::POST,
        "/validate",
        Some("application/json"),
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert!(text.contains("65536 byte limit"), "{text}");
    // Streamed without a Content-Length, the limit still holds.
    let stream = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096])));
    let response = server
        .client()
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Under the limit: decided.
    let (status, _) = send(
        &server,
        &server.client(),
        reqwest::Method::POST,
        "/validate",
        Some("application/json"),
        serde_json::to_vec(&review("pod-create-dev")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn garbage_on_the_tls_port_does_not_hurt_the_server() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start();
    // Plain HTTP to the TLS port, then a half-open connection that never speaks.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (status, _) = server.post("/validate", &review("pod-create-dev")).await;
    assert_eq!(status, 200);
}

/// A real client on each protocol (curl, as HTTP/1.1 and as HTTP/2 by ALPN), the body
/// announced with a Content-Length and streamed without one: always the 413 and its
/// reason. Over HTTP/2 the answer used to go out while curl was still sending, and the
/// stream reset that followed was all curl reported.
#[tokio::test]
async fn bodies_over_the_limit_get_a_413_over_http2_and_http1() {
    let server = Server::with(Options {
        args: vec!["--max-body-bytes".into(), "65536".into()],
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"blob\": \"{}\"}}", "x".repeat(9_000_000))).unwrap();
    let ca = server.certs().join("ca.pem");
    for protocol in ["--http1.1", "--http2"] {
        for (how, upload) in [
            (
                "announced",
                vec!["--data-binary".to_string(), format!("@{}", big.display())],
            ),
            (
                "streamed",
                vec!["-X".into(), "POST".into(), "-T".into(), "-".into()],
            ),
        ] {
            let answer = dir.path().join("answer.txt");
            let out = std::process::Command::new("curl")
                .args(["-sS", "--cacert"])
                .arg(&ca)
                .arg(protocol)
                .args(["-H", "Content-Type: application/json", "-o"])
                .arg(&answer)
                .args(["-w", "%{http_code} %{http_version}"])
                .args(&upload)
                .arg(server.url("/validate"))
                .stdin(std::fs::File::open(&big).unwrap())
                .output()
                .unwrap();
            let status = String::from_utf8_lossy(&out.stdout).into_owned();
            let version = if protocol == "--http2" { "2" } else { "1.1" };
            assert_eq!(
                status,
                format!("413 {version}"),
                "{protocol} {how}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(&answer).unwrap();
            assert!(
                text.contains("65536 byte limit"),
                "{protocol} {how}: {text}"
            );
        }
    }
}

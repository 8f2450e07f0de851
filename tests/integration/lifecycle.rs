//! Health, readiness, shutdown, overload and deadlines.

use std::time::Duration;

use crate::common::{review, with_label, Options, Server};

#[tokio::test]
async fn health_readiness_and_metrics_are_served_on_both_listeners() {
    let server = Server::start();
    for (url, client) in [
        (server.ops_url(""), reqwest::Client::new()),
        (server.url(""), server.client()),
    ] {
        let healthz = client.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(healthz.status(), 200);
        let readyz = client.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(readyz.status(), 200);
        let metrics = client.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        assert!(metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = metrics.text().await.unwrap();
        assert!(text.contains("jitguard_policies_loaded"));
        // Series that alerts watch exist at zero before their first event.
        for series in [
            r#"jitguard_admission_rejected_total{reason="deadline"} 0"#,
            r#"jitguard_policy_reloads_total{result="error"} 0"#,
            r#"jitguard_policy_errors_total{package="test.core"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }
    // The operations listener does not serve the webhook.
    let r = reqwest::Client::new()
        .post(server.ops_url("/validate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn sigterm_fails_readiness_first_finishes_in_flight_requests_and_exits() {
    let mut server = Server::with(Options {
        args: vec![
            "--eval-timeout".into(),
            "1500ms".into(),
            "--shutdown-delay".into(),
            "700ms".into(),
        ],
        ..Options::default()
    });
    let client = server.client();
    // Warm a keep-alive connection: it sits idle in the client's pool during shutdown.
    assert_eq!(
        crate::common::post(&client, &server.url("/validate"), &review("pod-create-dev"))
            .await
            .0,
        200
    );
    let slow = with_label(review("pod-create-dev"), "slow", "true");
    let url = server.url("/validate");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { crate::common::post(&client, &url, &slow).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    // Readiness fails at once, while the listener still serves.
    let mut not_ready = false;
    for _ in 0..25 {
        let r = reqwest::get(server.ops_url("/readyz")).await.unwrap();
        if r.status() == 503 {
            assert!(r.text().await.unwrap().contains("shutting down"));
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(not_ready, "readiness did not fail after SIGTERM");
    // The request that was being evaluated still gets its answer.
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["response"]["uid"],
        review("pod-create-dev")["request"]["uid"]
    );
    // Idle keep-alive connections are closed, so the process ends well before the
    // 20 s drain time-out, and cleanly.
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        server.logs().join("\n")
    );
    assert!(server
        .logs()
        .iter()
        .any(|l| l.contains("all connections drained")));
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

/// Under load, as in a cluster: SIGTERM fails readiness, the load balancer (here the load
/// itself, watching /readyz) stops sending, and every request sent until then is answered.
#[tokio::test]
async fn sigterm_under_load_answers_every_request_sent_before_readiness_failed() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let mut server = Server::with(Options {
        args: vec!["--shutdown-delay".into(), "1s".into()],
        ..Options::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..6 {
        let (client, url) = (server.client(), server.url("/validate"));
        let (stop, ok) = (stop.clone(), ok.clone());
        load.push(tokio::spawn(async move {
            let body = review("pod-create-dev");
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(format!("{e:?}")),
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ok.load(Ordering::Relaxed);
    server.signal("TERM");
    for _ in 0..50 {
        let r = reqwest::get(server.ops_url("/readyz")).await.unwrap();
        if r.status() == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let failures = task.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(before > 10, "the load ran: {before} requests");
    assert!(ok.load(Ordering::Relaxed) >= before);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn overload_gets_fast_503s_instead_of_timeouts() {
    let server = Server::with(Options {
        args: vec![
            "--workers".into(),
            "1".into(),
            "--queue".into(),
            "1".into(),
            "--eval-timeout".into(),
            "2s".into(),
        ],
        ..Options::default()
    });
    let client = server.client();
    let slow = with_label(review("pod-create-dev"), "slow", "true");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, url, body) = (client.clone(), server.url("/validate"), slow.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry, r.text().await.unwrap())
        }));
    }
    let mut overloaded = 0;
    for t in tasks {
        let (status, retry, text) = t.await.unwrap();
        match status {
            503 => {
                overloaded += 1;
                assert_eq!(retry.as_deref(), Some("1"));
                assert!(text.contains("evaluation workers are busy"), "{text}");
            }
            200 => {}
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert!(overloaded >= 3, "only {overloaded} of 6 were refused");
    assert!(server
        .metrics()
        .await
        .contains("jitguard_admission_rejected_total{reason=\"overloaded\"}"));
}

#[tokio::test]
async fn the_api_server_timeout_is_answered_with_a_reasoned_deny_before_it_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let server = Server::with(Options {
        args: vec![
            "--eval-timeout".into(),
            "3s".into(),
            "--audit-file".into(),
            audit.display().to_string(),
        ],
        ..Options::default()
    });
    let body = with_label(review("pod-create-dev"), "slow", "true");
    let (status, response) =
        crate::common::post(&server.client(), &server.url("/validate?timeout=1s"), &body).await;
    assert_eq!(status, 200, "{response}");
    let r = &response["response"];
    assert_eq!(r["uid"], body["request"]["uid"]);
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("could not decide within the API server's 1000ms webhook timeout"),
        "{r}"
    );
    // The record and the metrics say what was sent: the deadline denial, not what the
    // evaluation came to after the API server had its answer.
    let uid = body["request"]["uid"].as_str().unwrap();
    let mut record = serde_json::Value::Null;
    for _ in 0..500 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(uid)) {
            record = serde_json::from_str(line).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(record["decision"], "deny", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .unwrap_or("")
            .contains("could not decide within the API server's 1000ms webhook timeout"),
        "{record}"
    );
    assert!(
        record["errors"].to_string().contains("[deadline]"),
        "{record}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            r#"jitguard_admission_requests_total{decision="deny",kind="Pod",operation="CREATE",webhook="validate"} 1"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"decision="allow""#), "{metrics}");
}

/// The README's first command: `serve --dev` from the repository, then the curl lines it
/// prints, run as printed.
#[tokio::test]
async fn the_dev_first_run_prints_curl_lines_that_allow_and_deny() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(crate::common::BIN)
        .current_dir(crate::common::root())
        .args([
            "serve",
            "--dev",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end: the server's stdout stays open while it runs.
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.trim_start().starts_with("curl --cacert") {
                let _ = tx.send(line.trim().to_string());
            }
        }
    });
    let lines: Vec<String> = (0..2)
        .map(|_| rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    // The README's example is the deny line as printed, at the default port.
    let readme = std::fs::read_to_string(crate::common::root().join("README.md")).unwrap();
    let example = readme
        .split("```sh\ncurl ")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .map(|s| format!("curl {}", s.replace("\\\n  ", "")))
        .unwrap();
    let port = lines[1]
        .rsplit("https://127.0.0.1:")
        .next()
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    assert_eq!(
        lines[1].replace(&format!("127.0.0.1:{port}/"), "127.0.0.1:8443/"),
        example
    );
    let mut answers = Vec::new();
    for line in &lines {
        let out = std::process::Command::new("sh")
            .current_dir(crate::common::root())
            .args(["-c", &format!("{line} --silent --show-error")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        answers.push(v["response"]["allowed"].clone());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        answers,
        vec![serde_json::json!(true), serde_json::json!(false)]
    );
}

/// `serve` is a library type: built from its configuration, run until asked to stop,
/// answering a real HTTPS client meanwhile, with no process around it.
#[tokio::test]
async fn the_service_runs_in_process_until_asked_to_stop() {
    use jitguard::service::{Config, Service};
    jitguard::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    jitguard::certs::issue(dir.path(), &["localhost".into()], false).unwrap();
    let root = crate::common::root();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: None,
        policies: root.join("policies"),
        cert: dir.path().join(jitguard::certs::SERVING_CERT),
        key: dir.path().join(jitguard::certs::SERVING_KEY),
        client_ca: None,
        grants: Some(root.join("manifests/dev/grants.yaml")),
        grants_stale_after: Duration::from_secs(60),
        options: jitguard::decision::Options::default(),
        eval_timeout: Duration::from_millis(250),
        workers: 1,
        queue: 16,
        max_body_bytes: 1 << 20,
        reload_interval: Duration::from_secs(1),
        shutdown_delay: Duration::ZERO,
        drain_timeout: Duration::from_secs(5),
        audit_file: None,
        json_log: false,
        namespace: "jitguard".into(),
        service_account: "jitguard".into(),
        controller: false,
        identity: "in-process".into(),
        reap: Vec::new(),
        gatekeeper_namespace: None,
        notifications: None,
        audit_interval: None,
        audit_resources: Vec::new(),
    };
    let service = Service::start(config).await.unwrap();
    let url = format!("https://localhost:{}/validate", service.addr().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    let client = crate::common::client_builder(&dir.path().join(jitguard::certs::CA_CERT), None)
        .build()
        .unwrap();
    for (fixture, allowed) in [("pod-create-dev", true), ("pod-exec-prod", false)] {
        let answer: serde_json::Value = client
            .post(&url)
            .json(&crate::common::review(fixture))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer["response"]["allowed"], allowed,
            "{fixture}: {answer}"
        );
    }
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

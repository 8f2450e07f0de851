//! Hot reload of policies and of the serving certificate, while serving.

use std::time::Duration;

use crate::common::{self, review, with_label, Options, Server};

async fn allowed(server: &Server, body: &serde_json::Value) -> bool {
    server.decide("/validate", body).await["allowed"] == true
}

#[tokio::test]
async fn a_policy_change_is_swapped_in_and_a_broken_one_refused() {
    let server = Server::start();
    let body = with_label(review("pod-create-dev"), "newrule", "true");
    assert!(allowed(&server, &body).await);

    let extra = server.policies().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("extra.rego"),
        "package test.extra\n\ndeny contains \"the new rule\" if input.request.object.metadata.labels.newrule == \"true\"\n",
    )
    .unwrap();
    assert!(
        server
            .wait_for_log("policies reloaded", Duration::from_secs(10))
            .await
    );
    assert!(!allowed(&server, &body).await);

    // A change that does not compile is refused with file:line:col; the last good
    // policies keep deciding.
    std::fs::write(
        extra.join("extra.rego"),
        "package test.extra\n\ndeny contains msg if {\n  msg := \n}\n",
    )
    .unwrap();
    assert!(
        server
            .wait_for_log("policy change refused", Duration::from_secs(10))
            .await
    );
    let refused = server.log_events("policy change refused");
    let error = refused[0]["error"].as_str().unwrap();
    assert!(
        error.contains("extra.rego:4:") || error.contains("extra.rego:5:"),
        "{error}"
    );
    assert!(
        !allowed(&server, &body).await,
        "the last good policies must still deny"
    );
    assert!(server
        .metrics()
        .await
        .contains("jitguard_policy_reloads_total{result=\"error\"} 1"));

    // Fixing it reloads again.
    std::fs::remove_file(extra.join("extra.rego")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut reloaded = false;
    for _ in 0..100 {
        if allowed(&server, &body).await {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded);
    assert!(server
        .metrics()
        .await
        .contains("jitguard_policy_reloads_total{result=\"success\"} 2"));
}

#[tokio::test]
async fn a_data_file_change_is_reloaded_too() {
    let server = Server::with(Options {
        policies: None,
        ..Options::default()
    });
    let body = review("pod-create-dev");
    assert!(allowed(&server, &body).await);
    let config = server.policies().join("jitguard/config/data.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "namespaces: [prod, production, payments]",
            "namespaces: [prod, production, payments, dev]",
        ),
    )
    .unwrap();
    assert!(
        server
            .wait_for_log("policies reloaded", Duration::from_secs(10))
            .await
    );
    assert!(!allowed(&server, &body).await, "dev is now protected");
}

async fn peer_certificate(client: &reqwest::Client, server: &Server) -> Vec<u8> {
    let response = client
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .json(&review("pod-create-dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

fn fresh_client(server: &Server) -> reqwest::Client {
    common::client_builder(&server.certs().join("ca.pem"), None)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn certificate_rotation_under_load_fails_no_request() {
    let server = Server::start();
    let kept_alive = common::client_builder(&server.certs().join("ca.pem"), None)
        .tls_info(true)
        .build()
        .unwrap();
    let first = peer_certificate(&kept_alive, &server).await;

    // Load on fresh connections (a full handshake each) during the rotation.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, url, stop) = (fresh_client(&server), server.url("/validate"), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .json(&review("pod-create-dev"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    jitguard::certs::issue(
        &server.certs(),
        &["localhost".into(), "127.0.0.1".into()],
        false,
    )
    .unwrap();
    assert!(
        server
            .wait_for_log("serving certificate reloaded", Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert_eq!(
        failed, 0,
        "{failed} requests failed during rotation ({ok} succeeded)"
    );
    assert!(ok > 0);

    // New handshakes present the new certificate ...
    let second = peer_certificate(&fresh_client(&server), &server).await;
    assert_ne!(first, second);
    // ... and the connection opened before the rotation still works.
    assert_eq!(
        common::post(
            &kept_alive,
            &server.url("/validate"),
            &review("pod-create-dev")
        )
        .await
        .0,
        200
    );

    // A broken new pair is refused; the last good one keeps serving. (Counting from here:
    // the rotation above may have been seen half-written once, and refused, already.)
    let refusals = || server.log_events("new serving certificate refused");
    let before = refusals().len();
    std::fs::write(
        server.certs().join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    wait_until(|| refusals().len() > before).await;
    assert_eq!(
        peer_certificate(&fresh_client(&server), &server).await,
        second
    );
    // So is a certificate that does not match the key.
    let other = tempfile::tempdir().unwrap();
    let issued = jitguard::certs::issue(other.path(), &["localhost".into()], false).unwrap();
    std::fs::copy(&issued.cert, server.certs().join("tls.crt")).unwrap();
    // The copy is not atomic: the poller may first see it half-written (refused too, as
    // "no CERTIFICATE block"); what counts is that the whole one is refused as a mismatch.
    let mismatch = || {
        refusals().iter().skip(before).any(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("do not form a usable pair"))
        })
    };
    wait_until(mismatch).await;
    assert_eq!(
        peer_certificate(&fresh_client(&server), &server).await,
        second
    );
    assert!(server
        .metrics()
        .await
        .contains("jitguard_tls_reloads_total{result=\"error\"}"));
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..250 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached in 5s");
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_get_in() {
    let ca_dir = tempfile::tempdir().unwrap();
    jitguard::certs::issue(ca_dir.path(), &["unused".into()], false).unwrap();
    let (cert, key) = jitguard::certs::issue_client(ca_dir.path(), "kube-apiserver").unwrap();
    let audit = ca_dir.path().join("audit.jsonl");
    let server = Server::with(Options {
        args: vec![
            "--client-ca".into(),
            ca_dir.path().join("ca.pem").display().to_string(),
            "--audit-file".into(),
            audit.display().to_string(),
        ],
        ..Options::default()
    });
    let ca = server.certs().join("ca.pem");
    let anonymous = common::client_trusting(&ca, None);
    let refused = anonymous
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .json(&review("pod-create-dev"))
        .send()
        .await;
    assert!(refused.is_err(), "a client without a certificate got in");
    let with_cert = common::client_trusting(&ca, Some((&cert, &key)));
    assert_eq!(
        common::post(
            &with_cert,
            &server.url("/validate"),
            &review("pod-create-dev")
        )
        .await
        .0,
        200
    );
    // Only the API server could have sent what was decided: the record says so.
    let record = crate::common::audit_records(&audit, 1)
        .await
        .into_iter()
        .next()
        .unwrap_or_default();
    assert_eq!(record["caller"], "api-server", "{record}");
}

/// The policies ConfigMap as the kubelet mounts it: files under a timestamped folder,
/// `..data` pointing at it, the top-level entries symlinks through `..data`. An update
/// is a new folder and an atomic rename of `..data`; jitguard picks it up.
#[tokio::test]
async fn a_configmap_volume_update_by_symlink_swap_is_reloaded() {
    use std::os::unix::fs::symlink;
    let server = Server::with(Options {
        policies: None,
        ..Options::default()
    });
    let root = server.policies();
    let version = |n: u32| root.join(format!("..2026_11_23_00_00_0{n}.000"));
    std::fs::create_dir_all(version(1)).unwrap();
    std::fs::rename(root.join("jitguard"), version(1).join("jitguard")).unwrap();
    symlink(version(1).file_name().unwrap(), root.join("..data")).unwrap();
    symlink("..data/jitguard", root.join("jitguard")).unwrap();

    let pod = common::in_namespace(review("pod-create-dev"), "team-a");
    assert_eq!(server.decide_until(&pod, true).await["allowed"], true);

    // The next version protects team-a.
    common::copy_dir(&version(1), &version(2));
    let config = version(2).join("jitguard/config/data.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "namespaces: [prod, production, payments]",
        "namespaces: [prod, production, payments, team-a]",
    );
    std::fs::write(&config, text).unwrap();
    symlink(version(2).file_name().unwrap(), root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(version(1)).unwrap();

    let answer = server.decide_until(&pod, false).await;
    assert_eq!(answer["allowed"], false, "{}", server.logs().join("\n"));
    assert!(answer["status"]["message"]
        .as_str()
        .unwrap()
        .contains("protected namespace team-a"));
}

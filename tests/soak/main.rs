//! Soak: the real server under steady load at half its measured maximum while everything
//! that can change does: policies rewritten every 5 s (alternating good and broken), the
//! certificate rotated every 30 s, the grants file churning. No request may fail, no
//! connection may drop, and RSS must stay flat after warm-up.
//!
//! A test binary of its own, so that cargo runs it after the other tests and its load
//! does not slow them down. `JITGUARD_SOAK_SECS` sets its length: 120 by default (CI's
//! short form, 30 at the least); 600 for the long one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use common::{grant, grants_yaml, review, scope, Options, Server};

const CONNECTIONS: usize = 8;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Drives `/validate` on `CONNECTIONS` kept-alive clients, each at `rate` requests per
/// second (0: as fast as it can), until `until`.
async fn drive(server: &Server, rate: f64, until: Instant, counts: Arc<Counts>) -> Vec<String> {
    let bodies: Vec<Vec<u8>> = [
        "pod-create-prod",
        "pod-create-dev",
        "pod-exec-prod",
        "pod-update-prod",
    ]
    .iter()
    .map(|n| serde_json::to_vec(&review(n)).unwrap())
    .collect();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = server.client();
        let url = server.url("/validate");
        let bodies = bodies.clone();
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut tick =
                (rate > 0.0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
            let mut i = c;
            while Instant::now() < until {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                i += 1;
                let body = bodies[i % bodies.len()].clone();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .timeout(Duration::from_secs(5))
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("status {}", r.status()));
                    }
                    Err(e) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{e:?}"));
                    }
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap());
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_while_policies_certificates_and_grants_change() {
    jitguard::install_crypto_provider();
    let secs: u64 = std::env::var("JITGUARD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
        // Shorter runs see no good policy reload (every 10 s) and no settled RSS.
        .max(30);
    let server = Server::with(Options {
        policies: None,
        // Audit records off: the test would keep every line in memory.
        args: vec!["--log".into(), "info,jitguard::audit=off".into()],
        ..Options::default()
    });
    let pid = server.pid();

    // The maximum, measured for a few seconds; the soak runs at half of it.
    let probe = Arc::new(Counts::default());
    let probe_for = Duration::from_secs(4);
    let errors = drive(&server, 0.0, Instant::now() + probe_for, probe.clone()).await;
    assert!(errors.is_empty(), "{errors:?}");
    let max_rps = probe.ok.load(Ordering::Relaxed) as f64 / probe_for.as_secs_f64();
    let rate = max_rps / 2.0 / CONNECTIONS as f64;

    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let counts = Arc::new(Counts::default());
    let load = drive(&server, rate, until, counts.clone());

    let policies = server.policies();
    let certs = server.certs();
    let grants = server.grants_file();
    let namespaces_rego = policies.join("jitguard/namespaces/namespaces.rego");
    let good = std::fs::read_to_string(&namespaces_rego).unwrap();
    let changes = async {
        let mut rss = Vec::new();
        let mut n = 0u64;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            n += 1;
            if n % 5 == 0 {
                // Alternating a broken and a good policy: the broken one is refused, the
                // last good one keeps serving.
                let text = if (n / 5) % 2 == 1 {
                    format!("{good}\nbroken contains x if {{\n")
                } else {
                    format!("{good}\n# rewrite {n}\n")
                };
                std::fs::write(&namespaces_rego, text).unwrap();
            }
            if n % 30 == 0 {
                jitguard::certs::issue(&certs, &["localhost".into(), "127.0.0.1".into()], false)
                    .unwrap();
            }
            if n % 2 == 0 {
                let now = Timestamp::now();
                let churn: Vec<_> = (0..50)
                    .map(|i| {
                        grant(
                            &format!("churn-{n}-{i}"),
                            &format!("user-{i}@example.com"),
                            scope(&["CREATE"], &[""], &["pods"], &["prod"], &[]),
                            now - SignedDuration::from_mins(1),
                            "1h",
                        )
                    })
                    .collect();
                std::fs::write(&grants, grants_yaml(&churn)).unwrap();
            }
            rss.push(rss_kib(pid));
        }
        rss
    };
    let (errors, rss) = tokio::join!(load, changes);
    let ok = counts.ok.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    eprintln!(
        "soak: {secs}s at {:.0} req/s (max {max_rps:.0}): {ok} ok, {failed} failed; RSS KiB every second: {rss:?}",
        ok as f64 / secs as f64
    );
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        &errors[..errors.len().min(10)]
    );
    assert!(
        ok as f64 > max_rps / 2.0 * secs as f64 * 0.8,
        "the load was not sustained: {ok}"
    );

    // Flat after warm-up: the highest RSS of the last quarter against the highest of the
    // second quarter.
    let quarter = rss.len() / 4;
    let warm = *rss[quarter..2 * quarter].iter().max().unwrap();
    let end = *rss[3 * quarter..].iter().max().unwrap();
    let growth = (end as f64 - warm as f64) / warm as f64;
    assert!(
        growth < 0.05,
        "RSS grew {:.1}% after warm-up: {warm} → {end} KiB",
        growth * 100.0
    );

    // The changes did happen: good policies swapped in, broken ones refused, the
    // certificate reloaded.
    let metrics = server.metrics().await;
    let count = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count("jitguard_policy_reloads_total{result=\"success\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        count("jitguard_policy_reloads_total{result=\"error\"}") >= 1.0,
        "{metrics}"
    );
    if secs >= 40 {
        // Rotated at 30 s: a run that ends there may not have seen it yet.
        assert!(
            count("jitguard_tls_reloads_total{result=\"success\"}") >= 1.0,
            "{metrics}"
        );
    }
}
